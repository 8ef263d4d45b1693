"""Adapters for code written against torchbricks 0.4.2, beside today's functions, which keep one strict signature.

Each adapter is documented with the 0.4.2 signature it serves. The public paths 0.4.2 code imports
(`torchbricks.bag_of_bricks.backbones.create_backbone`,
`torchbricks.bag_of_bricks.image_classification.create_image_classification_head`) are the `*_any_form`
functions here: they pass a call of today's form to today's function and a call of 0.4.2's form to its adapter.

(Section: `bag_of_bricks`. Other 0.4.2 adapters may join this module.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from torch import nn

from torchbricks._extras import require
from torchbricks.bag_of_bricks._backbone_factories import SUPPORTED_BACKBONES, create_backbone
from torchbricks.bag_of_bricks._backbone_modules import BackboneFeatureExtractor, BackboneResnet
from torchbricks.bag_of_bricks.task_utils import TaskInfo
from torchbricks.bricks import BrickInterface
from torchbricks.errors import BrickError, did_you_mean
from torchbricks.heads._registry import create_from_description, node
from torchbricks.heads.classification import create_classification_head

__all__ = [
    "create_backbone_042",
    "create_backbone_any_form",
    "create_image_classification_head_042",
    "create_image_classification_head_any_form",
]

# --- bag_of_bricks -----------------------------------------------------------------------------------------------


def create_backbone_042(name: str, pretrained: bool = False, small: bool = False) -> BackboneResnet:
    """torchbricks 0.4.2's `create_backbone(name: str, pretrained: bool, small: bool = False) -> BackboneResnet`.

    A `BackboneResnet` of one of `SUPPORTED_BACKBONES` returning the last feature map; ImageNet weights (torchvision's
    `"DEFAULT"`) when `pretrained`; `small=True` gives the CIFAR-sized stem (a 3x3 stride-1 first convolution and no
    max pooling, so 32x32 images keep a 4x4 feature map).

    Example:
        >>> import torch
        >>> create_backbone_042("resnet18", pretrained=False, small=True)(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 512, 4, 4])
    """
    if name not in SUPPORTED_BACKBONES:
        raise BrickError(
            f"create_backbone: backbone {name!r} is not supported by the name/pretrained/small form. "
            f"Supported: {SUPPORTED_BACKBONES}.{did_you_mean(str(name), SUPPORTED_BACKBONES)}"
        )
    models = require("torchvision.models", "vision")
    network = models.get_model(name, weights="DEFAULT" if pretrained else None)
    if small:
        stem_channels = network.conv1.out_channels
        network.conv1 = nn.Conv2d(3, stem_channels, kernel_size=3, stride=1, padding=1, bias=False)
        network.maxpool = nn.Identity()
    return BackboneResnet(network)


@overload
def create_backbone_any_form(
    model: nn.Module | str,
    num_scales: int = 1,
    layer_names: Sequence[str] | None = None,
    weights: str | None = None,
    in_channels: int = 3,
) -> BackboneFeatureExtractor: ...


@overload
def create_backbone_any_form(
    model: None = None, *, name: str, pretrained: bool = False, small: bool = False
) -> BackboneResnet: ...


@overload
def create_backbone_any_form(model: str, *, pretrained: bool, small: bool = False) -> BackboneResnet: ...


def create_backbone_any_form(
    model: Any = None, num_scales: Any = 1, layer_names: Any = None, *args: Any, **kwargs: Any
) -> BackboneFeatureExtractor | BackboneResnet:
    """`torchbricks.bag_of_bricks.backbones.create_backbone`: today's `create_backbone(model, num_scales, ...)`, or
    0.4.2's `create_backbone(name, pretrained, small=False)` (`create_backbone_042`) when called with `name`,
    `pretrained` or `small`, or positionally with a bool second argument (never a count of scales).

    Example:
        >>> create_backbone_any_form("resnet18", num_scales=2).strides
        (16, 32)
        >>> import torch
        >>> create_backbone_any_form(name="resnet18", pretrained=False, small=True)(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 512, 4, 4])
    """
    old = {key: kwargs.pop(key) for key in ("name", "pretrained", "small") if key in kwargs}
    if isinstance(num_scales, bool):  # 0.4.2 positionally: ("resnet18", False) or ("resnet18", False, True)
        if "pretrained" in old:
            raise BrickError("create_backbone: pretrained given twice (positionally and by keyword).")
        old["pretrained"], num_scales = num_scales, 1
        if isinstance(layer_names, bool):
            if "small" in old:
                raise BrickError("create_backbone: small given twice (positionally and by keyword).")
            old["small"], layer_names = layer_names, None
    if not old:
        if model is None:
            raise BrickError("create_backbone needs a model: a network or a torchvision model name such as 'resnet18'.")
        return create_backbone(model, num_scales, layer_names, *args, **kwargs)
    name = old.pop("name", None)
    if name is None and isinstance(model, str):
        name, model = model, None
    if model is not None or name is None:
        raise BrickError(
            "create_backbone(name=..., pretrained=..., small=...) takes a ResNet name, not a network "
            f"(got model={model!r}, name={name!r}). Supported: {SUPPORTED_BACKBONES}."
        )
    if num_scales != 1 or layer_names is not None or args or kwargs:
        raise BrickError(
            "create_backbone: name/pretrained/small (the torchbricks 0.4.2 form) cannot be combined with num_scales, "
            "layer_names, weights or in_channels; use create_backbone(model, num_scales=..., weights=...) for those."
        )
    return create_backbone_042(name, bool(old.get("pretrained", False)), bool(old.get("small", False)))


def create_image_classification_head_042(
    n_backbone_features: int, task_info: TaskInfo, input_name: str
) -> dict[str, BrickInterface]:
    """torchbricks 0.4.2's `create_image_classification_head(n_backbone_features: int, task_info: TaskInfo,
    input_name: str) -> dict[str, Brick]`.

    Bricks `classifier` (`./logits`, `./probabilities`, `./class_prediction`), `loss` (cross entropy, `./loss`) and
    `metrics` (`MeanAccuracy`, macro average, `Accuracy`, micro average, and `ConfMat`), reading the targets named
    by the task info's `label_name`; no visualization.
    """
    class_names = getattr(task_info, "class_names", None)
    target_name = getattr(task_info, "label_name", None)
    if not isinstance(class_names, list) or not isinstance(target_name, str):
        raise BrickError(
            f"create_image_classification_head: task_info must have class_names and label_name (an "
            f"ImageClassificationInfo), got {task_info!r}."
        )
    classes = "torchmetrics.classification"
    count = len(class_names)
    description = {
        "classifier": node(
            "torchbricks.bricks.BrickTrainable",
            model=node(
                "torchbricks.bag_of_bricks.image_classification.ImageClassifier",
                num_classes=count,
                n_features=n_backbone_features,
            ),
            input_names=[input_name],
            output_names=["./logits", "./probabilities", "./class_prediction"],
        ),
        "loss": node(
            "torchbricks.bricks.BrickLoss",
            model=node("torch.nn.CrossEntropyLoss"),
            input_names=["./logits", target_name],
            output_names=["./loss"],
        ),
        "metrics": node(
            "torchbricks.bricks.BrickMetrics",
            metric_collection=node(
                "torchmetrics.MetricCollection",
                metrics={
                    "MeanAccuracy": node(f"{classes}.MulticlassAccuracy", num_classes=count, average="macro"),
                    "Accuracy": node(f"{classes}.MulticlassAccuracy", num_classes=count, average="micro"),
                    "ConfMat": node(f"{classes}.MulticlassConfusionMatrix", num_classes=count),
                },
            ),
            input_names=["./class_prediction", target_name],
        ),
    }
    return {name: create_from_description(brick) for name, brick in description.items()}


@overload
def create_image_classification_head_any_form(
    num_classes: int,
    in_channels: int,
    features_name: str,
    targets_name: str,
    image_name: str | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, BrickInterface]: ...


@overload
def create_image_classification_head_any_form(
    *, n_backbone_features: int, task_info: TaskInfo, input_name: str
) -> dict[str, BrickInterface]: ...


def create_image_classification_head_any_form(*args: Any, **kwargs: Any) -> dict[str, BrickInterface]:
    """`torchbricks.bag_of_bricks.image_classification.create_image_classification_head`: today's
    `(num_classes, in_channels, features_name, targets_name, image_name=None, class_names=None)`
    (`torchbricks.heads.classification.create_classification_head`), or 0.4.2's `(n_backbone_features, task_info,
    input_name)` (`create_image_classification_head_042`), by keyword or with a `TaskInfo` second argument."""
    old_keys = {"n_backbone_features", "task_info", "input_name"}
    positional_042 = len(args) >= 2 and isinstance(args[1], TaskInfo)
    if not positional_042 and not old_keys & set(kwargs):
        return create_classification_head(*args, **kwargs)
    names = ["n_backbone_features", "task_info", "input_name"]
    given = dict(zip(names, args, strict=False)) if positional_042 else {}
    if (not positional_042 and args) or len(args) > 3 or set(kwargs) - old_keys or set(given) & set(kwargs):
        raise BrickError(
            "create_image_classification_head in the torchbricks 0.4.2 form takes n_backbone_features, task_info and "
            "input_name, and nothing of today's form (num_classes, in_channels, features_name, targets_name)."
        )
    given.update(kwargs)
    missing = [name for name in names if name not in given]
    if missing:
        raise BrickError(f"create_image_classification_head in the torchbricks 0.4.2 form lacks {missing}.")
    return create_image_classification_head_042(**given)
