"""Cutting large images into overlapping tiles: the windows shared by tiled training and tiled prediction.

They live in `torchbricks._tiling`, outside this package, whose `__init__` imports torch: the torch-free ONNX runtime
(`torchbricks.deploy`, `predict --onnx --tile`) cuts its windows there too.
"""

from __future__ import annotations

from torchbricks._tiling import tile_windows

__all__ = ["tile_windows"]
