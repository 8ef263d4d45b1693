"""The box detection head, anchor-free (CenterNet style): optionally an FPN neck, class heatmaps and box sides,
focal + GIoU losses, top-k and NMS decoding, COCO mAP, and the boxes drawn with names and scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from torchbricks._box_cutting import cut_to_image
from torchbricks._extras import require
from torchbricks.errors import BrickError
from torchbricks.heads._predictions import MatchedPredictions, class_names_of, color_cycle, split_padded
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

__all__ = ["MATCH_IOU", "BoxHeadPredictions", "Boxes", "DetectionArguments", "DetectionTaskHead"]

_MODULES = "torchbricks.bag_of_bricks"
_DETECTION = f"{_MODULES}.object_detection"

MATCH_IOU = 0.5
"""A predicted box matches a true box of its class when they overlap by at least this (intersection over union)."""

MIN_DRAWN_SCORE = 0.3
"""Predicted boxes scoring below this are neither drawn nor counted in `predictions.png`."""


@dataclass
class Boxes:
    """The boxes of one image: [n, 4] as (x_min, y_min, x_max, y_max) in pixels, their classes [n], scores [n]."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None


@dataclass
class BoxHeadPredictions(MatchedPredictions):
    """A box-detection head's test predictions beside the true boxes, with the images they were made on.

    Attributes:
        head: The head's name (the collection path of its metric brick's parent).
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The true boxes per image (padding removed).
        prediction: The predicted boxes per image that are drawn (label >= 0 and score >= the minimum drawn score).
        iou_threshold: The overlap at which a predicted box matches a true box of its class.
        ignored: The boxes evaluation ignores per image (VOC difficult objects, COCO crowds, objects a tile's
            border cuts; labels are their classes): a predicted box on one is no mistake, as the mAP counts it.
    """

    head: str
    images: np.ndarray
    truth: list[Boxes]
    prediction: list[Boxes]
    iou_threshold: float = MATCH_IOU
    kind: Literal["boxes"] = "boxes"
    ignored: list[Boxes] | None = None

    @property
    def match_threshold(self) -> float:  # type: ignore[override]
        """A match overlaps by at least `iou_threshold`."""
        return self.iou_threshold

    def affinity(self, truth: Boxes, prediction: Boxes) -> np.ndarray:
        """The overlap (IoU from `torchvision.ops.box_iou`) of each predicted box, the highest score first, with each
        true box of its class."""
        if not len(truth.boxes) or not len(prediction.boxes):
            return np.zeros((len(prediction.boxes), len(truth.boxes)))
        scores = prediction.scores if prediction.scores is not None else np.zeros(len(prediction.boxes))
        order = np.argsort(-scores, kind="stable")
        boxes = torch.as_tensor(prediction.boxes[order], dtype=torch.float64)
        iou = require("torchvision.ops", "vision").box_iou(boxes, torch.as_tensor(truth.boxes, dtype=torch.float64)).numpy()
        return np.where(prediction.labels[order][:, None] == truth.labels[None, :], iou, -np.inf)

    def unmatched_on_ignored(self, index: int, unmatched: np.ndarray) -> int:
        """Unmatched predicted boxes (rows in `affinity`'s order, the highest score first) lying on an ignored box of
        their class by COCO's crowd rule: the intersection covers at least `iou_threshold` of the predicted box."""
        if self.ignored is None or not len(self.ignored[index].boxes) or not unmatched.any():
            return 0
        prediction, ignored = self.prediction[index], self.ignored[index]
        scores = prediction.scores if prediction.scores is not None else np.zeros(len(prediction.boxes))
        order = np.argsort(-scores, kind="stable")[unmatched]
        boxes, labels = prediction.boxes[order], prediction.labels[order]
        low = np.maximum(boxes[:, None, :2], ignored.boxes[None, :, :2])
        high = np.minimum(boxes[:, None, 2:], ignored.boxes[None, :, 2:])
        inside = np.clip(high - low, 0, None).prod(axis=2)
        area = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(axis=1)[:, None]
        covered = inside >= self.iou_threshold * np.maximum(area, 1e-9)
        return int((covered & (labels[:, None] == ignored.labels[None, :])).any(axis=1).sum())

    def title_detail(self) -> str:
        """The matching rule."""
        return f", boxes matched at IoU {self.iou_threshold:g}"

    def draw_objects(self, axes: Any, objects: Boxes, class_names: Sequence[str] | None) -> None:
        """Each box as an unfilled rectangle of its class's colour, tagged with its class name (and score)."""
        rectangle = require("matplotlib.patches", "plots").Rectangle
        colors = color_cycle()
        for position, (box, label) in enumerate(zip(objects.boxes, objects.labels, strict=True)):
            x_min, y_min, x_max, y_max = (float(value) for value in box)
            color = colors[int(label) % len(colors)]
            axes.add_patch(rectangle((x_min, y_min), x_max - x_min, y_max - y_min, fill=False, edgecolor=color, linewidth=1.5))
            text = class_names_of(class_names, int(label) + 1)[int(label)]
            if objects.scores is not None:
                text += f" {float(objects.scores[position]):.2f}"
            axes.text(x_min, y_min, text, fontsize=6, color="white", va="bottom",
                      bbox={"facecolor": color, "pad": 1, "linewidth": 0}, clip_on=True)  # fmt: skip


