"""The COCO mean average precision of padded box tensors (`BoxMeanAveragePrecision`). Public path: `object_detection`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.detection.mean_ap import MeanAveragePrecision

from torchbricks._box_cutting import cut_to_image
from torchbricks._extras import require
from torchbricks.errors import BrickError, MissingExtraError

__all__ = ["COCO_IOU_THRESHOLDS", "COCO_MAX_DETECTIONS", "COCO_RECALL_THRESHOLDS", "BoxMeanAveragePrecision"]


def _coco_backend() -> str:
    try:
        require("pycocotools", "detection")
    except MissingExtraError:
        try:
            require("faster_coco_eval", "detection")
        except MissingExtraError:
            raise MissingExtraError(
                "The COCO mean average precision needs pycocotools (or faster-coco-eval); it comes with the "
                '"detection" extra: pip install "torchbricks[detection]"'
            ) from None
        return "faster_coco_eval"
    return "pycocotools"


COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10).tolist()
"""The IoU thresholds of COCO's mAP, as pycocotools makes them (float64)."""
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101).tolist()
"""The 101 recall thresholds of COCO's precision curve, as pycocotools makes them (float64)."""
COCO_MAX_DETECTIONS = 100
"""The detections per image COCO's summary counts at most (the highest of its `maxDets`)."""


