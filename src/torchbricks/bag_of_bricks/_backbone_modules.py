"""The backbone modules: a torchvision ResNet without its head, any CNN cut by the FX probe, a timm network.

Each returns feature maps and says how many channels the last one has (`n_backbone_features`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchbricks._extras import require
from torchbricks.bag_of_bricks._feature_probe import feature_layers, layers_by_name, probe_calls
from torchbricks.errors import BrickError

if TYPE_CHECKING:
    from torchvision.models import ResNet

__all__ = ["BackboneFeatureExtractor", "BackboneResnet", "BackboneTimm"]


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


class BackboneFeatureExtractor(nn.Module):
    """A convolutional classification network cut into a backbone returning feature maps.

    With `layer_names`, the outputs of those layers (module paths, as in `model.named_modules()`); otherwise
    the last `num_scales` strides that `find_feature_layers` finds, from fine to coarse. One layer gives one
    tensor, several give a tuple.

    Attributes:
        layer_names: The layers returned.
        channels: Channels of each returned feature map.
        strides: Stride of each returned feature map relative to the input image.
        n_backbone_features: Channels of the last (coarsest) feature map.

    Args:
        model: The network, for example `torchvision.models.resnet18()`.
        layer_names: The layers to return; chosen automatically when None.
        num_scales: How many scales to return when `layer_names` is None.
        in_channels: Channels of the input images.
        probe_size: Side of the probe image used to measure strides and channels.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1))
        >>> backbone = BackboneFeatureExtractor(net, num_scales=2, probe_size=32)
        >>> backbone.channels, backbone.strides
        ((8, 16), (2, 4))
        >>> [features.shape for features in backbone(torch.rand(1, 3, 16, 16))]
        [torch.Size([1, 8, 8, 8]), torch.Size([1, 16, 4, 4])]
    """

    def __init__(
        self,
        model: nn.Module,
        layer_names: Sequence[str] | None = None,
        num_scales: int = 1,
        in_channels: int = 3,
        probe_size: int = 128,
    ) -> None:
        super().__init__()
        feature_extraction = require("torchvision.models.feature_extraction", "vision")
        calls = probe_calls(model, in_channels, probe_size)
        if layer_names is None:
            found = feature_layers(model, calls, probe_size)
            if not 1 <= num_scales <= len(found):
                raise BrickError(
                    f"BackboneFeatureExtractor: {type(model).__name__} has {len(found)} scales "
                    f"{[(layer.name, layer.stride) for layer in found]}; num_scales={num_scales} is out of range."
                )
            layers = found[-num_scales:]
        else:
            layers = layers_by_name(model, list(layer_names), calls, probe_size)
        self.layer_names: tuple[str, ...] = tuple(layer.name for layer in layers)
        self.channels: tuple[int, ...] = tuple(layer.channels for layer in layers)
        self.strides: tuple[int, ...] = tuple(layer.stride for layer in layers)
        self.n_backbone_features: int = self.channels[-1]
        self.extractor = feature_extraction.create_feature_extractor(
            model, return_nodes={name: str(index) for index, name in enumerate(self.layer_names)}
        )
        self._single = len(self.layer_names) == 1

    def __deepcopy__(self, memo: dict[int, Any]) -> BackboneFeatureExtractor:
        """A copy in the same mode, module by module.

        `torch.fx`'s `GraphModule` (the `extractor`) comes out of `copy.deepcopy` in training mode whatever its mode
        was, so a copied backbone in evaluation (an EMA copy, a model deep-copied for export) would silently use
        its batch statistics and dropout; the copy here keeps each module's `training` flag.
        """
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        modes = {name: module.training for name, module in self.named_modules()}
        for name, module in copied.named_modules():  # parents first: a parent's train() reaches its children
            if module.training != modes[name]:
                module.train(modes[name])  # train(), not the flag: a DualGraphModule swaps its graph
        return copied

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        features = self.extractor(image)
        if self._single:
            return features["0"]
        return tuple(features[str(index)] for index in range(len(self.layer_names)))


class BackboneTimm(nn.Module):
    """A timm network created with `features_only=True`, returning its last `num_scales` feature maps.

    Attributes mirror `BackboneFeatureExtractor`: `channels`, `strides` and `n_backbone_features`.
    """

    def __init__(self, model_name: str, num_scales: int = 1, pretrained: bool = False, **kwargs: Any) -> None:
        super().__init__()
        timm = require("timm", "timm")
        self.model = timm.create_model(model_name, pretrained=pretrained, features_only=True, **kwargs)
        channels = list(self.model.feature_info.channels())
        strides = list(self.model.feature_info.reduction())
        if not 1 <= num_scales <= len(channels):
            raise BrickError(
                f"BackboneTimm: {model_name!r} has {len(channels)} scales {strides}; num_scales={num_scales} is out of range."
            )
        self._first = len(channels) - num_scales
        self.channels: tuple[int, ...] = tuple(channels[self._first :])
        self.strides: tuple[int, ...] = tuple(strides[self._first :])
        self.n_backbone_features: int = self.channels[-1]

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        features = self.model(image)[self._first :]
        if len(features) == 1:
            return features[0]
        return tuple(features)
