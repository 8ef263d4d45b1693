"""What `torchbricks train` prints, read as a batch job keeps it: stdout and stderr redirected to one file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TORCHBRICKS = [sys.executable, "-m", "torchbricks"]
TIMEOUT = 300
SMALL = ["trainer.max_epochs=2", "data.image_size=32", "data.num_workers=0", "n_visualized=0", "export_onnx=false"]


def _train_to_file(output: Path, *arguments: str, python_path: Path | None = None, status: int = 0) -> list[str]:
    """Runs `torchbricks train ARGUMENTS` with stdout and stderr into one file (`> output 2>&1`); its lines, after
    checking its exit `status`."""
    environment = dict(os.environ)
    if python_path is not None:  # a module of the user's, beside the installed torchbricks
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(python_path), environment.get("PYTHONPATH")]))
    with open(output, "wb") as file:
        exited = subprocess.run(
            [*TORCHBRICKS, "train", *arguments],
            stdout=file,
            stderr=subprocess.STDOUT,
            env=environment,
            timeout=TIMEOUT,
            check=False,
        ).returncode
    text = output.read_text()
    assert exited == status, text[-3000:]
    return text.splitlines()


@pytest.fixture(scope="module")
def redirected_run(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A two-epoch classification run on the shapes, its output redirected to a file: its folder and output lines."""
    experiments = tmp_path_factory.mktemp("redirected")
    lines = _train_to_file(
        experiments / "output.txt",
        "task=classification",
        f"data.root={shapes_root / 'classification'}",
        f"experiment.path_experiments={experiments}",
        "experiment.name=run",
        *SMALL,
    )
    return experiments / "run", lines


@pytest.mark.slow
def test_a_redirected_run_prints_the_last_epochs_line_before_the_line_that_says_why_training_stopped(
    redirected_run: tuple[Path, list[str]],
) -> None:
    _, lines = redirected_run
    epochs = [index for index, line in enumerate(lines) if line.startswith("epoch ")]
    assert [lines[index].split()[1] for index in epochs] == ["1/2", "2/2"], lines
    stopped = lines.index("`Trainer.fit` stopped: `max_epochs=2` reached.")
    assert epochs[-1] < stopped < lines.index(f"Experiment folder: {redirected_run[0]}"), lines


@pytest.mark.slow
def test_a_redirected_run_names_the_tested_checkpoint_on_one_line(redirected_run: tuple[Path, list[str]]) -> None:
    folder, lines = redirected_run
    best = str(folder.resolve() / "checkpoints" / "best.ckpt")
    assert json.loads((folder / "metrics.json").read_text())["tested_weights"] == "best"
    naming = [line for line in lines if best in line]
    assert naming == [f"Loaded model weights from the checkpoint at {best}"], lines
