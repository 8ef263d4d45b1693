"""Optimizer factories for `LightningBrickCollection(create_optimizers_func=...)`, configurable with `_partial_`.

The vision tasks' schedule, `BudgetCosine`, follows the run's real budget rather than an assumed number of epochs:
a run ends at `trainer.max_epochs` (or `max_steps`), at `trainer.max_time` or when early stopping says so, and only
the first two are known in advance. Its progress is the larger of the steps done over the steps the trainer
plans (`trainer.estimated_stepping_batches`) and the training time elapsed over `trainer.max_time`, so the
learning rate reaches its floor when the first of the two budgets ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = [
    "BudgetCosine",
    "CosineWithWarmup",
    "bind_training_budget",
    "budget_cosine_factor",
    "create_adamw_cosine",
    "create_sgd_cosine",
    "training_progress",
]


class CosineWithWarmup:
    """Learning-rate factor per epoch: a linear warm-up over `warmup_epochs`, then a cosine decay to 0 at `max_epochs`.

    Example:
        >>> factor = CosineWithWarmup(max_epochs=10, warmup_epochs=1)
        >>> [round(factor(epoch), 3) for epoch in (0, 1, 5, 9)]
        [0.5, 0.992, 0.5, 0.008]
    """

    def __init__(self, max_epochs: int, warmup_epochs: int = 1) -> None:
        self.max_epochs = max(1, max_epochs)
        self.warmup_epochs = max(0, min(warmup_epochs, self.max_epochs - 1))

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        progress = (epoch - self.warmup_epochs + 0.5) / (self.max_epochs - self.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def budget_cosine_factor(
    step: int,
    elapsed_seconds: float,
    total_steps: float | None,
    max_seconds: float | None,
    warmup_steps: int = 500,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.0,
) -> float:
    """The learning-rate factor of `BudgetCosine` after `step` optimizer steps and `elapsed_seconds` of training.

    `progress = min(1, max(step / total_steps, elapsed_seconds / max_seconds))` (a budget that is None or infinite
    counts 0); the factor is `warmup * (min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * progress)) / 2)` with
    `warmup = min(1, max((step + 1) / warmup_steps, done / warmup_fraction))`, `done` the progress once this step is
    taken (`step + 1` steps): the warm-up ends after `warmup_steps` steps or `warmup_fraction` of the budget,
    whichever comes first, and either at 0 means no warm-up. So a fraction of a budget shorter than one step (a tiny
    data set) leaves no step warming up, as a `warmup_steps` of 1 leaves none.

    Example:
        >>> round(budget_cosine_factor(step=50, elapsed_seconds=0.0, total_steps=100, max_seconds=None), 3)
        0.5
        >>> round(budget_cosine_factor(step=10, elapsed_seconds=300.0, total_steps=1000, max_seconds=600), 3)
        0.5
    """
    progress = _budget_progress(step, elapsed_seconds, total_steps, max_seconds)
    warmup = 1.0
    if warmup_steps > 0 and warmup_fraction > 0:  # either at 0 ends the warm-up before the first step
        done = _budget_progress(step + 1, elapsed_seconds, total_steps, max_seconds)  # as (step + 1) / warmup_steps
        warmup = min(1.0, max((step + 1) / warmup_steps, done / warmup_fraction))
    return warmup * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _budget_progress(step: int, elapsed_seconds: float, total_steps: float | None, max_seconds: float | None) -> float:
    """`min(1, max(step / total_steps, elapsed_seconds / max_seconds))`; a budget that is None or infinite counts 0."""
    progress = 0.0
    if total_steps is not None and math.isfinite(total_steps) and total_steps > 0:
        progress = step / total_steps
    if max_seconds is not None and math.isfinite(max_seconds) and max_seconds > 0:
        progress = max(progress, elapsed_seconds / max_seconds)
    return min(1.0, max(0.0, progress))


class BudgetCosine(torch.optim.lr_scheduler.LRScheduler):
    """Warm-up and cosine decay over the run's budget of steps and of time, stepped after every optimizer step.

    The factor is `budget_cosine_factor`. The budget (`total_steps`, `max_seconds` and the clock of the elapsed
    training time) is given here or, under a Lightning trainer, by `bind_training_budget` when the trainer asks
    `LightningBrickCollection` for its optimizers; it is not saved in `state_dict`, so a resumed run follows the
    budget of the resumed trainer (a longer `trainer.max_time` continues the cosine from where the new budget puts it).

    Args:
        optimizer: The optimizer whose learning rates are scaled.
        total_steps: Optimizer steps the run plans; None: no step budget.
        max_seconds: Seconds of training the run may take; None: no time budget.
        warmup_steps: The warm-up ends after this many steps at the latest.
        warmup_fraction: ... or after this fraction of the budget, if that comes first.
        min_lr_ratio: The floor of the learning rate, as a fraction of the initial learning rate.
        elapsed_seconds: The clock of the training time; by default the time since this scheduler was made.

    Example:
        >>> optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> scheduler = BudgetCosine(optimizer, total_steps=10, warmup_steps=2, warmup_fraction=0.5)
        >>> rates = []
        >>> for _ in range(10):
        ...     rates.append(round(optimizer.param_groups[0]["lr"], 3))
        ...     optimizer.step()
        ...     scheduler.step()
        >>> rates
        [0.5, 0.976, 0.905, 0.794, 0.655, 0.5, 0.345, 0.206, 0.095, 0.024]
    """

    _BUDGET_FIELDS = ("total_steps", "max_seconds", "_elapsed_seconds")

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: float | None = None,
        max_seconds: float | None = None,
        warmup_steps: int = 500,
        warmup_fraction: float = 0.05,
        min_lr_ratio: float = 0.0,
        elapsed_seconds: Callable[[], float] | None = None,
    ) -> None:
        _check_schedule_arguments(warmup_steps, warmup_fraction, min_lr_ratio)
        self.warmup_steps = int(warmup_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.min_lr_ratio = float(min_lr_ratio)
        self.total_steps = total_steps
        self.max_seconds = max_seconds
        started = time.monotonic()
        self._elapsed_seconds = elapsed_seconds or (lambda: time.monotonic() - started)
        super().__init__(optimizer)

    def set_budget(self, total_steps: float | None, max_seconds: float | None, elapsed_seconds: Callable[[], float]) -> None:
        """Sets the budget the schedule follows and recomputes the current learning rates."""
        self.total_steps = total_steps
        self.max_seconds = max_seconds
        self._elapsed_seconds = elapsed_seconds
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def factor(self) -> float:
        """The factor of the initial learning rates at the current step and time."""
        return budget_cosine_factor(
            self.last_epoch,
            self._elapsed_seconds(),
            self.total_steps,
            self.max_seconds,
            self.warmup_steps,
            self.warmup_fraction,
            self.min_lr_ratio,
        )

    def get_lr(self) -> list[float]:  # type: ignore[override]  # torch's base annotates list[float | Tensor]
        factor = self.factor()
        return [float(base_lr) * factor for base_lr in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "optimizer" and key not in self._BUDGET_FIELDS}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({key: value for key, value in state_dict.items() if key not in self._BUDGET_FIELDS})


def _check_schedule_arguments(warmup_steps: int, warmup_fraction: float, min_lr_ratio: float) -> None:
    """Raises `ValueError` naming the first bad argument of `BudgetCosine` as `<argument> must be ...`, which
    `check_optimizer_factory` reports as the config key `optimizer.<argument>`."""
    if not warmup_steps >= 0:
        raise ValueError(f"warmup_steps must be 0 or more (0: no warm-up), got {warmup_steps}.")
    if not 0.0 <= warmup_fraction <= 1.0:
        raise ValueError(
            f"warmup_fraction must be a fraction of the training budget in [0, 1] (0: no warm-up), got {warmup_fraction}."
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be a fraction of the learning rate in [0, 1], got {min_lr_ratio}.")


def bind_training_budget(optimizers_config: Any, trainer: Any) -> None:
    """Gives every `BudgetCosine` in what `configure_optimizers` returns the budget of a Lightning `trainer`.

    The step budget is `trainer.estimated_stepping_batches`; the time budget and its clock are those of the
    trainer's `Timer` callback (which `Trainer(max_time=...)` adds, and whose elapsed time survives a resume).
    """
    schedulers = [scheduler for scheduler in _schedulers(optimizers_config) if isinstance(scheduler, BudgetCosine)]
    if not schedulers:
        return
    total_steps, max_seconds, elapsed = _trainer_budget(trainer)
    for scheduler in schedulers:
        scheduler.set_budget(total_steps, max_seconds, elapsed)


def training_progress(trainer: Any) -> float:
    """How much of a Lightning `trainer`'s budget training has used, in [0, 1]: the larger of the optimizer steps
    over the steps it plans (`estimated_stepping_batches`) and the training time over `trainer.max_time`, the
    measure `BudgetCosine` follows."""
    total_steps, max_seconds, elapsed = _trainer_budget(trainer)
    return _budget_progress(trainer.global_step, elapsed(), total_steps, max_seconds)


def _trainer_budget(trainer: Any) -> tuple[float, float | None, Callable[[], float]]:
    """A trainer's step budget, time budget (None without `max_time`) and the clock of its training time: the
    trainer's `Timer` callback (which `Trainer(max_time=...)` adds, and whose elapsed time survives a resume)."""
    timers = [callback for callback in trainer.callbacks if hasattr(callback, "time_remaining")]
    if timers and timers[0].time_remaining() is not None:
        timer = timers[0]
        return float(trainer.estimated_stepping_batches), timer.time_elapsed() + timer.time_remaining(), timer.time_elapsed
    return float(trainer.estimated_stepping_batches), None, lambda: 0.0  # a clock that never runs: no time budget


