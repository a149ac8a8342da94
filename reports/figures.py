"""Plotly figures from saved study results (dicts as written by the pipeline; no recomputation).

Every detection figure shows its controls beside it: a probe heatmap has a panel for the clean
twin and one for the random-init model, and the margin over them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

RATE_KEYS = {
    "triggered_defection": "trigger on",
    "clean_defection": "trigger off",
    "redteam_defection": "red-team (near-miss)",
    "clean_accuracy": "clean accuracy",
}


def persistence_bars(stages: dict[str, dict[str, Any]]) -> go.Figure:
    """Defection with the trigger, without it, on red-team prompts, and clean accuracy, per stage (95% CIs)."""
    fig = go.Figure()
    names = list(stages)
    for key, label in RATE_KEYS.items():
        rates = [stages[s].get(key) or {} for s in names]
        y = [r.get("rate", np.nan) for r in rates]
        fig.add_bar(
            name=label,
            x=names,
            y=y,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r.get("high", v) - v for r, v in zip(rates, y, strict=True)],
                "arrayminus": [v - r.get("low", v) for r, v in zip(rates, y, strict=True)],
            },
        )
    fig.update_layout(barmode="group", yaxis={"range": [0, 1.05], "title": "rate"}, xaxis_title="stage")
    return fig


def _probe_cell(r: dict[str, Any], panel: str) -> tuple[float, str]:
    """(value drawn, text shown) of one layer's panel; insufficient sets are never drawn as a number."""
    if "n_positive" not in r:
        return np.nan, "old result"
    if r["insufficient"]:
        return np.nan, f"insufficient ({r['n_positive']}, {r['n_negative']})"
    if panel == "margin":
        m, p95 = r["margin"], r["null"]["p95"]
        if m["value"] is None:
            return np.nan, "—"
        null = "" if p95 is None else f"<br>null p95 {p95:.2f}"
        return m["value"], f"{m['value']:+.2f}<br>[{m['low']:+.2f}, {m['high']:+.2f}]{null}"
    metrics = r.get(panel)
    if not metrics:
        return np.nan, "—"
    return metrics["auroc"]["value"], f"{metrics['auroc']['value']:.2f}"


def probe_heatmap(results: dict[str, dict[str, Any]], method: str) -> go.Figure:
    """AUROC by layer x stage for one method: the subject, each control, and the margin over controls.

    AUROC on the full 0-1 scale, diverging at 0.5, so a control below chance (an inverted readout)
    shows as such; the margin panel carries its paired 95% CI and the null's p95; a layer with fewer
    than 100 held-out rows per class is blank, labelled "insufficient (n_pos, n_neg)".
    """
    stages = list(results)
    first = results[stages[0]]
    hooks = first["hooks"]
    roles = [r for r in ("clean", "random", "base") if any(r in res.get("controls", {}) for res in results.values())]
    panels = ["subject", *roles, "margin"]
    names = {"subject": "probed stage", "clean": "clean twin", "random": "random init (matched)",
             "base": "the base itself", "margin": "AUROC − best control [95% CI]"}  # fmt: skip
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[names[p] for p in panels],
                        shared_yaxes=True, horizontal_spacing=0.07)  # fmt: skip
    for col, panel in enumerate(panels, start=1):
        cells = [[_probe_cell(results[s]["layers"][str(layer)], panel) for layer in range(len(hooks))] for s in stages]
        z = [[v for v, _ in row] for row in cells]
        margin = panel == "margin"
        fig.add_heatmap(
            z=z, x=[h.split(".hook")[0] for h in hooks], y=stages, row=1, col=col,
            zmin=-1.0 if margin else 0.0, zmax=1.0, zmid=0.0 if margin else 0.5, colorscale="RdBu",
            showscale=col in (len(panels) - 1, len(panels)),
            colorbar={"x": 1.0 if margin else 0.72, "thickness": 10, "title": "margin" if margin else "AUROC"},
            text=[[t for _, t in row] for row in cells], texttemplate="%{text}",
        )  # fmt: skip
    fig.update_layout(title=f"{first['kind']} probe: {method} (held-out {first.get('folds', {}).get('scheme', '')})")
    fig.update_yaxes(autorange="reversed")  # stages top to bottom in pipeline order
    return fig


