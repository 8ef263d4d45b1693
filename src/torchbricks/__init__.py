"""TorchBricks: build PyTorch models from small, decoupled, reusable bricks.

The public names are imported on first use (PEP 562), so `import torchbricks` and the command line's `--help`
do not pay for importing torch.
"""

# ruff: noqa: F401 (the names imported under TYPE_CHECKING are exported lazily; `__all__` is derived from `_LAZY_NAMES`)

from __future__ import annotations

from typing import TYPE_CHECKING

from torchbricks._lazy import lazy_attributes

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
        DataError,
        DuplicateOutputError,
        ExperimentExistsError,
        MissingExtraError,
        MissingInputError,
        NamedInputsTypeError,
        NoBricksSelectedError,
        NotABrickError,
        RunStoppedError,
        ShadowedInputError,
        ShapesDatasetExistsError,
        UnknownBrickError,
        UnknownMetricError,
    )
    from torchbricks.tags import LOSS, METRIC, MODEL, STAGE_TAGS, VISUALIZATION, Stage, tags_for

_LAZY_NAMES = {  # the public names: name -> the module defining it; `__all__` is derived from it
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
    "DataError": "torchbricks.errors",
    "DuplicateOutputError": "torchbricks.errors",
    "ExperimentExistsError": "torchbricks.errors",
    "LOSS": "torchbricks.tags",
    "METRIC": "torchbricks.tags",
    "MODEL": "torchbricks.tags",
    "MissingExtraError": "torchbricks.errors",
    "MissingInputError": "torchbricks.errors",
    "UnknownBrickError": "torchbricks.errors",
    "UnknownMetricError": "torchbricks.errors",
    "NamedInputsTypeError": "torchbricks.errors",
    "NoBricksSelectedError": "torchbricks.errors",
    "NotABrickError": "torchbricks.errors",
    "RunStoppedError": "torchbricks.errors",
    "STAGE_TAGS": "torchbricks.tags",
    "ShadowedInputError": "torchbricks.errors",
    "ShapesDatasetExistsError": "torchbricks.errors",
    "Stage": "torchbricks.tags",
    "VISUALIZATION": "torchbricks.tags",
    "tags_for": "torchbricks.tags",
}

__version__ = "0.5.0"

__all__ = [*sorted(_LAZY_NAMES), "__version__"]  # noqa: PLE0604 (derived from the map: one list of the public names)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_NAMES, globals())
