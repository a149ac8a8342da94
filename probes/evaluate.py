"""Per-layer probe results with their controls.

A probe's number means nothing alone: token presence is linearly readable in any network. So the
same method, rows, split and labels are run on the clean twin's and a random-init model's
activations, and the headline is the margin over the stronger control (DESIGN.md, probes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from probes.methods import REGISTRY, Probe, make_probe
from probes.metrics import detection_metrics


@dataclass
class Split:
    """Which cached vectors train the probe and which score it."""

    train: np.ndarray
    test: np.ndarray


def random_split(labels: np.ndarray, test_fraction: float = 0.5, seed: int = 0) -> Split:
    """Stratified random split of vectors."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, bool)
    test = np.zeros(len(labels), bool)
    for cls in (True, False):
        idx = np.flatnonzero(labels == cls)
        test[rng.permutation(idx)[: round(len(idx) * test_fraction)]] = True
    return Split(np.flatnonzero(~test), np.flatnonzero(test))


def group_split(groups: Sequence[str], test_groups: Sequence[str]) -> Split:
    """Hold out whole groups (e.g. near-miss kinds): the probe is scored on kinds it never saw."""
    held = np.isin(np.asarray(groups, dtype=object), list(test_groups))
    return Split(np.flatnonzero(~held), np.flatnonzero(held))


def fit_and_score(
    method: str,
    acts: torch.Tensor,
    labels: np.ndarray,
    split: Split,
    *,
    fit_acts: torch.Tensor | None = None,
    fit_labels: np.ndarray | None = None,
) -> tuple[Probe, dict[str, Any]]:
    """Fit one probe on one layer's vectors and score its test split.

    `fit_acts` / `fit_labels` replace the training rows (contrast pairs are fitted on their own set).
    """
    probe = make_probe(method)
    labels = np.asarray(labels, bool)
    if fit_acts is not None:
        probe.fit(fit_acts, fit_labels)
    else:
        probe.fit(acts[split.train], labels[split.train])
    scores = probe.score(acts[split.test])
    if not REGISTRY[method].supervised or method == "contrast_pair":
        # No learned threshold: calibrate on the training rows' scores (median), for accuracy only.
        train_scores = probe.score(acts[split.train])
        probe.threshold = float(np.median(train_scores))
    return probe, detection_metrics(labels[split.test], scores, threshold=probe.threshold)


def layer_table(
    method: str,
    acts_by_model: dict[str, torch.Tensor],
    labels: np.ndarray,
    split: Split,
    *,
    contrast_by_model: dict[str, tuple[torch.Tensor, np.ndarray]] | None = None,
) -> tuple[dict[int, dict[str, Any]], dict[int, Probe]]:
    """{layer: {model: metrics, ..., "margin": AUROC minus the best control}} and the subject's probes.

    `acts_by_model` maps "subject", "clean" and "random" to [layers, vectors, d] tensors of the same rows.
    """
    results: dict[int, dict[str, Any]] = {}
    probes: dict[int, Probe] = {}
    n_layers = acts_by_model["subject"].shape[0]
    for layer in range(n_layers):
        row: dict[str, Any] = {}
        for who, acts in acts_by_model.items():
            extra = {}
            if contrast_by_model is not None:
                c_acts, c_labels = contrast_by_model[who]
                extra = {"fit_acts": c_acts[layer], "fit_labels": c_labels}
            probe, metrics = fit_and_score(method, acts[layer], labels, split, **extra)
            row[who] = metrics
            if who == "subject":
                probes[layer] = probe
        controls = [row[w]["auroc"]["value"] for w in row if w != "subject"]
        row["margin"] = row["subject"]["auroc"]["value"] - max(controls) if controls else None
        results[layer] = row
    return results, probes
