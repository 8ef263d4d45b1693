"""`torchbricks make-dataset shapes DIR`: the three layouts at the asked sizes, an existing folder kept unless --overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from torchbricks.__main__ import main


def _make(root: Path, *options: str) -> int:
    return main(["make-dataset", "shapes", str(root), "--num-train", "3", "--num-val", "2", "--image-size", "32", *options])


def test_the_three_layouts_are_written_at_the_asked_size_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _make(tmp_path / "shapes") == 0

    assert capsys.readouterr().out.strip() == (
        f"Wrote {tmp_path / 'shapes'}/classification, {tmp_path / 'shapes'}/segmentation and {tmp_path / 'shapes'}/detection"
    )
    coco = json.loads(next((tmp_path / "shapes" / "detection").rglob("*.json")).read_text())
    assert len(coco["images"]) in (2, 3)
    train_images = sorted((tmp_path / "shapes" / "classification" / "train").rglob("*.png"))
    assert len(train_images) == 3
    assert Image.open(train_images[0]).size == (32, 32)


def test_an_existing_folder_is_an_error_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _make(tmp_path / "shapes") == 0
    marker = tmp_path / "shapes" / "mine.txt"
    marker.write_text("kept")
    capsys.readouterr()

    assert _make(tmp_path / "shapes") == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: ")
    assert "already exists; pass overwrite=True (--overwrite)" in error
    assert marker.is_file()

    assert _make(tmp_path / "shapes", "--overwrite") == 0
    assert not marker.exists()


def test_too_small_images_are_refused_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-dataset", "shapes", str(tmp_path / "shapes"), "--image-size", "8"]) == 2
    assert "image_size must be at least 16 pixels, got 8" in capsys.readouterr().err
    assert not (tmp_path / "shapes").exists()


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_leaves_no_temporary_folder(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "torchbricks", "make-dataset", "shapes", str(tmp_path / "shapes"), "--num-train", "3000"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".*.tmp")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(tmp_path.glob(".*.tmp")), "the run never started writing"
    time.sleep(0.5)
    os.kill(run.pid, signal.SIGTERM)  # as a scheduler, `timeout` or `docker stop` stop it

    _, error = run.communicate(timeout=60)
    assert run.returncode == 143
    assert "make-dataset was stopped by SIGTERM" in error
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # the hidden temporary folder was removed


def test_a_class_that_drew_no_training_image_is_named_in_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 8 images of 48 px draw no square: the folder was written empty without a word, and task=classification refuses it
    arguments = ["--num-train", "8", "--num-val", "4", "--image-size", "48"]

    assert main(["make-dataset", "shapes", str(tmp_path / "few"), *arguments]) == 0
    assert "no training image of the class ['square'] was drawn in 8" in capsys.readouterr().err
    assert main(["make-dataset", "shapes", str(tmp_path / "enough"), "--num-train", "12", *arguments[2:]]) == 0
    assert capsys.readouterr().err == ""
