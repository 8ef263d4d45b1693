"""Necks: modules between a backbone and task heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from torchbricks.bag_of_bricks._backbone_factories import create_backbone, create_input_bricks
from torchbricks.bricks import BrickInterface, BrickTrainable
from torchbricks.errors import BrickError

__all__ = ["FeaturePyramidUpsampler", "create_pyramid_feature_bricks"]


class FeaturePyramidUpsampler(nn.Module):
    """Merges multi-scale features (fine to coarse) into one feature map at the finest scale, FPN style.

    Each scale is projected to `out_channels` by a 1x1 convolution; from the coarsest scale down, the running
    map is upsampled (nearest) to the next finer scale and added. A 3x3 convolution, batch norm and ReLU
    smooth the result.

    Args:
        in_channels: Channels of each input scale, fine to coarse (for example `backbone.channels`).
        out_channels: Channels of the output.

    Example:
        >>> neck = FeaturePyramidUpsampler(in_channels=[8, 16], out_channels=4)
        >>> neck(torch.rand(2, 8, 8, 8), torch.rand(2, 16, 4, 4)).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 64) -> None:
        super().__init__()
        if not in_channels:
            raise BrickError("FeaturePyramidUpsampler needs the channels of at least one scale.")
        self.in_channels = tuple(in_channels)
        self.lateral = nn.ModuleList(nn.Conv2d(channels, out_channels, kernel_size=1) for channels in in_channels)
        self.smooth = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        merged = self.lateral[-1](features[-1])
        for index in range(len(features) - 2, -1, -1):
            finer = features[index]
            merged = F.interpolate(merged, size=finer.shape[-2:], mode="nearest") + self.lateral[index](finer)
        return self.smooth(merged)


def create_pyramid_feature_bricks(
    backbone: nn.Module | str,
    num_scales: int,
    image_name: str,
    hidden_channels: int,
    weights: str | None = None,
    in_channels: int = 3,
) -> tuple[dict[str, BrickInterface], int]:
    """The `preprocessor`, multi-scale `backbone` and FPN `neck` bricks of a dense head, and the stride of `features`.

    `image_name` -> `normalized` -> one `features_stride{s}` per scale -> `features` (`hidden_channels` channels at
    the finest scale).
    """
    extractor = create_backbone(backbone, num_scales=num_scales, weights=weights, in_channels=in_channels)
    bricks: dict[str, BrickInterface] = dict(create_input_bricks(extractor, image_name, in_channels))
    bricks["neck"] = BrickTrainable(
        FeaturePyramidUpsampler(extractor.channels, out_channels=hidden_channels),
        input_names=bricks["backbone"].output_names,
        output_names=["features"],
    )
    return bricks, extractor.strides[0]
