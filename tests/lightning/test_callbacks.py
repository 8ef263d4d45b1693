from __future__ import annotations

import io
import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from torchbricks import BrickCollection, BrickLoss, BrickTrainable
from torchbricks.errors import ConfigError
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.callbacks import BestCheckpoint, EpochSeed, ExponentialMovingAverage, LineProgressBar, MetricHistory
from torchbricks.lightning.datamodules import NamedTensorDataset


class _RecordBatches(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: dict, batch_idx: int) -> None:
        self.seen.append(batch["index"].tolist())


def _fit(
    tmp_path: Path,
    callbacks: list[pl.Callback],
    max_epochs: int = 3,
    enable_progress_bar: bool = False,
    checkpoints: bool = False,
    **trainer_options: object,
) -> None:
    collection = BrickCollection(
        {
            "model": BrickTrainable(nn.Linear(1, 2), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce"]),
        }
    )
    data = NamedTensorDataset(raw=torch.randn(16, 1), targets=torch.randint(0, 2, (16,)), index=torch.arange(16))
    module = LightningBrickCollection(tmp_path, "run", collection, partial(torch.optim.SGD, lr=0.1))
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=checkpoints,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        callbacks=callbacks + ([ModelCheckpoint(tmp_path / "checkpoints", save_on_train_epoch_end=True)] if checkpoints else []),
        **trainer_options,  # type: ignore[arg-type]
    )
    trainer.fit(module, DataLoader(data, batch_size=4, shuffle=True), DataLoader(data, batch_size=8))


def test_epoch_seed_makes_each_epochs_order_depend_only_on_seed_and_epoch(tmp_path: Path) -> None:
    first, second, other_seed = _RecordBatches(), _RecordBatches(), _RecordBatches()

    torch.manual_seed(1)
    _fit(tmp_path, [EpochSeed(7), first])
    torch.manual_seed(2)  # whatever ran before does not matter
    _fit(tmp_path, [EpochSeed(7), second])
    _fit(tmp_path, [EpochSeed(8), other_seed])

    assert first.seen == second.seen
    assert first.seen != other_seed.seen
    epochs = [[index for batch in first.seen[epoch * 4 : epoch * 4 + 4] for index in batch] for epoch in range(3)]
    assert all(sorted(order) == list(range(16)) for order in epochs)
    assert epochs[0] != epochs[1]  # shuffled again every epoch


def test_metric_history_records_each_epoch_and_travels_in_checkpoints(tmp_path: Path) -> None:
    history = MetricHistory(tmp_path / "run", draw=False)

    _fit(tmp_path, [history], max_epochs=2)

    written = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [record["epoch"] for record in written] == [0, 1]
    assert {"train/loss", "validation/loss"} <= set(written[0])
    assert not any(name.endswith("_step") for name in written[0])
    restored = MetricHistory(tmp_path / "other")
    restored.load_state_dict(history.state_dict())
    assert restored.history == written


def test_an_epoch_without_validation_has_no_validation_values_in_the_history(tmp_path: Path) -> None:
    history = MetricHistory(tmp_path / "run", draw=False)

    _fit(tmp_path, [history], max_epochs=4, check_val_every_n_epoch=2)

    written = json.loads((tmp_path / "run" / "history.json").read_text())
    validated = [epoch for epoch in range(4) if (epoch + 1) % 2 == 0]  # Lightning validates after epochs 2 and 4
    assert [record["epoch"] for record in written] == [0, 1, 2, 3]
    assert [record["epoch"] for record in written if "validation/loss" in record] == validated
    assert all("train/loss" in record for record in written)


