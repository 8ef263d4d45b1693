from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DDP_JOB = Path(__file__).parent / "ddp_job.py"


def run_ddp_job(path_experiments: Path, devices: int) -> dict[str, Any]:
    name = f"devices_{devices}"
    completed = subprocess.run(
        [sys.executable, str(DDP_JOB), str(path_experiments), name, str(devices)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    path = path_experiments / name
    return {file.stem: json.loads(file.read_text()) for file in path.glob("*.json")}


@pytest.mark.slow
def test_metrics_on_two_ddp_processes_agree_with_one_process(tmp_path: Path) -> None:
    one = run_ddp_job(tmp_path, devices=1)
    two = run_ddp_job(tmp_path, devices=2)

    assert (one["world_size"], two["world_size"]) == (1, 2)
    # Each of the two processes tests half of the 96 samples; torchmetrics gathers the states before computing.
    assert sum(map(sum, two["metrics_test"]["confusion_matrix"])) == 96
    assert two["metrics_test"]["confusion_matrix"] == one["metrics_test"]["confusion_matrix"]
    assert two["metrics_test"]["accuracy"] == pytest.approx(one["metrics_test"]["accuracy"])
    # Training ran on both processes and validation metrics were synchronised too.
    assert sum(map(sum, two["metrics_validation"]["confusion_matrix"])) == 96
