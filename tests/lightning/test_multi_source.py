"""Training one model from separately labelled sources: schedules, skipped targets, per-source metrics, balancing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from torchbricks import BrickCollection, BrickLoss, BrickMetricSingle, BrickTrainable
from torchbricks.errors import BrickError
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.datamodules import NamedTensorDataset
from torchbricks.lightning.multi_source import MultiSourceDataModule, SourceSchedule
from torchbricks.loss_balancing import DynamicWeightAverage, PCGrad, UncertaintyWeighting


class TensorSource(pl.LightningDataModule):
    """A source whose batches carry `raw` and one head's targets."""

    def __init__(self, targets_name: str, num_classes: int, size: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        raw = torch.rand(size, 4, generator=generator)
        targets = (raw.sum(dim=1) * num_classes / 4).long().clamp(max=num_classes - 1)
        self.dataset = NamedTensorDataset(raw=raw, **{targets_name: targets})

    def train_dataloader(self) -> Any:
        return torch.utils.data.DataLoader(self.dataset, batch_size=4, shuffle=True)

    def val_dataloader(self) -> Any:
        return torch.utils.data.DataLoader(self.dataset, batch_size=4)

    def test_dataloader(self) -> Any:
        return self.val_dataloader()


def two_heads() -> BrickCollection:
    def head(targets: str, num_classes: int) -> dict[str, Any]:
        return {
            "classify": BrickTrainable(nn.Linear(8, num_classes), input_names=["features"], output_names=["./logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", targets], output_names=["./loss"]),
            "accuracy": BrickMetricSingle(
                MulticlassAccuracy(num_classes=num_classes, average="micro"), input_names=["./logits", targets]
            ),
        }

    return BrickCollection(
        {
            "backbone": BrickTrainable(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), input_names=["raw"], output_names=["features"]),
            "shape": head("shape_targets", 3),
            "colour": head("colour_targets", 2),
        }
    )


def sources(shape_size: int = 16, colour_size: int = 8) -> dict[str, pl.LightningDataModule]:
    return {"shape": TensorSource("shape_targets", 3, shape_size, 0), "colour": TensorSource("colour_targets", 2, colour_size, 1)}


def fit(tmp_path: Path, mode: str, balancer: Any = None, epochs: int = 2) -> tuple[LightningBrickCollection, pl.Trainer]:
    module = LightningBrickCollection(
        tmp_path,
        "run",
        two_heads(),
        lambda params: torch.optim.SGD(params, lr=0.1),
        loss_balancer=balancer,
        missing_targets="skip",
    )
    trainer = pl.Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_model_summary=False, accelerator="cpu"
    )
    data = MultiSourceDataModule(sources(), mode=mode, temperature=2.0)
    trainer.fit(module, datamodule=data)
    return module, trainer


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["max_size_cycle", "min_size", "sequential", "temperature"])
def test_every_schedule_trains_both_heads_and_reports_each_on_its_own_source(tmp_path: Path, mode: str) -> None:
    module, trainer = fit(tmp_path, mode)
    logged = trainer.callback_metrics
    assert {"train/losses/shape/loss", "train/losses/colour/loss", "validation/losses/shape/loss"} <= set(logged)
    # Validation metrics come from each head's own source only: recompute them on that source alone.
    collection = module.brick_collection.eval()
    for head, source in sources().items():
        data = source.dataset
        targets = next(value for name, value in data.tensors.items() if name.endswith("targets"))
        with torch.no_grad():
            logits = collection(named_inputs={"raw": data.tensors["raw"]}, tags="MODEL")[f"{head}/logits"]
        expected = (logits.argmax(dim=1) == targets).float().mean()
        torch.testing.assert_close(logged[f"validation/{head}/MulticlassAccuracy"], expected, atol=1e-6, rtol=0)


