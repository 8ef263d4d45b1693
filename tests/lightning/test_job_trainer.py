"""The main job's callbacks and loggers, from its settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from helpers import tensorboard_values_in_files

from torchbricks.configuration import compose_config, read_job_settings
from torchbricks.lightning.callbacks import BestCheckpoint, EpochSeed, ExponentialMovingAverage, MetricHistory
from torchbricks.lightning.job_trainer import checkpoint_logging_step, create_callbacks, create_loggers


def _callbacks(tmp_path: Path, *overrides: str) -> list[pl.Callback]:
    return create_callbacks(read_job_settings(compose_config(list(overrides))), tmp_path / "run")


def test_the_checkpoints_and_early_stopping_follow_the_monitored_value(tmp_path: Path) -> None:
    callbacks = _callbacks(tmp_path, "early_stopping.patience=3", "early_stopping.min_delta=0.5", "checkpoint.mode=max")

    stopping = next(callback for callback in callbacks if isinstance(callback, pl.callbacks.EarlyStopping))
    assert (stopping.monitor, stopping.patience, stopping.min_delta, stopping.mode) == ("validation/loss", 3, 0.5, "max")
    best, last = (callback for callback in callbacks if isinstance(callback, pl.callbacks.ModelCheckpoint))
    assert (best.monitor, best.filename, best.dirpath) == ("validation/loss", "best", str(tmp_path / "run" / "checkpoints"))
    assert (last.monitor, last.filename) == (None, "last")
    assert best.tie_breaker is None  # the monitored value is the validation loss itself
    assert [type(callback) for callback in callbacks[:2]] == [EpochSeed, MetricHistory]
    best = next(
        callback
        for callback in _callbacks(tmp_path, "task=detection", "data.root=unused")
        if isinstance(callback, BestCheckpoint)
    )
    assert (best.monitor, best.tie_breaker) == ("validation/detection/map_50", "validation/loss")


def test_a_list_of_monitored_values_is_followed_through_their_mean(tmp_path: Path) -> None:
    callbacks = _callbacks(tmp_path, "early_stopping.patience=2", "checkpoint.monitor=[validation/a,validation/b]")

    monitors = {getattr(callback, "monitor", None) for callback in callbacks[2:4]}
    assert monitors == {"validation/monitored_mean"}


def test_the_job_sends_the_learning_rate_to_its_loggers(tmp_path: Path) -> None:
    from torchbricks.lightning.callbacks import LearningRateLogger

    assert sum(isinstance(callback, LearningRateLogger) for callback in _callbacks(tmp_path)) == 1


def test_ema_decay_puts_the_moving_average_first_and_none_without_it(tmp_path: Path) -> None:
    callbacks = _callbacks(tmp_path, "ema_decay=0.95", "n_visualized=4")

    # first: the average is in place when the prediction pictures are drawn at the end of training
    assert isinstance(callbacks[0], ExponentialMovingAverage)
    assert callbacks[0].decay == 0.95
    assert not any(isinstance(callback, ExponentialMovingAverage) for callback in _callbacks(tmp_path))


def test_no_checkpoint_and_no_early_stopping_when_both_are_off(tmp_path: Path) -> None:
    callbacks = _callbacks(tmp_path, "trainer.enable_checkpointing=false")

    assert not any(isinstance(callback, (pl.callbacks.ModelCheckpoint, pl.callbacks.EarlyStopping)) for callback in callbacks)


def test_a_resumed_run_logs_its_csv_beside_the_interrupted_one(tmp_path: Path) -> None:
    first, resumed = create_loggers(tmp_path)[0], create_loggers(tmp_path, resumed_step=12)[0]

    assert Path(first.log_dir) == tmp_path / "logs"
    assert Path(resumed.log_dir).parent == tmp_path / "logs"
    assert Path(resumed.log_dir).name.startswith("resumed_")


def _log_an_interrupted_and_a_resumed_run(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard values of a run stopped in the epoch after its checkpoint of step 3, and of the run resumed from
    that checkpoint; returns the values a reader must see: the resumed run's from step 3 on."""
    interrupted = create_loggers(folder)[-1]
    for step in range(6):
        interrupted.log_metrics({"loss": float(step)}, step=step)
    interrupted.log_metrics({"test/loss": 99.0}, step=5)  # a value the resumed run logs at another step
    interrupted.finalize("failed")
    resumed = create_loggers(folder, resumed_step=3)[-1]
    for step in range(3, 8):
        resumed.log_metrics({"loss": 10.0 + step}, step=step)
    resumed.log_metrics({"test/loss": 1.0}, step=7)
    resumed.finalize("success")
    return {
        "loss": [(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0), (5, 15.0), (6, 16.0), (7, 17.0)],
        "test/loss": [(7, 1.0)],
    }


def test_a_resumed_runs_tensorboard_values_replace_the_interrupted_runs_from_the_checkpoints_step(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator as ServerAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    expected = _log_an_interrupted_and_a_resumed_run(tmp_path)
    assert tensorboard_values_in_files(tmp_path / "tensorboard") == expected  # as the Rust data server reads them
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert {tag: [(value.step, value.value) for value in events.Scalars(tag)] for tag in expected} == expected
    served = ServerAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})  # --load_fast=false's
    served.Reload()
    served_values = {
        tag: [(value.step, float(make_ndarray(value.tensor_proto))) for value in served.Tensors(tag)] for tag in expected
    }
    assert served_values == expected


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", ["true", "false"])  # the Rust data server, the Python one
def test_tensorboard_serves_a_resumed_runs_values_alone(tmp_path: Path, load_fast: str) -> None:
    pytest.importorskip("tensorboard_data_server" if load_fast == "true" else "tensorboard")
    expected = _log_an_interrupted_and_a_resumed_run(tmp_path)

    served = _served_scalars(tmp_path, load_fast, run="tensorboard", tags=["loss", "test/loss"])

    assert served == expected


