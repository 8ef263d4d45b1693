"""What the two CenterNet-style detectors (boxes in `object_detection`, points in `point_detection`) share: class
heatmaps with a prior, their peaks decoded by top-k, the focal loss on them, and reading a map at chosen cells."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RANKED_LOGIT", "TIE_STEP", "at_least_float32", "gather_cells", "heatmap_focal_sum", "heatmap_peaks", "set_prior"]


RANKED_LOGIT = 256.0
"""Logits are ranked within +-this (the sigmoid is 0 or 1 in float32 long before)."""
TIE_STEP = 2.0**-40
"""What ranking subtracts per flat cell index from a logit (in float64, whose spacing at `RANKED_LOGIT` is 2**-44),
so that equal logits rank by cell, the lower first, as onnxruntime's TopK ranks them."""


def set_prior(heatmap: nn.Conv2d, prior: float) -> None:
    """Sets the bias of the heatmap convolution so each cell starts at probability `prior` (stable early training)."""
    with torch.no_grad():
        heatmap.bias.fill_(float(np.log(prior / (1.0 - prior))))  # type: ignore[union-attr]


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32 when it is a half-precision float (bfloat16 or float16, as a head's outputs are under mixed
    precision), else itself.

    The decoders work in it: in bfloat16 a pixel coordinate of 256 to 512 is a multiple of 2 and one of 512 to 1024
    a multiple of 4, and scores near 1 are a multiple of 1/256, so under `precision=bf16-mixed` the boxes and points
    that validation and test measured were rounded by up to several pixels and their scores tied; predicting (in
    float32) gave others. Perfect boxes of 4 to 28 px on 1024 px images scored mAP 0.69 instead of 1.0.

    Example:
        >>> [at_least_float32(torch.ones(1, dtype=dtype)).dtype for dtype in (torch.bfloat16, torch.float64)]
        [torch.float32, torch.float64]
    """
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor  # no cast in an exported graph


def heatmap_peaks(heatmap_logits: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `count` strongest peaks (cells that are the maximum of their 3x3 neighbourhood in their class heatmap).

    Returns their scores [B, P], their cells [B, P] (flat index `y * w + x`) and classes [B, P], sorted by score,
    where P is `count` or the number of heatmap cells, if smaller; cells that are no peak fill the rest with score 0.

    Peaks are found and ranked on the logits, not on the probabilities: above a logit of about 17 the sigmoid is 1.0
    in float32, so a confident model gave many equal scores. Which of them `topk` kept then differed between torch
    and onnxruntime (and a plateau of equal 1.0 counted as several peaks); distinct logits rank them the same in both.
    Equal logits still occur: a region of constant input (a tile's black padding, a uniform border) gives a plateau of
    equal peaks, which an untrained head scores at its prior (0.1, above the default threshold). `torch.topk` ranks
    ties in no fixed order and onnxruntime's TopK puts the lower cell first, so the exported file gave other boxes
    and failed its check. Ties are therefore ranked by cell, the lower first, in both: the ranking key is the logit
    in float64 less `TIE_STEP` per flat index (logits clamped to +-`RANKED_LOGIT`, where `TIE_STEP` exceeds float64's
    spacing), which reorders only logits less than `TIE_STEP` x the number of cells apart (5e-8 for 3 classes at
    128 x 128 cells). A cell that is no peak scores 0, and the decoders never keep a score of 0, whatever the threshold.

    Example:
        >>> heatmap = torch.full((1, 2, 3, 3), -9.0)
        >>> heatmap[0, 1, 2, 1] = 9.0
        >>> scores, cells, labels = heatmap_peaks(heatmap, 1)
        >>> cells.tolist(), labels.tolist()
        ([[7]], [[1]])
    """
    num_classes, height, width = heatmap_logits.shape[1:]
    is_peak = F.max_pool2d(heatmap_logits, kernel_size=3, stride=1, padding=1) == heatmap_logits
    cells = num_classes * height * width
    ranked = heatmap_logits.flatten(1).double().clamp(-RANKED_LOGIT, RANKED_LOGIT)
    ranked = torch.where(is_peak.flatten(1), ranked, torch.full_like(ranked, -2 * RANKED_LOGIT))  # no peak: last
    ranked = ranked - torch.arange(cells, dtype=torch.float64, device=ranked.device) * TIE_STEP  # ties: lower cell first
    indices = torch.topk(ranked, k=min(count, cells), dim=1).indices
    logits = torch.gather(heatmap_logits.flatten(1), 1, indices)
    lowest = torch.finfo(heatmap_logits.dtype).min  # sigmoid: 0, the score a cell that is no peak has
    logits = torch.where(torch.gather(is_peak.flatten(1), 1, indices), logits, torch.full_like(logits, lowest))
    return torch.sigmoid(logits), indices % (height * width), torch.div(indices, height * width, rounding_mode="floor")


def gather_cells(maps: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """The values [B, C, P] of maps [B, C, h, w] at flat cells [B, P]."""
    return torch.gather(maps.flatten(2), 2, cells.unsqueeze(1).expand(-1, maps.shape[1], -1))


def heatmap_focal_sum(
    heatmap_logits: torch.Tensor, heat: torch.Tensor, alpha: float, beta: float, ignored: torch.Tensor | None = None
) -> torch.Tensor:
    """CenterNet's focal loss of heatmap logits against Gaussian targets `heat` (1 at the objects), summed over the
    cells (the losses divide it by their objects, see `torchbricks.bag_of_bricks._data_parallel`); cells where
    `ignored` [B, K, h, w] is 1 add no negative loss (regions that evaluation ignores).

    Example:
        >>> logits, heat = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
        >>> round(heatmap_focal_sum(logits, heat, alpha=2.0, beta=4.0).item(), 4)
        0.5307
    """
    probability = torch.sigmoid(heatmap_logits)
    positive = (heat >= 1.0).to(heatmap_logits.dtype)
    positive_loss = -((1 - probability) ** alpha) * F.logsigmoid(heatmap_logits) * positive
    negative_loss = -((1 - heat) ** beta) * probability**alpha * F.logsigmoid(-heatmap_logits) * (1 - positive)
    if ignored is not None:
        negative_loss = negative_loss * (1 - ignored)
    return positive_loss.sum() + negative_loss.sum()
