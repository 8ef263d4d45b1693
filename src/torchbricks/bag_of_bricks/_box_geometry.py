"""Box geometry of the anchor-free detector: cell centres, side distances to boxes, pairwise (generalized) IoU,
the heatmap and box targets, and fixed-shape non-maximum suppression. Public path: `object_detection`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "cell_centers",
    "distances_to_boxes",
    "generalized_box_iou_pairs",
    "ignored_cells",
    "matrix_nms",
    "render_box_targets",
]


def cell_centers(height: int, width: int, stride: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates of the cell centres, x [1, w] and y [h, 1]."""
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) + 0.5) * stride
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) * stride
    return xs.view(1, width), ys.view(height, 1)


def distances_to_boxes(distances: torch.Tensor, stride: int) -> torch.Tensor:
    """Boxes [B, h, w, 4] in pixels from side distances [B, 4, h, w] in cells."""
    height, width = distances.shape[-2:]
    xs, ys = cell_centers(height, width, stride, distances)
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
    standard deviations `alpha / 6` of its width and height. Each cell whose centre lies inside a box, and the cell
    holding a box's centre, is assigned the box whose Gaussian is highest there; its regression weight is that
    Gaussian's value. The cell holding the centre always regresses its box (its Gaussian is 1), as the decoder reads
    the box there: a box smaller than a cell may hold no cell's centre, and a small box inside a larger one would
    otherwise be read from the larger box's regression.

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
    cells = _centre_cells(boxes, height, width, stride)
    sigma = ((boxes[..., 2:] - boxes[..., :2]) / stride * alpha / 6).clamp(min=0.3)  # [B, N, 2]
    xs = torch.arange(width, device=boxes.device, dtype=torch.float32).view(1, 1, 1, width)
    ys = torch.arange(height, device=boxes.device, dtype=torch.float32).view(1, 1, height, 1)
    dx = (xs - cells[..., 0, None, None]) / sigma[..., 0, None, None]
    dy = (ys - cells[..., 1, None, None]) / sigma[..., 1, None, None]
    gaussians = torch.exp(-(dx**2 + dy**2) / 2) * valid[..., None, None]  # [B, N, h, w]
    one_hot = F.one_hot(labels.clamp(min=0), num_classes).to(torch.float32) * valid[..., None]  # [B, N, K]
    heat = (gaussians.unsqueeze(2) * one_hot[..., None, None]).amax(dim=1)
    candidates = gaussians * _cells_inside_or_at_centre(boxes, height, width, stride)
    weight, assignment = candidates.max(dim=1)  # [B, h, w]
    assigned = torch.gather(boxes, 1, assignment.flatten(1)[..., None].expand(-1, -1, 4)).view(-1, height, width, 4)
    return heat, assigned, weight


def _centre_cells(boxes: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
    """The (x, y) cell [B, N, 2] (float) holding the centre of each box [B, N, 4] in pixels: cell i spans pixels
    [i * stride, (i + 1) * stride); a centre past the map's last cell is held by that cell."""
    centers = (boxes[..., :2] + boxes[..., 2:]) / 2 / stride
    limits = torch.tensor([width - 1, height - 1], device=boxes.device)
    return torch.minimum(centers.floor().clamp(min=0).long(), limits).to(torch.float32)


def _cells_inside_or_at_centre(boxes: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
    """Whether each cell's centre lies inside each box, or the cell holds the box's centre: bool [B, N, h, w]."""
    cells = _centre_cells(boxes, height, width, stride)
    xs = torch.arange(width, device=boxes.device, dtype=torch.float32)
    ys = torch.arange(height, device=boxes.device, dtype=torch.float32).view(height, 1)
    at_centre = (xs == cells[..., 0, None, None]) & (ys == cells[..., 1, None, None])
    return _cells_inside(boxes, height, width, stride) | at_centre


def _cells_inside(boxes: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
    """Whether each cell's centre lies inside each box: bool [B, N, h, w] of boxes [B, N, 4] in pixels."""
    pixel_x, pixel_y = cell_centers(height, width, stride, boxes)
    return (
        (pixel_x >= boxes[..., 0, None, None])
        & (pixel_x <= boxes[..., 2, None, None])
        & (pixel_y >= boxes[..., 1, None, None])
        & (pixel_y <= boxes[..., 3, None, None])
    )


def ignored_cells(
    boxes: torch.Tensor, labels: torch.Tensor, num_classes: int, size: tuple[int, int], stride: int
) -> torch.Tensor:
    """1 for each cell of the class heatmaps [B, K, h, w] whose centre lies inside an ignored box of that class (label
    `-2 - k`: a VOC difficult object, a COCO crowd, an object a tile's border cuts), or that holds the centre of one,
    else 0: the heatmap loss learns such a cell neither as the object nor as background. (An ignored box smaller
    than a cell may hold no cell's centre: the cell where a model finds it was learnt as background.)

    Example:
        >>> mask = ignored_cells(torch.tensor([[[0.0, 0, 16, 8]]]), torch.tensor([[-2 - 1]]), 2, (2, 4), 8)
        >>> mask[0, 1].tolist(), mask[0, 0].sum().item()
        ([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], 0.0)
    """
    height, width = size
    boxes = boxes.to(torch.float32)
    ignored = labels <= -2
    classes = F.one_hot((-2 - labels).clamp(min=0, max=num_classes - 1), num_classes).to(torch.float32) * ignored[..., None]
    inside = _cells_inside_or_at_centre(boxes, height, width, stride).to(torch.float32)
    return (
        (inside.unsqueeze(2) * classes[..., None, None]).amax(dim=1)
        if boxes.shape[1]
        else boxes.new_zeros(boxes.shape[0], num_classes, height, width)
    )


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
