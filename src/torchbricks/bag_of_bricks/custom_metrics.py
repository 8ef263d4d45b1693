"""Metrics torchmetrics lacks: `ConcatenatePredictionAndTarget` keeps every prediction and target of an epoch."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from torchbricks.errors import BrickError

__all__ = ["ConcatenatePredictionAndTarget"]


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
