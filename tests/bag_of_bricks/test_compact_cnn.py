from __future__ import annotations

import pytest
import torch

from torchbricks.bag_of_bricks.compact_cnn import backbone_info, create_task_backbone
from torchbricks.errors import BrickError


def test_compact_cnn_backbone_gives_the_coarsest_scales_fine_to_coarse() -> None:
    backbone = create_task_backbone("compact_cnn", num_scales=4)

    features = backbone(torch.rand(1, 3, 96, 96))

    assert backbone.strides == (4, 8, 16, 32)
    assert [tuple(map_.shape[-2:]) for map_ in features] == [(24, 24), (12, 12), (6, 6), (3, 3)]
    assert [map_.shape[1] for map_ in features] == list(backbone.channels)


def test_backbone_info_describes_what_create_task_backbone_makes() -> None:
    backbone = create_task_backbone("resnet18", num_scales=2)

    assert backbone_info("resnet18", 2, "strides") == list(backbone.strides) == [16, 32]
    assert backbone_info("resnet18", 2, "channels") == list(backbone.channels)
    assert backbone_info("resnet18", 2, "names") == ["features_stride16", "features_stride32"]
    assert backbone_info("resnet18", 2, "coarsest_channels") == 512
    with pytest.raises(BrickError, match="Did you mean 'strides'"):
        backbone_info("resnet18", 2, "stride")
