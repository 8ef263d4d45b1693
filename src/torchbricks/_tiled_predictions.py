"""Windows in, one image's results out: what both `predict` backends share to predict an image tile by tile.

numpy only (no torch), so the bricks backend (`torchbricks._predict_backend.BrickBackend`) and the ONNX runtime
(`torchbricks.deploy.OnnxPredictor`, which runs where torch is not installed) cut images into the same windows, pad
them the same way and merge the same rules, and cannot drift apart:

- windows: `torchbricks.datasets.tiling.tile_windows`; a window shorter than the tile (an image side shorter than
  it) is padded with black at the right and bottom to the tile's size, as the training tiles are
  (`torchbricks.datasets.tiled.crop_sample`), so it keeps its scale instead of being stretched to the input size;
- detection: each window's boxes scaled from the model's input to the window's canvas (the tile), shifted to
  the image and cut to it (`torchbricks._box_cutting.cut_to_image`, the rule the mAP scores them by), then the cut
  parts of objects another window saw whole left out (`without_cut_parts`), then class-wise non-maximum suppression
  at the head's IoU threshold (`non_maximum_suppression`);
- segmentation: each window's class probabilities resized bilinearly to the canvas (`resize_bilinear`, torch's
  `interpolate(mode="bilinear", align_corners=False)`), averaged over the windows covering a pixel (the padding
  left out), and the most probable class taken; the probabilities are added into the image's sums as each window
  is merged (`WindowMerger`), not kept, and the mean taken a strip of rows at a time;
- points: each window's points scaled and shifted as boxes are, each window keeping those in its own part of the
  image (`owned_regions`: overlaps split at their middle), so a point two windows found is reported once;
- count: not merged (the counts of overlapping windows do not add up to the image's): tiled predictions leave count
  heads out, with a warning naming them (`tiled_heads`);
- classification: the mean of the windows' probabilities; multilabel: their maximum, and a class is present in the
  image when the model decides it is present in one window (`present`, at the head's own threshold).

Without tiles (`tile=None`) the one window is the whole image: boxes and points scaled to it (boxes cut to it), the
mask resized to it by nearest neighbour (`resize_mask_nearest`), the count as it is.

A window's outputs are the model's, for one input: `{"<head>/<name>": array}` with a detection head's `boxes`
[P, 4] (pixels of the model's input), `scores` [P] and `labels` [P] (-1 marks a padding row), a segmentation head's
`probabilities` [K, h, w] (or, without tiles, `mask` [h, w]), a points head's `points` [P, 2], `scores` [P] and
`labels` [P] (-1 padding), a count head's `count` (a number), and the others' `probabilities` [K] (a multilabel
head's with its `present` [K], when the model gives it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from torchbricks._box_cutting import cut_to_image
from torchbricks._tiling import tile_windows
from torchbricks.errors import BrickError

__all__ = [
    "CUT_PART_CONTAINED",
    "DEFAULT_IOU_THRESHOLD",
    "DEFAULT_OVERLAP",
    "MASK_STRIP_BYTES",
    "PAIRS_PER_CHUNK",
    "UNTILEABLE_KINDS",
    "Window",
    "WindowMerger",
    "WindowOutputs",
    "at_inner_border",
    "chosen_overlap",
    "image_windows",
    "merge_windows",
    "non_maximum_suppression",
    "owned_regions",
    "resize_bilinear",
    "resize_mask_nearest",
    "tile_pixels",
    "tiled_heads",
    "without_cut_parts",
]

Window = tuple[int, int, int, int]
"""(x_min, y_min, x_max, y_max) of a window in the image's pixels."""

WindowOutputs = dict[str, np.ndarray]
"""One window's model outputs by name, `<head>/<name>` (see the module docstring)."""

DEFAULT_IOU_THRESHOLD = 0.5
"""The IoU threshold of merging a detection head's boxes when its decoder names none (or an exported file predates
the `iou_threshold` of its metadata)."""

DEFAULT_OVERLAP = 0.2
"""The fraction of a tile its neighbours share when a tile is given without an overlap (`predict --tile`)."""

CUT_PART_CONTAINED = 0.7
"""A box found against an inner window border is the cut part of an object when at least this share of it lies
inside a better box of its class (`without_cut_parts`)."""


