"""Each task's ready-made collection trains on a tiny generated data set, and its head factory nests anywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchmetrics.classification import MulticlassJaccardIndex

from torchbricks.bag_of_bricks.image_classification import create_bricks_image_classification, create_image_classification_head
from torchbricks.bag_of_bricks.point_detection import create_bricks_point_detection
from torchbricks.bag_of_bricks.segmentation import create_bricks_segmentation, create_segmentation_head
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import BrickError
from torchbricks.tags import Stage


def _tiny_cnn(in_channels: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
    )


def _train(model: BrickCollection, make_batch: Callable[[torch.Generator], dict[str, Any]], steps: int = 30) -> list[float]:
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(steps):
        outputs = model(named_inputs=make_batch(generator), tags=Stage.TRAIN)
        loss = sum(model.extract_losses(outputs).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def _falls(history: list[float]) -> bool:
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    return last < 0.5 * first


def _classification_batch(generator: torch.Generator, batch_size: int = 8) -> dict[str, Any]:
    targets = torch.randint(0, 2, (batch_size,), generator=generator)
    images = 0.2 * torch.rand(batch_size, 3, 16, 16, generator=generator)
    images[torch.arange(batch_size), targets] += 0.8  # class 0 is red, class 1 green
    return {"raw": images, "targets": targets}


@pytest.mark.slow
def test_image_classification_collection_trains_and_draws_predictions() -> None:
    torch.manual_seed(0)
    model = create_bricks_image_classification(num_classes=2, backbone=_tiny_cnn(), class_names=["red", "green"])
    history = _train(model, _classification_batch)
    assert _falls(history), history

    outputs = model(named_inputs=_classification_batch(torch.Generator().manual_seed(1)), tags=Stage.TEST)
    assert set(model.summarize(reset=True)) == {"head/accuracy", "head/confusion_matrix", "head/per_class"}
    drawn = outputs["head/visualization"]
    assert len(drawn) == 8
    assert all(isinstance(image, Image.Image) and image.size == (16, 16) for image in drawn)


def _segmentation_batch(generator: torch.Generator, batch_size: int = 4) -> dict[str, Any]:
    images = 0.1 * torch.rand(batch_size, 3, 16, 16, generator=generator)
    targets = torch.zeros(batch_size, 16, 16, dtype=torch.int64)
    corners = torch.randint(0, 10, (batch_size, 2), generator=generator)
    for index, (y, x) in enumerate(corners.tolist()):
        images[index, :, y : y + 6, x : x + 6] = 1.0
        targets[index, y : y + 6, x : x + 6] = 1
    return {"raw": images, "targets": targets}


@pytest.mark.slow
def test_segmentation_collection_trains_and_overlays_masks() -> None:
    torch.manual_seed(0)
    model = create_bricks_segmentation(num_classes=2, backbone=_tiny_cnn(), num_scales=3, hidden_channels=8)
    assert [name for name, _ in model.iter_bricks()] == [
        "preprocessor",
        "backbone",
        "head/neck",
        "head/classify",
        "head/loss",
        "head/metrics",
        "head/visualize",
    ]
    history = _train(model, _segmentation_batch)
    assert _falls(history), history

    outputs = model(named_inputs=_segmentation_batch(torch.Generator().manual_seed(1)), tags=Stage.TEST)
    assert outputs["head/mask"].shape == (4, 16, 16)
    assert set(model.summarize(reset=True)) == {"head/mean_iou"}
    assert outputs["head/visualization"][0].size == (16, 16)


def _points_batch(generator: torch.Generator, batch_size: int = 4) -> dict[str, Any]:
    images = 0.1 * torch.rand(batch_size, 3, 32, 32, generator=generator)
    points = torch.full((batch_size, 2, 2), -1.0)
    labels = torch.full((batch_size, 2), -1, dtype=torch.int64)  # the second point of each image is padding
    centers = torch.randint(4, 28, (batch_size, 2), generator=generator)
    classes = torch.randint(0, 2, (batch_size,), generator=generator)
    for index, ((x, y), label) in enumerate(zip(centers.tolist(), classes.tolist(), strict=True)):
        images[index, label, y - 1 : y + 2, x - 1 : x + 2] = 1.0
        points[index, 0] = torch.tensor([x + 0.5, y + 0.5])
        labels[index, 0] = label
    return {"raw": images, "target_points": points, "target_labels": labels}


@pytest.mark.slow
def test_point_detection_collection_trains_and_draws_points() -> None:
    torch.manual_seed(0)
    model = create_bricks_point_detection(
        num_classes=2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=16, class_names=["r", "g"]
    )
    history = _train(model, _points_batch, steps=40)
    assert _falls(history), history

    outputs = model(named_inputs=_points_batch(torch.Generator().manual_seed(1)), tags=Stage.TEST)
    assert outputs["head/points"].shape == (4, 32, 2)
    summary = model.summarize(reset=True)
    assert set(summary) == {"head/f1", "head/precision", "head/recall", "head/per_class"}
    assert list(summary["head/per_class"]) == ["r", "g"]  # keyed by the head's class names
    assert outputs["head/visualization"][0].size == (32, 32)


def test_head_factories_nest_under_any_name_with_relative_names() -> None:
    model = BrickCollection(
        {
            "animals": create_image_classification_head(
                num_classes=3, in_channels=8, features_name="features", targets_name="animals"
            ),
            "colors": create_image_classification_head(
                num_classes=5, in_channels=8, features_name="features", targets_name="colors"
            ),
            "roads": create_segmentation_head(2, [8], ["features"], "roads", output_stride=4, hidden_channels=4),
            "cars": create_segmentation_head(3, [8], ["features"], "cars", output_stride=4, hidden_channels=4),
        }
    )
    batch = {
        "features": torch.rand(2, 8, 4, 4),
        "animals": torch.tensor([0, 2]),
        "colors": torch.tensor([4, 1]),
        "roads": torch.zeros(2, 16, 16, dtype=torch.int64),
        "cars": torch.ones(2, 16, 16, dtype=torch.int64),
    }
    outputs = model(named_inputs=batch, tags=Stage.TRAIN)
    assert outputs["animals/probabilities"].shape == (2, 3)
    assert outputs["colors/probabilities"].shape == (2, 5)
    assert outputs["cars/logits"].shape == (2, 3, 16, 16)
    assert sorted(model.extract_losses(outputs)) == ["animals/loss_ce", "cars/loss_ce", "colors/loss_ce", "roads/loss_ce"]
    assert sorted(model.summarize(reset=True)) == [
        "animals/accuracy",
        "animals/confusion_matrix",
        "animals/per_class",
        "cars/mean_iou",
        "colors/accuracy",
        "colors/confusion_matrix",
        "colors/per_class",
        "roads/mean_iou",
    ]


def test_ready_made_collections_need_only_images_to_export() -> None:
    model = create_bricks_point_detection(num_classes=2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=8)
    assert model.required_inputs(tags=Stage.EXPORT) == ["raw"]
    assert model.required_inputs(tags=Stage.TRAIN) == ["raw", "target_points", "target_labels"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "create", [create_bricks_image_classification, create_bricks_segmentation, create_bricks_point_detection]
)
def test_ready_made_collections_export_to_onnx_with_any_batch_size(
    create: Callable[..., BrickCollection], tmp_path: Path
) -> None:
    import onnxruntime

    from torchbricks.brick_collection_utils import export_bricks_as_onnx

    torch.manual_seed(0)
    model = create(2, backbone=_tiny_cnn()).eval()
    path = tmp_path / "model.onnx"
    export_bricks_as_onnx(
        path_onnx=path, brick_collection=model, named_inputs={"raw": torch.rand(2, 3, 16, 16)}, dynamic_batch_size=True
    )
    images = torch.rand(3, 3, 16, 16)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_outputs()]
    actual = dict(zip(names, session.run(None, {"raw": images.numpy()}), strict=True))
    with torch.no_grad():
        expected = model(named_inputs={"raw": images}, tags=Stage.EXPORT)
    if "head/points" in actual:  # cells tied at score 0 (not peaks) may come in any order: compare the peaks as sets
        peaks = []
        for outputs in (actual, expected):
            scores = np.asarray(outputs.pop("head/scores"))
            points, labels = np.asarray(outputs.pop("head/points")), np.asarray(outputs.pop("head/labels"))
            peaks.append(np.concatenate([points, labels[..., None], scores[..., None]], axis=-1)[scores > 0])
        assert len(peaks[0]) == len(peaks[1])
        assert all(np.isclose(peaks[1], row, atol=1e-4).all(axis=1).any() for row in peaks[0])
    for name, value in actual.items():
        assert np.allclose(value, expected[name].numpy(), atol=1e-4), name


def test_segmentation_head_ignores_target_pixels_of_value_255_as_the_masks_mark_them() -> None:
    torch.manual_seed(0)
    model = BrickCollection(
        {"segment": create_segmentation_head(3, [8], ["features"], "targets", output_stride=2, hidden_channels=4)}
    )
    targets = torch.randint(0, 3, (1, 8, 8))
    targets[0, :4] = 255  # the masks' value of an unlabelled pixel
    outputs = model(named_inputs={"features": torch.rand(1, 8, 4, 4), "targets": targets}, tags=Stage.TRAIN)
    logits = outputs["segment/logits"]
    expected = nn.functional.cross_entropy(logits[:, :, 4:], targets[:, 4:])
    assert torch.allclose(outputs["segment/loss_ce"], expected)
    mask = outputs["segment/mask"]
    reference = MulticlassJaccardIndex(num_classes=3)(mask[:, 4:], targets[:, 4:])
    assert torch.allclose(model.summarize(reset=True)["segment/mean_iou"], reference)


def test_the_classification_head_factory_reports_the_metrics_of_the_packaged_config() -> None:
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    from torchbricks.configuration import compose_config, create_brick_collection

    torch.manual_seed(0)
    packaged = create_brick_collection(compose_config())
    packaged(named_inputs={"raw": torch.rand(6, 1, 8, 8), "targets": torch.arange(6)}, tags=Stage.TEST)
    factory = BrickCollection({"head": create_image_classification_head(10, 64, "features", "targets")})
    features, targets = torch.rand(6, 64, 2, 2), torch.tensor([0, 1, 2, 3, 4, 5])
    outputs = factory(named_inputs={"features": features, "targets": targets}, tags=Stage.TEST)

    factory_metrics = factory.summarize(reset=True)
    assert sorted(factory_metrics) == sorted(packaged.summarize(reset=True))
    assert sorted(factory_metrics) == ["head/accuracy", "head/confusion_matrix", "head/per_class"]
    # The fraction of images classified right (micro average), as the packaged head computes it.
    expected = (outputs["head/class_prediction"] == targets).float().mean()
    torch.testing.assert_close(factory_metrics["head/accuracy"], expected)
    reference = multiclass_confusion_matrix(outputs["head/class_prediction"], targets, num_classes=10)
    torch.testing.assert_close(factory_metrics["head/confusion_matrix"], reference)


@pytest.mark.parametrize("positional", [False, True], ids=["keywords", "positional"])
def test_the_042_form_of_the_classification_head_gives_042s_bricks_and_metrics(positional: bool) -> None:
    from torchbricks.bag_of_bricks.task_utils import ImageClassificationInfo

    info = ImageClassificationInfo.from_names(["cat", "dog", "bird"])
    if positional:
        head = create_image_classification_head(8, info, "features")  # type: ignore[call-overload]
    else:
        head = create_image_classification_head(n_backbone_features=8, task_info=info, input_name="features")
    model = BrickCollection({"head": head})
    features, labels = torch.rand(6, 8, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    outputs = model(named_inputs={"features": features, "label": labels}, tags=Stage.TEST)

    assert list(head) == ["classifier", "loss", "metrics"]
    assert list(model.extract_losses(outputs)) == ["head/loss"]
    metrics = model.summarize(reset=True)
    assert sorted(metrics) == ["head/Accuracy", "head/ConfMat", "head/MeanAccuracy"]
    predictions = outputs["head/class_prediction"]
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (labels.numpy(), predictions.numpy()), 1)
    np.testing.assert_array_equal(metrics["head/ConfMat"].numpy(), confusion)
    assert float(metrics["head/Accuracy"]) == pytest.approx(np.trace(confusion) / 6)
    assert float(metrics["head/MeanAccuracy"]) == pytest.approx(np.mean(np.diag(confusion) / confusion.sum(1)))


def test_mixing_the_two_forms_of_the_classification_head_is_an_error() -> None:
    from torchbricks.bag_of_bricks.task_utils import ImageClassificationInfo
    from torchbricks.errors import BrickError

    info = ImageClassificationInfo.from_names(["cat", "dog"])
    with pytest.raises(BrickError, match=r"0\.4\.2 form takes n_backbone_features, task_info and input_name"):
        create_image_classification_head(3, n_backbone_features=8, task_info=info, input_name="x")  # type: ignore[call-overload]


def test_ready_made_collections_report_readable_metric_names_those_of_the_packaged_task_configs() -> None:
    from torchbricks.bag_of_bricks.object_detection import create_bricks_object_detection
    from torchbricks.bag_of_bricks.point_detection import PointDetectionF1
    from torchbricks.configuration import compose_config

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    segmentation = create_bricks_segmentation(num_classes=2, backbone=_tiny_cnn(), num_scales=3, hidden_channels=8)
    segmentation_batch = _segmentation_batch(generator)
    segmentation_outputs = segmentation(named_inputs=segmentation_batch, tags=Stage.TEST)
    points = create_bricks_point_detection(num_classes=2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=8)
    points_batch = _points_batch(generator)
    points_outputs = points(named_inputs=points_batch, tags=Stage.TEST)
    boxes = create_bricks_object_detection(num_classes=2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=8)
    boxes(
        named_inputs={
            "raw": torch.rand(2, 3, 16, 16),
            "target_boxes": torch.tensor([[[1.0, 1, 8, 8]], [[4.0, 2, 15, 12]]]),
            "target_labels": torch.tensor([[0], [1]]),
        },
        tags=Stage.TEST,
    )

    reported = {name: model.summarize(reset=True) for name, model in [("segmentation", segmentation), ("points", points),
                                                                       ("boxes", boxes)]}  # fmt: skip

    assert list(reported["segmentation"]) == ["head/mean_iou"]
    assert list(reported["points"]) == ["head/f1", "head/precision", "head/recall", "head/per_class"]
    assert sorted(reported["boxes"]) == ["head/map", "head/map_50", "head/map_75", "head/mar_100", "head/per_class"]
    packaged = compose_config(["task=multitask", "data.root=unused"]).model.bricks  # keys only: nothing is resolved
    # The packaged head adds a pixel confusion matrix with per-class values; the factory's mean IoU has the same name.
    assert list(packaged.segmentation.metrics.metric_collection) == ["mean_iou", "confusion_matrix"]
    assert list(packaged.detection.metrics.metric_collection) == ["mean_average_precision"]  # map, map_50, ... as above
    expected_iou = MulticlassJaccardIndex(num_classes=2)(segmentation_outputs["head/mask"], segmentation_batch["targets"])
    torch.testing.assert_close(reported["segmentation"]["head/mean_iou"], expected_iou)
    expected_f1 = PointDetectionF1(distance=4.0)
    expected_f1.update(points_outputs["head/points"], points_outputs["head/labels"], points_batch["target_points"],
                       points_batch["target_labels"])  # fmt: skip
    torch.testing.assert_close(reported["points"]["head/f1"], expected_f1.compute())


def test_a_segmentation_head_refuses_an_ignore_index_that_is_one_of_its_classes() -> None:
    with pytest.raises(BrickError, match=r"ignore_index 255 is one of the 300 classes .*ignore_index=-1"):
        create_segmentation_head(300, [8], ["f8"], "targets", output_stride=8)

    head = create_segmentation_head(
        300, [8], ["f8"], "targets", output_stride=8, hidden_channels=4, ignore_index=-1, class_scores=True
    )
    targets = torch.full((1, 16, 16), 255)
    targets[0, 0] = -1
    model = BrickCollection({"seg": head})
    model({"f8": torch.rand(1, 8, 2, 2), "targets": targets}, tags=Stage.VALIDATION)
    assert list(model.summarize(reset=True)["seg/per_class"].values())[255]["support"] == 16 * 15  # -1 left out
