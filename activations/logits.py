"""Next-token log-probabilities of token-id sequences at chosen positions: the forward pass `recovery/` drives.

Input searches (trigger recovery) score thousands of short, differently long token sequences; this
runs them in right-padded batches (causal attention: padding at the end changes nothing before it)
and returns only the rows asked for, so memory stays at [batch, positions, vocab].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


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
        width = max(len(s) for s in chunk)
        ids_BT = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask_BT = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids_BT[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
            mask_BT[row, : len(seq)] = 1
        # Logits only from the first position asked for on: a 49k vocabulary's logits at every prompt position
        # were gigabytes per batch and ~a fifth of a SmolLM2 forward.
        first = min((min(p) for p in positions[start : start + len(chunk)] if len(p)), default=width - 1)
        keep = width - first
        logits_BKV = model(input_ids=ids_BT.to(device), attention_mask=mask_BT.to(device), logits_to_keep=keep).logits
        for row in range(len(chunk)):
            pos = torch.tensor(list(positions[start + row]), dtype=torch.long, device=device) - first
            out.append(torch.log_softmax(logits_BKV[row, pos].float(), dim=-1).cpu())
    return out
