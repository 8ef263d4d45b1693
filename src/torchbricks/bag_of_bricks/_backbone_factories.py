"""Backbone factories: a backbone module or brick from a network, a torchvision name or a timm name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from torchbricks._extras import require
from torchbricks.bag_of_bricks._backbone_modules import BackboneFeatureExtractor, BackboneResnet, BackboneTimm
from torchbricks.bag_of_bricks.preprocessors import default_preprocessor
from torchbricks.bricks import BrickNotTrainable, BrickTrainable
from torchbricks.errors import BrickError, CheckpointError, did_you_mean

if TYPE_CHECKING:
    from torchvision.models import ResNet

__all__ = [
    "SUPPORTED_BACKBONES",
    "create_backbone",
    "create_backbone_brick",
    "create_backbone_brick_from_timm",
    "create_input_bricks",
    "resnet_to_brick",
]


def resnet_to_brick(resnet: ResNet, input_name: str, output_name: str) -> BrickTrainable:
    """Wraps a torchvision ResNet as a trainable backbone brick (`brick.model.n_backbone_features` channels)."""
    return BrickTrainable(BackboneResnet(resnet), input_names=[input_name], output_names=[output_name])


SUPPORTED_RESNET_BACKBONES = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]
"""The torchvision ResNets that `create_backbone(name=..., pretrained=..., small=...)` (the torchbricks 0.4.2 form) takes."""

SUPPORTED_BACKBONES = SUPPORTED_RESNET_BACKBONES
"""The names of the torchbricks 0.4.2 form of `create_backbone`; given a network or `num_scales`, any torchvision
classification model works."""


def create_backbone(
    model: nn.Module | str,
    num_scales: int = 1,
    layer_names: Sequence[str] | None = None,
    weights: str | None = None,
    in_channels: int = 3,
) -> BackboneFeatureExtractor:
    """A `BackboneFeatureExtractor` returning the last `num_scales` feature maps of a network or torchvision model.

    (The public `torchbricks.bag_of_bricks.backbones.create_backbone` also takes torchbricks 0.4.2's
    `create_backbone(name, pretrained, small)`; see `torchbricks.compat`.)

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
        if weights is not None:
            enum = models.get_model_weights(model)
            accepted = ["DEFAULT", *(entry.name for entry in enum)]
            if str(weights).removeprefix(f"{enum.__name__}.") not in accepted:  # torchvision takes both spellings
                raise CheckpointError(
                    f"create_backbone: torchvision has no weights {weights!r} for {model!r}; it has {accepted}, or give "
                    f"a weights file.{did_you_mean(str(weights), accepted)}"
                )
        try:
            network: nn.Module = models.get_model(model, weights=weights)
        except OSError as error:  # urllib's URLError is an OSError: no network, a proxy, a full disk
            raise CheckpointError(
                f"create_backbone: torchvision's {weights!r} weights for {model!r} could not be downloaded ({error}). "
                "Without a network, give a weights file saved elsewhere (model.weights=PATH) or start from scratch "
                "(model.weights=null)."
            ) from error
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