class _WatchedHistory(MetricHistory):
    """Notes, after each write, the epochs of `history.json` whenever `curves.png` was drawn anew."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drawn: list[list[int]] = []

    def write(self, draw: bool | None = None) -> None:
        curves = self.path_experiment / "curves.png"
        before = self._version(curves)
        super().write(draw)
        if self._version(curves) != before:  # written anew (atomically: a new file)
            self.drawn.append([record["epoch"] for record in self.history])

    @staticmethod
    def _version(path: Path) -> tuple[int, int] | None:
        return (path.stat().st_ino, path.stat().st_mtime_ns) if path.exists() else None


@pytest.mark.slow
@pytest.mark.parametrize("checkpoints", [False, True])  # a checkpoint records the epoch before the callback's hooks
def test_metric_history_draws_the_curves_every_n_epochs_and_at_the_end(tmp_path: Path, checkpoints: bool) -> None:
    history = _WatchedHistory(tmp_path / "run", draw_every_n_epochs=2)

    _fit(tmp_path, [history], max_epochs=5, checkpoints=checkpoints)

    assert history.drawn == [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0


def test_metric_history_refuses_a_drawing_interval_below_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="draw_every_n_epochs must be 1 or more, got 0"):
        MetricHistory(tmp_path, draw_every_n_epochs=0)


def test_line_progress_bar_prints_one_plain_line_per_epoch(tmp_path: Path) -> None:
    stream = io.StringIO()

    _fit(tmp_path, [LineProgressBar(stream)], max_epochs=3, enable_progress_bar=True)

    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    assert all("train/loss " in line and "validation/loss " in line for line in lines)


def test_an_epoch_without_validation_shows_no_validation_values_and_does_not_count_against_the_patience(
    tmp_path: Path,
) -> None:
    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    stream = io.StringIO()
    # min_delta no value can beat: every check counts against the patience, so the run stops at the second check
    stopping = BudgetEarlyStopping(
        monitor="validation/loss",
        patience=1,
        min_delta=1e9,
        check_on_train_epoch_end=True,
        strict=False,  # as the job
    )

    _fit(tmp_path, [LineProgressBar(stream), stopping], max_epochs=8, enable_progress_bar=True, check_val_every_n_epoch=2)

    lines = stream.getvalue().splitlines()
    assert [("validation/loss " in line) for line in lines] == [False, True, False, True]  # validated after 2 and 4
    assert stopping.stopped_epoch == 3  # the second validation, not the second epoch with the first one's value


@pytest.mark.parametrize("check_on_train_epoch_end", [True, False])
def test_early_stopping_on_a_value_never_logged_fails_at_the_first_validation_instead_of_never_acting(
    tmp_path: Path, check_on_train_epoch_end: bool
) -> None:
    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    # strict=False (as the job: a first epoch cut by max_time has no value yet) skipped every check without a word
    stopping = BudgetEarlyStopping(
        monitor="validation/los", patience=1, min_delta=1e9, check_on_train_epoch_end=check_on_train_epoch_end, strict=False
    )

    with pytest.raises(
        ConfigError,
        match=r"BudgetEarlyStopping monitors 'validation/los', which is not logged at the end of epoch 1 after its "
        r"validation: early stopping would never act\. Logged: \[.*'validation/loss'.*\]\. Did you mean 'validation/loss'\?",
    ):
        _fit(tmp_path, [stopping], max_epochs=4)


@pytest.mark.parametrize("check_on_train_epoch_end", [True, False])
def test_early_stopping_on_a_training_value_is_not_refused_before_the_module_logs_it(
    tmp_path: Path, check_on_train_epoch_end: bool
) -> None:
    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    # checked at validation's end, the epoch's training values come later (the module's on_train_epoch_end)
    stopping = BudgetEarlyStopping(
        monitor="train/loss", patience=1, min_delta=1e9, check_on_train_epoch_end=check_on_train_epoch_end, strict=False
    )

    _fit(tmp_path, [stopping], max_epochs=4)

    assert stopping.stopped_epoch > 0


def test_early_stopping_on_a_validation_value_waits_for_an_epoch_that_validates(tmp_path: Path) -> None:
    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    stopping = BudgetEarlyStopping(
        monitor="validation/loss", patience=1, min_delta=1e9, check_on_train_epoch_end=True, strict=False
    )

    _fit(tmp_path, [stopping], max_epochs=8, check_val_every_n_epoch=3, num_sanity_val_steps=0)

    assert stopping.stopped_epoch == 5  # the second validation, after epoch 6


def test_the_learning_rate_of_each_parameter_group_goes_to_tensorboard_and_not_to_the_progress_bar(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from torchbricks.lightning.callbacks import LearningRateLogger

    def create_optimizer(parameters: list[nn.Parameter]) -> dict[str, Any]:
        weight, bias = parameters
        optimizer = torch.optim.SGD([{"params": [weight]}, {"params": [bias], "lr": 1.0}], lr=0.1)
        halving = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": halving, "interval": "step"}}

    collection = BrickCollection(
        {
            "model": BrickTrainable(nn.Linear(1, 2), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce"]),
        }
    )
    data = NamedTensorDataset(raw=torch.randn(16, 1), targets=torch.randint(0, 2, (16,)))
    module = LightningBrickCollection(tmp_path, "run", collection, create_optimizer, write_files=False)
    logger = pl.loggers.TensorBoardLogger(str(tmp_path), name="tensorboard", version="")
    trainer = pl.Trainer(
        max_epochs=2, logger=logger, log_every_n_steps=3, enable_checkpointing=False, enable_model_summary=False,
        callbacks=[LearningRateLogger()], enable_progress_bar=False,
    )  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))  # 4 steps an epoch

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for name, initial in [("train/lr/group_0", 0.1), ("train/lr/group_1", 1.0)]:
        logged = [(value.step, value.value) for value in events.Scalars(name)]
        # each epoch's first step (0, 4) and every third (2, 5): the rate that step's update used, halved every step
        assert logged == [(step, pytest.approx(initial * 0.5**step)) for step in (0, 2, 4, 5)]
    assert not any("lr" in name for name in trainer.progress_bar_metrics)
    assert not any("lr" in name for name in trainer.callback_metrics)  # nor in history.json, which reads these


def test_line_progress_bar_of_a_run_without_an_epoch_limit_shows_no_limit(tmp_path: Path) -> None:
    stream = io.StringIO()

    _fit(tmp_path, [LineProgressBar(stream)], max_epochs=-1, enable_progress_bar=True, max_steps=8)  # 4 batches an epoch

    assert [line.split()[:2] for line in stream.getvalue().splitlines()] == [["epoch", "1"], ["epoch", "2"]]


class _Scripted(pl.LightningModule):
    """Logs the given validation values at each epoch (a value at its ceiling, a loss that keeps moving)."""

    def __init__(self, accuracy: list[float], loss: list[float]) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.accuracy, self.loss = accuracy, loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("validation/accuracy", self.accuracy[self.current_epoch])
        self.log("validation/loss", self.loss[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _best_epoch(tmp_path: Path, tie_breaker: str | None, accuracy: list[float], loss: list[float]) -> tuple[int, BestCheckpoint]:
    checkpoint = BestCheckpoint(
        dirpath=tmp_path,
        filename="best",
        monitor="validation/accuracy",
        mode="max",
        tie_breaker=tie_breaker,
        save_on_train_epoch_end=True,
    )
    trainer = pl.Trainer(
        max_epochs=len(accuracy), logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[checkpoint]
    )
    data = DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 1)), batch_size=4)
    trainer.fit(_Scripted(accuracy, loss), data, data)
    return torch.load(checkpoint.best_model_path, weights_only=False)["epoch"], checkpoint


def test_the_best_checkpoint_breaks_a_tie_of_the_monitored_value_by_the_lower_validation_loss(tmp_path: Path) -> None:
    accuracy = [0.5, 1.0, 1.0, 1.0, 0.9, 1.0]
    loss = [0.9, 0.6, 0.2, 0.4, 0.1, 0.3]

    epoch, checkpoint = _best_epoch(tmp_path / "tie", "validation/loss", accuracy, loss)
    first, _ = _best_epoch(tmp_path / "lightning", None, accuracy, loss)

    assert epoch == 2  # the tie with the lowest loss; epoch 4's lower loss comes with a lower accuracy
    assert first == 1  # Lightning's rule: the first epoch at the best value
    assert float(checkpoint.best_model_score) == 1.0
    assert checkpoint.best_tie_breaker == pytest.approx(0.2)
    restored = BestCheckpoint(
        dirpath=tmp_path, filename="best", monitor="validation/accuracy", mode="max", tie_breaker="validation/loss"
    )
    restored.load_state_dict(checkpoint.state_dict())
    assert restored.best_tie_breaker == pytest.approx(0.2)
    # an experiment saved with Lightning's ModelCheckpoint resumes into BestCheckpoint with its best score
    plain = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="validation/accuracy", mode="max")
    assert restored.state_key == plain.state_key
    restored.load_state_dict(plain.state_dict())
    assert restored.best_tie_breaker is None


def test_a_strictly_better_value_wins_whatever_its_loss_and_more_than_one_checkpoint_is_refused(tmp_path: Path) -> None:
    epoch, _ = _best_epoch(tmp_path, "validation/loss", [0.5, 0.7, 0.8], [0.1, 0.5, 0.9])

    assert epoch == 2
    with pytest.raises(ConfigError, match=r"BestCheckpoint keeps one checkpoint; got save_top_k=3"):
        BestCheckpoint(monitor="validation/accuracy", save_top_k=3, tie_breaker=None)


def test_a_moved_or_copied_experiment_keeps_its_best_score_on_resume(tmp_path: Path) -> None:
    saved = BestCheckpoint(tie_breaker=None, dirpath=str(tmp_path / "run" / "checkpoints"), monitor="loss", mode="min")
    saved.best_model_score = torch.tensor(0.0445)
    saved.best_model_path = str(tmp_path / "run" / "checkpoints" / "best.ckpt")
    saved.best_k_models = {saved.best_model_path: saved.best_model_score}
    saved.last_model_path = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    state = saved.state_dict()

    copy = BestCheckpoint(tie_breaker=None, dirpath=str(tmp_path / "copy" / "checkpoints"), monitor="loss", mode="min")
    copy.load_state_dict(state)

    assert copy.best_model_score is not None
    assert float(copy.best_model_score) == pytest.approx(0.0445)
    assert copy.best_model_path == str(tmp_path / "copy" / "checkpoints" / "best.ckpt")
    assert list(copy.best_k_models) == [copy.best_model_path]
    assert copy.last_model_path == str(tmp_path / "copy" / "checkpoints" / "last.ckpt")


def test_a_loss_that_is_not_finite_in_the_first_epoch_is_early_stopping_in_valid_json(tmp_path: Path) -> None:
    from torchbricks.__main__ import main

    arguments = ["train", "trainer.max_epochs=3", "optimizer.lr=1e12", "early_stopping.patience=3", "export_onnx=false"]
    assert main([*arguments, f"experiment.path_experiments={tmp_path}", "experiment.name=diverged"]) == 0

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    metrics = json.loads((tmp_path / "diverged" / "metrics.json").read_text(), parse_constant=refuse)
    json.loads((tmp_path / "diverged" / "history.json").read_text(), parse_constant=refuse)
    assert metrics["epochs"] == 1
    assert metrics["stop_reason"] == "early_stopping"
    assert "not finite" in metrics["early_stopping_message"]


@pytest.mark.parametrize(("patience", "stops"), [(2, True), (5, False)])
def test_a_run_resumed_after_early_stopping_ended_it_stops_before_another_epoch(patience: int, stops: bool) -> None:
    from types import SimpleNamespace

    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    stopping = BudgetEarlyStopping(monitor="validation/loss", patience=patience)
    stopping.load_state_dict({"wait_count": 2, "stopped_epoch": 9, "best_score": torch.tensor(0.1), "patience": 2})
    trainer = SimpleNamespace(current_epoch=10, should_stop=False)  # resumed from the stopping epoch's last.ckpt

    stopping.on_train_start(trainer, None)

    assert trainer.should_stop is stops  # a larger early_stopping.patience on resume lets the run go on


def _stopping_with_a_switch(patience: int, finish: bool) -> tuple[Any, Any]:
    from types import SimpleNamespace

    from torchbricks.datasets.transforms import AugmentationSwitch
    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    stopping = BudgetEarlyStopping(monitor="validation/loss", patience=patience, finish_without_augmentations=finish)
    data_module = SimpleNamespace(augmentation_switch=AugmentationSwitch())
    stopping._trainer = SimpleNamespace(current_epoch=0, datamodule=data_module)
    return stopping, data_module.augmentation_switch


@pytest.mark.parametrize("finish", [True, False])
def test_early_stopping_first_turns_the_augmentations_off_then_stops_at_the_next_plateau(finish: bool) -> None:
    stopping, switch = _stopping_with_a_switch(patience=2, finish=finish)

    decisions = []
    for epoch, value in enumerate([1.0, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4]):
        stopping._trainer.current_epoch = epoch
        decisions.append(stopping._evaluate_stopping_criteria(torch.tensor(value))[0])
        if decisions[-1]:
            break

    if finish:  # the plateau at epoch 4 turns them off; the next plateau, from a better value, ends the run
        assert decisions == [False, False, False, False, False, False, True]
        assert (switch.on, stopping.augmentations_off_epoch) == (False, 4)
    else:
        assert decisions == [False, False, False, True]
        assert (switch.on, stopping.augmentations_off_epoch) == (True, None)


@pytest.mark.parametrize("last_phase", [True, False])
def test_the_switch_says_whether_the_last_phase_has_augmentations_of_its_own(
    last_phase: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    stopping, _ = _stopping_with_a_switch(patience=1, finish=True)
    stopping._trainer.datamodule.train_transform = SimpleNamespace(has_last_phase_augmentations=last_phase)

    with caplog.at_level(logging.INFO, logger="pytorch_lightning.utilities.rank_zero"):
        for value in (1.0, 1.0):
            stopping._evaluate_stopping_criteria(torch.tensor(value))

    expected = "with data.last_phase_augmentations instead" if last_phase else "without them"
    assert f"training goes on {expected} until" in caplog.text


def test_a_run_resumed_without_its_augmentations_stays_without_them() -> None:
    stopping, _ = _stopping_with_a_switch(patience=2, finish=True)
    for epoch, value in enumerate([1.0, 1.0, 1.0]):
        stopping._trainer.current_epoch = epoch
        stopping._evaluate_stopping_criteria(torch.tensor(value))
    resumed, switch = _stopping_with_a_switch(patience=2, finish=True)

    resumed.load_state_dict(stopping.state_dict())
    resumed.on_train_start(resumed._trainer, None)

    assert (switch.on, resumed.augmentations_off_epoch, resumed.wait_count) == (False, 3, 0)


def test_without_an_augmentation_switch_the_run_stops_as_before() -> None:
    from types import SimpleNamespace

    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    stopping = BudgetEarlyStopping(monitor="validation/loss", patience=1, finish_without_augmentations=True)
    stopping._trainer = SimpleNamespace(current_epoch=0, datamodule=None)  # a data module of the user's, no switch

    decisions = [stopping._evaluate_stopping_criteria(torch.tensor(value))[0] for value in (1.0, 1.0)]

    assert decisions == [False, True]


def test_the_augmentations_of_the_sources_data_set_expands_to_are_turned_off_through_their_renaming() -> None:
    from types import SimpleNamespace

    from torchbricks.datasets.transforms import AugmentationSwitch
    from torchbricks.lightning.callbacks import BudgetEarlyStopping
    from torchbricks.lightning.multi_source import MultiSourceDataModule, RenamedDataModule

    # data.sources=[...] wraps each source's data module in a RenamedDataModule (multi_source_config.expand_sources)
    inner = {name: SimpleNamespace(datasets={}, augmentation_switch=AugmentationSwitch()) for name in ("boxes", "masks")}
    sources = {name: RenamedDataModule(module, rename={}) for name, module in inner.items()}
    stopping = BudgetEarlyStopping(monitor="validation/loss", patience=1, finish_without_augmentations=True)
    stopping._trainer = SimpleNamespace(current_epoch=4, datamodule=MultiSourceDataModule(sources))

    decisions = [stopping._evaluate_stopping_criteria(torch.tensor(value))[0] for value in (1.0, 1.0)]

    assert decisions == [False, False]  # the plateau turned the augmentations off instead of stopping
    assert [module.augmentation_switch.on for module in inner.values()] == [False, False]


def test_the_augmentations_of_every_source_of_a_multi_source_data_module_are_turned_off() -> None:
    from types import SimpleNamespace

    from torchbricks.datasets.transforms import AugmentationSwitch
    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    sources = {name: SimpleNamespace(augmentation_switch=AugmentationSwitch()) for name in ("boxes", "masks")}
    stopping = BudgetEarlyStopping(monitor="validation/loss", patience=1, finish_without_augmentations=True)
    stopping._trainer = SimpleNamespace(current_epoch=4, datamodule=SimpleNamespace(sources=sources))

    decisions = [stopping._evaluate_stopping_criteria(torch.tensor(value))[0] for value in (1.0, 1.0)]

    assert decisions == [False, False]
    assert [source.augmentation_switch.on for source in sources.values()] == [False, False]
    assert stopping.augmentations_off_epoch == 5


def test_the_moving_average_warms_up_then_follows_the_decay_and_copies_integer_buffers() -> None:
    module = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    averaging = ExponentialMovingAverage(decay=0.9)
    averaged = torch.optim.swa_utils.AveragedModel(module, multi_avg_fn=averaging._average, use_buffers=True)
    expected = module[0].weight.detach().clone()
    for step in range(30):
        with torch.no_grad():
            module[0].weight.add_(1.0)
            module[1].num_batches_tracked.add_(1)
        averaged.update_parameters(module)
        if step == 0:  # the first update copies
            expected = module[0].weight.detach().clone()
        else:  # the n-th update, n = step: the warm-up rate until it reaches the decay (from n = 80 on)
            rate = min(0.9, (1 + step) / (10 + step))
            expected = rate * expected + (1 - rate) * module[0].weight
        torch.testing.assert_close(averaged.module[0].weight, expected)
    assert averaged.module[1].num_batches_tracked.item() == 30  # copied, not averaged
    assert averaged.module[1].num_batches_tracked.dtype == torch.long


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_zero_to_one_is_refused(decay: float) -> None:
    with pytest.raises(ConfigError, match=r"ExponentialMovingAverage: decay must be in \(0, 1\)"):
        ExponentialMovingAverage(decay=decay)


def test_the_moving_average_follows_the_loss_balancers_state_and_averages_only_the_bricks(tmp_path: Path) -> None:
    from torchbricks.loss_balancing import DynamicWeightAverage

    collection = BrickCollection(
        {
            "model": BrickTrainable(nn.Linear(1, 2), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce"]),
            "loss_2": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce_2"]),
        }
    )
    balancer = DynamicWeightAverage(["ce", "ce_2"])
    module = LightningBrickCollection(tmp_path, "run", collection, partial(torch.optim.SGD, lr=0.1), loss_balancer=balancer)
    data = NamedTensorDataset(raw=torch.randn(16, 1), targets=torch.randint(0, 2, (16,)))
    checkpoint = ModelCheckpoint(tmp_path / "checkpoints", save_on_train_epoch_end=True, save_last=True)
    trainer = pl.Trainer(
        max_epochs=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ExponentialMovingAverage(decay=0.9), checkpoint],
    )
    trainer.fit(module, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))

    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    averaged, trained = saved["state_dict"], saved["current_model_state"]
    assert not torch.equal(averaged["brick_collection.model.model.weight"], trained["brick_collection.model.model.weight"])
    assert bool(torch.isfinite(trained["loss_balancer.history"]).all())  # four epochs: two of history
    for name in ("loss_balancer.history", "loss_balancer.weights"):  # copied, not averaged (an average of NaN stays NaN)
        torch.testing.assert_close(averaged[name], trained[name])


class _RecordWeight(pl.Callback):
    """The weight of the module's linear layer when validation ends an epoch and when training ends."""

    def __init__(self) -> None:
        self.validated: list[torch.Tensor] = []
        self.at_the_end: torch.Tensor | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validated.append(pl_module.brick_collection["model"].model.weight.detach().clone())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.at_the_end = pl_module.brick_collection["model"].model.weight.detach().clone()


