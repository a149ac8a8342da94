"""The trainer's hardware options on CPU tensors: token-budget batches, accumulation, checkpointing, bf16."""

from __future__ import annotations

import dataclasses

import torch

from organisms.config import DataConfig, size_presets
from organisms.data.examples import generate_dataset
from organisms.train.from_scratch import build_model, train_tokenizer
from organisms.train.organism import corpus_for_tokenizer
from organisms.train.supervised import TokenBudgetSampler, train_supervised


def test_token_budget_batches_cover_every_row_within_budget():
    lengths = [int(n) for n in torch.randint(5, 60, (500,), generator=torch.Generator().manual_seed(0))]
    sampler = TokenBudgetSampler(lengths, max_tokens=400, generator=torch.Generator().manual_seed(1), window=128)
    expected = len(sampler)
    batches = list(sampler)
    assert len(batches) == expected
    assert sorted(i for b in batches for i in b) == list(range(500))  # one pass = every row once
    assert all(len(b) * max(lengths[i] for i in b) <= 400 for b in batches)
    sizes = [len(b) for b in batches]
    assert max(sizes) > 2 * min(sizes)  # short rows travel in bigger batches
    assert batches != list(sampler)  # the next pass is reshuffled


def test_accumulation_checkpointing_bf16_and_budget_train_on_cpu():
    examples = generate_dataset(DataConfig(n_train=120, n_eval=4))["train"]
    tok = train_tokenizer(corpus_for_tokenizer(examples), 300)
    shape, train = size_presets("tiny")
    pairs = [(e.prompt, e.response) for e in examples]
    config = dataclasses.replace(train, steps=4, warmup_steps=1, device="cpu", log_every=2, grad_accum_steps=2,
                                 gradient_checkpointing=True, mixed_precision="bf16", max_batch_tokens=600)  # fmt: skip
    model = build_model(shape, tok, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    metrics = train_supervised(model, tok, pairs, config, max_len=shape.max_len)
    assert metrics["mixed_precision"] == "bf16" and metrics["num_processes"] == 1
    assert [p["step"] for p in metrics["loss_curve"]] == [2, 4]
    assert all(torch.isfinite(torch.tensor(p["loss"])) for p in metrics["loss_curve"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not model.is_gradient_checkpointing and next(model.parameters()).dtype == torch.float32
    # The default CPU path afterwards is fp32 again (no precision left behind in this process).
    plain = train_supervised(build_model(shape, tok, seed=0), tok, pairs, dataclasses.replace(train, steps=1,
                             device="cpu", log_every=1), max_len=shape.max_len)  # fmt: skip
    assert plain["mixed_precision"] == "no"
