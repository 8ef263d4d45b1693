"""The semantic segmentation head: an FPN neck over every backbone scale, a per-pixel classifier upsampled to the
image, cross entropy and mean IoU (`IGNORE_INDEX` pixels left out), optionally a pixel confusion matrix with each
class's scores, and the mask drawn over each image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torchbricks._conventions import IGNORE_INDEX
from torchbricks.errors import BrickError
from torchbricks.heads._predictions import HeadPredictions, indexed_predictions
from torchbricks.heads._registry import Collected, Description, TaskHead, brick, loss_with_parts, metrics, node, register_head

__all__ = ["SegmentationTaskHead"]

_MODULES = "torchbricks.bag_of_bricks"
_NUM_CLASSES = "${torchbricks_num_classes:${model.segmentation_layout},${data.root}}"


@register_head("segmentation")
class SegmentationTaskHead(TaskHead):
    """Bricks `neck` (`./features`), `classify` (`./logits`, `./probabilities`, `./mask`), `loss` (`./loss_ce`, `./loss_parts`),
    `metrics` (`mean_iou`, and with `class_scores` a `confusion_matrix` with `per_class` scores) and, given an
    image, `visualize` (`./visualization`)."""

    outputs = ("mask", "probabilities")
    drawing = f"{_MODULES}.segmentation.BrickVisualizeSegmentation"
    drawn: ClassVar[dict[str, str]] = {"mask": "./mask"}
    example: ClassVar[dict[str, Any]] = {
        "num_classes": 3,
        "in_channels": [8],
        "features_names": ["features"],
        "targets_name": "masks",
        "output_stride": 4,
        "image_name": "raw",
    }
    cells_per_sample = 2
    packaged_configs: ClassVar[dict[str, dict[str, Any]]] = {
        "segmentation": {
            "num_classes": _NUM_CLASSES,
            "in_channels": "${model.channels}",
            "features_names": "${model.features}",
            "targets_name": "${model.segmentation_targets}",
            "output_stride": "${model.finest_stride}",
            "hidden_channels": "${model.hidden_channels}",
            "image_name": "raw",
            "class_weights": (
                "${torchbricks_class_weights:${oc.select:loss.class_weights,null},${model.segmentation_layout},"
                "${data.root},${oc.select:data.validation_fraction,0.2},${oc.select:data.split_seed,0}}"
            ),
            "class_scores": True,
            "class_names": "${torchbricks_class_names:${model.segmentation_layout},${data.root}}",
        }
    }

    @classmethod
    def describe(
        cls,
        num_classes: int,
        in_channels: Sequence[int],
        features_names: Sequence[str],
        targets_name: str,
        output_stride: int,
        hidden_channels: int = 64,
        image_name: str | None = None,
        ignore_index: int = IGNORE_INDEX,
        class_weights: Sequence[float] | None = None,
        class_scores: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> Description:
        """Semantic segmentation bricks, with relative names so the dict nests under any name.

        Bricks: `neck` (a `FeaturePyramidUpsampler` merging the scales into `./features`), `classify` (a
        `SegmentationHead`: `./logits`, `./probabilities`, `./mask`), `loss` (per-pixel cross entropy, `./loss_ce`,
        and its numerator and denominator `./loss_parts`), `metrics` (`MulticlassMeanIoU`, torchmetrics'
        `MulticlassJaccardIndex`: the mean IoU, reported by `summarize()` as
        `<head>/mean_iou`; with `class_scores` also a pixel `confusion_matrix` and each class's `per_class` scores)
        and, when `image_name` is given, `visualize` (`./visualization`: the mask over each image).

        Args:
            num_classes: Number of classes.
            in_channels: Channels of each feature scale, fine to coarse.
            features_names: Names of the feature scales, fine to coarse.
            targets_name: Name of the target masks [B, H, W] (class indices).
            output_stride: Stride of the finest scale relative to the image.
            hidden_channels: Channels of the neck and the head.
            image_name: Name of the images in [0, 1] to draw on; no visualization brick when None.
            ignore_index: Target value ignored by the loss and the metrics (255, the masks' convention).
            class_weights: One weight per class in the cross entropy; every class 1 when None.
            class_scores: Add the confusion matrix and the per-class scores (as the packaged head does).
            class_names: Names of the classes of the per-class scores.

        Example:
            >>> import torch
            >>> from torchbricks.bag_of_bricks.segmentation import create_segmentation_head
            >>> from torchbricks.brick_collection import BrickCollection
            >>> head = create_segmentation_head(2, [8, 16], ["f8", "f16"], "targets", output_stride=8, hidden_channels=4)
            >>> model = BrickCollection({"segment": head})
            >>> model({"f8": torch.rand(1, 8, 2, 2), "f16": torch.rand(1, 16, 1, 1)}, tags="MODEL")["segment/mask"].shape
            torch.Size([1, 16, 16])
        """
        if isinstance(num_classes, int) and 0 <= ignore_index < num_classes:
            raise BrickError(
                f"create_segmentation_head: ignore_index {ignore_index} is one of the {num_classes} classes (0 to "
                f"{num_classes - 1}): class {ignore_index}'s pixels would be left out of the loss and the mean IoU "
                "without a word. Pass an ignore_index outside the classes (e.g. ignore_index=-1, as 16-bit masks of "
                f"more than {IGNORE_INDEX} classes need), or fewer classes."
            )
        if not isinstance(features_names, str):  # not an interpolation of the packaged config: names and channels
            features_names, in_channels = list(features_names), list(in_channels)
            if len(in_channels) != len(features_names):
                raise BrickError(
                    f"create_segmentation_head: {len(features_names)} features_names {features_names} need as many "
                    f"in_channels, got {in_channels}."
                )
        scores = {
            "mean_iou": node(f"{_MODULES}.custom_metrics.MulticlassMeanIoU", num_classes=num_classes, ignore_index=ignore_index)
        }
        if class_scores:
            scores["confusion_matrix"] = node(
                f"{_MODULES}.custom_metrics.ConfusionMatrixClassScores",
                num_classes=num_classes,
                class_names=class_names,
                ignore_index=ignore_index,
            )
        neck = node(f"{_MODULES}.necks.FeaturePyramidUpsampler", in_channels=in_channels, out_channels=hidden_channels)
        classifier = node(
            f"{_MODULES}.segmentation.SegmentationHead",
            in_channels=hidden_channels,
            num_classes=num_classes,
            upsample_factor=output_stride,
            hidden_channels=hidden_channels,
        )
        cross_entropy = node(
            f"{_MODULES}.losses.ClassWeightedCrossEntropyLoss", class_weights=class_weights, ignore_index=ignore_index
        )
        head: Description = {
            "neck": brick("BrickTrainable", neck, features_names, ["./features"]),
            "classify": brick("BrickTrainable", classifier, ["./features"], ["./logits", "./probabilities", "./mask"]),
            "loss": loss_with_parts(cross_entropy, ["./logits", targets_name], ["./loss_ce"]),
            "metrics": metrics(scores, ["./mask", targets_name]),
        }
        return cls.with_drawing(head, image_name)

    @classmethod
    def predictions(cls, collected: Collected) -> HeadPredictions | None:
        """Masks [N, H, W] (or scores [N, C, H, W], argmax'ed) beside the true masks."""
        return indexed_predictions("segmentation", collected, ndim=3)
