"""The commands as a user meets them in a terminal: run on a pseudo-terminal (Lightning's own progress bar, the
terminal's width), stopped with Ctrl-C sent to the process group, and resumed."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from helpers import run_in_terminal, terminal_lines

TORCHBRICKS = [sys.executable, "-m", "torchbricks"]
TIMEOUT = 300
# Training to the first checkpoint takes about 20 s; a run that Ctrl-C left waiting for TensorBoard's writer (120 s)
# fails the test.
STOPPING_TIMEOUT = 120
WARNING = re.compile(r"\.py:\d+: ")  # a Python warning reads `<file>.py:<line>: <category>: <message>`


def _train_overrides(shapes_root: Path, experiments: Path, name: str) -> list[str]:
    """The packaged classification task on the session's 8 training shapes at 32 px, as shipped otherwise (its
    loader worker, checkpoints, pictures; the ONNX export left out, tested with `export` below)."""
    return [
        "task=classification",
        f"data.root={shapes_root / 'classification'}",
        f"experiment.path_experiments={experiments}",
        f"experiment.name={name}",
        "data.image_size=32",
        "data.batch_size=4",
        "export_onnx=false",
    ]


# Lightning's lines that no GPU or TPU is there, that it loads the training loader to count the steps, and its table of
# the test values, which the job's summary says again
UNACTIONABLE = ("GPU available: False", "TPU available: False", "to estimate number of stepping batches", "Test metric")


def _summarised_once(lines: list[str], output: str) -> None:
    """A finished train's output: none of `UNACTIONABLE`; the summary once, with the test metric and the test losses
    (which were only in Lightning's table)."""
    for noise in UNACTIONABLE:
        assert noise not in output, lines
    assert sum(line.startswith("Experiment folder: ") for line in lines) == 1, lines
    for name in ("accuracy", "loss", "loss_ce"):
        summary = [line for line in lines if re.fullmatch(rf"  test/(\S+/)?{name}: \d+\.\d{{4}}", line)]
        assert len(summary) == 1, (name, lines)


def _clean(status: int, output: str) -> list[str]:
    assert status == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert not WARNING.search(output), output[-3000:]
    return terminal_lines(output)


@pytest.mark.slow
def test_train_evaluate_predict_export_and_check_data_in_a_terminal(shapes_root: Path, tmp_path: Path) -> None:
    status, output = run_in_terminal(
        [*TORCHBRICKS, "train", *_train_overrides(shapes_root, tmp_path, "run"), "trainer.max_epochs=2"], TIMEOUT
    )

    lines = _clean(status, output)
    # One bar, its epochs counted from 1 as best_epoch and the curves count them (Lightning's bar said `Epoch 1` for
    # the last of two), without Lightning's `v_num`.
    bars = [line for line in lines if line.startswith("Epoch ")]
    assert len(bars) == 1, lines
    assert bars[0].startswith("Epoch 2/2: 100%|"), bars
    assert "v_num" not in output
    # Lightning's line when training ends starts a line of its own (it was glued to the end of the bar's line).
    assert "`Trainer.fit` stopped: `max_epochs=2` reached." in lines, lines
    _summarised_once(lines, output)
    assert re.search(r"^  test/classification/accuracy: \d\.\d{4}$", "\n".join(lines), re.MULTILINE)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best_epoch"] in (1, 2)

    status, output = run_in_terminal([*TORCHBRICKS, "evaluate", str(tmp_path / "run")], TIMEOUT)
    lines = _clean(status, output)
    assert sum(line.startswith("metric ") for line in lines) == 1, lines
    assert sum(line.startswith("Testing DataLoader 0: 100%|") for line in lines) == 1, lines
    assert (tmp_path / "run" / "evaluation.json").is_file()

    images = shapes_root / "classification" / "val"
    status, output = run_in_terminal(
        [*TORCHBRICKS, "predict", str(tmp_path / "run"), str(images), "--out", str(tmp_path / "out")], TIMEOUT
    )
    lines = _clean(status, output)
    assert sum(line.startswith("Predicted 4 images in ") for line in lines) == 1, lines
    assert (tmp_path / "out" / "predictions.csv").read_text().count("\n") == 5  # the header and 4 images

    status, output = run_in_terminal([*TORCHBRICKS, "export", str(tmp_path / "run")], TIMEOUT)
    lines = _clean(status, output)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Wrote {tmp_path / 'run' / 'deploy.onnx'} and deploy.onnx.json")

    status, output = run_in_terminal([*TORCHBRICKS, "check-data", str(shapes_root / "classification")], TIMEOUT)
    lines = _clean(status, output)
    assert lines[0].startswith(f"Data '{shapes_root / 'classification'}': classification, image_folder layout")
    assert lines[-1] == "No problem found."


@pytest.mark.slow
@pytest.mark.parametrize("processes", [[], ["trainer.devices=2", "trainer.strategy=ddp"]], ids=["one-process", "ddp"])
def test_ctrl_c_in_a_terminal_ends_with_one_message_and_resume_continues(
    shapes_root: Path, tmp_path: Path, processes: list[str]
) -> None:
    overrides = [*_train_overrides(shapes_root, tmp_path, "stopped"), "n_visualized=0", *processes]
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"

    status, output = run_in_terminal(
        [*TORCHBRICKS, "train", *overrides, "trainer.max_epochs=500"], STOPPING_TIMEOUT, interrupt_when=last.exists
    )

    lines = terminal_lines(output)
    assert status == 130, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert not WARNING.search(output), output[-3000:]
    stopped = [line for line in lines if line.startswith("torchbricks: error: ")]
    assert len(stopped) == 1, lines
    assert "stopped by Ctrl-C" in stopped[0]
    assert "resume=true experiment.name=stopped" in stopped[0]
    # The message is the last line: the bar closed at the process's exit was drawn again below it.
    assert lines[-1] == stopped[0], lines[-3:]
    assert not (tmp_path / "stopped" / "metrics.json").exists()

    trained = int(torch.load(last, map_location="cpu", weights_only=True)["epoch"]) + 1
    status, output = run_in_terminal(
        [*TORCHBRICKS, "train", *overrides, f"trainer.max_epochs={trained + 1}", "resume=true"], TIMEOUT
    )

    lines = _clean(status, output)
    assert "v_num" not in output  # Lightning showed the resumed run's CSV log version, `resumed_<time>`, as `v_num=167_`
    bars = [line for line in lines if line.startswith("Epoch ")]
    assert len(bars) == 1, bars
    assert bars[0].startswith(f"Epoch {trained + 1}/{trained + 1}: 100%|"), bars
    assert json.loads((tmp_path / "stopped" / "metrics.json").read_text())["epochs"] == trained + 1
    _summarised_once(lines, output)


COMMAND_LINE = re.compile(r"^\s*(?:examples?:\s*)?torchbricks\s")
COMMANDS = ["train", "evaluate", "predict", "export", "check-data", "make-dataset"]


def _help(command: list[str], columns: int) -> list[str]:
    environment = {**os.environ, "COLUMNS": str(columns)}  # as a shell exports it; argparse reads it first
    status, output = run_in_terminal([*TORCHBRICKS, *command, "--help"], 60, columns=columns, environment=environment)
    assert status == 0, output
    return output.replace("\r\n", "\n").splitlines()


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)], ids=["torchbricks", *COMMANDS])
def test_help_fits_a_narrow_terminal_and_a_wide_one_saying_the_same(command: list[str]) -> None:
    narrow, wide = _help(command, 60), _help(command, 200)

    # Only a command line to copy (`torchbricks ...`) or a word longer than the room left (a path, a key) may pass
    # the edge, which the terminal then wraps; descriptions were written on lines of up to 383 characters at any width.
    for lines, columns in ((narrow, 60), (wide, 200)):
        too_long = [line for line in lines if len(line) > columns and not COMMAND_LINE.match(line)]
        assert all(len(line.rstrip().rsplit(" ", 1)[0]) <= columns for line in too_long), too_long
    assert max(map(len, wide)) > 100  # the wide terminal's width is used, not only the narrow one's
    assert " ".join(narrow).split() == " ".join(wide).split()  # the same words, nothing cut