def test_a_head_loss_of_combined_batches_is_the_mean_over_its_own_source_samples(tmp_path: Path) -> None:
    # min_size: 3 steps, each a shape batch of 4 beside a colour batch of 4, 4 and then the last 2; with a learning
    # rate of 0 the colour loss of the epoch is the cross entropy of its 10 samples, whatever their order.
    colour_size = 10
    module = LightningBrickCollection(
        tmp_path, "run", two_heads(), lambda params: torch.optim.SGD(params, lr=0.0), missing_targets="skip"
    )
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False, accelerator="cpu",
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=MultiSourceDataModule(sources(colour_size=colour_size), mode="min_size"))

    colour = sources(colour_size=colour_size)["colour"].dataset.tensors
    with torch.no_grad():
        logits = module.brick_collection(named_inputs={"raw": colour["raw"]}, tags="MODEL")["colour/logits"]
    expected = nn.functional.cross_entropy(logits, colour["colour_targets"])
    torch.testing.assert_close(trainer.callback_metrics["train/losses/colour/loss_epoch"], expected, rtol=1e-6, atol=0)


def test_the_temperature_schedule_draws_by_size_and_is_the_same_for_every_process() -> None:
    loaders = {name: source.train_dataloader() for name, source in sources(shape_size=64, colour_size=8).items()}
    by_size = SourceSchedule(loaders, "temperature", temperature=1.0, seed=3)
    other_process = SourceSchedule(loaders, "temperature", temperature=1.0, seed=3)
    assert by_size.schedule(0) == other_process.schedule(0)
    assert by_size.schedule(0) != by_size.schedule(1)  # a new draw per epoch
    draws = [name for epoch in range(50) for name in by_size.schedule(epoch)]
    assert draws.count("shape") / len(draws) == pytest.approx(16 / 18, abs=0.03)  # 16 batches against 2
    flat = SourceSchedule(loaders, "temperature", temperature=1000.0, seed=3)
    draws = [name for epoch in range(50) for name in flat.schedule(epoch)]
    assert draws.count("shape") / len(draws) == pytest.approx(0.5, abs=0.05)


def test_the_temperature_schedule_draws_every_source_in_every_epoch() -> None:
    loaders = {name: source.train_dataloader() for name, source in sources(shape_size=160, colour_size=4).items()}
    schedule = SourceSchedule(loaders, "temperature", temperature=1.0, seed=0)
    assert [len(loader) for loader in loaders.values()] == [40, 1]  # by size alone, 'colour' is missing from 37 % of epochs

    epochs = [schedule.schedule(epoch) for epoch in range(40)]

    assert all(steps.count("colour") >= 1 and len(steps) == 41 for steps in epochs)
    assert sum(steps.count("colour") for steps in epochs) / (40 * 41) < 0.05  # still drawn by size otherwise


def test_an_unknown_mode_is_rejected_with_the_close_match() -> None:
    with pytest.raises(BrickError, match=r"Unknown multi-source mode 'max_size_cycles'.*Did you mean 'max_size_cycle'"):
        MultiSourceDataModule(sources(), mode="max_size_cycles")


@pytest.mark.slow
def test_uncertainty_weights_are_trained_with_the_model(tmp_path: Path) -> None:
    balancer = UncertaintyWeighting(["shape/loss", "colour/loss"])
    _, trainer = fit(tmp_path, "max_size_cycle", balancer)
    assert not torch.equal(balancer.log_variances.detach(), torch.zeros(2))
    assert "train/balancing/weights/shape/loss" in trainer.callback_metrics


@pytest.mark.slow
def test_dynamic_weight_average_moves_its_weights_after_two_epochs(tmp_path: Path) -> None:
    balancer = DynamicWeightAverage(["shape/loss", "colour/loss"])
    _, trainer = fit(tmp_path, "max_size_cycle", balancer, epochs=3)
    weights = balancer.weights
    assert not torch.equal(weights, torch.ones(2))
    assert weights.sum().item() == pytest.approx(2.0)
    assert trainer.callback_metrics["train/balancing/weights/shape/loss"].item() == pytest.approx(weights[0].item())


