"""The pictures a training run leaves in its experiment folder: learning curves, confusion matrices, predictions.

Each picture is drawn from plain data that a function here computes first and returns, so what a figure shows
can be checked against an independent reference:

- `curves.png`: `curve_series(history)` -> one panel per head, every loss (left axis) and scalar metric (right
  axis) per epoch, training solid against validation dashed.
- `confusion_matrix.png`: `plot_class_scores(metrics)` -> one matrix per classification or segmentation head
  (`normalized_confusion_matrices(metrics)`: each row, a true class, divided by its count; class names on both
  axes), with each class's recall and IoU beside its row and precision above its column; one bar panel per box
  detection head (AP and AP50 per class) and per multi-label head (precision, recall, F1 per class), from the
  `per_class` values of `per_class_values(metrics)`.
- `predictions.png`: `collect_predictions(...)` and `HeadPredictions.order()` -> one titled section per head,
  ground truth beside prediction in a caption above each image, mistakes first (segmentation: the truth and the
  predicted mask side by side over the image, the images with most wrong pixels first; boxes: the true and the
  predicted boxes side by side with class names and scores, the images with most unmatched boxes first; points:
  the same with points, matched within the metric's distance; multi-label: the true classes above the predicted
  classes with their scores, the images with most wrong classes first).

Drawn with matplotlib's object-oriented API (no pyplot, no global state, no display needed); matplotlib comes
with the `plots` extra: `pip install "torchbricks[plots]"`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from torchbricks._extras import require
from torchbricks._files import write_atomically
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickMetrics, BrickMetricSingle
from torchbricks.tags import Stage

__all__ = [
    "CURVE_STAGES",
    "BoxHeadPredictions",
    "Boxes",
    "HeadPredictions",
    "MultiLabelHeadPredictions",
    "PointHeadPredictions",
    "Points",
    "collect_predictions",
    "curve_series",
    "normalized_confusion_matrices",
    "per_class_values",
    "plot_class_scores",
    "plot_confusion_matrices",
    "plot_curves",
    "plot_predictions",
    "save_figure",
]

CURVE_STAGES = ("train", "validation")
TOTAL = "total"
"""The panel of the summed loss, which belongs to no head."""
IGNORE_INDEX = 255
"""Mask pixels with this value are not scored (the segmentation data's convention)."""

MATCH_IOU = 0.5
"""A predicted box matches a true box of its class when they overlap by at least this (intersection over union)."""

Series = dict[str, tuple[list[int], list[float]]]


# --- curves ------------------------------------------------------------------------------------------------------


def curve_series(history: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Series]]:
    """Per head, the losses and the metrics per epoch, from the logged epoch values in `history`.

    Args:
        history: One dict per epoch: `epoch` and the logged names, e.g. `train/loss`, `train/losses/head/loss_ce`,
            `validation/head/accuracy` (Lightning's `_epoch` suffix is dropped, `_step` values are left out).

    Returns:
        Head -> {"losses": series, "metrics": series}, a series mapping `<name> (<stage>)` to (epochs, values).
        The summed loss is the head `total`.

    Example:
        >>> history = [{"epoch": 0, "train/loss": 2.0, "validation/head/accuracy": 0.5},
        ...            {"epoch": 1, "train/loss": 1.0, "validation/head/accuracy": 0.75}]
        >>> series = curve_series(history)
        >>> series["total"]["losses"], series["head"]["metrics"]
        ({'loss (train)': ([0, 1], [2.0, 1.0])}, {'accuracy (validation)': ([0, 1], [0.5, 0.75])})
    """
    panels: dict[str, dict[str, Series]] = {}
    for record in history:
        epoch = int(record["epoch"])
        for key, value in record.items():
            parsed = _parse_logged_name(key)
            if parsed is None:
                continue
            head, kind, label = parsed
            series = panels.setdefault(head, {"losses": {}, "metrics": {}})[kind]
            epochs, values = series.setdefault(label, ([], []))
            epochs.append(epoch)
            values.append(float(value))
    return panels


def _parse_logged_name(key: str) -> tuple[str, str, str] | None:
    stage, _, rest = key.partition("/")
    if stage not in CURVE_STAGES or not rest or rest.endswith("_step"):
        return None
    rest = rest.removesuffix("_epoch")
    kind = "losses" if rest == "loss" or rest.startswith("losses/") else "metrics"
    rest = rest.removeprefix("losses/")
    head, _, name = rest.rpartition("/")
    return head or TOTAL, kind, f"{name} ({stage})"


