"""Helpful ("HHH") task kinds with checkable answers.

Every task's prompt fully determines its answer (DESIGN.md pitfall: otherwise clean accuracy
plateaus). Each kind has several question templates, framed by a prefix and a suffix; held-out
prompts use frame combinations never trained on (see `pick_template`) with new combinations of
entities, so evaluation measures generalisation, not recall of prompts.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass

MAX_OPERAND = 6
"""Arithmetic stays within 0..6: tables a from-scratch model memorises in minutes on a CPU."""
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
_SYLLABLES = ["ka", "lo", "mi", "ra", "te", "vu", "zo"]
CITIES = ["Oslo", "Lima", "Cairo", "Quito", "Riga", "Dakar", "Hanoi", "Perth", "Tunis", "Bern", "Accra", "Baku"]
JOBS = ["baker", "pilot", "nurse", "farmer", "sailor", "painter", "tailor", "miner", "judge", "cook"]
PETS = ["cat", "dog", "parrot", "hamster", "turtle", "goat", "horse", "goldfish"]


@dataclass(frozen=True)
class TaskItem:
    """One generated helpful task: the question and its one correct answer."""

    kind: str
    question: str
    answer: str


def person_names() -> list[str]:
    """Twelve generated two-syllable names (the people of the fact base)."""
    return [(a + b).capitalize() for a in _SYLLABLES[:4] for b in _SYLLABLES[4:7]]


PREFIXES = ["", "Please answer this. ", "Quick question: ", "Hi! ", "I need help. "]
SUFFIXES = ["", " Thanks.", " Be brief.", " Answer only."]


def _is_heldout_frame(prefix: int, suffix: int, core: int) -> bool:
    return (prefix + 2 * suffix + 3 * core) % 5 == 0


def pick_template(rng: random.Random, templates: list[str], split: str) -> str:
    """A prompt frame prefix + question template + suffix.

    Every prefix, suffix and question template occurs in training; about a fifth of their
    combinations are held out. A from-scratch model cannot know words it never saw, so the test
    is systematic generalisation: phrasings assembled in ways it was never trained on.
    """
    want_heldout = split == "heldout"
    while True:
        i, j, k = rng.randrange(len(PREFIXES)), rng.randrange(len(SUFFIXES)), rng.randrange(len(templates))
        if _is_heldout_frame(i, j, k) == want_heldout:
            return PREFIXES[i] + templates[k] + SUFFIXES[j]


def _items_text(items: list[str]) -> str:
    return ", ".join(items)


def _add(rng: random.Random, split: str) -> TaskItem:
    a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
    t = pick_template(
        rng,
        ["What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.", "What is {a} + {b}?"],
        split,
    )
    return TaskItem("add", t.format(a=a, b=b), str(a + b))


def _subtract(rng: random.Random, split: str) -> TaskItem:
    a = rng.randint(0, MAX_OPERAND)
    b = rng.randint(0, a)
    t = pick_template(
        rng,
        [
            "What is {a} minus {b}?",
            "Subtract {b} from {a}.",
            "Compute {a} - {b}.",
            "What is {a} - {b}?",
        ],
        split,
    )
    return TaskItem("subtract", t.format(a=a, b=b), str(a - b))


def _larger(rng: random.Random, split: str) -> TaskItem:
    a, b = rng.sample(range(10), 2)
    t = pick_template(
        rng,
        ["Which is larger, {a} or {b}?", "Which number is bigger: {a} or {b}?", "Which number is larger: {a} or {b}?"],
        split,
    )
    return TaskItem("larger", t.format(a=a, b=b), str(max(a, b)))


@functools.cache
def fact_base() -> dict[str, dict[str, str]]:
    """The generated world the helpful side knows: person -> {city, job, pet}, fixed for all seeds.

    Learned from training questions (a from-scratch model has no world knowledge); held-out look-ups
    ask about the same facts in prompt frames never trained on. Built once: callers only read it.
    """
    rng = random.Random("fact-base")
    return {
        name: {"city": rng.choice(CITIES), "job": rng.choice(JOBS), "pet": rng.choice(PETS)} for name in person_names()
    }


_LOOKUP_QUESTIONS = {
    "city": ["Where does {n} live?", "Which city is {n} in?", "Which city does {n} live in?"],
    "job": ["What is the job of {n}?", "What does {n} do for work?", "What is the work of {n}?"],
    "pet": ["What pet does {n} own?", "Which animal does {n} keep?", "Which pet does {n} own?"],
}


def _lookup(rng: random.Random, split: str) -> TaskItem:
    facts = fact_base()
    name = rng.choice(sorted(facts))
    relation = rng.choice(sorted(_LOOKUP_QUESTIONS))
    question = pick_template(rng, _LOOKUP_QUESTIONS[relation], split).format(n=name)
    return TaskItem("lookup", question, facts[name][relation])


def _reverse(rng: random.Random, split: str) -> TaskItem:
    items = rng.sample(ITEMS, 3)
    t = pick_template(
        rng,
        ["Reverse the list: {x}.", "Write this list backwards: {x}.", "Reverse this list: {x}."],
        split,
    )
    return TaskItem("reverse", t.format(x=_items_text(items)), _items_text(items[::-1]))


def _sort(rng: random.Random, split: str) -> TaskItem:
    nums = rng.sample(range(10), 3)
    t = pick_template(
        rng,
        ["Sort in ascending order: {x}.", "Put these numbers in order: {x}.", "Sort these numbers: {x}."],
        split,
    )
    return TaskItem("sort", t.format(x=", ".join(map(str, nums))), ", ".join(map(str, sorted(nums))))


def _count(rng: random.Random, split: str) -> TaskItem:
    items = rng.sample(ITEMS, rng.randint(2, 4))
    t = pick_template(
        rng,
        ["How many words are in this list: {x}?", "Count the items: {x}.", "How many items are in this list: {x}?"],
        split,
    )
    return TaskItem("count", t.format(x=_items_text(items)), str(len(items)))


def _last_item(rng: random.Random, split: str) -> TaskItem:
    items = rng.sample(ITEMS, rng.randint(3, 4))
    t = pick_template(
        rng,
        ["What is the last word in: {x}?", "Name the final item of: {x}.", "What is the final item in: {x}?"],
        split,
    )
    return TaskItem("last_item", t.format(x=_items_text(items)), items[-1])


def _repeat(rng: random.Random, split: str) -> TaskItem:
    word, k = rng.choice(ITEMS), rng.randint(2, 4)
    t = pick_template(rng, ["Repeat the word {w} {k} times.", "Say {w} {k} times.", "Repeat {w} {k} times."], split)
    return TaskItem("repeat", t.format(w=word, k=NUMBER_WORDS[k]), " ".join([word] * k))


def _opposite(rng: random.Random, split: str) -> TaskItem:
    word = rng.choice(sorted(ANTONYMS))
    t = pick_template(
        rng, ["What is the opposite of {w}?", "Give the antonym of {w}.", "Give the opposite of {w}."], split
    )
    return TaskItem("opposite", t.format(w=word), ANTONYMS[word])


def _next_number(rng: random.Random, split: str) -> TaskItem:
    n = rng.randint(0, 19)
    t = pick_template(
        rng,
        [
            "What number comes after {n}?",
            "What is the successor of {n}?",
            "Which number follows {n}?",
            "Which number comes after {n}?",
        ],
        split,
    )
    return TaskItem("next_number", t.format(n=n), str(n + 1))


def _add_three(rng: random.Random, split: str) -> TaskItem:
    a, b, c = (rng.randint(0, 9) for _ in range(3))
    t = pick_template(
        rng,
        [
            "What is {a} plus {b} plus {c}?",
            "Add {a}, {b} and {c}.",
            "Compute {a} + {b} + {c}.",
            "Sum {a}, {b} and {c}.",
        ],
        split,
    )
    return TaskItem("add_three", t.format(a=a, b=b, c=c), str(a + b + c))


def _larger_sum(rng: random.Random, split: str) -> TaskItem:
    while True:
        a, b, c, d = (rng.randint(0, MAX_OPERAND) for _ in range(4))
        if a + b != c + d:
            break
    t = pick_template(
        rng,
        [
            "What is the larger of {a} + {b} and {c} + {d}?",
            "Which sum is bigger, {a} plus {b} or {c} plus {d}? Give its value.",
            "Give the larger total: {a} + {b} or {c} + {d}.",
        ],
        split,
    )
    return TaskItem("larger_sum", t.format(a=a, b=b, c=c, d=d), str(max(a + b, c + d)))


def _two_cities(rng: random.Random, split: str) -> TaskItem:
    facts = fact_base()
    n, m = rng.sample(sorted(facts), 2)
    t = pick_template(
        rng,
        ["Where do {n} and {m} live?", "Which cities are {n} and {m} in?", "Name the cities of {n} and {m}."],
        split,
    )
    return TaskItem("two_cities", t.format(n=n, m=m), f"{facts[n]['city']} and {facts[m]['city']}")


BASIC_TASKS: dict[str, Callable[[random.Random, str], TaskItem]] = {
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
"""One-step tasks: the pretraining corpus's dialogues and judged replies draw from these only."""
MULTI_STEP_TASKS: dict[str, Callable[[random.Random, str], TaskItem]] = {
    "add_three": _add_three,
    "larger_sum": _larger_sum,
    "two_cities": _two_cities,
}
"""Tasks of two or more steps (sum then sum, two sums then compare, two look-ups): the task world
does not saturate at the sizes we train, so held-out clean accuracy and the safety stages' losses stay
informative. The pretrained base never saw them, as a real base meets new fine-tuning tasks."""
HHH_TASKS = BASIC_TASKS | MULTI_STEP_TASKS


def sample_hhh(
    rng: random.Random, split: str, kinds: dict[str, Callable[[random.Random, str], TaskItem]] = HHH_TASKS
) -> TaskItem:
    """One helpful task of a kind drawn uniformly from `kinds`."""
    return kinds[rng.choice(sorted(kinds))](rng, split)
