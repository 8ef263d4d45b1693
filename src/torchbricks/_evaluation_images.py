"""`torchbricks evaluate --images`: how wrong the model is on each evaluated image, one CSV row per sample.

The metrics say how good a model is; this file says where it fails, so that an image the model gets wrong (often one
labelled wrong) can be opened and looked at. Each row names the sample's file (with `data.tile_size`, the image and
the tile's window `x_min,y_min,x_max,y_max`), then per head what its kind's test predictions (`predictions.png`'s,
`torchbricks.lightning.report.collect_predictions`) say of that sample:

- classification: `true`, `predicted` (class names) and `error` (1 when they differ);
- segmentation: `error`, the fraction of the scored pixels predicted wrong;
- detection and points: `true` and `predicted` (object counts; predicted: those scoring at least 0.3, as the
  pictures draw them) and `error`, the predicted objects matching no true one (at IoU 0.5 for boxes, in class) plus
  the true ones missed;
- multilabel: `error`, the classes predicted but absent plus those present but missed;
- count: `true`, `predicted` and `error`, |predicted - true| when it rounds wrong, else 0.

A head without targets in a sample's batch (a source that does not label it) leaves its cells empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchbricks._files import write_atomically
from torchbricks.errors import BrickError

__all__ = ["ImageErrors", "evaluate_images", "sample_sources", "worst_images", "write_image_errors"]

ImageErrors = tuple[list[str], list[dict[str, str]]]
"""The CSV's columns and its rows (column -> cell)."""


def sample_sources(dataset: Any) -> list[str]:
    """What each sample of `dataset` is read from, by index: its image file, with tiles the file and the tile's window
    (`a.tif@0,0,192,192`), through the datasets that wrap readers (concatenations, subsets, renamed sources); `#<n>`
    for a sample of a dataset without files (generated or in memory).

    Example:
        >>> from torch.utils.data import ConcatDataset, Subset, TensorDataset
        >>> sample_sources(ConcatDataset([Subset(TensorDataset(torch.zeros(4)), [3, 1]), TensorDataset(torch.zeros(1))]))
        ['#3', '#1', '#0']
    """
    from torch.utils.data import ConcatDataset, Subset

    from torchbricks.datasets.tiled import TiledDataset

    if isinstance(dataset, ConcatDataset):
        return [source for part in dataset.datasets for source in sample_sources(part)]
    if isinstance(dataset, Subset):
        inner = sample_sources(dataset.dataset)
        return [inner[int(index)] for index in dataset.indices]
    if isinstance(dataset, TiledDataset):
        images = sample_sources(dataset.dataset)
        return [f"{images[image]}@{','.join(str(edge) for edge in window)}" for image, window in dataset.tiles]
    return _files_read(dataset)


def _files_read(dataset: Any) -> list[str]:
    """The image file of each sample of a reader (`sample_sources`), `#<n>` for a dataset without files."""
    from torchbricks.datasets.boxes import BoxDataset
    from torchbricks.datasets.readers import ImageFolderDataset, SegmentationFolderDataset

    if isinstance(dataset, BoxDataset):
        return [str(record.path) for record in dataset.records]
    if isinstance(dataset, (ImageFolderDataset, SegmentationFolderDataset)):
        return [str(sample[0]) for sample in dataset.samples]
    inner = getattr(dataset, "dataset", None)  # a source's renamed dataset: the same samples
    if inner is not None and len(inner) == len(dataset):
        return sample_sources(inner)
    return [f"#{index}" for index in range(len(dataset))]


def evaluate_images(
    collection: Any,
    batches: Iterable[Mapping[str, Any]],
    sources: Sequence[str],
    class_names: Callable[[str], Sequence[str] | None],
) -> ImageErrors:
    """The rows of `evaluation_images.csv` (see the module docstring) for `batches` of named inputs, in order, whose
    samples are read from `sources`; `class_names(head)` names a head's classes (indices when None).

    Each batch is run through the test stage's prediction bricks and dropped before the next: the memory is a
    batch's, whatever the number of images.
    """
    from torchbricks.lightning.report import collect_predictions

    columns = ["file"]
    rows: list[dict[str, str]] = []
    device = next((parameter.device for parameter in collection.parameters()), torch.device("cpu"))
    for batch in batches:
        named = {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in batch.items()}
        size = next(len(value) for value in named.values() if isinstance(value, torch.Tensor) and value.ndim > 0)
        start = len(rows)
        rows.extend({"file": sources[start + offset] if start + offset < len(sources) else ""} for offset in range(size))
        for head in collect_predictions(collection, [named], max_samples=size):
            names = class_names(head.head)
            for column, values in _head_cells(head, names).items():
                name = f"{head.head}/{column}"
                if name not in columns:
                    columns.append(name)
                for offset, value in enumerate(values):
                    rows[start + offset][name] = value
    if len(rows) != len(sources):
        raise BrickError(
            f"evaluate --images: {len(rows)} samples were predicted and {len(sources)} files listed for them (a loader "
            "that drops or repeats samples?); the rows would name the wrong files, so none is written."
        )
    return columns, rows


def _head_cells(head: Any, names: Sequence[str] | None) -> dict[str, list[str]]:
    """Column -> a cell per sample for one head's predictions of a batch (see the module docstring)."""
    errors = head.errors()
    cells: dict[str, list[str]] = {}
    if head.kind == "classification":
        cells["true"] = [_name(int(index), names) for index in head.truth]
        cells["predicted"] = [_name(int(index), names) for index in head.prediction]
    elif head.kind in ("boxes", "points"):
        cells["true"] = [str(len(objects.labels)) for objects in head.truth]
        cells["predicted"] = [str(len(objects.labels)) for objects in head.prediction]
    elif head.kind == "count":
        cells["true"] = [f"{float(value):g}" for value in head.truth]
        cells["predicted"] = [f"{float(value):.4f}" for value in head.prediction]
    whole = head.kind in ("classification", "boxes", "points", "multilabel")
    cells["error"] = [str(int(value)) if whole else f"{float(value):.4f}" for value in np.asarray(errors)]
    return cells


def _name(index: int, names: Sequence[str] | None) -> str:
    return names[index] if names is not None and 0 <= index < len(names) else str(index)


def write_image_errors(path: Path | str, errors: ImageErrors) -> None:
    """Writes the rows as CSV (UTF-8, a file name that is no UTF-8 with its bytes), atomically."""
    columns, rows = errors
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8", errors="surrogateescape")
    write_atomically(Path(path), lambda temporary: temporary.write_bytes(data))


def worst_images(errors: ImageErrors, count: int = 5) -> dict[str, tuple[int, int, list[tuple[str, str]]]]:
    """Per head: how many samples it got wrong, of how many it was scored on, and up to `count` of the wrong ones,
    the worst first (file, error), in file order among equals.

    Example:
        >>> rows = [{"file": "a", "h/error": "0"}, {"file": "b", "h/error": "0.5"}, {"file": "c", "h/error": "1"}]
        >>> worst_images((["file", "h/error"], rows), 1)
        {'h': (2, 3, [('c', '1')])}
    """
    columns, rows = errors
    found = {}
    for column in columns:
        if not column.endswith("/error"):
            continue
        scored = [row for row in rows if row.get(column) not in (None, "")]
        wrong = sorted((row for row in scored if float(row[column]) > 0), key=lambda row: -float(row[column]))
        found[column.removesuffix("/error")] = (len(wrong), len(scored), [(row["file"], row[column]) for row in wrong[:count]])
    return found
