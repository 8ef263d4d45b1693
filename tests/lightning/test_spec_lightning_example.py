"""The spec's "Training with pytorch-lightning trainer" example, run with its helpers and with the library's classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from readme_blocks import python_blocks
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from torchbricks import BrickCollection, BrickLoss, BrickMetricSingle, BrickTrainable

SPEC = Path(__file__).parents[1] / "spec" / "torchbricks-README.md"


def spec_block(marker: str) -> str:
    return next(block for block in python_blocks(SPEC) if marker in block)


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(block: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(block, "<spec lightning block>", "exec"), namespace)
    return namespace


def test_spec_example_runs_with_library_classes_and_a_generated_datamodule(in_tmp_path: Path) -> None:
    block = spec_block("LightningBrickCollection(")
    replacements = {
        "from utils_testing.datamodule_cifar10 import CIFAR10DataModule": (
            "from torchbricks.lightning.datamodules import GeneratedImageClassificationDataModule"
        ),
        "from utils_testing.lightning_module import LightningBrickCollection": (
            "from torchbricks.lightning import LightningBrickCollection"
        ),
        'CIFAR10DataModule(data_dir="data", batch_size=5, num_workers=12, ': (
            "GeneratedImageClassificationDataModule(batch_size=5, num_samples=20, num_workers=12, "
        ),
    }
    for old, new in replacements.items():
        assert old in block, f"the spec's example changed: {old!r} is gone"
        block = block.replace(old, new)
    collection = BrickCollection(
        {
            "backbone": BrickTrainable(nn.Conv2d(3, 8, kernel_size=3, stride=4), input_names=["raw"], output_names=["features"]),
            "head": BrickTrainable(
                nn.Sequential(nn.Flatten(), nn.LazyLinear(10)), input_names=["features"], output_names=["logits"]
            ),
            "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=10), input_names=["logits", "targets"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"]),
        }
    )
    collection({"raw": torch.rand(1, 3, 32, 32)}, tags="MODEL")  # materializes the lazy layer

    namespace = run(block, {"torch": torch, "brick_collection": collection})

    module = namespace["bricks_lightning_module"]
    assert module.path_experiment.parent == Path("build") / "experiments"
    assert set(module.epoch_metrics) == {"train", "validation", "test"}
    assert (module.path_experiment / "bricks" / "head.pt").is_file()


@pytest.mark.slow
def test_spec_example_runs_verbatim_with_its_utils_testing_helpers(in_tmp_path: Path) -> None:
    blocks = python_blocks(SPEC)
    namespace = run(blocks[0], {})
    run(blocks[1], namespace)
    run(spec_block("resnet_to_brick(resnet=resnet"), namespace)  # builds the spec's resnet18 `brick_collection`

    run(spec_block("LightningBrickCollection("), namespace)

    module = namespace["bricks_lightning_module"]
    assert set(module.epoch_metrics["test"]) == {"MulticlassAccuracy"}
    assert (module.path_experiment / "metrics_test.json").is_file()
