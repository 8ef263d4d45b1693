"""`outline_pixels`: COCO polygons along the pixel edges of a pixel set (numpy only, without torch, so that
`torchbricks predict --onnx --labels coco` writes a mask's outlines where torch is not installed). Its rule is that of
`torchbricks.datasets.polygons`, which re-exports it beside `rasterize_polygons`."""

from __future__ import annotations

import numpy as np

__all__ = ["outline_pixels"]


def outline_pixels(pixels: np.ndarray) -> list[list[float]]:
    """COCO polygons along pixel edges whose mask (`rasterize_polygons`) is exactly `pixels` (boolean [H, W]).

    The pixels are cut into runs (the pixels of a row between two gaps), and the runs chained from the top down: a
    run joins a chain whose last run is on the row above and shares a column with it, and otherwise starts a chain.
    Each chain is one polygon, a staircase around its runs, so a filled convex shape is one polygon and a star or a
    ring a few (a chain per point or side), not one rectangle per run: every part costs the rasterizer about as much
    as a polygon, and the loader draws the masks of every image at every epoch. No pixels give no polygon.

    Example:
        >>> pixels = np.zeros((4, 5), dtype=bool)
        >>> pixels[1, 1:4] = pixels[2, 2:4] = True
        >>> outline_pixels(pixels)
        [[4.0, 1.0, 4.0, 3.0, 2.0, 3.0, 2.0, 2.0, 1.0, 2.0, 1.0, 1.0]]
        >>> from torchbricks.datasets.polygons import rasterize_polygons
        >>> bool((rasterize_polygons(outline_pixels(pixels), 4, 5) == pixels).all())
        True
        >>> pixels[2, :] = [True, True, False, True, True]  # a row of two runs: a second chain
        >>> len(outline_pixels(pixels)), bool((rasterize_polygons(outline_pixels(pixels), 4, 5) == pixels).all())
        (2, True)
    """
    pixels = np.asarray(pixels, dtype=bool)
    padded = np.pad(pixels, ((0, 0), (1, 1))).astype(np.int8)
    changes = np.diff(padded, axis=1)
    run_rows, starts = np.nonzero(changes == 1)
    _, stops = np.nonzero(changes == -1)  # row-major order: the n-th stop ends the n-th start's run
    chains: list[tuple[int, list[int], list[int]]] = []  # (first row, starts, stops) of the runs of each chain
    above: list[int] = []  # the chains whose last run is on the row above, not yet continued
    here: list[int] = []  # the chains continued or started on this row
    row_now = -2
    for row, start, stop in zip(run_rows.tolist(), starts.tolist(), stops.tolist(), strict=True):
        if row != row_now:
            above, here, row_now = (here if row == row_now + 1 else []), [], row
        for position, chain in enumerate(above):
            _, chain_starts, chain_stops = chains[chain]
            if start < chain_stops[-1] and stop > chain_starts[-1]:  # shares a column: the staircase stays simple
                chain_starts.append(start)
                chain_stops.append(stop)
                here.append(above.pop(position))
                break
        else:
            chains.append((row, [start], [stop]))
            here.append(len(chains) - 1)
    return [_staircase(first_row, chain_starts, chain_stops) for first_row, chain_starts, chain_stops in chains]


def _staircase(first_row: int, starts: list[int], stops: list[int]) -> list[float]:
    """The outline of one run `[starts[i], stops[i])` on each row `first_row + i`: down the right side, back up the
    left, corners only (no point in the middle of a straight side)."""
    corners: list[tuple[int, int]] = []
    for index, stop in enumerate(stops):
        corners += [(stop, first_row + index), (stop, first_row + index + 1)]
    for index in range(len(starts) - 1, -1, -1):
        corners += [(starts[index], first_row + index + 1), (starts[index], first_row + index)]
    kept: list[tuple[int, int]] = []
    for point in corners:
        if kept and point == kept[-1]:
            continue
        if len(kept) >= 2 and (kept[-2][0] == kept[-1][0] == point[0] or kept[-2][1] == kept[-1][1] == point[1]):
            kept[-1] = point  # the middle of three points on one line
            continue
        kept.append(point)
    while len(kept) > 3 and (kept[-2][0] == kept[-1][0] == kept[0][0] or kept[-2][1] == kept[-1][1] == kept[0][1]):
        kept.pop()  # the last point on the line back to the first
    if len(kept) > 3 and (kept[-1][0] == kept[0][0] == kept[1][0] or kept[-1][1] == kept[0][1] == kept[1][1]):
        kept.pop(0)
    return [float(value) for point in kept for value in point]
