"""What every registered head kind does, so a new kind gets these tests for free: its bricks build from its
description, its head is recognised by its outputs, and its packaged configs compose."""

from __future__ import annotations

import pytest
import torch

from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface, BrickLoss, BrickMetrics
from torchbricks.heads import find_heads, get_head, list_heads
from torchbricks.tags import Stage


@pytest.mark.parametrize("kind", list_heads())
def test_a_head_built_from_its_description_is_recognised_by_its_outputs(kind: str) -> None:
    head = get_head(kind)
    bricks = head.create(**head.example)
    collection = BrickCollection({"head": bricks})

    assert all(isinstance(brick, BrickInterface) for brick in bricks.values())
    assert find_heads(list(collection.plan(tags=Stage.INFERENCE).produced)) == {"head": kind}
    assert sum(isinstance(brick, BrickLoss) for brick in bricks.values()) == 1
    assert sum(isinstance(brick, BrickMetrics) for brick in bricks.values()) == 1


@pytest.mark.parametrize("kind", list_heads())
def test_a_head_runs_its_inference_stage_on_features_and_images_alone(kind: str) -> None:
    head = get_head(kind)
    collection = BrickCollection({"backbone_features": get_head(kind).create(**head.example)})

    outputs = collection(named_inputs={"features": torch.rand(2, 8, 4, 4), "raw": torch.rand(2, 3, 16, 16)}, tags=Stage.INFERENCE)

    assert {f"backbone_features/{name}" for name in head.outputs} <= set(outputs)


@pytest.mark.parametrize("name", sorted({name for kind in list_heads() for name in get_head(kind).packaged_configs}))
def test_every_packaged_head_config_composes_under_any_name(name: str) -> None:
    from torchbricks.configuration import compose_config

    config = compose_config(["task=detection", "data.root=unused", f"+head@model.bricks.extra={name}"])

    assert list(config.model.bricks.extra) == list(get_head(find_kind(name)).config(name))


def find_kind(name: str) -> str:
    return next(kind for kind in list_heads() if name in get_head(kind).packaged_configs)
