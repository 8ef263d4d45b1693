"""Optimizer factories for `LightningBrickCollection(create_optimizers_func=...)`, configurable with `_partial_`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["CosineWithWarmup", "create_adamw_cosine"]


class CosineWithWarmup:
    """Learning-rate factor per epoch: a linear warm-up over `warmup_epochs`, then a cosine decay to 0 at `max_epochs`.

    Example:
        >>> factor = CosineWithWarmup(max_epochs=10, warmup_epochs=1)
        >>> [round(factor(epoch), 3) for epoch in (0, 1, 5, 9)]
        [0.5, 0.992, 0.5, 0.008]
    """

    def __init__(self, max_epochs: int, warmup_epochs: int = 1) -> None:
        self.max_epochs = max(1, max_epochs)
        self.warmup_epochs = max(0, min(warmup_epochs, self.max_epochs - 1))

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        progress = (epoch - self.warmup_epochs + 0.5) / (self.max_epochs - self.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def create_adamw_cosine(
    parameters: Iterable[nn.Parameter], lr: float = 3e-3, weight_decay: float = 1e-4, max_epochs: int = 10, warmup_epochs: int = 1
) -> dict[str, Any]:
    """AdamW with a per-epoch warm-up and cosine decay (`CosineWithWarmup`), as Lightning's optimizer dict.

    Example:
        >>> config = create_adamw_cosine([nn.Parameter(torch.zeros(1))], lr=0.1, max_epochs=4)
        >>> type(config["optimizer"]).__name__, config["lr_scheduler"]["interval"]
        ('AdamW', 'epoch')
    """
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, CosineWithWarmup(max_epochs, warmup_epochs))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
