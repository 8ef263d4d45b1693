"""Lightning callbacks of the main job: per-epoch seeding, the metric history and its curves, line progress output
and prediction pictures for TensorBoard.

Collective calls: under DDP, reading a metric logged with `sync_dist=True` all-reduces it, so every callback here
reads metrics on every process at the same point and only the global-zero process writes or prints.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch.utils.data import RandomSampler

from torchbricks._conventions import logged_name
from torchbricks._extras import require
from torchbricks._files import json_ready, write_text
from torchbricks.errors import ConfigError, did_you_mean_key

require("pytorch_lightning", "lightning")
import pytorch_lightning as pl  # noqa: E402 (after `require`, so a missing extra names what to install)

__all__ = [
    "BestCheckpoint",
    "BudgetEarlyStopping",
    "EpochSeed",
    "ExponentialMovingAverage",
    "LearningRateLogger",
    "LineProgressBar",
    "MetricHistory",
    "TensorBoardPredictions",
    "TerminalProgressBar",
    "epoch_seed",
    "learning_rates",
    "logging_step",
]

HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A seed drawn from (seed, epoch, stream): the same on every run, unrelated between epochs.

    Example:
        >>> epoch_seed(0, 1) == epoch_seed(0, 1) != epoch_seed(1, 0)
        True
    """
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def logging_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs values at now: its count of training batches that stepped the optimizer, which a
    checkpoint keeps and a resumed run continues (Lightning reads it in `log_metrics` but does not expose it)."""
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


class EpochSeed(pl.Callback):
    """Seeds every training epoch from `(seed, epoch)`, so a resumed run draws what an uninterrupted one draws.

    At the start of each training epoch the global generators (torch, NumPy, `random`) are seeded, and so are
    the training loaders' shuffling (a `RandomSampler`'s own generator) and the base seed of their workers. The
    data order and the dropout masks of epoch k thus depend only on the seed and k, not on what ran before:
    a run resumed at epoch k sees the batches the uninterrupted run saw. Under DDP the `DistributedSampler`
    already shuffles by seed and epoch and is left alone.

    Args:
        seed: The run's seed (the config's `seed`).
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        value = epoch_seed(self.seed, epoch)
        random.seed(value)
        np.random.seed(value % 2**32)
        torch.manual_seed(value)
        combined = trainer.fit_loop._combined_loader  # the loaders of this epoch; Lightning has no public handle
        for loader in combined.flattened if combined is not None else []:
            if isinstance(getattr(loader, "sampler", None), RandomSampler):
                loader.sampler.generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, stream=1))
            if hasattr(loader, "generator"):  # draws the workers' base seed when an iterator is created
                loader.generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, stream=2))


