"""Input preprocessing modules."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocessor(nn.Module):
    """Normalizes images in [0, 1] channel by channel: `(image - mean) / std` (ImageNet statistics by default).

    With `uint8_to_float32=True` (as in torchbricks 0.4.2) the images arrive as uint8 in [0, 255] and are first
    divided by 255.

    Example:
        >>> Preprocessor(mean=(0.5,), std=(0.5,))(torch.ones(1, 1, 2, 2)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, uint8_to_float32: bool = False
    ) -> None:
        super().__init__()
        self.uint8_to_float32 = uint8_to_float32
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.uint8_to_float32:
            image = image.float() / 255.0
        return (image - self.mean) / self.std


def default_preprocessor(in_channels: int = 3) -> Preprocessor:
    """ImageNet normalization for RGB images; mean and standard deviation 0.5 for other channel counts.

    Example:
        >>> default_preprocessor(1).mean.flatten().tolist()
        [0.5]
    """
    if in_channels == 3:
        return Preprocessor()
    return Preprocessor(mean=(0.5,) * in_channels, std=(0.5,) * in_channels)
