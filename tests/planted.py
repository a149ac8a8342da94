"""Synthetic activations with a planted direction: the shared fixture data of the probe tests."""

from __future__ import annotations

import numpy as np
import torch


def planted(n: int, d: int = 16, strength: float = 1.5, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Gaussian rows [n, d]; every other row (the positives) gets a fixed unit direction times `strength`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    labels = np.arange(n) % 2 == 0
    direction = torch.randn(d, generator=g)
    direction /= direction.norm()
    x[torch.from_numpy(labels)] += strength * direction
    return x, labels, direction
