"""Metrics torchmetrics lacks.

- `ConcatenatePredictionAndTarget` keeps every prediction and target of an epoch.
- `ConfusionMatrixClassScores`: torchmetrics' multiclass confusion matrix and, from it, each class's precision,
  recall, IoU and support keyed by class name (`class_scores` does the arithmetic).
- `MulticlassMeanIoU`: torchmetrics' `MulticlassJaccardIndex` (the mean IoU of a segmentation head, over the classes
  with an IoU: a class neither true nor predicted is left out, not counted as 0).
- `MulticlassMeanAccuracy`: the mean of the classes' recalls over the classes with a true sample (torchmetrics' macro
  accuracy counted a class predicted but never true as a recall of 0).
- `MultilabelClassScores`: each class's precision, recall, F1 and support of a multi-label head, keyed by name.
- `MultilabelF1Score`, `MultilabelAccuracy`: torchmetrics' own, which also take a single label (the presence head of
  a one-class data set).
- `counted_scores` (precision, recall, F1 and support from counts of true positives, false positives and false
  negatives), `class_name_list` and `by_class_name`: the per-class arithmetic and naming these metrics and
  `point_detection.PointDetectionScores` share.

The per-class values are a nested dict `{"per_class": {name: {"precision": ..., ...}}}`: the training job writes
them to `metrics.json` and draws them, and logs none of them (a logger takes scalars only). A ratio whose
denominator is 0 is undefined, NaN (scikit-learn's `zero_division=np.nan`; `null` in `metrics.json`, `n/a` in the
pictures and in `torchbricks evaluate`), never 0, which would read as a measured score: the precision of a class
never predicted, the recall of a class without a true sample (support 0), the IoU and F1 of a class neither true
nor predicted. `UNDEFINED_SCORE_REASONS` says why for each score and `undefined_class_scores` lists a stage's
undefined per-class values with their reasons (`undefined_metrics` of `metrics.json`). The support says how many
samples (pixels) of the class there were.

The two multiclass metrics check their inputs with `check_class_indices` (shapes, and every target in `0 ..
num_classes - 1` or the ignored index) in place of torchmetrics' own argument validation, which sorts every value
to count the distinct ones: on a batch of 16 masks of 192 x 192 px that took 44 of the update's 53 ms, an eighth of
a multitask training step on this CPU, and it let an out-of-range class through as long as few classes occurred.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torchmetrics import Metric, classification
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex, MultilabelStatScores
from torchmetrics.utilities.data import dim_zero_cat

from torchbricks.errors import BrickError

__all__ = [
    "NO_TRUE_BOX_REASON",
    "UNDEFINED_SCORE_REASONS",
    "ConcatenatePredictionAndTarget",
    "ConfusionMatrixClassScores",
    "MulticlassMeanAccuracy",
    "MulticlassMeanIoU",
    "MultilabelAccuracy",
    "MultilabelClassScores",
    "MultilabelF1Score",
    "by_class_name",
    "check_class_indices",
    "class_name_list",
    "class_scores",
    "counted_scores",
    "undefined_class_scores",
]

PER_CLASS = "per_class"
"""The key of the per-class values in the dict the class-score metrics compute."""

UNDEFINED_SCORE_REASONS = {
    "precision": "the class was never predicted: precision has no prediction to divide by",
    "recall": "no true sample of the class in the split (support 0): recall has nothing to divide by",
    "iou": "the class is neither true nor predicted anywhere in the split: its IoU's union is empty",
    "f1": "the class is neither true nor predicted anywhere in the split: F1 has nothing to divide by",
    "ap": "no true box of the class in the split: its average precision has no recall to follow",
    "ap_50": "no true box of the class in the split: its average precision has no recall to follow",
}
"""Why a per-class score is undefined (NaN), by its key in `per_class`: its denominator is empty."""

NO_TRUE_BOX_REASON = (
    "no true box in the split (no object, or only ignored ones: VOC difficult, COCO crowd): "
    "the mean average precision and recall have no true box to find"
)
"""Why a box head's mAP and recall are undefined (NaN; pycocotools writes -1): no class has a true box."""


