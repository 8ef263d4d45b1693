"""The instance count head: how many objects an image holds, regressed from the coarsest features.

Trained on detection data: the true count of an image is the number of its real boxes, read from the padded
`target_labels` [B, N] (labels >= 0; padding -1 and ignored objects, -2 - k, are not counted), so the detection
data module needs no new target. Loss: smooth L1 (Huber) on the count; metric: the mean absolute error `mae`.

`torchbricks train task=detection data.root=DIR +head@model.bricks.count=count`
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.regression import MeanAbsoluteError

from torchbricks.bag_of_bricks._heatmaps import at_least_float32
from torchbricks.heads._predictions import mistakes_first, show_image
from torchbricks.heads._registry import Collected, Description, TaskHead, brick, metrics, node, register_head

__all__ = ["CountLoss", "CountMeanAbsoluteError", "CountPredictions", "CountRegressor", "CountTaskHead", "count_objects"]

_HERE = __name__


def count_objects(labels: torch.Tensor) -> torch.Tensor:
    """The real objects per image of padded labels [B, N] (label >= 0), as floats [B].

    Example:
        >>> count_objects(torch.tensor([[0, 2, -1], [-1, -1, -1]])).tolist()
        [2.0, 0.0]
    """
    return (labels >= 0).sum(dim=1).to(torch.float32)


class CountRegressor(nn.Module):
    """Pools a feature map [B, C, H, W] and regresses a count >= 0 per image [B].

    Example:
        >>> CountRegressor(in_channels=8)(torch.rand(2, 8, 4, 4)).shape
        torch.Size([2])
    """

    def __init__(self, in_channels: int, hidden_channels: int = 64) -> None:
        super().__init__()
        self.regress = nn.Sequential(
            nn.Linear(in_channels, hidden_channels), nn.ReLU(inplace=True), nn.Linear(hidden_channels, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.regress(features.mean(dim=(2, 3)))).squeeze(1)


class CountLoss(nn.Module):
    """Smooth L1 (Huber, `beta`) between the predicted counts [B] and the counts of the padded labels [B, N].

    Example:
        >>> CountLoss()(torch.tensor([2.0, 0.0]), torch.tensor([[0, 1], [-1, -1]])).item()
        0.0
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, count: torch.Tensor, target_labels: torch.Tensor) -> torch.Tensor:
        count = at_least_float32(count)  # in bfloat16 (mixed precision) a true count above 256 would be rounded
        return F.smooth_l1_loss(count, count_objects(target_labels).to(count.dtype), beta=self.beta)


class CountMeanAbsoluteError(MeanAbsoluteError):
    """torchmetrics' `MeanAbsoluteError` of the predicted counts [B] against the counts of padded labels [B, N].

    Example:
        >>> metric = CountMeanAbsoluteError()
        >>> metric.update(torch.tensor([1.5, 0.0]), torch.tensor([[0, 1], [-1, -1]]))
        >>> metric.compute().item()
        0.25
    """

    def update(self, count: torch.Tensor, target_labels: torch.Tensor) -> None:
        count = at_least_float32(count)  # in bfloat16 (mixed precision) a true count above 256 would be rounded
        super().update(count, count_objects(target_labels).to(count.dtype))


@dataclass
class CountPredictions:
    """A count head's test predictions beside the true counts: errors are the absolute differences.

    Attributes:
        head: The head's name.
        images: The input images, [N, H, W, 3] floats in [0, 1] ready to draw.
        truth: The true counts [N].
        prediction: The predicted counts [N] (real numbers).
    """

    head: str
    images: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    kind: Literal["count"] = "count"
    cells_per_sample = 1

    def errors(self) -> np.ndarray:
        """Per image: |predicted - true count|; an image counts as wrong when it is 0.5 or more (rounds wrong)."""
        return np.abs(self.prediction - self.truth) * (np.abs(self.prediction - self.truth) >= 0.5)

    def order(self) -> np.ndarray:
        """Image indices, the largest count errors first."""
        return mistakes_first(self.errors())

    def title_detail(self) -> str:
        """The mean absolute error of the section's images."""
        return f", mean absolute error {float(np.abs(self.prediction - self.truth).mean()):.2f}"

    def draw(self, cells: Iterator[Any], index: int, error: float, class_names: Sequence[str] | None) -> None:
        """Draws image `index` with `true <n>` above `pred <count>`, red when the rounded count is wrong."""
        axes = show_image(cells, self.images[index])
        caption = f"true {int(self.truth[index])}\npred {float(self.prediction[index]):.1f}"
        axes.set_title(caption, fontsize=9, color="tab:red" if error > 0 else "black")


@register_head("count")
class CountTaskHead(TaskHead):
    """Bricks `regress` (`./count`), `loss` (`./loss_count`) and `metrics` (`mae`), reading padded `target_labels`."""

    outputs = ("count",)
    example: ClassVar[dict[str, Any]] = {"in_channels": 8, "features_name": "features", "target_labels_name": "labels"}
    packaged_configs: ClassVar[dict[str, dict[str, Any]]] = {
        "count": {
            "in_channels": "${model.coarsest_channels}",
            "features_name": "${model.coarsest_features}",
            "target_labels_name": "target_labels",
            "hidden_channels": "${model.hidden_channels}",
        }
    }

    @classmethod
    def describe(
        cls, in_channels: int, features_name: str, target_labels_name: str, hidden_channels: int = 64, beta: float = 1.0
    ) -> Description:
        """Count bricks: `regress` (a `CountRegressor`: `./count`), `loss` (`CountLoss`: `./loss_count`) and `metrics`
        (`CountMeanAbsoluteError` as `mae`).

        Args:
            in_channels: Channels of the features.
            features_name: Name of the features [B, C, H, W] (the coarsest scale: a count needs the whole image).
            target_labels_name: Name of the padded target labels [B, N] whose real entries are counted.
            hidden_channels: Width of the regressor's hidden layer.
            beta: Where the smooth L1 loss turns from quadratic to linear.
        """
        regressor = node(f"{_HERE}.CountRegressor", in_channels=in_channels, hidden_channels=hidden_channels)
        return {
            "regress": brick("BrickTrainable", regressor, [features_name], ["./count"]),
            "loss": brick("BrickLoss", node(f"{_HERE}.CountLoss", beta=beta), ["./count", target_labels_name], ["./loss_count"]),
            "metrics": metrics({"mae": node(f"{_HERE}.CountMeanAbsoluteError")}, ["./count", target_labels_name]),
        }

    @classmethod
    def predictions(cls, collected: Collected) -> CountPredictions | None:
        """Predicted counts [B] beside the counts of the padded labels [B, N], per image."""
        if len(collected.values) != 2:
            return None
        truth = np.concatenate([(labels >= 0).sum(axis=1) for labels in collected.values[1]]).astype(np.float64)
        return CountPredictions(collected.head, collected.images, truth, np.concatenate(collected.values[0]).astype(np.float64))
