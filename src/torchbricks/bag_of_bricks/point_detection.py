"""Point detection, CenterNet style: a heatmap head, its decoder, loss, metric, visualization and a ready-made collection.

Each class has a heatmap at the features' stride; a point is a local maximum of its class heatmap, refined by
a predicted sub-cell offset. Targets are padded tensors so batches stack: points [B, N, 2] as (x, y) in
pixels and labels [B, N] with -1 marking padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchmetrics import Metric

from torchbricks.bag_of_bricks._data_parallel import divide_by_every_process, parts
from torchbricks.bag_of_bricks._heatmaps import (
    at_least_float32,
    gather_cells,
    heatmap_focal_sum,
    heatmap_peaks,
    set_prior,
)
from torchbricks.bag_of_bricks._point_matching import matched_points
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.custom_metrics import PER_CLASS, by_class_name, class_name_list, counted_scores
from torchbricks.bag_of_bricks.drawing import draw_points
from torchbricks.bag_of_bricks.necks import create_pyramid_feature_bricks
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import BrickError
from torchbricks.heads._registry import head_factory
from torchbricks.heads.points import PointsArguments, PointsTaskHead
from torchbricks.tags import TagsLike

__all__ = [
    "BrickVisualizePoints",
    "PointDecoder",
    "PointDetectionF1",
    "PointDetectionHead",
    "PointDetectionLoss",
    "PointDetectionScores",
    "create_bricks_point_detection",
    "create_point_detection_head",
    "matched_points",
    "render_heatmap_targets",
]


class PointDetectionHead(nn.Module):
    """Predicts a heatmap per class and a sub-cell (x, y) offset from a feature map.

    Returns heatmap logits [B, K, h, w] and offsets [B, 2, h, w] (in cells, 0 to 1 after a sigmoid).

    Args:
        in_channels: Channels of the features.
        num_classes: Number of point classes.
        hidden_channels: Channels of the shared 3x3 convolution.
        prior: Initial probability of a point per cell; a small prior keeps early training stable.

    Example:
        >>> heatmap, offsets = PointDetectionHead(in_channels=8, num_classes=2)(torch.rand(1, 8, 4, 4))
        >>> heatmap.shape, offsets.shape
        (torch.Size([1, 2, 4, 4]), torch.Size([1, 2, 4, 4]))
    """

    def __init__(self, in_channels: int, num_classes: int, hidden_channels: int = 64, prior: float = 0.01) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True))
        self.heatmap = nn.Conv2d(hidden_channels, num_classes, kernel_size=1)
        self.offsets = nn.Conv2d(hidden_channels, 2, kernel_size=1)
        set_prior(self.heatmap, prior)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self.shared(features)
        return self.heatmap(shared), torch.sigmoid(self.offsets(shared))


class PointDecoder(nn.Module):
    """Turns heatmaps and offsets into the `max_points` strongest points per image.

    A point is a cell that is the maximum of its 3x3 neighbourhood in its class heatmap. Returns points
    [B, P, 2] (x, y in pixels), scores [B, P] and labels [B, P], where P = `max_points` (or the number of
    heatmap cells, if smaller) and points scoring below `threshold` get label -1. Shapes are fixed, so the
    decoder compiles and exports.

    Args:
        stride: Stride of the heatmap relative to the image.
        max_points: Points returned per image.
        threshold: Minimum score of a point.

    Example:
        >>> heatmap = torch.full((1, 1, 4, 4), -9.0)
        >>> heatmap[0, 0, 2, 1] = 9.0
        >>> points, scores, labels = PointDecoder(stride=8, max_points=2)(heatmap, torch.full((1, 2, 4, 4), 0.5))
        >>> points[0, 0].tolist(), labels[0].tolist()
        ([12.0, 20.0], [0, -1])
    """

    def __init__(self, stride: int, max_points: int = 32, threshold: float = 0.3) -> None:
        super().__init__()
        self.stride = stride
        self.max_points = max_points
        self.threshold = threshold

    def forward(self, heatmap_logits: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        heatmap_logits, offsets = at_least_float32(heatmap_logits), at_least_float32(offsets)  # mixed precision
        width = heatmap_logits.shape[-1]
        scores, cells, labels = heatmap_peaks(heatmap_logits, self.max_points)
        offset = gather_cells(offsets, cells)  # [B, 2, P]
        x = (cells % width).to(offsets.dtype) + offset[:, 0]
        y = torch.div(cells, width, rounding_mode="floor").to(offsets.dtype) + offset[:, 1]
        points = torch.stack((x, y), dim=-1) * self.stride
        labels = torch.where((scores >= self.threshold) & (scores > 0), labels, torch.full_like(labels, -1))  # 0: no peak
        return points, scores, labels


def render_heatmap_targets(
    points: torch.Tensor, labels: torch.Tensor, num_classes: int, size: tuple[int, int], stride: int, sigma: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian heatmap targets of padded points (label -1 is padding), computed with tensor ops only.

    Returns the heatmaps [B, K, h, w] (exactly 1 at each point's cell), each point's cell [B, N, 2] (x, y),
    its sub-cell offset [B, N, 2] and a validity mask [B, N].

    Example:
        >>> points, labels = torch.tensor([[[12.0, 20.0]]]), torch.tensor([[0]])
        >>> heat, cells, offsets, valid = render_heatmap_targets(points, labels, num_classes=1, size=(4, 4), stride=8)
        >>> heat[0, 0, 2, 1].item(), cells[0, 0].tolist(), offsets[0, 0].tolist()
        (1.0, [1, 2], [0.5, 0.5])
    """
    height, width = size
    centers = points.to(torch.float32) / stride
    limits = torch.tensor([width - 1, height - 1], device=points.device)
    cells = torch.minimum(centers.floor().clamp(min=0).long(), limits)
    valid = labels >= 0
    xs = torch.arange(width, device=points.device, dtype=torch.float32)
    ys = torch.arange(height, device=points.device, dtype=torch.float32)
    dx = xs.view(1, 1, 1, width) - cells[..., 0, None, None].float()
    dy = ys.view(1, 1, height, 1) - cells[..., 1, None, None].float()
    gaussians = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)) * valid[..., None, None]  # [B, N, h, w]
    one_hot = F.one_hot(labels.clamp(min=0), num_classes).to(torch.float32) * valid[..., None]  # [B, N, K]
    heat = (gaussians.unsqueeze(2) * one_hot[..., None, None]).amax(dim=1)
    return heat, cells, centers - cells, valid


