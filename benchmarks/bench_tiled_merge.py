"""Time and peak memory of merging one large image's detection or segmentation windows (`predict --tile`,
`--onnx --tile`).

No model: each window's outputs are generated as a detector's would be. Objects (`--sides`, 6 to 48 px by default;
3 classes) are scattered over the image at the density that puts about `--boxes` of them in each window; each window
reports the objects it shows, cut by its borders as the model sees them, moved by up to 1 px and scored per window
(the `--boxes` best, then padding rows of label -1), in the pixels of a model input of `--input` px. The windows are
merged by `torchbricks._tiled_predictions.merge_windows`, the function both backends call, timed with
`time.perf_counter` and its peak measured with `tracemalloc` (numpy reports its arrays to it), median of `--repeats`.

Run (before/after: point PYTHONPATH at each checkout's src/):

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_tiled_merge.py --size 4000 --boxes 100
    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_tiled_merge.py --size 4000 --boxes 300 --limit-gib 8

`--task segmentation` gives each window class probabilities [`--classes`, `--input`, `--input`] instead (float32,
each a copy of one of 8 random arrays, as a model returns a new array per window) and measures what a backend does
with one image: the windows predicted one after the other and merged (`WindowMerger`: added as they come; a checkout
without it: collected, then `merge_windows`, as the backends did before 2026-12-07), the peak over all of it:

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_tiled_merge.py --task segmentation --size 10000 --tile 192

4000 x 4000 px in tiles of 200 at overlap 0.2 are 625 windows. `--limit-gib` caps the process's address space, so a
merge that needs more fails with numpy's MemoryError (which names the size it asked for) instead of swapping.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import time
import tracemalloc
from collections.abc import Iterator

import numpy as np

from torchbricks._tiled_predictions import image_windows, merge_windows

try:
    from torchbricks._tiled_predictions import WindowMerger
except ImportError:  # a checkout from before the windows were merged as they came
    WindowMerger = None


def generated_windows(
    size: int, tile: int, overlap: float, boxes: int, input_side: int, seed: int, sides: tuple[float, float] = (6, 48)
) -> list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]]:
    """The windows of a size x size image with a detector's outputs for each (see the module docstring)."""
    generator = np.random.default_rng(seed)
    # objects overlapping a window: density x (tile + mean side)^2
    count = int(boxes * size * size / (tile + sum(sides) / 2) ** 2)
    centres = generator.uniform(0, size, (count, 2))
    extents = generator.uniform(*sides, (count, 2))
    objects = np.concatenate([centres - extents / 2, centres + extents / 2], axis=1).clip(0, size)
    labels = generator.integers(0, 3, count)
    quality = generator.uniform(0.3, 1.0, count)
    scale = input_side / tile
    parts = []
    for window in image_windows(size, size, tile, overlap):
        x_min, y_min, x_max, y_max = window
        shown = np.flatnonzero(
            (objects[:, 0] < x_max) & (objects[:, 2] > x_min) & (objects[:, 1] < y_max) & (objects[:, 3] > y_min)
        )
        seen = objects[shown] - np.array([x_min, y_min, x_min, y_min])
        seen = (seen + generator.uniform(-1, 1, seen.shape)).clip(0, tile)
        scores = (quality[shown] * generator.uniform(0.8, 1.0, len(shown))).astype(np.float32)
        best = np.argsort(-scores, kind="stable")[:boxes]
        found = np.zeros((boxes, 4), dtype=np.float32)
        found[: len(best)] = seen[best] * scale
        found_scores = np.zeros(boxes, dtype=np.float32)
        found_scores[: len(best)] = scores[best]
        found_labels = np.full(boxes, -1, dtype=np.int64)
        found_labels[: len(best)] = labels[shown][best]
        parts.append((window, {"det/boxes": found, "det/scores": found_scores, "det/labels": found_labels}))
    return parts


def segmentation_windows(
    size: int, tile: int, overlap: float, classes: int, input_side: int, seed: int
) -> tuple[list[tuple[int, int, int, int]], Iterator[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]]]:
    """The windows of a size x size image and an iterator giving each with a segmentation head's outputs, one at a
    time (see the module docstring)."""
    generator = np.random.default_rng(seed)
    pool = generator.uniform(0.01, 1.0, (8, classes, input_side, input_side)).astype(np.float32)
    pool /= pool.sum(axis=1, keepdims=True)
    windows = image_windows(size, size, tile, overlap)

    def outputs() -> Iterator[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]]:
        for index, window in enumerate(windows):
            yield window, {"seg/probabilities": pool[index % len(pool)].copy()}

    return windows, outputs()


def merge_segmentation(args: argparse.Namespace) -> dict[str, object]:
    """Predicts (generates) and merges one image's segmentation windows; its time, peak and mask's classes."""
    planned, windows = segmentation_windows(args.size, args.tile, args.overlap, args.classes, args.input, args.seed)
    heads, size = {"seg": "segmentation"}, (args.input, args.input)
    tracemalloc.start()
    start = time.perf_counter()
    if WindowMerger is not None:
        merger = WindowMerger(heads, args.size, args.size, input_size=size, tile=args.tile, windows=planned)
        for window, output in windows:
            merger.add(window, output)
        result = merger.result()
    else:
        result = merge_windows(heads, list(windows), args.size, args.size, input_size=size, tile=args.tile)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    mask = result["seg"]["mask"]
    return {
        "windows": len(planned),
        "seconds": round(seconds, 2),
        "peak_traced_mib": round(peak, 1),
        "mask": f"{mask.dtype} {list(mask.shape)}",
        "mask_digest": hashlib.sha256(np.ascontiguousarray(mask, dtype=np.int64).tobytes()).hexdigest()[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("detection", "segmentation"), default="detection")
    parser.add_argument("--classes", type=int, default=5, help="segmentation: classes of the probabilities")
    parser.add_argument("--size", type=int, default=4000, help="side of the square image (px)")
    parser.add_argument("--tile", type=int, default=200)
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--boxes", type=int, default=100, help="boxes the detector gives per window")
    parser.add_argument("--sides", type=float, nargs=2, default=(6, 48), help="objects' sides: lowest, highest (px)")
    parser.add_argument("--input", type=int, default=192, help="side of the model's input (px)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-gib", type=float, default=None, help="cap the address space (RLIMIT_AS)")
    args = parser.parse_args()
    if args.task == "segmentation":
        if args.limit_gib is not None:
            limit = int(args.limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            report = merge_segmentation(args)
        except MemoryError as failure:
            report = {"memory_error": str(failure)}
        report["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(report))
        return
    parts = generated_windows(args.size, args.tile, args.overlap, args.boxes, args.input, args.seed, tuple(args.sides))
    if args.limit_gib is not None:
        limit = int(args.limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    seconds, peaks, found, error = [], [], 0, None
    for _ in range(args.repeats):
        tracemalloc.start()
        start = time.perf_counter()
        try:
            result = merge_windows(
                {"det": "detection"}, parts, args.size, args.size, input_size=(args.input, args.input), tile=args.tile
            )
        except MemoryError as failure:
            error = str(failure)
            tracemalloc.stop()
            break
        seconds.append(time.perf_counter() - start)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
        found = len(result["det"]["boxes"])
    report = {
        "windows": len(parts),
        "boxes_in": int(sum((output["det/labels"] >= 0).sum() for _, output in parts)),
        "boxes_out": found,
        "seconds": [round(value, 3) for value in seconds],
        "median_seconds": round(statistics.median(seconds), 3) if seconds else None,
        "peak_traced_mib": round(max(peaks), 1) if peaks else None,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "memory_error": error,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
