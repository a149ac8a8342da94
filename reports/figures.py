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


def probe_heatmap(results: dict[str, dict[str, Any]], method: str) -> go.Figure:
    """AUROC by layer x stage for one method: the subject, each control, and the margin over controls."""
    stages = list(results)
    first = results[stages[0]]
    hooks = first["hooks"]
    panels = ["subject", "clean", "random", "margin"]
    fig = make_subplots(rows=1, cols=4, subplot_titles=["probed stage", "clean twin", "random init", "AUROC − control"],
                        shared_yaxes=True, horizontal_spacing=0.07)  # fmt: skip
    colorbars = {3: {"x": 0.72, "thickness": 10, "title": "AUROC"}, 4: {"x": 1.0, "thickness": 10, "title": "margin"}}
    for col, panel in enumerate(panels, start=1):
        z = []
        for s in stages:
            row = []
            for layer in range(len(hooks)):
                r = results[s]["layers"][str(layer)]
                if panel == "margin":
                    row.append(r["margin"] if r["margin"] is not None else np.nan)
                else:
                    row.append(r[panel]["auroc"]["value"] if panel in r else np.nan)
            z.append(row)
        fig.add_heatmap(
            z=z, x=[h.split(".hook")[0] for h in hooks], y=stages, row=1, col=col,
            zmin=-0.5 if panel == "margin" else 0.5, zmax=0.5 if panel == "margin" else 1.0,
            colorscale="RdBu" if panel == "margin" else "Viridis", showscale=col in colorbars,
            colorbar=colorbars.get(col),
            text=np.round(np.array(z, dtype=float), 2), texttemplate="%{text}",
        )  # fmt: skip
    fig.update_layout(title=f"{first['kind']} probe: {method}")
    fig.update_yaxes(autorange="reversed")  # stages top to bottom in pipeline order
    return fig


def transfer_heatmap(transfer: dict[str, Any], hook: str) -> go.Figure:
    stages = transfer["stages"]
    z = [[transfer["auroc"][hook][a][b] for b in stages] for a in stages]
    fig = go.Figure(go.Heatmap(z=z, x=stages, y=stages, zmin=0.5, zmax=1, colorscale="Viridis",
                               text=np.round(np.array(z, dtype=float), 2), texttemplate="%{text}"))  # fmt: skip
    fig.update_layout(xaxis_title="scored on", yaxis_title="trained on", title=f"probe transfer at {hook}")
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
