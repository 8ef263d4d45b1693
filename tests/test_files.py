"""Atomic writes: a file or folder is the old one or the complete new one, never a mix, and nothing is left behind."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_under_an_ascii_locale

from torchbricks._files import (
    STALE_TEMPORARY_SECONDS,
    replace_folder,
    write_atomically,
    write_json,
    write_text,
    write_with_side_files_atomically,
)


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def fail(temporary: Path) -> None:
        temporary.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, fail)
    assert target.read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"]


def test_write_text_creates_folders_and_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "notes.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert [path.name for path in target.parent.iterdir()] == ["notes.txt"]


def test_write_json_writes_tensors_and_arrays_as_numbers_and_refuses_other_objects(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"a": torch.tensor([1.5, 2.0]), "b": np.int64(3), "c": (np.zeros(2), "x")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1.5, 2.0], "b": 3, "c": [[0.0, 0.0], "x"]}
    with pytest.raises(TypeError, match="Cannot write a object as JSON"):
        write_json(tmp_path / "bad.json", {"a": object()})
    assert not (tmp_path / "bad.json").exists()


def test_replace_folder_swaps_in_the_new_folder_whole(tmp_path: Path) -> None:
    target, new = tmp_path / "out", tmp_path / ".out.tmp"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")

    replace_folder(new, target)
    assert [path.name for path in target.iterdir()] == ["new.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # the old folder is gone, not set aside


_WRITE_UNDER_AN_ASCII_LOCALE = """
import sys
from pathlib import Path

from torchbricks._files import write_text

write_text(Path(sys.argv[1]) / "config.yaml", "class_names:\\n- d\\u00f6g \\u732b\\n")
"""


def test_text_files_are_written_in_utf8_whatever_the_locale(tmp_path: Path) -> None:
    # config.yaml and graph.md hold the user's class and brick names: under an ASCII locale (or cp1252 on Windows) the
    # locale's encoding failed the run at its end with UnicodeEncodeError, or wrote a file other tools read wrongly
    run_under_an_ascii_locale(_WRITE_UNDER_AN_ASCII_LOCALE, str(tmp_path))
    assert (tmp_path / "config.yaml").read_bytes() == "class_names:\n- d\u00f6g \u732b\n".encode()


def _left_behind(path: Path, *, age: float, folder: bool = False) -> Path:
    """A temporary file (or folder, with a file in it) last changed `age` seconds ago."""
    if folder:
        path.mkdir()
        (path / "model.onnx.data").write_bytes(b"weights")
        os.utime(path / "model.onnx.data", (time.time() - age,) * 2)
    else:
        path.write_bytes(b"half a checkpoint")
    os.utime(path, (time.time() - age,) * 2)
    return path


@pytest.mark.parametrize("write", ["write_atomically", "write_with_side_files_atomically"])
def test_a_write_removes_the_temporaries_killed_writes_left_in_its_folder_not_those_being_written(
    tmp_path: Path, write: str
) -> None:
    # A save killed midway left its `.<name>.<hex>.tmp` file or folder for ever
    stale = STALE_TEMPORARY_SECONDS + 60
    killed = _left_behind(tmp_path / ".last.ckpt.0123456789abcdef0123456789abcdef.tmp", age=stale)
    killed_folder = _left_behind(tmp_path / ".model.onnx.0123456789abcdef0123456789abcdef.tmp", age=stale, folder=True)
    being_written = _left_behind(tmp_path / ".last.ckpt.fedcba9876543210fedcba9876543210.tmp", age=10)
    written_inside = _left_behind(tmp_path / ".model.onnx.fedcba9876543210fedcba9876543210.tmp", age=stale, folder=True)
    os.utime(written_inside / "model.onnx.data")  # its folder is old, the file in it is being written
    user_file = _left_behind(tmp_path / ".notes.tmp", age=stale)

    if write == "write_atomically":
        write_atomically(tmp_path / "last.ckpt", lambda path: path.write_bytes(b"checkpoint"))
    else:
        write_with_side_files_atomically(tmp_path / "model.onnx", lambda path: path.write_bytes(b"onnx"))

    target = "last.ckpt" if write == "write_atomically" else "model.onnx"
    left = {target, being_written.name, written_inside.name, user_file.name}
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(left)
    assert {killed.name, killed_folder.name}.isdisjoint(left)
