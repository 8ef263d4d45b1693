from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

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


def test_an_existing_experiment_name_is_refused_before_the_data_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "first").mkdir()
    missing = tmp_path / "no_such_data"

    status = main(
        [
            "train",
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=first",
            "task=classification",
            f"data.root={missing}",
        ]
    )

    assert status == 2
    assert "already exists" in capsys.readouterr().err  # not the missing data folder: nothing was read


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["experiment.name=''"], r"'experiment.name' must be a folder name .* got ''"),
        (["experiment.name=a/b"], r"'experiment.name' must be a folder name .* got 'a/b'"),
        (["experiment.name=run", "resume=true", "experiment.overwrite=true"], r"give one of them"),
    ],
)
def test_a_bad_experiment_name_or_resume_with_overwrite_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, overrides: list[str], message: str
) -> None:
    import re

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")

    assert main(["train", f"experiment.path_experiments={tmp_path}", *overrides]) == 2
    assert re.search(message, capsys.readouterr().err)


def _readme_train_commands() -> list[list[str]]:
    import re
    import shlex

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", readme, re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():  # a command continued over lines is one line
            if "torchbricks train" in line:
                words = shlex.split(line.split("torchbricks train", 1)[1], comments=True)
                commands.append([word for word in words if "=" in word and not word.startswith("-")])
    return commands


@pytest.mark.slow
def test_every_train_command_of_the_readme_composes() -> None:
    from torchbricks.configuration import compose_config

    commands = _readme_train_commands()

    assert len(commands) >= 10
    assert any("resume=true" in command for command in commands)
    for overrides in commands:
        compose_config(overrides)  # raises ConfigError naming a key that does not exist


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # no traceback, no Hydra hint
    assert lines[0].startswith("torchbricks: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=fast", "Config key 'optimizer.lr' must be float or Tensor, got str 'fast'."),
        ("optimizer.lr=-1", "Config key 'optimizer' does not make an optimizer: Invalid learning rate: -1"),
        ("seed=abc", "Config key 'seed' must be an int, got str 'abc'."),
        ("data.batch_size=-5", "Config key 'data.batch_size' must be an int >= 1, got -5."),
        (
            "model.num_classes=5",
            "Config key 'model.num_classes': brick 'head/classify' (ImageClassifier) has 5 classes, but the data "
            "(DigitsDataModule) has 10; set model.num_classes=10.",
        ),
        ("n_visualized=-1", "Config key 'n_visualized' must be an int >= 0, got int -1."),
        (
            "trainer.max_time=abc",
            "Config key 'trainer.max_time' must be null or a time budget DD:HH:MM:SS (00:00:08:00 is 8 minutes), got str 'abc'.",
        ),
        (
            "trainer.max_epochs=0",
            "Config key 'trainer.max_epochs' must be an int >= 1 (or -1: no limit but trainer.max_time), got int 0.",
        ),
        ("trainer.devices=0", "Config key 'trainer.devices' must be a number of devices >= 1, -1 (all) or auto, got 0."),
        (
            "early_stopping.start_fraction=1",
            "Config key 'early_stopping.start_fraction' must be a number in [0, 1) (the fraction of the training budget "
            "before which early stopping never ends a run), got int 1.",
        ),
        (
            "early_stopping.finish_without_augmentations=sometimes",
            "Config key 'early_stopping.finish_without_augmentations' must be true or false, got str 'sometimes'.",
        ),
        (
            "checkpoint.monitor=validation/head/acuracy",
            "Config key 'checkpoint.monitor' is 'validation/head/acuracy', which the run never logs; it logs ['train/loss', "
            "'train/losses/head/loss_ce', 'train/head/accuracy', 'validation/loss', 'validation/losses/head/loss_ce', "
            "'validation/head/accuracy'] (training values also with _epoch and _step). Did you mean 'validation/head/accuracy'?",
        ),
        (  # the closest whole string is validation/loss; the key meant ends in the word `acc` begins
            "checkpoint.monitor=validation/acc",
            "Config key 'checkpoint.monitor' is 'validation/acc', which the run never logs; it logs ['train/loss', "
            "'train/losses/head/loss_ce', 'train/head/accuracy', 'validation/loss', 'validation/losses/head/loss_ce', "
            "'validation/head/accuracy'] (training values also with _epoch and _step). Did you mean 'validation/head/accuracy'?",
        ),
        (
            "checkpoint.monitor=[validation/head/accuracy,train/loss]",
            "Config key 'checkpoint.monitor' lists validation values whose mean is monitored, each 'validation/...'; "
            "got ['validation/head/accuracy', 'train/loss'].",
        ),
        (
            "checkpoint.monitor=[validation/head/acuracy]",
            "Config key 'checkpoint.monitor': lists 'head/acuracy', which no metric brick of the validation stage logs. "
            "Metric values: ['head/accuracy']. Did you mean 'head/accuracy'?",
        ),
        (
            "checkpoint.monitor=[validation/acc]",
            "Config key 'checkpoint.monitor': lists 'acc', which no metric brick of the validation stage logs. "
            "Metric values: ['head/accuracy']. Did you mean 'head/accuracy'?",
        ),
    ],
)
def test_a_bad_command_line_value_is_one_line_naming_the_key(
    override: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status = main(["train", override, f"experiment.path_experiments={tmp_path}", "trainer.enable_progress_bar=false"])

    assert status == 2
    assert _one_line_error(capsys) == f"torchbricks: error: {message}"
    assert not any(tmp_path.iterdir())  # refused before training: nothing written


def test_a_misspelt_key_suggests_the_key_instead_of_adding_it_with_plus(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["train", "trainer.max_epoch=1"])

    assert status == 2
    line = _one_line_error(capsys)
    assert "Config key 'trainer.max_epoch' does not exist: trainer has no 'max_epoch'. Did you mean 'trainer.max_epochs'?" in line
    assert "+trainer" not in line


def test_a_trainer_parameter_missing_from_the_config_is_added_with_plus(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["train", "trainer.limit_train_batches=2"])

    assert status == 2
    assert "pytorch_lightning.Trainer takes 'limit_train_batches': add it with '+trainer.limit_train_batches=2'" in (
        _one_line_error(capsys)
    )
    assert main(["train", "+trainer.limit_train_batches=2", "--show-config"]) == 0


def test_config_dir_adds_the_users_configs_to_the_packaged_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "sgd.yaml").write_text("_target_: torch.optim.SGD\n_partial_: true\nlr: 0.05\n")
    (tmp_path / "my_train.yaml").write_text("defaults:\n  - train\n  - _self_\nseed: 7\n")

    assert main(["train", "--config-dir", str(tmp_path), "optimizer=sgd", "--show-config"]) == 0
    printed = capsys.readouterr().out
    assert "_target_: torch.optim.SGD" in printed
    assert "_target_: pytorch_lightning.Trainer" in printed  # the packaged groups are still there
    assert "model.num_classes" in printed or "num_classes: 10" in printed

    assert main(["train", "--config-dir", str(tmp_path), "--config-name", "my_train", "--show-config"]) == 0
    printed = capsys.readouterr().out
    assert "seed: 7" in printed
    assert "_target_: torch.optim.AdamW" in printed  # the user's primary config builds on the packaged train.yaml


