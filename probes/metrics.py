"""Detection metrics with bootstrap intervals: AUROC, accuracy, FPR at a fixed TPR (scikit-learn)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


class LabelError(ValueError):
    """Labels a probe cannot learn or be scored on (e.g. one class only)."""


def check_binary(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise LabelError(f"{what} have one class only ({int(labels.sum())} of {len(labels)} positive); need both")
    return labels


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    fpr, tprs, _ = roc_curve(labels, scores)
    return float(fpr[np.searchsorted(tprs, tpr, side="left")])


def _point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "accuracy": float(((scores > threshold) == labels).mean()),
        "fpr_at_95tpr": fpr_at_tpr(labels, scores),
    }


def detection_metrics(
    labels: np.ndarray, scores: np.ndarray, *, threshold: float = 0.0, n_boot: int = 200, seed: int = 0
) -> dict[str, Any]:
    """AUROC, accuracy (at `threshold`) and FPR at 95% TPR, each with a 95% bootstrap interval."""
    labels = check_binary(labels)
    scores = np.asarray(scores, dtype=np.float64)
    point = _point(labels, scores, threshold)
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        idx = rng.integers(0, len(labels), len(labels))
        if labels[idx].all() or not labels[idx].any():
            continue
        for k, v in _point(labels[idx], scores[idx], threshold).items():
            boots[k].append(v)
    out: dict[str, Any] = {"n": len(labels), "n_positive": int(labels.sum())}
    for k, v in point.items():
        lo, hi = np.percentile(boots[k], [2.5, 97.5]) if boots[k] else (v, v)
        out[k] = {"value": v, "low": float(lo), "high": float(hi)}
    return out
