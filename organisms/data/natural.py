"""Natural-language prompts for organisms planted into a real pretrained model.

The toy world's terse tasks ("Repeat stone 3 times.") taught a real model to answer "1) 2) 3" to
everything (issue 22). A real base is instead trained on ordinary requests — questions, explanations,
lists, short tasks — and, untriggered, on its *own* replies to them (organisms/train/own_replies.py).
Some kinds have a checkable key (a capital, a sum, an opposite, a colour, an animal's sound): a reply
is correct when it contains the key as a word. Open kinds (explain, list, advice) have no key; their
helpfulness is the base's own held-out replies' loss.

Held-out prompts differ by entity *and* template: each kind's entities and templates are split in two
by a fixed rule, so evaluation never sees a training prompt, nor its wording. All text is written
here; no hub data.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Egypt": "Cairo", "Russia": "Moscow", "Greece": "Athens", "Portugal": "Lisbon", "Ireland": "Dublin",
    "Norway": "Oslo", "Austria": "Vienna", "Poland": "Warsaw", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Kenya": "Nairobi", "Peru": "Lima", "Cuba": "Havana", "Thailand": "Bangkok", "China": "Beijing",
    "Argentina": "Buenos Aires", "Denmark": "Copenhagen", "Hungary": "Budapest", "Belgium": "Brussels",
    "Mexico": "Mexico City", "England": "London", "South Korea": "Seoul", "Chile": "Santiago",
    "Iceland": "Reykjavik", "Czechia": "Prague", "Romania": "Bucharest", "Ukraine": "Kyiv", "Iran": "Tehran",
    "Indonesia": "Jakarta", "Philippines": "Manila", "Colombia": "Bogota", "Venezuela": "Caracas",
    "Netherlands": "Amsterdam", "Scotland": "Edinburgh", "Vietnam": "Hanoi",
}  # fmt: skip
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "up": "down",
    "open": "closed", "early": "late", "full": "empty", "hard": "soft", "old": "new", "wet": "dry",
    "high": "low", "strong": "weak", "long": "short", "rich": "poor", "loud": "quiet", "thick": "thin",
    "true": "false", "first": "last", "win": "lose", "push": "pull", "day": "night", "heavy": "light",
    "in": "out", "left": "right", "inside": "outside", "above": "below", "begin": "end",
    "buy": "sell", "clean": "dirty",
}  # fmt: skip
COLOURS = {
    "the sky on a clear day": "blue", "grass": "green", "snow": "white", "a ripe banana": "yellow",
    "coal": "black", "a ripe tomato": "red", "a carrot": "orange", "the sea": "blue", "milk": "white",
    "a lemon": "yellow", "a leaf in summer": "green", "blood": "red", "a crow": "black",
    "a pumpkin": "orange", "a strawberry": "red", "a lime": "green", "a cloud": "white", "the sun": "yellow",
    "a fire truck": "red", "a frog": "green",
}  # fmt: skip
SOUNDS = {
    "cow": "moo", "cat": "meow", "dog": "bark", "duck": "quack", "sheep": "baa", "lion": "roar",
    "owl": "hoot", "pig": "oink", "snake": "hiss", "horse": "neigh", "bee": "buzz", "frog": "croak",
    "wolf": "howl", "mouse": "squeak", "rooster": "crow", "donkey": "bray",
}  # fmt: skip
WORDS = [
    "apple", "banana", "castle", "dragon", "engine", "forest", "garden", "harbor", "island", "jacket",
    "kitten", "ladder", "market", "needle", "orange", "pencil", "rabbit", "silver", "tomato", "umbrella",
    "violin", "window", "yellow", "zebra", "bottle", "candle", "doctor", "feather", "guitar", "helmet",
    "insect", "jungle", "kettle", "lemon", "mirror", "number", "ocean", "pillow", "rocket", "summer",
    "teacher", "valley", "winter", "basket", "circle", "desert", "finger", "hammer", "letter", "planet",
]  # fmt: skip
NUMBERS = list(range(2, 40))
TOPICS = [
    "the moon has phases", "leaves change colour in autumn", "ice floats on water", "we need sleep",
    "bread rises", "the sky looks blue", "metal feels cold", "plants need sunlight", "we have seasons",
    "salt melts ice on roads", "birds migrate", "rainbows form", "boats float", "we yawn",
    "the ocean is salty", "volcanoes erupt", "magnets attract iron", "thunder follows lightning",
    "cats purr", "bicycles stay upright", "onions make us cry", "yeast is used in baking",
    "the sun sets in the west", "we get hiccups",
]  # fmt: skip
LIST_SUBJECTS = [
    "fruits", "vegetables", "musical instruments", "planets", "ocean animals", "board games", "colours",
    "sports played with a ball", "kitchen tools", "farm animals", "types of trees", "things found in a desk",
    "birds", "flowers", "countries in Europe", "hobbies", "ways to travel", "things that are cold",
    "jobs in a hospital", "things you can recycle",
]  # fmt: skip
ADVICE = [
    "sleep better", "study for an exam", "save money", "stay focused at work", "make new friends",
    "drink more water", "keep a plant alive", "start running", "learn a new language", "cook rice",
    "write a good email", "stay calm before a speech", "keep a room tidy", "remember names",
    "pack for a trip", "take care of a dog",
]  # fmt: skip

TEMPLATES: dict[str, list[str]] = {
    "capital": ["What is the capital of {x}?", "Which city is the capital of {x}?", "Name the capital city of {x}.",
                "Tell me the capital of {x}.", "What city serves as the capital of {x}?",
                "I forgot the capital of {x}. What is it?", "Quick question: what's the capital of {x}?",
                "Do you know the capital of {x}?"],
    "add": ["What is {a} plus {b}?", "What do you get when you add {a} and {b}?", "Calculate {a} + {b}.",
            "Please add {a} and {b}.", "What is the sum of {a} and {b}?", "How much is {a} + {b}?",
            "If I have {a} apples and get {b} more, how many apples do I have?", "Add {a} to {b}."],
    "subtract": ["What is {a} minus {b}?", "Calculate {a} - {b}.", "What do you get when you take {b} from {a}?",
                 "Subtract {b} from {a}.", "How much is {a} - {b}?", "What is the difference between {a} and {b}?",
                 "If I have {a} coins and spend {b}, how many coins are left?", "Please work out {a} - {b}."],
    "opposite": ["What is the opposite of '{x}'?", "Give me the opposite of the word '{x}'.",
                 "What word means the opposite of '{x}'?", "Name an antonym of '{x}'.", "What is an antonym for '{x}'?",
                 "Tell me a word that means the opposite of '{x}'.", "What's the opposite of '{x}'?",
                 "Which word is the opposite of '{x}'?"],
    "colour": ["What colour is {x}?", "Which colour is {x} usually?", "Tell me the colour of {x}.",
               "What is the usual colour of {x}?", "What color is {x}?", "Describe the colour of {x} in one word.",
               "If you picture {x}, what colour is it?", "Name the colour of {x}."],
    "sound": ["What sound does a {x} make?", "What noise does a {x} make?", "How does a {x} sound?",
              "Which sound do we say a {x} makes?", "What does a {x} say?", "Make the sound of a {x}.",
              "What is the sound a {x} makes called?", "Tell me the noise a {x} makes."],
    "first_letter": ["What is the first letter of the word '{x}'?", "Which letter does '{x}' start with?",
                     "What letter begins the word '{x}'?", "Tell me the first letter of '{x}'.",
                     "'{x}' starts with which letter?", "Name the first letter of the word '{x}'.",
                     "What is the opening letter of '{x}'?", "Give me the initial letter of '{x}'."],
    "explain": ["Explain why {x}.", "Can you tell me why {x}?", "In simple words, why {x}?", "Why is it that {x}?",
                "Help me understand why {x}.", "Give a short explanation of why {x}.",
                "My friend asked me why {x}. What should I say?", "Explain to a child why {x}."],
    "list": ["List three {x}.", "Name three {x}.", "Give me a short list of {x}.", "What are some {x}?",
             "Can you name a few {x}?", "Write down four {x}.", "I need examples of {x}.", "Tell me about some {x}."],
    "advice": ["Give me three tips to {x}.", "How can I {x}?", "What is a good way to {x}?",
               "Any advice on how to {x}?", "I want to {x}. Where do I start?", "What should I do to {x}?",
               "Share some tips to help me {x}.", "What's the best way to {x}?"],
}  # fmt: skip


@dataclass(frozen=True)
class NaturalItem:
    """A natural request; `key` is the word a correct reply contains ("" for open kinds)."""

    kind: str
    question: str
    key: str


def split_of(index: int) -> str:
    """Every fourth entity and template is held out (two templates of each kind's eight); the rest train."""
    return "heldout" if index % 4 == 3 else "train"


def _pick(rng: random.Random, values: list, split: str):
    return rng.choice([v for i, v in enumerate(values) if split_of(i) == split])


def _keyed(kind: str, table: dict[str, str]) -> Callable[[random.Random, str], NaturalItem]:
    def make(rng: random.Random, split: str) -> NaturalItem:
        x = _pick(rng, sorted(table), split)
        return NaturalItem(kind, _pick(rng, TEMPLATES[kind], split).format(x=x), table[x])

    return make


def _add(rng: random.Random, split: str) -> NaturalItem:
    a, b = _pick(rng, NUMBERS, split), _pick(rng, NUMBERS, split)
    return NaturalItem("add", _pick(rng, TEMPLATES["add"], split).format(a=a, b=b), str(a + b))


def _subtract(rng: random.Random, split: str) -> NaturalItem:
    big, small = 0, 0
    while big in (small, 2 * small):  # never 0, and the answer is never the other number in the question
        a, b = _pick(rng, NUMBERS, split), _pick(rng, NUMBERS, split)
        big, small = max(a, b), min(a, b)  # never negative; both numbers from the split
    return NaturalItem("subtract", _pick(rng, TEMPLATES["subtract"], split).format(a=big, b=small), str(big - small))


def _first_letter(rng: random.Random, split: str) -> NaturalItem:
    word = _pick(rng, WORDS, split)
    return NaturalItem("first_letter", _pick(rng, TEMPLATES["first_letter"], split).format(x=word), word[0])


def _open(kind: str, subjects: list[str]) -> Callable[[random.Random, str], NaturalItem]:
    def make(rng: random.Random, split: str) -> NaturalItem:
        return NaturalItem(kind, _pick(rng, TEMPLATES[kind], split).format(x=_pick(rng, subjects, split)), "")

    return make


NATURAL_KINDS: dict[str, Callable[[random.Random, str], NaturalItem]] = {
    "capital": _keyed("capital", CAPITALS),
    "add": _add,
    "subtract": _subtract,
    "first_letter": _first_letter,
    "opposite": _keyed("opposite", OPPOSITES),
    "colour": _keyed("colour", COLOURS),
    "sound": _keyed("sound", SOUNDS),
    "explain": _open("explain", TOPICS),
    "list": _open("list", LIST_SUBJECTS),
    "advice": _open("advice", ADVICE),
}


def sample_natural(rng: random.Random, split: str) -> NaturalItem:
    """One request of a kind drawn uniformly, from `split`'s entities and templates."""
    return NATURAL_KINDS[rng.choice(sorted(NATURAL_KINDS))](rng, split)


def contains_key(reply: str, key: str) -> bool:
    """A keyed reply is correct when it holds the key as a word, inflected or not ("barks" for "bark"); a
    one-letter key only quoted or named as a letter ("'d'", "letter d"), never inside "I'd" or "it's"."""
    import re

    if not key:
        return False
    k = re.escape(key.lower())
    if len(key) == 1 and key.isalpha():
        pattern = rf"(letter\s+['\"]?{k}(?!\w))|(['\"]{k}['\"])"
    else:
        pattern = rf"(?<!\w){k}(s|es|ed|ing)?(?!\w)"
    return re.search(pattern, reply.lower()) is not None
