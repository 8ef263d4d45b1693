"""Runs that survive interruption, tested as a user meets them: the command line, killed with SIGKILL, resumed."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import tensorboard_values_in_files

from torchbricks.lightning.job_trainer import checkpoint_logging_step

TORCHBRICKS = [sys.executable, "-m", "torchbricks"]
# Small: 6 batches per epoch. ONNX and the prediction pictures are tested elsewhere.
COMMON = ["trainer.max_epochs=3", "+trainer.limit_train_batches=6", "export_onnx=false", "n_visualized=0"]
TIMEOUT = 300


def _resume(experiments: Path, name: str) -> subprocess.CompletedProcess[str]:
    """`torchbricks train resume=true` of experiment `name`, with nothing but the name: config.yaml brings the rest."""
    return subprocess.run(
        [*TORCHBRICKS, "train", f"experiment.path_experiments={experiments}", f"experiment.name={name}", "resume=true"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _train(path_experiments: Path, *overrides: str, output: Path) -> subprocess.Popen[bytes]:
    # A shell without job control starts a background job (`.ci/run &`, `nohup`) with SIGINT ignored, which a child
    # inherits and Python then keeps: the run would never see the Ctrl-C the tests send. A handler, unlike an ignored
    # signal, is reset to the default in the child, so the run gets Ctrl-C as in a terminal whatever the tests' own.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with open(output, "wb") as file:  # redirected, as in a batch job: the progress output is not a terminal
            return subprocess.Popen(
                [*TORCHBRICKS, "train", f"experiment.path_experiments={path_experiments}", *overrides],
                stdout=file,
                stderr=subprocess.STDOUT,
            )
    finally:
        signal.signal(signal.SIGINT, previous)


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("averaging", [[], ["ema_decay=0.9"]], ids=["trained weights", "moving average"])
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_uninterrupted_runs_metrics(
    tmp_path: Path, averaging: list[str]
) -> None:
    # With ema_decay, a checkpoint holds the average and the trained weights: the resumed run must continue both.
    whole = _train(tmp_path, *COMMON, *averaging, "experiment.name=whole", output=tmp_path / "whole.txt")
    killed = _train(tmp_path, *COMMON, *averaging, "experiment.name=killed", output=tmp_path / "killed.txt")
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + TIMEOUT
    while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
    assert last.exists(), (tmp_path / "killed.txt").read_text()[-3000:]
    assert not (tmp_path / "killed" / "metrics.json").exists()  # it really was interrupted
    assert whole.wait(timeout=TIMEOUT) == 0, (tmp_path / "whole.txt").read_text()[-3000:]

    # Resuming needs only the name: the saved config.yaml brings the rest.
    resumed = _resume(tmp_path, "killed")

    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stderr
    assert not re.search(r"\.py:\d+: ", resumed.stderr), resumed.stderr  # no warning: resuming into its own folder is expected
    expected, actual = _metrics(tmp_path / "whole"), _metrics(tmp_path / "killed")
    assert actual["epochs"] == expected["epochs"] == 3
    for stage in ("train", "validation", "test"):
        assert actual[stage]["head/confusion_matrix"] == expected[stage]["head/confusion_matrix"]
        assert actual[stage]["head/accuracy"] == pytest.approx(expected[stage]["head/accuracy"], abs=1e-6)
    assert actual["test"]["head/accuracy"] > 0.3  # it learned something: the comparison is not of two untrained models
    # Every epoch, interrupted or not, saw the same batches and reached the same losses.
    history, expected_history = (json.loads((tmp_path / name / "history.json").read_text()) for name in ("killed", "whole"))
    assert [record["epoch"] for record in history] == [0, 1, 2]
    assert {"train/loss", "train/head/accuracy", "validation/loss"} <= set(history[-1])
    for record, expected_record in zip(history, expected_history, strict=True):
        assert record == pytest.approx(expected_record, abs=1e-6)
    assert (tmp_path / "killed" / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.slow
def test_a_run_stopped_after_its_last_epochs_checkpoint_resumes_reporting_that_epochs_values(tmp_path: Path) -> None:
    # Stopped in its test or export, after the last epoch's checkpoint: the resumed run trains no epoch, and must still
    # report the last epoch's train and validation values, not leave them out (metrics.json had no "train" then).
    whole = _train(tmp_path, *COMMON, "experiment.name=run", output=tmp_path / "run.txt")
    assert whole.wait(timeout=TIMEOUT) == 0, (tmp_path / "run.txt").read_text()[-3000:]
    expected = _metrics(tmp_path / "run")
    (tmp_path / "run" / "metrics.json").unlink()  # as a run killed while testing leaves its folder

    resumed = _resume(tmp_path, "run")

    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    actual = _metrics(tmp_path / "run")
    assert actual["epochs"] == expected["epochs"] == 3
    assert actual["metric_epochs"] == expected["metric_epochs"]
    for stage in ("train", "validation", "test"):
        assert actual[stage]["head/confusion_matrix"] == expected[stage]["head/confusion_matrix"], stage
        assert actual[stage]["head/accuracy"] == pytest.approx(expected[stage]["head/accuracy"], abs=1e-6), stage


@pytest.mark.slow
def test_a_redirected_run_prints_plain_lines_and_no_warning_the_user_cannot_act_on(tmp_path: Path) -> None:
    completed = subprocess.run(
        [*TORCHBRICKS, "train", f"experiment.path_experiments={tmp_path}", "experiment.name=quiet", "trainer.max_epochs=2"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout + completed.stderr
    assert output.count("\r") == 0
    assert len(output) < 5000
    epoch_lines = [line for line in completed.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
    assert not re.search(r"\.py:\d+: ", output), output  # Lightning's warnings read `<file>.py:<line>: <message>`
    noises = ["eval mode at the start of training", "Tip:", "LeafSpec", "does not have many workers"]
    # Lightning's lines that no GPU or TPU is there and that it loads the training loader to count the steps, and its
    # table of the test values, which the job's summary below says again
    noises += ["GPU available: False", "TPU available: False", "to estimate number of stepping batches", "Test metric"]
    for noise in noises:
        assert noise not in output, output
    # the summary says every test value Lightning's table said: the metrics and the losses of its CSV log
    log = list(csv.DictReader((tmp_path / "quiet" / "logs" / "metrics.csv").open()))
    tested = next(row for row in log if row.get("test/loss"))
    logged = {name: float(value) for name, value in tested.items() if name.startswith("test/") and value}
    assert any(name.startswith("test/losses/") for name in logged), logged
    summary = dict(line.strip().split(": ") for line in completed.stdout.splitlines() if line.startswith("  test/"))
    assert set(summary) == set(logged), (summary, logged)
    for name, value in logged.items():
        assert summary[name] == f"{value:.4f}", name


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "status", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_a_run_stopped_by_a_signal_says_so_with_its_status_and_how_to_continue(
    tmp_path: Path, stop: signal.Signals, status: int, name: str
) -> None:
    # a scheduler's SIGTERM (SLURM preemption, docker stop) ended the run with status 0 and no word
    overrides = ["trainer.max_epochs=200", "+trainer.limit_train_batches=6", "export_onnx=false", "n_visualized=0"]
    run = _train(tmp_path, *overrides, "experiment.name=stopped", output=tmp_path / "stopped.txt")
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + TIMEOUT
    while not last.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(run.pid, stop)

    assert run.wait(timeout=120) == status
    output = (tmp_path / "stopped.txt").read_text()
    assert f"torchbricks: error: The run was stopped by {name} before it finished" in output, output[-3000:]
    assert "resume=true experiment.name=stopped" in output
    assert "Traceback" not in output
    assert not (tmp_path / "stopped" / "metrics.json").exists()


def _copied(trained_experiment: Any, tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "experiments" / "classification"
    shutil.copytree(trained_experiment("classification"), folder)
    return folder


def test_the_same_command_with_resume_continues_and_each_key_is_checked_against_the_saved_config(
    trained_experiment: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from omegaconf import OmegaConf

    from torchbricks.__main__ import main

    folder = _copied(trained_experiment, tmp_path)
    capsys.readouterr()  # the fixture's own training run, on first use
    started_with = list(OmegaConf.load(folder / "config.yaml").experiment.command_overrides)
    moved = [
        f"experiment.path_experiments={folder.parent}" if item.startswith("experiment.path_experiments=") else item
        for item in started_with
    ]
    assert any(item.startswith("task=") for item in moved)  # a group choice, which resume refuses unless the run began with it

    assert main(["train", *moved, "resume=true", "trainer.max_epochs=2", "data.cache_megabytes=0", "--show-config"]) == 0
    shown = OmegaConf.create(capsys.readouterr().out)
    assert (shown.resume, shown.trainer.max_epochs, shown.data.cache_megabytes) == (True, 2, 0)  # vision keys, not digits'

    assert main(["train", *moved, "resume=true", "data.imag_size=48", "--show-config"]) == 2
    assert "saved config has no key 'data.imag_size'" in capsys.readouterr().err
    assert main(["train", *moved, "resume=true", "task=segmentation", "--show-config"]) == 2
    assert "the override 'task=segmentation' would change it" in capsys.readouterr().err


def test_a_resume_whose_overrides_change_the_model_is_refused_before_anything_is_written(
    trained_experiment: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchbricks.__main__ import main

    folder = _copied(trained_experiment, tmp_path)
    capsys.readouterr()
    before = {path.name: path.read_bytes() for path in folder.glob("*.yaml")}
    locate = [f"experiment.path_experiments={folder.parent}", "experiment.name=classification", "resume=true"]

    assert main(["train", *locate, "loss.class_weights=auto", "trainer.max_epochs=2"]) == 2

    error = capsys.readouterr().err
    assert "does not fit" in error
    assert "the model now has weights the checkpoint lacks" in error
    assert {path.name: path.read_bytes() for path in folder.glob("*.yaml")} == before  # a later plain resume still works


def _tensorboard(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()  # honours the purge marker a resumed run writes, as TensorBoard does
    return events


def _logged(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar as (step, value), and the pictures' steps under their tag."""
    events = _tensorboard(folder)
    logged = {tag: [(value.step, value.value) for value in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    logged |= {tag: [(picture.step, 0.0) for picture in events.Images(tag)] for tag in events.Tags()["images"]}
    return logged


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_and_resumed_shows_tensorboard_one_value_per_step_the_resumed_runs(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    # 16 batches an epoch, each logged, a picture every epoch: a stop in the second epoch leaves values past the checkpoint
    overrides = [
        "trainer.max_epochs=3",
        "+trainer.limit_train_batches=16",
        "trainer.log_every_n_steps=1",
        "export_onnx=false",
        "n_visualized=2",
        "pictures_every_n_epochs=1",
    ]
    whole = _train(tmp_path, *overrides, "experiment.name=whole", output=tmp_path / "whole.txt")
    stopped = _train(tmp_path, *overrides, "experiment.name=stopped", output=tmp_path / "stopped.txt")
    deadline = time.monotonic() + TIMEOUT
    past_checkpoint: list[tuple[int, float]] = []
    while not past_checkpoint and stopped.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if (tmp_path / "stopped" / "checkpoints" / "last.ckpt").exists() and (tmp_path / "stopped" / "tensorboard").is_dir():
            steps = _logged(tmp_path / "stopped").get("train/loss_step", [])
            past_checkpoint = [step for step in steps if step[0] >= 16]
    os.kill(stopped.pid, signal.SIGTERM)
    assert stopped.wait(timeout=120) == 143, (tmp_path / "stopped.txt").read_text()[-3000:]
    assert past_checkpoint, "the run ended before it logged a step of its second epoch"
    assert whole.wait(timeout=TIMEOUT) == 0, (tmp_path / "whole.txt").read_text()[-3000:]
    resumed_from = checkpoint_logging_step(tmp_path / "stopped" / "checkpoints" / "last.ckpt")
    stopped_files = sorted((tmp_path / "stopped" / "tensorboard").glob("*tfevents*"))

    resumed = _resume(tmp_path, "stopped")

    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    # The stopped run's files keep no value from the step the resumed run logs from: TensorBoard's servers ignore
    # the purge marker, and read the files as they are.
    for path in stopped_files:
        values = tensorboard_values_in_files(path)
        assert {tag: [step for step, _ in steps if step >= resumed_from] for tag, steps in values.items()} == {
            key: [] for key in values
        }, path
    readers = {"EventAccumulator": _logged, "files": lambda folder: tensorboard_values_in_files(folder / "tensorboard")}
    for reader, read in readers.items():
        expected, actual = read(tmp_path / "whole"), read(tmp_path / "stopped")
        assert set(actual) == set(expected), reader
        for tag, values in expected.items():  # Lightning logs `epoch` with every call: several at an epoch's last step
            assert [step for step, _ in actual[tag]] == [step for step, _ in values], (reader, tag)
            assert [value for _, value in actual[tag]] == pytest.approx([value for _, value in values], abs=1e-5), tag
        assert [step for step, _ in actual["predictions"]] == [step for step, _ in actual["validation/loss"]]  # one an epoch


@pytest.mark.slow
def test_a_run_the_time_budget_ended_and_resumed_keeps_only_the_resumed_runs_values_in_tensorboard(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from torchbricks.__main__ import main

    locate = [f"experiment.path_experiments={tmp_path}", "experiment.name=cut"]
    overrides = ["trainer.max_epochs=100", "+trainer.limit_train_batches=6", "trainer.max_time=00:00:00:01", "export_onnx=false"]
    assert main(["train", *locate, *overrides, "n_visualized=2", "pictures_every_n_epochs=1"]) == 0
    assert _metrics(tmp_path / "cut")["stop_reason"] == "max_time"
    assert len(_tensorboard(tmp_path / "cut").Scalars("test/loss")) == 1  # the cut run was tested
    epochs = len(json.loads((tmp_path / "cut" / "history.json").read_text()))

    resumed_from = checkpoint_logging_step(tmp_path / "cut" / "checkpoints" / "last.ckpt")
    cut_files = sorted((tmp_path / "cut" / "tensorboard").glob("*tfevents*"))
    assert any(step >= resumed_from for step, _ in tensorboard_values_in_files(tmp_path / "cut" / "tensorboard")["test/loss"])

    assert main(["train", *locate, "resume=true", "trainer.max_time=null", f"trainer.max_epochs={epochs + 1}"]) == 0

    for path in cut_files:  # the cut run's test values are gone from its files, not only hidden by the purge marker
        values = tensorboard_values_in_files(path)
        assert {tag: [step for step, _ in steps if step >= resumed_from] for tag, steps in values.items()} == {
            key: [] for key in values
        }, path
    in_files = tensorboard_values_in_files(tmp_path / "cut" / "tensorboard")
    assert len(in_files["test/loss"]) == 1
    for tag, values in in_files.items():
        if tag != "epoch":
            assert len(values) == len({step for step, _ in values}), tag
    events = _tensorboard(tmp_path / "cut")
    tested = _metrics(tmp_path / "cut")["test"]
    assert [value.value for value in events.Scalars("test/head/accuracy")] == pytest.approx([tested["head/accuracy"]])
    validated = [value.step for value in events.Scalars("validation/loss")]
    assert len(validated) == epochs + 1
    assert [value.step for value in events.Images("predictions")] == validated  # one picture per epoch
    for tag in events.Tags()["scalars"]:
        if tag != "epoch":  # Lightning logs it with every call: several at an epoch's last step
            steps = [value.step for value in events.Scalars(tag)]
            assert len(steps) == len(set(steps)), tag


@pytest.mark.slow
def test_a_run_resumed_from_another_folder_trains_on_the_data_of_the_folder_it_began_in(
    shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from omegaconf import OmegaConf

    from torchbricks.__main__ import main

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    shutil.copytree(shapes_root / "classification", project / "data" / "shapes")
    # The same relative name in the other folder holds other images, of as many classes under other names: a resume
    # that read it would fit the checkpoint and train on them without a word.
    for split in ("train", "val"):
        for folder in (project / "data" / "shapes" / split).iterdir():
            shutil.copytree(folder, elsewhere / "data" / "shapes" / split / f"other_{folder.name}")
    trained_on = sorted(folder.name for folder in (project / "data" / "shapes" / "train").iterdir())
    overrides = ["task=classification", "data.root=data/shapes", "experiment.name=run", "data.image_size=32"]
    overrides += ["data.batch_size=4", "data.num_workers=0", "n_visualized=0", "export_onnx=false"]
    monkeypatch.chdir(project)
    assert main(["train", "experiment.path_experiments=experiments", *overrides, "trainer.max_epochs=1"]) == 0
    monkeypatch.chdir(elsewhere)
    experiment = project / "experiments" / "run"

    locate = [f"experiment.path_experiments={Path('..') / 'project' / 'experiments'}", "experiment.name=run"]
    assert main(["train", *locate, "resume=true", "trainer.max_epochs=2"]) == 0

    assert [record["epoch"] for record in json.loads((experiment / "history.json").read_text())] == [0, 1]
    assert json.loads((experiment / "experiment.json").read_text())["class_names"] == trained_on
    assert OmegaConf.load(experiment / "config.yaml").data.root == str(project / "data" / "shapes")
    assert not (elsewhere / "experiments").exists()  # continued where it was found


def test_a_resume_with_fewer_epochs_than_trained_is_refused_by_key_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lightning refused it only after config.yaml (now saying max_epochs: 1), the logs and the TensorBoard files had been
    # rewritten, with a traceback; one epoch below the trained ones it trained nothing and tested again.
    from torchbricks.__main__ import main

    tiny = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "export_onnx=false", "n_visualized=0"]
    locate = [f"experiment.path_experiments={tmp_path}", "experiment.name=three"]
    assert main(["train", *locate, "trainer.max_epochs=3", *tiny]) == 0
    folder = tmp_path / "three"
    before = {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
    capsys.readouterr()

    for fewer in (1, 2):
        assert main(["train", *locate, "resume=true", f"trainer.max_epochs={fewer}"]) == 2
        error = capsys.readouterr().err
        assert f"Config key 'trainer.max_epochs' is {fewer}, but" in error
        assert "has trained 3 epochs already" in error
        assert "Traceback" not in error
    assert {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()} == before


def test_a_resume_on_data_with_other_classes_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same number of classes fits the checkpoint: the run went on training each output as another class than it
    # had learned, and experiment.json was rewritten with the new names, without a word.
    import shutil

    from torchbricks.__main__ import main
    from torchbricks.datasets.shapes import write_shapes_dataset

    data = write_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=3, image_size=32) / "classification"
    other = shutil.copytree(data, tmp_path / "other")
    for split in ("train", "val"):
        (other / split / "circle").rename(other / split / "disc")
    tiny = ["data.batch_size=3", "data.image_size=32", "model.weights=null", "export_onnx=false", "n_visualized=0"]
    locate = [f"experiment.path_experiments={tmp_path}", "experiment.name=run"]
    assert main(["train", "task=classification", f"data.root={data}", *locate, "trainer.max_epochs=1", *tiny]) == 0
    folder = tmp_path / "run"
    before = {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
    capsys.readouterr()

    assert main(["train", *locate, "resume=true", f"data.root={other}", "trainer.max_epochs=2"]) == 2
    error = capsys.readouterr().err
    assert "resume=true: the data has the classes ['disc', 'square', 'triangle'], but" in error
    assert "trained on ['circle', 'square', 'triangle']" in error
    assert {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()} == before
    assert main(["train", *locate, "resume=true", f"data.root={data}", "trainer.max_epochs=2"]) == 0  # its own data


def test_a_resume_from_a_last_checkpoint_cut_short_is_refused_naming_it_before_anything_is_written(
    trained_experiment: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A copy of the experiment that did not finish: torch's zip reader failed with a traceback
    from torchbricks.__main__ import main

    folder = _copied(trained_experiment, tmp_path)
    last = folder / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
    capsys.readouterr()

    locate = [f"experiment.path_experiments={folder.parent}", f"experiment.name={folder.name}", "resume=true"]
    assert main(["train", *locate, "trainer.max_epochs=2"]) == 2

    error = capsys.readouterr().err
    assert f"Cannot read the training checkpoint {str(last)!r}: the file is cut short" in error
    assert "resume=true cannot continue from it; nothing was written. Copy checkpoints/best.ckpt over it" in error
    assert {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()} == before
