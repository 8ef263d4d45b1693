"""A compact residual CNN that trains in minutes on a CPU, and a backbone factory that also takes torchvision names.

The packaged task configs (`torchbricks train task=...`) use `compact_cnn` by default, so a few hundred small
images train on two CPU cores; any torchvision classification model (`resnet18`, `resnet50`, ...) replaces it by
name (`model.backbone=resnet50`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from torchbricks._extras import require
from torchbricks.bag_of_bricks._backbone_factories import create_backbone
from torchbricks.bag_of_bricks._backbone_modules import BackboneFeatureExtractor
from torchbricks.bag_of_bricks.backbone_weights import is_weights_path, load_backbone_weights, read_state_dict
from torchbricks.errors import BrickError, CheckpointError, did_you_mean

__all__ = [
    "AUTO_WEIGHTS",
    "COMPACT_CNN",
    "PACKAGED_WEIGHTS",
    "SHIPPED_WEIGHTS",
    "CompactCNN",
    "backbone_info",
    "create_task_backbone",
    "packaged_weights",
    "shipped_weights_for",
]

COMPACT_CNN = "compact_cnn"
"""The name `create_task_backbone` gives the `CompactCNN`."""


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _ResidualStage(nn.Module):
    """A strided 3x3 convolution followed by a residual pair of 3x3 convolutions."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.down = _conv_bn_relu(in_channels, out_channels, stride=2)
        self.residual = nn.Sequential(
            _conv_bn_relu(out_channels, out_channels, stride=1),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        down = self.down(features)
        return self.relu(down + self.residual(down))


class CompactCNN(nn.Module):
    """A small residual network: a stride-2 stem and four stride-2 stages (strides 2 to 32), then a classifier.

    About 0.9 M parameters with the default widths.

    Args:
        widths: Channels of the stem and of each stage.
        num_classes: Outputs of the classifier (unused when the network serves as a backbone).
        in_channels: Channels of the input images.

    Example:
        >>> CompactCNN()(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 1000])
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 96, 128), num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(in_channels, widths[0], stride=2)
        self.stages = nn.Sequential(*(_ResidualStage(a, b) for a, b in itertools.pairwise(widths)))
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.stages(self.stem(image)).mean(dim=(2, 3)))


def create_task_backbone(
    name: str | nn.Module = COMPACT_CNN, num_scales: int = 1, weights: str | None = None, in_channels: int = 3
) -> BackboneFeatureExtractor:
    """A backbone returning `num_scales` feature maps (fine to coarse): the `CompactCNN` or a torchvision model.

    Args:
        name: `"compact_cnn"`, the name of a torchvision classification model (`"resnet18"`, `"resnet50"`) or a
            network.
        num_scales: How many of the coarsest scales to return.
        weights: A local weights file or folder (`torchbricks.bag_of_bricks.backbone_weights`: a torchvision or
            timm state dict of the same architecture, a torchbricks experiment's `bricks/` folder or its
            `bricks/backbone.pt`), torchvision weights of a torchvision model given by name (`"DEFAULT"`,
            downloaded by torchvision), the compact CNN's packaged weights by name (`PACKAGED_WEIGHTS`), or
            `"auto"`: the weights shipped in the package for this backbone (`SHIPPED_WEIGHTS`: `shapes` for the
            compact CNN), from scratch for a backbone that has none or for images of other than 3 channels.
            None: from scratch.
        in_channels: Channels of the input images.

    Raises:
        CheckpointNotFoundError: The weights file or folder does not exist.
        CheckpointError: The weights are of another architecture (the message lists the missing and unexpected
            weights) or unreadable; a name the compact CNN does not ship (`PACKAGED_WEIGHTS`), or packaged weights
            asked for another backbone; torchvision weights of a name the model does not have.

    Example:
        >>> create_task_backbone("compact_cnn", num_scales=3).strides
        (8, 16, 32)
    """
    if weights == AUTO_WEIGHTS:
        weights = shipped_weights_for(name, in_channels)
    path: str | Path | None = None
    if name == COMPACT_CNN and weights in PACKAGED_WEIGHTS:
        # a packaged name is never a folder of the working directory that happens to share it ('./shapes' is)
        path = packaged_weights(str(weights))
    elif weights is not None and is_weights_path(weights):
        path = weights
    if name == COMPACT_CNN:
        if weights is not None and path is None:
            path = packaged_weights(weights)
        network: nn.Module = CompactCNN(in_channels=in_channels)
    elif path is None:
        if weights in PACKAGED_WEIGHTS:
            raise CheckpointError(
                f"create_task_backbone: the packaged weights {weights!r} are for {COMPACT_CNN!r}, not {_name(name)!r}; "
                f"use model.backbone={COMPACT_CNN}, or give {_name(name)!r} a weights file or torchvision weights (DEFAULT)."
            )
        return create_backbone(name, num_scales=num_scales, weights=weights, in_channels=in_channels)
    elif isinstance(name, str):
        network = _torchvision_network(name)
    else:
        network = name
    state = read_state_dict(path) if path is not None else None  # before the extractor is built: a missing file fails fast
    extractor = create_backbone(network, num_scales=num_scales, in_channels=in_channels)
    if state is not None:
        source, backbone = f"The weights {str(path)!r}", f"backbone {_name(name)!r}"
        load_backbone_weights(extractor, state, network.state_dict().keys(), source=source, backbone=backbone)
    return extractor


AUTO_WEIGHTS = "auto"
"""`weights="auto"` (`model.weights=auto`, every task's default): the backbone's shipped weights, if it has any."""

PACKAGED_WEIGHTS = {"shapes": "compact_cnn_shapes.pt"}
"""Weights of the compact CNN shipped inside the package, by name (`model.weights=shapes`).

`shapes`: the backbone of a multitask run (boxes and masks) on 1,600 generated images of five forms (circle,
square, triangle, star, cross) with distractors and occlusion, made by `scripts/pretrain_shapes_backbone.py`;
saved in half precision."""


SHIPPED_WEIGHTS = {COMPACT_CNN: "shapes"}
"""Backbone name -> the packaged weights `weights="auto"` gives it; a backbone not listed starts from scratch."""


def shipped_weights_for(name: str | nn.Module, in_channels: int = 3) -> str | None:
    """What `weights="auto"` gives backbone `name`: its packaged weights (`SHIPPED_WEIGHTS`), or None (from scratch)
    for a backbone without any, a network given as a module, or images of other than 3 channels (the shipped weights
    take RGB).

    Example:
        >>> shipped_weights_for("compact_cnn"), shipped_weights_for("resnet18"), shipped_weights_for("compact_cnn", 1)
        ('shapes', None, None)
    """
    return SHIPPED_WEIGHTS.get(name) if isinstance(name, str) and in_channels == 3 else None


def packaged_weights(name: str) -> Path:
    """The file of the compact CNN's packaged weights `name` (`PACKAGED_WEIGHTS`).

    Raises:
        CheckpointError: No packaged weights have that name; the message lists the names shipped and the other
            values accepted.

    Example:
        >>> packaged_weights("shapes").name
        'compact_cnn_shapes.pt'
    """
    if name not in PACKAGED_WEIGHTS:
        raise CheckpointError(
            f"create_task_backbone: {COMPACT_CNN} has no packaged weights {name!r} (packaged: {sorted(PACKAGED_WEIGHTS)}); "
            f"give one of those, {AUTO_WEIGHTS!r} (the shipped ones), a weights file or a torchbricks experiment's "
            "bricks/ folder, or a torchvision backbone such as 'resnet18' for torchvision weights."
            f"{did_you_mean(name, [*PACKAGED_WEIGHTS, AUTO_WEIGHTS])}"
        )
    return Path(__file__).parent / "weights" / PACKAGED_WEIGHTS[name]


def _name(network: str | nn.Module) -> str:
    return network if isinstance(network, str) else type(network).__name__


def _torchvision_network(name: str) -> nn.Module:
    models = require("torchvision.models", "vision")
    available = models.list_models(module=models)
    if name not in available:
        hint = did_you_mean(name, available)
        raise BrickError(f"create_task_backbone: torchvision has no classification model {name!r}.{hint}")
    return models.get_model(name, weights=None)


@functools.lru_cache(maxsize=16)
def _probe(name: str, num_scales: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    extractor = create_task_backbone(name, num_scales=num_scales)
    return extractor.channels, extractor.strides


def backbone_info(name: str, num_scales: int, what: str) -> int | str | list[int] | list[str]:
    """Facts about the backbone `create_task_backbone(name, num_scales)` makes, for configs to interpolate.

    `what` is one of `names` (the feature names, `features_stride{s}`, fine to coarse), `channels`, `strides`,
    `finest_stride`, `coarsest_name` or `coarsest_channels`. Cached per backbone.

    Example:
        >>> backbone_info("compact_cnn", 2, "names")
        ['features_stride16', 'features_stride32']
    """
    channels, strides = _probe(str(name), int(num_scales))
    facts: dict[str, int | str | list[int] | list[str]] = {
        "names": [f"features_stride{stride}" for stride in strides],
        "channels": list(channels),
        "strides": list(strides),
        "finest_stride": strides[0],
        "coarsest_name": f"features_stride{strides[-1]}",
        "coarsest_channels": channels[-1],
    }
    if what not in facts:
        raise BrickError(f"backbone_info: unknown fact {what!r}. Available: {sorted(facts)}.{did_you_mean(what, facts)}")
    return facts[what]