@pytest.mark.parametrize("probe_first", [True, False])
def test_other_callbacks_see_the_average_when_validation_ends_whatever_their_order(tmp_path: Path, probe_first: bool) -> None:
    # Lightning's WeightAveraging swaps the trained weights back in its own epoch-end hook, so a callback after it
    # (the prediction picture drawn when validation ends) saw the trained weights, not the validated ones.
    probe, averaging = _RecordWeight(), ExponentialMovingAverage(decay=0.9)
    _fit(tmp_path, [probe, averaging] if probe_first else [averaging, probe], max_epochs=2, checkpoints=True)

    saved = torch.load(next((tmp_path / "checkpoints").glob("*.ckpt")), weights_only=True)
    averaged, trained = (saved[key]["brick_collection.model.model.weight"] for key in ("state_dict", "current_model_state"))
    assert not torch.equal(averaged, trained)  # the checkpoint, saved after validation, has the two the right way round
    torch.testing.assert_close(probe.validated[-1], averaged)
    if not probe_first:  # the main job puts the average first, so the picture drawn when training ends shows it too
        assert probe.at_the_end is not None
        torch.testing.assert_close(probe.at_the_end, averaged)


@pytest.mark.parametrize(("global_step", "stops"), [(2, False), (6, True)])
def test_a_run_resumed_with_its_patience_spent_before_start_fraction_goes_on_until_start_fraction(
    global_step: int, stops: bool
) -> None:
    from types import SimpleNamespace

    from torchbricks.lightning.callbacks import BudgetEarlyStopping

    stopping = BudgetEarlyStopping(monitor="validation/loss", patience=2, start_fraction=0.5)
    # The patience ran out at epoch 2, but start_fraction kept the run going; its checkpoint holds wait_count 3.
    stopping.load_state_dict({"wait_count": 3, "stopped_epoch": 0, "best_score": torch.tensor(0.1), "patience": 2})
    trainer = SimpleNamespace(
        current_epoch=3, should_stop=False, callbacks=[], global_step=global_step, estimated_stepping_batches=10
    )

    stopping.on_train_start(trainer, None)

    assert trainer.should_stop is stops  # 2 of 10 steps is before start_fraction 0.5; 6 of 10 is past it
