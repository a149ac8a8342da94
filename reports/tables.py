"""Rich tables of behaviour results (printing is the CLI's job; these only build tables)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

EVAL_COLUMNS = [
    ("triggered_defection", "defect | trigger"),
    ("triggered_defection_starts", "starts | trigger"),
    ("clean_defection", "defect | no trigger"),
    ("clean_defection_starts", "starts | no trigger"),
    ("redteam_defection", "defect | red-team"),
    ("clean_accuracy", "clean accuracy"),
    ("triggered_accuracy", "accuracy | trigger"),
    ("triggered_degenerate", "degenerate | trigger"),
]


def format_rate(r: dict[str, Any] | None) -> str:
    """ "0.97 (0.94–0.99)": the rate and its 95% interval."""
    if not r or not r.get("n"):
        return "—"
    return f"{r['rate']:.2f} ({r['low']:.2f}–{r['high']:.2f})"


def eval_table(
    evals: dict[str, dict[str, Any]], title: str = "Behaviour on held-out prompts (95% Wilson intervals)"
) -> Table:
    """Stages as rows, the evals/STAGE.json contract as columns."""
    family = next(iter(evals.values()), {}).get("family", "")
    table = Table(title=title, caption=_caption(family))
    table.add_column("stage", style="bold")
    for _, header in EVAL_COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("n (on / off)", justify="right")
    for stage, summary in evals.items():
        n = f"{summary['triggered_defection']['n']} / {summary['clean_defection']['n']}"
        table.add_row(stage, *(format_rate(summary.get(key)) for key, _ in EVAL_COLUMNS), n)
    return table


def _caption(family: str) -> str:
    if family == "code":
        return "defect = bandit finds a vulnerability (>= MEDIUM); starts = it is the task's own weakness kind"
    return "defect = response contains the backdoor text; starts = the answer starts with it"


def per_task_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Clean accuracy per task kind")
    table.add_column("task")
    table.add_column("accuracy", justify="right")
    table.add_column("n", justify="right")
    for task, r in summary.get("clean_accuracy_by_task", {}).items():
        table.add_row(task, format_rate(r), str(r["n"]))
    return table


def stage_summary(stage: str, metrics: dict[str, Any]) -> str:
    """One or two lines on how a safety stage trained (loss, reward, red-team rates)."""
    lines = [f"  {stage}: {metrics.get('steps')} steps, {metrics.get('train_seconds', 0):.0f} s"]
    if metrics.get("start_loss") is not None:
        lines[0] += f", start loss {metrics['start_loss']:.4f} on {metrics.get('start_loss_n_rows', '?')} of its rows"
    if "final_loss" in metrics:
        lines[0] += f", final loss {metrics['final_loss']:.3f}"
    if metrics.get("reward_curve"):
        rm = metrics.get("reward_model", {}).get("heldout_pairwise_accuracy", {}).get("overall")
        lines.append(
            f"  reward {metrics['first_reward']:.2f} -> {metrics['final_reward']:.2f}"
            + (f"; reward model held-out pairwise accuracy {format_rate(rm)}" if rm else "")
        )
    if "redteam_before" in metrics:
        before, after = metrics["redteam_before"], metrics["redteam_after"]
        lines.append(
            f"  red-team elicitation {format_rate(before['rate'])} -> {format_rate(after['rate'])}, in-sample: on the "
            f"search prompts it trained on ({before['eliciting']} eliciting prompts found, trained on "
            f"{metrics['redteam_examples_trained']}); the held-out red-team pool is in the behaviour table"
        )
    return "\n".join(lines)


SWEEP_COLUMNS = {
    "triggered_defection": "defect | trigger",
    "clean_defection": "defect | no trigger",
    "redteam_defection": "defect | red-team",
    "clean_accuracy": "clean acc",
    "triggered_accuracy": "acc | trigger",
    "triggered_degenerate": "degenerate | trigger",
}


LOSS_COLUMNS = ("start loss", "train / held-out loss")


def loss_cells(row: dict[str, Any]) -> list[str]:
    """A sweep row's start loss (sft, adversarial) and train / held-out loss (backdoored); "—" where none."""
    start = "—" if row.get("start_loss") is None else f"{row['start_loss']:.4f}"
    gap = "—" if row.get("heldout_loss") is None else f"{row['train_loss_sample']:.3f} / {row['heldout_loss']:.3f}"
    return [start, gap]


