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
    warmup_steps steps or `fraction` of the budget; cosine from 1 to `floor`."""
    step_progress = step / total_steps if total_steps not in (None, math.inf) else 0.0
    time_progress = elapsed / max_seconds if max_seconds is not None else 0.0
    progress = min(1.0, step_progress if step_progress > time_progress else time_progress)
    in_warmup = step + 1 < warmup_steps and progress < fraction
    warmup = max((step + 1) / warmup_steps, progress / fraction) if in_warmup else 1.0
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

    assert max(rates) == pytest.approx(
        2.0 * (0.1 + 0.9 * (1 + math.cos(math.pi * 0.05)) / 2)
    )  # the warm-up ends at 5 % of 100 steps
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
    with pytest.raises(ValueError, match="0 <= warmup_fraction <= 1"):
        BudgetCosine(optimizer, warmup_fraction=2.0)


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