def chosen_overlap(tile: int | None, overlap: float | None, caller: str) -> float:
    """The overlap to cut windows with: `overlap`, or `DEFAULT_OVERLAP` when None.

    Raises:
        BrickError: An overlap given without a tile: each image would be predicted whole and the overlap ignored.

    Example:
        >>> chosen_overlap(64, None, "predict"), chosen_overlap(64, 0.5, "predict"), chosen_overlap(None, None, "predict")
        (0.2, 0.5, 0.2)
    """
    if overlap is not None and tile is None:
        raise BrickError(
            f"{caller}: overlap={overlap!r} needs tile=N (the side of the windows): with tile=None each image is "
            f"predicted whole and the overlap would be ignored. Pass tile, or leave overlap out."
        )
    return DEFAULT_OVERLAP if overlap is None else overlap


def image_windows(height: int, width: int, tile: int | None, overlap: float) -> list[Window]:
    """The windows of an image: `tile_windows` with a tile, else the whole image.

    Example:
        >>> image_windows(40, 60, None, 0.2), image_windows(40, 60, 40, 0.5)
        ([(0, 0, 60, 40)], [(0, 0, 40, 40), (20, 0, 60, 40)])
    """
    if tile is None:
        return [(0, 0, width, height)]
    return tile_windows(height, width, tile, overlap)


def tile_pixels(image: np.ndarray, window: Window, tile: int | None) -> np.ndarray:
    """The window's pixels of an image [H, W, ...]; with a tile, padded with black to the tile's size at the right and
    bottom (see the module docstring).

    Example:
        >>> tile_pixels(np.ones((3, 5, 3), dtype=np.uint8), (2, 0, 5, 3), tile=4)[..., 0].tolist()
        [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    """
    x_min, y_min, x_max, y_max = window
    pixels = image[y_min:y_max, x_min:x_max]
    if tile is None or pixels.shape[:2] == (tile, tile):
        return pixels
    padded = np.zeros((tile, tile, *pixels.shape[2:]), dtype=pixels.dtype)
    padded[: pixels.shape[0], : pixels.shape[1]] = pixels
    return padded


