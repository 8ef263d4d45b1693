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
from typing import TYPE_CHECKING, Any

from torchbricks.tags import LOSS, METRIC, METRIC_EXTRA, MODEL, VISUALIZATION, Stage

if TYPE_CHECKING:
    from torch.nn import ModuleDict

    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import BrickInterface

__all__ = ["METRIC_STAGES", "ModelStage", "Tag", "copy_metric_bricks", "filter_brick_types", "per_stage_brick_collections"]


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
# The adapters of the bag_of_bricks factories (`create_backbone`, `create_image_classification_head`) go here: each
# maps a 0.4.2 call onto today's strict factory and names the 0.4.2 signature in its docstring.
