"""`torchbricks train`: --show-config prints the config the run would use; training runs are in tests/lightning/."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from torchbricks.__main__ import main


def test_show_config_prints_yaml_holding_the_overrides_and_the_chosen_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--show-config", "task=detection", "trainer.max_epochs=4", "data.root=somewhere"]) == 0

    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["max_epochs"] == 4
    assert config["data"]["root"] == "somewhere"
    assert "boxes" in str(config["model"]["bricks"]).lower()


def test_a_users_config_dir_is_searched_with_the_packaged_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.yaml").write_text("defaults:\n  - train\n  - _self_\ntrainer:\n  max_epochs: 7\n")
    assert main(["train", "--show-config", "--config-dir", str(tmp_path), "--config-name", "mine"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["trainer"]["max_epochs"] == 7


def test_a_misspelt_override_is_one_error_line_and_trains_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", f"experiment.path_experiments={tmp_path}", "trainer.max_epoch=3"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: ")
    assert "trainer.max_epoch" in error
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.strategy=dpp", "Config key 'trainer.strategy' is 'dpp', which does not make a Lightning Trainer: "),
        ("trainer.precision=17", "Config key 'trainer.precision' is 17, which does not make a Lightning Trainer: "),
    ],
)
def test_a_trainer_value_lightning_refuses_is_one_error_line_naming_the_key_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    # Lightning refused them with a traceback after config.yaml, experiment.json and resolved_config.yaml were written,
    # and the same command with the value fixed was then refused: the experiment existed.
    assert main(["train", f"experiment.path_experiments={tmp_path}", "experiment.name=run", override]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"torchbricks: error: {expected}")
    assert "Traceback" not in error
    assert "Did you mean 'ddp'?" in error or "strategy" not in override
    assert not any(tmp_path.iterdir())


def test_overwrite_keeps_the_existing_experiment_when_the_new_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The folder was deleted before checkpoint.monitor (and the loss names of loss_weights) were checked.
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "metrics.json").write_text("{}")
    locate = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "experiment.overwrite=true"]

    assert main(["train", *locate, "checkpoint.monitor=validation/acc"]) == 2
    assert "Config key 'checkpoint.monitor' is 'validation/acc'" in capsys.readouterr().err
    assert sorted(path.name for path in folder.iterdir()) == ["config.yaml", "metrics.json"]


def test_the_hints_after_a_run_read_the_class_names_as_every_reader_of_experiment_json_does(tmp_path: Path) -> None:
    # _hints read experiment.json with its own json.loads and gave no hints, without a word, for a file it could not read
    from torchbricks._commands.train import _hints
    from torchbricks.errors import ConfigError

    (tmp_path / "history.json").write_text("{}")
    (tmp_path / "experiment.json").write_text('{"class_nam')

    with pytest.raises(ConfigError, match=r"train's hints reads .*experiment.json', but it is not JSON"):
        _hints(tmp_path, ["classification"])


def test_every_path_the_commands_take_may_start_at_the_home_folder(
    shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `data.root=~/photos` (the shell leaves a ~ after `key=` as it is) was refused by Hydra, and quoted it was read as
    # a folder named '~' under the current one; `--out=~/x` and a quoted '~/x' reached the other commands as they were.
    import json
    import shutil

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    shutil.copytree(shapes_root / "classification", tmp_path / "home" / "shapes")
    monkeypatch.chdir(tmp_path)
    train = ["train", "task=classification", "data.root=~/shapes", "experiment.path_experiments=~/runs", "experiment.name=run"]
    quick = ["trainer.max_epochs=1", "data.image_size=32", "data.batch_size=4", "data.num_workers=0", "n_visualized=0"]

    assert main([*train, *quick, "export_onnx=false"]) == 0

    experiment = tmp_path / "home" / "runs" / "run"
    assert json.loads((experiment / "experiment.json").read_text())["class_names"] == ["circle", "square", "triangle"]
    assert yaml.safe_load((experiment / "config.yaml").read_text())["data"]["root"] == str(tmp_path / "home" / "shapes")
    assert main(["predict", "~/runs/run", "~/shapes/val/circle", "--out=~/predicted", "--pictures=none"]) == 0
    assert (tmp_path / "home" / "predicted" / "predictions.csv").is_file()
    assert main(["evaluate", "~/runs/run", "data.root=~/shapes", "--out=~/evaluation.json"]) == 0
    assert (tmp_path / "home" / "evaluation.json").is_file()
    assert main(["export", "~/runs/run", "--out=~/deploy.onnx"]) == 0
    assert (tmp_path / "home" / "deploy.onnx").is_file()
    assert main(["check-data", "data.root=~/shapes"]) == 0
    assert not (tmp_path / "~").exists()
    capsys.readouterr()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU: Lightning builds the trainer")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_a_gpu_accelerator_on_a_machine_without_one_says_no_gpu_is_found_and_what_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], accelerator: str
) -> None:
    # Lightning's reason, "No supported gpu backend found! Did you mean 'tpu'?", read as a misspelling of 'tpu'.
    assert main(["train", f"experiment.path_experiments={tmp_path}", f"trainer.accelerator={accelerator}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"torchbricks: error: Config key 'trainer.accelerator' is '{accelerator}', which needs a GPU")
    assert "no GPU is found (torch.cuda.is_available() is False)" in error
    assert "trainer.accelerator=cpu" in error
    assert "trainer.accelerator=auto" in error
    assert "tpu" not in error
    assert not any(tmp_path.iterdir())


def test_show_config_prints_the_paths_the_job_reads_with_the_home_folder_expanded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    overrides = ["task=classification", "data.root=~/shapes", "experiment.path_experiments=~/experiments"]
    assert main(["train", "--show-config", *overrides]) == 0

    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["root"] == str(tmp_path / "shapes")
    assert config["experiment"]["path_experiments"] == str(tmp_path / "experiments")


def _with_test_split(shapes_root: Path, tmp_path: Path, task: str) -> tuple[Path, Path, str]:
    """A copy of the shapes of `task` with a test split of the validation images, one of them broken as users' files
    are: a photograph cut short by an interrupted copy (classification), an image of another size than its COCO
    file says, resized after labelling (detection). Returns the data folder, the broken image and the expected text."""
    import json
    import shutil

    if task == "classification":
        root = tmp_path / "classification"
        shutil.copytree(shapes_root / "classification", root)
        shutil.copytree(root / "val", root / "test")
        broken = sorted((root / "test" / "circle").glob("*.png"))[0]
        broken.write_bytes(broken.read_bytes()[:200])
        return root, broken, "cannot be read: image file is truncated"
    root = tmp_path / "detection"
    shutil.copytree(shapes_root / "detection", root)
    shutil.copytree(root / "images" / "val", root / "images" / "test")
    document = json.loads((root / "val.json").read_text().replace('"images/val/', '"images/test/'))
    (root / "test.json").write_text(json.dumps(document))
    from PIL import Image

    broken = root / document["images"][0]["file_name"]
    with Image.open(broken) as picture:
        picture.resize((picture.width * 2, picture.height * 2)).save(broken)
    return root, broken, "is 128x128; "


@pytest.mark.parametrize("task", ["classification", "detection"])
def test_a_test_image_that_cannot_be_read_stops_the_job_before_training_naming_it(
    shapes_root: Path, tmp_path: Path, task: str
) -> None:
    # It stopped the job only when the test stage reached it, after the whole training budget (eight minutes by
    # default, hours on a GPU), with no metrics.json, model.onnx or pictures written.
    import subprocess
    import sys

    root, broken, expected = _with_test_split(shapes_root, tmp_path, task)
    command = [sys.executable, "-m", "torchbricks", "train", f"task={task}", f"data.root={root}"]
    command += [f"experiment.path_experiments={tmp_path / 'runs'}", "experiment.name=run", "trainer.max_epochs=1"]
    source = Path(__file__).parents[2] / "src"
    done = subprocess.run(command, check=False, capture_output=True, text=True, env={"PYTHONPATH": str(source)}, timeout=300)

    assert done.returncode != 0
    assert f"1 file of {str(root)!r} cannot be read as training reads it" in done.stderr
    assert f"{broken}" in done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert "epoch 1/1" not in done.stdout + done.stderr
    assert not (tmp_path / "runs" / "run").exists()