class MetricHistory(pl.Callback):
    """Keeps every epoch's logged scalars, writes them to `history.json` and draws `curves.png`.

    Lightning calls a callback's `on_train_epoch_end` before the LightningModule's, which computes the epoch's
    metrics, so an epoch is recorded at the next point where they are complete: when the next epoch starts,
    when training ends, and when a checkpoint is saved after the epoch (`ModelCheckpoint(save_on_train_epoch_end=
    True)` saves after the module's hook). The history travels in those checkpoints, so a resumed run's curves
    start at epoch 0. An epoch without validation (`trainer.check_val_every_n_epoch` above 1) has no validation
    values: Lightning keeps the last ones it logged, which would repeat an earlier epoch's.

    `history.json` is written every epoch; `curves.png` every `draw_every_n_epochs` epochs and when training
    ends (a matplotlib figure takes about a second to draw, as long as a small model's epoch).

    Args:
        path_experiment: The experiment folder receiving `history.json` and `curves.png`.
        draw: Draw `curves.png` (needs matplotlib, the `plots` extra).
        draw_every_n_epochs: Redraw `curves.png` after every this many epochs (and always at the end).
    """

    def __init__(self, path_experiment: Path | str, draw: bool = True, draw_every_n_epochs: int = 1) -> None:
        if draw_every_n_epochs < 1:
            raise ConfigError(f"MetricHistory: draw_every_n_epochs must be 1 or more, got {draw_every_n_epochs}.")
        self.path_experiment = Path(path_experiment)
        self.draw = draw
        self.draw_every_n_epochs = draw_every_n_epochs
        self.history: list[dict[str, float]] = []
        self._trainer: pl.Trainer | None = None
        self._pending: int | None = None
        self._validated = False  # whether validation ran since the last recorded epoch
        self._drawn = 0  # number of epochs in the last curves.png

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pending = trainer.current_epoch

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(final=True)

    def _record(self, final: bool = False) -> None:
        if self._trainer is None:
            return
        trainer = self._trainer
        if self._pending is None:
            if final and trainer.is_global_zero and self.history and self._drawn != len(self.history):
                self.write()  # the last epoch was recorded by a checkpoint without its curves
            return
        record: dict[str, float] = {"epoch": self._pending}
        self._pending = None
        stale = () if self._validated else (logged_name("validation", ""),)  # an earlier epoch's validation values
        self._validated = False
        for name, value in sorted(trainer.callback_metrics.items()):  # on every process: may all-reduce
            scalar = isinstance(value, torch.Tensor) and value.numel() == 1
            if scalar and not name.endswith("_step") and not name.startswith(stale):
                record[name.removesuffix("_epoch")] = float(value)
        self.history = [entry for entry in self.history if entry["epoch"] != record["epoch"]] + [record]
        if trainer.is_global_zero:
            due = final or (int(record["epoch"]) + 1) % self.draw_every_n_epochs == 0
            self.write(draw=None if due else False)

    def write(self, draw: bool | None = None) -> None:
        """Writes `history.json` and, when `draw` (default: the callback's `draw`), `curves.png` into the experiment
        folder."""
        text = json.dumps(json_ready(self.history), indent=2, allow_nan=False) + "\n"
        self.path_experiment.mkdir(parents=True, exist_ok=True)
        write_text(self.path_experiment / HISTORY_FILE, text)
        if self.draw if draw is None else draw:
            self._drawn = len(self.history)
            from torchbricks.lightning.report import plot_curves, save_figure

            save_figure(plot_curves(self.history), self.path_experiment / CURVES_FILE)

    def state_dict(self) -> dict[str, Any]:
        self._record()  # a checkpoint saved after the epoch's end holds that epoch
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))


