"""Compatibility with torchbricks 0.4.2: what code written against it needs beyond today's API, in one place.

Today's functions keep one strict signature; an adapter here maps a 0.4.2 call onto them, and 0.4.2-only helpers
live here too. Each entry's docstring names the 0.4.2 signature it serves. The public modules of 0.4.2 keep
their paths: each imports its entries from here (`torchbricks.brick_tags.Tag` is `torchbricks.compat.Tag`).

One section per public module of 0.4.2. An entry imports what it calls inside its body, so importing this module
(done by `torchbricks.brick_tags`, which must stay free of torch) imports no section's dependencies.

Example:
    >>> from torchbricks.tags import STAGE_TAGS
    >>> ModelStage.TRAIN is Stage.TRAIN, sorted(STAGE_TAGS[ModelStage.EXPORT]) == [Tag.MODEL]
    (True, True)
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from torchbricks.errors import BrickError, did_you_mean
from torchbricks.tags import LOSS, METRIC, METRIC_EXTRA, MODEL, VISUALIZATION, Stage

if TYPE_CHECKING:
    from torch.nn import ModuleDict

    from torchbricks.bag_of_bricks._backbone_modules import BackboneResnet
    from torchbricks.bag_of_bricks.task_utils import TaskInfo
    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import BrickInterface

Arguments = ParamSpec("Arguments")
Result = TypeVar("Result")

__all__ = [
    "DEFAULT_MODEL_STAGE_TAGS",
    "EXPORT",
    "INFERENCE",
    "METRIC_STAGES",
    "TEST",
    "TRAINING",
    "VALIDATION_TAGS",
    "ModelStage",
    "Tag",
    "accepting_042",
    "copy_metric_bricks",
    "create_backbone_042",
    "create_backbone_042_call",
    "create_image_classification_head_042",
    "create_image_classification_head_042_call",
    "filter_brick_types",
    "is_backbone_042_call",
    "is_classification_head_042_call",
    "per_stage_brick_collections",
]


# --- torchbricks.brick_tags -----------------------------------------------------------------------------------------


class Tag:
    """The tag names as class attributes (0.4.2: `class Tag` with MODEL, LOSS, METRIC, METRIC_EXTRA, VISUALIZATION),
    the same strings as the constants of `torchbricks.tags`."""

    MODEL = MODEL
    LOSS = LOSS
    METRIC = METRIC
    METRIC_EXTRA = METRIC_EXTRA
    VISUALIZATION = VISUALIZATION


ModelStage = Stage
"""The model stages under their 0.4.2 name (0.4.2: `class ModelStage(Enum)` with TRAIN, VALIDATION, TEST,
INFERENCE, EXPORT); `ModelStage` *is* `Stage`, so it is accepted wherever tags are."""

TRAINING: set[str] = {MODEL, LOSS, METRIC}
"""0.4.2's tag sets per stage, with its values: code passing `tags=TEST` runs what it ran in 0.4.2 (`Stage.TEST`
also runs VISUALIZATION bricks, `Stage.INFERENCE` too)."""
VALIDATION_TAGS: set[str] = {MODEL, LOSS, METRIC}
TEST: set[str] = {MODEL, LOSS, METRIC, METRIC_EXTRA}
EXPORT: set[str] = {MODEL}
INFERENCE: set[str] = {MODEL}
DEFAULT_MODEL_STAGE_TAGS: dict[str, set[str]] = {
    Stage.TRAIN.name: TRAINING,
    Stage.VALIDATION.name: VALIDATION_TAGS,
    Stage.TEST.name: TEST,
    Stage.EXPORT.name: EXPORT,
    Stage.INFERENCE.name: INFERENCE,
}
"""0.4.2's stage name (`ModelStage.TRAIN.name`) -> its tag set."""


# --- torchbricks.brick_collection_utils: 0.4.2's per-stage helpers ----------------------------------------------------

METRIC_STAGES = (Stage.TRAIN, Stage.VALIDATION, Stage.TEST)
"""The stages `per_stage_brick_collections` gives their own metric states, as in torchbricks 0.4.2."""


def filter_brick_types(brick_collection: BrickCollection, types: type | tuple[type, ...]) -> dict[str, Any]:
    """The bricks of `brick_collection` that are instances of `types`, as a nested dict.

    0.4.2: `filter_brick_types(brick_collection: BrickCollection, types: Tuple) -> Dict[str, Any]`.

    The bricks are the same objects, under their keys and nesting; nested collections without such a brick are left
    out. The collection is not changed.

    Args:
        brick_collection: The collection to look through, nested collections included.
        types: A brick class or a tuple of them, as `isinstance` takes.

    Example:
        >>> from torch import nn
        >>> from torchmetrics.classification import MulticlassAccuracy
        >>> from torchbricks import BrickCollection, BrickMetrics, BrickMetricSingle, BrickTrainable
        >>> collection = BrickCollection({
        ...     "backbone": BrickTrainable(nn.Identity(), ["raw"], ["features"]),
        ...     "head": {"accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["features", "targets"])},
        ... })
        >>> metrics = filter_brick_types(collection, (BrickMetrics,))
        >>> metrics, metrics["head"]["accuracy"] is collection["head"]["accuracy"]  # doctest: +ELLIPSIS
        ({'head': {'accuracy': BrickMetricSingle(['MulticlassAccuracy'], ...)}}, True)
    """
    return brick_collection.map_bricks(lambda _, brick: brick if isinstance(brick, types) else None).to_dict()


