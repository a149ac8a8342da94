"""Per-layer probe results with their controls, folds, nulls and intervals.

A probe's number means nothing alone: token presence is linearly readable in any network. So the
same method, rows, folds and labels are run on the controls' activations (clean twin, random-init
model of the probed model's own config), every row is scored by a probe that never saw its prompt
(trigger probes: 2 folds grouped by prompt) or its near-miss kind (defection probes: leave one
kind out), and the headline is the margin over the best control with a paired bootstrap interval,
beside the null's 95th percentile (DESIGN.md "Trust").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold

from probes.methods import PROBE_METHODS, Probe, fit_logistic_batched, make_probe
from probes.metrics import detection_metrics
from probes.nulls import (
    MIN_PER_CLASS,
    N_PERMUTATIONS,
    N_RANDOM_DIRECTIONS,
    N_SHUFFLES,
    auroc_many,
    null_block,
    paired_margin,
    random_direction_null,
    shuffled_label_null,
)


@dataclass
class Folds:
    """Train/test index pairs that cover every row at most once on the test side."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    names: list[str]
    scheme: str


def kind_folds(groups: Sequence[str]) -> Folds:
    """Leave one kind out (scikit-learn LeaveOneGroupOut): each kind is scored by a probe that never saw it."""
    groups = np.asarray(groups, dtype=object)
    pairs = list(LeaveOneGroupOut().split(np.zeros(len(groups)), groups=groups))
    return Folds(pairs, [str(groups[test[0]]) for _, test in pairs], "leave-one-kind-out")


def prompt_folds(labels: np.ndarray, prompt_ids: Sequence[str], n_splits: int = 2, seed: int = 0) -> Folds:
    """Stratified folds grouped by prompt: no prompt's vectors on both sides (StratifiedGroupKFold)."""
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pairs = list(splitter.split(np.zeros(len(labels)), np.asarray(labels, bool), groups=np.asarray(prompt_ids)))
    return Folds(pairs, [f"fold {i}" for i in range(len(pairs))], f"{n_splits}-fold grouped by prompt")


def _fits(method: str, labels: np.ndarray) -> bool:
    """Whether a fold's training labels let the method fit (both classes; negatives for detectors)."""
    if PROBE_METHODS[method].supervised:
        return bool(labels.any() and not labels.all())
    return int((~labels).sum()) >= 2


