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

from torchbricks import _files
from torchbricks._files import (
    STALE_TEMPORARY_SECONDS,
    recover_folder,
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


def _folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "data.txt").write_text(text)
    return path


def _two_rename_swap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the two folders cannot be swapped in one step (not Linux, a file system without RENAME_EXCHANGE)."""
    monkeypatch.setattr(_files, "_exchange", lambda first, second: False)


def test_a_swap_killed_between_its_two_renames_is_undone_by_the_next_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kill: the old folder renamed aside, the process gone before the new one took its name. Nothing put it back
    _two_rename_swap(monkeypatch)
    target = _folder(tmp_path / "shapes", "old")
    killed = _folder(tmp_path / ".shapes.0123456789abcdef0123456789abcdef.tmp", "killed")
    aside = _files._set_aside(target)
    assert not target.exists()

    assert recover_folder(target) == target
    assert (target / "data.txt").read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["shapes", killed.name])

    _files._set_aside(target)  # killed again; the next writer puts it back, then replaces it
    replace_folder(_folder(tmp_path / ".shapes.fedcba9876543210fedcba9876543210.tmp", "new"), target)
    assert (target / "data.txt").read_text() == "new"
    assert not aside.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["shapes", killed.name])


def test_a_stale_set_aside_folder_beside_its_target_is_removed_a_recent_one_kept(tmp_path: Path) -> None:
    target = _folder(tmp_path / "out", "current")
    aside = _folder(tmp_path / ".out.0123456789abcdef0123456789abcdef.old", "older")
    other = _folder(tmp_path / ".other.0123456789abcdef0123456789abcdef.old", "another target's")
    assert recover_folder(target) is None
    assert aside.exists()  # may be another process's swap under way
    assert recover_folder(target, now=time.time() + STALE_TEMPORARY_SECONDS + 1) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["out", other.name])


@pytest.mark.parametrize("command", ["make-dataset", "predict"])
def test_make_dataset_and_predict_put_back_the_folder_a_killed_replacement_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    # Without the recovery the folder looked absent: the command wrote a new one without --overwrite and the old data
    # stayed hidden in `.old` for ever
    _two_rename_swap(monkeypatch)
    target = _folder(tmp_path / "out", "old")
    _files._set_aside(target)
    if command == "make-dataset":
        from torchbricks.datasets.shapes import ShapesDatasetExistsError, write_shapes_dataset

        with pytest.raises(ShapesDatasetExistsError, match="already exists"):
            write_shapes_dataset(target, num_train=1, num_val=1, image_size=16)
    else:
        from torchbricks.errors import BrickError
        from torchbricks.predict import predict_images

        with pytest.raises(BrickError, match="exists and is not empty"):
            predict_images(object(), [tmp_path / "photos"], target)  # type: ignore[arg-type]
    assert (target / "data.txt").read_text() == "old"


def test_on_linux_the_folders_are_swapped_in_one_step_so_the_target_never_goes_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _folder(tmp_path / "out", "old")
    new = _folder(tmp_path / ".out.0123456789abcdef0123456789abcdef.tmp", "new")
    real_replace = os.replace

    def replace(source: object, destination: object) -> None:
        assert Path(str(source)) != target, "the target was renamed away: a kill now would leave no target"
        real_replace(source, destination)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    replace_folder(new, target)
    assert (target / "data.txt").read_text() == "new"
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("way", ["syncfs", "each file"])
def test_replace_folder_syncs_every_file_and_folder_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    # Renamed into place unsynced, a power loss could leave the folder with empty or cut files
    new = _folder(tmp_path / ".out.0123456789abcdef0123456789abcdef.tmp", "new")
    (new / "sub").mkdir()
    (new / "sub" / "more.txt").write_text("more")
    synced: list[str] = []
    real_fsync, real_exchange, real_syncfs = os.fsync, _files._exchange, _files._syncfs

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    def syncfs(folder: Path) -> bool:
        if way != "syncfs":
            return False  # another OS
        synced.append(f"syncfs {folder}")
        return real_syncfs(folder)

    def exchange(first: Path, second: Path) -> bool:
        synced.append("renamed")
        return real_exchange(first, second)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(_files, "_syncfs", syncfs)
    monkeypatch.setattr(_files, "_exchange", exchange)
    _folder(tmp_path / "out", "old")
    replace_folder(new, tmp_path / "out")
    before = synced[: synced.index("renamed")]
    if way == "syncfs":
        assert before == [f"syncfs {new}"]
    else:
        inside = [str(new / "sub" / "more.txt"), str(new / "sub"), str(new / "data.txt"), str(new)]
        assert sorted(before) == sorted(inside)
        assert before.index(str(new)) == 3  # the folder after its files
    assert synced[synced.index("renamed") + 1 :] == [str(tmp_path)]  # the folder the rename changed
    assert (tmp_path / "out" / "data.txt").read_text() == "new"
