"""torchbricks.compat: the 0.4.2 entries live there and keep their 0.4.2 import paths; today's functions keep their
strict signatures and 0.4.2 calls reach the adapters."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest
import torch

from torchbricks import brick_collection_utils, brick_tags, compat
from torchbricks.bag_of_bricks.backbones import create_backbone
from torchbricks.bag_of_bricks.image_classification import create_image_classification_head
from torchbricks.bag_of_bricks.task_utils import ImageClassificationInfo
from torchbricks.compat import accepting_042, create_backbone_042, create_image_classification_head_042
from torchbricks.errors import BrickError


def test_the_0_4_2_import_paths_give_the_compat_objects() -> None:
    assert (brick_tags.Tag, brick_tags.ModelStage) == (compat.Tag, compat.ModelStage)
    for name in ("filter_brick_types", "copy_metric_bricks", "per_stage_brick_collections"):
        assert getattr(brick_collection_utils, name) is getattr(compat, name)


def test_every_compat_entry_names_the_0_4_2_signature_it_serves() -> None:
    functions = [getattr(compat, name) for name in compat.__all__ if callable(getattr(compat, name)) and name[0].islower()]
    assert functions
    # "0.4.2" followed by the call it serves, such as "0.4.2: `copy_metric_bricks(brick_collection: ...)`".
    assert [function.__name__ for function in functions if not re.search(r"0\.4\.2.*?`\w+\(", function.__doc__ or "", re.S)] == []


def test_importing_the_0_4_2_tag_names_imports_no_torch() -> None:
    code = "import sys, torchbricks.brick_tags; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "False"


def test_the_public_functions_have_todays_signature_only() -> None:
    assert list(inspect.signature(create_backbone).parameters) == ["model", "num_scales", "layer_names", "weights", "in_channels"]
    assert list(inspect.signature(create_image_classification_head).parameters) == [
        "num_classes", "in_channels", "features_name", "targets_name", "image_name", "class_names", "class_weights",
        "font_size", "pooling",
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
