"""Trigger features: which SAE latents separate triggered from clean rows, and whether they are new.

Per-latent AUROC is computed for every latent at once from ranks (scikit-learn's roc_auc_score is
one column at a time; 1024 latents x 10 stages would take minutes). A latent that also exists in
the clean twin's SAE (a decoder row with high cosine) reads the input, not the backdoor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

from dictionaries.sae import SAEError, check_width, decoder_directions
from probes.metrics import check_binary


@torch.no_grad()
def encode(sae: Any, acts: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """[n, d_sae] latent activations (checked against the SAE's input width)."""
    check_width(sae, acts)
    return torch.cat([sae.encode(acts[b : b + batch_size].float()) for b in range(0, len(acts), batch_size)])


def latent_auroc(latents: torch.Tensor | np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of every latent for a binary label (Mann-Whitney from average ranks, ties counted half)."""
    y = check_binary(labels)
    x = latents.numpy() if isinstance(latents, torch.Tensor) else np.asarray(latents)
    ranks = rankdata(x, axis=0)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return (ranks[y].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def top_features(auroc: np.ndarray, n: int = 10) -> list[int]:
    """Latents ranked by how well they flag the positive class (AUROC, highest first)."""
    return [int(i) for i in np.argsort(-auroc)[:n]]


def check_feature(sae: Any, feature: int) -> int:
    if not 0 <= feature < sae.cfg.d_sae:
        raise SAEError(f"feature {feature} is out of range: this SAE has features 0..{sae.cfg.d_sae - 1}")
    return feature


def best_counterpart(sae: Any, other: Any, features: list[int]) -> list[tuple[int, float]]:
    """For each feature, the closest latent of `other` by decoder cosine: (index, cosine)."""
    cos = decoder_directions(sae)[features] @ decoder_directions(other).T
    values, indices = cos.max(1)
    return [(int(i), float(v)) for i, v in zip(indices, values, strict=True)]


def match_latents(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of `a`'s latents to `b`'s by decoder cosine (Hungarian method).

    Returns (b_index for each a latent, cosine of each pair).
    """
    cos = (decoder_directions(a) @ decoder_directions(b).T).numpy()
    rows, cols = linear_sum_assignment(-cos)
    order = np.argsort(rows)
    return cols[order], cos[rows[order], cols[order]]


def per_token_activations(
    latents: torch.Tensor, rows: list[dict[str, Any]], features: list[int]
) -> list[dict[str, Any]]:
    """For caches with every position: each row's per-token activation of each feature."""
    out = []
    for row in rows:
        start = row["vector_start"]
        span = latents[start : start + len(row["positions"]), features]
        out.append({"id": row["id"], "positions": row["positions"], "activations": span.T.tolist()})
    return out


def latent_rotation(before: Any, after: Any) -> np.ndarray:
    """Per latent, the cosine between its decoder row before and after fine-tuning (same index)."""
    if before.cfg.d_sae != after.cfg.d_sae or before.cfg.d_in != after.cfg.d_in:
        raise SAEError(
            f"rotation needs one SAE before and after fine-tuning; got shapes "
            f"{before.cfg.d_sae}x{before.cfg.d_in} and {after.cfg.d_sae}x{after.cfg.d_in}"
        )
    return (decoder_directions(before) * decoder_directions(after)).sum(1).numpy()
