"""bf16 mixed precision and compiled stages, on the CPU."""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

from torchbricks import VISUALIZATION, BrickCollection, BrickLoss, BrickMetrics, BrickNotTrainable, BrickTrainable, Stage
from torchbricks.bricks import BrickInterface
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.datamodules import NamedTensorDataset


def _collection(draws: bool = False) -> BrickCollection:
    torch.manual_seed(0)
    bricks: dict[str, object] = {
        "backbone": BrickTrainable(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), input_names=["raw"], output_names=["features"]),
        "classify": BrickTrainable(nn.Linear(16, 3), input_names=["features"], output_names=["logits"]),
        "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce"]),
        "metrics": BrickMetrics({"accuracy": MulticlassAccuracy(num_classes=3)}, input_names=["logits", "targets"]),
    }
    if draws:  # a drawing brick: Python on every image, not traceable
        bricks["draw"] = BrickNotTrainable(_Describe(), input_names=["logits"], output_names=["drawing"], tags=[VISUALIZATION])
    return BrickCollection(bricks)


class _Describe(nn.Module):
    def forward(self, logits: torch.Tensor) -> list[str]:
        return [f"class {int(row.argmax())}" for row in logits]


def _loader() -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    data = NamedTensorDataset(
        raw=torch.randn(64, 8, generator=generator), targets=torch.randint(0, 3, (64,), generator=generator)
    )
    return DataLoader(data, batch_size=16)


def _trainer(**kwargs: object) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kwargs
    )


@pytest.mark.slow
def test_bf16_mixed_precision_trains_in_bfloat16_autocast_and_keeps_float32_weights(tmp_path: Path) -> None:
    collection = _collection()
    seen: list[torch.dtype] = []
    collection["classify"].model.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    module = LightningBrickCollection(tmp_path, "bf16", collection, partial(torch.optim.SGD, lr=0.1))

    _trainer(precision="bf16-mixed").fit(module, _loader(), _loader())

    assert set(seen) == {torch.bfloat16}
    assert all(parameter.dtype == torch.float32 for parameter in collection.parameters())
    assert torch.isfinite(module.epoch_metrics["validation"]["accuracy"]).all()
    assert 0.0 <= float(module.epoch_metrics["train"]["accuracy"]) <= 1.0


@pytest.mark.slow
def test_compiled_stages_train_to_the_weights_of_eager_stages_and_a_drawing_test_stage_stays_eager(tmp_path: Path) -> None:
    torch._dynamo.reset()
    eager = _collection(draws=True)
    compiled = copy.deepcopy(eager)
    results = {}
    for name, collection, compile_stages in (("eager", eager, False), ("compiled", compiled, True)):
        module = LightningBrickCollection(
            tmp_path, name, collection, partial(torch.optim.SGD, lr=0.1), compile_stages=compile_stages
        )
        trainer = _trainer()
        trainer.fit(module, _loader(), _loader())
        trainer.test(module, _loader())
        results[name] = module.epoch_metrics

    for (name, expected), actual in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=name)
    for stage in ("train", "validation", "test"):
        assert float(results["compiled"][stage]["accuracy"]) == pytest.approx(float(results["eager"][stage]["accuracy"]))


def test_a_stage_with_per_batch_metric_values_stays_eager_and_compiling_it_directly_names_the_brick() -> None:
    from torchbricks import BrickMetricSingle
    from torchbricks.lightning.module import _traceable

    collection = _collection()
    collection["batch_accuracy"] = BrickMetricSingle(
        MulticlassAccuracy(num_classes=3), input_names=["logits", "targets"], metric_name="batch_accuracy", return_metrics=True
    )
    assert not _traceable(collection, Stage.TRAIN)
    assert _traceable(_collection(), Stage.TRAIN)

    torch._dynamo.reset()
    compiled = torch.compile(collection, fullgraph=True, backend="eager")
    with pytest.raises(Exception, match=r"return_metrics=True \(\['batch_accuracy'\]\).*torch.compile cannot trace"):
        compiled(named_inputs={"raw": torch.rand(4, 8), "targets": torch.tensor([0, 1, 2, 0])}, tags=Stage.TRAIN)


class _Accuracy042(BrickInterface, nn.Module):
    """A metric-like brick written for torchbricks 0.4.2: its own forward updates torchmetrics, which dynamo cannot trace."""

    def __init__(self, input_names: list[str]) -> None:
        BrickInterface.__init__(self, input_names=input_names, output_names=[], tags="METRIC")
        nn.Module.__init__(self)
        self.accuracy = MulticlassAccuracy(num_classes=3)

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.accuracy.update(*(named_inputs[name] for name in self.input_names))
        return {}

    def extract_losses(self, named_outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def summarize(self, reset: bool) -> dict[str, torch.Tensor]:
        values = {"accuracy_042": self.accuracy.compute()}
        if reset:
            self.accuracy.reset()
        return values


def test_a_stage_running_a_042_brick_with_its_own_forward_stays_eager_and_gives_the_eager_step(tmp_path: Path) -> None:
    torch._dynamo.reset()
    collection = _collection()
    collection["accuracy_042"] = _Accuracy042(["logits", "targets"])
    module = LightningBrickCollection(
        tmp_path, "compiled", collection, partial(torch.optim.SGD, lr=0.1), compile_stages=True, write_files=False
    )
    batch = (torch.rand(4, 8), torch.tensor([0, 1, 2, 0]))

    assert Stage.TRAIN not in module._compiled_stages  # eager: dynamo would fail on the brick's torchmetrics update
    losses = module.training_step(batch, batch_idx=0)
    eager = collection(named_inputs={"raw": batch[0], "targets": batch[1]}, tags=Stage.TRAIN)
    torch.testing.assert_close(losses["ce"], eager["ce"])
    assert module.stage_collection(Stage.TRAIN)["accuracy_042"].accuracy.update_count == 1


def test_stage_views_rebuilt_twelve_times_run_compiled_without_reaching_dynamos_recompile_limit(tmp_path: Path) -> None:
    # Lightning calls setup (which rebuilds the stage views) at every fit, validate and test: a notebook calling
    # trainer.validate a dozen times, or a model per fold, compiles the same structure again each time
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    collection = _collection()
    module = LightningBrickCollection(
        tmp_path, "compiled", collection, partial(torch.optim.SGD, lr=0.1), compile_stages=True, write_files=False
    )
    batch = (torch.rand(4, 8), torch.tensor([0, 1, 2, 0]))
    for _ in range(12):
        module._create_stage_views()  # what each setup does
        losses = module.validation_step(batch, batch_idx=0)
        expected = collection(named_inputs={"raw": batch[0], "targets": batch[1]}, tags=Stage.VALIDATION)
        torch.testing.assert_close(losses["ce"], expected["ce"])
    assert int(torch._dynamo.utils.counters["stats"]["unique_graphs"]) == 1