class PointDetectionLoss(nn.Module):
    """CenterNet losses: a focal loss on the heatmaps and an L1 loss on the offsets at the target points.

    Returns (heatmap loss, offset loss), both normalized by the number of target points; in training under DDP, by
    the points of every process's batch (see `torchbricks.bag_of_bricks._data_parallel`).

    Args:
        num_classes: Number of point classes.
        stride: Stride of the heatmap relative to the image.
        sigma: Spread of the Gaussian target around each point, in cells.
        alpha: Focusing exponent of the focal loss.
        beta: Down-weighting exponent for negatives near a point.
        return_parts: Also return each loss's numerator and denominator on this batch, [2, 2] (see
            `torchbricks._conventions.LOSS_PARTS`), for an epoch's loss over the whole split.
    """

    def __init__(
        self,
        num_classes: int,
        stride: int,
        sigma: float = 1.0,
        alpha: float = 2.0,
        beta: float = 4.0,
        return_parts: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stride = stride
        self.sigma = sigma
        self.alpha = alpha
        self.beta = beta
        self.return_parts = return_parts

    def forward(
        self, heatmap_logits: torch.Tensor, offsets: torch.Tensor, target_points: torch.Tensor, target_labels: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        height, width = heatmap_logits.shape[-2:]
        heat, cells, target_offsets, valid = render_heatmap_targets(
            target_points, target_labels, self.num_classes, (height, width), self.stride, self.sigma
        )
        count = valid.sum().to(heatmap_logits.dtype)
        focal = heatmap_focal_sum(heatmap_logits, heat, self.alpha, self.beta)
        heatmap_loss = divide_by_every_process(focal, count, self.training, minimum=1.0)
        predicted = gather_cells(offsets, cells[..., 1] * width + cells[..., 0]).transpose(1, 2)  # [B, N, 2]
        offset_error = ((predicted - target_offsets).abs() * valid[..., None]).sum()
        offset_loss = divide_by_every_process(offset_error, count, self.training, minimum=1.0)
        if self.return_parts:
            return heatmap_loss, offset_loss, parts((focal, count), (offset_error, count))
        return heatmap_loss, offset_loss


class PointDetectionF1(Metric):
    """F1 score of detected points: a prediction is a true positive when it lies within `distance` pixels of
    an unmatched target of the same class (greedy, in prediction order, which the decoder sorts by score; of the
    unmatched targets in reach, the nearest).

    Inputs are padded like the targets: labels of -1 are ignored. `PointDetectionScores` adds precision, recall and
    the values of each class.

    Example:
        >>> metric = PointDetectionF1(distance=2.0)
        >>> predicted, predicted_labels = torch.tensor([[[1.0, 1.0], [9.0, 9.0]]]), torch.tensor([[0, 0]])
        >>> metric.update(predicted, predicted_labels, torch.tensor([[[1.5, 1.0]]]), torch.tensor([[0]]))
        >>> round(metric.compute().item(), 3)
        0.667
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    true_positives: torch.Tensor
    false_positives: torch.Tensor
    false_negatives: torch.Tensor

    def __init__(self, distance: float = 4.0) -> None:
        super().__init__()
        self.distance = distance
        self.add_state("true_positives", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("false_positives", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("false_negatives", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(
        self, points: torch.Tensor, labels: torch.Tensor, target_points: torch.Tensor, target_labels: torch.Tensor
    ) -> None:
        for image in range(points.shape[0]):
            keep = labels[image] >= 0
            keep_target = target_labels[image] >= 0
            predicted, predicted_labels = points[image][keep], labels[image][keep]
            targets, targets_labels = target_points[image][keep_target], target_labels[image][keep_target]
            hit = matched_points(predicted, predicted_labels, targets, targets_labels, self.distance)
            self._count(predicted_labels, targets_labels, hit)

    def _count(self, predicted_labels: torch.Tensor, target_labels: torch.Tensor, hit: torch.Tensor) -> None:
        """Adds one image's counts: its predictions' labels [P], its targets' labels [N], which predictions hit [P]."""
        hits = int(hit.sum())
        self.true_positives += hits
        self.false_positives += len(predicted_labels) - hits
        self.false_negatives += len(target_labels) - hits

    def compute(self) -> torch.Tensor:
        return 2 * self.true_positives / (2 * self.true_positives + self.false_positives + self.false_negatives).clamp(min=1)


class PointDetectionScores(PointDetectionF1):
    """`PointDetectionF1` with precision and recall beside the F1, over all classes and for each class, of the same
    matching (a prediction within `distance` pixels of an unmatched target of its class, greedy by score).

    `compute` returns `f1` (the value `PointDetectionF1` computes), `precision` (true positives over predictions) and
    `recall` (true positives over targets), micro averaged: the true positives, false positives and false negatives
    summed over every image of the epoch (and every process), as listed in `reported`; and `per_class`: class name ->
    `{"precision", "recall", "f1", "support"}`, `support` the class's true points (see
    `torchbricks.bag_of_bricks.custom_metrics.counted_scores`). A ratio with nothing to divide by is undefined, NaN,
    as the other heads' per-class values write it: a class with no true point and no prediction has all three NaN
    and support 0, a class never predicted its precision NaN, a class predicted but without a true point its recall
    NaN (its precision and F1 are a measured 0).

    Args:
        num_classes: The number of point classes; labels must be below it (or negative: padding).
        distance: The matching distance in pixels.
        class_names: The name of each class, keying `per_class`; `"0"`, `"1"`, ... when None.

    Example:
        >>> metric = PointDetectionScores(num_classes=2, distance=2.0, class_names=["car", "tree"])
        >>> predicted, predicted_labels = torch.tensor([[[1.0, 1.0], [9.0, 9.0]]]), torch.tensor([[0, 0]])
        >>> metric.update(predicted, predicted_labels, torch.tensor([[[1.5, 1.0]]]), torch.tensor([[0]]))
        >>> values = metric.compute()
        >>> [round(values[key].item(), 3) for key in ("f1", "precision", "recall")]
        [0.667, 0.5, 1.0]
        >>> {key: round(value.item(), 3) for key, value in values["per_class"]["tree"].items()}
        {'precision': nan, 'recall': nan, 'f1': nan, 'support': 0}
    """

    reported = ("f1", "precision", "recall")
    """The scalar values `compute` returns (logged); `per_class` is written to `metrics.json` only."""

    class_true_positives: torch.Tensor
    class_false_positives: torch.Tensor
    class_false_negatives: torch.Tensor

    def __init__(self, num_classes: int, distance: float = 4.0, class_names: Sequence[str] | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise BrickError(f"PointDetectionScores: num_classes must be a whole number of 1 or more, got {num_classes!r}.")
        super().__init__(distance=distance)
        self.num_classes = num_classes
        self.class_names = class_name_list(class_names, num_classes, type(self).__name__)
        for name in ("class_true_positives", "class_false_positives", "class_false_negatives"):
            self.add_state(name, default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self, points: torch.Tensor, labels: torch.Tensor, target_points: torch.Tensor, target_labels: torch.Tensor
    ) -> None:
        for name, values in (("predicted labels", labels), ("target labels", target_labels)):
            if values.numel() and int(values.max()) >= self.num_classes:
                raise BrickError(
                    f"PointDetectionScores: {name} hold {int(values.max())}, expected class indices 0 .. "
                    f"{self.num_classes - 1} (or -1 for padding); is num_classes={self.num_classes} right?"
                )
        super().update(points, labels, target_points, target_labels)

    def _count(self, predicted_labels: torch.Tensor, target_labels: torch.Tensor, hit: torch.Tensor) -> None:
        super()._count(predicted_labels, target_labels, hit)
        classes = self.num_classes
        hits = torch.bincount(predicted_labels[hit].long(), minlength=classes)
        self.class_true_positives += hits
        self.class_false_positives += torch.bincount(predicted_labels.long(), minlength=classes) - hits
        self.class_false_negatives += torch.bincount(target_labels.long(), minlength=classes) - hits

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        hits = self.true_positives
        per_class = counted_scores(self.class_true_positives, self.class_false_positives, self.class_false_negatives)
        return {
            "f1": super().compute(),
            "precision": hits / (hits + self.false_positives).clamp(min=1),
            "recall": hits / (hits + self.false_negatives).clamp(min=1),
            PER_CLASS: by_class_name(self.class_names, per_class),
        }


class BrickVisualizePoints(BrickPerImageVisualization):
    """Draws detected points with their class names and scores on each image.

    Args:
        input_image: Name of the images [B, C, H, W] in [0, 1].
        points: Name of the points [B, P, 2] (x, y in pixels).
        labels: Name of the labels [B, P]; -1 points are not drawn.
        output_name: Name of the drawn images, a list of RGB Pillow images.
        scores: Name of the scores [B, P], written beside the class names.
        class_names: Names of the classes; indices are written when None.
        radius: Radius of the dots in pixels.
        tags: VISUALIZATION by default.
    """

    def __init__(
        self,
        input_image: str,
        points: str,
        labels: str,
        output_name: str,
        scores: str | None = None,
        class_names: Sequence[str] | None = None,
        radius: int = 3,
        tags: TagsLike | None = None,
    ) -> None:
        self.class_names = None if class_names is None else list(class_names)
        self.radius = radius
        names = [input_image, points, labels] if scores is None else [input_image, points, labels, scores]
        super().__init__(callable=self.draw, input_names=names, output_names=[output_name], tags=tags)

    def draw(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray, scores: np.ndarray | None = None) -> Image.Image:
        """Draws one image's points."""
        return draw_points(image, points, labels, scores=scores, class_names=self.class_names, radius=self.radius)


create_point_detection_head = head_factory(PointsArguments, PointsTaskHead, "create_point_detection_head")
"""The bricks of `torchbricks.heads.points.PointsTaskHead.bricks`,
of the arguments of `torchbricks.heads.points.PointsArguments` (see there),
with relative names so the dict nests under any name."""


def create_bricks_point_detection(
    num_classes: int,
    backbone: nn.Module | str = "resnet18",
    num_scales: int = 3,
    image_name: str = "raw",
    target_points_name: str = "target_points",
    target_labels_name: str = "target_labels",
    hidden_channels: int = 64,
    class_names: Sequence[str] | None = None,
    weights: str | None = None,
    in_channels: int = 3,
    visualize: bool = True,
) -> BrickCollection:
    """A ready-made point detection model: preprocessor, multi-scale backbone, FPN neck and point head.

    Bricks: `preprocessor` (`raw` -> `normalized`), `backbone` (one `features_stride{s}` per scale), `neck`
    (-> `features` at the finest scale) and `head` (see `create_point_detection_head`: `head/points`,
    `head/scores`, `head/labels`, the losses, the F1 metric `head/f1` and `head/visualization`).

    Args:
        num_classes: Number of point classes.
        backbone: A classification network or a torchvision model name; see `create_backbone`.
        num_scales: How many backbone scales the neck merges.
        image_name: Name of the input images [B, C, H, W] in [0, 1].
        target_points_name: Name of the target points [B, N, 2].
        target_labels_name: Name of the target labels [B, N], -1 for padding.
        hidden_channels: Channels of the neck and head.
        class_names: Names of the classes for the visualization.
        weights: Torchvision weights for a backbone given by name.
        in_channels: Channels of the input images.
        visualize: Include the visualization brick.
    """
    feature_bricks, stride = create_pyramid_feature_bricks(
        backbone, num_scales, image_name, hidden_channels, weights, in_channels
    )
    targets = (target_points_name, target_labels_name)
    drawn_on = image_name if visualize else None
    points = create_point_detection_head(num_classes, hidden_channels, "features", stride, *targets, hidden_channels,
                                         image_name=drawn_on, class_names=class_names)  # fmt: skip
    return BrickCollection({**feature_bricks, "head": points})
