from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from torch import nn

from torchbricks.lightning.optimizers import (
    BudgetCosine,
    bind_training_budget,
    budget_cosine_factor,
    create_adamw_cosine,
    create_sgd_cosine,
)


def _reference(
    step: int, elapsed: float, total_steps: float, max_seconds: float, warmup_steps: int, fraction: float, floor: float
) -> float:
    """The rule written out again, by cases: progress over whichever budget is further along; warm-up until either
    warmup_steps steps or `fraction` of the budget are done once this step is taken (either 0: none); cosine from 1
    to `floor`."""
    step_progress = step / total_steps if total_steps not in (None, math.inf) else 0.0
    steps_done = (step + 1) / total_steps if total_steps not in (None, math.inf) else 0.0
    time_progress = elapsed / max_seconds if max_seconds is not None else 0.0
    progress = min(1.0, step_progress if step_progress > time_progress else time_progress)
    done = min(1.0, steps_done if steps_done > time_progress else time_progress)
    if warmup_steps == 0 or fraction == 0:
        warmup = 1.0
    else:
        in_warmup = step + 1 < warmup_steps and done < fraction
        warmup = max((step + 1) / warmup_steps, done / fraction) if in_warmup else 1.0
    return warmup * (floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _scheduler(clock: FakeClock, **budget: float | None) -> tuple[torch.optim.Optimizer, BudgetCosine]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    return optimizer, BudgetCosine(
        optimizer, warmup_steps=20, warmup_fraction=0.05, min_lr_ratio=0.1, elapsed_seconds=clock, **budget
    )


@pytest.mark.parametrize(
    ("step", "elapsed"),
    [(0, 0.0), (5, 1.0), (19, 2.0), (20, 3.0), (100, 10.0), (100, 200.0), (500, 20.0), (999, 30.0), (1000, 599.0)],
)
def test_budget_factor_follows_the_rule(step: int, elapsed: float) -> None:
    expected = _reference(step, elapsed, 1000, 600.0, 20, 0.05, 0.1)

    actual = budget_cosine_factor(step, elapsed, 1000, 600.0, warmup_steps=20, warmup_fraction=0.05, min_lr_ratio=0.1)

    assert actual == pytest.approx(expected, abs=1e-12)


def test_learning_rate_follows_the_step_budget_when_time_is_plentiful() -> None:
    clock = FakeClock()
    optimizer, scheduler = _scheduler(clock, total_steps=100, max_seconds=1e6)
    rates = []
    for step in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        assert rates[-1] == pytest.approx(2.0 * _reference(step, clock.now, 100, 1e6, 20, 0.05, 0.1))
        optimizer.step()
        scheduler.step()
        clock.now += 0.01

    # the warm-up ends with the fifth of 100 steps (5 %), taken at 4 % of the cosine
    assert max(rates) == pytest.approx(2.0 * (0.1 + 0.9 * (1 + math.cos(math.pi * 0.04)) / 2))
    assert rates[:5] == pytest.approx(
        [2.0 * (step + 1) / 5 * (0.1 + 0.9 * (1 + math.cos(math.pi * step / 100)) / 2) for step in range(5)]
    )
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2)  # the floor when the planned steps are done


def test_learning_rate_reaches_its_floor_when_the_time_budget_ends_before_the_epochs() -> None:
    clock = FakeClock()
    optimizer, scheduler = _scheduler(clock, total_steps=1_000_000, max_seconds=60.0)  # a huge epoch cap
    for step in range(30):
        optimizer.step()
        clock.now += 1.0
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            2.0 * _reference(step + 1, clock.now, 1_000_000, 60.0, 20, 0.05, 0.1)
        )
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # half the time: half way down the cosine

    clock.now = 60.0
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2)


def test_the_saved_state_holds_the_step_but_not_the_budget_nor_the_clock() -> None:
    clock = FakeClock()
    optimizer, scheduler = _scheduler(clock, total_steps=100, max_seconds=60.0)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)

    state = torch.load(buffer, weights_only=True)  # no function in it
    _restored_optimizer, restored = _scheduler(FakeClock(), total_steps=50, max_seconds=None)
    restored.load_state_dict(state)

    assert restored.last_epoch == 7
    assert (restored.total_steps, restored.max_seconds) == (50, None)  # the resumed trainer's budget is kept


def test_warmup_and_floor_out_of_range_are_refused() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=r"^warmup_fraction must be a fraction of the training budget in \[0, 1\] .*got 2.0"):
        BudgetCosine(optimizer, warmup_fraction=2.0)
    with pytest.raises(ValueError, match=r"^warmup_steps must be 0 or more .*got -1"):
        BudgetCosine(optimizer, warmup_steps=-1)
    with pytest.raises(ValueError, match=r"^warmup_fraction must be .*got nan"):
        BudgetCosine(optimizer, warmup_fraction=math.nan)


