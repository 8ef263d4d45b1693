"""Epoch values (mean losses and metrics) reduced across processes in one fixed order, on every process.

Why not Lightning's `self.log(..., sync_dist=True)`: Lightning all-reduces such values lazily, when something first
asks for them. The progress bar asks at the end of a training epoch, before the module's `on_train_epoch_end`, but
only on global rank 0 (the bar is disabled elsewhere). Rank 0 then waits in that all-reduce while rank 1 waits in
the metric's all-gather of `on_train_epoch_end`: a deadlock that depends on which callbacks are on. So every value
that needs the other processes is reduced here, in the module's epoch-end hook, by every process in the same order,
and logged already reduced (no collective left for Lightning to start at a rank-dependent moment).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

import torch
from torchmetrics import Metric, MetricCollection

from torchbricks.bag_of_bricks.custom_metrics import NO_TRUE_BOX_REASON, PER_CLASS, undefined_class_scores
from torchbricks.brick_collection import BrickCollection, merge_summaries
from torchbricks.bricks import BrickMetrics

__all__ = [
    "LossMeans",
    "boxless_heads",
    "metric_value_names",
    "summarize_metrics",
    "summarizes_itself",
    "undefined_class_values",
    "undefined_values",
    "unscored_heads",
]

Reduce = Callable[[torch.Tensor], torch.Tensor]
"""Sums a tensor over every process (identity on one process); every process must call it, in the same order."""


class LossMeans:
    """Accumulates the epoch's loss sums of one stage on this process; `compute` reduces them over all processes.

    An epoch's value is `sum(n_b * L_b) / sum(n_b)` over its batches `b` of `n_b` samples, `L_b` the loss as its
    brick computed it: the whole split's loss for a mean over samples, but for a loss divided within its batch by
    something else (summed class weights, valid pixels, boxes) a mean of per-batch ratios. A loss whose brick hands
    over its numerator and denominator (`torchbricks._conventions.LOSS_PARTS`, as the packaged heads' losses do)
    is `sum(numerator_b) / sum(denominator_b)` instead (a sum of 0 read as 1, as the losses read a batch's): the
    whole split's loss, whatever the batch size and the number of processes.

    A loss without parts that is NaN in a batch (a loss over nothing: a head whose every target of the batch is
    ignored, 0 / 0; or a total lacking such a loss) is left out of its mean, as if the batch had not produced it: the
    mean is over the batches that scored something, each weighed by its samples. (Counted, one such batch made the
    epoch's value NaN, or, as a total without the head's term, pulled it down.) A loss NaN in every batch is NaN.
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._weights: dict[str, torch.Tensor | float] = {}
        self._batches: dict[str, int] = {}
        self._defined: dict[str, torch.Tensor | int] = {}  # the batches that were counted (not NaN)

    def reset(self) -> None:
        self._sums.clear()
        self._weights.clear()
        self._batches.clear()
        self._defined.clear()

    @property
    def updated(self) -> bool:
        """Whether a batch was added since the last reset."""
        return bool(self._batches)

    def update(
        self, losses: Mapping[str, torch.Tensor], batch_size: int, parts: Mapping[str, torch.Tensor] | None = None
    ) -> None:
        """Adds a batch of `batch_size` samples; `parts` holds the (numerator, denominator) of the losses that have them."""
        for name, loss in losses.items():
            dtype = torch.float64 if loss.device.type != "mps" else torch.float32
            defined: torch.Tensor | int = 1
            if parts is not None and name in parts:
                numerator, weight = parts[name].detach().to(dtype).unbind()
                value: torch.Tensor = numerator
                weighed: torch.Tensor | float = weight
            else:
                plain = loss.detach().to(dtype)
                counted = ~plain.isnan()  # a tensor, not a Python bool: no wait for the device in every step
                value = torch.where(counted, plain * batch_size, torch.zeros_like(plain))
                weighed, defined = counted.to(dtype) * batch_size, counted.to(dtype)
            self._sums[name] = self._sums[name] + value if name in self._sums else value
            self._weights[name] = self._weights[name] + weighed if name in self._weights else weighed
            self._batches[name] = self._batches.get(name, 0) + 1
            self._defined[name] = self._defined[name] + defined if name in self._defined else defined

    def compute(self, names: Sequence[str], device: torch.device, reduce: Reduce) -> dict[str, torch.Tensor]:
        """The epoch value of each loss in `names` over every process; losses no process saw are left out.

        `names` must be the same list on every process (it comes from the collection's structure, not from the data),
        since the sums travel in one tensor laid out by it.
        """
        dtype = torch.float32 if device.type == "mps" else torch.float64
        count = len(names)
        local = torch.zeros(4 * count, dtype=dtype, device=device)
        for index, name in enumerate(names):
            if name in self._sums:
                local[index] = self._sums[name].to(device=device, dtype=dtype)
                local[count + index] = torch.as_tensor(self._weights[name], dtype=dtype).to(device)
                local[2 * count + index] = self._batches[name]
                local[3 * count + index] = torch.as_tensor(self._defined[name], dtype=dtype).to(device)
        total = reduce(local)
        sums, weights, batches, defined = (
            total[:count],
            total[count : 2 * count],
            total[2 * count : 3 * count],
            total[3 * count :],
        )
        divided = sums / torch.where(weights > 0, weights, torch.ones_like(weights))
        divided = torch.where(defined > 0, divided, torch.full_like(divided, float("nan")))  # NaN in every batch
        return {name: divided[index].float() for index, name in enumerate(names) if batches[index] > 0}


UNSCORED_REASON = "no target of the split was scored: every one is the ignored index (every mask pixel 255)"
"""Why a head's metrics are undefined (NaN) when its confusion matrix counts nothing (`unscored_heads`)."""


def unscored_heads(values: Mapping[str, Any]) -> list[str]:
    """The heads among an epoch's `values` whose confusion matrix (`<head>/confusion_matrix`) counts nothing: none of
    the epoch's targets was scored, every one being the ignored index (a segmentation split whose every mask pixel is
    255), so the head's mean IoU is NaN (torchmetrics' mean over no class) and its loss 0.

    Example:
        >>> unscored_heads({"seg/confusion_matrix": torch.zeros(2, 2), "cls/confusion_matrix": torch.eye(2)})
        ['seg']
    """
    suffix = "/confusion_matrix"
    return [
        name.removesuffix(suffix)
        for name, value in values.items()
        if name.endswith(suffix) and isinstance(value, torch.Tensor) and value.numel() > 0 and not bool(value.any())
    ]


def boxless_heads(values: Mapping[str, Any]) -> list[str]:
    """The box heads among an epoch's `values` that saw no true box: every class's average precision
    (`<head>/per_class/<class>/ap`, `BoxMeanAveragePrecision`) is undefined, so are the head's mAP and recall (NaN,
    pycocotools' -1).

    Example:
        >>> nan = torch.tensor(float("nan"))
        >>> boxless_heads({"det/per_class": {"car": {"ap": nan, "ap_50": nan}}, "seg/per_class": {"car": {"iou": nan}}})
        ['det']
    """
    boxless = []
    for name, classes in values.items():
        head, _, last = name.rpartition("/")
        if last != PER_CLASS or not isinstance(classes, Mapping) or not classes:
            continue
        scores = [entry.get("ap") if isinstance(entry, Mapping) else None for entry in classes.values()]
        if all(isinstance(score, torch.Tensor) and bool(score.isnan().all()) for score in scores):
            boxless.append(head)
    return boxless


def undefined_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Each scalar value of an epoch's `values` that is NaN -> why: `UNSCORED_REASON` for a head that scored no target
    (`unscored_heads`), `NO_TRUE_BOX_REASON` for a box head without a true box (`boxless_heads`), else that the metric
    had nothing to measure. A NaN written as `null` in `metrics.json` or printed as `nan` would read as a score; this
    says what it is instead. The per-class values are `undefined_class_values`.

    Example:
        >>> undefined_values({"seg/mean_iou": torch.tensor(float("nan")), "seg/confusion_matrix": torch.zeros(2, 2)})
        {'seg/mean_iou': 'no target of the split was scored: every one is the ignored index (every mask pixel 255)'}
    """
    reasons = dict.fromkeys(unscored_heads(values), UNSCORED_REASON) | dict.fromkeys(boxless_heads(values), NO_TRUE_BOX_REASON)
    return {
        name: reasons.get(name.rpartition("/")[0], "the metric had nothing to measure on the split")
        for name, value in values.items()
        if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point() and bool(value.isnan())
    }


def undefined_class_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Each per-class value of an epoch's `values` that is undefined (NaN: its denominator is empty, a class absent
    from the split or never predicted) -> why, named `<head>/per_class/<class>/<score>`
    (`custom_metrics.undefined_class_scores`); `UNSCORED_REASON` for every class of a head that scored no target.

    Example:
        >>> nan = torch.tensor(float("nan"))
        >>> undefined_class_values({"seg/per_class": {"car": {"precision": torch.tensor(1.0), "recall": nan}}})
        {'seg/per_class/car/recall': 'no true sample of the class in the split (support 0): recall has nothing to divide by'}
    """
    unscored = unscored_heads(values)
    return undefined_class_scores(values, lambda head, score: UNSCORED_REASON if head in unscored else "")


def summarizes_itself(brick: object) -> bool:
    """Whether `brick` is not a metric brick but has its own `summarize(reset)` (a brick written for torchbricks
    0.4.2), which `BrickCollection.summarize` asks too."""
    return not isinstance(brick, BrickMetrics) and callable(getattr(brick, "summarize", None))


def was_updated(brick: BrickMetrics) -> bool:
    metrics = brick.metrics
    if isinstance(metrics, MetricCollection):
        return any(metric.update_called for metric in metrics.values())
    return bool(metrics.update_called)


def summarize_metrics(
    collection: BrickCollection, device: torch.device, reduce: Reduce, running: Container[str] | None = None
) -> dict[str, Any]:
    """Computes and resets every metric brick that saw a batch on any process, named as `BrickCollection.summarize`,
    and asks every other brick with its own `summarize` (`summarizes_itself`) among `running` (the paths of the
    bricks the stage runs; None: all) for its values, resetting it, in the collection's order.

    Whether a metric brick is computed is decided from all processes at once (one reduction), so a process that saw
    no batch for a brick still computes it and joins the brick's synchronisation (torchmetrics gathers its empty
    state): skipped there, the others' gathers met that process's next collective and computed another brick's
    states into this one's values. A brick's own `summarize` is called on every process alike; its values are this
    process's (rank 0's are logged), as torchbricks 0.4.2 gave them.
    """
    bricks = [
        (path, brick)
        for path, brick in collection.iter_bricks()
        if isinstance(brick, BrickMetrics) or (summarizes_itself(brick) and (running is None or path in running))
    ]
    if not bricks:
        return {}
    metrics = [(path, brick) for path, brick in bricks if isinstance(brick, BrickMetrics)]
    flags = torch.tensor([float(was_updated(brick)) for _, brick in metrics], device=device)
    updated_anywhere = dict(zip([path for path, _ in metrics], (reduce(flags) > 0).tolist(), strict=True))
    summaries: list[tuple[str, Mapping[str, Any]]] = []
    for path, brick in bricks:
        if isinstance(brick, BrickMetrics):
            if updated_anywhere[path]:
                summaries.append((path, _computed_and_reset(brick)))  # torchmetrics synchronises the states here
        else:
            summarize: Callable[..., Mapping[str, Any]] = brick.summarize  # type: ignore[assignment] # its own method
            summaries.append((path, summarize(reset=True)))
    return merge_summaries(summaries)


def _computed_and_reset(brick: BrickMetrics) -> dict[str, Any]:
    """The brick's values, computed also where this process saw none of its batches (another process did)."""
    if brick.updated():
        return brick.summarize(reset=True)
    with warnings.catch_warnings():  # torchmetrics warns of a compute before any update: the states come from the others
        warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method")
        values = brick.compute()
    brick.reset()
    return values


def metric_value_names(brick: BrickMetrics) -> list[str] | None:
    """The names `brick.summarize` gives its scalar values, read from the metrics before any batch, or None when a
    metric's names are only known once it computes.

    A metric's `compute` annotated as returning a dict gives its keys: `reported` when it declares them (as
    `BoxMeanAveragePrecision` does; an empty `reported` declares none), unknown otherwise; any other metric gives
    its own name, unless it gives several values (a tuple such as a ROC curve, torchmetrics' confusion matrices,
    `average="none"`, `multidim_average="samplewise"`), which are not scalars. In a `BrickMetricSingle` a
    dict-valued metric is one value that is not a scalar, so it gives no name.
    """
    metrics = brick.metrics
    if isinstance(metrics, Metric):
        return [] if _returns_dict(metrics) or not _scalar(metrics) else list(brick.metric_names)
    if metrics.prefix or metrics.postfix:
        return None
    keys: dict[str, list[str] | None] = {}  # metric name -> the keys of its dict, None for a single value
    for name, metric in metrics.items(keep_base=True, copy_state=False):
        reported = getattr(metric, "reported", None)
        if not _returns_dict(metric):
            keys[name] = None
        elif isinstance(reported, (tuple, list)):
            keys[name] = [str(key) for key in reported]
        else:
            return None
    flat = [key for name, dict_keys in keys.items() for key in (dict_keys if dict_keys is not None else [name])]
    if len(set(flat)) != len(flat):  # torchmetrics then names the values of dict-valued metrics `<metric>_<key>`
        flat = [
            f"{name}_{key}" if dict_keys is not None else name
            for name, dict_keys in keys.items()
            for key in (dict_keys if dict_keys is not None else [name])
        ]
    several = {
        name for name, metric in metrics.items(keep_base=True, copy_state=False) if keys[name] is None and not _scalar(metric)
    }
    return [name for name in flat if name not in several]


def _scalar(metric: Metric) -> bool:
    """False for the metrics known to give something else than one value (only tensors of one value are logged):
    `compute` annotated as anything but a tensor (a tuple such as a curve, a float), a confusion matrix, one value
    per class or per sample."""
    annotation = _compute_annotation(metric)
    if annotation not in ("", "tensor", "torch.tensor"):
        return False
    if type(metric).__name__.endswith("ConfusionMatrix"):
        return False
    return getattr(metric, "average", "micro") not in ("none", None) and getattr(metric, "multidim_average", "") != "samplewise"


def _returns_dict(metric: Metric) -> bool:
    return _compute_annotation(metric).startswith(("dict", "mapping", "typing.dict", "typing.mapping"))


def _compute_annotation(metric: Metric) -> str:
    """The return annotation of the metric's `compute`, lower case (`tensor`, `dict`, `union`, ...; `` for none)."""
    annotation = inspect.signature(type(metric).compute).return_annotation
    if annotation is inspect.Signature.empty:
        return ""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return text.lower()
