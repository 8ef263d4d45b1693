"""`torchbricks evaluate`: split and override mistakes are one error line (exit 2); evaluations are in test_evaluate.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchbricks.__main__ import main


def test_a_misspelt_split_is_refused_with_the_close_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path), "data.root=x", "split=tset"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: split must be one of ")
    assert "got 'tset'" in error
    assert "'test'" in error.rpartition("?")[0].rpartition("mean")[2]


def test_a_folder_that_is_not_an_experiment_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path), "split=val"]) == 2
    assert f"{str(tmp_path)!r} is not a trained experiment folder" in capsys.readouterr().err
    assert not (tmp_path / "evaluation.json").exists()