@dataclass(frozen=True)
class DetectionArguments(DenseHeadInputs):
    """The arguments of a box detection head (`create_object_detection_head`), after those of `DenseHeadInputs`.

    Attributes:
        target_boxes_name: Name of the target boxes [B, N, 4] (x_min, y_min, x_max, y_max in pixels).
        target_labels_name: Name of the target labels [B, N], -1 for padding.
        hidden_channels: Channels of the head.
        max_detections: Boxes decoded per image; the mAP counts all of them (its recall key is `mar_100`, or
            `mar_<max_detections>` above 100).
        score_threshold: Minimum score of a decoded box.
        iou_threshold: Overlap above which NMS removes a box.
        box_weight: Weight of the box loss.
        image_name: Name of the images in [0, 1] to draw on, and to whose size the mAP cuts the predicted boxes (as
            `predict` cuts them to the image); no visualization brick when None.
        class_names: Names of the classes for the visualization and the per-class AP.
        min_drawn_score: Boxes scoring below it are not drawn.
        neck_inputs: Names of feature maps, fine to coarse, that a `neck` (an FPN) merges into `./features` of
            `in_channels` channels; `features_name` is then `./features`.
        neck_channels: Channels of each of `neck_inputs`.
        image_extent_name: Name of the (height, width) [B, 2] of the part of each image that shows the picture (the
            data's `image_extent`: less than the input for a tile padded at its right and bottom); the mAP cuts the
            predicted boxes to it instead of to the whole input, and the report draws them so. Needs `image_name`.
    """

    target_boxes_name: str
    target_labels_name: str
    hidden_channels: int = 64
    max_detections: int = 50
    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    box_weight: float = 2.0
    image_name: str | None = None
    class_names: Sequence[str] | None = None
    min_drawn_score: float = MIN_DRAWN_SCORE
    neck_inputs: Sequence[str] | None = None
    neck_channels: Sequence[int] | None = None
    image_extent_name: str | None = None


