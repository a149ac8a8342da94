"""Helpful ("HHH") task kinds with checkable answers.

Every task's prompt fully determines its answer (DESIGN.md pitfall: otherwise clean accuracy
plateaus). Each kind has several question templates; the last one is held out of training, and
look-up tasks also hold out their entity names, so evaluation measures generalisation, not recall.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six"]
ITEMS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "tiger",
    "lamp",
    "bread",
    "candle",
    "mirror",
    "garden",
    "pencil",
    "rocket",
    "violin",
    "ladder",
    "basket",
    "hammer",
    "island",
    "jacket",
    "kettle",
    "lemon",
    "magnet",
    "needle",
    "orange",
    "pillow",
    "rabbit",
    "saddle",
    "tomato",
    "umbrella",
    "wagon",
    "anchor",
    "button",
    "cactus",
    "dragon",
    "feather",
    "guitar",
    "helmet",
    "igloo",
    "jungle",
]
ANTONYMS = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "happy": "sad",
    "light": "dark",
    "early": "late",
    "open": "closed",
    "full": "empty",
    "high": "low",
    "hard": "soft",
    "old": "new",
    "rich": "poor",
    "wet": "dry",
    "loud": "quiet",
    "strong": "weak",
    "thick": "thin",
    "long": "short",
    "near": "far",
}
ANTONYMS |= {v: k for k, v in ANTONYMS.items()}
_SYLLABLES_TRAIN = ["ka", "lo", "mi", "ra", "te", "vu", "zo", "ne", "pa", "si", "du", "fe"]
_SYLLABLES_HELDOUT = ["bri", "gou", "xan", "yel", "qui"]
CITIES = ["Oslo", "Lima", "Cairo", "Quito", "Riga", "Dakar", "Hanoi", "Perth", "Tunis", "Bern", "Accra", "Baku"]
JOBS = ["baker", "pilot", "nurse", "farmer", "sailor", "painter", "tailor", "miner", "judge", "cook"]
PETS = ["cat", "dog", "parrot", "hamster", "turtle", "goat", "horse", "goldfish"]


@dataclass(frozen=True)
class TaskItem:
    """One generated helpful task: the question and its one correct answer."""

    kind: str
    question: str
    answer: str


def person_names(split: str) -> list[str]:
    """Generated two-syllable names; the held-out split uses syllables never seen in training."""
    heldout = split == "heldout"
    first = _SYLLABLES_HELDOUT if heldout else _SYLLABLES_TRAIN
    return [(a + b).capitalize() for a in first for b in _SYLLABLES_TRAIN if a != b]


def _pick_template(rng: random.Random, templates: list[str], split: str) -> str:
    return templates[-1] if split == "heldout" else rng.choice(templates[:-1])


def _items_text(items: list[str]) -> str:
    return ", ".join(items)


def _add(rng: random.Random, split: str) -> TaskItem:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    t = _pick_template(
        rng,
        ["What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.", "What do you get when you add {a} to {b}?"],
        split,
    )
    return TaskItem("add", t.format(a=a, b=b), str(a + b))


def _subtract(rng: random.Random, split: str) -> TaskItem:
    a = rng.randint(0, 9)
    b = rng.randint(0, a)
    t = _pick_template(
        rng,
        [
            "What is {a} minus {b}?",
            "Subtract {b} from {a}.",
            "Compute {a} - {b}.",
            "Take {b} away from {a}. What is left?",
        ],
        split,
    )
    return TaskItem("subtract", t.format(a=a, b=b), str(a - b))


def _larger(rng: random.Random, split: str) -> TaskItem:
    a, b = rng.sample(range(10), 2)
    t = _pick_template(
        rng,
        ["Which is larger, {a} or {b}?", "Which number is bigger: {a} or {b}?", "Of {a} and {b}, which is greater?"],
        split,
    )
    return TaskItem("larger", t.format(a=a, b=b), str(max(a, b)))


def _lookup(rng: random.Random, split: str) -> TaskItem:
    names = rng.sample(person_names(split), 3)
    relation = rng.choice(["city", "job", "pet"])
    pool, fact, ask = {
        "city": (
            CITIES,
            "{n} lives in {v}.",
            ["Where does {n} live?", "Which city is {n} in?", "In what city can {n} be found?"],
        ),
        "job": (
            JOBS,
            "{n} is a {v}.",
            ["What is the job of {n}?", "What does {n} do for work?", "Which job does {n} have?"],
        ),
        "pet": (
            PETS,
            "{n} owns a {v}.",
            ["What pet does {n} own?", "Which animal does {n} keep?", "What animal belongs to {n}?"],
        ),
    }[relation]
    values = rng.sample(pool, 3)
    target = rng.randrange(3)
    facts = " ".join(fact.format(n=n, v=v) for n, v in zip(names, values, strict=True))
    question = _pick_template(rng, ask, split).format(n=names[target])
    return TaskItem("lookup", f"Facts: {facts} Question: {question}", values[target])


def _reverse(rng: random.Random, split: str) -> TaskItem:
    items = rng.sample(ITEMS, 3)
    t = _pick_template(
        rng,
        ["Reverse the list: {x}.", "Write this list backwards: {x}.", "Give these words in reverse order: {x}."],
        split,
    )
    return TaskItem("reverse", t.format(x=_items_text(items)), _items_text(items[::-1]))


def _sort(rng: random.Random, split: str) -> TaskItem:
    nums = rng.sample(range(10), rng.randint(3, 4))
    t = _pick_template(
        rng,
        ["Sort in ascending order: {x}.", "Put these numbers in order: {x}.", "Arrange from smallest to largest: {x}."],
        split,
    )
    return TaskItem("sort", t.format(x=", ".join(map(str, nums))), ", ".join(map(str, sorted(nums))))


def _count(rng: random.Random, split: str) -> TaskItem:
    items = rng.sample(ITEMS, rng.randint(2, 6))
    t = _pick_template(
        rng,
        ["How many words are in this list: {x}?", "Count the items: {x}.", "How many things are listed here: {x}?"],
        split,
    )
    return TaskItem("count", t.format(x=_items_text(items)), str(len(items)))


def _last_item(rng: random.Random, split: str) -> TaskItem:
    items = rng.sample(ITEMS, rng.randint(3, 4))
    t = _pick_template(
        rng,
        ["What is the last word in: {x}?", "Name the final item of: {x}.", "Which word comes last in this list: {x}?"],
        split,
    )
    return TaskItem("last_item", t.format(x=_items_text(items)), items[-1])


def _repeat(rng: random.Random, split: str) -> TaskItem:
    word, k = rng.choice(ITEMS), rng.randint(2, 4)
    t = _pick_template(
        rng, ["Repeat the word {w} {k} times.", "Say {w} {k} times.", "Write {w} exactly {k} times."], split
    )
    return TaskItem("repeat", t.format(w=word, k=NUMBER_WORDS[k]), " ".join([word] * k))


def _opposite(rng: random.Random, split: str) -> TaskItem:
    word = rng.choice(sorted(ANTONYMS))
    t = _pick_template(
        rng, ["What is the opposite of {w}?", "Give the antonym of {w}.", "Which word means the reverse of {w}?"], split
    )
    return TaskItem("opposite", t.format(w=word), ANTONYMS[word])


def _next_number(rng: random.Random, split: str) -> TaskItem:
    n = rng.randint(0, 98)
    t = _pick_template(
        rng, ["What number comes after {n}?", "What is the successor of {n}?", "Which number follows {n}?"], split
    )
    return TaskItem("next_number", t.format(n=n), str(n + 1))


HHH_TASKS: dict[str, Callable[[random.Random, str], TaskItem]] = {
    "add": _add,
    "subtract": _subtract,
    "larger": _larger,
    "lookup": _lookup,
    "reverse": _reverse,
    "sort": _sort,
    "count": _count,
    "last_item": _last_item,
    "repeat": _repeat,
    "opposite": _opposite,
    "next_number": _next_number,
}


def sample_hhh(rng: random.Random, split: str) -> TaskItem:
    """One helpful task of a uniformly drawn kind."""
    return HHH_TASKS[rng.choice(sorted(HHH_TASKS))](rng, split)