class ConcatenatePredictionAndTarget(Metric):
    """Collects the predictions and targets of every batch; `compute` returns them concatenated along the batch axis.

    Useful for what needs the whole epoch at once (a plot, a curve, an analysis of the mistakes). Across processes
    the batches of every process are concatenated (`dist_reduce_fx="cat"`), so memory grows with the data set.

    Example:
        >>> metric = ConcatenatePredictionAndTarget()
        >>> metric.update(torch.tensor([0.1, 0.9]), torch.tensor([0, 1]))
        >>> metric.update(torch.tensor([0.7]), torch.tensor([1]))
        >>> metric.compute()
        (tensor([0.1000, 0.9000, 0.7000]), tensor([0, 1, 1]))
    """

    full_state_update = False  # update never reads the accumulated state
    predictions: list[torch.Tensor]
    targets: list[torch.Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("predictions", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.ndim == 0 or target.ndim == 0 or preds.shape[0] != target.shape[0]:
            raise BrickError(
                "ConcatenatePredictionAndTarget needs predictions and targets with one item per sample along the first "
                f"axis, got shapes {tuple(preds.shape)} and {tuple(target.shape)}."
            )
        self.predictions.append(preds)
        self.targets.append(target)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _concatenate(self.predictions), _concatenate(self.targets)


def _concatenate(values: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    if isinstance(values, torch.Tensor):  # already concatenated by the synchronisation across processes
        return values
    if not values:
        return torch.empty(0)
    return dim_zero_cat(values)


def class_scores(confusion_matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per class, from a confusion matrix of counts (row = true class, column = predicted class): `precision`,
    `recall`, `iou` (true positives over true positives, false positives and false negatives) and `support`
    (the row's count). A ratio with a zero denominator is undefined, NaN (`UNDEFINED_SCORE_REASONS`).

    Example:
        >>> scores = class_scores(torch.tensor([[3, 1], [0, 2]]))
        >>> [[round(value, 3) for value in scores[key].tolist()] for key in ("precision", "recall", "iou")]
        [[1.0, 0.667], [0.75, 1.0], [0.75, 0.667]]
        >>> absent = class_scores(torch.tensor([[2, 1, 0], [0, 0, 0], [0, 0, 0]]))  # classes 1 and 2: no true sample
        >>> [[round(value, 3) for value in absent[key].tolist()] for key in ("precision", "recall", "iou")]
        [[1.0, 0.0, nan], [0.667, nan, nan], [0.667, 0.0, nan]]
    """
    counts = confusion_matrix.double()
    hits = counts.diagonal()
    truths, predictions = counts.sum(dim=1), counts.sum(dim=0)
    return {
        "precision": _ratio(hits, predictions),
        "recall": _ratio(hits, truths),
        "iou": _ratio(hits, truths + predictions - hits),
        "support": truths.long(),
    }


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1e-300), float("nan")).float()


def counted_scores(
    true_positives: torch.Tensor, false_positives: torch.Tensor, false_negatives: torch.Tensor
) -> dict[str, torch.Tensor]:
    """`precision`, `recall`, `f1` and `support` (true positives and false negatives: the true objects) of counts, one
    entry per class; a ratio with a zero denominator is undefined, NaN (scikit-learn's `zero_division=np.nan`).

    Example:
        >>> scores = counted_scores(torch.tensor([2, 0, 0]), torch.tensor([2, 0, 0]), torch.tensor([0, 0, 3]))
        >>> [[round(value, 3) for value in scores[key].tolist()] for key in ("precision", "recall", "f1", "support")]
        [[0.5, nan, nan], [1.0, nan, 0.0], [0.667, nan, 0.0], [2, 0, 3]]
    """
    hits, wrong, missed = true_positives.double(), false_positives.double(), false_negatives.double()
    return {
        "precision": _ratio(hits, hits + wrong),
        "recall": _ratio(hits, hits + missed),
        "f1": _ratio(2 * hits, 2 * hits + wrong + missed),
        "support": (hits + missed).long(),
    }


def undefined_class_scores(values: Mapping[str, Any], reason: Callable[[str, str], str] | None = None) -> dict[str, str]:
    """Each undefined (NaN or None) per-class score among a stage's `values` (`<head>/per_class`: class -> score ->
    value) -> why, named `<head>/per_class/<class>/<score>`: `reason(head, score)` when given and not empty, else
    `UNDEFINED_SCORE_REASONS` of the score.

    Example:
        >>> values = {"seg/per_class": {"car": {"recall": torch.tensor(float("nan")), "support": torch.tensor(0)}}}
        >>> undefined_class_scores(values)
        {'seg/per_class/car/recall': 'no true sample of the class in the split (support 0): recall has nothing to divide by'}
    """
    undefined = {}
    for name, classes in values.items():
        head, _, last = name.rpartition("/")
        if last != PER_CLASS or not isinstance(classes, Mapping):
            continue
        for class_name, scores in classes.items():
            if not isinstance(scores, Mapping):
                continue
            for key, value in scores.items():
                number = float(value) if isinstance(value, (torch.Tensor, float, int)) and not isinstance(value, bool) else None
                if value is None or (number is not None and math.isnan(number)):
                    said = reason(head, str(key)) if reason is not None else ""
                    undefined[f"{name}/{class_name}/{key}"] = said or UNDEFINED_SCORE_REASONS.get(
                        str(key), "nothing to divide by on the split"
                    )
    return undefined


def class_name_list(class_names: Sequence[str] | None, count: int, metric: str) -> list[str]:
    """The names keying a metric's per-class values: `class_names` as strings, or `"0"`, `"1"`, ... when None.

    Raises:
        BrickError: Naming `metric`, when the names are not `count` distinct ones.
    """
    if class_names is None:
        return [str(index) for index in range(count)]
    names = [str(name) for name in class_names]
    if len(names) != count:
        raise BrickError(f"{metric} has {count} classes but {len(names)} class names: {names}.")
    if len(set(names)) != len(names):
        raise BrickError(f"{metric} needs distinct class names (they key its per-class values), got {names}.")
    return names


def by_class_name(names: list[str], values: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """`{name: {key: value[index]}}`: per-class tensors (one entry per class) regrouped by class name."""
    return {name: {key: value[index] for key, value in values.items()} for index, name in enumerate(names)}


def check_class_indices(
    metric: str, preds: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> None:
    """Checks a multiclass metric's update in one pass over the values: `target` holds class indices of the shape of
    `preds` (or of `preds` without its class axis 1, for scores), and every target (and integer prediction) is in
    `0 .. num_classes - 1` or is `ignore_index`.

    Raises:
        BrickError: Naming `metric`, the shapes or the first value out of range.

    Example:
        >>> check_class_indices("mean_iou", torch.tensor([[0, 1]]), torch.tensor([[1, 3]]), num_classes=3)
        Traceback (most recent call last):
        ...
        torchbricks.errors.BrickError: mean_iou: targets hold 3, expected class indices 0 .. 2; is num_classes=3 right?
    """
    if target.is_floating_point() or target.is_complex():
        raise BrickError(f"{metric}: targets must be class indices (an integer tensor), got {target.dtype}.")
    scores = preds.ndim == target.ndim + 1
    if scores:
        matches = preds.is_floating_point() and preds.shape[1] == num_classes
        matches = matches and preds.shape[:1] + preds.shape[2:] == target.shape
    else:
        matches = preds.shape == target.shape
    if not matches:
        raise BrickError(
            f"{metric}: predictions of shape {tuple(preds.shape)} do not fit targets of shape {tuple(target.shape)}; "
            f"expected class indices of the targets' shape, or float scores with {num_classes} classes on axis 1."
        )
    checked = [("targets", target, ignore_index)]  # the ignored index marks targets only: a prediction is a class
    if not preds.is_floating_point():
        checked.append(("predictions", preds, None))
    for name, values, ignored_value in checked:
        outside = (values < 0) | (values >= num_classes)
        if ignored_value is not None:
            outside &= values != ignored_value
        if bool(outside.any()):
            ignored = "" if ignored_value is None else f" or {ignored_value} (ignored)"
            raise BrickError(
                f"{metric}: {name} hold {int(values[outside][0])}, expected class indices 0 .. {num_classes - 1}{ignored}; "
                f"is num_classes={num_classes} right?"
            )


class _ChecksClassIndices:
    """Mixed into a torchmetrics multiclass metric: `check_class_indices` on every update, torchmetrics' own
    validation off unless `validate_args=True` is given."""

    num_classes: int
    ignore_index: int | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # the torchmetrics class's own arguments, by position too
        kwargs.setdefault("validate_args", False)
        super().__init__(*args, **kwargs)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_class_indices(type(self).__name__, preds, target, self.num_classes, self.ignore_index)
        super().update(preds, target)  # type: ignore[misc]


class MulticlassMeanIoU(_ChecksClassIndices, MulticlassJaccardIndex):
    """torchmetrics' `MulticlassJaccardIndex` (average `macro`: the mean IoU over the classes), whose inputs are
    checked by `check_class_indices` instead of torchmetrics' slower validation (`validate_args=True` adds it back).

    Example:
        >>> metric = MulticlassMeanIoU(num_classes=2, ignore_index=255)
        >>> round(float(metric(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 255]))), 3)
        0.5
    """


class MulticlassMeanAccuracy(classification.MulticlassAccuracy):
    """The mean of the classes' recalls (torchmetrics' `MulticlassAccuracy` with `average="macro"`, scikit-learn's
    `balanced_accuracy_score`) over the classes with a true sample: a class without one has no recall.

    torchmetrics leaves out a class neither true nor predicted, but counts a class predicted without a true sample as
    a recall of 0: on targets [0, 0, 1, 1] predicted [0, 2, 1, 1] of 3 classes it gives (0.5 + 1 + 0) / 3 = 0.5, for
    the 0.75 of the two classes that have samples. NaN when no class has a true sample.

    Example:
        >>> metric = MulticlassMeanAccuracy(num_classes=3)
        >>> round(float(metric(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 0, 1, 1]))), 3)
        0.75
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        if kwargs.setdefault("average", "macro") != "macro":
            raise BrickError(f"MulticlassMeanAccuracy is the macro average; it takes no average={kwargs['average']!r}.")
        super().__init__(num_classes=num_classes, **kwargs)

    def compute(self) -> torch.Tensor:
        true_positives, _, _, false_negatives = self._final_state()
        truths = true_positives + false_negatives
        sampled = truths > 0
        if not bool(sampled.any()):
            return torch.tensor(float("nan"), device=truths.device)
        return (true_positives[sampled].double() / truths[sampled]).mean().float()