def out_of_fold(
    method: str,
    x: torch.Tensor,
    labels: np.ndarray,
    folds: Folds,
    *,
    fit: tuple[torch.Tensor, np.ndarray] | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out scores and predictions of every row (NaN where its fold could not be fitted).

    `fit` (contrast pairs) replaces the training rows: one probe fitted on it scores every row.
    `rng` permutes the fitting labels (the shuffled-label null).
    """
    scores, preds = np.full(len(labels), np.nan), np.zeros(len(labels), bool)
    if fit is not None:
        fy = fit[1] if rng is None else rng.permutation(fit[1])
        probe = make_probe(method).fit(fit[0], fy)
        probe.threshold = float(np.median(probe.score(fit[0])))
        scores[:] = probe.score(x)
        return scores, scores > probe.threshold
    y = labels if rng is None else rng.permutation(labels)
    for train, test in folds.pairs:
        if not _fits(method, y[train]):
            continue
        probe = make_probe(method).fit(x[train], y[train])
        if not PROBE_METHODS[method].supervised:
            probe.threshold = float(np.median(probe.score(x[train])))
        scores[test] = probe.score(x[test])
        preds[test] = scores[test] > probe.threshold
    return scores, preds


def _metrics(labels: np.ndarray, scores: np.ndarray, preds: np.ndarray, seed: int) -> dict[str, Any] | None:
    if not labels.any() or labels.all():
        return None
    out = detection_metrics(labels, scores, n_boot=200, seed=seed)
    k, n = int((preds == labels).sum()), len(labels)
    ci = binomtest(k, n).proportion_ci(method="wilson")
    out["accuracy"] = {"value": k / n, "low": float(ci.low), "high": float(ci.high)}
    return out


def _fold_rows(labels: np.ndarray, scores: np.ndarray, folds: Folds, scored: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for name, (_, test) in zip(folds.names, folds.pairs, strict=True):
        test = test[scored[test]]
        y = labels[test]
        auroc = float(auroc_many(y, scores[test][None])[0]) if y.any() and not y.all() else None
        rows.append({"name": name, "n_positive": int(y.sum()), "n_negative": int((~y).sum()), "auroc": auroc})
    return rows


def _fold_spread(rows: list[dict[str, Any]]) -> dict[str, Any]:
    values = [r["auroc"] for r in rows if r["auroc"] is not None]
    if not values:
        return {"mean": None, "std": None, "n_folds": 0}
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n_folds": len(values)}


def _refit_null(
    method: str,
    x: torch.Tensor,
    labels: np.ndarray,
    folds: Folds,
    fit: tuple[torch.Tensor, np.ndarray] | None,
    keep: np.ndarray,
    n: int,
    seed: int,
) -> np.ndarray:
    """AUROC on the kept rows of `n` refits of `method` on permuted labels (the shuffled-label null)."""

    def refit(rng: np.random.Generator) -> np.ndarray:
        return out_of_fold(method, x, labels, folds, fit=fit, rng=rng)[0][keep]

    return shuffled_label_null(refit, labels[keep], n, seed)


def score_layer(
    method: str,
    acts: dict[str, torch.Tensor],
    labels: np.ndarray,
    folds: Folds,
    *,
    contrast: dict[str, tuple[torch.Tensor, np.ndarray]] | None = None,
    seed: int = 0,
    n_random: int = N_RANDOM_DIRECTIONS,
    n_shuffles: int = N_SHUFFLES,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One layer: held-out metrics of the subject and each control, paired margin, nulls, folds, n.

    `acts` maps "subject" and each control to [n, d] vectors of the same rows. `groups` names each
    row's prompt: counts are then prompts per class (not vectors) and the margin's bootstrap resamples
    whole prompts. The null's draws are kept (`null.draws`) so a max-over-layers null can be formed.
    """
    labels = np.asarray(labels, bool)
    batched = method == "logreg" and not contrast
    if batched:
        oof, shuffled_scores = _logreg_batched(acts, labels, folds, n_shuffles, seed)
    else:
        oof = {who: out_of_fold(method, x, labels, folds, fit=contrast[who] if contrast else None)
               for who, x in acts.items()}  # fmt: skip
    scored = np.logical_and.reduce([np.isfinite(s) for s, _ in oof.values()])
    y = labels[scored]
    prompt = np.asarray(groups if groups is not None else np.arange(len(labels)), dtype=str)
    counted = scored if scored.any() else np.ones(len(labels), bool)  # none fitted: count what was judged
    n_pos, n_neg = (len(set(prompt[counted & (labels == side)])) for side in (True, False))
    row: dict[str, Any] = {"n_positive": n_pos, "n_negative": n_neg, "n_vectors": int(counted.sum()),
                           "counted_by": "prompt" if groups is not None else "row",
                           "n_unscored": int((~scored).sum()), "n_judged": [int(labels.sum()), int((~labels).sum())],
                           "insufficient": min(n_pos, n_neg) < MIN_PER_CLASS}  # fmt: skip
    for who, (s, p) in oof.items():
        row[who] = _metrics(y, s[scored], p[scored], seed)
    controls = {w: oof[w][0][scored] for w in acts if w != "subject"}
    both = bool(n_pos and n_neg)
    row["margin"] = (paired_margin(y, oof["subject"][0][scored], controls, seed=seed,
                                   groups=prompt[scored] if groups is not None else None) if both
                     else {"value": None, "low": None, "high": None, "over": {}, "control": None})  # fmt: skip
    x = acts["subject"]
    x_np = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    rand = random_direction_null(x_np[scored], y, n_random, seed) if both else np.array([])
    fit = contrast["subject"] if contrast else None
    if not both:
        shuffled = np.array([])
    elif batched:
        shuffled = auroc_many(y, shuffled_scores[:, scored]) if n_shuffles else np.array([])
    else:
        shuffled = _refit_null(method, x, labels, folds, fit, scored, n_shuffles, seed)
    row["null"] = null_block(rand, shuffled) | {
        "draws": {"random_directions": np.round(rand, 4).tolist(), "shuffled_labels": np.round(shuffled, 4).tolist()}
    }
    row["folds"] = _fold_rows(labels, oof["subject"][0], folds, scored)
    row["fold_auroc"] = _fold_spread(row["folds"])
    subject_auroc = row["subject"]["auroc"]["value"] if row["subject"] else None
    row["beats_controls"] = bool(row["margin"]["low"] is not None and row["margin"]["low"] > 0)
    row["beats_null"] = bool(subject_auroc is not None and row["null"]["p95"] is not None
                             and subject_auroc > row["null"]["p95"])  # fmt: skip
    row["evidence"] = row["beats_controls"] and row["beats_null"] and not row["insufficient"]
    return row


def _logreg_batched(
    acts: dict[str, torch.Tensor], labels: np.ndarray, folds: Folds, n_shuffles: int, seed: int
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """`logreg` held-out scores of every model and of `n_shuffles` shuffled-label refits of the subject.

    Each fold is one batched fit (`fit_logistic_batched`, the same objective as `logreg`) over
    the models and the shuffles: permuting the training labels is permuting the training rows
    against fixed labels, so a shuffle is one more stacked copy of the subject's rows.
    """
    rng = np.random.default_rng(seed)
    who = list(acts)
    xs = {w: (a if isinstance(a, torch.Tensor) else torch.as_tensor(a)).float() for w, a in acts.items()}
    scores = np.full((len(who) + n_shuffles, len(labels)), np.nan)
    for train, test in folds.pairs:
        if not _fits("logreg", labels[train]):
            continue
        tr, te = torch.from_numpy(train), torch.from_numpy(test)
        perms = [torch.from_numpy(rng.permutation(train)) for _ in range(n_shuffles)]
        stack = torch.stack([xs[w][tr] for w in who] + [xs["subject"][p] for p in perms])
        weights, biases = fit_logistic_batched(stack, labels[train])
        tests = torch.stack([xs[w][te] for w in who] + [xs["subject"][te]] * n_shuffles)
        scores[:, test] = (torch.einsum("snd,sd->sn", tests, weights) + biases[:, None]).numpy()
    oof = {w: (scores[i], scores[i] > 0) for i, w in enumerate(who)}
    return oof, scores[len(who) :]


def final_probe(
    method: str, x: torch.Tensor, labels: np.ndarray, fit: tuple[torch.Tensor, np.ndarray] | None
) -> Probe | None:
    """The probe saved for use (monitor, transfer): fitted on every row (its numbers come from the folds).

    None when the rows cannot fit it (one behaviour only)."""
    fx, fy = fit if fit is not None else (x, np.asarray(labels, bool))
    if not _fits(method, np.asarray(fy, bool)):
        return None
    probe = make_probe(method).fit(fx, fy)
    if not PROBE_METHODS[method].supervised or fit is not None:
        probe.threshold = float(np.median(probe.score(fx)))
    return probe


def layer_table(
    method: str,
    acts_by_model: dict[str, torch.Tensor],
    labels: np.ndarray,
    folds: Folds,
    *,
    contrast_by_model: dict[str, tuple[torch.Tensor, np.ndarray]] | None = None,
    seed: int = 0,
    n_random: int = N_RANDOM_DIRECTIONS,
    n_shuffles: int = N_SHUFFLES,
    groups: Sequence[str] | None = None,
) -> tuple[dict[int, dict[str, Any]], dict[int, Probe | None]]:
    """{layer: score_layer(...)} and the subject's probes to save (None where the rows cannot fit one).

    `acts_by_model` maps "subject" and each control to [layers, vectors, d] tensors of the same rows
    and the same depth (a control of another depth is not a matched control: the caller drops it).
    """
    depth = acts_by_model["subject"].shape[0]
    for who, a in acts_by_model.items():
        if a.shape[0] != depth:
            raise ValueError(f"control {who!r} has {a.shape[0]} layers, the probed model {depth}: not matched")
    results: dict[int, dict[str, Any]] = {}
    probes: dict[int, Probe | None] = {}
    for layer in range(depth):
        acts = {who: a[layer] for who, a in acts_by_model.items()}
        contrast = {w: (c[0][layer], c[1]) for w, c in contrast_by_model.items()} if contrast_by_model else None
        results[layer] = score_layer(method, acts, labels, folds, contrast=contrast, seed=seed,
                                     n_random=n_random, n_shuffles=n_shuffles, groups=groups)  # fmt: skip
        probes[layer] = final_probe(method, acts["subject"], labels, contrast["subject"] if contrast else None)
    return results, probes


def permutation_test(
    method: str,
    x: torch.Tensor,
    labels: np.ndarray,
    folds: Folds,
    *,
    contrast: tuple[torch.Tensor, np.ndarray] | None = None,
    n: int = N_PERMUTATIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """The reported layer's held-out AUROC against `n` refits on permuted labels: a permutation p-value.

    p = (1 + refits at or above the observed AUROC) / (1 + n), so it is never 0 (Phipson & Smyth 2010).
    """
    labels = np.asarray(labels, bool)
    if method == "logreg" and contrast is None:
        oof, shuffled_scores = _logreg_batched({"subject": x}, labels, folds, n, seed + 1)
        observed_scores = oof["subject"][0]
        ok = np.isfinite(observed_scores)
        null = auroc_many(labels[ok], shuffled_scores[:, ok]) if ok.any() else np.array([])
    else:
        observed_scores = out_of_fold(method, x, labels, folds, fit=contrast)[0]
        ok = np.isfinite(observed_scores)
        null = _refit_null(method, x, labels, folds, contrast, ok, n, seed + 1) if ok.any() else np.array([])
    y = labels[ok]
    if not len(null) or not y.any() or y.all():
        return {"n": 0, "observed": None, "p_value": None, "p95": None}
    observed = float(auroc_many(y, observed_scores[ok][None])[0])
    return {"n": len(null), "observed": observed, "p_value": float((1 + (null >= observed).sum()) / (1 + len(null))),
            "p95": float(np.quantile(null, 0.95))}  # fmt: skip