def copy_metric_bricks(brick_collection: BrickCollection) -> dict[str, Any]:
    """The bricks of `brick_collection` as a nested dict in which every metric brick is a deep copy.

    0.4.2: `copy_metric_bricks(brick_collection: BrickCollection) -> Dict[str, Any]`.

    Every other brick is the same object, so a collection built from the dict shares the model's modules and
    parameters but keeps its own metric states.

    Example:
        >>> from torch import nn
        >>> from torchmetrics.classification import BinaryAccuracy
        >>> from torchbricks import BrickCollection, BrickMetricSingle, BrickTrainable
        >>> model, accuracy = BrickTrainable(nn.Identity(), ["x"], ["y"]), BrickMetricSingle(BinaryAccuracy(), ["y", "t"])
        >>> copied = copy_metric_bricks(BrickCollection({"model": model, "accuracy": accuracy}))
        >>> copied["model"] is model, copied["accuracy"] is accuracy
        (True, False)
    """
    from torchbricks.bricks import BrickMetrics

    def copy_metrics(_: str, brick: BrickInterface) -> BrickInterface:
        return copy.deepcopy(brick) if isinstance(brick, BrickMetrics) else brick

    return brick_collection.map_bricks(copy_metrics).to_dict()


def per_stage_brick_collections(brick_collection: BrickCollection) -> ModuleDict:
    """One collection per stage that keeps metrics, `TRAIN`, `VALIDATION` and `TEST`.

    0.4.2: `per_stage_brick_collections(brick_collection: BrickCollection) -> torch.nn.ModuleDict`, keyed by stage name.

    Each is built from `copy_metric_bricks(brick_collection)`: the stages share every module and parameter and
    each has its own metric states, so a training loop that summarizes the training metrics after the validation
    epoch (as Lightning orders its hooks) does not mix the two.

    Example:
        >>> from torch import nn
        >>> from torchmetrics.classification import MulticlassAccuracy
        >>> from torchbricks import BrickCollection, BrickMetrics, BrickMetricSingle, BrickTrainable
        >>> collection = BrickCollection({
        ...     "backbone": BrickTrainable(nn.Linear(2, 2), ["raw"], ["features"]),
        ...     "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["features", "targets"]),
        ... })
        >>> stages = per_stage_brick_collections(collection)
        >>> list(stages), stages["TRAIN"]["backbone"] is stages["TEST"]["backbone"]
        (['TRAIN', 'VALIDATION', 'TEST'], True)
    """
    from torch import nn

    from torchbricks.brick_collection import BrickCollection

    return nn.ModuleDict({stage.name: BrickCollection(copy_metric_bricks(brick_collection)) for stage in METRIC_STAGES})


# --- torchbricks.bag_of_bricks ----------------------------------------------------------------------------------------
# The public names 0.4.2 code calls (`torchbricks.bag_of_bricks.backbones.create_backbone`,
# `torchbricks.bag_of_bricks.image_classification.create_image_classification_head`) are today's strict functions
# wrapped by `accepting_042`: typed and documented as today's function, they pass a call of 0.4.2's form to its adapter.


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
    from torch import nn

    from torchbricks._extras import require
    from torchbricks.bag_of_bricks._backbone_factories import SUPPORTED_BACKBONES
    from torchbricks.bag_of_bricks._backbone_modules import BackboneResnet

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


def accepting_042(
    today: Callable[Arguments, Result], is_042_call: Callable[..., bool], call_042: Callable[..., Any]
) -> Callable[Arguments, Result]:
    """`today` (its signature, name and documentation), except that a call `is_042_call(*args, **kwargs)` recognises
    as torchbricks 0.4.2's (such as 0.4.2's `create_backbone(name, pretrained, small)`) is given to `call_042` instead.

    Example:
        >>> double = accepting_042(lambda x: 2 * x, lambda *args, **kwargs: "old" in kwargs, lambda old: f"0.4.2 {old}")
        >>> double(3), double(old=1)
        (6, '0.4.2 1')
    """

    @functools.wraps(today)
    def call(*args: Arguments.args, **kwargs: Arguments.kwargs) -> Result:
        if is_042_call(*args, **kwargs):
            return call_042(*args, **kwargs)
        return today(*args, **kwargs)

    return call


