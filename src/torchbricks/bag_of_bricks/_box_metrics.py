"""The COCO mean average precision of padded box tensors (`BoxMeanAveragePrecision`). Public path: `object_detection`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.detection.mean_ap import MeanAveragePrecision

from torchbricks._extras import require
from torchbricks.errors import MissingExtraError

__all__ = ["COCO_IOU_THRESHOLDS", "COCO_RECALL_THRESHOLDS", "BoxMeanAveragePrecision"]


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


class BoxMeanAveragePrecision(MeanAveragePrecision):
    """torchmetrics' COCO `MeanAveragePrecision` (boxes) fed with padded tensors instead of lists of dicts.

    `update(boxes, scores, labels, target_boxes, target_labels)` takes the decoder's outputs and the padded
    targets; entries with label -1 are left out, and a target labelled `-2 - k` (an ignored object of class k, such
    as a VOC `difficult` one) is passed as a COCO crowd region (`iscrowd`): not a ground truth to find, and a
    detection of class k overlapping it (by intersection over the detection's area, COCO's crowd rule) is not a
    false positive. `compute` returns `map`, `map_50`, `map_75` and `mar_100` (the values of torchmetrics' dict that
    mean something without per-class or per-size settings) and `per_class`: class name -> `{"ap": COCO AP at IoU
    0.50:0.95, "ap_50": AP at IoU 0.5}`, read from the same COCO evaluation's precision array (all areas, 100
    detections) as pycocotools' summary reads the mean; -1 for a class without a true box (pycocotools' mark of an
    undefined value). Needs pycocotools or faster-coco-eval (the `detection` extra).

    Args:
        class_names: The name of each class index, keying `per_class`; `"0"`, `"1"`, ... when None.
        kwargs: Passed to `MeanAveragePrecision` (`iou_thresholds`, `max_detection_thresholds`, ...).

    Example:
        >>> metric = BoxMeanAveragePrecision(class_names=["cat", "dog"])
        >>> box = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 0, 0]]])
        >>> metric.update(box, torch.tensor([[0.9, 0.0]]), torch.tensor([[1, -1]]), box[:, :1], torch.tensor([[1]]))
        >>> values = metric.compute()
        >>> values["map_50"].item(), values["per_class"]["dog"]["ap"].item(), values["per_class"]["cat"]["ap"].item()
        (1.0, 1.0, -1.0)
    """

    def __init__(self, class_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("backend", _coco_backend())
        kwargs["extended_summary"] = True  # the precision array, from which the per-class values are read
        # pycocotools' own thresholds, in float64: torchmetrics' defaults come from a float32 linspace (0.35 is
        # 0.34999999), which picks another point of the precision curve whenever a recall falls on a multiple of
        # 0.01, and the mAP drifted from pycocotools' (0.6507 against 0.6513 on a small test split)
        kwargs.setdefault("iou_thresholds", COCO_IOU_THRESHOLDS)
        kwargs.setdefault("rec_thresholds", COCO_RECALL_THRESHOLDS)
        super().__init__(box_format="xyxy", iou_type="bbox", **kwargs)
        self.class_names = None if class_names is None else [str(name) for name in class_names]

    reported = ("map", "map_50", "map_75", "mar_100")
    """The scalar values `compute` returns: COCO mAP, mAP at IoU 0.5 and 0.75, and the recall at 100 boxes."""

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
        result["per_class"] = self._per_class(values)
        return result

    def _per_class(self, values: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
        """AP and AP50 of each class from `precision` [iou thresholds, recall thresholds, classes, areas, max dets],
        whose class axis follows `classes` (the labels seen in predictions or targets, sorted); -1 marks no true box."""
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
            per_class[name] = {"ap": ap.float(), "ap_50": ap_50.float()}
        return per_class

    def update(  # type: ignore[override]
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        labels: torch.Tensor,
        target_boxes: torch.Tensor,
        target_labels: torch.Tensor,
    ) -> None:
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
