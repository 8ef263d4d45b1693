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

from torchbricks.bag_of_bricks._box_geometry import (
    distances_to_boxes,
    generalized_box_iou_pairs,
    ignored_cells,
    matrix_nms,
    render_box_targets,
)
from torchbricks.bag_of_bricks._box_metrics import BoxMeanAveragePrecision
from torchbricks.bag_of_bricks._data_parallel import divide_by_every_process, parts
from torchbricks.bag_of_bricks._heatmaps import (
    at_least_float32,
    gather_cells,
    heatmap_focal_sum,
    heatmap_peaks,
    set_prior,
)
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.drawing import draw_boxes
from torchbricks.bag_of_bricks.necks import create_pyramid_feature_bricks
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import BrickError
from torchbricks.heads._registry import head_factory
from torchbricks.heads.detection import DetectionArguments, DetectionTaskHead
from torchbricks.tags import TagsLike

__all__ = [
    "MIN_DISTANCE",
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


MIN_DISTANCE = -0.5
"""The lowest distance, in cells, from a cell's centre to a side of its box that `BoxDetectionHead` predicts.

The decoder reads each box at the cell holding its centre, which may lie anywhere in that cell: a box smaller than
the stride may not cover the cell's centre, so a side can be up to half a cell on the near side of it. With positive
distances (`min_distance` 0, which weights saved without it load with) every box had to cover its cell's centre:
boxes of 1 to 8 px at stride 8 came out off-centre and stretched (mean IoU 0.77 with the true box, mAP 0.44, at best).
"""


class BoxDetectionHead(nn.Module):
    """Predicts a heatmap per class and, per cell, the distances (in cells) to the four sides of a box.

    Returns heatmap logits [B, K, h, w] and distances [B, 4, h, w] (left, top, right, bottom from the cell's centre;
    above `MIN_DISTANCE`, so the cell holding a box's centre reaches the box however small it is).

    The lowest distance is kept with the weights (the buffer `min_distance`): weights saved without it were trained
    with positive distances and load with `min_distance` 0, so they predict the boxes they were trained to.

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

    min_distance: torch.Tensor
    state_filled_on_load = ("min_distance",)
    """State a checkpoint may lack (`torchbricks._checkpoint`): this module fills it in as it loads."""

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
        set_prior(self.heatmap, prior)
        self.register_buffer("min_distance", torch.tensor(MIN_DISTANCE))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self.shared(features)
        return self.heatmap(shared), F.softplus(self.distances(shared)) + self.min_distance

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # weights saved before the buffer existed were trained with positive distances: keep them so (as BatchNorm
        # fills in num_batches_tracked for its older checkpoints)
        state_dict.setdefault(f"{prefix}min_distance", torch.zeros((), device=self.min_distance.device))
        super()._load_from_state_dict(state_dict, prefix, *args)


class BoxDetectionLoss(nn.Module):
    """A focal loss on the heatmaps (CenterNet's) and a GIoU loss on the boxes of the cells inside target boxes and
    of the cells holding their centres (see `render_box_targets`).

    Returns (heatmap loss normalized by the number of objects, weighted box loss times `box_weight`). In training
    under DDP both are divided by the objects (the box cells' weights) of every process's batch, so that two processes
    train what one process trains on their batches together (see `torchbricks.bag_of_bricks._data_parallel`).

    Args:
        num_classes: Number of object classes.
        stride: Stride of the heatmap relative to the image.
        box_weight: Weight of the box loss.
        alpha: Focusing exponent of the focal loss.
        beta: Down-weighting exponent for negatives near an object centre.
        return_parts: Also return each loss's numerator and denominator on this batch, [2, 2] (see
            `torchbricks._conventions.LOSS_PARTS`), for an epoch's loss over the whole split.
    """

    def __init__(
        self,
        num_classes: int,
        stride: int,
        box_weight: float = 2.0,
        alpha: float = 2.0,
        beta: float = 4.0,
        return_parts: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stride = stride
        self.box_weight = box_weight
        self.alpha = alpha
        self.beta = beta
        self.return_parts = return_parts

    def forward(
        self, heatmap_logits: torch.Tensor, distances: torch.Tensor, target_boxes: torch.Tensor, target_labels: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        height, width = heatmap_logits.shape[-2:]
        heat, assigned, weight = render_box_targets(target_boxes, target_labels, self.num_classes, (height, width), self.stride)
        count = (target_labels >= 0).sum().to(heatmap_logits.dtype)
        ignored = ignored_cells(target_boxes, target_labels, self.num_classes, (height, width), self.stride)
        focal = heatmap_focal_sum(heatmap_logits, heat, self.alpha, self.beta, ignored.to(heatmap_logits.dtype))
        heatmap_loss = divide_by_every_process(focal, count, self.training, minimum=1.0)
        # in float32: in bfloat16 (mixed precision) a box side near 1000 px is a multiple of 4, and a perfect box lost GIoU
        _, giou = generalized_box_iou_pairs(distances_to_boxes(at_least_float32(distances), self.stride), assigned)
        box_error = self.box_weight * ((1 - giou) * weight).sum()
        box_loss = divide_by_every_process(box_error, weight.sum(), self.training, minimum=1e-6)
        if self.return_parts:
            return heatmap_loss, box_loss, parts((focal, count), (box_error, weight.sum()))
        return heatmap_loss, box_loss


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
        heatmap_logits, distances = at_least_float32(heatmap_logits), at_least_float32(distances)  # mixed precision
        scores, cells, labels = heatmap_peaks(heatmap_logits, self.max_detections)
        boxes = gather_cells(distances_to_boxes(distances, self.stride).permute(0, 3, 1, 2), cells).transpose(1, 2)  # [B, P, 4]
        # sides may reach past the cell's centre (`MIN_DISTANCE`): a box whose sides crossed is its middle, not a
        # reversed box (which drawing refuses); min/max leave every other box exactly as it is
        middle = (boxes[..., :2] + boxes[..., 2:]) / 2
        boxes = torch.cat((torch.minimum(boxes[..., :2], middle), torch.maximum(boxes[..., 2:], middle)), dim=-1)
        keep = matrix_nms(boxes, scores, labels, self.iou_threshold, self.nms_iterations) & (scores >= self.score_threshold)
        keep = keep & (scores > 0)  # a cell that is no peak (a threshold of 0 kept them)
        # Dropped entries are zeroed: their order among near-equal weak scores is not stable across runtimes.
        boxes = torch.where(keep.unsqueeze(-1), boxes, torch.zeros_like(boxes))
        labels = torch.where(keep, labels, torch.full_like(labels, -1))
        return boxes, torch.where(keep, scores, torch.zeros_like(scores)), labels


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


create_object_detection_head = head_factory(DetectionArguments, DetectionTaskHead, "create_object_detection_head")
"""The bricks of `torchbricks.heads.detection.DetectionTaskHead.bricks`,
of the arguments of `torchbricks.heads.detection.DetectionArguments` (see there),
with relative names so the dict nests under any name."""


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
    drawn_on = image_name if visualize else None
    targets = (target_boxes_name, target_labels_name)
    head = create_object_detection_head(num_classes, hidden_channels, "features", stride, *targets, hidden_channels,
                                        max_detections, image_name=drawn_on, class_names=class_names)  # fmt: skip
    return BrickCollection({**feature_bricks, "head": head})