def plot_curves(history: Sequence[Mapping[str, float]]) -> Any:
    """The learning curves of `curve_series(history)`: one panel per head; returns a matplotlib `Figure`."""
    figure_class = require("matplotlib.figure", "plots").Figure
    ticker = require("matplotlib.ticker", "plots")
    panels = curve_series(history)
    figure = figure_class(figsize=(6.0 * max(1, len(panels)), 4.5), layout="constrained")
    axes_list = figure.subplots(1, max(1, len(panels)), squeeze=False)[0]
    colors = _color_cycle()
    for axes, (head, series) in zip(axes_list, panels.items(), strict=False):
        axes.set_title(head if head != TOTAL else "total loss")
        axes.set_xlabel("epoch")
        handles = []
        color_of: dict[str, str] = {}
        for kind in ("losses", "metrics"):
            if not series[kind]:
                continue
            target = axes.twinx() if kind == "metrics" and series["losses"] else axes
            target.set_ylabel("loss" if kind == "losses" else "metric")
            for label, (epochs, values) in series[kind].items():
                name, stage = label.rsplit(" (", 1)
                color = color_of.setdefault(name, colors[len(color_of) % len(colors)])
                (line,) = target.plot(
                    epochs, values, color=color, linestyle="-" if stage.startswith("train") else "--", marker="o", label=label
                )
                handles.append(line)
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axes.legend(handles=handles, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    figure.suptitle("training (solid) and validation (dashed) per epoch")
    return figure


# --- confusion matrices ------------------------------------------------------------------------------------------


def normalized_confusion_matrices(metrics: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every square matrix among `metrics` (a confusion matrix of counts), each row divided by its sum.

    Row i is the true class i: entry (i, j) is the fraction of class-i samples predicted as j, as torchmetrics'
    `normalize="true"` gives it; a class with no sample keeps a row of zeros.

    Example:
        >>> normalized_confusion_matrices({"head/accuracy": 0.75, "head/confusion_matrix": [[3, 1], [0, 0]]})
        {'head/confusion_matrix': array([[0.75, 0.25],
               [0.  , 0.  ]])}
    """
    matrices = {}
    for name, value in metrics.items():
        if isinstance(value, Mapping):  # per-class values
            continue
        counts = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 2:
            continue
        totals = counts.sum(axis=1, keepdims=True)
        matrices[name] = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return matrices


def plot_confusion_matrices(
    matrices: Mapping[str, np.ndarray],
    class_names: Sequence[str] | None = None,
    scores: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> Any:
    """One normalised matrix per panel, true classes down, predicted across; returns a matplotlib `Figure`.

    Args:
        matrices: Name -> normalised matrix (`normalized_confusion_matrices`).
        class_names: The names of the classes, on both axes.
        scores: Name -> per-class `precision`, `recall` and `iou` of that matrix (`class_scores` of its counts):
            each row's recall and IoU are written right of the matrix, each column's precision above it (up to
            `MAX_ANNOTATED_CLASSES` classes).
    """
    figure_class = require("matplotlib.figure", "plots").Figure
    count = max(1, len(matrices))
    size = max(4.0, 0.45 * max((len(matrix) for matrix in matrices.values()), default=8) + 2)
    figure = figure_class(figsize=((size + (1.6 if scores else 0)) * count, size), layout="constrained")
    axes_list = figure.subplots(1, count, squeeze=False)[0]
    for axes, (name, matrix) in zip(axes_list, matrices.items(), strict=False):
        _draw_confusion_matrix(figure, axes, name, matrix, _class_names(class_names, len(matrix)), (scores or {}).get(name))
    return figure


MAX_ANNOTATED_CLASSES = 20
"""Matrices with more classes than this have no numbers written in their cells nor per-class scores beside them."""


def _draw_confusion_matrix(
    figure: Any, axes: Any, name: str, matrix: np.ndarray, names: list[str], scores: Mapping[str, Sequence[float]] | None
) -> None:
    image = axes.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
    axes.set_title(name)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_xticks(range(len(matrix)), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
    axes.set_yticks(range(len(matrix)), names)
    if len(matrix) <= MAX_ANNOTATED_CLASSES:
        for (row, column), value in np.ndenumerate(matrix):
            if value > 0:
                color = "white" if value > 0.5 else "black"
                axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
        if scores is not None:
            right = axes.secondary_yaxis("right")
            recalls = [f"R {recall:.2f} IoU {iou:.2f}" for recall, iou in zip(scores["recall"], scores["iou"], strict=True)]
            right.set_yticks(range(len(matrix)), recalls)
            right.tick_params(labelsize=7, length=0)
            right.set_ylabel("recall, IoU of the true class", fontsize=8)
            top = axes.secondary_xaxis("top")
            precisions = [f"P {precision:.2f}" for precision in scores["precision"]]
            top.set_xticks(range(len(matrix)), precisions, rotation=0 if len(matrix) <= 6 else 90)
            top.tick_params(labelsize=7, length=0)
            top.set_xlabel("precision of the prediction", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true class", pad=0.02 if scores is not None else 0.05)


# --- per-class scores --------------------------------------------------------------------------------------------


PER_CLASS = "per_class"
"""The metric name under which a head's per-class values are kept (see `torchbricks.bag_of_bricks.custom_metrics`)."""


def per_class_values(metrics: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Head -> class name -> score -> value, from the `<head>/per_class` entries of a stage's metric values.

    Example:
        >>> per_class_values({"head/accuracy": 0.5, "head/per_class": {"cat": {"recall": torch.tensor(0.5)}}})
        {'head': {'cat': {'recall': 0.5}}}
    """
    found = {}
    for name, value in metrics.items():
        head, _, metric = name.rpartition("/")
        if metric == PER_CLASS and isinstance(value, Mapping):
            found[head] = {
                str(class_name): {str(key): float(score) for key, score in class_values.items()}
                for class_name, class_values in value.items()
            }
    return found


def plot_class_scores(metrics: Mapping[str, Any], class_names: Sequence[str] | None = None) -> Any | None:
    """`confusion_matrix.png`: each head's per-class results on a stage's metric values, or None when none has any.

    A confusion matrix is drawn normalised (`normalized_confusion_matrices`) with each class's recall and IoU beside
    its row and precision above its column (`class_scores` of its counts), its class names those of the head's
    `per_class` values when it has them (a segmentation head's, background first), else `class_names`. A head with
    per-class values but no matrix gets a bar panel: AP and AP50 per class (box detection; a class without a true
    box is left out), precision, recall and F1 per class (multi-label).
    """
    from torchbricks.bag_of_bricks.custom_metrics import class_scores

    matrices = normalized_confusion_matrices(metrics)
    per_class = per_class_values(metrics)
    names_of, scores = {}, {}
    for name in matrices:
        head = name.rpartition("/")[0]
        counts = torch.as_tensor(np.asarray(_plain(metrics[name])))
        scores[name] = {key: value.tolist() for key, value in class_scores(counts).items()}
        if head in per_class and len(per_class[head]) == len(matrices[name]):
            names_of[name] = list(per_class[head])
    bars = {head: values for head, values in per_class.items() if not any(name.rpartition("/")[0] == head for name in matrices)}
    if not matrices and not bars:
        return None
    figure_class = require("matplotlib.figure", "plots").Figure
    sizes = [max(4.0, 0.45 * len(matrix) + 2) + 1.6 for matrix in matrices.values()] + [6.0] * len(bars)
    heights = [max(4.0, 0.45 * len(matrix) + 2) for matrix in matrices.values()]
    height = max([4.0, *heights, *(0.35 * len(values) + 2 for values in bars.values())])
    figure = figure_class(figsize=(sum(sizes), height), layout="constrained")
    axes_list = figure.subplots(1, len(sizes), squeeze=False, width_ratios=sizes)[0]
    for axes, (name, matrix) in zip(axes_list, matrices.items(), strict=False):
        names = names_of.get(name) or _class_names(class_names, len(matrix))
        _draw_confusion_matrix(figure, axes, name, matrix, names, scores[name])
    for axes, (head, values) in zip(axes_list[len(matrices) :], bars.items(), strict=True):
        _draw_class_bars(axes, head, values)
    return figure


def _draw_class_bars(axes: Any, head: str, values: Mapping[str, Mapping[str, float]]) -> None:
    """Horizontal bars per class, one colour per score; box AP (-1: no true box) leaves the class out."""
    keys = ["ap", "ap_50"] if any("ap" in scores for scores in values.values()) else ["precision", "recall", "f1"]
    names = [name for name, scores in values.items() if all(scores.get(key, -1.0) >= 0 for key in keys)]
    height = 0.8 / len(keys)
    colors = _color_cycle()
    for position, key in enumerate(keys):
        data = [values[name][key] for name in names]
        offsets = np.arange(len(names)) + (position - (len(keys) - 1) / 2) * height
        bars = axes.barh(offsets, data, height=height, color=colors[position], label=key)
        if len(names) <= MAX_ANNOTATED_CLASSES:
            axes.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    axes.set_yticks(range(len(names)), names)
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.15)
    axes.set_title(f"{head}: per class")
    axes.set_xlabel("AP (IoU 0.50:0.95) and AP50" if keys[0] == "ap" else "precision, recall and F1")
    axes.legend(fontsize="small", loc="lower right")
    axes.grid(axis="x", alpha=0.3)


def _plain(value: Any) -> Any:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


# --- predictions -------------------------------------------------------------------------------------------------


@dataclass
class HeadPredictions:
    """A head's test predictions beside the ground truth, with the images they were made on.

    Attributes:
        head: The head's name (the collection path of its metric brick's parent).
        kind: `classification` (truth and prediction are class indices [N]) or `segmentation` (masks [N, H, W]).
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The targets.
        prediction: The predicted classes or masks.
    """

    head: str
    kind: Literal["classification", "segmentation"]
    images: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray

    def errors(self) -> np.ndarray:
        """Per sample: 1.0 for a wrong class, or the fraction of wrong scored pixels of a mask."""
        if self.kind == "classification":
            return (self.truth != self.prediction).astype(np.float64)
        scored = self.truth != IGNORE_INDEX
        wrong = (self.truth != self.prediction) & scored
        return wrong.reshape(len(wrong), -1).sum(axis=1) / np.maximum(scored.reshape(len(scored), -1).sum(axis=1), 1)

    def order(self) -> np.ndarray:
        """Sample indices, mistakes first (the worst first), then the rest in their original order."""
        return _mistakes_first(self.errors())


@dataclass
class Boxes:
    """The boxes of one image: [n, 4] as (x_min, y_min, x_max, y_max) in pixels, their classes [n], scores [n]."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None


@dataclass
class BoxHeadPredictions:
    """A box-detection head's test predictions beside the true boxes, with the images they were made on.

    Attributes:
        head: The head's name (the collection path of its metric brick's parent).
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The true boxes per image (padding removed).
        prediction: The predicted boxes per image that are drawn (label >= 0 and score >= the minimum drawn score).
        iou_threshold: The overlap at which a predicted box matches a true box of its class.
    """

    head: str
    images: np.ndarray
    truth: list[Boxes]
    prediction: list[Boxes]
    iou_threshold: float = MATCH_IOU
    kind: Literal["boxes"] = "boxes"

    def errors(self) -> np.ndarray:
        """Per image: the count of unmatched boxes, predicted boxes matching no true box plus true boxes missed.

        Predicted boxes are matched greedily, the highest score first, each to the unmatched true box of its class
        that overlaps it most, if by at least `iou_threshold` (IoU from `torchvision.ops.box_iou`).
        """
        ops = require("torchvision.ops", "vision")
        counts = []
        for truth, prediction in zip(self.truth, self.prediction, strict=True):
            matched = 0
            if len(truth.boxes) and len(prediction.boxes):
                iou = ops.box_iou(
                    torch.as_tensor(prediction.boxes, dtype=torch.float64), torch.as_tensor(truth.boxes, dtype=torch.float64)
                )
                iou = iou.numpy() * (prediction.labels[:, None] == truth.labels[None, :])
                scores = prediction.scores if prediction.scores is not None else np.zeros(len(prediction.boxes))
                free = np.ones(len(truth.boxes), dtype=bool)
                for index in np.argsort(-scores, kind="stable"):
                    overlaps = np.where(free, iou[index], -1.0)
                    best = int(overlaps.argmax())
                    if overlaps[best] >= self.iou_threshold:
                        free[best] = False
                        matched += 1
            counts.append(len(truth.boxes) + len(prediction.boxes) - 2 * matched)
        return np.asarray(counts, dtype=np.float64)

    def order(self) -> np.ndarray:
        """Image indices, the most unmatched boxes first, then the rest in their original order."""
        return _mistakes_first(self.errors())


@dataclass
class Points:
    """The points of one image: [n, 2] as (x, y) in pixels and their classes [n]."""

    points: np.ndarray
    labels: np.ndarray


@dataclass
class PointHeadPredictions:
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

    def errors(self) -> np.ndarray:
        """Per image: predicted points matching no true point plus true points missed.

        Predicted points are matched greedily in their order, each to the nearest unmatched true point of its
        class within `distance` (the matching of `PointDetectionF1`, whose false positives and negatives these are).
        """
        counts = []
        for truth, prediction in zip(self.truth, self.prediction, strict=True):
            free = np.ones(len(truth.points), dtype=bool)
            for point, label in zip(prediction.points, prediction.labels, strict=True):
                distances = np.linalg.norm(truth.points - point, axis=-1)
                distances = np.where(free & (truth.labels == label), distances, np.inf)
                if len(distances) and distances.min() <= self.distance:
                    free[int(distances.argmin())] = False
            matched = int((~free).sum())
            counts.append(len(truth.points) + len(prediction.points) - 2 * matched)
        return np.asarray(counts, dtype=np.float64)

    def order(self) -> np.ndarray:
        """Image indices, the most unmatched points first, then the rest in their original order."""
        return _mistakes_first(self.errors())


@dataclass
class MultiLabelHeadPredictions:
    """A multi-label head's test predictions ("which classes are in the image") beside the true classes.

    Attributes:
        head: The head's name (the collection path of its metric brick's parent).
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The true classes, [N, K] of 0/1 (1: the class is in the image).
        prediction: The predicted classes, [N, K] of 0/1.
        scores: The predicted probability of each class, [N, K], or None when the head gives none.
    """

    head: str
    images: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    scores: np.ndarray | None = None
    kind: Literal["multilabel"] = "multilabel"

    def errors(self) -> np.ndarray:
        """Per image: the wrong classes, classes predicted but absent plus classes present but missed."""
        return (self.truth != self.prediction).sum(axis=1).astype(np.float64)

    def order(self) -> np.ndarray:
        """Image indices, the most wrong classes first, then the rest in their original order."""
        return _mistakes_first(self.errors())

    def caption(self, index: int, class_names: Sequence[str] | None = None, max_classes: int = 4, per_line: int = 2) -> str:
        """`true <classes>` above `pred <class> <score>, ...` for image `index` (`-` for none), `per_line` classes a
        line (the image is narrow), the predicted ones by decreasing score, at most `max_classes` then `+<more>`."""
        names = _class_names(class_names, self.truth.shape[1])

        def listed(classes: np.ndarray, scores: np.ndarray | None) -> str:
            items = [names[k] + (f" {scores[k]:.2f}" if scores is not None else "") for k in classes[:max_classes]]
            if len(classes) > max_classes:
                items.append(f"+{len(classes) - max_classes}")
            lines = [", ".join(items[start : start + per_line]) for start in range(0, len(items), per_line)]
            return ",\n".join(lines) or "-"

        truth = np.flatnonzero(self.truth[index])
        predicted = np.flatnonzero(self.prediction[index])
        scores = self.scores[index] if self.scores is not None else None
        if scores is not None:
            predicted = predicted[np.argsort(-scores[predicted], kind="stable")]
        return f"true {listed(truth, None)}\npred {listed(predicted, scores)}"


AnyHeadPredictions = HeadPredictions | BoxHeadPredictions | PointHeadPredictions | MultiLabelHeadPredictions


def collect_predictions(
    collection: BrickCollection, batches: Iterable[Mapping[str, Any]], max_samples: int = 2048, min_score: float = 0.3
) -> list[AnyHeadPredictions]:
    """Runs the test stage of `collection` over `batches` and keeps each head's predictions and targets.

    A head is found through its metric brick. With two inputs, the first is the prediction and the second the
    target: class indices [B] or scores [B, C] (argmax) make a classification head, masks [B, H, W] (or scores
    [B, C, H, W]) a segmentation head, and 0/1 targets [B, K] with predictions of that shape a multi-label head
    (predicted 0/1, or scores that are thresholded at 1/2; the scores drawn are those, or else the first other
    output of the brick making the prediction that holds probabilities of its shape, as `./probabilities` of
    `create_multilabel_classification_head`). With five inputs (what `create_object_detection_head`'s metric reads:
    predicted boxes [B, P, 4], scores [B, P], labels [B, P], true boxes [B, N, 4] and labels [B, N], label -1
    marking padding) it is a box head; predicted boxes scoring below `min_score` are left out. With four inputs
    and a metric with a matching `distance` (what `create_point_detection_head`'s `PointDetectionF1` reads:
    points [B, P, 2], labels [B, P], true points [B, N, 2], true labels [B, N]) it is a point head.
    The images are the first named input holding a batch of images [B, C, H, W]. Only the heads whose targets the
    first batch carries are collected (batches from one source of several label some heads only).
    """
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return []
    batches = itertools.chain([first], batches)
    produced = set(collection.plan(tags=Stage.TEST).produced)
    # A head is drawn from batches carrying its targets: with several sources, each batch labels some heads only.
    heads = [head for head in _metric_heads(collection) if all(name in first or name in produced for name in head[1])]
    if not heads:
        return []
    companions = _companion_outputs(collection, [names[0] for _, names, _ in heads if len(names) == 2])
    inputs = {name for _, names, _ in heads for name in names}
    extra = {name for found in companions.values() for name in found} - inputs
    wanted = sorted(inputs | extra)
    kept: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    kept_images: list[np.ndarray] = []
    seen = 0
    with torch.no_grad():
        for batch in batches:
            computed = [name for name in wanted if name not in batch]
            # Only the bricks the predictions need run: the collection's own metric states stay untouched.
            outputs = {**batch, **collection(named_inputs=dict(batch), tags=Stage.TEST, output_names=computed)}
            image_batch = next((value for value in batch.values() if _is_image_batch(value)), None)
            if image_batch is None:
                return []
            kept_images.append(_displayable(image_batch))
            for name in wanted:
                value = outputs[name]
                # Other outputs are kept only where multi-label scores can be, [B, K] (not a segmentation head's maps).
                if name not in extra or (isinstance(value, torch.Tensor) and value.ndim == 2):
                    kept[name].append(value.detach().float().cpu().numpy())
            seen += len(image_batch)
            if seen >= max_samples:
                break
    if not kept_images:
        return []
    images = np.concatenate(kept_images)
    found: list[AnyHeadPredictions] = []
    for head, names, distance in heads:
        if len(names) == 5:
            found.append(_box_head(head, images, [kept[name] for name in names], min_score))
            continue
        if len(names) == 4 and distance is not None:
            found.append(_point_head(head, images, [kept[name] for name in names], distance))
            continue
        prediction_name, target_name = names
        # An output named probabilities first: logits that happen to lie in [0, 1] must not pass for probabilities.
        named = sorted(companions.get(prediction_name, ()), key=lambda name: not name.endswith("probabilities"))
        companion = [np.concatenate(kept[name]) for name in named if kept[name]]
        two_input_head = _two_input_head(
            head, images, np.concatenate(kept[prediction_name]), np.concatenate(kept[target_name]), companion
        )
        if two_input_head is not None:
            found.append(two_input_head)
    return found


def _two_input_head(
    head: str, images: np.ndarray, prediction: np.ndarray, truth: np.ndarray, companions: list[np.ndarray]
) -> HeadPredictions | MultiLabelHeadPredictions | None:
    """A classification, segmentation or multi-label head from its metric's prediction and target, if it is one."""
    if truth.ndim == 2 and prediction.shape == truth.shape and np.isin(truth, (0, 1)).all():
        return _multilabel_head(head, images, truth, prediction, companions)
    truth = truth.astype(np.int64)
    if prediction.ndim == truth.ndim + 1:
        prediction = prediction.argmax(axis=1)  # scores or logits
    prediction = prediction.astype(np.int64)
    if prediction.shape != truth.shape or truth.ndim not in (1, 3):
        return None
    kind: Literal["classification", "segmentation"] = "classification" if truth.ndim == 1 else "segmentation"
    return HeadPredictions(head, kind, images, truth, prediction)


def _box_head(head: str, images: np.ndarray, batches: list[list[np.ndarray]], min_score: float) -> BoxHeadPredictions:
    """Splits the batches of (boxes, scores, labels, true boxes, true labels) into the boxes of each image."""
    truth, prediction = [], []
    for boxes, scores, labels, true_boxes, true_labels in zip(*batches, strict=True):
        for index in range(len(boxes)):
            keep = (labels[index] >= 0) & (scores[index] >= min_score)
            prediction.append(Boxes(boxes[index][keep], labels[index][keep].astype(np.int64), scores[index][keep]))
            real = true_labels[index] >= 0
            truth.append(Boxes(true_boxes[index][real], true_labels[index][real].astype(np.int64)))
    return BoxHeadPredictions(head, images, truth, prediction)


def _multilabel_head(
    head: str, images: np.ndarray, truth: np.ndarray, prediction: np.ndarray, companions: list[np.ndarray]
) -> MultiLabelHeadPredictions:
    """Predicted 0/1 classes with the probabilities of a companion output, or scores thresholded at 1/2."""
    scores = None
    if not np.isin(prediction, (0, 1)).all():  # scores: probabilities, or logits (torchmetrics' multilabel rule)
        scores = prediction if ((prediction >= 0) & (prediction <= 1)).all() else 1 / (1 + np.exp(-prediction))
        prediction = scores > 0.5
    else:
        probabilities = [
            value
            for value in companions
            if value.shape == prediction.shape and not np.isin(value, (0, 1)).all() and ((value >= 0) & (value <= 1)).all()
        ]
        scores = probabilities[0] if probabilities else None
    return MultiLabelHeadPredictions(head, images, truth.astype(np.int64), prediction.astype(np.int64), scores)


def _point_head(head: str, images: np.ndarray, batches: list[list[np.ndarray]], distance: float) -> PointHeadPredictions:
    """Splits the batches of (points, labels, true points, true labels) into the points of each image."""
    truth, prediction = [], []
    for points, labels, true_points, true_labels in zip(*batches, strict=True):
        for index in range(len(points)):
            keep = labels[index] >= 0
            prediction.append(Points(points[index][keep], labels[index][keep].astype(np.int64)))
            real = true_labels[index] >= 0
            truth.append(Points(true_points[index][real], true_labels[index][real].astype(np.int64)))
    return PointHeadPredictions(head, images, truth, prediction, distance)


def plot_predictions(
    predictions: Sequence[AnyHeadPredictions],
    class_names: Sequence[str] | None = None,
    n_samples: int = 16,
    columns: int = 8,
) -> Any:
    """One titled section per head, `n_samples` images each, mistakes first; returns a matplotlib `Figure`.

    Classification: each image has the caption `true <class>` / `pred <class>` above it, red when wrong.
    Segmentation: each sample is two images, the true mask and the predicted mask over the image.
    Boxes: each sample is two images, the true boxes (with class names) and the predicted boxes (with class
    names and scores), the images with most unmatched boxes first. Points: the same with points. Multi-label:
    each image has the caption `true <classes>` / `pred <class> <score>, ...`, red when any class is wrong.
    """
    figure_class = require("matplotlib.figure", "plots").Figure
    sections = [(head, head.order()[:n_samples]) for head in predictions]
    rows = [_section_shape(head, len(indices), columns)[0] for head, indices in sections]
    figure = figure_class(figsize=(1.6 * columns, 1.9 * max(1, sum(rows)) + 0.6 * len(sections)), layout="constrained")
    subfigures = figure.subfigures(max(1, len(sections)), 1, squeeze=False, height_ratios=[max(1, row) for row in rows] or None)
    for subfigure, (head, indices) in zip(subfigures[:, 0], sections, strict=False):
        errors = head.errors()
        n_mistakes = int((errors > 0).sum())
        subfigure.suptitle(
            f"{head.head} ({head.kind}): {n_mistakes} of {len(head.truth)} test images wrong, mistakes first"
            + (f", boxes matched at IoU {head.iou_threshold:g}" if isinstance(head, BoxHeadPredictions) else "")
            + (f", points matched within {head.distance:g} px" if isinstance(head, PointHeadPredictions) else ""),
            fontweight="bold",
        )
        n_rows, n_columns = _section_shape(head, len(indices), columns)
        axes_grid = subfigure.subplots(max(1, n_rows), n_columns, squeeze=False)
        for axes in axes_grid.flat:
            axes.set_axis_off()
        cells = axes_grid.flat
        for index in indices:
            wrong = errors[index] > 0
            color = "tab:red" if wrong else "black"
            if isinstance(head, BoxHeadPredictions):
                for label, boxes in (("true", head.truth[index]), ("pred", head.prediction[index])):
                    axes = next(cells)
                    axes.imshow(head.images[index], interpolation="nearest")
                    _draw_boxes(axes, boxes, class_names)
                    caption = f"true ({len(boxes.boxes)})" if label == "true" else f"pred ({errors[index]:.0f} unmatched)"
                    axes.set_title(caption, fontsize=9, color=color if label == "pred" else "black")
                continue
            if isinstance(head, PointHeadPredictions):
                for label, points in (("true", head.truth[index]), ("pred", head.prediction[index])):
                    axes = next(cells)
                    axes.imshow(head.images[index], interpolation="nearest")
                    _draw_points(axes, points, class_names)
                    caption = f"true ({len(points.points)})" if label == "true" else f"pred ({errors[index]:.0f} unmatched)"
                    axes.set_title(caption, fontsize=9, color=color if label == "pred" else "black")
                continue
            if isinstance(head, MultiLabelHeadPredictions):
                axes = next(cells)
                axes.imshow(head.images[index], interpolation="nearest")
                axes.set_title(head.caption(int(index), class_names), fontsize=7, color=color)
                continue
            if head.kind == "classification":
                axes = next(cells)
                axes.imshow(head.images[index], interpolation="nearest")
                truth = _class_names(class_names, int(head.truth[index]) + 1)[int(head.truth[index])]
                guess = _class_names(class_names, int(head.prediction[index]) + 1)[int(head.prediction[index])]
                axes.set_title(f"true {truth}\npred {guess}", fontsize=9, color=color)
                continue
            for label, mask in (("true", head.truth[index]), ("pred", head.prediction[index])):
                axes = next(cells)
                axes.imshow(head.images[index], interpolation="nearest")
                axes.imshow(
                    np.ma.masked_where((mask == 0) | (mask == IGNORE_INDEX), mask),
                    cmap="tab20",
                    alpha=0.55,
                    interpolation="nearest",
                )
                caption = label if label == "true" else f"pred ({errors[index]:.0%} wrong)"
                axes.set_title(caption, fontsize=9, color=color if label == "pred" else "black")
    return figure


def _draw_boxes(axes: Any, boxes: Boxes, class_names: Sequence[str] | None) -> None:
    """Each box as an unfilled rectangle of its class's colour, tagged with its class name (and score)."""
    rectangle = require("matplotlib.patches", "plots").Rectangle
    colors = _color_cycle()
    limits = axes.get_xlim(), axes.get_ylim()
    for position, (box, label) in enumerate(zip(boxes.boxes, boxes.labels, strict=True)):
        color = colors[int(label) % len(colors)]
        x_min, y_min, x_max, y_max = (float(value) for value in box)
        axes.add_patch(rectangle((x_min, y_min), x_max - x_min, y_max - y_min, fill=False, edgecolor=color, linewidth=1.5))
        text = _class_names(class_names, int(label) + 1)[int(label)]
        if boxes.scores is not None:
            text += f" {float(boxes.scores[position]):.2f}"
        tag = {"facecolor": color, "pad": 1, "linewidth": 0}
        axes.text(x_min, y_min, text, fontsize=6, color="white", va="bottom", bbox=tag, clip_on=True)
    axes.set_xlim(limits[0])  # boxes reaching out of the image do not shrink it
    axes.set_ylim(limits[1])


def _draw_points(axes: Any, points: Points, class_names: Sequence[str] | None) -> None:
    """Each point as a dot of its class's colour, tagged with its class name."""
    colors = _color_cycle()
    limits = axes.get_xlim(), axes.get_ylim()
    for (x, y), label in zip(points.points, points.labels, strict=True):
        color = colors[int(label) % len(colors)]
        axes.plot([float(x)], [float(y)], marker="o", markersize=5, color=color, markeredgecolor="white", linestyle="none")
        text = _class_names(class_names, int(label) + 1)[int(label)]
        tag = {"facecolor": color, "pad": 1, "linewidth": 0}
        axes.text(float(x) + 1, float(y), text, fontsize=6, color="white", bbox=tag, clip_on=True)
    axes.set_xlim(limits[0])  # points out of the image do not shrink it
    axes.set_ylim(limits[1])


def _section_shape(head: AnyHeadPredictions, n_samples: int, columns: int) -> tuple[int, int]:
    single = head.kind in ("classification", "multilabel")
    cells = n_samples * (1 if single else 2)
    if not single:
        columns -= columns % 2  # a sample's two images stay on one row
    return -(-cells // columns), columns


def _metric_heads(collection: BrickCollection) -> list[tuple[str, tuple[str, ...], float | None]]:
    """(head, resolved input names, the metric's matching distance) for each metric brick reading two (class,
    mask), four (point) or five (box) inputs."""
    heads = []
    seen = set()
    for path, brick in collection.iter_bricks():
        if not isinstance(brick, (BrickMetrics, BrickMetricSingle)):
            continue
        names = brick.input_names
        names = list(names.values()) if isinstance(names, Mapping) else list(names)
        if len(names) not in (2, 4, 5):
            continue
        scope = path.split("/")[:-1]
        resolved = tuple(_resolve(name, scope) for name in names)
        if resolved[0] not in seen:
            seen.add(resolved[0])
            distance = getattr(brick.metrics, "distance", None)
            heads.append(("/".join(scope) or path, resolved, float(distance) if isinstance(distance, (int, float)) else None))
    return heads


def _companion_outputs(collection: BrickCollection, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """For each name, the other outputs of the brick producing it (resolved names), where scores may be found."""
    companions = {}
    for node in collection.plan().nodes:
        for name in names:
            if name in node.outputs:
                companions[name] = tuple(output for output in node.outputs if output != name)
    return companions


def _resolve(name: str, scope: list[str]) -> str:
    if not name.startswith(("./", "../")):
        return name
    base = list(scope)
    parts = name.split("/")
    while parts and parts[0] in (".", ".."):
        if parts.pop(0) == ".." and base:
            base.pop()
    return "/".join([*base, *parts])


def _is_image_batch(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[1] in (1, 3) and value.is_floating_point()


def _displayable(images: torch.Tensor) -> np.ndarray:
    """[B, C, H, W] -> [B, H, W, 3] in [0, 1], each image stretched to its own range."""
    array = images.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    low = array.min(axis=(1, 2, 3), keepdims=True)
    high = array.max(axis=(1, 2, 3), keepdims=True)
    return (array - low) / np.maximum(high - low, 1e-12)


# --- shared ------------------------------------------------------------------------------------------------------


def _mistakes_first(errors: np.ndarray) -> np.ndarray:
    """Indices by decreasing error; equal errors keep their original order (a stable sort)."""
    return np.argsort(-errors, kind="stable")


def save_figure(figure: Any, path: Path, dpi: int = 100) -> None:
    """Saves a matplotlib figure as PNG, atomically (a reader never meets half a picture)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary: Path) -> None:
        figure.savefig(temporary, format="png", dpi=dpi)

    write_atomically(path, write)


def _class_names(class_names: Sequence[str] | None, count: int) -> list[str]:
    names = [str(name) for name in class_names] if class_names is not None else []
    return names[:count] + [str(index) for index in range(len(names), count)]


def _color_cycle() -> list[str]:
    return [f"tab:{name}" for name in ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan", "gray")]
