"""Cutting large images into overlapping tiles: the windows shared by tiled training and tiled prediction.

Plain Python (no torch), so both the data pipeline and the torch-free ONNX runtime can use it; the public path is
`torchbricks.datasets.tiling`.
"""

from __future__ import annotations

import math

from torchbricks.errors import BrickError

__all__ = ["tile_windows"]


def tile_windows(height: int, width: int, tile: int, overlap: float = 0.2) -> list[tuple[int, int, int, int]]:
    """Windows `(x_min, y_min, x_max, y_max)` of side `tile` covering an image of `height` x `width`.

    Neighbouring windows overlap by at least `overlap` of a tile; the windows are spread evenly so the last one ends
    on the image's border. A side shorter than `tile` gets one window of the whole side.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        tile: Side of a window in pixels (1 or more).
        overlap: Fraction of a tile shared by neighbours, in [0, 1).

    Raises:
        BrickError: `tile` below 1, `overlap` outside [0, 1), or an empty image.

    Example:
        >>> tile_windows(100, 250, tile=100, overlap=0.25)
        [(0, 0, 100, 100), (75, 0, 175, 100), (150, 0, 250, 100)]
    """
    if not isinstance(tile, int) or tile < 1:
        raise BrickError(f"The tile size must be a whole number of pixels, 1 or more, got {tile!r}.")
    if not 0 <= overlap < 1:
        raise BrickError(f"The tile overlap must be a fraction in [0, 1), got {overlap!r}.")
    if height < 1 or width < 1:
        raise BrickError(f"Cannot tile an empty image of {width}x{height}.")
    xs = _starts(width, tile, overlap)
    ys = _starts(height, tile, overlap)
    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in ys for x in xs]


def _starts(length: int, tile: int, overlap: float) -> list[int]:
    if length <= tile:
        return [0]
    stride = max(1, math.floor(tile * (1 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    last = length - tile
    return [round(index * last / (count - 1)) for index in range(count)]
