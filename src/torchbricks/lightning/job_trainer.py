"""The main job's trainer around the module: its loggers and callbacks from the job's settings, the quieting of
notices a user cannot act on, and what a finished fit reports (why it stopped, which epoch was best)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from torchbricks._checkpoint import read_training_checkpoint
from torchbricks._conventions import TOTAL_LOSS, logged_name
from torchbricks._experiment import CHECKPOINTS_FOLDER, launched_as_global_zero
from torchbricks._extras import require
from torchbricks.configuration.settings import JobSettings
from torchbricks.lightning._tensorboard_events import drop_events_from_step
from torchbricks.lightning.job_outputs import installed
from torchbricks.lightning.module import create_experiment_name

__all__ = [
    "TENSORBOARD_FLUSH_SECONDS",
    "best_checkpoint",
    "best_summary",
    "checkpoint_logging_step",
    "create_callbacks",
    "create_loggers",
    "quiet_third_party_notices",
    "training_summary",
]


def training_summary(trainer: Any) -> dict[str, Any]:
    """How many epochs a finished `trainer.fit` ran and why it stopped.

    `stop_reason` is `early_stopping` (with `early_stopping_message`, Lightning's explanation), `max_time`,
    `max_steps`, `max_epochs` or `interrupted`; `augmentations_off_epoch` is the last epoch trained with the
    augmentations when `early_stopping.finish_without_augmentations` turned them off.
    """
    pl = require("pytorch_lightning", "lightning")
    summary: dict[str, Any] = {"epochs": int(trainer.current_epoch)}
    stoppers = [callback for callback in trainer.callbacks if isinstance(callback, pl.callbacks.EarlyStopping)]
    timers = [callback for callback in trainer.callbacks if isinstance(callback, pl.callbacks.Timer)]
    if trainer.interrupted:
        summary["stop_reason"] = "interrupted"
    elif stoppers and (stoppers[0].stopped_epoch > 0 or stoppers[0].stopping_reason_message):  # epoch 0 too (a NaN loss)
        summary["stop_reason"] = "early_stopping"
        summary["early_stopping_message"] = stoppers[0].stopping_reason_message
    elif timers and (timers[0].time_remaining() or 0.0) <= 0.0:
        summary["stop_reason"] = "max_time"
    elif trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        summary["stop_reason"] = "max_steps"
    else:
        summary["stop_reason"] = "max_epochs"
    if stoppers and getattr(stoppers[0], "augmentations_off_epoch", None) is not None:
        summary["augmentations_off_epoch"] = stoppers[0].augmentations_off_epoch
    if timers:
        summary["training_seconds"] = round(timers[0].time_elapsed(), 2)
    return summary


def best_checkpoint(trainer: Any) -> Path | None:
    """The file of the best checkpoint by `checkpoint.monitor`, or None when none was saved (no epoch was validated)."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return Path(path) if path and Path(path).is_file() else None


def best_summary(trainer: Any, best: Path | None) -> dict[str, Any]:
    """Which weights were tested: `best_epoch` (counted from 1, as `epochs`; the epoch whose end the best checkpoint
    saved), its `best_score` of `checkpoint.monitor`, and `tested_weights` (`best`, or `last` without a checkpoint)."""
    if best is None:
        return {"best_epoch": None, "best_score": None, "tested_weights": "last"}
    checkpoint = read_training_checkpoint(best)
    score = trainer.checkpoint_callback.best_model_score
    return {
        "best_epoch": int(checkpoint["epoch"]) + 1,
        "best_score": None if score is None else float(score),
        "tested_weights": "best",
    }


TENSORBOARD_FLUSH_SECONDS = 5
"""How often TensorBoard's writer thread writes its events to disk: at most this long a stopped run waits for it."""


def create_loggers(path_experiment: Path, resumed_step: int | None = None) -> list[Any]:
    """Lightning's CSV logger (`logs/`), and its TensorBoard logger (`tensorboard/`) when tensorboard is installed.

    A resumed run (`resumed_step`, the logging step of the checkpoint it continues from, `checkpoint_logging_step`)
    logs its CSV into `logs/resumed_<time>/`, as Lightning's CSV logger would otherwise delete the interrupted run's
    file. The earlier TensorBoard event files lose their values from `resumed_step` on (the interrupted epoch's steps,
    a finished run's test values; `drop_events_from_step`), which the resumed run logs again, so every step keeps
    one value, the resumed run's, in every TensorBoard reader. The resumed run's event file also starts with a purge
    marker at that step, which some readers honour (`EventAccumulator`).

    TensorBoard's writer thread writes its events to disk every `TENSORBOARD_FLUSH_SECONDS` (5 s; its default is
    120 s). A Ctrl-C that lands while the job hands the writer an event can lose the wake-up of that thread, and
    closing the logger then waits for its next flush: the run stopped 2 minutes after Ctrl-C, in about a third of
    the runs interrupted at an epoch's end, "Detected KeyboardInterrupt, attempting graceful shutdown ..." on screen.
    """
    pl = require("pytorch_lightning", "lightning")
    version = "" if resumed_step is None else f"resumed_{create_experiment_name()}"
    from torchbricks.lightning._csv_logger import AtomicCSVLogger

    # metrics.csv and hparams.yaml written atomically: Lightning's writer appends in place (a full disk cut a row)
    loggers = [AtomicCSVLogger(save_dir=str(path_experiment), name="logs", version=version)]
    if installed("tensorboard"):
        folder = path_experiment / "tensorboard"
        if resumed_step is not None and folder.is_dir() and launched_as_global_zero():  # one process rewrites
            drop_events_from_step(folder, resumed_step)
        loggers.append(
            pl.loggers.TensorBoardLogger(
                save_dir=str(path_experiment),
                name="tensorboard",
                version="",
                default_hp_metric=False,
                purge_step=resumed_step,  # SummaryWriter's: None writes no marker
                flush_secs=TENSORBOARD_FLUSH_SECONDS,
            )
        )
    return loggers


def checkpoint_logging_step(checkpoint: Path) -> int:
    """The step Lightning logs at when it resumes from `checkpoint`: its count of batches that stepped the
    optimizer (`callbacks.logging_step`), kept in the checkpoint's fit loop state; else the global step."""
    saved = read_training_checkpoint(checkpoint, mmap=True)
    epoch_loop = saved.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return int(epoch_loop.get("_batches_that_stepped", saved.get("global_step", 0)))


def create_callbacks(settings: JobSettings, path_experiment: Path, class_names: list[str] | None = None) -> list[Any]:
    """The main job's callbacks: per-epoch seeding, the metric history and curves, early stopping, checkpoints, the
    learning rate sent to the loggers, the progress (a bar in a terminal, `TerminalProgressBar`, else a line per epoch,
    `LineProgressBar`), and prediction pictures for TensorBoard."""
    pl = require("pytorch_lightning", "lightning")
    from torchbricks.lightning.callbacks import (
        BestCheckpoint,
        BudgetEarlyStopping,
        EpochSeed,
        ExponentialMovingAverage,
        LearningRateLogger,
        LineProgressBar,
        MetricHistory,
        TensorBoardPredictions,
        TerminalProgressBar,
    )

    draw = installed("matplotlib")
    every = settings.pictures_every_n_epochs
    monitored, mode = settings.checkpoint.monitored_value, settings.checkpoint.mode
    callbacks: list[Any] = [EpochSeed(settings.seed), MetricHistory(path_experiment, draw=draw, draw_every_n_epochs=every)]
    if settings.early_stopping.patience is not None:
        callbacks.append(
            BudgetEarlyStopping(
                start_fraction=settings.early_stopping.start_fraction,
                finish_without_augmentations=settings.early_stopping.finish_without_augmentations,
                monitor=monitored,
                mode=mode,
                patience=settings.early_stopping.patience,
                min_delta=settings.early_stopping.min_delta,
                check_on_train_epoch_end=True,  # as the checkpoints: after validation and the epoch's metrics
                strict=False,  # the name is checked before training; a first epoch cut by max_time has no value yet
            )
        )
    if settings.enable_checkpointing:
        # Two callbacks: Lightning 2.6's save_last=True writes last.ckpt only in an epoch that also improved best.ckpt,
        # so a resumed run would go back to the best epoch. The best one first: it is `trainer.checkpoint_callback`.
        folder = str(path_experiment / CHECKPOINTS_FOLDER)
        options = {
            "dirpath": folder,
            "mode": mode,
            "save_on_train_epoch_end": True,  # after validation and the epoch's metrics: a resumed run starts the next epoch
            "enable_version_counter": False,
        }
        # best: among epochs with the same monitored value, the lowest validation loss (a value at its ceiling,
        # mAP@0.5 or accuracy 1.0, would otherwise keep the first such epoch however much better the later ones fit)
        validation_loss = logged_name("validation", TOTAL_LOSS)
        tie_breaker = None if monitored == validation_loss else validation_loss
        callbacks.append(BestCheckpoint(filename="best", monitor=monitored, tie_breaker=tie_breaker, **options))
        callbacks.append(pl.callbacks.ModelCheckpoint(filename="last", monitor=None, save_top_k=1, **options))
    callbacks.append(LearningRateLogger())
    if settings.enable_progress_bar:
        callbacks.append(TerminalProgressBar() if sys.stdout.isatty() else LineProgressBar())
    if draw and installed("tensorboard") and settings.n_visualized:
        callbacks.append(TensorBoardPredictions(settings.n_visualized, class_names, every_n_epochs=every))
    if settings.ema_decay is not None:  # first: the average is in place when the others draw at the end of training
        callbacks.insert(0, ExponentialMovingAverage(settings.ema_decay))
    return callbacks


def quiet_third_party_notices(resume: bool = False) -> None:
    """Silences what a user of the main job can neither act on nor needs to read.

    - Lightning's "module(s) in eval mode at the start of training": frozen bricks (`BrickNotTrainable`) keep their
      modules in eval mode on purpose, so batch-norm statistics and dropout stay frozen.
    - Lightning's advertising tips for its cloud services, and its use of a torch API that torch deprecated.
    - With `resume`, Lightning's warning that the checkpoint folder is not empty: resuming is why it is not.
    - Lightning's note that an epoch has fewer batches than `log_every_n_steps`: the history, the curves and the
      progress lines use epoch values.
    - Lightning's lines that no GPU and no TPU is there ("GPU available: False, used: False"), and that it loads the
      training loader to count the steps (for the learning-rate schedule): nothing a user can act on. A GPU that is
      there is still said, and Lightning's warning when one is there but not used stays.
    - Lightning's "Restoring states from the checkpoint path at <file>" before the best checkpoint is tested or a
      run resumed: its next line, "Loaded model weights from the checkpoint at <file>" ("Restored all states ..."
      when resuming), names the same file and says what was read from it.
    """
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training", category=UserWarning)
    if resume:  # Lightning warns that the checkpoint folder is not empty: resuming is why it is not
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
    # The history, the curves and the per-epoch lines use epoch values; a short epoch only thins the step log.
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging interval")
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(existing, _DropNotices) for existing in logger.filters):
        logger.addFilter(_DropNotices())


_DROPPED_NOTICES = (
    "\N{ELECTRIC LIGHT BULB} Tip:",
    "GPU available: False, used: False",
    "TPU available: False, using: 0 TPU cores",
    "Loading `train_dataloader` to estimate number of stepping batches.",
    "Restoring states from the checkpoint path at ",
)


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_DROPPED_NOTICES)
