"""The main job's callbacks and loggers, from its settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from torchbricks.configuration import compose_config, read_job_settings
from torchbricks.lightning.callbacks import BestCheckpoint, EpochSeed, MetricHistory
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


def test_no_checkpoint_and_no_early_stopping_when_both_are_off(tmp_path: Path) -> None:
    callbacks = _callbacks(tmp_path, "trainer.enable_checkpointing=false")

    assert not any(isinstance(callback, (pl.callbacks.ModelCheckpoint, pl.callbacks.EarlyStopping)) for callback in callbacks)


def test_a_resumed_run_logs_its_csv_beside_the_interrupted_one(tmp_path: Path) -> None:
    first, resumed = create_loggers(tmp_path)[0], create_loggers(tmp_path, resumed_step=12)[0]

    assert Path(first.log_dir) == tmp_path / "logs"
    assert Path(resumed.log_dir).parent == tmp_path / "logs"
    assert Path(resumed.log_dir).name.startswith("resumed_")


def test_a_resumed_runs_tensorboard_values_replace_the_interrupted_runs_from_the_checkpoints_step(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    interrupted = create_loggers(tmp_path)[-1]
    for step in range(6):  # stopped in the epoch after the checkpoint of step 3
        interrupted.log_metrics({"loss": float(step)}, step=step)
    interrupted.finalize("failed")
    resumed = create_loggers(tmp_path, resumed_step=3)[-1]
    for step in range(3, 8):
        resumed.log_metrics({"loss": 10.0 + step}, step=step)
    resumed.finalize("success")

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    values = [(value.step, value.value) for value in events.Scalars("loss")]
    assert values == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0), (5, 15.0), (6, 16.0), (7, 17.0)]


def test_the_logging_step_of_a_checkpoint_is_lightnings_count_of_batches_that_stepped(tmp_path: Path) -> None:
    lightning = {"global_step": 6, "loops": {"fit_loop": {"epoch_loop.state_dict": {"_batches_that_stepped": 12}}}}
    torch.save(lightning, tmp_path / "two_optimizers.ckpt")
    torch.save({"global_step": 6}, tmp_path / "without_loops.ckpt")

    assert checkpoint_logging_step(tmp_path / "two_optimizers.ckpt") == 12
    assert checkpoint_logging_step(tmp_path / "without_loops.ckpt") == 6