class BoxMeanAveragePrecision(MeanAveragePrecision):
    """torchmetrics' COCO `MeanAveragePrecision` (boxes) fed with padded tensors instead of lists of dicts.

    `update(boxes, scores, labels, target_boxes, target_labels)` takes the decoder's outputs and the padded
    targets; entries with label -1 are left out, and a target labelled `-2 - k` (an ignored object of class k, such
    as a VOC `difficult` one) is passed as a COCO crowd region (`iscrowd`): not a ground truth to find, and a
    detection of class k overlapping it (by intersection over the detection's area, COCO's crowd rule) is not a
    false positive.

    Given the `images` [B, C, H, W] the boxes were found on, each box is cut to the image and a box left without
    area is dropped, as `predict` writes them: the decoder's boxes may reach past the input (an object at the
    border), and scored uncut, such a box overlapped its true box (which lies in the image) less than the box
    `predict` delivers, so the mAP at the stricter IoU thresholds read lower than the delivered boxes' mAP. Given
    also `image_extents` [B, 2], the (height, width) of the part of each input that shows the image (a tile of
    `torchbricks.datasets.tiled` padded at its right and bottom, the data's `image_extent`), each box is cut to that
    part instead: `predict` cuts its boxes to the image, so a box in the black padding is no box it writes, and
    scored against the padded tile it was a false positive.

    Every detection the model returns is counted: the cap on detections per image (COCO's `maxDets`, 100 in COCO's
    summary) is the larger of 100 and `max_detections`, which the detection head sets to its decoder's
    `max_detections`; an image with more detections than the cap is refused rather than cut. `compute` returns
    `map` (AP at IoU 0.50:0.95), `map_50`, `map_75` and `mar_<cap>` (the recall with at most `<cap>` detections
    per image: `mar_100` as in COCO's summary, `mar_300` for a decoder keeping 300), the names listed in `reported`,
    all at that cap and all areas, as pycocotools' summary computes them with `maxDets` ending at the cap; and
    `per_class`: class name -> `{"ap": AP at IoU 0.50:0.95, "ap_50": AP at IoU 0.5}`, read from the same
    precision array. A split without any true box (no object, or only ignored ones) has every scalar undefined:
    NaN, where pycocotools writes -1, a number that read as a score in `metrics.json`; a class without a true box has
    NaN in `per_class` and is left out of the mAP. Like every head's undefined values they are `null` in
    `metrics.json` with their reason in `undefined_metrics` (`custom_metrics.NO_TRUE_BOX_REASON`). Needs pycocotools
    or faster-coco-eval (the `detection` extra).

    Args:
        class_names: The name of each class index, keying `per_class`; `"0"`, `"1"`, ... when None.
        max_detections: The most detections per image the model returns (the decoder's `max_detections`).
        kwargs: Passed to `MeanAveragePrecision` (`iou_thresholds`, ...); `max_detection_thresholds` given here
            replaces the cap (its highest value) that `max_detections` sets.

    Example:
        >>> metric = BoxMeanAveragePrecision(class_names=["cat", "dog"])
        >>> box = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 0, 0]]])
        >>> metric.update(box, torch.tensor([[0.9, 0.0]]), torch.tensor([[1, -1]]), box[:, :1], torch.tensor([[1]]))
        >>> values = metric.compute()
        >>> values["map_50"].item(), values["per_class"]["dog"]["ap"].item(), values["per_class"]["cat"]["ap"].item()
        (1.0, 1.0, nan)
        >>> BoxMeanAveragePrecision(max_detections=300).reported
        ('map', 'map_50', 'map_75', 'mar_300')
    """

    def __init__(
        self, class_names: Sequence[str] | None = None, max_detections: int = COCO_MAX_DETECTIONS, **kwargs: Any
    ) -> None:
        if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
            raise BrickError(
                f"BoxMeanAveragePrecision: max_detections must be a whole number of 1 or more (the decoder's "
                f"max_detections), got {max_detections!r}."
            )
        # COCO's summary counts at most 100 detections per image: a decoder keeping more (300 tree crowns) had its
        # recall and mAP capped by the metric without a word, so the cap follows the decoder above 100
        kwargs.setdefault("max_detection_thresholds", [1, 10, max(COCO_MAX_DETECTIONS, max_detections)])
        kwargs.setdefault("backend", _coco_backend())
        kwargs["extended_summary"] = True  # the precision array, from which the per-class values are read
        # pycocotools' own thresholds, in float64: torchmetrics' defaults come from a float32 linspace (0.35 is
        # 0.34999999), which picks another point of the precision curve whenever a recall falls on a multiple of
        # 0.01, and the mAP drifted from pycocotools' (0.6507 against 0.6513 on a small test split)
        kwargs.setdefault("iou_thresholds", COCO_IOU_THRESHOLDS)
        kwargs.setdefault("rec_thresholds", COCO_RECALL_THRESHOLDS)
        super().__init__(box_format="xyxy", iou_type="bbox", **kwargs)
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        self.max_detections: int = self.max_detection_thresholds[-1]
        """The cap on detections per image: the most each image may have, and the `maxDets` of every value."""
        self.reported: tuple[str, ...] = ("map", "map_50", "map_75", f"mar_{self.max_detections}")
        """The scalar values `compute` returns: COCO mAP, mAP at IoU 0.5 and 0.75, and the recall at the cap."""

    _image_states = (
        "detection_box",
        "detection_scores",
        "detection_labels",
        "groundtruth_box",
        "groundtruth_labels",
        "groundtruth_crowds",
        "groundtruth_area",
    )
    """The states holding one entry per image, gathered whole across processes (`_sync_dist`)."""

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        """Gathers every process's images, however many each saw. torchmetrics gathers the per-image lists one tensor
        at a time, so processes that saw different numbers of images (an odd-sized split on two processes, which
        the unpadded evaluation samplers give) called different numbers of collectives and the run crashed."""
        import torch.distributed as dist

        local = [[tensor.cpu() for tensor in getattr(self, name)] for name in self._image_states]
        gathered: list[Any] = [None] * dist.get_world_size(group=process_group)
        dist.all_gather_object(gathered, local, group=process_group)
        for index, name in enumerate(self._image_states):
            setattr(self, name, [tensor.to(self.device) for part in gathered for tensor in part[index]])

    def compute(self) -> dict[str, Any]:
        values = super().compute()
        result: dict[str, Any] = {name: values[name] for name in self.reported}
        precision = values.get("precision")
        if precision is not None:
            # pycocotools' summary reads `map` at 100 detections whatever its maxDets (-1 when 100 is not among
            # them); the other values it reads at the highest, the cap. `map` is read at the cap too, as pycocotools
            # reads it: the mean of the defined precision values, all areas.
            result["map"] = _mean_defined(precision[:, :, :, 0, -1].double()).to(values["map"].dtype)
        result = {name: _undefined_as_nan(value) for name, value in result.items()}  # -1: no true box in the split
        result["per_class"] = self._per_class(values)
        return result

    def _per_class(self, values: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
        """AP and AP50 of each class from `precision` [iou thresholds, recall thresholds, classes, areas, max dets],
        whose class axis follows `classes` (the labels seen in predictions or targets, sorted); NaN: no true box (the
        -1 of pycocotools' precision array, no AP to report)."""
        seen = [int(label) for label in values["classes"].tolist()]
        names = self.class_names or [str(index) for index in range(max(seen, default=-1) + 1)]
        precision = values.get("precision")
        thresholds = torch.as_tensor(self.iou_thresholds, dtype=torch.float64)
        at_50 = torch.isclose(thresholds, torch.tensor(0.5, dtype=torch.float64)).nonzero().flatten()
        per_class = {}
        for index, name in enumerate(names):
            ap = ap_50 = torch.tensor(-1.0)
            if precision is not None and index in seen:
                curve = precision[:, :, seen.index(index), 0, -1].double()  # all areas, the most detections
                ap = _mean_defined(curve)
                ap_50 = _mean_defined(curve[at_50[0]]) if len(at_50) else ap_50
            per_class[name] = {key: _undefined_as_nan(value) for key, value in (("ap", ap), ("ap_50", ap_50))}
        return per_class

    def update(  # type: ignore[override]
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        labels: torch.Tensor,
        target_boxes: torch.Tensor,
        target_labels: torch.Tensor,
        images: torch.Tensor | None = None,
        image_extents: torch.Tensor | None = None,
    ) -> None:
        cut_at: tuple[Any, Any] | None = None  # the height and width the boxes are cut to
        if image_extents is not None:  # each image's own part of its input: [B, 1, 1] heights and widths
            extents = image_extents.to(device=boxes.device, dtype=boxes.dtype)[:, None, :, None]
            cut_at = (extents[:, :, 0], extents[:, :, 1])
        elif images is not None:
            cut_at = (images.shape[-2], images.shape[-1])
        if cut_at is not None:
            boxes, shown = cut_to_image(boxes, *cut_at)
            labels = torch.where(shown, labels, torch.full_like(labels, -1))
        if labels.shape[-1] > self.max_detections:
            most = int((labels >= 0).sum(dim=-1).max()) if labels.numel() else 0
            if most > self.max_detections:
                raise BrickError(
                    f"BoxMeanAveragePrecision counts at most {self.max_detections} detections per image (max_detections), "
                    f"got an image with {most}: the lowest-scored ones would be left out of the mAP and recall. Pass "
                    f"max_detections={labels.shape[-1]} (the decoder's max_detections); the detection head does so."
                )
        predictions, targets = [], []
        for image in range(boxes.shape[0]):
            kept, real = labels[image] >= 0, target_labels[image] >= 0
            predictions.append(
                {"boxes": boxes[image][kept].float(), "scores": scores[image][kept].float(), "labels": labels[image][kept]}
            )
            ignored = target_labels[image] <= -2
            kept_targets = real | ignored
            targets.append(
                {
                    "boxes": target_boxes[image][kept_targets].float(),
                    "labels": torch.where(ignored, -2 - target_labels[image], target_labels[image])[kept_targets],
                    "iscrowd": ignored[kept_targets].long(),
                }
            )
        super().update(predictions, targets)


def _mean_defined(precision: torch.Tensor) -> torch.Tensor:
    """The mean of the precision values that are defined (pycocotools marks the others -1), or -1."""
    defined = precision[precision > -1]
    return defined.mean() if defined.numel() else torch.tensor(-1.0)


def _undefined_as_nan(value: torch.Tensor) -> torch.Tensor:
    """A value as `compute` returns it: NaN where pycocotools writes -1 (no true box, nothing to average)."""
    value = value.float()
    return torch.where(value < 0, torch.tensor(float("nan")), value)
