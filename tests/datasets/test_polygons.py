"""COCO's pixel rule for polygons, checked against pycocotools itself."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils  # the reference: the `detection` extra, part of `dev`

from torchbricks.datasets.polygons import outline_pixels, rasterize_polygons
from torchbricks.errors import BrickError


def _pycocotools_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """`annToMask` of a polygon segmentation: each part by `frPyObjects`, the parts merged, decoded."""
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def _random_part(rng: np.random.Generator, height: int, width: int) -> list[float]:
    side = float(max(height, width))
    count = int(rng.integers(3, 12))
    kind = int(rng.integers(5))
    if kind == 0:  # anywhere, also across the image's edges
        points = rng.uniform(-3, side + 3, size=(count, 2))
    elif kind == 1:  # concave: a star of random spikes
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = rng.uniform(0.3, side / 2, count)
        points = rng.uniform(0, side, size=2) + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    elif kind == 2:  # on grids of whole, half, fifth and tenth pixels: vertices and edges through pixel centres
        points = rng.integers(-2, int(side) * 10 + 2, size=(count, 2)) / rng.choice([10, 5, 2, 1])
    elif kind == 3:  # degenerate: collinear points, a repeated vertex
        ends = rng.uniform(0, side, size=(2, 2))
        points = ends[0] + rng.uniform(0, 1, count)[:, None] * (ends[1] - ends[0])
        points[int(rng.integers(count))] = points[0]
    else:  # along the image's edges and corners, a little inside or outside
        points = rng.choice([0.0, float(width), float(height)], size=(count, 2)) + rng.uniform(-0.6, 0.6, size=(count, 2))
    return np.round(points, int(rng.integers(0, 4))).ravel().tolist()


@pytest.mark.parametrize("seed", range(4))
def test_rasterized_polygons_are_the_pixels_of_pycocotools_ann_to_mask(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(500):
        height, width = (int(side) for side in rng.integers(1, 40, size=2))
        polygons = [_random_part(rng, height, width) for _ in range(int(rng.integers(1, 4)))]  # parts united

        mask = rasterize_polygons(polygons, height, width)

        expected = _pycocotools_mask(polygons, height, width)
        assert np.array_equal(mask, expected), (height, width, polygons, np.argwhere(mask != expected)[:5].tolist())


def _centres_inside_and_clear(points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Even-odd rule at each pixel centre (c + 0.5, r + 0.5), exactly, and whether the centre is more than a
    quarter pixel from every edge (COCO puts the vertices on a fifth-pixel grid first, which moves edges a little)."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    inside = np.zeros((height, width), dtype=bool)
    distance = np.full((height, width), np.inf)
    for (x0, y0), (x1, y1) in zip(points, np.roll(points, -1, axis=0), strict=True):
        crosses = (y0 > y) != (y1 > y)  # a horizontal ray to the right from the centre crosses the edge
        at = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1.0, y1 - y0)
        inside ^= crosses & (x < at)
        length = max(float(np.hypot(x1 - x0, y1 - y0)), 1e-12)
        along = np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / length**2, 0.0, 1.0)
        distance = np.minimum(distance, np.hypot(x - x0 - along * (x1 - x0), y - y0 - along * (y1 - y0)))
    return inside, distance > 0.25


def test_a_pixel_clear_of_the_edges_is_in_the_mask_exactly_when_its_centre_is_inside_the_polygon() -> None:
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(300):
        height, width = (int(side) for side in rng.integers(1, 30, size=2))
        part = _random_part(rng, height, width)

        mask = rasterize_polygons([part], height, width)

        inside, clear = _centres_inside_and_clear(np.asarray(part).reshape(-1, 2), height, width)
        assert np.array_equal(mask[clear], inside[clear]), part
        compared += int(clear.sum())
    assert compared > 50_000


def test_a_square_along_pixel_edges_covers_the_pixels_inside_not_a_row_and_column_more_as_pillow_fills() -> None:
    square = [0, 0, 10, 0, 10, 10, 0, 10]
    canvas = Image.new("L", (12, 12))
    ImageDraw.Draw(canvas).polygon(list(zip(square[::2], square[1::2], strict=True)), fill=1)

    mask = rasterize_polygons([square], 12, 12)

    assert np.array_equal(mask, _pycocotools_mask([square], 12, 12))
    expected = np.zeros((12, 12), dtype=bool)
    expected[:10, :10] = True
    assert np.array_equal(mask, expected)
    assert int(mask.sum()) == 100 < int(np.asarray(canvas).sum())  # Pillow: 11 x 11, the edge pixels on both sides


def test_a_polygon_reaching_far_outside_the_image_gives_its_part_inside_without_walking_the_outside() -> None:
    triangle = [2.0, 2.0, 1e9, 2.0, 2.0, 1e9]  # pycocotools would walk 5e9 grid steps (and overflow its int)

    mask = rasterize_polygons([triangle], 20, 30)

    expected = np.zeros((20, 30), dtype=bool)
    expected[2:, 2:] = True
    assert np.array_equal(mask, expected)


def test_a_part_with_an_odd_count_of_numbers_is_an_error_naming_it() -> None:
    with pytest.raises(BrickError, match=r"part 1 has 7 numbers \(\[0, 0, 5, 0, 5, 5, 0\]\); a polygon is \[x1, y1"):
        rasterize_polygons([[0, 0, 5, 0, 5, 5], [0, 0, 5, 0, 5, 5, 0]], 8, 8)


def test_a_part_with_a_coordinate_that_is_not_a_number_is_an_error_naming_it() -> None:
    with pytest.raises(BrickError, match=r"part 0 \(\[0, 0, 5, nan, 5, 5\]\) has a coordinate that is not a finite"):
        rasterize_polygons([[0, 0, 5, float("nan"), 5, 5]], 8, 8)


def _pillow_convex_shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = Image.new("1", (size, size))
    corners = int(rng.integers(3, 33))
    radius, center, angle = rng.uniform(0.8, size / 2), rng.uniform(0, size, size=2), rng.uniform(0, 2 * np.pi)
    turns = angle + 2 * np.pi * np.arange(corners) / corners
    outline = center + radius * np.stack([np.cos(turns), np.sin(turns)], axis=1)
    ImageDraw.Draw(canvas).polygon([tuple(point) for point in outline.tolist()], fill=1)
    return np.asarray(canvas, dtype=bool)


@pytest.mark.parametrize("kind", ["pillow convex shapes", "random pixels", "ring", "corners touching", "empty"])
def test_the_outline_of_pixels_rasterizes_back_to_exactly_those_pixels(kind: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(100 if kind in ("pillow convex shapes", "random pixels") else 1):
        if kind == "pillow convex shapes":
            pixels = _pillow_convex_shapes(rng, int(rng.integers(4, 40)))
        elif kind == "random pixels":  # several runs per row, rows skipped, pixels touching at corners only
            pixels = rng.uniform(size=(int(rng.integers(1, 20)), int(rng.integers(1, 20)))) < 0.4
        elif kind == "ring":
            pixels = np.ones((9, 9), dtype=bool)
            pixels[3:6, 3:6] = False
        elif kind == "corners touching":  # one run a row, but a run that does not reach the next row's
            pixels = np.zeros((6, 8), dtype=bool)
            pixels[0, 0:2] = pixels[1, 2:5] = pixels[2, 3:5] = pixels[4, 1:3] = True
        else:
            pixels = np.zeros((5, 7), dtype=bool)
        height, width = pixels.shape

        polygons = outline_pixels(pixels)

        assert np.array_equal(rasterize_polygons(polygons, height, width), pixels)
        if polygons:
            assert np.array_equal(_pycocotools_mask(polygons, height, width), pixels)
        if kind == "pillow convex shapes":
            assert len(polygons) <= 3  # a staircase (and a pixel Pillow adds at a sharp tip), not a rectangle a row
            assert all(value == int(value) for polygon in polygons for value in polygon)
        if kind == "corners touching":
            assert len(polygons) == 3  # a piece per run of rows that share columns: no polygon crosses itself