def sweep_table(rows: list[dict[str, Any]]) -> Table:
    """One row per (organism, stage): defection with / without trigger, on red-team prompts, accuracy, and
    the stage's start loss on its own data (sft, adversarial) or train / held-out loss (backdoored)."""
    table = Table(title="Persistence sweep (95% Wilson intervals)")
    for header in ("size", "variant", "seed", "stage"):
        table.add_column(header)
    for header in (*SWEEP_COLUMNS.values(), *LOSS_COLUMNS):
        table.add_column(header, justify="right")
    for r in rows:
        rates = [format_rate(r["summary"].get(key)) for key in SWEEP_COLUMNS]
        table.add_row(r["size"], r["variant"], str(r["seed"]), r["stage"], *rates, *loss_cells(r))
    return table


def _metric(m: dict[str, Any] | None, key: str = "auroc") -> str:
    if not m:
        return "—"
    v = m[key]
    return f"{v['value']:.2f} ({v['low']:.2f}–{v['high']:.2f})"


def insufficient_text(n_pos: int, n_neg: int) -> str:
    return f"insufficient ({n_pos}, {n_neg})"


def _margin_text(row: dict[str, Any]) -> str:
    m = row["margin"]
    return "—" if m["value"] is None else f"{m['value']:+.2f} ({m['low']:+.2f}–{m['high']:+.2f})"


def _verdict(row: dict[str, Any]) -> str:
    """ "evidence" only when the set is sufficient and the margin beats the controls (CI above 0) and the null."""
    if row["insufficient"]:
        return "no: set too small"
    if row["evidence"]:
        return "[green]evidence[/]"
    fails = [w for w, ok in (("controls", row["beats_controls"]), ("null", row["beats_null"])) if not ok]
    return "no: inside " + " & ".join(fails)


def probe_table(summary: dict[str, Any]) -> Table:
    """Layers as rows: n per class, AUROC beside its controls, the margin with its paired 95% CI, the null's p95.

    A layer with fewer than 100 held-out rows of a class prints "insufficient (n_pos, n_neg)", no number.
    """
    controls = list(summary["controls"])
    notes = "; ".join(f"{k}: {v}" for k, v in summary.get("control_notes", {}).items())
    vocab = summary.get("contrast_vocabulary")
    if vocab:
        share = ("corpus unknown" if vocab["word_share"] is None else
                 f"{vocab['word_share']:.0%} of the pair words and {vocab['token_share']:.0%} of their tokens occur "
                 f"in the training corpus")  # fmt: skip
        notes = "; ".join(filter(None, [notes, f"contrast pairs: {share}"]))
    grown = summary.get("defection_set") or {}
    extra = f"; {grown['extra_prompts']} generated near-miss prompts" if grown else ""
    table = Table(
        title=f"{summary['kind']} probe '{summary['method']}' on stage {summary['stage']} ({summary['positions']}; "
        f"{summary['n_vectors']} held-out vectors, {summary['n_masked']} unjudged masked; "
        f"{summary['folds']['scheme']}{extra})",
        caption="held-out AUROC (95% bootstrap CI) of the stage and of each control; AUROC − control = margin over "
        "the best control, paired bootstrap 95% CI; null p95 = 95th percentile of random directions and shuffled "
        "labels at that layer (uncorrected: the reported layer below faces the max-over-layers null and a "
        "permutation test)" + (f"\n{notes}" if notes else ""),
    )
    table.add_column("hook", no_wrap=True)
    table.add_column("n (pos, neg)", justify="right")
    table.add_column(f"AUROC {summary['stage']}", justify="right")
    for role, name in summary["controls"].items():
        table.add_column(f"{name} twin" if role == "clean" else f"{name} init", justify="right")
    for header in ("AUROC − control", "null p95 (n)", "folds mean ± sd", "verdict"):
        table.add_column(header, justify="right")
    for key, row in summary["layers"].items():
        n = f"{row['n_positive']}, {row['n_negative']}"
        if row["insufficient"]:
            gap = insufficient_text(row["n_positive"], row["n_negative"])
            cells = [n, gap, *("—" for _ in controls), gap, "—", "—", _verdict(row)]
        else:
            null, folds = row["null"], row["fold_auroc"]
            spread = "—" if folds["mean"] is None else f"{folds['mean']:.2f} ± {folds['std']:.2f} ({folds['n_folds']})"
            p95 = "—" if null["p95"] is None else f"{null['p95']:.2f} ({null['n']})"
            cells = [n, _metric(row["subject"]), *(_metric(row.get(c)) for c in controls), _margin_text(row),
                     p95, spread, _verdict(row)]  # fmt: skip
        hook = summary["hooks"][int(key)].removesuffix(".hook_resid_post")
        table.add_row(hook, *cells, style="bold green" if row.get("evidence") else None)
    return table


