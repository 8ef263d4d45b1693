"""The 0.4.2 adapters: today's functions keep their strict signatures; 0.4.2 calls reach the adapters."""

from __future__ import annotations

import inspect

import pytest
import torch

from torchbricks.bag_of_bricks.backbones import create_backbone
from torchbricks.bag_of_bricks.image_classification import create_image_classification_head
from torchbricks.bag_of_bricks.task_utils import ImageClassificationInfo
from torchbricks.compat import accepting_042, create_backbone_042, create_image_classification_head_042
from torchbricks.errors import BrickError


def test_the_public_functions_have_todays_signature_only() -> None:
    assert list(inspect.signature(create_backbone).parameters) == ["model", "num_scales", "layer_names", "weights", "in_channels"]
    assert list(inspect.signature(create_image_classification_head).parameters) == [
        "num_classes", "in_channels", "features_name", "targets_name", "image_name", "class_names", "class_weights", "font_size"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "call",
    [
        lambda: create_backbone(name="resnet18", pretrained=False, small=True),
        lambda: create_backbone("resnet18", False, True),
        lambda: create_backbone("resnet18", pretrained=False, small=True),
    ],
    ids=["keywords", "positional", "name-first"],
)
def test_a_042_backbone_call_gets_the_042_backbone(call: object) -> None:
    torch.manual_seed(0)
    backbone = call()  # type: ignore[operator]
    torch.manual_seed(0)
    reference = create_backbone_042("resnet18", pretrained=False, small=True)

    images = torch.rand(1, 3, 32, 32)
    assert backbone.state_dict().keys() == reference.state_dict().keys()
    assert backbone(images).shape == reference(images).shape == (1, 512, 4, 4)


def test_a_042_backbone_call_mixed_with_todays_arguments_is_refused() -> None:
    with pytest.raises(BrickError, match="cannot be combined with weights"):
        create_backbone(name="resnet18", weights="DEFAULT")
    with pytest.raises(BrickError, match="given twice"):
        create_backbone("resnet18", False, name="resnet34")


def test_a_042_head_call_by_keyword_or_position_gets_the_042_head() -> None:
    info = ImageClassificationInfo.from_names(["cat", "dog"])

    by_keyword = create_image_classification_head(n_backbone_features=8, task_info=info, input_name="x")  # type: ignore[call-arg]
    by_position = create_image_classification_head(8, info, "x")  # type: ignore[arg-type, call-arg]

    expected = list(create_image_classification_head_042(8, info, "x"))
    assert list(by_keyword) == list(by_position) == expected == ["classifier", "loss", "metrics"]


def test_accepting_042_passes_todays_calls_through_unchanged() -> None:
    calls = []

    def today(value: int, scale: int = 2) -> int:
        return value * scale

    wrapped = accepting_042(today, lambda *args, **kwargs: "old" in kwargs, lambda **kwargs: calls.append(kwargs))

    assert wrapped(3, scale=3) == 9
    assert wrapped(old=1) is None
    assert calls == [{"old": 1}]
    assert wrapped.__name__ == "today"
