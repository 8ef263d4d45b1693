"""TorchBricks: build PyTorch models from small, decoupled, reusable bricks.

The public names are imported on first use (PEP 562), so `import torchbricks` and the command line's `--help`
do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below are imported on first use, see __getattr__
    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import (
        BrickAccumulator,
        BrickInterface,
        BrickLoss,
        BrickMetrics,
        BrickMetricSingle,
        BrickModule,
        BrickNotTrainable,
        BrickTensorCache,
        BrickTrainable,
    )
    from torchbricks.errors import (
        BrickBuildError,
        BrickCycleError,
        BrickError,
        BrickNameError,
        BrickOutputError,
        CheckpointError,
        CheckpointExistsError,
        CheckpointNotADirectoryError,
        CheckpointNotFoundError,
        ConfigError,
        DuplicateOutputError,
        MissingExtraError,
        MissingInputError,
        NamedInputsTypeError,
        NoBricksSelectedError,
        NotABrickError,
    )
    from torchbricks.tags import LOSS, METRIC, MODEL, STAGE_TAGS, VISUALIZATION, Stage, tags_for

_LAZY_NAMES = {
    "BrickAccumulator": "torchbricks.bricks",
    "BrickBuildError": "torchbricks.errors",
    "BrickCollection": "torchbricks.brick_collection",
    "BrickCycleError": "torchbricks.errors",
    "BrickError": "torchbricks.errors",
    "BrickInterface": "torchbricks.bricks",
    "BrickLoss": "torchbricks.bricks",
    "BrickMetricSingle": "torchbricks.bricks",
    "BrickMetrics": "torchbricks.bricks",
    "BrickModule": "torchbricks.bricks",
    "BrickNameError": "torchbricks.errors",
    "BrickNotTrainable": "torchbricks.bricks",
    "BrickOutputError": "torchbricks.errors",
    "BrickTensorCache": "torchbricks.bricks",
    "BrickTrainable": "torchbricks.bricks",
    "CheckpointError": "torchbricks.errors",
    "CheckpointExistsError": "torchbricks.errors",
    "CheckpointNotADirectoryError": "torchbricks.errors",
    "CheckpointNotFoundError": "torchbricks.errors",
    "ConfigError": "torchbricks.errors",
    "DuplicateOutputError": "torchbricks.errors",
    "LOSS": "torchbricks.tags",
    "METRIC": "torchbricks.tags",
    "MODEL": "torchbricks.tags",
    "MissingExtraError": "torchbricks.errors",
    "MissingInputError": "torchbricks.errors",
    "NamedInputsTypeError": "torchbricks.errors",
    "NoBricksSelectedError": "torchbricks.errors",
    "NotABrickError": "torchbricks.errors",
    "STAGE_TAGS": "torchbricks.tags",
    "Stage": "torchbricks.tags",
    "VISUALIZATION": "torchbricks.tags",
    "tags_for": "torchbricks.tags",
}

__version__ = "0.5.0"

__all__ = [
    "LOSS",
    "METRIC",
    "MODEL",
    "STAGE_TAGS",
    "VISUALIZATION",
    "BrickAccumulator",
    "BrickBuildError",
    "BrickCollection",
    "BrickCycleError",
    "BrickError",
    "BrickInterface",
    "BrickLoss",
    "BrickMetricSingle",
    "BrickMetrics",
    "BrickModule",
    "BrickNameError",
    "BrickNotTrainable",
    "BrickOutputError",
    "BrickTensorCache",
    "BrickTrainable",
    "CheckpointError",
    "CheckpointExistsError",
    "CheckpointNotADirectoryError",
    "CheckpointNotFoundError",
    "ConfigError",
    "DuplicateOutputError",
    "MissingExtraError",
    "MissingInputError",
    "NamedInputsTypeError",
    "NoBricksSelectedError",
    "NotABrickError",
    "Stage",
    "__version__",
    "tags_for",
]


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'torchbricks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES})