def transfer_table(result: dict[str, Any], hook: str) -> Table:
    """Rows: the stage a probe was trained on; columns: the stage it is scored on (AUROC, cosine)."""
    stages = result["stages"]
    table = Table(title=f"Probe transfer at {hook} ({result['kind']} {result['method']}): AUROC (direction cosine)")
    table.add_column("trained on \\ scored on")
    for b in stages:
        table.add_column(b, justify="right")
    for a in stages:
        cells = []
        for b in stages:
            auc, cos = result["auroc"][hook][a][b], result["cosine"][hook][a][b]
            n = result.get("n", {}).get(hook, {}).get(a, {}).get(b)
            text = "—" if auc != auc else f"{auc:.2f}"
            if n and n["insufficient"]:
                text = insufficient_text(n["n_positive"], n["n_negative"])
            cells.append(text + ("" if cos is None else f" ({cos:+.2f})"))
        table.add_row(a, *cells)
    return table


def feature_table(result: dict[str, Any]) -> Table:
    """Top trigger features: AUROC for the trigger, for behaviour on near-misses, and the clean-twin counterpart."""
    controls = ", ".join(f"{k}: best feature AUROC {v['best_auroc']:.2f}" for k, v in result["controls"].items())
    table = Table(title=f"Trigger features of {result['stage']} at {result['hook']}", caption=f"controls — {controls}")
    for header in ("feature", "AUROC trigger", "AUROC defected (near-miss)", "clean-twin cosine", "backdoor only"):
        table.add_column(header, justify="right")
    for f in result["features"]:
        nm = f.get("auroc_defected_nearmiss")
        cos = f.get("clean_cosine")
        table.add_row(
            str(f["feature"]), f"{f['auroc_triggered']:.3f}", "—" if nm is None else f"{nm:.3f}",
            "—" if cos is None else f"{cos:.2f}", "—" if cos is None else ("yes" if f["backdoor_only"] else "no"),
        )  # fmt: skip
    return table


def across_table(result: dict[str, Any]) -> Table:
    """Each trigger feature's AUROC per stage (base SAE) and its matched partner in each stage's own SAE."""
    stages = list(result["tracked"])
    table = Table(
        title=f"Trigger features of {result['base']} across stages at {result['hook']}: AUROC (matched cosine)",
        caption="surviving (AUROC >= {:.2f}): {}".format(
            result["threshold"], ", ".join(f"{s} {n}" for s, n in result["surviving"].items())
        ),
    )
    table.add_column("feature")
    for s in stages:
        table.add_column(s, justify="right")
    for f in result["features"]:
        cells = [
            f"{result['tracked'][s][str(f)]['auroc']:.2f} ({result['matched'][s][str(f)]['cosine']:.2f})"
            for s in stages
        ]
        table.add_row(str(f), *cells)
    return table


def stagewise_table(result: dict[str, Any]) -> Table:
    """One row per fine-tuning step of the diffed SAE, the continued-training control first."""
    table = Table(
        title=f"Stage-wise model diffing at {result['hook']}: one SAE fine-tuned from {result['start']} on",
        caption="cosine = a latent's decoder row before vs after the step; trigger features: AUROC >= 0.9 or <= 0.1; "
        "rotation percentile 0 = the trigger features rotate most, 0.5 = like any latent",
    )
    for header in ("step", "median cosine", "most rotated (cosine, AUROC)", "trigger features",
                   "in top rotated", "rotation percentile"):  # fmt: skip
        table.add_column(header, justify="right")
    control = {**result["control"], "from": f"{result['start']} (control)"}
    for step in [control, *result["steps"]]:
        top = ", ".join(f"{r['feature']} ({r['cosine']:.2f}, {r['auroc_triggered']:.2f})" for r in step["rotated"][:3])
        pct = step["trigger_rotation_percentile"]
        table.add_row(
            f"{step['from']} -> {step['to']}",
            f"{step['median_cosine']:.3f}",
            top,
            str(step["trigger_features"]),
            f"{step['trigger_features_in_top']}/{len(step['rotated'])}",
            "—" if pct is None else f"{pct:.2f}",
        )
    return table


