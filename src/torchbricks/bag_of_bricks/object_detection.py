"""Object detection with boxes, anchor-free (CenterNet/TTFNet style): a head, its losses, a decoder with top-k and
non-maximum suppression, the COCO mean average precision, a box drawing and a ready-made collection.

Each class has a heatmap at the features' stride whose peaks are object centres; each cell also predicts the
distances from its centre to the four sides of its object's box. Targets are padded tensors so batches stack:
boxes [B, N, 4] as (x_min, y_min, x_max, y_max) in pixels and labels [B, N] with -1 marking padding (what
`torchbricks.datasets.collate_padded` makes of COCO data). A label `-2 - k` marks an object of class k that
evaluation ignores (a Pascal VOC `difficult` object, see `torchbricks.datasets.BoxDataset`): the loss skips it as it
skips the padding, and the mean average precision neither counts it as a ground truth nor a detection of it as a
false positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchmetrics.detection.mean_ap import MeanAveragePrecision

from torchbricks._extras import require
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.drawing import draw_boxes
from torchbricks.bag_of_bricks.necks import create_pyramid_feature_bricks
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface
from torchbricks.errors import BrickError, MissingExtraError
from torchbricks.heads.detection import DetectionTaskHead
from torchbricks.tags import TagsLike

__all__ = [
    "BoxDecoder",
    "BoxDetectionHead",
    "BoxDetectionLoss",
    "BoxMeanAveragePrecision",
    "BrickVisualizeBoxes",
    "create_bricks_object_detection",
    "create_object_detection_head",
    "generalized_box_iou_pairs",
    "matrix_nms",
    "render_box_targets",
]


class BoxDetectionHead(nn.Module):
    """Predicts a heatmap per class and, per cell, the distances (in cells) to the four sides of a box.

    Returns heatmap logits [B, K, h, w] and distances [B, 4, h, w] (left, top, right, bottom; positive).

    Args:
        in_channels: Channels of the features.
        num_classes: Number of object classes.
        hidden_channels: Channels of the two shared 3x3 convolutions.
        prior: Initial probability of an object centre per cell; a small prior keeps early training stable.

    Example:
        >>> heatmap, distances = BoxDetectionHead(in_channels=8, num_classes=2)(torch.rand(1, 8, 4, 4))
        >>> heatmap.shape, distances.shape
        (torch.Size([1, 2, 4, 4]), torch.Size([1, 4, 4, 4]))
    """

    def __init__(self, in_channels: int, num_classes: int, hidden_channels: int = 64, prior: float = 0.01) -> None:
        super().__init__()
        self.shared = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, hidden_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.heatmap = nn.Conv2d(hidden_channels, num_classes, kernel_size=1)
        self.distances = nn.Conv2d(hidden_channels, 4, kernel_size=1)
        with torch.no_grad():
            self.heatmap.bias.fill_(float(np.log(prior / (1.0 - prior))))  # type: ignore[union-attr]

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self.shared(features)
        return self.heatmap(shared), F.softplus(self.distances(shared))


def _cell_centers(height: int, width: int, stride: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates of the cell centres, x [1, w] and y [h, 1]."""
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) + 0.5) * stride
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) * stride
    return xs.view(1, width), ys.view(height, 1)


def _distances_to_boxes(distances: torch.Tensor, stride: int) -> torch.Tensor:
    """Boxes [B, h, w, 4] in pixels from side distances [B, 4, h, w] in cells."""
    height, width = distances.shape[-2:]
    xs, ys = _cell_centers(height, width, stride, distances)
    sides = distances * stride
    return torch.stack((xs - sides[:, 0], ys - sides[:, 1], xs + sides[:, 2], ys + sides[:, 3]), dim=-1)