def is_backbone_042_call(*args: Any, **kwargs: Any) -> bool:
    """Whether a `create_backbone` call is 0.4.2's: `name`, `pretrained` or `small` given, or a bool second positional
    argument (`create_backbone("resnet18", False)`), which is never a count of scales."""
    return bool({"name", "pretrained", "small"} & set(kwargs)) or (len(args) > 1 and isinstance(args[1], bool))


def create_backbone_042_call(*args: Any, **kwargs: Any) -> BackboneResnet:
    """A 0.4.2 `create_backbone(name, pretrained, small=False)` call, positional or by keyword, checked and passed to
    `create_backbone_042`; today's arguments (`num_scales`, `layer_names`, `weights`, `in_channels`) are refused."""
    from torchbricks.bag_of_bricks._backbone_factories import SUPPORTED_BACKBONES

    names = ["name", "pretrained", "small"]
    given = dict(zip(names, args, strict=False))
    if len(args) > len(names) or set(given) & set(kwargs):
        repeated = sorted(set(given) & set(kwargs))
        raise BrickError(f"create_backbone: {repeated or 'an argument'} given twice (positionally and by keyword).")
    given.update(kwargs)
    if "model" in given and "name" not in given and isinstance(given["model"], str):
        given["name"] = given.pop("model")
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise BrickError(
            f"create_backbone: name/pretrained/small (the torchbricks 0.4.2 form) cannot be combined with {', '.join(unknown)}; "
            "use create_backbone(model, num_scales=..., weights=...) for those."
        )
    if not isinstance(given.get("name"), str):
        raise BrickError(
            f"create_backbone(name=..., pretrained=..., small=...) takes a ResNet name, got {given.get('name')!r}. "
            f"Supported: {SUPPORTED_BACKBONES}."
        )
    return create_backbone_042(given["name"], bool(given.get("pretrained", False)), bool(given.get("small", False)))


def create_image_classification_head_042(
    n_backbone_features: int, task_info: TaskInfo, input_name: str
) -> dict[str, BrickInterface]:
    """torchbricks 0.4.2's `create_image_classification_head(n_backbone_features: int, task_info: TaskInfo,
    input_name: str) -> dict[str, Brick]`.

    Bricks `classifier` (`./logits`, `./probabilities`, `./class_prediction`), `loss` (cross entropy, `./loss`) and
    `metrics` (`MeanAccuracy`, the mean recall of the classes with a true sample, `Accuracy`, micro average, and
    `ConfMat`), reading the targets named by the task info's `label_name`; no visualization.
    """
    from torchbricks.heads._registry import create_from_description, node

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
                    # the mean recall over the classes with a true sample: torchmetrics' macro average counted a
                    # class predicted but absent from the split as a recall of 0
                    "MeanAccuracy": node("torchbricks.bag_of_bricks.custom_metrics.MulticlassMeanAccuracy", num_classes=count),
                    "Accuracy": node(f"{classes}.MulticlassAccuracy", num_classes=count, average="micro"),
                    "ConfMat": node(f"{classes}.MulticlassConfusionMatrix", num_classes=count),
                },
            ),
            input_names=["./class_prediction", target_name],
        ),
    }
    return {name: create_from_description(brick) for name, brick in description.items()}


def is_classification_head_042_call(*args: Any, **kwargs: Any) -> bool:
    """Whether a call is 0.4.2's `create_image_classification_head(n_backbone_features, task_info, input_name)`:
    `n_backbone_features`, `task_info` or `input_name` given, or a `TaskInfo` second positional argument."""
    from torchbricks.bag_of_bricks.task_utils import TaskInfo

    return bool({"n_backbone_features", "task_info", "input_name"} & set(kwargs)) or (
        len(args) > 1 and isinstance(args[1], TaskInfo)
    )


def create_image_classification_head_042_call(*args: Any, **kwargs: Any) -> dict[str, BrickInterface]:
    """A 0.4.2 `create_image_classification_head(n_backbone_features, task_info, input_name)` call, positional or by
    keyword, checked and passed to `create_image_classification_head_042`."""
    from torchbricks.bag_of_bricks.task_utils import TaskInfo

    names = ["n_backbone_features", "task_info", "input_name"]
    positional = len(args) > 1 and isinstance(args[1], TaskInfo)
    given = dict(zip(names, args, strict=False)) if positional else {}
    if (args and not positional) or len(args) > len(names) or set(kwargs) - set(names) or set(given) & set(kwargs):
        raise BrickError(
            "create_image_classification_head in the torchbricks 0.4.2 form takes n_backbone_features, task_info and "
            "input_name, and nothing of today's form (num_classes, in_channels, features_name, targets_name)."
        )
    given.update(kwargs)
    missing = [name for name in names if name not in given]
    if missing:
        raise BrickError(f"create_image_classification_head in the torchbricks 0.4.2 form lacks {missing}.")
    return create_image_classification_head_042(**given)
