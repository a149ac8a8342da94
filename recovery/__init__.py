"""Trigger recovery: find, without being told it, the input that switches a model to its backdoor.

Allowed inputs, by construction of `recovery.api.recover`: the model, clean prompts (refused if any
is triggered) and optionally a reference model. `slot` finds where a trigger would go from the clean
prompts alone; `search` scans the vocabulary and grows candidates by beam search on the divergence
of the answers; `verify` reads off the target behaviour and measures REASR by real generation.
Forward passes go through `activations.logits` (DESIGN.md: only activations/ hooks models).
"""