def _served_scalars(logdir: Path, load_fast: str, run: str, tags: list[str]) -> dict[str, list[tuple[int, float]]]:
    """The scalars `tensorboard --logdir logdir` serves over HTTP once it has read the files (two reloads later)."""
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), f"--load_fast={load_fast}"]
    output = logdir / "tensorboard_output.txt"  # a file, not a pipe: a full pipe would stop the server
    with open(output, "w") as file:
        server = subprocess.Popen([*command, "--port=0", "--host=127.0.0.1", "--reload_interval=1"], stderr=file, stdout=file)
    try:
        deadline = time.monotonic() + 120
        address = None
        while address is None and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
            address = re.search(r"(http://127\.0\.0\.1:\d+)/", output.read_text())
        assert address is not None, output.read_text()
        while run not in _served_json(f"{address[1]}/data/plugin/scalars/tags"):
            assert time.monotonic() < deadline, "tensorboard found no run"
            time.sleep(0.2)
        time.sleep(3)  # two reloads: every file read
        served = {}
        for tag in tags:
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            served[tag] = [(step, value) for _, step, value in _served_json(f"{address[1]}/data/plugin/scalars/scalars?{query}")]
        return served
    finally:
        server.terminate()
        server.wait(timeout=30)


def _served_json(address: str) -> Any:
    with urllib.request.urlopen(address, timeout=30) as response:
        return json.load(response)


def test_the_logging_step_of_a_checkpoint_is_lightnings_count_of_batches_that_stepped(tmp_path: Path) -> None:
    lightning = {"global_step": 6, "loops": {"fit_loop": {"epoch_loop.state_dict": {"_batches_that_stepped": 12}}}}
    torch.save(lightning, tmp_path / "two_optimizers.ckpt")
    torch.save({"global_step": 6}, tmp_path / "without_loops.ckpt")

    assert checkpoint_logging_step(tmp_path / "two_optimizers.ckpt") == 12
    assert checkpoint_logging_step(tmp_path / "without_loops.ckpt") == 6


def _fail_the_next_write(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The next write of a file named `name` fails once half written, as on a full disk."""
    import builtins

    real_open = builtins.open
    failed: list[bool] = []

    class FullDisk:
        def __init__(self, file: Any) -> None:
            self.file = file

        def write(self, text: str) -> int:
            self.file.write(text[: len(text) // 2])
            failed.append(True)
            raise OSError(28, "No space left on device")

        def __getattr__(self, attribute: str) -> Any:
            return getattr(self.file, attribute)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

    def open_file(file: Any, mode: str = "r", *arguments: Any, **keywords: Any) -> Any:
        opened = real_open(file, mode, *arguments, **keywords)
        is_target = Path(str(file)).name == name or Path(str(file)).name.startswith(f".{name}.")
        return FullDisk(opened) if is_target and mode[0] in "wa" and not failed else opened

    monkeypatch.setattr(builtins, "open", open_file)


def test_the_job_csv_logger_leaves_the_previous_complete_metrics_csv_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lightning appended to metrics.csv in place: a full disk left a cut row, read as a wrong value or refused
    import csv

    logger = create_loggers(tmp_path)[0]
    logger.log_metrics({"train/loss": 1.5}, step=0)
    logger.save()
    before = (tmp_path / "logs" / "metrics.csv").read_text()

    logger.log_metrics({"train/loss": 1.25, "validation/accuracy": 0.5}, step=1)  # a new column: rewritten
    _fail_the_next_write(monkeypatch, "metrics.csv")
    with pytest.raises(OSError, match="No space left"):
        logger.save()
    assert (tmp_path / "logs" / "metrics.csv").read_text() == before
    assert [path.name for path in (tmp_path / "logs").iterdir()] == ["metrics.csv"]

    logger.log_metrics({"train/loss": 1.0}, step=2)
    logger.save()  # the rows the failed write held are written with the next
    rows = list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))
    assert rows == [
        {"step": "0", "train/loss": "1.5", "validation/accuracy": ""},
        {"step": "1", "train/loss": "1.25", "validation/accuracy": "0.5"},
        {"step": "2", "train/loss": "1.0", "validation/accuracy": ""},
    ]
    logger.log_metrics({"train/loss": 0.5}, step=3)  # same columns: appended after a copy of the file
    logger.save()
    assert list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))[-1]["train/loss"] == "0.5"


def test_the_job_csv_logger_leaves_the_previous_complete_hparams_yaml_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = create_loggers(tmp_path)[0]
    logger.log_hyperparams({"learning_rate": 0.1})
    before = (tmp_path / "logs" / "hparams.yaml").read_text()
    assert "learning_rate: 0.1" in before

    _fail_the_next_write(monkeypatch, "hparams.yaml")
    with pytest.raises(OSError, match="No space left"):
        logger.log_hyperparams({"batch_size": 8})
    assert (tmp_path / "logs" / "hparams.yaml").read_text() == before
    assert [path.name for path in (tmp_path / "logs").iterdir()] == ["hparams.yaml"]