def generalized_box_iou_pairs(boxes: torch.Tensor, others: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and generalized IoU of boxes [..., 4] with the boxes at the same positions of `others` [..., 4].

    Example:
        >>> iou, giou = generalized_box_iou_pairs(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))
        >>> round(iou.item(), 4), round(giou.item(), 4)
        (0.3333, 0.3333)
    """
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    area_other = (others[..., 2] - others[..., 0]).clamp(min=0) * (others[..., 3] - others[..., 1]).clamp(min=0)
    top_left = torch.maximum(boxes[..., :2], others[..., :2])
    bottom_right = torch.minimum(boxes[..., 2:], others[..., 2:])
    overlap = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = area + area_other - overlap
    iou = overlap / union.clamp(min=1e-6)
    enclosing = (torch.maximum(boxes[..., 2:], others[..., 2:]) - torch.minimum(boxes[..., :2], others[..., :2])).prod(dim=-1)
    return iou, iou - (enclosing - union) / enclosing.clamp(min=1e-6)


def render_box_targets(
    boxes: torch.Tensor, labels: torch.Tensor, num_classes: int, size: tuple[int, int], stride: int, alpha: float = 0.54
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heatmap and box targets of padded boxes (label -1 is padding), computed with tensor ops only.

    Each box puts an elliptic Gaussian on its class heatmap, exactly 1 at the cell holding its centre, with
    standard deviations `alpha / 6` of its width and height. Each cell whose centre lies inside a box is assigned
    the box whose Gaussian is highest there; its regression weight is that Gaussian's value.

    Returns:
        The heatmaps [B, K, h, w], each cell's assigned box [B, h, w, 4] in pixels and its weight [B, h, w]
        (0 for cells without a box).

    Example:
        >>> heat, assigned, weight = render_box_targets(torch.tensor([[[8.0, 8, 24, 24]]]), torch.tensor([[0]]), 1, (4, 4), 8)
        >>> heat[0, 0, 2, 2].item(), assigned[0, 2, 2].tolist(), weight[0, 0, 0].item()
        (1.0, [8.0, 8.0, 24.0, 24.0], 0.0)
    """
    height, width = size
    boxes = boxes.to(torch.float32)
    if boxes.shape[1] == 0:  # a batch without any box (empty tiles): one padding box keeps the reductions defined
        boxes = boxes.new_zeros(boxes.shape[0], 1, 4)
        labels = labels.new_full((labels.shape[0], 1), -1)
    valid = labels >= 0
    centers = (boxes[..., :2] + boxes[..., 2:]) / 2 / stride  # [B, N, 2] in cells
    limits = torch.tensor([width - 1, height - 1], device=boxes.device)
    cells = torch.minimum(centers.floor().clamp(min=0).long(), limits).to(torch.float32)
    sigma = ((boxes[..., 2:] - boxes[..., :2]) / stride * alpha / 6).clamp(min=0.3)  # [B, N, 2]
    xs = torch.arange(width, device=boxes.device, dtype=torch.float32).view(1, 1, 1, width)
    ys = torch.arange(height, device=boxes.device, dtype=torch.float32).view(1, 1, height, 1)
    dx = (xs - cells[..., 0, None, None]) / sigma[..., 0, None, None]
    dy = (ys - cells[..., 1, None, None]) / sigma[..., 1, None, None]
    gaussians = torch.exp(-(dx**2 + dy**2) / 2) * valid[..., None, None]  # [B, N, h, w]
    one_hot = F.one_hot(labels.clamp(min=0), num_classes).to(torch.float32) * valid[..., None]  # [B, N, K]
    heat = (gaussians.unsqueeze(2) * one_hot[..., None, None]).amax(dim=1)
    pixel_x, pixel_y = _cell_centers(height, width, stride, boxes)
    inside = (
        (pixel_x >= boxes[..., 0, None, None])
        & (pixel_x <= boxes[..., 2, None, None])
        & (pixel_y >= boxes[..., 1, None, None])
        & (pixel_y <= boxes[..., 3, None, None])
    )
    candidates = gaussians * inside
    weight, assignment = candidates.max(dim=1)  # [B, h, w]
    assigned = torch.gather(boxes, 1, assignment.flatten(1)[..., None].expand(-1, -1, 4)).view(-1, height, width, 4)
    return heat, assigned, weight