class ConfusionMatrixClassScores(_ChecksClassIndices, MulticlassConfusionMatrix):
    """torchmetrics' `MulticlassConfusionMatrix` whose `compute` also gives each class's scores by name.

    `compute` returns `{"confusion_matrix": counts [K, K], "per_class": {name: {"precision", "recall", "iou",
    "support"}}}` (see `class_scores`). In a `MetricCollection` the two keys become values of their own, so a head's
    `confusion_matrix` keeps its name beside the new `per_class`.

    Args:
        num_classes: The number of classes.
        class_names: One name per class; `"0"`, `"1"`, ... when None.
        ignore_index: Targets with this value are not counted (255 for segmentation masks).
        kwargs: Passed to `MulticlassConfusionMatrix` (not `normalize`: the scores need counts).

    Example:
        >>> metric = ConfusionMatrixClassScores(num_classes=2, class_names=["cat", "dog"])
        >>> metric.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))
        >>> values = metric.compute()
        >>> values["confusion_matrix"].tolist(), round(float(values["per_class"]["dog"]["recall"]), 3)
        ([[1, 0], [1, 2]], 0.667)
    """

    reported = ()
    """No value of `compute` is a scalar to log."""

    def __init__(
        self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int | None = None, **kwargs: Any
    ) -> None:
        if kwargs.get("normalize") not in (None, "none"):
            raise BrickError("ConfusionMatrixClassScores counts; it takes no normalize (the report normalises its picture).")
        super().__init__(num_classes=num_classes, ignore_index=ignore_index, **kwargs)
        self.class_names = class_name_list(class_names, num_classes, type(self).__name__)

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        counts = super().compute()
        return {"confusion_matrix": counts, PER_CLASS: by_class_name(self.class_names, class_scores(counts))}