def test_loss_weights_are_set_without_plus(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "loss_weights={head/loss_ce: 0.5}", "--show-config"]) == 0
    assert "head/loss_ce: 0.5" in capsys.readouterr().out


def test_an_error_raised_in_a_loader_process_is_its_message_alone() -> None:
    from torchbricks.__main__ import _user_message
    from torchbricks.errors import DataError

    wrapped = DataError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        "  File \"x.py\", line 1, in f\n    raise DataError(\ntorchbricks.errors.DataError: Mask 'm.png' is a colour mask.\n"
    )
    assert _user_message(wrapped) == "Mask 'm.png' is a colour mask."
    assert _user_message(DataError("Caught a cold")) == "Caught a cold"


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_missing_data_folder_is_its_own_line_not_wrapped_in_config_text(
    command: str, trained_experiment: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if command == "train":
        arguments = ["train", "task=detection", f"data.root={tmp_path / 'gone'}", f"experiment.path_experiments={tmp_path}"]
    else:
        arguments = ["evaluate", str(trained_experiment("detection")), f"data.root={tmp_path / 'gone'}"]
    capsys.readouterr()

    assert main(arguments) == 2

    assert capsys.readouterr().err.strip() == f"torchbricks: error: The data folder {str(tmp_path / 'gone')!r} does not exist."


class _FakeDistributed:
    """`torch.distributed` as a process of a two-process run sees it."""

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def is_initialized() -> bool:
        return True

    @staticmethod
    def get_world_size() -> int:
        return 2

    @staticmethod
    def get_rank() -> int:
        return 1


class _FailingCommand:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def run(self, arguments: Any) -> int:
        raise self.error


def test_a_process_left_by_a_failed_peer_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchbricks.__main__ as entry

    gloo = RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:37805. This is typically ...")
    parser = entry._parser()
    monkeypatch.setattr(entry, "_parser", lambda: parser)
    monkeypatch.setitem(sys.modules, "torch.distributed", _FakeDistributed())
    monkeypatch.setattr(entry, "_command_module", lambda name: _FailingCommand(gloo))

    assert main(["train"]) == 1

    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert error.startswith("torchbricks: error: process 1 of this distributed run stopped because another process left")
    assert "Connection closed by peer" in error


def test_another_runtime_error_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchbricks.__main__ as entry

    parser = entry._parser()
    monkeypatch.setattr(entry, "_parser", lambda: parser)
    monkeypatch.setitem(sys.modules, "torch.distributed", _FakeDistributed())
    monkeypatch.setattr(entry, "_command_module", lambda name: _FailingCommand(RuntimeError("shape mismatch")))

    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["train"])