@register_head("detection")
class DetectionTaskHead(TaskHead):
    """Bricks `neck` (with several feature maps: `./features`), `detect` (`./heatmap`, `./distances`), `decode`
    (`./boxes`, `./scores`, `./labels`), `loss` (`./loss_heatmap`, `./loss_box`, `./loss_parts`), `metrics`
    (`mean_average_precision`: `map`, `map_50`, `map_75`, `mar_100` (`mar_<max_detections>` above 100) and
    `per_class`) and, given an image,
    `visualize` (`./visualization`)."""

    outputs = ("boxes", "scores", "labels")
    arguments = DetectionArguments
    drawing = f"{_DETECTION}.BrickVisualizeBoxes"
    drawn: ClassVar[dict[str, str]] = {"boxes": "./boxes", "labels": "./labels", "scores": "./scores"}
    example: ClassVar[dict[str, Any]] = {
        "num_classes": 2,
        "in_channels": 8,
        "features_name": "features",
        "stride": 4,
        "target_boxes_name": "boxes",
        "target_labels_name": "labels",
        "image_name": "raw",
    }
    cells_per_sample = 2
    packaged_configs: ClassVar[dict[str, dict[str, Any]]] = {
        "detection": {
            "num_classes": "${model.num_classes}",
            "in_channels": "${model.hidden_channels}",
            "features_name": "./features",
            "stride": "${model.finest_stride}",
            "target_boxes_name": "target_boxes",
            "target_labels_name": "target_labels",
            "hidden_channels": "${model.hidden_channels}",
            "image_name": "raw",
            "class_names": "${model.class_names}",
            "neck_inputs": "${model.features}",
            "neck_channels": "${model.channels}",
        }
    }

    @classmethod
    def bricks(cls, given: DetectionArguments) -> Description:
        """Box detection bricks, with relative names so the dict nests under any name.

        Bricks: `neck` (given `neck_inputs`), `detect` (a `BoxDetectionHead`: `./heatmap`, `./distances`), `decode`
        (a `BoxDecoder`: `./boxes`, `./scores`, `./labels`), `loss` (`./loss_heatmap`, `./loss_box`, `./loss_parts`),
        `metrics` (a
        `BoxMeanAveragePrecision` counting every decoded box and reporting `map`, `map_50`, `map_75`, `mar_100`
        (`mar_<max_detections>` when the decoder keeps more than 100) and `per_class` under the head's name) and,
        when `image_name` is given, `visualize` (`./visualization`).

        Example:
            >>> from torchbricks.bag_of_bricks.object_detection import create_object_detection_head
            >>> from torchbricks.brick_collection import BrickCollection
            >>> head = create_object_detection_head(2, 8, "features", 4, target_boxes_name="boxes", target_labels_name="labels")
            >>> model = BrickCollection({"detect": head})
            >>> model({"features": torch.rand(1, 8, 4, 4)}, tags="MODEL")["detect/boxes"].shape
            torch.Size([1, 32, 4])
        """
        head: Description = {}
        if given.neck_inputs is not None:
            upsampler = f"{_MODULES}.necks.FeaturePyramidUpsampler"
            neck = node_of(upsampler, given, in_channels=given.neck_channels, out_channels=given.in_channels)
            head["neck"] = brick("BrickTrainable", neck, given.neck_inputs, ["./features"])
        targets = [given.target_boxes_name, given.target_labels_name]
        detector = node_of(f"{_DETECTION}.BoxDetectionHead", given, "in_channels", "num_classes", "hidden_channels")
        decoder = node_of(f"{_DETECTION}.BoxDecoder", given, "stride", "max_detections", "score_threshold", "iou_threshold")
        loss = node_of(f"{_DETECTION}.BoxDetectionLoss", given, "num_classes", "stride", "box_weight")
        # the metric counts every box the decoder keeps (its cap is the larger of COCO's 100 and max_detections)
        average_precision = {
            "mean_average_precision": node_of(f"{_DETECTION}.BoxMeanAveragePrecision", given, "class_names", "max_detections")
        }
        head["detect"] = brick("BrickTrainable", detector, [given.features_name], ["./heatmap", "./distances"])
        head["decode"] = brick("BrickNotTrainable", decoder, ["./heatmap", "./distances"], ["./boxes", "./scores", "./labels"])
        head["loss"] = loss_with_parts(loss, ["./heatmap", "./distances", *targets], ["./loss_heatmap", "./loss_box"])
        # given the images, the metric cuts the boxes to them as `predict` does, so it scores the boxes users get; given
        # their extents too, to the part of each that shows the picture (a tile's padding left out, as `predict` does)
        if given.image_extent_name is not None and given.image_name is None:
            raise BrickError(
                f"A detection head given image_extent_name={given.image_extent_name!r} needs image_name too (the images "
                "whose extents they are): pass image_name, or leave image_extent_name out."
            )
        images = [name for name in (given.image_name, given.image_extent_name) if name is not None]
        head["metrics"] = metrics(average_precision, ["./boxes", "./scores", "./labels", *targets, *images])
        return cls.with_drawing(head, given.image_name, class_names=given.class_names, min_score=given.min_drawn_score)

    @classmethod
    def config(cls, name: str) -> Description:
        """The packaged head config `name`, whose metric reads `max_detections` from the decoder's node, so that
        `model.bricks.<head>.decode.model.max_detections=300` on the command line raises the metric's cap with it,
        and, with `data.tile_size`, each tile's `image_extent` as its last input (`image_extent_name`;
        `torchbricks.lightning.task_resolvers`)."""
        description = super().config(name)
        metric = description["metrics"]["metric_collection"]["mean_average_precision"]
        metric["max_detections"] = "${....decode.model.max_detections}"  # metric node, collection, metrics, head
        # with data.tile_size, the metric (and the report) also read each tile's extent and cut the boxes to it, as
        # `predict` cuts them to the image; without tiles the batches have no extent and the boxes are cut to the input
        names = ",".join(f"'{name}'" for name in description["metrics"]["input_names"])
        description["metrics"]["input_names"] = f"${{torchbricks_with_image_extent:${{oc.select:data.tile_size,null}},[{names}]}}"
        return description

    @classmethod
    def predictions(cls, collected: Collected) -> BoxHeadPredictions | None:
        """Boxes [B, P, 4], scores [B, P], labels [B, P] beside true boxes [B, N, 4] and labels [B, N] (label -1:
        padding, -2 - k: an ignored object of class k), per image; predicted boxes scoring below `MIN_DRAWN_SCORE`
        are left out. A sixth input, the images the metric cuts the boxes to, cuts the drawn boxes to them too, and a
        seventh, the (height, width) [B, 2] of the part of each image that shows the picture, to that part."""
        if len(collected.values) not in (5, 6, 7):
            return None
        values = collected.values[:5]
        if len(collected.values) > 5:  # drawn as the metric scores them and `predict` writes them: in the image
            height, width = collected.images.shape[1:3]
            extents = collected.values[6] if len(collected.values) == 7 else [np.array([[height, width]])] * len(values[0])
            values[0] = [
                cut_to_image(boxes, extent[:, None, :1].astype(boxes.dtype), extent[:, None, 1:].astype(boxes.dtype))[0]
                for boxes, extent in zip(values[0], extents, strict=True)
            ]
        truth, prediction = split_padded(
            values,
            lambda boxes, scores, labels: (
                (labels >= 0) & (scores >= MIN_DRAWN_SCORE) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            ),
        )
        ignored = [
            Boxes(boxes[labels <= -2], -2 - labels[labels <= -2].astype(np.int64))
            for batch_boxes, batch_labels in zip(collected.values[3], collected.values[4], strict=True)
            for boxes, labels in zip(batch_boxes, batch_labels, strict=True)
        ]
        return BoxHeadPredictions(
            collected.head,
            collected.images,
            [Boxes(boxes, labels) for boxes, labels in truth],
            [Boxes(boxes, labels.astype(np.int64), scores) for boxes, scores, labels in prediction],
            ignored=ignored,
        )
