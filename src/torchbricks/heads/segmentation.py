"""The semantic segmentation head: an FPN neck over every backbone scale, a per-pixel classifier upsampled to the
image, cross entropy and mean IoU (`IGNORE_INDEX` pixels left out), optionally a pixel confusion matrix with each
class's scores, and the mask drawn over each image."""

from __future__ import annotations

from typing import Any, ClassVar

from torchbricks._conventions import IGNORE_INDEX
from torchbricks.heads._predictions import HeadPredictions, class_indices
from torchbricks.heads._registry import Collected, Description, TaskHead, brick, metrics, node, register_head

__all__ = ["SegmentationTaskHead"]

_MODULES = "torchbricks.bag_of_bricks"
_NUM_CLASSES = "${torchbricks_num_classes:${model.segmentation_layout},${data.root}}"


@register_head("segmentation")
class SegmentationTaskHead(TaskHead):
    """Bricks `neck` (`./features`), `classify` (`./logits`, `./probabilities`, `./mask`), `loss` (`./loss_ce`),
    `metrics` (`mean_iou`, and with `class_scores` a `confusion_matrix` with `per_class` scores) and, given an
    image, `visualize` (`./visualization`)."""

    outputs = ("mask", "probabilities")
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
                "${torchbricks_class_weights:${oc.select:loss.class_weights,null},${model.segmentation_layout},${data.root}}"
            ),
            "class_scores": True,
            "class_names": "${torchbricks_class_names:${model.segmentation_layout},${data.root}}",
        }
    }

    @classmethod
    def describe(  # type: ignore[override]
        cls,
        num_classes: Any,
        in_channels: Any,
        features_names: Any,
        targets_name: Any,
        output_stride: Any,
        hidden_channels: Any = 64,
        image_name: Any = None,
        class_weights: Any = None,
        class_scores: bool = False,
        class_names: Any = None,
        ignore_index: Any = IGNORE_INDEX,
    ) -> Description:
        """The bricks; `class_scores` adds the confusion matrix and the per-class scores to the metrics."""
        scores = {
            "mean_iou": node(
                "torchmetrics.classification.MulticlassJaccardIndex", num_classes=num_classes, ignore_index=ignore_index
            )
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
            "loss": brick("BrickLoss", cross_entropy, ["./logits", targets_name], ["./loss_ce"]),
            "metrics": metrics(scores, ["./mask", targets_name]),
        }
        if image_name is not None:
            drawing = f"{_MODULES}.segmentation.BrickVisualizeSegmentation"
            head["visualize"] = node(drawing, input_image=image_name, mask="./mask", output_name="./visualization")
        return head

    @classmethod
    def predictions(cls, collected: Collected) -> HeadPredictions | None:
        """Masks [N, H, W] (or scores [N, C, H, W], argmax'ed) beside the true masks."""
        found = class_indices(collected.pair())
        if found is None or found[1].ndim != 3:
            return None
        return HeadPredictions(collected.head, "segmentation", collected.images, found[1], found[0])