def test_overrides_after_an_option_are_overrides_too(capsys: pytest.CaptureFixture[str]) -> None:
    from omegaconf import OmegaConf

    assert main(["train", "trainer.max_epochs=2", "--show-config", "seed=7"]) == 0

    shown = OmegaConf.create(capsys.readouterr().out)
    assert (shown.trainer.max_epochs, shown.seed) == (2, 7)
    with pytest.raises(SystemExit):
        main(["train", "--show-config", "--bogus"])


def test_a_command_without_torch_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchbricks.__main__ as entry

    class NeedsTorch:
        def run(self, arguments: Any) -> int:
            raise ModuleNotFoundError("No module named 'torch'", name="torch")

    parser = entry._parser()
    monkeypatch.setattr(entry, "_parser", lambda: parser)
    monkeypatch.setattr(entry, "_command_module", lambda name: NeedsTorch())

    assert main(["check-data", "somewhere"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: check-data needs torch, which is not installed: pip install torch")
    assert error.count("\n") == 1


@pytest.mark.parametrize(
    "arguments",
    [
        ["train", "task=classification"],
        ["train", "task=segmentation"],
        ["train", "task=detection"],
        ["train", "task=multitask"],
        ["check-data"],
        ["check-data", "task=classification"],
    ],
    ids=["classification", "segmentation", "detection", "multitask", "check-data", "check-data classification"],
)
def test_a_data_root_naming_a_file_is_one_line_saying_so_and_naming_its_folder(
    arguments: list[str], shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # data.root=data/coco/train.json (the COCO file, not its folder) was "The data folder '.../train.json' does not
    # exist.", which it does; check-data task=classification said it had no training folder '.../train.json/train'.
    file = shapes_root / "detection" / "train.json"
    root = f"data.root={file}"
    command = [*arguments[:1], root, *arguments[1:]] if arguments[0] == "check-data" else [*arguments, root]
    command += [f"experiment.path_experiments={tmp_path}"] if arguments[0] == "train" else []
    capsys.readouterr()

    status = main(command)

    output = capsys.readouterr()
    expected = (
        f"The data folder {str(file)!r} is a file, not a folder: data.root is the folder holding the data (this file is "
        f"in {str(file.parent)!r})."
    )
    assert status in (1, 2)
    assert expected in output.err + output.out
    assert not (tmp_path / "train.json").exists()


def test_a_missing_data_folder_names_the_folder_beside_it_of_a_close_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photos").mkdir()
    capsys.readouterr()

    assert (
        main(["train", "task=classification", f"data.root={tmp_path / 'fotos'}", f"experiment.path_experiments={tmp_path}"]) == 2
    )

    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"The data folder {str(tmp_path / 'fotos')!r} does not exist. Did you mean 'photos'?")
    )


def test_classification_of_segmentation_data_is_refused_before_training(
    shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It trained on the classes 'images' and 'masks' (test accuracy 0.0 on the shapes), without a word.
    arguments = [
        "train",
        "task=classification",
        f"data.root={shapes_root / 'segmentation'}",
        f"experiment.path_experiments={tmp_path}",
    ]
    capsys.readouterr()

    assert main([*arguments, "experiment.name=run"]) == 2

    assert "holds the folders ['images', 'masks'], which are segmentation data" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("local_rank", "said"), [("0", True), ("1", False)])
def test_a_run_stopped_by_ctrl_c_is_reported_by_the_machines_first_process_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], local_rank: str, said: bool
) -> None:
    # A terminal sends Ctrl-C to every process of a DDP run it started; each printed the same line on how to continue.
    import torchbricks.__main__ as entry
    from torchbricks.errors import RunStoppedError

    parser = entry._parser()
    monkeypatch.setattr(entry, "_parser", lambda: parser)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.setattr(entry, "_command_module", lambda name: _FailingCommand(RunStoppedError("runs/x", "Ctrl-C", 130)))

    assert main(["train"]) == 130

    error = capsys.readouterr().err
    assert ("torchbricks: error: The run was stopped by Ctrl-C" in error) is said
    assert (error == "") is not said