@pytest.mark.slow
def test_pcgrad_replaces_the_backward_pass_of_every_training_step(tmp_path: Path) -> None:
    balancer = PCGrad(["shape/loss", "colour/loss"])
    calls = []
    surgery = balancer.backward
    balancer.backward = lambda losses, shared=None, average=None: calls.append(sorted(losses)) or surgery(losses, shared, average)  # type: ignore[method-assign]
    _, trainer = fit(tmp_path, "max_size_cycle", balancer)
    assert calls == [["colour/loss", "shape/loss"]] * 8  # 2 epochs of 4 steps, each with both sources' batches
    assert 0 <= trainer.callback_metrics["train/balancing/pcgrad/conflicting_fraction"].item() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["temperature", "max_size_cycle"])
def test_two_ddp_processes_follow_one_source_schedule_and_agree_on_the_weights(tmp_path: Path, mode: str) -> None:
    # imported here: ddp_multi_source_job.py imports this module, in a process that has only its own folder on the path
    from test_distributed import run_command

    job = Path(__file__).parent / "ddp_multi_source_job.py"
    completed = run_command([sys.executable, str(job), str(tmp_path), "2", mode], timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert first["world_size"] == 2
    assert first["steps"] == second["steps"]  # the same source at every step: collectives stay in step
    assert len({tuple(step) for step in first["steps"]}) == (2 if mode == "temperature" else 1)
    assert first["weights"] == second["weights"]  # DWA moved alike on both: its inputs are the reduced epoch means
    assert first["weights"] != [1.0, 1.0]


def test_a_target_name_no_training_batch_carries_is_an_error_naming_the_close_name(tmp_path: Path) -> None:
    collection = two_heads()
    misspelt = BrickCollection(
        {
            "backbone": collection["backbone"],
            "shape": collection["shape"],
            "colour": {
                "classify": collection["colour"]["classify"],
                "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "colour_target"], output_names=["./loss"]),
            },
        }
    )
    module = LightningBrickCollection(
        tmp_path, "run", misspelt, lambda params: torch.optim.SGD(params, lr=0.1), missing_targets="skip", write_files=False
    )
    options = {"max_epochs": 2, "logger": False, "enable_checkpointing": False, "enable_model_summary": False}
    data = MultiSourceDataModule(sources(), mode="max_size_cycle")

    with pytest.raises(BrickError, match=r"No training batch up to epoch 0 carried 'colour_target'") as raised:
        pl.Trainer(**options, enable_progress_bar=False, limit_val_batches=0).fit(module, datamodule=data)
    assert "the bricks ['colour/loss']" in str(raised.value)
    assert "Did you mean 'colour_targets'?" in str(raised.value)
    with pytest.raises(
        BrickError, match=r"No loss brick ran in stage 'validation'.* For 'colour_target': Did you mean 'colour_targets'\?"
    ):
        pl.Trainer(**options, enable_progress_bar=False).fit(module, datamodule=data)  # the sanity check's batch of colours


def test_every_target_name_some_batch_carries_passes_the_check(tmp_path: Path) -> None:
    _, trainer = fit(tmp_path, "sequential", epochs=1)
    assert trainer.current_epoch == 1


def test_a_resumed_fit_draws_the_schedule_of_its_epoch_not_of_the_first() -> None:
    from types import SimpleNamespace

    data = MultiSourceDataModule(sources(shape_size=64, colour_size=8), mode="temperature", seed=3)
    data.trainer = SimpleNamespace(current_epoch=3, world_size=1)  # type: ignore[assignment]  # resumed after 3 epochs

    schedule = data.train_dataloader()

    assert [next(iter(batch)) for batch in schedule] == schedule.schedule(3) != schedule.schedule(0)