def merge_windows(
    heads: dict[str, str],
    parts: Sequence[tuple[Window, WindowOutputs]],
    height: int,
    width: int,
    *,
    input_size: tuple[int, int],
    tile: int | None,
    iou_thresholds: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """One image's results at its size (`torchbricks._predict_results.ImageResult`) from its windows' outputs: the
    windows given to a `WindowMerger` in order.

    Args:
        heads: Head path -> kind.
        parts: Each window of the image with the model's outputs for it.
        height: The image's height.
        width: The image's width.
        input_size: (height, width) of the model's input, which the boxes are in.
        tile: The tile side the windows were cut with; None: one window of the whole image.
        iou_thresholds: Detection head -> IoU threshold of merging its boxes (`DEFAULT_IOU_THRESHOLD` if missing).
    """
    windows = [window for window, _ in parts]
    merger = WindowMerger(heads, height, width, input_size=input_size, tile=tile, iou_thresholds=iou_thresholds, windows=windows)
    for window, output in parts:
        merger.add(window, output)
    return merger.result()


class WindowMerger:
    """Merges one image's windows as they are predicted: `add` each window's outputs, then take `result`.

    With a tile, a segmentation head's class probabilities are resized and added into the image's sums when their
    window is added, and not kept: the merge holds the sums ([K, H, W] float32) and not every window's probabilities
    besides (3 GB for the 4356 windows of 192 px of a 10,000 x 10,000 image at 5 classes). The other heads' outputs
    (boxes, points, a few probabilities per window) are kept until `result`. Given `windows` (the image's windows in
    the order they will be added), each row of the mask is finished as soon as the last window covering it is added,
    and the sums hold only the rows still open (about two tiles high for `tile_windows`' rows of windows), not the
    image's. The other arguments are `merge_windows`'.

    Example:
        >>> merger = WindowMerger({"seg": "segmentation"}, 2, 3, input_size=(2, 2), tile=2)
        >>> merger.add((0, 0, 2, 2), {"seg/probabilities": np.stack([np.full((2, 2), 0.9), np.full((2, 2), 0.1)])})
        >>> merger.add((1, 0, 3, 2), {"seg/probabilities": np.stack([np.full((2, 2), 0.4), np.full((2, 2), 0.6)])})
        >>> merger.result()["seg"]["mask"].tolist()
        [[0, 0, 1], [0, 0, 1]]
    """

    def __init__(
        self,
        heads: dict[str, str],
        height: int,
        width: int,
        *,
        input_size: tuple[int, int],
        tile: int | None,
        iou_thresholds: dict[str, float] | None = None,
        windows: Sequence[Window] | None = None,
    ) -> None:
        self.heads = heads
        self.height = height
        self.width = width
        self.input_size = input_size
        self.tile = tile
        self.iou_thresholds = iou_thresholds or {}
        # without tiles the one window's mask is the result: the segmentation outputs are kept as the others are
        self._summed = {head for head, kind in heads.items() if kind == "segmentation" and tile is not None}
        self._sums = {head: _MaskSums(height, width, windows) for head in self._summed}
        self._parts: list[tuple[Window, WindowOutputs]] = []

    def add(self, window: Window, output: WindowOutputs) -> None:
        """Takes one window's outputs (the windows in the order `merge_windows` would get them)."""
        for head in self._summed:
            self._sums[head].add(window, output[f"{head}/probabilities"], self.tile)
        self._parts.append(
            (window, {name: value for name, value in output.items() if name.rpartition("/")[0] not in self._summed})
        )

    def result(self) -> dict[str, dict[str, Any]]:
        """The image's results (see `merge_windows`). Taken once: the windows' outputs and sums are let go."""
        parts, height, width, tile = self._parts, self.height, self.width, self.tile
        self._parts = []
        result: dict[str, dict[str, Any]] = {}
        for head, kind in self.heads.items():
            if kind == "detection":
                threshold = self.iou_thresholds.get(head, DEFAULT_IOU_THRESHOLD)
                result[head] = _merge_boxes(head, parts, height, width, self.input_size, tile, threshold)
            elif kind == "segmentation":
                result[head] = {"kind": kind, "mask": self._mask(head, parts)}
            elif kind == "points":
                result[head] = _merge_points(head, parts, height, width, self.input_size, tile)
            elif kind == "count":
                if len(parts) > 1 or tile is not None:
                    raise BrickError(tiled_heads({head: kind})[1] or "")
                result[head] = {"kind": kind, "count": np.float32(parts[0][1][f"{head}/count"])}
            else:
                stacked = np.stack([output[f"{head}/probabilities"] for _, output in parts]).astype(np.float32)
                probabilities = stacked.max(axis=0) if kind == "multilabel" else stacked.mean(axis=0)
                result[head] = {"kind": kind, "probabilities": probabilities}
                if kind == "multilabel" and all(f"{head}/present" in output for _, output in parts):
                    # the model's decision at its own threshold: present in the image when present in a window
                    present = np.stack([output[f"{head}/present"] for _, output in parts])
                    result[head]["present"] = present.max(axis=0).astype(np.int64)
        return result

    def _mask(self, head: str, parts: Sequence[tuple[Window, WindowOutputs]]) -> np.ndarray:
        if head in self._sums:
            return self._sums.pop(head).mask()
        if len(parts) == 1:
            return resize_mask_nearest(parts[0][1][f"{head}/mask"], self.height, self.width)
        sums = _MaskSums(self.height, self.width)  # several windows without a tile: each resized to itself
        for window, output in parts:
            sums.add(window, output[f"{head}/probabilities"], None)
        return sums.mask()


MASK_STRIP_BYTES = 1 << 24
"""Bytes of class probabilities averaged at a time when a tiled mask is finished (`_MaskSums.mask`): the mean and
its most probable class are taken strip of rows by strip, not over the whole image at once."""


class _MaskSums:
    """A segmentation head's class probabilities summed over the windows covering each pixel, and its mask.

    The windows covering a pixel are counted on the grid of the windows' edges (a cell per pair of neighbouring
    x and y edges, which all its pixels share), not per pixel; the mean is the same float32 division of the sum by the
    count as per pixel. Given the image's windows in the order they come (`planned`), the rows are finished (their mean
    taken and its most probable class written into the mask) as soon as the last window covering them is added, and
    the sums hold only the rows still open: about two windows high when the windows come row by row, as
    `tile_windows` gives them. Without `planned`, the rows are finished at `mask`.
    """

    def __init__(self, height: int, width: int, planned: Sequence[Window] | None = None) -> None:
        self.height = height
        self.width = width
        self.planned = None if planned is None else list(planned)
        self.added: list[Window] = []
        self.total: np.ndarray | None = None  # the sums of rows [self.base, self.base + rows)
        self.base = 0
        self.finished = 0  # rows before it are in self.classes
        self.classes = np.zeros((height, width), dtype=np.int64)
        self.counts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.last_window = np.full(height, -1, dtype=np.int64)  # the last planned window covering each row
        if self.planned is not None:
            for index, (_, y_min, _, y_max) in enumerate(self.planned):
                self.last_window[y_min:y_max] = index
            self.counts = self._grid_counts(self.planned)

    def add(self, window: Window, probabilities: np.ndarray, tile: int | None) -> None:
        if self.planned is not None and (len(self.added) >= len(self.planned) or window != self.planned[len(self.added)]):
            expected = self.planned[len(self.added)] if len(self.added) < len(self.planned) else "none"
            raise BrickError(f"Merging a mask: window {window} came where {expected} was planned.")
        x_min, y_min, x_max, y_max = window
        self._open_rows(probabilities.shape[0], y_max)
        if self.total is None:  # for mypy: _open_rows made it
            raise BrickError("Merging a mask: no sums.")
        canvas_width, canvas_height = _canvas(window, tile)
        resized = resize_bilinear(probabilities.astype(np.float32), canvas_height, canvas_width)
        # the padding left out
        self.total[:, y_min - self.base : y_max - self.base, x_min:x_max] += resized[:, : y_max - y_min, : x_max - x_min]
        self.added.append(window)
        if self.planned is not None:
            stop = self.finished
            while stop < self.height and self.last_window[stop] < len(self.added):
                stop += 1
            self._finish(stop)

    def mask(self) -> np.ndarray:
        """The most probable class of each pixel's mean probabilities, int64 [H, W]."""
        if not self.added or (self.planned is not None and len(self.added) < len(self.planned)):
            planned = "" if self.planned is None else f" of the {len(self.planned)} planned"
            raise BrickError(f"A segmentation mask was asked after {len(self.added)} windows{planned}.")
        if self.counts is None:
            self.counts = self._grid_counts(self.added)
        self._finish(self.height)
        return self.classes

    def _open_rows(self, num_classes: int, stop: int) -> None:
        """Makes the sums hold the rows up to `stop`."""
        if self.total is None:
            self.total = np.zeros((num_classes, stop - self.base, self.width), dtype=np.float32)
        elif stop > self.base + self.total.shape[1]:
            more = np.zeros((num_classes, stop - self.base - self.total.shape[1], self.width), dtype=np.float32)
            self.total = np.concatenate([self.total, more], axis=1)

    def _finish(self, stop: int) -> None:
        """Writes the mask's rows from `self.finished` to `stop`, and lets their sums go."""
        if stop <= self.finished or self.total is None or self.counts is None:
            return
        self._open_rows(self.total.shape[0], stop)  # rows no window covers: 0 / 0, class 0
        cells, row_cell, column_cell = self.counts
        strip = max(1, MASK_STRIP_BYTES // max(1, self.total.shape[0] * self.width * 4))
        for start in range(self.finished, stop, strip):
            end = min(start + strip, stop)
            count = cells[row_cell[start:end, None], column_cell[None, :]]
            self.classes[start:end] = (self.total[:, start - self.base : end - self.base] / count).argmax(axis=0)
        self.total = self.total[:, stop - self.base :].copy()
        self.base = self.finished = stop

    def _grid_counts(self, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The windows covering each cell of the grid of the windows' edges (float32), and each row's and column's cell."""
        edges = np.array(windows, dtype=np.int64).reshape(-1, 4)
        columns = np.unique(np.concatenate([[0, self.width], edges[:, 0], edges[:, 2]]))
        rows = np.unique(np.concatenate([[0, self.height], edges[:, 1], edges[:, 3]]))
        # +1 at a window's first cell, -1 past its last, summed along both axes
        starts = np.zeros((len(rows), len(columns)), dtype=np.int64)
        first_row, last_row = np.searchsorted(rows, edges[:, 1]), np.searchsorted(rows, edges[:, 3])
        first_column, last_column = np.searchsorted(columns, edges[:, 0]), np.searchsorted(columns, edges[:, 2])
        np.add.at(starts, (first_row, first_column), 1)
        np.add.at(starts, (first_row, last_column), -1)
        np.add.at(starts, (last_row, first_column), -1)
        np.add.at(starts, (last_row, last_column), 1)
        cells = starts.cumsum(axis=0).cumsum(axis=1).astype(np.float32)
        row_cell = np.searchsorted(rows, np.arange(self.height), side="right") - 1
        column_cell = np.searchsorted(columns, np.arange(self.width), side="right") - 1
        return cells, row_cell, column_cell


def _canvas(window: Window, tile: int | None) -> tuple[int, int]:
    """(width, height) of the pixels a window's input shows: the tile's, or the window's without tiles."""
    x_min, y_min, x_max, y_max = window
    return (tile, tile) if tile is not None else (x_max - x_min, y_max - y_min)


def _merge_boxes(
    head: str,
    parts: Sequence[tuple[Window, WindowOutputs]],
    height: int,
    width: int,
    input_size: tuple[int, int],
    tile: int | None,
    iou_threshold: float,
) -> dict[str, Any]:
    input_height, input_width = input_size
    boxes, scores, labels, cut = [], [], [], []
    for window, output in parts:
        x_min, y_min = window[0], window[1]
        keep = output[f"{head}/labels"] >= 0  # the decoder pads with label -1
        scale = np.array(list(_canvas(window, tile)) * 2, dtype=np.float32) / np.array(
            [input_width, input_height] * 2, np.float32
        )
        found = output[f"{head}/boxes"][keep] * scale + np.array([x_min, y_min, x_min, y_min], dtype=np.float32)
        boxes.append(found.astype(np.float32))
        scores.append(output[f"{head}/scores"][keep])
        labels.append(output[f"{head}/labels"][keep])
        cut.append(at_inner_border(found, window, height, width))
    merged_boxes = np.concatenate(boxes).astype(np.float32)
    merged_scores = np.concatenate(scores).astype(np.float32)
    merged_labels = np.concatenate(labels).astype(np.int64)
    merged_cut = np.concatenate(cut)
    merged_boxes, shown = cut_to_image(merged_boxes, height, width)
    merged_boxes, merged_scores, merged_labels, merged_cut = (
        merged_boxes[shown],
        merged_scores[shown],
        merged_labels[shown],
        merged_cut[shown],
    )
    if len(parts) > 1 and len(merged_boxes):
        # the cut parts go first: a part overlapping its whole box by more than the IoU threshold, and scoring as
        # high, suppressed the whole box, and then had no whole box left to be the part of
        whole = without_cut_parts(np.arange(len(merged_boxes)), merged_boxes, merged_scores, merged_labels, merged_cut)
        kept = whole[non_maximum_suppression(merged_boxes[whole], merged_scores[whole], merged_labels[whole], iou_threshold)]
        merged_boxes, merged_scores, merged_labels = merged_boxes[kept], merged_scores[kept], merged_labels[kept]
    return {"kind": "detection", "boxes": merged_boxes, "scores": merged_scores, "labels": merged_labels}


UNTILEABLE_KINDS = ("count",)
"""Head kinds whose window results do not merge into the image's: the counts of overlapping windows do not add up."""


def tiled_heads(heads: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """The heads a tiled prediction gives (`UNTILEABLE_KINDS` left out), and the warning naming those left out and
    why (None when none is).

    Example:
        >>> tiled_heads({"det": "detection", "n": "count"})[0]
        {'det': 'detection'}
    """
    kept = {head: kind for head, kind in heads.items() if kind not in UNTILEABLE_KINDS}
    left_out = [head for head in heads if head not in kept]
    if not left_out:
        return kept, None
    return kept, (
        f"Tiled prediction leaves out the count head(s) {left_out}: the counts of overlapping windows do not add up to "
        f"an image's (an object in an overlap, or cut by a window's border, counts in two windows). Predict without "
        f"tile (--tile) for the counts."
    )


def _merge_points(
    head: str,
    parts: Sequence[tuple[Window, WindowOutputs]],
    height: int,
    width: int,
    input_size: tuple[int, int],
    tile: int | None,
) -> dict[str, Any]:
    """The points of every window in the image's pixels, by decreasing score. With several windows each keeps the
    points in its own part (`owned_regions`): a point in an overlap is the one of the window it is more central to,
    so an object two windows saw is reported once."""
    input_height, input_width = input_size
    owned = owned_regions([window for window, _ in parts])
    points, scores, labels = [], [], []
    for window, output in parts:
        keep = output[f"{head}/labels"] >= 0  # the decoder pads with label -1
        canvas_width, canvas_height = _canvas(window, tile)
        scale = np.array([canvas_width / input_width, canvas_height / input_height], dtype=np.float32)
        found = output[f"{head}/points"][keep].astype(np.float32) * scale + np.array(window[:2], dtype=np.float32)
        x_low, y_low, x_high, y_high = owned[window]
        mine = (found[:, 0] >= x_low) & (found[:, 0] < x_high) & (found[:, 1] >= y_low) & (found[:, 1] < y_high)
        points.append(found[mine])
        scores.append(output[f"{head}/scores"][keep][mine].astype(np.float32))
        labels.append(output[f"{head}/labels"][keep][mine].astype(np.int64))
    merged_points, merged_scores, merged_labels = np.concatenate(points), np.concatenate(scores), np.concatenate(labels)
    # on the image (a point in the black padding of a short window is not), its far borders included
    shown = (merged_points >= 0).all(axis=1) & (merged_points[:, 0] <= width) & (merged_points[:, 1] <= height)
    order = np.argsort(-merged_scores[shown], kind="stable")
    return {
        "kind": "points",
        "points": merged_points[shown][order].reshape(-1, 2),
        "scores": merged_scores[shown][order],
        "labels": merged_labels[shown][order],
    }


def owned_regions(windows: Sequence[Window]) -> dict[Window, tuple[float, float, float, float]]:
    """Each window of a grid -> the part of the plane it owns, (x_low, y_low, x_high, y_high): split at the middle of
    each overlap with its neighbour, unbounded at the image's borders. The parts tile the plane without overlapping.

    Example:
        >>> owned_regions([(0, 0, 40, 40), (20, 0, 60, 40)])
        {(0, 0, 40, 40): (-inf, -inf, 30.0, inf), (20, 0, 60, 40): (30.0, -inf, inf, inf)}
    """

    def bounds(spans: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[float, float]]:
        return {
            (start, end): (
                -np.inf if index == 0 else (start + spans[index - 1][1]) / 2,
                np.inf if index == len(spans) - 1 else (end + spans[index + 1][0]) / 2,
            )
            for index, (start, end) in enumerate(spans)
        }

    columns = bounds(sorted({(window[0], window[2]) for window in windows}))
    rows = bounds(sorted({(window[1], window[3]) for window in windows}))
    regions = {}
    for window in windows:
        x_low, x_high = columns[window[0], window[2]]
        y_low, y_high = rows[window[1], window[3]]
        regions[window] = (x_low, y_low, x_high, y_high)
    return regions


def resize_mask_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A class mask [h, w] resized to [height, width] by nearest neighbour (torch's `mode="nearest"`, as the data
    modules resize the training masks): how both `predict` paths (`BrickBackend`, `OnnxPredictor`) bring a predicted
    mask to the image's size, so that they give the same masks.

    Example:
        >>> resize_mask_nearest(np.array([[0, 1], [2, 3]]), 4, 4)[:, 0].tolist()
        [0, 0, 2, 2]
    """
    if mask.shape == (height, width):
        return mask.astype(np.int64, copy=False)
    rows = np.minimum((np.arange(height) * (mask.shape[0] / height)).astype(np.int64), mask.shape[0] - 1)
    columns = np.minimum((np.arange(width) * (mask.shape[1] / width)).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], columns[None, :]].astype(np.int64)


def resize_bilinear(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes float maps [C, h, w] to [C, height, width] bilinearly as torch's `interpolate(mode="bilinear",
    align_corners=False)` does (no antialiasing): each output pixel centre is mapped into the input, clamped at its
    first pixel, and the two nearest input pixels of each axis are weighted by distance.

    Example:
        >>> resize_bilinear(np.array([[[0.0, 1.0]]], dtype=np.float32), 1, 4).round(2).tolist()
        [[[0.0, 0.25, 0.75, 1.0]]]
    """
    rows, row_weights = _linear_taps(values.shape[1], height)
    columns, column_weights = _linear_taps(values.shape[2], width)
    along_rows = values[:, rows[0]] * row_weights[0][:, None] + values[:, rows[1]] * row_weights[1][:, None]
    return along_rows[:, :, columns[0]] * column_weights[0] + along_rows[:, :, columns[1]] * column_weights[1]


def _linear_taps(length: int, size: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """For each of `size` output positions, the two input positions of `length` and their weights."""
    scale = np.float32(length / size)
    source = np.maximum((np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
    lower = source.astype(np.int64)
    upper = np.minimum(lower + 1, length - 1)
    weight = (source - lower).astype(np.float32)
    return (lower, upper), (np.float32(1) - weight, weight)


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by class-wise non-maximum suppression, by decreasing score (torchvision's
    `batched_nms`): a box goes when it overlaps a better-scoring kept box of its class by IoU above the threshold.
    Equal scores keep their order.

    Only boxes that meet are compared (`_meeting_pairs`), `PAIRS_PER_CHUNK` pairs at a time, so the boxes of a large
    orthomosaic cost about as many comparisons as there are neighbouring boxes, and a bounded memory, not their count
    squared.

    Example:
        >>> boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float32)
        >>> non_maximum_suppression(boxes, np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 0, 1, 0]), 0.5).tolist()
        [0, 2, 3]
    """
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    better, worse = _suppressing_pairs(boxes, labels, rank, iou_threshold)
    # Each box with the better boxes that would suppress it, grouped by box in score order: kept unless one is kept.
    grouped = np.lexsort((better, rank[worse]))
    better, worse = better[grouped], worse[grouped]
    starts = np.searchsorted(rank[worse], np.arange(len(order) + 1))
    kept = np.ones(len(order), dtype=bool)
    for position in np.flatnonzero(starts[1:] > starts[:-1]):
        kept[order[position]] = not kept[better[starts[position] : starts[position + 1]]].any()
    return order[kept[order]]


def _suppressing_pairs(
    boxes: np.ndarray, labels: np.ndarray, rank: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of boxes of one class overlapping by IoU above the threshold, as (better, worse) index arrays."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    better, worse = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    # IoU above a threshold of 0 or more needs a common area: only boxes that meet are compared (below 0, boxes that
    # do not meet pass too, and every pair whose x ranges meet is compared, as in one band)
    for first, second in _meeting_pairs(boxes, banded=iou_threshold >= 0):
        same = labels[first] == labels[second]
        one, other = first[same], second[same]
        inner = np.clip(np.minimum(boxes[one, 2:], boxes[other, 2:]) - np.maximum(boxes[one, :2], boxes[other, :2]), 0, None)
        intersection = inner[:, 0] * inner[:, 1]
        overlapping = intersection / (area[one] + area[other] - intersection) > iou_threshold
        one, other = one[overlapping], other[overlapping]
        first_better = rank[one] < rank[other]
        better.append(np.where(first_better, one, other))
        worse.append(np.where(first_better, other, one))
    return np.concatenate(better), np.concatenate(worse)


PAIRS_PER_CHUNK = 1 << 19
"""Candidate pairs of boxes compared at once by the merge (`_meeting_pairs`): its memory is bounded by this, not by
the image's boxes squared (some tens of bytes per pair)."""


def _meeting_pairs(boxes: np.ndarray, banded: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of index pairs (one, other) that hold every unordered pair of finite boxes with a common area, each once
    (and some pairs that do not meet, which the caller's test leaves out), at most about `PAIRS_PER_CHUNK` pairs at a time.

    The image is cut into horizontal bands about as high as a box, each box entered in every band it spans; within a
    band the boxes are swept along x, each paired with those starting at or after its x_min and before its x_max. A
    pair is taken in the band where their common area starts (that of the greater of their two y_min), which both
    boxes span, so it comes once. `banded=False` puts every box in one band: every pair whose x
    ranges meet, each once.
    """
    count = len(boxes)
    if count < 2:
        return
    band_height = 0.0
    if banded and np.isfinite(boxes).all():
        origin = float(boxes[:, 1].min())
        # a box spans its height / band_height + 2 bands at most: the mean height keeps the bands entered to 3 per box
        # on average; at most 2**20 bands keep the band numbers and the keys below within int64
        mean_height = float(np.mean(np.clip(boxes[:, 3] - boxes[:, 1], 0, None)))
        band_height = max(mean_height, (float(boxes[:, 3].max()) - origin) / 2**20)
    if band_height > 0:
        first_band = np.floor((boxes[:, 1] - origin) / band_height).astype(np.int64)
        last_band = np.maximum(np.floor((boxes[:, 3] - origin) / band_height).astype(np.int64), first_band)
    else:
        first_band = last_band = np.zeros(count, dtype=np.int64)
    spans = last_band - first_band + 1
    entry_box = np.repeat(np.arange(count), spans)
    entry_band = first_band[entry_box] + np.arange(len(entry_box)) - np.repeat(np.cumsum(spans) - spans, spans)
    # x_min and x_max as ranks among the x_mins: x_min_b < x_max_a exactly when rank(x_min_b) < rank_of(x_max_a)
    sorted_x_min = np.sort(boxes[:, 0], kind="stable")
    start_rank = np.searchsorted(sorted_x_min, boxes[:, 0], side="left")
    end_rank = np.searchsorted(sorted_x_min, boxes[:, 2], side="left")
    stride = count + 1
    key = entry_band * stride + start_rank[entry_box]
    order = np.argsort(key, kind="stable")
    entry_box, entry_band, key = entry_box[order], entry_band[order], key[order]
    ends = np.searchsorted(key, entry_band * stride + end_rank[entry_box], side="left")
    counts = np.maximum(ends - np.arange(len(key)) - 1, 0)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    chunk = PAIRS_PER_CHUNK  # read at each call, so that tests can make it small
    start = 0
    while start < len(key):
        stop = max(int(np.searchsorted(bounds, bounds[start] + chunk, side="right")) - 1, start + 1)
        positions = np.arange(start, stop)
        repeats = counts[start:stop]
        offsets = np.arange(int(repeats.sum())) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        one_entry = np.repeat(positions, repeats)
        one, other = entry_box[one_entry], entry_box[one_entry + 1 + offsets]
        taken = entry_band[one_entry] == np.maximum(first_band[one], first_band[other])
        yield one[taken], other[taken]
        start = stop


def at_inner_border(boxes: np.ndarray, window: Window, height: int, width: int) -> np.ndarray:
    """Whether each box (image coordinates) reaches a border of its window that is not the image's own border: the
    window may have cut the object there."""
    x_min, y_min, x_max, y_max = window
    return (
        ((x_min > 0) & (boxes[:, 0] <= x_min + 1))
        | ((y_min > 0) & (boxes[:, 1] <= y_min + 1))
        | ((x_max < width) & (boxes[:, 2] >= x_max - 1))
        | ((y_max < height) & (boxes[:, 3] >= y_max - 1))
    )


def without_cut_parts(kept: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """`kept` (indices of candidate boxes) without the boxes that are the cut part of an object another window saw
    whole: found against an inner window border, and mostly (`CUT_PART_CONTAINED`) inside another box of the same
    class that no window border cut, or that is better (higher score, or as high and larger). Such a part often
    overlaps the whole box too little for the IoU threshold (a third of an object: IoU 0.33), so suppression alone
    reported the object twice; and one overlapping it more, scoring as high, suppressed the whole box instead.

    Only boxes that meet are compared (`_meeting_pairs`), `PAIRS_PER_CHUNK` pairs at a time: every part against every
    box at once asked for over 100 GiB for the 180,000 boxes of 625 windows."""
    if not cut[kept].any():
        return kept
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    dropped = [np.zeros(0, dtype=np.int64)]
    # a part lies 70 % inside another box only if they share some area: only boxes that meet are compared, each pair
    # once for both ways round (the common area is the same)
    for first, second in _meeting_pairs(boxes[kept]):
        one, other = kept[first], kept[second]
        candidate = (labels[one] == labels[other]) & (cut[one] | cut[other])
        one, other = one[candidate], other[candidate]
        overlap = np.clip(
            np.minimum(boxes[one, 2:], boxes[other, 2:]) - np.maximum(boxes[one, :2], boxes[other, :2]), 0, None
        ).prod(axis=1)
        for part, whole in ((one, other), (other, one)):
            better = (scores[whole] > scores[part]) | ((scores[whole] == scores[part]) & (area[whole] > area[part])) | ~cut[whole]
            inside = overlap >= CUT_PART_CONTAINED * np.maximum(area[part], 1e-6)
            dropped.append(part[cut[part] & better & inside])
    return kept[~np.isin(kept, np.concatenate(dropped))]
