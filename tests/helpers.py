"""Small modules shared by the core tests."""

from __future__ import annotations

import torch
from torch import nn


class AddConstant(nn.Module):
    """Adds a constant to the sum of its inputs and counts its calls."""

    def __init__(self, constant: float = 1.0) -> None:
        super().__init__()
        self.constant = constant
        self.calls = 0

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.stack(tensors).sum(0) + self.constant


class Split(nn.Module):
    """Returns two values: the input and its negation."""

    def forward(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tensor, -tensor
