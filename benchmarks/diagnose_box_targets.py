"""The box detector's training targets at two commits, on a data set's tiles as the packaged job reads them.

    PYTHONPATH=src .venv/bin/python benchmarks/diagnose_box_targets.py build/suite/data/trees/detection \
        [--before 67504df^] [--overrides data.tile_size=192] [--train-epochs 3]

Reads the samples of each split through the data module of the packaged detection job
(`torchbricks train task=detection data.root=ROOT <overrides>`: its tiling, resizing and, for one split, the training
augmentations and jittered windows over `--train-epochs` epochs with seed 0), then renders the heatmap, box and ignored
targets at the job's finest stride with `render_box_targets` and `ignored_cells` of this checkout ("new") and of the
commit `--before` ("old", its `_box_geometry.py` read with `git show`), and compares them:

- the round trip: a perfect head (heatmap logits from the target heatmap, the target side distances at every cell
  with a box target, held to what each code's head can output: above 0 before the distance floor, above
  `MIN_DISTANCE` after) decoded by each code's decoder and NMS, and scored with `BoxMeanAveragePrecision`
  against the true boxes, with the crowns decoded exactly, matched at IoU 0.5 and lost;
- objects smaller than the stride, objects sharing their centre cell, objects whose centre-cell distance target is
  below 0 (the ones that need the head's floor);
- cells whose assigned box differs between the codes (and whether the new one is smaller or larger), cells trained
  by one code only, seams of the box-target field (adjacent cells regressing other boxes) with their mean jump of the
  side targets, isolated cells, and the ignored-heatmap cells.

A diagnostic of the encoding alone: no model is trained. Deterministic for a given data set.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from torchbricks.bag_of_bricks import _box_geometry as new_geometry
from torchbricks.bag_of_bricks._box_metrics import BoxMeanAveragePrecision
from torchbricks.bag_of_bricks._heatmaps import gather_cells, heatmap_peaks
from torchbricks.bag_of_bricks.object_detection import MIN_DISTANCE, BoxDecoder

GEOMETRY = "src/torchbricks/bag_of_bricks/_box_geometry.py"
Tiles = list[tuple[torch.Tensor, torch.Tensor]]


def geometry_at(commit: str, repo: Path) -> types.ModuleType:
    """`_box_geometry.py` of `commit` as a module (it imports torch only)."""
    command = ["git", "-C", str(repo), "show", f"{commit}:{GEOMETRY}"]
    source = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    module = types.ModuleType(f"box_geometry_{commit}")
    exec(compile(source, f"{commit}:{GEOMETRY}", "exec"), module.__dict__)  # the repository's own file
    return module


def decode_positive(
    geometry: Any, heatmap_logits: torch.Tensor, distances: torch.Tensor, stride: int, max_detections: int = 50
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`BoxDecoder.forward` before 67504df: its distances were positive, so no box had crossed sides to mend."""
    scores, cells, labels = heatmap_peaks(heatmap_logits, max_detections)
    boxes = gather_cells(geometry.distances_to_boxes(distances, stride).permute(0, 3, 1, 2), cells).transpose(1, 2)
    keep = geometry.matrix_nms(boxes, scores, labels, 0.5, 8) & (scores >= 0.05)
    boxes = torch.where(keep.unsqueeze(-1), boxes, torch.zeros_like(boxes))
    labels = torch.where(keep, labels, torch.full_like(labels, -1))
    return boxes, torch.where(keep, scores, torch.zeros_like(scores)), labels


def job_tiles(root: Path, overrides: Sequence[str], train_epochs: int) -> tuple[dict[str, Tiles], int, int]:
    """(boxes [N, 4], labels [N]) of every sample of each split as the packaged detection job reads them, the
    training split both as evaluated (fixed windows) and as trained; with the job's input side and finest stride."""
    import hydra

    from torchbricks.configuration.compose import compose_config
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    config = compose_config(["task=detection", f"data.root={root}", *overrides])
    stride = int(config.model.finest_stride)
    sets: dict[str, Tiles] = {}
    for evaluation in (True, False):
        module = hydra.utils.instantiate(config.data)
        if evaluation:
            module.read_for_evaluation()
        module.prepare_datasets()
        torch.manual_seed(0)
        for split in ("train", "validation", "test") if evaluation else ("train",):
            dataset, epochs = module.datasets[split], 1 if evaluation else train_epochs
            name = f"{split} (as trained, {epochs} epochs)" if not evaluation else split
            sets[name] = [
                (sample["target_boxes"].float(), sample["target_labels"])
                for _ in range(epochs)
                for sample in (dataset[index] for index in range(len(dataset)))
            ]
    height, width = (int(side) for side in module.image_size)
    if height != width:
        raise SystemExit(f"a square input is assumed; the job reads {height}x{width}")
    return sets, height, stride


