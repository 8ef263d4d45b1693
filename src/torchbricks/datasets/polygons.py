"""COCO polygons and pixel masks, by COCO's own pixel rule (numpy only, no pycocotools needed).

- `rasterize_polygons(polygons, height, width)`: the boolean mask [H, W] of an annotation's polygons, the same pixels
  as pycocotools' `annToMask` (`frPyObjects`, `merge`, `decode`), which labelling tools and COCO's evaluation use;
- `outline_pixels(pixels)`: polygons along pixel edges whose mask by that rule is exactly the given pixels (what the
  shapes generator writes for the shapes it drew with Pillow).

COCO's pixel (row r, column c) spans `[c, c + 1] x [r, r + 1]`; it belongs to a polygon when its centre
`(c + 0.5, r + 0.5)` lies inside, so a 10 x 10 square `[0, 0, 10, 0, 10, 10, 0, 10]` covers 100 pixels. Pillow's
`ImageDraw.polygon` puts pixel centres on the integers and also fills the pixels its outline passes through: the same
square covers 121 pixels there, a pixel more on the right and at the bottom.

The rule is pycocotools' in every detail that changes a pixel: the vertices are first put on a grid of a fifth of a
pixel (`int(5 * x + 0.5)`, rounding towards zero below zero), each edge is walked on that grid one step at a time along
its longer axis with the other coordinate rounded, and a pixel column toggles inside/outside at the first pixel centre
below each place where the walk crosses the column's centre line. The parts of one annotation are united, not
xor-ed (a COCO polygon has no holes; several parts are pieces of one object).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from torchbricks._pixel_outlines import outline_pixels
from torchbricks.errors import BrickError

__all__ = ["outline_pixels", "rasterize_polygons"]

_GRID = 5
"""Grid steps per pixel on which pycocotools puts the vertices."""


def rasterize_polygons(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """The boolean mask [height, width] of COCO polygons `[[x1, y1, x2, y2, ...], ...]` (pixel edges at the integers),
    their parts united: the pixels pycocotools' `annToMask` gives for the same segmentation.

    A part of fewer than three points covers nothing; coordinates outside the image are allowed (the mask is the part
    inside).

    Raises:
        BrickError: A part has an odd count of numbers (an x without its y) or a number that is not finite.

    Example:
        >>> int(rasterize_polygons([[0, 0, 10, 0, 10, 10, 0, 10]], 12, 12).sum())  # Pillow's polygon fill gives 121
        100
        >>> rasterize_polygons([[0, 0, 3.2, 0, 0, 3.2]], 3, 3).astype(int)  # centres with x + y < 3.2
        array([[1, 1, 1],
               [1, 1, 0],
               [1, 0, 0]])
    """
    mask = np.zeros((height, width), dtype=bool)
    for index, polygon in enumerate(polygons):
        if len(polygon) % 2:
            raise BrickError(
                f"rasterize_polygons: part {index} has {len(polygon)} numbers ({str(list(polygon))[:80]}); a polygon is "
                "[x1, y1, x2, y2, ...], an even count."
            )
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(points).all():
            raise BrickError(
                f"rasterize_polygons: part {index} ({str(list(polygon))[:80]}) has a coordinate that is not a finite number."
            )
        _fill_part(mask, points)
    return mask


def _fill_part(mask: np.ndarray, points: np.ndarray) -> None:
    """Sets the pixels of one polygon [K, 2] in `mask` (a union with what it holds)."""
    height, width = mask.shape
    if len(points) < 3 or height == 0 or width == 0:
        return
    # C's (int) cast rounds towards zero, also below zero; pycocotools' grid is made with it
    grid = np.trunc(_GRID * points + 0.5).astype(np.int64)
    start, end = grid, np.roll(grid, -1, axis=0)
    wide_columns, wide_lowest = _crossings_of_wide_edges(start, end, width)
    tall_columns, tall_lowest = _crossings_of_tall_edges(start, end, width)
    column, lowest = np.concatenate([wide_columns, tall_columns]), np.concatenate([wide_lowest, tall_lowest])
    if not len(column):
        return
    # the first pixel row whose centre lies below the crossing toggles; rows are clamped to the image as COCO does
    row = np.clip(-((_GRID // 2 - lowest) // _GRID), 0, height)
    first_column, first_row = int(column.min()), int(row.min())
    toggles = np.zeros((height + 1 - first_row, int(column.max()) + 1 - first_column), dtype=np.uint8)
    np.bitwise_xor.at(toggles, (row - first_row, column - first_column), 1)
    inside = np.bitwise_xor.accumulate(toggles, axis=0)[: height - first_row].astype(bool)
    mask[first_row:, first_column : first_column + inside.shape[1]] |= inside


def _column_span(low: np.ndarray, high: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per edge, the first and one past the last pixel column whose centre line (grid x `5 c + 2.5`) lies between
    the grid x `low` and `high` (`low <= 5 c + 2 < high`), within the image."""
    first = np.maximum(-((_GRID // 2 - low) // _GRID), 0)
    stop = np.minimum((high - 1 - _GRID // 2) // _GRID + 1, width)
    return first, np.maximum(stop, first)


def _expand(first: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge index, column) of every column in `[first, stop)` of every edge."""
    counts = stop - first
    edge = np.repeat(np.arange(len(first)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return edge, first[edge] + offsets


def _crossings_of_wide_edges(start: np.ndarray, end: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(column, lowest grid y) of each crossing of a column's centre line by an edge at least as wide as tall.

    Such an edge is walked left to right one grid column at a time, its grid y `int(y0 + slope * t + 0.5)`; between
    the grid columns `5 c + 2` and `5 c + 3` it crosses column c's centre line, at the lower grid y of the two.
    """
    dx, dy = np.abs(end[:, 0] - start[:, 0]), np.abs(end[:, 1] - start[:, 1])
    wide = (dx >= dy) & (dx > 0)
    left = np.where((start[:, 0] <= end[:, 0])[:, None], start, end)[wide]
    right = np.where((start[:, 0] <= end[:, 0])[:, None], end, start)[wide]
    slope = (right[:, 1] - left[:, 1]) / (right[:, 0] - left[:, 0])
    edge, column = _expand(*_column_span(left[:, 0], right[:, 0], width))
    step = (_GRID * column + _GRID // 2 - left[edge, 0]).astype(np.float64)
    y0 = left[edge, 1].astype(np.float64)
    here = np.trunc(y0 + slope[edge] * step + 0.5)
    after = np.trunc(y0 + slope[edge] * (step + 1) + 0.5)
    return column, np.minimum(here, after).astype(np.int64)


def _crossings_of_tall_edges(start: np.ndarray, end: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(column, lowest grid y) of each crossing of a column's centre line by an edge taller than wide.

    Such an edge is walked top to bottom one grid row at a time, its grid x `int(x0 + slope * t + 0.5)`; it crosses
    column c's centre line between the last step whose grid x is on the start's side of `5 c + 2.5` and the next,
    at the grid y of that last step. That step is found from the line's equation and settled with the same float
    arithmetic the walk uses, so a rounding at a tie goes the walk's way.
    """
    dx, dy = np.abs(end[:, 0] - start[:, 0]), np.abs(end[:, 1] - start[:, 1])
    tall = (dy > dx) & (dx > 0)
    downwards = (start[:, 1] <= end[:, 1])[:, None]
    top = np.where(downwards, start, end)[tall]
    bottom = np.where(downwards, end, start)[tall]
    edge, column = _expand(*_column_span(np.minimum(top[:, 0], bottom[:, 0]), np.maximum(top[:, 0], bottom[:, 0]), width))
    steps = (bottom[:, 1] - top[:, 1])[edge]
    slope = (bottom[edge, 0] - top[edge, 0]) / steps
    x0, rightwards = top[edge, 0].astype(np.float64), slope > 0
    # the walk's grid x reaches past the centre line (grid 5 c + 2.5) once x0 + slope * t + 0.5 >= 5 c + 3
    threshold = (_GRID * column + _GRID // 2 + 1).astype(np.float64)

    def on_start_side(t: np.ndarray) -> np.ndarray:
        position = x0 + slope * t.astype(np.float64) + 0.5
        return np.where(rightwards, position < threshold, position >= threshold)

    last = np.clip(np.floor((threshold - 0.5 - x0) / slope).astype(np.int64), 0, steps - 1)
    while True:  # at most a step or two: the estimate is off only where the float line meets the threshold
        forward = (last + 1 < steps) & on_start_side(last + 1)
        backward = (last > 0) & ~on_start_side(last)
        if not (forward.any() or backward.any()):
            break
        last = last + forward - backward
    return column, top[edge, 1] + last
