"""TorchBricks: build PyTorch models from small, decoupled, reusable bricks."""

from __future__ import annotations

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
