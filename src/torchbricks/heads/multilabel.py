"""The multi-label head ("which classes are in the image"): binary cross entropy, micro F1 and accuracy with each
class's scores, and the names of the classes found written on each image."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from torchbricks.heads._predictions import class_names_of, mistakes_first, show_image
from torchbricks.heads._registry import (
    Collected,
    Description,
    HeadInputs,
    TaskHead,
    brick,
    loss_with_parts,
    metrics,
    node,
    register_head,
)

__all__ = ["MultiLabelArguments", "MultiLabelHeadPredictions", "MultiLabelTaskHead"]

_MODULES = "torchbricks.bag_of_bricks"


@dataclass
class MultiLabelHeadPredictions:
    """A multi-label head's test predictions ("which classes are in the image") beside the true classes.

    Attributes:
        head: The head's name (the collection path of its metric brick's parent).
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The true classes, [N, K] of 0/1 (1: the class is in the image), -1 where it is unknown (a class seen
            only in ignored objects), which no prediction gets wrong.
        prediction: The predicted classes, [N, K] of 0/1.
        scores: The predicted probability of each class, [N, K], or None when the head gives none.
    """

    head: str
    images: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    scores: np.ndarray | None = None
    kind: Literal["multilabel"] = "multilabel"
    cells_per_sample = 1

    def errors(self) -> np.ndarray:
        """Per image: the wrong classes, classes predicted but absent plus classes present but missed."""
        return ((self.truth != self.prediction) & (self.truth >= 0)).sum(axis=1).astype(np.float64)

    def order(self) -> np.ndarray:
        """Image indices, the most wrong classes first, then the rest in their original order."""
        return mistakes_first(self.errors())

    def title_detail(self) -> str:
        """What the section title adds (nothing)."""
        return ""

    def caption(self, index: int, class_names: Sequence[str] | None = None, max_classes: int = 4, per_line: int = 2) -> str:
        """`true <classes>` above `pred <class> <score>, ...` for image `index` (`-` for none), `per_line` classes a
        line (the image is narrow), the predicted ones by decreasing score, at most `max_classes` then `+<more>`."""
        names = class_names_of(class_names, self.truth.shape[1])

        def listed(classes: np.ndarray, scores: np.ndarray | None) -> str:
            items = [names[k] + (f" {scores[k]:.2f}" if scores is not None else "") for k in classes[:max_classes]]
            if len(classes) > max_classes:
                items.append(f"+{len(classes) - max_classes}")
            lines = [", ".join(items[start : start + per_line]) for start in range(0, len(items), per_line)]
            return ",\n".join(lines) or "-"

        truth = np.flatnonzero(self.truth[index] == 1)
        predicted = np.flatnonzero(self.prediction[index])
        scores = self.scores[index] if self.scores is not None else None
        if scores is not None:
            predicted = predicted[np.argsort(-scores[predicted], kind="stable")]
        return f"true {listed(truth, None)}\npred {listed(predicted, scores)}"

    def draw(self, cells: Iterator[Any], index: int, error: float, class_names: Sequence[str] | None) -> None:
        """Draws image `index` with its caption, red when any class is wrong."""
        axes = show_image(cells, self.images[index])
        axes.set_title(self.caption(index, class_names), fontsize=7, color="tab:red" if error > 0 else "black")


@dataclass(frozen=True)
class MultiLabelArguments(HeadInputs):
    """The arguments of a multi-label head (`create_multilabel_classification_head`), after those of `HeadInputs`.

    Attributes:
        targets_name: Name of the targets [B, K] (1 = present).
        image_name: Name of the images in [0, 1] to draw on; no visualization brick when None.
        class_names: Names of the classes for the visualization and the per-class scores.
    """

    targets_name: str
    image_name: str | None = None
    class_names: Sequence[str] | None = None


@register_head("multilabel")
class MultiLabelTaskHead(TaskHead):
    """Bricks `classify` (`./logits`, `./probabilities`, `./present`), `loss` (`./loss_bce`, `./loss_parts`), `metrics` (`f1` and
    `accuracy`, micro averaged, and `per_class` scores) and, given an image, `visualize` (`./visualization`)."""

    outputs = ("present", "probabilities")
    arguments = MultiLabelArguments
    drawing = f"{_MODULES}.multilabel_classification.BrickVisualizeMultiLabel"
    drawn: ClassVar[dict[str, str]] = {"present": "./present"}
    example: ClassVar[dict[str, Any]] = {
        "num_classes": 3,
        "in_channels": 8,
        "features_name": "features",
        "targets_name": "present",
        "image_name": "raw",
    }
    packaged_configs: ClassVar[dict[str, dict[str, Any]]] = {
        "multilabel": {
            "num_classes": "${model.num_classes}",
            "in_channels": "${model.coarsest_channels}",
            "features_name": "${model.coarsest_features}",
            "targets_name": "target_classes",
            "image_name": "raw",
            "class_names": "${model.class_names}",
        }
    }

    @classmethod
    def bricks(cls, given: MultiLabelArguments) -> Description:
        """Multi-label classification bricks, with relative names so the dict nests under any name.

        Bricks: `classify` (a `MultiLabelClassifier`: `./logits`, `./probabilities`, `./present`), `loss` (binary
        cross entropy, `./loss_bce`, and its numerator and denominator `./loss_parts`), `metrics` (torchmetrics'
        `MultilabelF1Score` and `MultilabelAccuracy`, micro averaged, as `f1` and `accuracy`, and each class's scores
        as `per_class`) and, when `image_name` is given,
        `visualize` (`./visualization`).

        Example:
            >>> import torch
            >>> from torchbricks.bag_of_bricks.multilabel_classification import create_multilabel_classification_head
            >>> from torchbricks.brick_collection import BrickCollection
            >>> model = BrickCollection({"tags": create_multilabel_classification_head(3, 8, "features", "present")})
            >>> outputs = model({"features": torch.rand(2, 8, 4, 4), "present": torch.tensor([[1, 0, 1], [0, 1, 0]])})
            >>> outputs["tags/present"].shape
            torch.Size([2, 3])
        """
        module = f"{_MODULES}.multilabel_classification"
        classes = f"{_MODULES}.custom_metrics"  # torchmetrics' multilabel metrics, which also take one class
        classifier = node(f"{module}.MultiLabelClassifier", num_classes=given.num_classes, n_features=given.in_channels)
        scores = {
            # a target of -1 (PRESENCE_IGNORED: a class seen only in ignored objects) is neither right nor wrong
            "f1": node(f"{classes}.MultilabelF1Score", num_labels=given.num_classes, average="micro", ignore_index=-1),
            "accuracy": node(f"{classes}.MultilabelAccuracy", num_labels=given.num_classes, average="micro", ignore_index=-1),
            "per_class": node(
                f"{classes}.MultilabelClassScores",
                num_labels=given.num_classes,
                class_names=given.class_names,
                ignore_index=-1,
            ),
        }
        head: Description = {
            "classify": brick("BrickTrainable", classifier, [given.features_name], ["./logits", "./probabilities", "./present"]),
            "loss": loss_with_parts(node(f"{module}.MultiLabelLoss"), ["./logits", given.targets_name], ["./loss_bce"]),
            "metrics": metrics(scores, ["./present", given.targets_name]),
        }
        return cls.with_drawing(head, given.image_name, class_names=given.class_names)

    @classmethod
    def predictions(cls, collected: Collected) -> MultiLabelHeadPredictions | None:
        """0/1 targets [N, K] beside predicted 0/1 classes with the probabilities of a companion output, or beside
        scores (probabilities, or logits as torchmetrics' multilabel rule reads them) thresholded at 1/2."""
        pair = collected.pair()
        if pair is None:
            return None
        prediction, truth = pair
        if truth.ndim != 2 or prediction.shape != truth.shape or not np.isin(truth, (-1, 0, 1)).all():
            return None
        scores = None
        if not np.isin(prediction, (0, 1)).all():
            scores = prediction if ((prediction >= 0) & (prediction <= 1)).all() else 1 / (1 + np.exp(-prediction))
            prediction = scores > 0.5
        else:
            probabilities = [
                value
                for value in collected.companions
                if value.shape == prediction.shape and not np.isin(value, (0, 1)).all() and ((value >= 0) & (value <= 1)).all()
            ]
            scores = probabilities[0] if probabilities else None
        return MultiLabelHeadPredictions(
            collected.head, collected.images, truth.astype(np.int64), prediction.astype(np.int64), scores
        )