class _TakesOneLabel:
    """Mixed into a torchmetrics multilabel metric: `num_labels=1` is taken. torchmetrics' argument check refuses a
    single label, though its counts are right for one (a column of 0/1 targets), so the presence head of a one-class
    data set (`task=multitask` on cars alone) stopped the job before training; each update's inputs are still
    checked (`validate_args`)."""

    validate_args: bool

    def __init__(self, num_labels: int, *args: Any, **kwargs: Any) -> None:
        validate = kwargs.pop("validate_args", True)
        super().__init__(num_labels, *args, validate_args=validate and num_labels != 1, **kwargs)  # type: ignore[call-arg]
        self.validate_args = validate


class MultilabelF1Score(_TakesOneLabel, classification.MultilabelF1Score):
    """torchmetrics' `MultilabelF1Score`, also of a single label (see `_TakesOneLabel`).

    Example:
        >>> metric = MultilabelF1Score(num_labels=1, average="micro", ignore_index=-1)
        >>> round(float(metric(torch.tensor([[1], [1], [0], [1]]), torch.tensor([[1], [0], [1], [-1]]))), 3)
        0.5
    """


class MultilabelAccuracy(_TakesOneLabel, classification.MultilabelAccuracy):
    """torchmetrics' `MultilabelAccuracy`, also of a single label (see `_TakesOneLabel`).

    Example:
        >>> metric = MultilabelAccuracy(num_labels=1, average="micro", ignore_index=-1)
        >>> round(float(metric(torch.tensor([[1], [1], [0], [1]]), torch.tensor([[1], [0], [1], [-1]]))), 3)
        0.333
    """


