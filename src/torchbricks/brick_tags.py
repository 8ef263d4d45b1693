"""The tag names of torchbricks 0.4.2, for code written against it: `Tag.MODEL`, `ModelStage.TRAIN`, the tag set of
each stage (`TRAINING`, `VALIDATION`, `TEST`, `EXPORT`, `INFERENCE`) and `DEFAULT_MODEL_STAGE_TAGS`.

They live in `torchbricks.compat` (see there); this is their 0.4.2 import path. 0.4.2's `VALIDATION` tag set is
`compat.VALIDATION_TAGS` there (`compat` keeps the name free).
"""

from __future__ import annotations

from torchbricks.compat import (
    DEFAULT_MODEL_STAGE_TAGS,
    EXPORT,
    INFERENCE,
    TEST,
    TRAINING,
    ModelStage,
    Tag,
)
from torchbricks.compat import VALIDATION_TAGS as VALIDATION

__all__ = ["DEFAULT_MODEL_STAGE_TAGS", "EXPORT", "INFERENCE", "TEST", "TRAINING", "VALIDATION", "ModelStage", "Tag"]
