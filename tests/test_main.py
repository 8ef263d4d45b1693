from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchbricks.__main__ import main


def test_show_config_prints_the_composed_config_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["train", "--show-config", "trainer.max_epochs=3", "+head@model.bricks.head2=classification"])

    printed = capsys.readouterr().out
    assert status == 0
    assert "max_epochs: 3" in printed
    assert "head2:" in printed


def test_a_bad_override_exits_with_an_error_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["train", "trainer.max_epoch=3"])

    assert status == 2
    assert "trainer.max_epoch" in capsys.readouterr().err


def test_a_bad_target_exits_with_an_error_naming_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status = main(["train", f"experiment.path_experiments={tmp_path}", "model.bricks.backbone.model._target_=torch.nn.Nope"])

    assert status == 2
    assert "Config key 'model.bricks.backbone.model' cannot be instantiated" in capsys.readouterr().err


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([])

    assert raised.value.code == 2
    assert "train" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "torchbricks"], [str(Path(sys.executable).parent / "torchbricks")]],
    ids=["python -m torchbricks", "console script"],
)
def test_the_command_line_runs(command: list[str]) -> None:
    completed = subprocess.run([*command, "train", "--show-config"], capture_output=True, text=True, timeout=120, check=False)

    assert completed.returncode == 0, completed.stderr
    assert "_target_: pytorch_lightning.Trainer" in completed.stdout