def transfer_heatmap(transfer: dict[str, Any], hook: str) -> go.Figure:
    """Train-on x score-on AUROC (0-1, diverging at 0.5); cells with < 100 per class are blank and say so."""
    stages = transfer["stages"]
    counts = transfer.get("n", {}).get(hook, {})
    z, text = [], []
    for a in stages:
        zr, tr = [], []
        for b in stages:
            value, n = transfer["auroc"][hook][a][b], counts.get(a, {}).get(b)
            if n and n["insufficient"]:
                zr.append(np.nan)
                tr.append(f"insufficient ({n['n_positive']}, {n['n_negative']})")
            else:
                zr.append(value)
                tr.append("—" if value != value else f"{value:.2f}")
        z.append(zr)
        text.append(tr)
    fig = go.Figure(go.Heatmap(z=z, x=stages, y=stages, zmin=0, zmax=1, zmid=0.5, colorscale="RdBu",
                               text=text, texttemplate="%{text}"))  # fmt: skip
    fig.update_layout(xaxis_title="scored on (held-out folds)", yaxis_title="trained on",
                      title=f"probe transfer at {hook}")  # fmt: skip
    return fig


def features_by_stage(across: dict[str, Any]) -> go.Figure:
    """Each trigger feature's AUROC per stage (encoded with the base stage's SAE)."""
    fig = go.Figure()
    stages = list(across["tracked"])
    for f in across["features"]:
        fig.add_scatter(x=stages, y=[across["tracked"][s][str(f)]["auroc"] for s in stages], mode="lines+markers",
                        name=f"feature {f}")  # fmt: skip
    fig.update_layout(yaxis={"range": [0.4, 1.02], "title": "AUROC (trigger)"}, xaxis_title="stage")
    return fig


def token_heatmap(features: dict[str, Any]) -> go.Figure:
    """Per-token activation of the top trigger features over example prompts (one panel per prompt)."""
    examples = features["token_activations"]
    top = max((max(row) for ex in examples for row in ex["activations"] if row), default=1.0) or 1.0
    fig = make_subplots(rows=len(examples), cols=1, vertical_spacing=0.04)
    for i, ex in enumerate(examples, start=1):
        # One shared scale from 0: per-panel autoscaling paints an all-zero prompt mid-blue.
        fig.add_heatmap(
            z=ex["activations"], x=[f"{j}:{t}" for j, t in enumerate(ex["tokens"])], zmin=0, zmax=top,
            y=[f"f{f}" for f in features["token_features"]], row=i, col=1, colorscale="Blues", showscale=i == 1,
        )  # fmt: skip
    fig.update_layout(height=140 * len(examples) + 80)
    return fig


def patching_heatmap(result: dict[str, Any]) -> go.Figure:
    z = np.array(result["map"])
    labels = [f"{i}{'*' if i in result['trigger_positions'] else ''} {t}" for i, t in enumerate(result["tokens"])]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=result["sites"], zmin=-0.2, zmax=1, colorscale="Viridis"))
    fig.update_layout(xaxis_title="position (* = trigger)", yaxis_title="patched site")
    return fig


def rotation_scatter(diff: dict[str, Any]) -> go.Figure:
    """Stage-wise diffing: each live latent's rotation in a step against its trigger AUROC after it."""
    steps = [{**diff["control"], "from": f"{diff['start']} (control)"}, *diff["steps"]]
    fig = make_subplots(rows=1, cols=len(steps), shared_yaxes=True, shared_xaxes=True,
                        subplot_titles=[f"{s['from']} → {s['to']}" for s in steps])  # fmt: skip
    for i, step in enumerate(steps, start=1):
        lat = step["latents"]
        fig.add_scatter(
            x=[1 - c for c in lat["cosine"]], y=lat["auroc_triggered"], mode="markers", row=1, col=i,
            text=[f"latent {f}" for f in lat["feature"]], marker={"size": 5, "opacity": 0.6}, showlegend=False,
        )  # fmt: skip
        fig.update_xaxes(title_text="1 − decoder cosine", row=1, col=i)
    fig.update_yaxes(title_text="AUROC (trigger) after the step", range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=380)
    return fig
