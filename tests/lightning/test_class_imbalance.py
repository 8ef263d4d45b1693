"""`loss.class_weights=auto` and the per-class scores through the training job, as shipped, on tiny generated shapes:
the weights recorded in resolved_config.yaml are the inverse class frequencies of the training split, and the
per-class values of metrics.json, keyed by class name, are scikit-learn's on the model's own test predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import iou_per_class, null_as_nan
from omegaconf import OmegaConf
from sklearn.metrics import precision_recall_fscore_support

from torchbricks.configuration import compose_config, instantiate_config
from torchbricks.datasets.shapes import SHAPE_CLASSES, write_shapes_dataset
from torchbricks.lightning.main_job import MainJobResult, run_main_job
from torchbricks.tags import Stage

TINY = ["trainer.max_epochs=1", "data.image_size=32", "data.batch_size=4", "n_visualized=4", "export_onnx=false"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", num_train=8, num_val=4, image_size=64, seed=0)


def _run(task: str, root: Path, tmp_path: Path) -> tuple[MainJobResult, Any]:
    where = [f"task={task}", f"data.root={root}", f"experiment.path_experiments={tmp_path}", "experiment.name=run"]
    config = compose_config([*where, "loss.class_weights=auto", *TINY])
    return run_main_job(config), config


def _test_predictions(result: MainJobResult, config: Any, prediction: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """The trained model's predictions on the test split, and the targets, flattened."""
    data = instantiate_config(config, "data")
    data.setup("test")
    collection = result.module.brick_collection.eval()
    predicted, truth = [], []
    with torch.no_grad():
        for batch in data.test_dataloader():
            outputs = collection({"raw": batch["raw"]}, tags=Stage.INFERENCE)
            predicted.append(outputs[prediction].flatten())
            truth.append(batch[target].flatten())
    return torch.cat(predicted).numpy(), torch.cat(truth).numpy()


def _recorded_weights(folder: Path, head: str) -> list[float]:
    resolved = OmegaConf.load(folder / "resolved_config.yaml")
    return list(resolved.model.bricks[head].loss.model.class_weights)


@pytest.mark.slow
def test_classification_records_auto_weights_and_writes_per_class_scores_by_name(shapes: Path, tmp_path: Path) -> None:
    root = shapes / "classification"
    result, config = _run("classification", root, tmp_path)

    counts = np.array([len(list((root / "train" / name).iterdir())) for name in SHAPE_CLASSES], dtype=np.float64)
    expected = (1 / counts) * len(counts) / (1 / counts).sum()
    assert _recorded_weights(result.path_experiment, "classification") == pytest.approx(expected.tolist(), abs=1e-5)
    per_class = json.loads((result.path_experiment / "metrics.json").read_text())["test"]["classification/per_class"]
    assert list(per_class) == list(SHAPE_CLASSES)
    predicted, truth = _test_predictions(result, config, "classification/class_prediction", "targets")
    # a value with nothing to divide by (a class never predicted, or absent) is null, scikit-learn's np.nan
    precision, recall, _, support = precision_recall_fscore_support(truth, predicted, labels=range(3), zero_division=np.nan)
    iou = iou_per_class(truth, predicted, range(3))
    for index, name in enumerate(SHAPE_CLASSES):
        for key, expected in (("precision", precision), ("recall", recall), ("iou", iou)):
            assert null_as_nan(per_class[name][key]) == pytest.approx(expected[index], abs=1e-6, nan_ok=True), (name, key)
        assert per_class[name]["support"] == support[index]
    assert (result.path_experiment / "confusion_matrix.png").is_file()


@pytest.mark.slow
def test_segmentation_records_pixel_weights_and_writes_per_class_pixel_scores_by_name(shapes: Path, tmp_path: Path) -> None:
    root = shapes / "segmentation"
    result, config = _run("segmentation", root, tmp_path)

    names = (root / "classes.txt").read_text().split()
    weights = _recorded_weights(result.path_experiment, "segmentation")
    assert len(weights) == len(names)
    assert np.mean(weights) == pytest.approx(1.0, abs=1e-5)
    assert weights[0] == min(weights)  # the background covers most pixels
    per_class = json.loads((result.path_experiment / "metrics.json").read_text())["test"]["segmentation/per_class"]
    assert list(per_class) == names
    predicted, truth = _test_predictions(result, config, "segmentation/mask", "targets")
    kept = truth != 255
    precision, recall, _, support = precision_recall_fscore_support(
        truth[kept], predicted[kept], labels=range(len(names)), zero_division=np.nan
    )
    iou = iou_per_class(truth[kept], predicted[kept], range(len(names)))
    for index, name in enumerate(names):
        for key, expected in (("precision", precision), ("recall", recall), ("iou", iou)):
            assert null_as_nan(per_class[name][key]) == pytest.approx(expected[index], abs=1e-5, nan_ok=True), (name, key)
        assert per_class[name]["support"] == support[index]
