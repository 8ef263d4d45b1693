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


# --- a command line that answers fast -----------------------------------------------------------------------------

_IMPORTED_AFTER = """
import sys
from torchbricks.__main__ import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(name for name in ("torch", "hydra", "omegaconf", "pytorch_lightning", "numpy") if name in sys.modules)
print("HEAVY:", heavy)
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["--version"]], ids=" ".join)
def test_help_and_version_answer_without_importing_torch(argv: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORTED_AFTER.format(argv=argv)], capture_output=True, text=True, timeout=60, check=False
    )

    assert completed.returncode == 0, completed.stderr
    assert "HEAVY: []" in completed.stdout


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import torchbricks

    with pytest.raises(SystemExit) as raised:
        main(["--version"])

    assert raised.value.code == 0
    assert capsys.readouterr().out.strip() == f"torchbricks {torchbricks.__version__}"


def test_train_help_lists_the_packaged_config_groups_their_options_and_common_overrides(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torchbricks.configuration import CONFIG_DIR

    with pytest.raises(SystemExit):
        main(["train", "--help"])

    printed = capsys.readouterr().out
    for folder in sorted(path for path in CONFIG_DIR.iterdir() if path.is_dir()):
        assert f"  {folder.name}:" in printed
        for option in folder.glob("*.yaml"):
            assert f" {option.stem} " in printed
    assert "* digits" in printed  # the default of its group is marked
    for override in (
        "trainer.max_epochs=",
        "resume=true",
        "experiment.overwrite=true",
        "trainer.precision=bf16-mixed",
        "compile=true",
    ):
        assert override in printed


def test_an_existing_experiment_name_exits_with_status_2_and_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "config.yaml").write_text("seed: 0\n")

    status = main(["train", f"experiment.path_experiments={tmp_path}", "experiment.name=first"])

    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1
    assert error.startswith("torchbricks: error: Experiment")
    assert "resume=true" in error
    assert "experiment.overwrite=true" in error


def _readme_train_commands() -> list[list[str]]:
    import re
    import shlex

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", readme, re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            if "torchbricks train" in line:
                words = shlex.split(line.split("torchbricks train", 1)[1], comments=True)
                commands.append([word for word in words if "=" in word and not word.startswith("-")])
    return commands


def test_every_train_command_of_the_readme_composes() -> None:
    from torchbricks.configuration import compose_config

    commands = _readme_train_commands()

    assert len(commands) >= 10
    assert any("resume=true" in command for command in commands)
    for overrides in commands:
        compose_config(overrides)  # raises ConfigError naming a key that does not exist
