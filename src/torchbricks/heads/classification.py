"""The image classification head: a classifier on pooled features, cross entropy, accuracy with a confusion matrix
(and each class's scores), and the predicted class drawn on each image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torchbricks.heads._predictions import HeadPredictions, indexed_predictions
from torchbricks.heads._registry import (
    Collected,
    Description,
    HeadInputs,
    TaskHead,
    brick,
    head_factory,
    loss_with_parts,
    metrics,
    node,
    node_of,
    register_head,
)

__all__ = ["ClassificationArguments", "ClassificationTaskHead", "create_classification_head"]

_MODULES = "torchbricks.bag_of_bricks"


@dataclass(frozen=True)
class ClassificationArguments(HeadInputs):
    """The arguments of a classification head (`create_classification_head`), after those of `HeadInputs`.

    Attributes:
        targets_name: Name of the target classes [B].
        image_name: Name of the images in [0, 1] to draw on; no visualization brick when None.
        class_names: Names of the classes for the visualization and the per-class scores.
        class_weights: One weight per class in the cross entropy; every class 1 when None.
        font_size: Height of the drawn text in pixels; the drawing's default when None.
        pooling: How the classifier pools a feature map (`ImageClassifier`'s `POOLINGS`: "average", "max",
            "average_max"); the mean when None.
    """

    targets_name: str
    image_name: str | None = None
    class_names: Sequence[str] | None = None
    class_weights: Sequence[float] | None = None
    font_size: int | None = None
    pooling: str | None = None


@register_head("classification")
class ClassificationTaskHead(TaskHead):
    """Bricks `classify` (`./logits`, `./probabilities`, `./class_prediction`), `loss` (`./loss_ce`, `./loss_parts`), `metrics`
    (`accuracy`, micro average, and `confusion_matrix` with `per_class` scores) and, given an image, `visualize`."""

    outputs = ("class_prediction", "probabilities")
    arguments = ClassificationArguments
    drawing = f"{_MODULES}.image_classification.BrickVisualizeImageClassification"
    drawn: ClassVar[dict[str, str]] = {"class_prediction": "./class_prediction", "probabilities": "./probabilities"}
    example: ClassVar[dict[str, Any]] = {
        "num_classes": 3,
        "in_channels": 8,
        "features_name": "features",
        "targets_name": "targets",
        "image_name": "raw",
    }
    packaged_configs: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {  # the digits model: its `features`, its own drawing image
            "num_classes": "${model.num_classes}",
            "in_channels": "${model.n_features}",
            "features_name": "features",
            "targets_name": "targets",
            "image_name": "${model.visualized_image}",
            "font_size": 14,
        },
        "image_classification": {  # task=classification: the coarsest backbone features, the data's classes
            "num_classes": "${model.num_classes}",
            "in_channels": "${model.coarsest_channels}",
            "features_name": "${model.coarsest_features}",
            "targets_name": "targets",
            "image_name": "raw",
            "class_names": "${model.class_names}",
            "class_weights": (
                "${torchbricks_class_weights:${oc.select:loss.class_weights,null},${model.layout},${data.root},"
                "${oc.select:data.validation_fraction,0.2},${oc.select:data.split_seed,0}}"
            ),
            "font_size": 12,
            "pooling": "${oc.select:model.pooling,null}",
        },
    }

    @classmethod
    def bricks(cls, given: ClassificationArguments) -> Description:
        """Image classification bricks, with relative names so the dict nests under any name.

        Bricks: `classify` (an `ImageClassifier` producing `./logits`, `./probabilities` and `./class_prediction`),
        `loss` (cross entropy, `./loss_ce`, and its numerator and denominator `./loss_parts`), `metrics`
        (`accuracy`, micro average, and `confusion_matrix` with each class's `per_class` scores) and, when
        `image_name` is given, `visualize` (`./visualization`: the predicted
        class drawn on each image).

        Example:
            >>> import torch
            >>> from torchbricks.brick_collection import BrickCollection
            >>> model = BrickCollection({"head": create_classification_head(3, 8, "features", "targets")})
            >>> sorted(model({"features": torch.rand(2, 8, 4, 4), "targets": torch.tensor([0, 2])}, return_inputs=False))
            ['head/class_prediction', 'head/logits', 'head/loss_ce', 'head/loss_parts', 'head/probabilities']
        """
        cross_entropy = node(f"{_MODULES}.losses.ClassWeightedCrossEntropyLoss", class_weights=given.class_weights)
        classifier = node(
            f"{_MODULES}.image_classification.ImageClassifier",
            num_classes=given.num_classes,
            n_features=given.in_channels,
            pooling=given.pooling,
        )
        scores = {
            "accuracy": node("torchmetrics.classification.MulticlassAccuracy", num_classes=given.num_classes, average="micro"),
            "confusion_matrix": node_of(
                f"{_MODULES}.custom_metrics.ConfusionMatrixClassScores", given, "num_classes", "class_names"
            ),
        }
        head: Description = {
            "classify": brick(
                "BrickTrainable", classifier, [given.features_name], ["./logits", "./probabilities", "./class_prediction"]
            ),
            "loss": loss_with_parts(cross_entropy, ["./logits", given.targets_name], ["./loss_ce"]),
            "metrics": metrics(scores, ["./class_prediction", given.targets_name]),
        }
        return cls.with_drawing(head, given.image_name, class_names=given.class_names, font_size=given.font_size)

    @classmethod
    def predictions(cls, collected: Collected) -> HeadPredictions | None:
        """Class indices [N] (or scores [N, C], argmax'ed) beside the true classes [N]."""
        return indexed_predictions("classification", collected, ndim=1)


create_classification_head = head_factory(ClassificationArguments, ClassificationTaskHead, "create_classification_head")
"""Today's `create_image_classification_head`: the bricks of `ClassificationTaskHead.bricks`, of the arguments of
`ClassificationArguments`."""
