"""`torchbricks predict`: its options and their mistakes; predictions themselves are in test_predict.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from torchbricks.__main__ import main

SRC = Path(__file__).parents[2] / "src"


def test_an_unknown_picture_format_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["predict", "run", "photos", "--pictures", "gif"])
    assert exited.value.code == 2
    assert re.search(r"--pictures: invalid choice: 'gif' \(choose from '?jpg'?, '?png'?, '?none'?\)", capsys.readouterr().err)


def test_lanes_below_one_are_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["predict", "run", "photos", "--lanes", "0"])
    assert exited.value.code == 2
    assert "argument --lanes: must be 1 or more, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--tile", "0"], "argument --tile: must be 1 or more, got 0"),
        (["--tile", "32", "--overlap", "1"], r"argument --overlap: must be a fraction in \[0, 1\), got 1.0"),
        (["--tile", "32", "--overlap", "-0.1"], r"argument --overlap: must be a fraction in \[0, 1\), got -0.1"),
    ],
)
@pytest.mark.parametrize("backend", [[], ["--onnx"]])
def test_a_bad_tile_or_overlap_is_refused_by_the_parser_for_both_backends(
    option: list[str], expected: str, backend: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["predict", "run", "photos", *backend, *option])
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert re.search(expected, errors[0])


@pytest.mark.parametrize("backend", [[], ["--onnx"]])
def test_an_overlap_without_a_tile_is_one_error_line_not_silently_unused(
    tmp_path: Path, backend: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"

    assert main(["predict", str(tmp_path / "run"), str(tmp_path), *backend, "--overlap", "0.5", "--out", str(out)]) == 2

    assert capsys.readouterr().err == (
        "torchbricks: error: --overlap 0.5 needs --tile N: without it each image is predicted whole.\n"
    )
    assert not out.exists()


def test_a_folder_that_is_not_an_experiment_is_one_error_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(tmp_path / "run"), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"torchbricks: error: {str(tmp_path / 'run')!r} is not a trained experiment folder")
    assert not (tmp_path / "out").exists()


def test_help_names_every_output_and_answers_without_importing_torch() -> None:
    code = "import sys; sys.modules['torch'] = None\nfrom torchbricks.__main__ import main\nmain(['predict', '--help'])"
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, check=False, capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, timeout=120)
    assert done.returncode == 0, done.stderr
    for shown in ("drawn/*.jpg", "predictions.json", "masks/", "predictions.csv", "skipped.txt", "--tile", "--onnx", "--lanes"):
        assert shown in done.stdout