def _schedulers(config: Any) -> list[Any]:
    """The schedulers in any of the forms `LightningModule.configure_optimizers` may return."""
    if isinstance(config, torch.optim.lr_scheduler.LRScheduler):
        return [config]
    if isinstance(config, dict):
        scheduler = config.get("lr_scheduler", config.get("scheduler"))
        return _schedulers(scheduler) if scheduler is not None else []
    if isinstance(config, (list, tuple)):
        return [found for item in config for found in _schedulers(item)]
    return []


def create_adamw_cosine(
    parameters: Iterable[nn.Parameter],
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    warmup_steps: int = 500,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.0,
) -> dict[str, Any]:
    """AdamW with a warm-up and a cosine decay over the run's budget (`BudgetCosine`, stepped every optimizer step),
    as Lightning's optimizer dict.

    Under `LightningBrickCollection` the trainer's budget (`trainer.max_epochs`/`max_steps` and `trainer.max_time`)
    is bound when training starts; see `bind_training_budget`.

    Example:
        >>> config = create_adamw_cosine([nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> scheduler = config["lr_scheduler"]
        >>> type(config["optimizer"]).__name__, type(scheduler["scheduler"]).__name__, scheduler["interval"]
        ('AdamW', 'BudgetCosine', 'step')
    """
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    return _under_budget_cosine(optimizer, warmup_steps, warmup_fraction, min_lr_ratio)


def create_sgd_cosine(
    parameters: Iterable[nn.Parameter],
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = True,
    warmup_steps: int = 500,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.0,
) -> dict[str, Any]:
    """SGD with (Nesterov) momentum, a warm-up and a cosine decay over the run's budget, as `create_adamw_cosine`.

    Example:
        >>> config = create_sgd_cosine([nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> type(config["optimizer"]).__name__, config["optimizer"].defaults["nesterov"], config["lr_scheduler"]["interval"]
        ('SGD', True, 'step')
    """
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    return _under_budget_cosine(optimizer, warmup_steps, warmup_fraction, min_lr_ratio)


def _under_budget_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, warmup_fraction: float, min_lr_ratio: float
) -> dict[str, Any]:
    """Lightning's optimizer dict: `optimizer` with a `BudgetCosine` stepped every optimizer step (the shape
    `bind_training_budget` looks for)."""
    scheduler = BudgetCosine(optimizer, warmup_steps=warmup_steps, warmup_fraction=warmup_fraction, min_lr_ratio=min_lr_ratio)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
