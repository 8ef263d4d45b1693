"""The pictures a training run leaves in its experiment folder: learning curves, confusion matrices, predictions.

Each picture is drawn from plain data that a function here computes first and returns, so what a figure shows
can be checked against an independent reference:

- `curves.png`: `curve_series(history)` -> one panel per head, every loss (left axis) and scalar metric (right
  axis) per epoch, training solid against validation dashed.
- `confusion_matrix.png`: `plot_class_scores(metrics)` -> one matrix per classification or segmentation head
  (`normalized_confusion_matrices(metrics)`: each row, a true class, divided by its count; class names on both
  axes), with each class's recall and IoU beside its row and precision above its column; one bar panel per box
  detection head (AP and AP50 per class) and per multi-label or points head (precision, recall, F1 per class), from
  the `per_class` values of `per_class_values(metrics)`.
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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchbricks._conventions import PER_CLASS, SEPARATOR, parse_logged_name
from torchbricks._extras import require
from torchbricks._files import write_atomically
from torchbricks.heads._predictions import class_names_of, color_cycle
from torchbricks.lightning._predictions import collect_predictions, plot_predictions

__all__ = [
    "CURVE_STAGES",
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
            parsed = parse_logged_name(key, CURVE_STAGES)
            if parsed is None:
                continue
            head = parsed.head or TOTAL
            kind = "losses" if parsed.is_loss else "metrics"
            label = f"{parsed.name} ({parsed.stage})"
            series = panels.setdefault(head, {"losses": {}, "metrics": {}})[kind]
            epochs, values = series.setdefault(label, ([], []))
            epochs.append(epoch)
            values.append(float(value))
    return panels


def plot_curves(history: Sequence[Mapping[str, float]]) -> Any:
    """The learning curves of `curve_series(history)`: one panel per head; returns a matplotlib `Figure`.

    The epochs are counted from 1, as the progress lines (`epoch 3/10`) and `metrics.json`'s `best_epoch` count them
    (`history.json` keeps Lightning's count from 0).
    """
    figure_class = require("matplotlib.figure", "plots").Figure
    ticker = require("matplotlib.ticker", "plots")
    panels = curve_series(history)
    figure = figure_class(figsize=(6.0 * max(1, len(panels)), 4.5), layout="constrained")
    axes_list = figure.subplots(1, max(1, len(panels)), squeeze=False)[0]
    colors = color_cycle()
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
                    [epoch + 1 for epoch in epochs],
                    values,
                    color=color,
                    linestyle="-" if stage.startswith("train") else "--",
                    marker="o",
                    label=label,
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
            `MAX_ANNOTATED_CLASSES` classes). A score with nothing to divide by (NaN, as `class_scores` gives it) is
            written `n/a`: the recall of a class without a true sample, whose row is hatched when `support` (a row's
            count) is given, the IoU of a class neither true nor predicted (a class predicted without a true sample has
            a true IoU of 0: every such prediction is false), the precision of a class nothing was predicted as.
    """
    figure_class = require("matplotlib.figure", "plots").Figure
    count = max(1, len(matrices))
    size = max(4.0, 0.45 * max((len(matrix) for matrix in matrices.values()), default=8) + 2)
    figure = figure_class(figsize=((size + (1.6 if scores else 0)) * count, size), layout="constrained")
    axes_list = figure.subplots(1, count, squeeze=False)[0]
    for axes, (name, matrix) in zip(axes_list, matrices.items(), strict=False):
        _draw_confusion_matrix(figure, axes, name, matrix, class_names_of(class_names, len(matrix)), (scores or {}).get(name))
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
            support = scores.get("support", [1] * len(matrix))
            # a class without a true sample has no recall; its IoU is a true 0 where it was predicted (every such
            # prediction is false) and has no value only where neither happened (an empty union): NaN, n/a
            recalls = [
                f"R {_score(recall)} IoU {_score(iou)}" for recall, iou in zip(scores["recall"], scores["iou"], strict=True)
            ]
            rectangle = require("matplotlib.patches", "plots").Rectangle
            for row, count in enumerate(support):
                if count <= 0:  # no true sample: the row's zeros are no fractions
                    axes.add_patch(rectangle((-0.5, row - 0.5), len(matrix), 1, hatch="//", fill=False, edgecolor="0.6"))
            right.set_yticks(range(len(matrix)), recalls)
            right.tick_params(labelsize=7, length=0)
            right.set_ylabel(
                "recall, IoU of the true class" + (" (n/a, hatched: no true sample)" if min(support) <= 0 else ""), fontsize=8
            )
            top = axes.secondary_xaxis("top")
            precisions = [f"P {_score(precision)}" for precision in scores["precision"]]
            top.set_xticks(range(len(matrix)), precisions, rotation=0 if len(matrix) <= 6 else 90)
            top.tick_params(labelsize=7, length=0)
            top.set_xlabel("precision of the prediction", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true class", pad=0.02 if scores is not None else 0.05)


def _score(value: float | None) -> str:
    """A score as the pictures write it: two decimals, `n/a` when undefined (NaN, or `null` read from a JSON file)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


# --- per-class scores --------------------------------------------------------------------------------------------


def per_class_values(metrics: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Head -> class name -> score -> value, from the `<head>/per_class` entries of a stage's metric values.

    Example:
        >>> per_class_values({"head/accuracy": 0.5, "head/per_class": {"cat": {"recall": torch.tensor(0.5)}}})
        {'head': {'cat': {'recall': 0.5}}}
    """
    found = {}
    for name, value in metrics.items():
        head, _, metric = name.rpartition(SEPARATOR)
        if metric == PER_CLASS and isinstance(value, Mapping):
            found[head] = {  # an undefined score (NaN, or null read from metrics.json) is NaN
                str(class_name): {
                    str(key): float("nan") if score is None else float(score) for key, score in class_values.items()
                }
                for class_name, class_values in value.items()
            }
    return found


def plot_class_scores(
    metrics: Mapping[str, Any], class_names: Sequence[str] | None = None, title: str | None = None
) -> Any | None:
    """`confusion_matrix.png`: each head's per-class results on a stage's metric values, or None when none has any.

    A confusion matrix is drawn normalised (`normalized_confusion_matrices`) with each class's recall and IoU beside
    its row and precision above its column (`class_scores` of its counts), its class names those of the head's
    `per_class` values when it has them (a segmentation head's, background first), else `class_names`. A head with
    per-class values but no matrix gets a bar panel: AP and AP50 per class (box detection), precision, recall and F1
    per class (multi-label, points); an undefined score (NaN: a class without a true sample or box, or never
    predicted) gets no bar but `n/a`. `title`, when given, is written above the panels (which test loader's values).
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
        names = names_of.get(name) or class_names_of(class_names, len(matrix))
        _draw_confusion_matrix(figure, axes, name, matrix, names, scores[name])
    for axes, (head, values) in zip(axes_list[len(matrices) :], bars.items(), strict=True):
        _draw_class_bars(axes, head, values)
    if title:
        figure.suptitle(title)
    return figure


def _draw_class_bars(axes: Any, head: str, values: Mapping[str, Mapping[str, float]]) -> None:
    """Horizontal bars per class, one colour per score; an undefined score (NaN; a box AP of -1 from a run of before)
    gets no bar but `n/a`, and a class whose every score is undefined (no true sample or box, never predicted) one
    `n/a` with the reason."""
    box = any("ap" in scores for scores in values.values())
    keys = ["ap", "ap_50"] if box else ["precision", "recall", "f1"]
    names = list(values)

    def defined(name: str, key: str) -> bool:
        value = values[name].get(key, float("nan"))
        return bool(np.isfinite(value)) and not (box and value < 0)

    height = 0.8 / len(keys)
    colors = color_cycle()
    for position, key in enumerate(keys):
        drawn = [index for index, name in enumerate(names) if defined(name, key)]
        offsets = np.arange(len(names), dtype=np.float64) + (position - (len(keys) - 1) / 2) * height
        bars = axes.barh(
            offsets[drawn], [values[names[index]][key] for index in drawn], height=height, color=colors[position], label=key
        )
        if len(names) <= MAX_ANNOTATED_CLASSES:
            axes.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
            for index, name in enumerate(names):
                if not defined(name, key) and any(defined(name, other) for other in keys):
                    axes.text(0.01, offsets[index], f"{key} n/a", va="center", fontsize=6, color="0.4")
    for index, name in enumerate(names):
        if not any(defined(name, key) for key in keys):
            axes.text(0.01, index, "n/a: no true box" if box else "n/a: no true sample", va="center", fontsize=7, color="0.4")
    axes.set_yticks(range(len(names)), names)
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.15)
    axes.set_title(f"{head}: per class")
    axes.set_xlabel("AP (IoU 0.50:0.95) and AP50" if box else "precision, recall and F1")
    axes.legend(fontsize="small", loc="lower right")
    axes.grid(axis="x", alpha=0.3)


def _plain(value: Any) -> Any:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def save_figure(figure: Any, path: Path, dpi: int = 100) -> None:
    """Saves a matplotlib figure as PNG, atomically (a reader never meets half a picture)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary: Path) -> None:
        figure.savefig(temporary, format="png", dpi=dpi)

    write_atomically(path, write)
