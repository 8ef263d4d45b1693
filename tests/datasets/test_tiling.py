from __future__ import annotations

import itertools

import numpy as np
import pytest

from torchbricks.datasets.tiling import tile_windows
from torchbricks.errors import BrickError


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [(2300, 2500, 400, 0.2), (97, 300, 64, 0.0), (50, 40, 64, 0.5)])
def test_tile_windows_cover_the_image_and_overlap_by_at_least_the_fraction(
    height: int, width: int, tile: int, overlap: float
) -> None:
    windows = tile_windows(height, width, tile, overlap)
    covered = np.zeros((height, width), dtype=bool)
    for x_min, y_min, x_max, y_max in windows:
        assert 0 <= x_min < x_max <= width
        assert 0 <= y_min < y_max <= height
        assert x_max - x_min == min(tile, width)
        covered[y_min:y_max, x_min:x_max] = True
    assert covered.all()
    starts = sorted({x_min for x_min, *_ in windows})
    for left, right in itertools.pairwise(starts):
        assert left + tile - right >= overlap * tile


@pytest.mark.parametrize(("tile", "overlap", "match"), [(0, 0.2, "1 or more, got 0"), (64, 1.0, r"in \[0, 1\), got 1.0")])
def test_tile_windows_refuse_a_bad_tile_or_overlap(tile: int, overlap: float, match: str) -> None:
    with pytest.raises(BrickError, match=match):
        tile_windows(100, 100, tile, overlap)
