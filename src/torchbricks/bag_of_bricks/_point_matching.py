"""The matching of predicted points to true ones that the point metric and the report share: plain torch, so
`torchbricks.heads.points` uses it without importing the bricks (which import that module)."""

from __future__ import annotations

import torch

__all__ = ["matched_points"]


def matched_points(
    points: torch.Tensor, labels: torch.Tensor, target_points: torch.Tensor, target_labels: torch.Tensor, distance: float
) -> torch.Tensor:
    """Which of one image's predicted points [P, 2] (labels [P], in the order they are matched: by score) match a
    target [N, 2] (labels [N]): in turn, each takes the nearest unmatched target of its class within `distance`
    pixels, if any (the first of equally near ones). Returns a bool tensor [P]; the matched targets are as many as
    its true values. The distances are exact to float32 rounding of each difference however many the points and
    however far from the origin: `torch.cdist` computes those of more than 25 points a side through a matrix product
    by default, whose rounding moves a point 5 px from its target at 10,000 px anywhere from 0 to 6.9 px. The report
    counts its unmatched points with this function too (`torchbricks.heads.points.PointHeadPredictions`).

    Example:
        >>> matched_points(torch.tensor([[0.0, 0], [1, 0]]), torch.tensor([0, 0]), torch.tensor([[1.0, 0]]),
        ...                torch.tensor([0]), distance=2.0).tolist()
        [True, False]
    """
    distances = torch.cdist(points.float(), target_points.float(), compute_mode="donot_use_mm_for_euclid_dist")
    distances[labels[:, None] != target_labels[None, :]] = float("inf")
    matched = torch.zeros(len(target_points), dtype=torch.bool, device=points.device)
    hit = torch.zeros(len(points), dtype=torch.bool, device=points.device)
    for index, row in enumerate(distances):
        available = row.masked_fill(matched, float("inf"))
        if len(available) and available.min() <= distance:
            matched[available.argmin()] = True
            hit[index] = True
    return hit