class _Timer:
    def __init__(self, elapsed: float, duration: float) -> None:
        self.elapsed, self.duration = elapsed, duration

    def time_elapsed(self) -> float:
        return self.elapsed

    def time_remaining(self) -> float:
        return self.duration - self.elapsed


class _Trainer:
    def __init__(self, callbacks: list[object]) -> None:
        self.estimated_stepping_batches = 400
        self.callbacks = callbacks


def test_binding_gives_the_trainers_planned_steps_and_its_timer() -> None:
    config = create_adamw_cosine([nn.Parameter(torch.zeros(1))], lr=1.0, warmup_steps=0, warmup_fraction=0.0)
    scheduler = config["lr_scheduler"]["scheduler"]
    timer = _Timer(elapsed=0.0, duration=100.0)

    bind_training_budget(config, _Trainer([object(), timer]))
    timer.elapsed = 50.0
    config["optimizer"].step()
    scheduler.step()

    assert (scheduler.total_steps, scheduler.max_seconds) == (400.0, 100.0)
    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(0.5)  # 50 of 100 s beats 1 of 400 steps


@pytest.mark.parametrize("factory", [create_adamw_cosine, create_sgd_cosine])
def test_binding_without_a_time_budget_follows_the_steps_alone(factory: Any) -> None:
    config = factory([nn.Parameter(torch.zeros(1))], lr=1.0, warmup_steps=0, warmup_fraction=0.0)

    bind_training_budget(config, _Trainer([]))
    for _ in range(200):
        config["optimizer"].step()
        config["lr_scheduler"]["scheduler"].step()

    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(0.5)


def test_sgd_cosine_is_nesterov_sgd_with_its_weight_decay_under_the_budget_schedule() -> None:
    parameter = nn.Parameter(torch.ones(1))
    config = create_sgd_cosine([parameter], lr=0.1, weight_decay=0.5, warmup_steps=0, warmup_fraction=0.0)
    bind_training_budget(config, _Trainer([]))
    parameter.grad = torch.zeros(1)

    config["optimizer"].step()  # a zero gradient: only the weight decay moves the weight

    assert (config["optimizer"].defaults["momentum"], config["optimizer"].defaults["nesterov"]) == (0.9, True)
    assert float(parameter) == pytest.approx(1.0 - 0.1 * 0.5 * (1 + 0.9))  # Nesterov: the step plus momentum times it
    assert isinstance(config["lr_scheduler"]["scheduler"], BudgetCosine)


@pytest.mark.parametrize("total_steps", [1, 2, 4, 19])
def test_a_warm_up_fraction_shorter_than_a_step_leaves_no_step_warming_up(total_steps: int) -> None:
    # A tiny data set: 5 % of a budget of 1 to 19 steps is less than one step, yet the first step was taken at
    # 1/warmup_steps of the learning rate (0.002: a one-step run did not train), the budget's warm-up lagging a step
    # behind warmup_steps' ((step + 1) / warmup_steps).
    factors = [
        budget_cosine_factor(step, 0.0, total_steps, None, warmup_steps=500, warmup_fraction=0.05) for step in range(total_steps)
    ]

    assert factors == pytest.approx([(1 + math.cos(math.pi * step / total_steps)) / 2 for step in range(total_steps)])


def _rate_recording_module(**schedule: Any) -> Any:
    """A Lightning module under `create_adamw_cosine(**schedule)` that records the learning rate of each step."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    class RecordsRates(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(2, 1)
            self.rates: list[float] = []

        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            self.rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self) -> Any:
            config = create_adamw_cosine(self.parameters(), lr=1.0, **schedule)
            bind_training_budget(config, self.trainer)
            return config

        def train_dataloader(self) -> Any:
            return DataLoader(TensorDataset(torch.rand(5, 2)), batch_size=2)  # 3 steps an epoch, the last of 1

    return RecordsRates()


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.5, 1.0])
def test_any_warm_up_fraction_follows_the_real_steps_of_a_tiny_run(fraction: float) -> None:
    import pytorch_lightning as pl

    module = _rate_recording_module(warmup_steps=500, warmup_fraction=fraction)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=True,
        enable_model_summary=False,
    )

    trainer.fit(module)

    assert trainer.global_step == 6
    assert module.rates == pytest.approx([_reference(step, 0.0, 6, None, 500, fraction, 0.0) for step in range(6)])
    assert module.rates[0] == pytest.approx(1.0 if fraction < 1 / 6 else 1 / 6 / fraction)
