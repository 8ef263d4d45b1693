"""`torchbricks export`: bad arguments are one error line (exit 2) and write nothing; exports are in test_deploy_export.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from torchbricks.__main__ import main


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: ")
    assert error.count("\n") == 1
    return error


def test_an_existing_file_is_kept_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "deploy.onnx").write_text("mine")
    assert main(["export", str(tmp_path)]) == 2
    assert "deploy.onnx'] already exist; pass overwrite=True (--overwrite)" in _error(capsys)
    assert (tmp_path / "deploy.onnx").read_text() == "mine"


def test_calibration_images_need_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path), "--images", str(tmp_path)]) == 2
    assert "are calibration images for quantize='int8' (--quantize int8); nothing uses them" in _error(capsys)


def test_a_folder_that_is_not_an_experiment_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "run"), "--quantize", "int8"]) == 2
    assert f"{str(tmp_path / 'run')!r} is not a trained experiment folder" in _error(capsys)
    assert not (tmp_path / "run").exists()


def test_an_unknown_quantization_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", "run", "--quantize", "int4"])
    assert exited.value.code == 2
    assert re.search(r"--quantize: invalid choice: 'int4' \(choose from '?int8'?\)", capsys.readouterr().err)
