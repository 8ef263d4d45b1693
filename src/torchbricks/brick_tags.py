"""The tag names of torchbricks 0.4.2, for code written against it: `Tag.MODEL`, `ModelStage.TRAIN`, ...

Both live in `torchbricks.compat` (see there); this is their 0.4.2 import path.
"""

from __future__ import annotations

from torchbricks.compat import ModelStage, Tag

__all__ = ["ModelStage", "Tag"]
