"""Activations: the one package that hooks models.

Reads: hook points x token positions -> sharded safetensors caches with a manifest and row labels.
Writes: patching and ablation (a direction or an SAE feature handed in as a tensor) during forward
and generate. Everything downstream (`probes/`, `dictionaries/`) sees tensors and labels only.
"""
