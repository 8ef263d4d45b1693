"""Backbones: classification networks turned into feature extractors with one or several output scales.

`BackboneFeatureExtractor` works on any torchvision convolutional classification network (and most plain
CNNs): it finds the last layer of every stride along the network's trunk by running one probe image
(`find_feature_layers`), then cuts the network with `torchvision.models.feature_extraction.create_feature_extractor`,
so the result is an FX graph that `torch.compile(fullgraph=True)` traces in one piece. timm networks, when timm is
installed, use timm's own `features_only` mode (`create_backbone_brick_from_timm`).

This module is the public path; the pieces live in `_feature_probe` (the feature-layer probe), `_backbone_modules` (the three
backbone modules) and `_backbone_factories` (the factories).
"""

from __future__ import annotations

from torchbricks.bag_of_bricks import _backbone_factories
from torchbricks.bag_of_bricks._backbone_factories import (
    SUPPORTED_BACKBONES,
    SUPPORTED_RESNET_BACKBONES,
    create_backbone_brick,
    create_backbone_brick_from_timm,
    create_input_bricks,
    resnet_to_brick,
)
from torchbricks.bag_of_bricks._backbone_modules import BackboneFeatureExtractor, BackboneResnet, BackboneTimm
from torchbricks.bag_of_bricks._feature_probe import FeatureLayer, find_feature_layers
from torchbricks.compat import accepting_042, create_backbone_042_call, is_backbone_042_call

create_backbone = accepting_042(_backbone_factories.create_backbone, is_backbone_042_call, create_backbone_042_call)
"""Today's `create_backbone(model, num_scales=1, layer_names=None, weights=None, in_channels=3)`; a torchbricks 0.4.2
call, `create_backbone(name, pretrained, small=False)`, gets 0.4.2's `BackboneResnet` (see `torchbricks.compat`)."""

__all__ = [
    "SUPPORTED_BACKBONES",
    "SUPPORTED_RESNET_BACKBONES",
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