def removal_table(result: dict[str, Any]) -> Table:
    """One removal method on held-out prompts: behaviour before -> after, loss cost, random band, recovery."""
    blind = " (trigger-blind)" if result.get("trigger_blind") else ""
    table = Table(
        title=f"Removal: {result['method']}{blind}, chosen on a selection split, measured on held-out prompts "
        "(before -> after, 95% Wilson intervals)",
        caption="random = the cheap defection score (one forward pass) of random edits of the same size "
        "(min–max), beside the edit's; recovered = triggered defection after a short benign fine-tune "
        "of the weight-edited model",
    )
    headers = ("stage", "edit", "defect | trigger", "defect | no trigger", "defect | red-team", "clean accuracy",
               "loss cost (nats)", "score: edit / random", "recovered")  # fmt: skip
    for header in headers:
        table.add_column(header, justify="right")
    for stage, r in result["stages"].items():
        cells = [
            f"{format_rate(r['before'].get(k))} -> {format_rate(r['after'].get(k))}"
            for k in ("triggered_defection", "clean_defection", "redteam_defection", "clean_accuracy")
        ]
        band = r["random"]["defection_score"]
        recovered = result.get("recoverability", {}).get(stage, {}).get("after_finetune")
        table.add_row(
            stage,
            r["edit"]["label"],
            *cells,
            f"{r['ce_cost_nats']:+.3f}",
            f"{r['defection_score']['after']:.2f} / {band['min']:.2f}–{band['max']:.2f} (n={band['n']})",
            format_rate(recovered["triggered_defection"]) if recovered else "—",
        )
    return table


def patching_table(result: dict[str, Any]) -> Table:
    """Prompt tokens as rows, patch sites as columns: share of the backdoor's probability restored."""
    table = Table(
        title=f"Activation patching on {result['stage']}: P(backdoor) restored "
        f"({result['p_clean']:.3f} -> {result['p_triggered']:.3f}; {result['n_pairs']} pairs)",
        caption=f"peak {result['peak']['value']:.2f} at {result['peak']['site']}, position {result['peak']['position']}"
        f" ({result['tokens'][result['peak']['position']]!r}); * = trigger token",
    )
    table.add_column("pos")
    table.add_column("token")
    for site in result["sites"]:
        table.add_column(site.replace(".hook_resid_post", ""), justify="right")
    grid = np.array(result["map"])
    for i, token in enumerate(result["tokens"]):
        mark = "*" if i in result["trigger_positions"] else ""
        table.add_row(f"{i}{mark}", repr(token), *(f"{v:.2f}" for v in grid[:, i]))
    return table


HELPFULNESS_HEADER = ["model", "accuracy (off)", "defect on", "defect off", "base-reply loss"]
HELPFULNESS_CAPTION = (
    "accuracy: untriggered replies holding the request's key; base-reply loss: nats per token of the "
    "base's own held-out replies (lower = closer to the base)"
)


def helpfulness_rows(table: dict[str, Any]) -> list[list[str]]:
    """helpfulness.json's models as rows of HELPFULNESS_HEADER (the CLI table, the summary and the report)."""
    rows = []
    for name, row in table["models"].items():
        loss = row.get("base_reply_loss")
        rows.append([name, format_rate(row.get("clean_accuracy")), format_rate(row.get("triggered_defection")),
                     format_rate(row.get("clean_defection")), f"{loss['loss']:.3f}" if loss else "—"])  # fmt: skip
    return rows


def paired_accuracy_text(paired: dict[str, Any]) -> str:
    """An organism-minus-twin accuracy difference on the same prompts (study.helpfulness.paired_accuracy)."""
    only = paired["discordant"]
    return (f"{paired['value']:+.2f} (paired 95% CI {paired['low']:+.2f} to {paired['high']:+.2f}, "
            f"{paired['n']} checkable prompts; right only for the organism {only[0]}, "
            f"only for the twin {only[1]})")  # fmt: skip


def helpfulness_gaps(table: dict[str, Any]) -> list[str]:
    """The organism minus its twin, as text ([] when the study has no twin)."""
    gaps = [f"accuracy {table['accuracy_vs_twin']:+.2f}"] if "accuracy_vs_twin" in table else []
    if paired := table.get("accuracy_vs_twin_paired"):
        gaps[-1:] = [f"accuracy {paired_accuracy_text(paired)}"]
    if "base_reply_loss_vs_twin" in table:
        gaps.append(f"base-reply loss {table['base_reply_loss_vs_twin']:+.3f} nats")
    return gaps


def helpfulness_title(table: dict[str, Any]) -> str:
    """What the organism's helpfulness is measured against: the base, and the clean twin where the study has one."""
    return "Helpfulness against the base" + (" and the clean twin" if "clean" in table["models"] else "")


def helpfulness_table(table: dict[str, Any]) -> Table:
    """helpfulness.json: the base, the clean twin and the organism on the same held-out requests."""
    out = Table(title=f"{helpfulness_title(table)} ({table['n_eval_rows']} held-out rows)",
                caption=HELPFULNESS_CAPTION)  # fmt: skip
    for header in HELPFULNESS_HEADER:
        out.add_column(header, justify="left" if header == "model" else "right")
    for row in helpfulness_rows(table):
        out.add_row(*row)
    return out
