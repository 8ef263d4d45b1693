"""Backbones: classification networks turned into feature extractors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from torchbricks.bricks import BrickTrainable
from torchbricks.errors import BrickError

if TYPE_CHECKING:
    from torchvision.models import ResNet


class BackboneResnet(nn.Module):
    """A torchvision ResNet without its pooling and classifier: images [B, 3, H, W] -> features [B, C, H/32, W/32].

    `n_backbone_features` is C, the number of feature channels.
    """

    def __init__(self, resnet: ResNet) -> None:
        super().__init__()
        required = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc")
        missing = [name for name in required if not hasattr(resnet, name)]
        if missing:
            raise BrickError(f"BackboneResnet needs a torchvision ResNet; {type(resnet).__name__} lacks {missing}.")
        self.n_backbone_features: int = resnet.fc.in_features
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet_to_brick(resnet: ResNet, input_name: str, output_name: str) -> BrickTrainable:
    """Wraps a torchvision ResNet as a trainable backbone brick (`brick.model.n_backbone_features` channels)."""
    return BrickTrainable(BackboneResnet(resnet), input_names=[input_name], output_names=[output_name])
