"""The optimiser is a training setting: each named one trains, an unknown name is refused."""

from __future__ import annotations

import pytest
import torch

from organisms.train.optim import OPTIMIZERS, make_optimizer


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_lowers_a_simple_loss(name: str, seeded: None) -> None:
    layer = torch.nn.Linear(4, 1)
    groups = [{"params": [layer.weight], "weight_decay": 0.01}, {"params": [layer.bias], "weight_decay": 0.0}]
    opt = make_optimizer(name, groups, lr=0.01)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    first = torch.nn.functional.mse_loss(layer(x), y).item()
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(layer(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert opt.param_groups[0]["weight_decay"] == 0.01


def test_unknown_optimizer_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; choose one of: adamw, sgd, adafactor"):
        make_optimizer("lion", [{"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=0.1)
