"""The tag names of torchbricks 0.4.2, for code written against it: `Tag.MODEL`, `ModelStage.TRAIN`, ...

`Tag` holds the same strings as the constants in `torchbricks.tags`, and `ModelStage` *is* `Stage`, so both are
accepted wherever tags are: `collection(named_inputs, tags=ModelStage.TRAIN)`.

Example:
    >>> from torchbricks.tags import STAGE_TAGS, Stage
    >>> ModelStage.TRAIN is Stage.TRAIN
    True
    >>> sorted(STAGE_TAGS[ModelStage.EXPORT]) == [Tag.MODEL]
    True
"""

from __future__ import annotations

from torchbricks.tags import LOSS, METRIC, METRIC_EXTRA, MODEL, VISUALIZATION, Stage

__all__ = ["ModelStage", "Tag"]


class Tag:
    """The tag names as class attributes."""

    MODEL = MODEL
    LOSS = LOSS
    METRIC = METRIC
    METRIC_EXTRA = METRIC_EXTRA
    VISUALIZATION = VISUALIZATION


ModelStage = Stage
"""The model stages under their 0.4.2 name."""