class BudgetEarlyStopping(pl.callbacks.EarlyStopping):
    """Lightning's `EarlyStopping` that ends no run before `start_fraction` of its training budget has passed.

    Until then it follows the monitored value and counts the epochs without improvement as usual, but does not stop
    (a non-finite value or a divergence threshold still stops at once); from then on it stops as soon as `patience`
    epochs have passed without improvement. Models that sit at chance for a while before they learn (look-alike
    classes) are not cut off during that start. The budget is the one the learning rate schedule follows
    (`torchbricks.lightning.optimizers.training_progress`).

    With `finish_without_augmentations`, the first time it would stop it turns the training augmentations off instead
    (the data module's `augmentation_switch`, `torchbricks.datasets.transforms.AugmentationSwitch`) and counts its
    patience again: the run goes on with the training images as they are (or with the data module's last-phase
    augmentations, `data.last_phase_augmentations`) until the value stops improving again. An
    augmentation that destroys what tells two classes apart (a turn where the angle is the label) leaves a plateau
    near chance, which the images as they are then resolve; where the augmentations helped, the best checkpoint of
    the first part stays the one tested unless the last part does better.

    Args:
        start_fraction: Fraction of the training budget, in [0, 1), before which no run is stopped.
        finish_without_augmentations: Turn the augmentations off at the first plateau instead of stopping (a data
            module without an `augmentation_switch` stops as before).
        **kwargs: `EarlyStopping`'s arguments (`monitor`, `mode`, `patience`, `min_delta`, ...).
    """

    def __init__(self, *, start_fraction: float = 0.0, finish_without_augmentations: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= start_fraction < 1:
            raise ConfigError(f"BudgetEarlyStopping: start_fraction must be in [0, 1), got {start_fraction!r}.")
        self.start_fraction = start_fraction
        self.finish_without_augmentations = finish_without_augmentations
        self.augmentations_off_epoch: int | None = None
        """The last epoch (counted from 1) trained with the augmentations, once they were turned off."""
        self._trainer: Any = None
        self._validated = False  # whether validation ran since the last check

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._validated = self._validated or not trainer.sanity_checking
        # a training value may be logged after validation (the module's epoch values): only validation values here
        if not self._check_on_train_epoch_end and self._validated_monitor and not self._should_skip_check(trainer):
            self._check_monitor_logged(trainer)
        super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Checks at the end of each epoch, but not at an epoch without validation (`trainer.check_val_every_n_epoch`
        above 1) when the monitored value is a validation value: Lightning keeps the last one logged, so that epoch
        would count against the patience with the previous epoch's value."""
        validated, self._validated = self._validated, False
        if validated or not self._validated_monitor:
            if self._check_on_train_epoch_end and not self._should_skip_check(trainer):
                self._check_monitor_logged(trainer)
            super().on_train_epoch_end(trainer, pl_module)

    def _check_monitor_logged(self, trainer: Any) -> None:
        """Raises when the monitored value is not logged at a check where it should be (after a validation for a
        validation value): with `strict=False`, which lets a first epoch cut short by `max_time` pass, Lightning
        skips such a check without a word, and a misspelt monitor or an average never logged stopped nothing."""
        if trainer.fast_dev_run or self.monitor in trainer.callback_metrics:
            return
        logged = sorted(name for name in trainer.callback_metrics if not name.endswith("_step"))
        raise ConfigError(
            f"BudgetEarlyStopping monitors {self.monitor!r}, which is not logged at the end of epoch "
            f"{int(trainer.current_epoch) + 1}{' after its validation' if self._validated_monitor else ''}: early stopping "
            f"would never act. Logged: {logged}.{did_you_mean_key(str(self.monitor), logged)}"
        )

    @property
    def _validated_monitor(self) -> bool:
        """Whether the monitored value is a validation value (logged only in epochs that validate)."""
        return str(self.monitor).startswith(logged_name("validation", ""))

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "augmentations_off_epoch": self.augmentations_off_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning's state, but the patience given now: a resumed run with `early_stopping.patience=20` waits
        20 epochs (Lightning restores the checkpoint's patience, so the override was silently ignored)."""
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience
        self.augmentations_off_epoch = state_dict.get("augmentations_off_epoch")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """A run resumed from the checkpoint of a run early stopping ended stops again before training an epoch
        (Lightning's `EarlyStopping` checks only at an epoch's end, so it trained one more); a larger
        `early_stopping.patience` lets it go on. A run resumed in its phase without augmentations stays in it."""
        if self.augmentations_off_epoch is not None:
            self._turn_augmentations_off(trainer, announce=False)
        # The patience may have run out before start_fraction of the budget (or before the augmentations went off):
        # the same rules as at an epoch's end decide, or the resumed run stopped before the budget allowed it.
        waited = self.patience > 0 and self.wait_count >= self.patience and trainer.current_epoch > 0
        if waited and self._stops_after_waiting(trainer, last_epoch=int(trainer.current_epoch)):
            trainer.should_stop = True
            self.stopped_epoch = trainer.current_epoch - 1

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        waited = self.wait_count >= self.patience and bool(torch.isfinite(current))
        trainer = self._trainer
        if should_stop and waited and trainer is not None and not self._stops_after_waiting(trainer, trainer.current_epoch + 1):
            return False, None
        return should_stop, reason

    def _stops_after_waiting(self, trainer: Any, last_epoch: int) -> bool:
        """Whether a run whose patience ran out at `last_epoch` (counted from 1) stops: not before `start_fraction`
        of its budget, and with `finish_without_augmentations` not before the augmentations are off (which this
        turns off, counting the patience again)."""
        if self.start_fraction > 0:
            from torchbricks.lightning.optimizers import training_progress

            if training_progress(trainer) < self.start_fraction:
                return False
        finishing = self.finish_without_augmentations and self.augmentations_off_epoch is None
        if finishing and self._turn_augmentations_off(trainer, announce=True, last_epoch=last_epoch):
            self.wait_count = 0
            return False
        return True

    def _turn_augmentations_off(self, trainer: Any, announce: bool, last_epoch: int | None = None) -> bool:
        """Turns the training augmentations off (the data module's `augmentation_switches`); False if it has none."""
        switches = _augmentation_switches(getattr(trainer, "datamodule", None))
        if not switches:
            return False
        for switch in switches:
            switch.turn_off()
        if announce:
            self.augmentations_off_epoch = int(trainer.current_epoch) + 1 if last_epoch is None else last_epoch
            from pytorch_lightning.utilities import rank_zero_info

            last_phase = _has_last_phase_augmentations(getattr(trainer, "datamodule", None))
            how = "with data.last_phase_augmentations instead" if last_phase else "without them"
            rank_zero_info(
                f"{self.monitor} did not improve for {self.patience} epochs with the augmentations: training goes on "
                f"{how} until it stops improving again (early_stopping.finish_without_augmentations)."
            )
        return True


def _augmentation_switches(data_module: Any) -> list[Any]:
    """The `AugmentationSwitch`es of a data module and of the sources of a multi-source one."""
    switches = (getattr(module, "augmentation_switch", None) for module in _data_modules(data_module))
    return [switch for switch in switches if switch is not None]


def _has_last_phase_augmentations(data_module: Any) -> bool:
    """Whether the training pipeline of a data module (or of a source of a multi-source one) has augmentations of its
    own for the last phase (`data.last_phase_augmentations`)."""
    return any(
        getattr(getattr(module, "train_transform", None), "has_last_phase_augmentations", False)
        for module in _data_modules(data_module)
    )


def _data_modules(data_module: Any) -> list[Any]:
    """A data module, the one it wraps (`RenamedDataModule.data_module`) and, for a multi-source one, its sources
    (and theirs), in order; none for None."""
    if data_module is None:
        return []
    found = [data_module, *_data_modules(getattr(data_module, "data_module", None))]
    for source in (getattr(data_module, "sources", None) or {}).values():
        found += _data_modules(source)
    return found


class ExponentialMovingAverage(pl.callbacks.WeightAveraging):
    """Keeps an exponential moving average (EMA) of the module's weights and buffers, updated after every optimizer
    step, and puts it in the trained weights' place wherever weights are judged or kept: validation (so early
    stopping and `best.ckpt` follow the averaged weights), every checkpoint's `state_dict` (the trained weights
    travel beside it, and a resumed run continues both) and the end of training. The tested, exported and saved
    bricks are therefore the averaged ones. The average stays in place until validation has ended, so every other
    callback's validation hooks see it; list this callback before those that read the weights when training ends
    (the main job puts it first). Lightning's `WeightAveraging` does the swapping and the checkpoints; this class
    gives it the average:

        averaged <- rate * averaged + (1 - rate) * trained,   rate = min(decay, (1 + n) / (10 + n))

    after the n-th update. The warm-up in `rate` keeps the first hundred steps from dragging the randomly
    initialised weights along for a thousand more (as TensorFlow's `ExponentialMovingAverage(num_updates=)` does).
    Copied, not averaged: integer buffers (batch norm's count of batches) and, in a `LightningBrickCollection`,
    everything outside its `brick_collection` (the loss balancer's weights and loss history weigh the losses; they
    are not the model, and an average of a history that starts as NaN would stay NaN).

    Args:
        decay: The weight of the average at each step once warmed up, in (0, 1): 0.99 averages over about the
            last hundred steps.

    Example:
        >>> ExponentialMovingAverage(decay=0.99).decay
        0.99
    """

    def __init__(self, decay: float) -> None:
        if not 0 < decay < 1:
            raise ConfigError(f"ExponentialMovingAverage: decay must be in (0, 1), got {decay!r}.")
        self.decay = decay
        self._followed: set[int] = set()  # storage addresses of the averaged module's tensors that copy the trained ones
        super().__init__(multi_avg_fn=self._average)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        averaged = self._average_model.module if self._average_model is not None else None
        collection = getattr(averaged, "brick_collection", None)
        if averaged is None or collection is None:
            return
        model = {tensor.data_ptr() for tensor in (*collection.parameters(), *collection.buffers())}
        every = (*averaged.parameters(), *averaged.buffers())
        self._followed = {tensor.data_ptr() for tensor in every if tensor.data_ptr() not in model}

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._follow_the_trained(pl_module)
        super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The average stays in place until validation ends (`on_validation_end`): the other callbacks' epoch-end
        hooks, whatever their order (the prediction pictures), see the weights that were validated."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Puts the trained weights back, before any checkpoint is saved (Lightning calls checkpoint callbacks last)."""
        super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._follow_the_trained(pl_module)
        super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._follow_the_trained(pl_module)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def _follow_the_trained(self, pl_module: pl.LightningModule) -> None:
        """Copies the followed tensors, which may change outside the optimizer steps (the loss balancer's history
        at the end of an epoch), from the trained module, before the average is shown or saved."""
        if not self._followed or self._average_model is None:
            return
        averaged = (*self._average_model.module.parameters(), *self._average_model.module.buffers())
        trained = (*pl_module.parameters(), *pl_module.buffers())
        with torch.no_grad():
            for average, current in zip(averaged, trained, strict=True):
                if average.data_ptr() in self._followed:
                    average.copy_(current)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Resuming a fit restores both the average and the trained weights. Testing or validating a checkpoint
        keeps what Lightning loaded, its `state_dict`: the average. (Lightning 2.6 also calls this hook when
        `trainer.test(ckpt_path=...)` follows a fit, and `WeightAveraging` would then load the trained weights
        over the average, so the test would silently judge weights that were never validated.)"""
        if trainer.state.fn == "fit":
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def _average(self, averaged: list[torch.Tensor], trained: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        """One update of a group of same-type tensors (`AveragedModel` groups them by device and dtype)."""
        copied = [not tensor.is_floating_point() or tensor.data_ptr() in self._followed for tensor in averaged]
        if any(copied):
            torch._foreach_copy_(
                [tensor for tensor, copy in zip(averaged, copied, strict=True) if copy],
                [tensor for tensor, copy in zip(trained, copied, strict=True) if copy],
            )
        if not all(copied):
            n = float(n_averaged)
            rate = min(self.decay, (1 + n) / (10 + n))
            torch._foreach_lerp_(
                [tensor for tensor, copy in zip(averaged, copied, strict=True) if not copy],
                [tensor for tensor, copy in zip(trained, copied, strict=True) if not copy],
                1 - rate,
            )


class BestCheckpoint(pl.callbacks.ModelCheckpoint):
    """Lightning's `ModelCheckpoint` keeping one best checkpoint, where an epoch that only equals the best value of
    `monitor` replaces it when its `tie_breaker` (a logged value, lower is better) is lower.

    A monitored value at its ceiling (mAP@0.5 of 1.0 on easy boxes, a validation accuracy of 1.0 on 40 images)
    stays there for many epochs; Lightning keeps the first of them, however much better the later ones fit (on the
    suite's shapes the detector tested was from epoch 3 of 49: mAP@0.5 1.0 but COCO mAP 0.62). With the validation
    loss as the tie-breaker the best checkpoint is, among the epochs with the best value, the one that fits the
    validation data best.

    Args:
        tie_breaker: The logged value that decides between epochs with the same monitored value; None keeps
            Lightning's rule (the first of them).
        **kwargs: `ModelCheckpoint`'s arguments (`monitor`, `mode`, `dirpath`, `filename`, ...); `save_top_k` is 1.
    """

    def __init__(self, *, tie_breaker: str | None, **kwargs: Any) -> None:
        if kwargs.get("save_top_k", 1) != 1:
            raise ConfigError(f"BestCheckpoint keeps one checkpoint; got save_top_k={kwargs['save_top_k']!r}.")
        super().__init__(save_top_k=1, **kwargs)
        self.tie_breaker = tie_breaker
        self.best_tie_breaker: float | None = None
        self._candidate: float | None = None

    def _save_monitor_checkpoint(self, trainer: Any, monitor_candidates: dict[str, torch.Tensor]) -> None:
        current = monitor_candidates.get(self.monitor) if self.monitor else None
        second = monitor_candidates.get(self.tie_breaker) if self.tie_breaker else None
        self._candidate = float(second) if second is not None and bool(torch.isfinite(second)) else None
        # the decision is a collective call, made on every process alike (DDP) and taken only when all agree
        if (
            current is not None
            and self.best_k_models
            and trainer.strategy.reduce_boolean_decision(self._ties_and_fits_better(current))
        ):
            self._update_best_and_save(current, trainer, monitor_candidates)
            return
        super()._save_monitor_checkpoint(trainer, monitor_candidates)

    def _ties_and_fits_better(self, current: torch.Tensor) -> bool:
        best = self.best_k_models[self.kth_best_model_path]
        if self._candidate is None or self.best_tie_breaker is None or not bool(torch.isfinite(current)):
            return False
        return float(current) == float(best) and self._candidate < self.best_tie_breaker

    def _update_best_and_save(self, current: torch.Tensor, trainer: Any, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._update_best_and_save(current, trainer, monitor_candidates)
        self.best_tie_breaker = self._candidate

    @property
    def state_key(self) -> str:
        """`ModelCheckpoint`'s key: a run saved before this class existed resumes with its best score."""
        return "ModelCheckpoint" + super().state_key.removeprefix(type(self).__qualname__)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_tie_breaker": self.best_tie_breaker}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning's restore, also when the experiment folder was moved, copied or renamed since it was saved (or is
        mounted elsewhere): Lightning then forgets the best score, and the next epoch, however worse, would replace
        `best.ckpt`. The saved paths are read as the same files in this checkpoint folder."""
        saved = state_dict.get("dirpath")
        if saved is not None and self.dirpath is not None and saved != self.dirpath:
            state_dict = {**state_dict, "dirpath": self.dirpath}
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if state_dict.get(key):
                    state_dict[key] = _moved(state_dict[key], saved, self.dirpath)
            if "best_k_models" in state_dict:
                state_dict["best_k_models"] = {
                    _moved(path, saved, self.dirpath): score for path, score in state_dict["best_k_models"].items()
                }
        super().load_state_dict(state_dict)
        self.best_tie_breaker = state_dict.get("best_tie_breaker")


def _moved(path: str, old_folder: str | Path, new_folder: str | Path) -> str:
    """`path` in `old_folder` as the same file in `new_folder` (a path elsewhere stays)."""
    try:
        return str(Path(new_folder) / Path(path).relative_to(old_folder))
    except ValueError:
        return path


class LearningRateLogger(pl.Callback):
    """Sends the learning rate of each optimizer's parameter groups to the loggers (TensorBoard, the CSV log): at the
    first step of every epoch and at every step Lightning logs the step values (`trainer.log_every_n_steps`).

    The value is the rate the step's update uses (read before the optimizer steps; schedulers step after it), logged
    at Lightning's logging step (`logging_step`). Its name is `train/lr`, with `/optimizer_<i>` when there are several
    optimizers and `/group_<j>` when an optimizer has several parameter groups. It goes to the loggers only: neither
    the progress bar nor `history.json` show it.

    Example:
        >>> optimizer = torch.optim.SGD([{"params": [torch.zeros(1)]}, {"params": [torch.zeros(1)], "lr": 0.01}], lr=0.1)
        >>> learning_rates([optimizer])
        {'train/lr/group_0': 0.1, 'train/lr/group_1': 0.01}
    """

    def __init__(self) -> None:
        self._logged_step: int | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        step = logging_step(trainer)
        every = max(1, int(getattr(trainer, "log_every_n_steps", 1)))  # set on the Trainer by its logger connector
        # as Lightning decides for its own step values; once per step when batches accumulate into one
        if not trainer.loggers or step == self._logged_step or (batch_idx != 0 and (step + 1) % every != 0):
            return
        self._logged_step = step
        values = learning_rates(trainer.optimizers)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)  # Lightning's loggers write from the global-zero process alone


def learning_rates(optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
    """The learning rate of each parameter group of `optimizers`, named as `LearningRateLogger` logs them."""
    values = {}
    for index, optimizer in enumerate(optimizers):
        groups = optimizer.param_groups
        for group_index, group in enumerate(groups):
            name = logged_name("train", "lr")
            name += f"/optimizer_{index}" if len(optimizers) > 1 else ""
            name += f"/group_{group_index}" if len(groups) > 1 else ""
            values[name] = float(group["lr"])
    return values


_RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
"""The loggers of Lightning's lines for the user (`rank_zero_info`), which the progress bars keep in order."""


class LineProgressBar(pl.callbacks.ProgressBar):
    """Progress as one plain line per epoch, for output that is not a terminal (a log file, CI).

    Lightning's bar redraws itself with carriage returns many times a second, which a file keeps as one
    endless line; this bar prints `epoch 3/10  train/loss 0.123  validation/loss 0.145 ... (2.1 s)` once per
    epoch instead, from the global-zero process.

    An epoch's line is printed once its values are all logged (when the next epoch starts or training ends), and the
    lines Lightning prints from the epoch's start until then (`Trainer.fit stopped: max_epochs=2 reached.`, the time
    limit's, said after a batch inside the epoch) are held until it is: the output reads in order, the last epoch's
    line before the line that says why training stopped.

    Args:
        stream: Where the lines go; standard output by default.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._enabled = True
        self._started = 0.0
        self._pending: tuple[int, float] | None = None
        self._in_epoch = False  # a training epoch runs: its line is still to come
        self._validated = False  # whether validation ran since the last line
        self._held = _HoldWhilePending(self)

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        for name in _RANK_ZERO_LOGGERS:
            logging.getLogger(name).addFilter(self._held)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for name in _RANK_ZERO_LOGGERS:
            logging.getLogger(name).removeFilter(self._held)
        self._in_epoch = False
        self._held.release()  # a run that failed with a line pending still shows what Lightning said
        super().teardown(trainer, pl_module, stage)

    @property
    def line_pending(self) -> bool:
        """Whether an epoch's line is still to come: from the epoch's start until its line is printed (when the next
        epoch starts or training ends)."""
        return self._in_epoch or self._pending is not None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print_pending(trainer, pl_module)
        self._started = time.perf_counter()
        self._in_epoch = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning calls this before the module's own hook, which logs the epoch's losses and metrics, so the
        # line is printed once they are complete: when the next epoch starts or training ends.
        self._pending = (trainer.current_epoch, time.perf_counter() - self._started)
        self._in_epoch = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_epoch = False  # an epoch cut before its end (a time limit reached inside it) has no line
        self._print_pending(trainer, pl_module)
        self._held.release()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def _print_pending(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        epoch, seconds = self._pending
        self._pending = None
        metrics = self.get_metrics(trainer, pl_module)  # on every process, at the same point
        # an epoch without validation (check_val_every_n_epoch above 1): Lightning keeps the previous epoch's values
        stale = () if self._validated else (logged_name("validation", ""),)
        self._validated = False
        if not (trainer.is_global_zero and self._enabled):
            self._held.release()
            return
        values = "  ".join(
            f"{name.removesuffix('_epoch')} {value:.4g}"
            for name, value in metrics.items()
            if isinstance(value, (int, float)) and not name.endswith("_step") and name != "v_num" and not name.startswith(stale)
        )
        limit = f"/{trainer.max_epochs}" if trainer.max_epochs is not None and trainer.max_epochs >= 0 else ""  # -1: none
        print(f"epoch {epoch + 1}{limit}  {values}  ({seconds:.1f} s)", file=self._stream or sys.stdout, flush=True)
        self._held.release()


class _HoldWhilePending(logging.Filter):
    """Holds Lightning's rank-zero log records while a `LineProgressBar` line is pending, and prints them once it is
    printed (`release`): Lightning says "`Trainer.fit` stopped: `max_epochs=2` reached." after the last epoch's end
    and before `on_train_end`, where its line is printed, and "Time limit reached ..." after a batch inside the epoch,
    so a file read the reason before the epoch it ended."""

    def __init__(self, progress_bar: LineProgressBar) -> None:
        super().__init__()
        self._progress_bar = progress_bar
        self._records: list[logging.LogRecord] = []
        self._releasing = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self._releasing or not self._progress_bar.line_pending:
            return True
        self._records.append(record)
        return False

    def release(self) -> None:
        records, self._records = self._records, []
        self._releasing = True
        try:
            for record in records:
                logging.getLogger(record.name).handle(record)
        finally:
            self._releasing = False


def _epoch_of(trainer: pl.Trainer) -> str:
    """`3/10`: the epoch counted from 1 (as `best_epoch`, the curves and `history.json`'s readers count it) out of
    `max_epochs`, or `3` without a limit (-1)."""
    limit = f"/{trainer.max_epochs}" if trainer.max_epochs is not None and trainer.max_epochs >= 0 else ""
    return f"{trainer.current_epoch + 1}{limit}"


class TerminalProgressBar(pl.callbacks.TQDMProgressBar):
    """Lightning's progress bar, for a terminal, as the job's other output reads.

    Beside Lightning's `TQDMProgressBar` it
    - counts epochs from 1 out of `max_epochs` (`Epoch 2/2`), as `LineProgressBar`, `best_epoch` and the curves do
      (Lightning's bar shows `Epoch 1` for the last of two);
    - leaves out `v_num`, the last four characters of the CSV log's version: a resumed run's `resumed_<time>` showed
      as `v_num=167_`;
    - clears its bar before Lightning prints a line (`Trainer.fit stopped: ...`), which was glued to the end of the
      bar's line, and is redrawn below it;
    - closes its bars when the run fails or is stopped (Ctrl-C, an error), so that the error's line is the last one
      printed: the bars closed at the process's exit were redrawn below it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lines_clear_the_bar = _ClearBarBeforeLines(self)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        for name in _RANK_ZERO_LOGGERS:
            logging.getLogger(name).addFilter(self._lines_clear_the_bar)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for name in _RANK_ZERO_LOGGERS:
            logging.getLogger(name).removeFilter(self._lines_clear_the_bar)
        super().teardown(trainer, pl_module, stage)

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        self.train_progress_bar.set_description(f"Epoch {_epoch_of(trainer)}")

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # After Ctrl-C Lightning has printed "\nDetected KeyboardInterrupt ..." below the bar: the bar stays as it was
        # and is closed without drawing it again. After an error nothing followed the bar: it is drawn and ended.
        interrupted = isinstance(exception, KeyboardInterrupt)
        for bar in (self._val_progress_bar, self._test_progress_bar, self._predict_progress_bar, self._train_progress_bar):
            if bar is not None and not bar.disable:
                bar.leave = bar is self._train_progress_bar and not interrupted
                bar.close()

    def _open_bar(self) -> Any:
        bar = self._train_progress_bar if self._train_progress_bar is not None else self._test_progress_bar
        return bar if bar is not None and not bar.disable else None


class _ClearBarBeforeLines(logging.Filter):
    """Clears the terminal bar's line before a log record is printed, so the record starts on a line of its own;
    tqdm draws the bar again below it at its next update. A record starting with a new line leaves the bar as it is."""

    def __init__(self, progress_bar: TerminalProgressBar) -> None:
        super().__init__()
        self._progress_bar = progress_bar

    def filter(self, record: logging.LogRecord) -> bool:
        bar = self._progress_bar._open_bar()
        if bar is not None and not str(record.msg).startswith("\n"):
            bar.clear()
        return True


class TensorBoardPredictions(pl.Callback):
    """Sends the predictions on the first validation batch to TensorBoard as a picture, every `every_n_epochs`
    validation epochs and after the last epoch.

    The picture is `predictions.png`'s (`report.plot_predictions`): ground truth beside prediction, mistakes
    first, one section per head, under the tag `predictions`, at the step of its epoch's validation values (so the
    purge marker of a resumed run, `job_trainer.create_loggers`, drops an interrupted epoch's picture with its
    values). Does nothing without a `TensorBoardLogger`. Drawing the picture takes a few seconds, as long as a
    small model's epoch, hence `every_n_epochs`.

    Args:
        n_samples: Images per head.
        class_names: Names of the classes for the captions; indices when None.
        every_n_epochs: Draw after every this many epochs; the last epoch is always drawn (`max_epochs`, or the
            epoch `max_time` or early stopping ended the run with, drawn when training ends).
    """

    def __init__(self, n_samples: int = 16, class_names: list[str] | None = None, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ConfigError(f"TensorBoardPredictions: every_n_epochs must be 1 or more, got {every_n_epochs}.")
        self.n_samples = n_samples
        self.class_names = class_names
        self.every_n_epochs = every_n_epochs
        self._batch: dict[str, Any] | None = None
        self._validated: int | None = None  # the last validated epoch
        self._validated_step = 0  # the step its validation values were logged at
        self._drawn: int | None = None  # the epoch last drawn

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._validated = trainer.current_epoch
        self._validated_step = logging_step(trainer)
        epochs_done = trainer.current_epoch + 1
        if epochs_done % self.every_n_epochs == 0 or epochs_done == trainer.max_epochs:
            self._draw(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The last epoch's picture when the run ended before `max_epochs` (`max_time`, early stopping)."""
        if not trainer.is_global_zero or self._validated is None or self._validated == self._drawn:
            return
        training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                self._draw(trainer, pl_module)
        finally:
            pl_module.train(training)

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        tensorboard = next((logger for logger in trainer.loggers if isinstance(logger, pl.loggers.TensorBoardLogger)), None)
        if tensorboard is None:
            return
        from torchbricks.lightning.report import collect_predictions, plot_predictions

        if self._batch is None:
            loader: Any = trainer.val_dataloaders
            loader = loader[0] if isinstance(loader, (list, tuple)) else loader
            self._batch = pl_module.named_inputs_from_batch(next(iter(loader)))  # type: ignore[operator]
        batch = {
            name: value.to(pl_module.device) if isinstance(value, torch.Tensor) else value for name, value in self._batch.items()
        }
        predictions = collect_predictions(pl_module.brick_collection, [batch])  # type: ignore[arg-type]
        self._drawn = self._validated
        if predictions:
            figure = plot_predictions(predictions, self.class_names, n_samples=self.n_samples)
            tensorboard.experiment.add_figure("predictions", figure, global_step=self._validated_step)
