"""Nulls and paired intervals: what a probe's AUROC must beat before it counts as evidence.

Two nulls in the probed model itself: random unit directions (how well an arbitrary linear readout
separates the classes) and the same method fitted on shuffled labels (how well the method does when
there is nothing to find). The margin over each control gets a paired bootstrap interval: subject
and control are scored on the same resampled rows (DESIGN.md "Trust"; STYLE.md 14-15).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import rankdata

from probes.metrics import bootstrap_replicates, cluster_counts, resample_counts

MIN_PER_CLASS = 100
"""An AUROC needs at least this many held-out rows of each class, else it is `insufficient`."""
N_RANDOM_DIRECTIONS = 200
N_SHUFFLES = 10
"""Shuffled-label refits per layer: their p95 is near their maximum, a conservative bar."""
N_PERMUTATIONS = 100
"""Shuffled-label refits at the reported layer: enough for a permutation p-value below 0.05."""
N_BOOT = 400
"""Paired bootstrap resamples of the margin (1000 cost ~1.4 s per probe run on a tiny study)."""


def auroc_many(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of every row of `scores` [k, n] against one label vector (Mann-Whitney U, ties half)."""
    labels = np.asarray(labels, bool)
    ranks = rankdata(np.atleast_2d(scores), axis=1)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    u = ranks[:, labels].sum(1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def summarise_null(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"p95": None, "n": 0}
    return {"p95": float(np.quantile(values, 0.95)), "mean": float(values.mean()), "n": len(values)}


def random_direction_null(
    acts: np.ndarray, labels: np.ndarray, n: int = N_RANDOM_DIRECTIONS, seed: int = 0
) -> np.ndarray:
    """AUROC of `n` random unit directions (projections) on the scored rows."""
    x = np.asarray(acts, np.float64)
    dirs = np.random.default_rng(seed).standard_normal((n, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return auroc_many(labels, dirs @ x.T)


def shuffled_label_null(
    score_with: Callable[[np.random.Generator], np.ndarray], labels: np.ndarray, n: int = N_SHUFFLES, seed: int = 0
) -> np.ndarray:
    """AUROC on the true labels of a method refitted `n` times on permuted labels.

    `score_with(rng)` refits with its fitting labels permuted by `rng` and returns the held-out
    scores (NaN where a row was not scored).
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, bool)
    out = []
    for _ in range(n):
        scores = score_with(rng)
        ok = np.isfinite(scores)
        if labels[ok].any() and not labels[ok].all():
            out.append(auroc_many(labels[ok], scores[ok][None])[0])
    return np.array(out)


def null_block(random_aurocs: np.ndarray, shuffled_aurocs: np.ndarray) -> dict[str, Any]:
    """Both nulls and their joint p95 (the larger of the two: the conservative bar)."""
    rnd, shf = summarise_null(random_aurocs), summarise_null(shuffled_aurocs)
    p95s = [b["p95"] for b in (rnd, shf) if b["p95"] is not None]
    return {"p95": max(p95s) if p95s else None, "n": rnd["n"] + shf["n"],
            "random_directions": rnd, "shuffled_labels": shf}  # fmt: skip


def paired_margin(
    labels: np.ndarray,
    subject: np.ndarray,
    controls: dict[str, np.ndarray],
    n_boot: int = N_BOOT,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Subject AUROC minus each control's (and minus the best control's), with paired 95% bootstrap CIs.

    All models are scored on the same resamples, so the interval is on the difference itself. With
    `groups` (the prompt of each row) whole prompts are resampled: vectors of one prompt, or one
    prompt asked twice, are not independent evidence.
    """
    labels = np.asarray(labels, bool)
    if groups is None:
        drawn = np.random.default_rng(seed).integers(0, len(labels), (n_boot, len(labels)))
        counts = resample_counts(drawn, len(labels))
    else:
        counts = cluster_counts(groups, n_boot, seed)
    point = {who: float(auroc_many(labels, s[None])[0]) for who, s in {"subject": subject, **controls}.items()}
    boots = {who: bootstrap_replicates(labels, np.asarray(s, np.float64), None, counts=counts)["auroc"]
             for who, s in {"subject": subject, **controls}.items()}  # fmt: skip

    def interval(value: float, reps: np.ndarray) -> dict[str, float]:
        lo, hi = np.percentile(reps, [2.5, 97.5]) if len(reps) else (value, value)
        return {"value": value, "low": float(lo), "high": float(hi)}

    over = {c: interval(point["subject"] - point[c], boots["subject"] - boots[c]) for c in controls}
    if not controls:
        return {"value": None, "low": None, "high": None, "over": {}, "control": None}
    best = max(controls, key=lambda c: point[c])
    worst_case = boots["subject"] - np.max(np.stack([boots[c] for c in controls]), axis=0)
    return {**interval(point["subject"] - point[best], worst_case), "over": over, "control": best}