class MultilabelClassScores(_TakesOneLabel, MultilabelStatScores):
    """Each class's `precision`, `recall`, `f1` and `support` (images holding it) of a multi-label head, by name.

    `compute` returns `{"per_class": {name: {...}}}`; a ratio with a zero denominator is NaN (undefined). One label is taken (see
    `_TakesOneLabel`).

    Args:
        num_labels: The number of classes.
        class_names: One name per class; `"0"`, `"1"`, ... when None.
        kwargs: Passed to `MultilabelStatScores` (`threshold`, `ignore_index`; `average` is `none`).

    Example:
        >>> metric = MultilabelClassScores(num_labels=2, class_names=["cat", "dog"])
        >>> metric.update(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 1], [0, 1]]))
        >>> {name: round(float(values["f1"]), 3) for name, values in metric.compute()["per_class"].items()}
        {'cat': 0.667, 'dog': 0.667}
    """

    reported = ()
    """No value of `compute` is a scalar to log."""

    def __init__(self, num_labels: int, class_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs["average"] = "none"
        super().__init__(num_labels=num_labels, **kwargs)
        self.class_names = class_name_list(class_names, num_labels, type(self).__name__)

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        true_positives, false_positives, _, false_negatives, _ = super().compute().unbind(dim=-1)
        values = counted_scores(true_positives, false_positives, false_negatives)  # its support: the images holding it
        return {PER_CLASS: by_class_name(self.class_names, values)}