def padded(tiles: Tiles) -> tuple[torch.Tensor, torch.Tensor]:
    count = max(1, *(len(labels) for _, labels in tiles))
    boxes = torch.zeros(len(tiles), count, 4)
    labels = torch.full((len(tiles), count), -1, dtype=torch.int64)
    for row, (tile_boxes, tile_labels) in enumerate(tiles):
        boxes[row, : len(tile_labels)] = tile_boxes
        labels[row, : len(tile_labels)] = tile_labels
    return boxes, labels


def side_targets(assigned: torch.Tensor, stride: int) -> torch.Tensor:
    """Side distances [B, 4, h, w] in cells from each cell's centre to its assigned box [B, h, w, 4]."""
    xs, ys = new_geometry.cell_centers(assigned.shape[1], assigned.shape[2], stride, assigned)
    sides = (xs - assigned[..., 0], ys - assigned[..., 1], assigned[..., 2] - xs, assigned[..., 3] - ys)
    return torch.stack(sides, dim=1) / stride


def assigned_index(assigned: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The index [B, h, w] of the first box equal to each cell's assigned box."""
    return (assigned[:, :, :, None, :] == boxes[:, None, None, :, :]).all(-1).float().argmax(-1)


def iou_matrix(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    low = torch.maximum(first[:, None, :2], second[None, :, :2])
    high = torch.minimum(first[:, None, 2:], second[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    area_first = (first[:, 2:] - first[:, :2]).clamp(min=0).prod(-1)
    area_second = (second[:, 2:] - second[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_first[:, None] + area_second[None] - inter).clamp(min=1e-9)


def seams(index: torch.Tensor, weight: torch.Tensor, sides: torch.Tensor) -> tuple[int, int, float, int]:
    """Adjacent trained pairs, those regressing other boxes (seams), the seams' mean L1 jump of the side targets
    (cells), and trained cells whose every trained neighbour regresses another box."""
    trained = weight > 0
    pairs = seam_count = 0
    jump = 0.0
    differs_all = torch.ones_like(trained)
    has_neighbour = torch.zeros_like(trained)
    for dy, dx in ((0, 1), (1, 0)):
        first = (slice(None), slice(0, index.shape[1] - dy), slice(0, index.shape[2] - dx))
        second = (slice(None), slice(dy, None), slice(dx, None))
        both = trained[first] & trained[second]
        different = both & (index[first] != index[second])
        pairs += int(both.sum())
        seam_count += int(different.sum())
        jump += float((sides[:, :, first[1], first[2]] - sides[:, :, second[1], second[2]]).abs().sum(1)[different].sum())
        for one, other in ((first, second), (second, first)):
            has_neighbour[one] |= both
            differs_all[one] &= ~(both & (index[one] == index[other]))
    return pairs, seam_count, jump / max(seam_count, 1), int((trained & has_neighbour & differs_all).sum())


def round_trip(
    code: str, geometry: Any, rendered: tuple[torch.Tensor, ...], boxes: torch.Tensor, labels: torch.Tensor, stride: int
) -> dict[str, float]:
    """A perfect head's output decoded by the code's decoder, scored against the true boxes."""
    heat, assigned, weight = rendered[:3]
    logits = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    untrained = torch.full_like(weight[:, None].expand(-1, 4, -1, -1), 3.0)  # a cell without a box target
    floor = 0.0 if code == "old" else MIN_DISTANCE
    distances = torch.where(weight[:, None] > 0, side_targets(assigned, stride), untrained).clamp(min=floor + 1e-4)
    decoded = (
        decode_positive(geometry, logits, distances, stride)
        if code == "old"
        else BoxDecoder(stride=stride, max_detections=50)(logits, distances)
    )
    metric = BoxMeanAveragePrecision(class_names=["object"], max_detections=50)
    metric.update(*decoded, boxes, labels)
    values = metric.compute()
    exact = matched = 0
    valid = labels >= 0
    for row in range(len(boxes)):
        truth, found = boxes[row][valid[row]], decoded[0][row][decoded[2][row] >= 0]
        if len(truth):
            best = iou_matrix(truth, found).max(1).values if len(found) else torch.zeros(len(truth))
            exact, matched = exact + int((best > 0.999).sum()), matched + int((best >= 0.5).sum())
    return {
        f"{code}: round trip mAP@0.5": float(values["map_50"]),
        f"{code}: round trip mAP@0.5:0.95": float(values["map"]),
        f"{code}: objects decoded exactly (IoU > 0.999)": exact,
        f"{code}: objects lost (no box at IoU >= 0.5)": int(valid.sum()) - matched,
    }


def analyse(tiles: Tiles, side: int, stride: int, old_geometry: Any) -> dict[str, float]:
    boxes, labels = padded(tiles)
    size = (-(-side // stride), -(-side // stride))
    valid, ignored_box = labels >= 0, labels <= -2
    extent = boxes[..., 2:] - boxes[..., :2]
    cells = new_geometry._centre_cells(boxes, *size, stride)
    flat = (cells[..., 1] * size[1] + cells[..., 0]).long()
    sharing = (flat[:, :, None] == flat[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    sharing &= ~torch.eye(flat.shape[1], dtype=torch.bool)[None]
    centre_x, centre_y = (cells[..., 0] + 0.5) * stride, (cells[..., 1] + 0.5) * stride
    centre_sides = torch.stack(
        (centre_x - boxes[..., 0], centre_y - boxes[..., 1], boxes[..., 2] - centre_x, boxes[..., 3] - centre_y), -1
    )
    stats: dict[str, float] = {
        "samples": len(tiles),
        "objects": int(valid.sum()),
        "ignored boxes": int(ignored_box.sum()),
        "objects with a side < stride": int((valid & (extent.min(-1).values < stride)).sum()),
        "ignored boxes with a side < stride": int((ignored_box & (extent.min(-1).values < stride)).sum()),
        "objects sharing their centre cell": int(sharing.any(-1).sum()),
        "objects with a centre-cell distance target < 0": int((valid & (centre_sides.min(-1).values < 0)).sum()),
    }
    rendered = {}
    for code, geometry in (("old", old_geometry), ("new", new_geometry)):
        heat, assigned, weight = geometry.render_box_targets(boxes, labels, 1, size, stride)
        index = assigned_index(assigned, boxes)
        ignored = geometry.ignored_cells(boxes, labels, 1, size, stride)
        sides = side_targets(assigned, stride)
        rendered[code] = (heat, assigned, weight, index, ignored)
        trained = weight > 0
        at_centre = gather_cells(torch.stack((index.float(), weight), 1), flat)  # [B, 2, N]
        own = (at_centre[:, 0].long() == torch.arange(flat.shape[1])[None]) & (at_centre[:, 1] > 0)
        pairs, seam_count, jump, isolated = seams(index, weight, sides)
        stats |= {
            f"{code}: cells with a box target": int(trained.sum()),
            f"{code}: box weight": float(weight.sum()),
            f"{code}: ignored heatmap cells": int(ignored.sum()),
            f"{code}: box cells with a distance target < 0": int((trained & (sides.min(1).values < 0)).sum()),
            f"{code}: objects whose centre cell regresses another box": int((valid & ~own & (at_centre[:, 1] > 0)).sum()),
            f"{code}: objects whose centre cell regresses nothing": int((valid & (at_centre[:, 1] == 0)).sum()),
            f"{code}: adjacent box cells": pairs,
            f"{code}: seams (adjacent cells, other boxes)": seam_count,
            f"{code}: mean jump across a seam (cells, L1)": jump,
            f"{code}: isolated box cells": isolated,
        }
        stats |= round_trip(code, geometry, rendered[code], boxes, labels, stride)
    old, new = rendered["old"], rendered["new"]
    area = extent.clamp(min=0).prod(-1)
    old_area = torch.gather(area, 1, old[3].flatten(1)).view_as(old[3])
    new_area = torch.gather(area, 1, new[3].flatten(1)).view_as(new[3])
    changed = (old[2] > 0) & (new[2] > 0) & (old[3] != new[3])
    stats |= {
        "cells regressing another box (new vs old)": int(changed.sum()),
        "  of them a smaller box now": int((changed & (new_area < old_area)).sum()),
        "  of them a larger box now": int((changed & (new_area > old_area)).sum()),
        "cells with a box target in one code only": int(((old[2] > 0) != (new[2] > 0)).sum()),
        "cells whose box weight differs": int((old[2] != new[2]).sum()),
        "cells whose heatmap target differs": int((old[0] != new[0]).sum()),
        "cells whose ignored mark differs": int((old[4] != new[4]).sum()),
    }
    return stats


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the data set's folder (data.root)")
    parser.add_argument("--before", default="67504df^", help="the commit whose targets are the old ones (default: 67504df^)")
    parser.add_argument(
        "--overrides", nargs="*", default=["data.tile_size=192"], help="job overrides (default: the suite's trees)"
    )
    parser.add_argument("--train-epochs", type=int, default=3, help="augmented training epochs read (seed 0)")
    arguments = parser.parse_args(argv)
    old_geometry = geometry_at(arguments.before, Path(__file__).resolve().parents[1])
    sets, side, stride = job_tiles(arguments.root, arguments.overrides, arguments.train_epochs)
    print(f"input {side} px, stride {stride}, old: {arguments.before}, new: this checkout", file=sys.stderr)
    results = {name: analyse(tiles, side, stride, old_geometry) for name, tiles in sets.items()}
    names = list(results)
    print("| measure | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for key in results[names[0]]:
        values = [results[name][key] for name in names]
        print(f"| {key} | " + " | ".join(f"{value:.4g}" if isinstance(value, float) else str(value) for value in values) + " |")


if __name__ == "__main__":
    main()
