"""The point detection head (CenterNet style): class heatmaps with sub-cell offsets, focal + L1 losses, F1,
precision and recall of the points matched within a distance (over all classes and per class), and the points drawn
with their class names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from torchbricks.heads._predictions import MatchedPredictions, class_names_of, split_padded, tag
from torchbricks.heads._registry import (
    Collected,
    DenseHeadInputs,
    Description,
    TaskHead,
    brick,
    loss_with_parts,
    metrics,
    node_of,
    register_head,
)

__all__ = ["PointHeadPredictions", "Points", "PointsArguments", "PointsTaskHead"]

_POINTS = "torchbricks.bag_of_bricks.point_detection"


@dataclass
class Points:
    """The points of one image: [n, 2] as (x, y) in pixels and their classes [n]."""

    points: np.ndarray
    labels: np.ndarray


@dataclass
class PointHeadPredictions(MatchedPredictions):
    """A point-detection head's test predictions beside the true points, with the images they were made on.

    Attributes:
        head: The head's name (the collection path of its metric brick's parent).
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The true points per image (padding removed).
        prediction: The predicted points per image (label >= 0), in the decoder's order (by score).
        distance: A predicted point matches a true point of its class within this many pixels.
    """

    head: str
    images: np.ndarray
    truth: list[Points]
    prediction: list[Points]
    distance: float
    kind: Literal["points"] = "points"

    def matched(self, truth: Points, prediction: Points) -> np.ndarray:
        """Which predicted points match a true one, as `PointDetectionScores` matches them (its `matched_points`:
        within `distance` pixels, of their class, greedy by score), so the unmatched points `errors()` counts are the
        metric's false positives and negatives."""
        import torch

        from torchbricks.bag_of_bricks._point_matching import matched_points

        hit = matched_points(
            torch.as_tensor(np.array(prediction.points)),
            torch.as_tensor(np.array(prediction.labels)),
            torch.as_tensor(np.array(truth.points)),
            torch.as_tensor(np.array(truth.labels)),
            self.distance,
        )
        return hit.numpy()

    def title_detail(self) -> str:
        """The matching rule."""
        return f", points matched within {self.distance:g} px"

    def draw_objects(self, axes: Any, objects: Points, class_names: Sequence[str] | None) -> None:
        """Each point as a dot of its class's colour, tagged with its class name."""
        for (x, y), label in zip(objects.points, objects.labels, strict=True):
            color = tag(
                axes, float(x) + 1, float(y), int(label), class_names_of(class_names, int(label) + 1)[int(label)], va="baseline"
            )
            axes.plot([float(x)], [float(y)], marker="o", markersize=5, color=color, markeredgecolor="white", linestyle="none")


@dataclass(frozen=True)
class PointsArguments(DenseHeadInputs):
    """The arguments of a point detection head (`create_point_detection_head`), after those of `DenseHeadInputs`.

    Attributes:
        target_points_name: Name of the target points [B, N, 2] (x, y in pixels).
        target_labels_name: Name of the target labels [B, N], -1 for padding.
        hidden_channels: Channels of the head.
        max_points: Points decoded per image.
        threshold: Minimum score of a decoded point.
        distance: Matching distance of the metric in pixels; the stride by default.
        image_name: Name of the images in [0, 1] to draw on; no visualization brick when None.
        class_names: Names of the classes for the visualization.
    """

    target_points_name: str
    target_labels_name: str
    hidden_channels: int = 64
    max_points: int = 32
    threshold: float = 0.3
    distance: float | None = None
    image_name: str | None = None
    class_names: Sequence[str] | None = None


@register_head("points")
class PointsTaskHead(TaskHead):
    """Bricks `detect` (`./heatmap`, `./offsets`), `decode` (`./points`, `./scores`, `./labels`), `loss`
    (`./loss_heatmap`, `./loss_offset`, `./loss_parts`), `metrics` (`f1`, a `PointDetectionScores`: `f1`,
    `precision`, `recall` and `per_class`) and, given an image, `visualize`."""

    outputs = ("points", "scores", "labels")
    arguments = PointsArguments
    drawing = f"{_POINTS}.BrickVisualizePoints"
    drawn: ClassVar[dict[str, str]] = {"points": "./points", "labels": "./labels", "scores": "./scores"}
    example: ClassVar[dict[str, Any]] = {
        "num_classes": 2,
        "in_channels": 8,
        "features_name": "features",
        "stride": 4,
        "target_points_name": "points",
        "target_labels_name": "labels",
        "image_name": "raw",
    }
    cells_per_sample = 2

    @classmethod
    def bricks(cls, given: PointsArguments) -> Description:
        """Point detection bricks, with relative names so the dict nests under any name.

        Bricks: `detect` (a `PointDetectionHead`: `./heatmap`, `./offsets`), `decode` (a `PointDecoder`:
        `./points`, `./scores`, `./labels`), `loss` (`./loss_heatmap`, `./loss_offset`, `./loss_parts`), `metrics` (a
        `PointDetectionScores` under the name `f1`, reported by `summarize()` as `<head>/f1`, `<head>/precision` and
        `<head>/recall`, micro averaged over the points, and each class's precision, recall, F1 and support as
        `<head>/per_class`, keyed by `class_names`) and, when `image_name` is given, `visualize` (`./visualization`).
        A head saved with the former metric, a `PointDetectionF1`, still builds and reports its `<head>/f1` alone.
        """
        targets = [given.target_points_name, given.target_labels_name]
        detector = node_of(f"{_POINTS}.PointDetectionHead", given, "in_channels", "num_classes", "hidden_channels")
        decoder = node_of(f"{_POINTS}.PointDecoder", given, "stride", "max_points", "threshold")
        loss = node_of(f"{_POINTS}.PointDetectionLoss", given, "num_classes", "stride")
        distance = given.stride if given.distance is None else given.distance
        # named f1 as the PointDetectionF1 it extends was, so that a config's overrides of its distance still apply
        f1 = {"f1": node_of(f"{_POINTS}.PointDetectionScores", given, "num_classes", "class_names", distance=distance)}
        head: Description = {
            "detect": brick("BrickTrainable", detector, [given.features_name], ["./heatmap", "./offsets"]),
            "decode": brick("BrickNotTrainable", decoder, ["./heatmap", "./offsets"], ["./points", "./scores", "./labels"]),
            "loss": loss_with_parts(loss, ["./heatmap", "./offsets", *targets], ["./loss_heatmap", "./loss_offset"]),
            "metrics": metrics(f1, ["./points", "./labels", *targets]),
        }
        return cls.with_drawing(head, given.image_name, class_names=given.class_names)

    @classmethod
    def predictions(cls, collected: Collected) -> PointHeadPredictions | None:
        """Points [B, P, 2] and labels [B, P] beside true points [B, N, 2] and labels [B, N], per image, matched within
        the metric's `distance`."""
        distance = getattr(collected.metric, "distance", None)
        if len(collected.values) != 4 or not isinstance(distance, (int, float)):
            return None
        truth, prediction = split_padded(collected.values, lambda points, labels: labels >= 0)
        return PointHeadPredictions(
            collected.head,
            collected.images,
            [Points(points, labels) for points, labels in truth],
            [Points(points, labels.astype(np.int64)) for points, labels in prediction],
            float(distance),
        )