class BoxDetectionLoss(nn.Module):
    """A focal loss on the heatmaps (CenterNet's) and a GIoU loss on the boxes of the cells inside target boxes.

    Returns (heatmap loss normalized by the number of objects, weighted box loss times `box_weight`).

    Args:
        num_classes: Number of object classes.
        stride: Stride of the heatmap relative to the image.
        box_weight: Weight of the box loss.
        alpha: Focusing exponent of the focal loss.
        beta: Down-weighting exponent for negatives near an object centre.
    """

    def __init__(self, num_classes: int, stride: int, box_weight: float = 2.0, alpha: float = 2.0, beta: float = 4.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stride = stride
        self.box_weight = box_weight
        self.alpha = alpha
        self.beta = beta

    def forward(
        self, heatmap_logits: torch.Tensor, distances: torch.Tensor, target_boxes: torch.Tensor, target_labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = heatmap_logits.shape[-2:]
        heat, assigned, weight = render_box_targets(target_boxes, target_labels, self.num_classes, (height, width), self.stride)
        probability = torch.sigmoid(heatmap_logits)
        positive = (heat >= 1.0).to(heatmap_logits.dtype)
        positive_loss = -((1 - probability) ** self.alpha) * F.logsigmoid(heatmap_logits) * positive
        negative_loss = -((1 - heat) ** self.beta) * probability**self.alpha * F.logsigmoid(-heatmap_logits) * (1 - positive)
        count = (target_labels >= 0).sum().clamp(min=1).to(heatmap_logits.dtype)
        heatmap_loss = (positive_loss.sum() + negative_loss.sum()) / count
        _, giou = generalized_box_iou_pairs(_distances_to_boxes(distances, self.stride), assigned)
        box_loss = ((1 - giou) * weight).sum() / weight.sum().clamp(min=1e-6)
        return heatmap_loss, self.box_weight * box_loss


def matrix_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float, iterations: int
) -> torch.Tensor:
    """Class-aware non-maximum suppression on score-sorted candidates with fixed shapes (it compiles and exports).

    A candidate is suppressed when a kept, higher-scoring candidate of its class overlaps it by more than
    `iou_threshold`. Each iteration settles one more link of a suppression chain (Cluster-NMS); with as many
    iterations as the longest chain the result is greedy NMS's (`torchvision.ops.batched_nms`).

    Args:
        boxes: [B, P, 4] sorted by descending score.
        scores: [B, P].
        labels: [B, P].
        iou_threshold: Overlap above which the lower-scoring box goes.
        iterations: Rounds of suppression.

    Returns:
        A keep mask [B, P].

    Example:
        >>> boxes = torch.tensor([[[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]]])
        >>> matrix_nms(boxes, torch.tensor([[0.9, 0.8, 0.7]]), torch.tensor([[0, 0, 0]]), 0.5, iterations=2).tolist()
        [[True, False, True]]
    """
    iou, _ = generalized_box_iou_pairs(boxes[:, :, None, :], boxes[:, None, :, :])  # [B, P, P]
    same_class = labels[:, :, None] == labels[:, None, :]
    higher = torch.ones_like(iou, dtype=torch.bool).triu(diagonal=1)  # [i, j]: i scores above j
    overlaps = (iou > iou_threshold) & same_class & higher
    keep = torch.ones_like(scores, dtype=torch.bool)
    for _ in range(iterations):
        keep = ~(overlaps & keep[:, :, None]).any(dim=1)
    return keep


class BoxDecoder(nn.Module):
    """Turns heatmaps and side distances into the `max_detections` best boxes per image, after top-k and NMS.

    Candidates are the cells that are the maximum of their 3x3 neighbourhood in their class heatmap; the best
    `max_detections` by score go through class-aware NMS (`matrix_nms`). Returns boxes [B, P, 4] (x_min, y_min,
    x_max, y_max in pixels), scores [B, P] and labels [B, P], sorted by score, where P = `max_detections` (or the
    number of heatmap cells, if smaller); suppressed boxes and boxes scoring below `score_threshold` get label -1,
    score 0 and box 0. Shapes are fixed, so the decoder compiles and exports.

    Args:
        stride: Stride of the heatmap relative to the image.
        max_detections: Boxes returned per image.
        score_threshold: Minimum score of a box.
        iou_threshold: Overlap above which NMS removes the lower-scoring box of a class.
        nms_iterations: Rounds of suppression (see `matrix_nms`).

    Example:
        >>> heatmap = torch.full((1, 1, 4, 4), -9.0)
        >>> heatmap[0, 0, 2, 1] = 9.0
        >>> boxes, scores, labels = BoxDecoder(stride=8, max_detections=2)(heatmap, torch.ones(1, 4, 4, 4))
        >>> boxes[0, 0].tolist(), labels[0].tolist()
        ([4.0, 12.0, 20.0, 28.0], [0, -1])
    """

    def __init__(
        self,
        stride: int,
        max_detections: int = 50,
        score_threshold: float = 0.05,
        iou_threshold: float = 0.5,
        nms_iterations: int = 8,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.max_detections = max_detections
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.nms_iterations = nms_iterations

    def forward(self, heatmap_logits: torch.Tensor, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        num_classes, height, width = heatmap_logits.shape[1:]
        heat = torch.sigmoid(heatmap_logits)
        peaks = heat * (F.max_pool2d(heat, kernel_size=3, stride=1, padding=1) == heat)
        scores, indices = torch.topk(peaks.flatten(1), k=min(self.max_detections, num_classes * height * width), dim=1)
        cells = indices % (height * width)
        labels = torch.div(indices, height * width, rounding_mode="floor")
        all_boxes = _distances_to_boxes(distances, self.stride).flatten(1, 2)  # [B, h*w, 4]
        boxes = torch.gather(all_boxes, 1, cells.unsqueeze(-1).expand(-1, -1, 4))
        keep = matrix_nms(boxes, scores, labels, self.iou_threshold, self.nms_iterations) & (scores >= self.score_threshold)
        # Dropped entries are zeroed: their order among near-equal weak scores is not stable across runtimes.
        boxes = torch.where(keep.unsqueeze(-1), boxes, torch.zeros_like(boxes))
        labels = torch.where(keep, labels, torch.full_like(labels, -1))
        return boxes, torch.where(keep, scores, torch.zeros_like(scores)), labels


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
        super().__init__(box_format="xyxy", iou_type="bbox", **kwargs)
        self.class_names = None if class_names is None else [str(name) for name in class_names]

    reported = ("map", "map_50", "map_75", "mar_100")
    """The scalar values `compute` returns: COCO mAP, mAP at IoU 0.5 and 0.75, and the recall at 100 boxes."""

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


class BrickVisualizeBoxes(BrickPerImageVisualization):
    """Draws detected boxes with their class names and scores on each image.

    Args:
        input_image: Name of the images [B, C, H, W] in [0, 1].
        boxes: Name of the boxes [B, P, 4] (x_min, y_min, x_max, y_max in pixels).
        labels: Name of the labels [B, P]; boxes labelled -1 are not drawn.
        output_name: Name of the drawn images, a list of RGB Pillow images.
        scores: Name of the scores [B, P], written beside the class names.
        class_names: Names of the classes; indices are written when None.
        min_score: Boxes scoring below it are not drawn (the decoder keeps weak boxes for the metric).
        tags: VISUALIZATION by default.

    Example:
        >>> brick = BrickVisualizeBoxes("image", "boxes", "labels", "drawn", scores="scores", class_names=["cat"])
        >>> named = {"image": torch.zeros(1, 3, 32, 32), "boxes": torch.tensor([[[4.0, 12, 28, 28]]]),
        ...          "labels": torch.tensor([[0]]), "scores": torch.tensor([[0.9]])}
        >>> brick(named)["drawn"][0].getpixel((4, 20))
        (230, 25, 75)
    """

    def __init__(
        self,
        input_image: str,
        boxes: str,
        labels: str,
        output_name: str,
        scores: str | None = None,
        class_names: Sequence[str] | None = None,
        min_score: float = 0.3,
        tags: TagsLike | None = None,
    ) -> None:
        self.class_names = None if class_names is None else list(class_names)
        self.min_score = min_score
        names = [input_image, boxes, labels] if scores is None else [input_image, boxes, labels, scores]
        super().__init__(callable=self.draw, input_names=names, output_names=[output_name], tags=tags)

    def draw(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray | None = None) -> Image.Image:
        """Draws one image's boxes."""
        labels = np.asarray(labels).copy()
        if scores is not None:
            labels[np.asarray(scores) < self.min_score] = -1
        return draw_boxes(image, boxes, labels, scores=scores, class_names=self.class_names)


def create_object_detection_head(
    num_classes: int,
    in_channels: int,
    features_name: str,
    stride: int,
    target_boxes_name: str,
    target_labels_name: str,
    hidden_channels: int = 64,
    max_detections: int = 50,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    box_weight: float = 2.0,
    image_name: str | None = None,
    class_names: Sequence[str] | None = None,
    min_drawn_score: float = 0.3,
) -> dict[str, BrickInterface]:
    """Box detection bricks, with relative names so the dict nests under any name.

    Bricks: `detect` (a `BoxDetectionHead`: `./heatmap`, `./distances`), `decode` (a `BoxDecoder`: `./boxes`,
    `./scores`, `./labels`), `loss` (`./loss_heatmap`, `./loss_box`), `mean_average_precision` (a
    `BoxMeanAveragePrecision` reporting `map`, `map_50`, ... under the head's name) and, when `image_name` is
    given, `visualize` (`./visualization`).

    Args:
        num_classes: Number of object classes.
        in_channels: Channels of the features.
        features_name: Name of the features [B, C, h, w].
        stride: Stride of the features relative to the image.
        target_boxes_name: Name of the target boxes [B, N, 4] (x_min, y_min, x_max, y_max in pixels).
        target_labels_name: Name of the target labels [B, N], -1 for padding.
        hidden_channels: Channels of the head.
        max_detections: Boxes decoded per image.
        score_threshold: Minimum score of a decoded box.
        iou_threshold: Overlap above which NMS removes a box.
        box_weight: Weight of the box loss.
        image_name: Name of the images in [0, 1] to draw on; no visualization brick when None.
        class_names: Names of the classes for the visualization and the per-class AP.
        min_drawn_score: Boxes scoring below it are not drawn.

    Example:
        >>> head = create_object_detection_head(2, 8, "features", 4, target_boxes_name="boxes", target_labels_name="labels")
        >>> model = BrickCollection({"detect": head})
        >>> model({"features": torch.rand(1, 8, 4, 4)}, tags="MODEL")["detect/boxes"].shape
        torch.Size([1, 32, 4])
    """
    return DetectionTaskHead.create(
        num_classes=num_classes,
        in_channels=in_channels,
        features_name=features_name,
        stride=stride,
        target_boxes_name=target_boxes_name,
        target_labels_name=target_labels_name,
        hidden_channels=hidden_channels,
        max_detections=max_detections,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        box_weight=box_weight,
        image_name=image_name,
        class_names=None if class_names is None else list(class_names),
        min_drawn_score=min_drawn_score,
    )


def create_bricks_object_detection(
    num_classes: int,
    backbone: nn.Module | str = "resnet18",
    num_scales: int = 3,
    image_name: str = "raw",
    target_boxes_name: str = "target_boxes",
    target_labels_name: str = "target_labels",
    hidden_channels: int = 64,
    class_names: Sequence[str] | None = None,
    weights: str | None = None,
    in_channels: int = 3,
    visualize: bool = True,
    max_detections: int = 50,
) -> BrickCollection:
    """A ready-made box detection model: preprocessor, multi-scale backbone, FPN neck and an anchor-free box head.

    Bricks: `preprocessor` (`raw` -> `normalized`), `backbone` (one `features_stride{s}` per scale), `neck`
    (-> `features` at the finest scale) and `head` (see `create_object_detection_head`: `head/boxes`,
    `head/scores`, `head/labels`, the losses, the mean average precision and `head/visualization`).

    Args:
        num_classes: Number of object classes.
        backbone: A classification network or a torchvision model name; see `create_backbone`.
        num_scales: How many backbone scales the neck merges.
        image_name: Name of the input images [B, C, H, W] in [0, 1].
        target_boxes_name: Name of the target boxes [B, N, 4].
        target_labels_name: Name of the target labels [B, N], -1 for padding.
        hidden_channels: Channels of the neck and head.
        class_names: Names of the classes for the visualization and the per-class AP.
        weights: Torchvision weights for a backbone given by name.
        in_channels: Channels of the input images.
        visualize: Include the visualization brick.
        max_detections: Boxes decoded per image.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
        >>> model = create_bricks_object_detection(num_classes=2, backbone=net, num_scales=2, hidden_channels=8)
        >>> model({"raw": torch.rand(1, 3, 32, 32)}, tags="MODEL")["head/boxes"].shape
        torch.Size([1, 50, 4])
    """
    if class_names is not None and len(class_names) != num_classes:
        raise BrickError(
            f"create_bricks_object_detection: {len(class_names)} class_names {list(class_names)} for {num_classes} classes."
        )
    feature_bricks, stride = create_pyramid_feature_bricks(
        backbone, num_scales, image_name, hidden_channels, weights, in_channels
    )
    return BrickCollection(
        {
            **feature_bricks,
            "head": create_object_detection_head(
                num_classes=num_classes,
                in_channels=hidden_channels,
                features_name="features",
                stride=stride,
                target_boxes_name=target_boxes_name,
                target_labels_name=target_labels_name,
                hidden_channels=hidden_channels,
                max_detections=max_detections,
                image_name=image_name if visualize else None,
                class_names=class_names,
            ),
        }
    )
