"""Backbones: classification networks turned into feature extractors with one or several output scales.

`BackboneFeatureExtractor` works on any torchvision convolutional classification network (and most plain
CNNs): it finds the last layer of every stride along the network's trunk by running one probe image, then
cuts the network with `torchvision.models.feature_extraction.create_feature_extractor`, so the result is an
FX graph that `torch.compile(fullgraph=True)` traces in one piece. timm networks, when timm is installed, use
timm's own `features_only` mode (`create_backbone_brick_from_timm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchbricks._extras import require
from torchbricks.bag_of_bricks.preprocessors import default_preprocessor
from torchbricks.bricks import BrickNotTrainable, BrickTrainable
from torchbricks.errors import BrickError, did_you_mean

if TYPE_CHECKING:
    from torchvision.models import ResNet

__all__ = [
    "BackboneFeatureExtractor",
    "BackboneResnet",
    "BackboneTimm",
    "FeatureLayer",
    "create_backbone",
    "create_backbone_brick",
    "create_backbone_brick_from_timm",
    "create_input_bricks",
    "find_feature_layers",
    "resnet_to_brick",
]

_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


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


@dataclass(frozen=True)
class FeatureLayer:
    """A layer whose output is a feature map: its module path, channel count and stride (input size / output size)."""

    name: str
    channels: int
    stride: int


@dataclass
class _Call:
    name: str
    module: nn.Module
    in_size: int | None
    out_size: int | None
    channels: int


def _first_spatial_size(values: Any) -> int | None:
    tensor = values[0] if isinstance(values, (tuple, list)) and values else values
    if isinstance(tensor, torch.Tensor) and tensor.ndim == 4:
        return int(tensor.shape[-2])
    return None


def _probe_calls(model: nn.Module, in_channels: int, probe_size: int) -> list[_Call]:
    """Runs one probe image and records every submodule call (in the order calls finish) with its spatial sizes."""
    calls: list[_Call] = []

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            channels = int(output.shape[1]) if isinstance(output, torch.Tensor) and output.ndim == 4 else 0
            calls.append(_Call(name, module, _first_spatial_size(inputs), _first_spatial_size(output), channels))

        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules() if name]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, probe_size, probe_size))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls


def _changes_resolution(call: _Call) -> bool:
    return call.in_size is not None and call.out_size is not None and call.in_size != call.out_size


def _trunk(model: nn.Module, calls: list[_Call]) -> list[_Call]:
    """The calls along the network's trunk: children of the root, expanding any child that holds two or more
    resolution changes among its own children (a container of stages such as `features`), so every trunk
    call changes resolution at most once."""
    first_call: dict[str, _Call] = {}
    for call in calls:
        first_call.setdefault(call.name, call)

    def children_calls(prefix: str, module: nn.Module) -> list[_Call]:
        names = [f"{prefix}{name}" for name, _ in module.named_children()]
        found = [first_call[name] for name in names if name in first_call]
        return sorted(found, key=calls.index)

    def expand(prefix: str, module: nn.Module) -> list[_Call]:
        result = []
        for call in children_calls(prefix, module):
            inner = children_calls(f"{call.name}.", call.module)
            if sum(_changes_resolution(child) for child in inner) >= 2:
                result.extend(expand(f"{call.name}.", call.module))
            else:
                result.append(call)
        return result

    return expand("", model)


def find_feature_layers(model: nn.Module, in_channels: int = 3, probe_size: int = 128) -> list[FeatureLayer]:
    """The last trunk layer of each stride of a convolutional network, from fine to coarse.

    Global pooling and classifier layers are left out. The probe runs once on a zero image of
    `probe_size` x `probe_size`.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1))
        >>> find_feature_layers(net, probe_size=32)
        [FeatureLayer(name='1', channels=8, stride=2), FeatureLayer(name='2', channels=16, stride=4)]
    """
    return _feature_layers(model, _probe_calls(model, in_channels, probe_size), probe_size)


def _feature_layers(model: nn.Module, calls: list[_Call], probe_size: int) -> list[FeatureLayer]:
    last_per_stride: dict[int, FeatureLayer] = {}
    for call in _trunk(model, calls):
        if isinstance(call.module, _GLOBAL_POOLS) or call.out_size is None or call.out_size <= 1:
            continue
        stride = _stride(call.out_size, probe_size)
        last_per_stride[stride] = FeatureLayer(call.name, call.channels, stride)
    return [last_per_stride[stride] for stride in sorted(last_per_stride)]


def _stride(out_size: int, probe_size: int) -> int:
    return max(1, round(probe_size / out_size))


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
        calls = _probe_calls(model, in_channels, probe_size)
        if layer_names is None:
            found = _feature_layers(model, calls, probe_size)
            if not 1 <= num_scales <= len(found):
                raise BrickError(
                    f"BackboneFeatureExtractor: {type(model).__name__} has {len(found)} scales "
                    f"{[(layer.name, layer.stride) for layer in found]}; num_scales={num_scales} is out of range."
                )
            layers = found[-num_scales:]
        else:
            layers = _layers_by_name(model, list(layer_names), calls, probe_size)
        self.layer_names: tuple[str, ...] = tuple(layer.name for layer in layers)
        self.channels: tuple[int, ...] = tuple(layer.channels for layer in layers)
        self.strides: tuple[int, ...] = tuple(layer.stride for layer in layers)
        self.n_backbone_features: int = self.channels[-1]
        self.extractor = feature_extraction.create_feature_extractor(
            model, return_nodes={name: str(index) for index, name in enumerate(self.layer_names)}
        )
        self._single = len(self.layer_names) == 1

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        features = self.extractor(image)
        if self._single:
            return features["0"]
        return tuple(features[str(index)] for index in range(len(self.layer_names)))


def _layers_by_name(model: nn.Module, names: list[str], probed: list[_Call], probe_size: int) -> list[FeatureLayer]:
    if not names:
        raise BrickError("BackboneFeatureExtractor: layer_names is empty; give at least one layer or None.")
    calls = {call.name: call for call in probed}
    modules = [name for name, _ in model.named_modules() if name]
    layers = []
    for name in names:
        call = calls.get(name)
        if call is None:
            raise BrickError(
                f"BackboneFeatureExtractor: {type(model).__name__} has no layer {name!r} that runs."
                f"{did_you_mean(name, modules)} Available: {modules[:20]}{' ...' if len(modules) > 20 else ''}"
            )
        if call.out_size is None:
            raise BrickError(
                f"BackboneFeatureExtractor: layer {name!r} of {type(model).__name__} does not output a feature map [B, C, H, W]."
            )
        layers.append(FeatureLayer(name, call.channels, _stride(call.out_size, probe_size)))
    return layers


def create_backbone(
    model: nn.Module | str,
    num_scales: int = 1,
    layer_names: Sequence[str] | None = None,
    weights: str | None = None,
    in_channels: int = 3,
) -> BackboneFeatureExtractor:
    """A `BackboneFeatureExtractor` from a network or a torchvision model name.

    Args:
        model: A network (`torchvision.models.resnet18()`, a plain CNN) or the name of a torchvision model
            (`"resnet18"`, `"mobilenet_v3_small"`, `"convnext_tiny"`, ...).
        num_scales: How many scales to return (the coarsest ones) when `layer_names` is None.
        layer_names: The layers to return instead of the automatic choice.
        weights: Torchvision weights for a model given by name (`"DEFAULT"`, `"IMAGENET1K_V1"`).
        in_channels: Channels of the input images.

    Example:
        >>> create_backbone("resnet18", num_scales=2).strides
        (16, 32)
    """
    if isinstance(model, str):
        models = require("torchvision.models", "vision")
        available = models.list_models(module=models)
        if model not in available:
            raise BrickError(
                f"create_backbone: torchvision has no classification model {model!r}.{did_you_mean(model, available)}"
            )
        network: nn.Module = models.get_model(model, weights=weights)
    elif weights is not None:
        raise BrickError("create_backbone: weights only apply to a model given by name; load them into the module instead.")
    else:
        network = model
    return BackboneFeatureExtractor(network, layer_names=layer_names, num_scales=num_scales, in_channels=in_channels)


def create_backbone_brick(
    model: nn.Module | str,
    input_name: str,
    output_names: str | Sequence[str],
    layer_names: Sequence[str] | None = None,
    weights: str | None = None,
    trainable: bool = True,
    in_channels: int = 3,
) -> BrickTrainable | BrickNotTrainable:
    """A backbone brick from a classification network, with one output name per feature scale.

    Args:
        model: A network or a torchvision model name; see `create_backbone`.
        input_name: Name of the images [B, C, H, W].
        output_names: One name per feature map, from fine to coarse: one name gives the last scale, three the
            last three.
        layer_names: The layers to return instead of the automatic choice; as many as `output_names`.
        weights: Torchvision weights for a model given by name.
        trainable: A `BrickTrainable` when True, else a frozen `BrickNotTrainable`.
        in_channels: Channels of the input images.

    Returns:
        The brick; `brick.model` is a `BackboneFeatureExtractor` with `channels`, `strides` and
        `n_backbone_features`.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1))
        >>> brick = create_backbone_brick(net, input_name="image", output_names=["features_s2", "features_s4"])
        >>> brick.model.strides
        (2, 4)
    """
    names = [output_names] if isinstance(output_names, str) else list(output_names)
    if layer_names is not None and len(layer_names) != len(names):
        raise BrickError(
            f"create_backbone_brick: {len(names)} output_names {names} need as many layer_names, got {list(layer_names)}."
        )
    backbone = create_backbone(model, num_scales=len(names), layer_names=layer_names, weights=weights, in_channels=in_channels)
    brick_class = BrickTrainable if trainable else BrickNotTrainable
    return brick_class(backbone, input_names=[input_name], output_names=names)


def create_input_bricks(
    extractor: BackboneFeatureExtractor, image_name: str, in_channels: int, output_names: Sequence[str] | None = None
) -> dict[str, BrickNotTrainable | BrickTrainable]:
    """The `preprocessor` and `backbone` bricks every ready-made collection starts with.

    `raw` images are normalized to `normalized` and the extractor turns them into one feature map per scale,
    named `features_stride{s}` unless `output_names` says otherwise.
    """
    names = list(output_names) if output_names is not None else [f"features_stride{stride}" for stride in extractor.strides]
    return {
        "preprocessor": BrickNotTrainable(
            default_preprocessor(in_channels), input_names=[image_name], output_names=["normalized"]
        ),
        "backbone": BrickTrainable(extractor, input_names=["normalized"], output_names=names),
    }


class BackboneTimm(nn.Module):
    """A timm network created with `features_only=True`, returning its last `num_scales` feature maps.

    Attributes mirror `BackboneFeatureExtractor`: `channels`, `strides` and `n_backbone_features`.
    """

    def __init__(self, model_name: str, num_scales: int = 1, pretrained: bool = False, **kwargs: Any) -> None:
        super().__init__()
        timm = require("timm", package="timm", why="timm backbones need timm")
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


def create_backbone_brick_from_timm(
    model_name: str,
    input_name: str,
    output_names: str | Sequence[str],
    pretrained: bool = False,
    trainable: bool = True,
    **timm_kwargs: Any,
) -> BrickTrainable | BrickNotTrainable:
    """A backbone brick from a timm model name (needs `pip install timm`); see `create_backbone_brick`."""
    names = [output_names] if isinstance(output_names, str) else list(output_names)
    backbone = BackboneTimm(model_name, num_scales=len(names), pretrained=pretrained, **timm_kwargs)
    brick_class = BrickTrainable if trainable else BrickNotTrainable
    return brick_class(backbone, input_names=[input_name], output_names=names)
