"""How often each class occurs in a training split, and the inverse-frequency class weights made from it.

- `image_folder_class_counts(folder, class_names)`: image files per class folder (`folder/<class>/*`).
- `segmentation_pixel_counts(masks, num_classes)`: mask pixels per class, 255 (ignored) left out.
- `coco_pixel_counts(path_json)`: pixels per class of the semantic masks drawn from COCO polygons (index 0 the
  background), as the multitask segmentation head sees them.
- `classes_in_masks(masks, num_classes)`: the classes the masks hold, read until every class is found.
- `inverse_frequency_weights(counts, class_names)`: weights proportional to 1 / count, averaging 1 over the classes
  present; a class that never occurs gets weight 0 and a warning naming it.

Masks are read whole up to `MAX_MASKS` of them; a larger split is estimated from `MAX_MASKS` masks spread evenly
over its sorted file names (the same ones every run), which keeps the count a few seconds long on any data set.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._image_files import FolderListings
from torchbricks.datasets.labelmap import MaskColours
from torchbricks.datasets.readers import BoxDataset, CocoDataset, DataError, class_images, read_mask, visible_files

if TYPE_CHECKING:
    from torchbricks.datasets.folder_splits import FolderSplit

__all__ = [
    "MAX_MASKS",
    "classes_in_masks",
    "coco_pixel_counts",
    "image_folder_class_counts",
    "inverse_frequency_weights",
    "masks_of_split",
    "outline_pixel_counts",
    "segmentation_pixel_counts",
    "split_masks",
]

T = TypeVar("T")

MAX_MASKS = 300
"""Masks read to count pixels per class; a split with more is counted on this many, spread evenly over it."""


def image_folder_class_counts(folder: Path | str, class_names: Sequence[str], only: frozenset[str] | None = None) -> list[int]:
    """The image files of each class folder `folder/<class>/` (a missing folder counts 0), in `class_names` order;
    with `only` (`<class>/<file name>` of a split drawn from the folder), those of the split.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name, count in (("cat", 3), ("dog", 1)):
        ...     (root / name).mkdir()
        ...     for index in range(count):
        ...         _ = (root / name / f"{index}.png").write_bytes(b"")
        >>> image_folder_class_counts(root, ["cat", "dog"])
        [3, 1]
    """
    folder = Path(folder)
    counts = []
    for name in class_names:
        files = class_images(folder / name)
        relative = [f"{name}/{path.relative_to(folder / name).as_posix()}" for path in files]
        counts.append(len(files) if only is None else sum(path in only for path in relative))
    return counts


def split_masks(folder: Path | str, only: frozenset[str] | None = None, listings: FolderListings | None = None) -> list[Path]:
    """The masks of a segmentation split's images (`folder/images/<stem>.*` -> `folder/masks/<stem>.png`), of the
    images named in `only` when the split is drawn from the folder: masks without an image are not the split's. The
    folders are listed by `listings` when given (`FolderListings`: once for a data module's start-up)."""
    folder = Path(folder)
    files = visible_files if listings is None else listings.files
    by_stem = {path.stem: path for path in files(folder / "masks", (".png",))}
    images = [path for path in files(folder / "images") if only is None or path.name in only]
    return [by_stem[path.stem] for path in images if path.stem in by_stem]


def masks_of_split(split: FolderSplit, listings: FolderListings | None = None) -> list[Path]:
    """The mask files of a segmentation `FolderSplit` (`torchbricks.datasets.folder_splits`) as training reads them:
    those of the split's images (`split_masks`, no mask without an image), or in VOC's layout those of the split's
    list, which names only images with their mask."""
    if split.stems is None:
        return split_masks(split.folder, split.only, listings)
    return [split.masks / f"{stem}.png" for stem in split.stems]


def segmentation_pixel_counts(
    masks: Path | str | Sequence[Path],
    num_classes: int,
    max_masks: int = MAX_MASKS,
    foreground_255: bool = False,
    colours: MaskColours | None = None,
) -> list[int]:
    """Pixels of each class 0..num_classes-1 over the `*.png` masks of the folder `masks`, or the mask files `masks`
    (`split_masks`), 255 left out; colour masks are read by `colours` (`torchbricks.datasets.labelmap`).

    At most `max_masks` masks are read, spread evenly over the sorted file names (see the module docstring).

    Raises:
        DataError: The folder holds no mask, or a mask has a value that is neither a class nor 255.
    """
    listed = sorted(masks) if not isinstance(masks, str | Path) else visible_files(Path(masks), (".png",))
    paths = _spread(listed, max_masks)
    if not paths:
        raise DataError(f"The mask folder {str(masks)!r} holds no *.png mask to count classes in.")
    counts = np.zeros(num_classes, dtype=np.int64)
    for path in paths:
        mask = read_mask(path, foreground_255, colours)
        values = np.bincount(mask.ravel(), minlength=IGNORE_INDEX + 1)
        values[IGNORE_INDEX] = 0
        if values[num_classes:].any():
            bad = int(np.flatnonzero(values[num_classes:])[0]) + num_classes
            raise DataError(
                f"Mask {str(path)!r} has value {bad}; classes are 0 to {num_classes - 1} and {IGNORE_INDEX} is ignored."
            )
        counts += values[:num_classes]
    return counts.tolist()


def coco_pixel_counts(
    path_json: Path | str, max_images: int = MAX_MASKS, image_root: Path | str | Sequence[Path | str] | None = None
) -> list[int]:
    """Pixels of the background (index 0) and of each category (index + 1, categories in id order) in the semantic
    masks drawn from the COCO file's polygons, as `CocoDataset(with_masks=True)` draws them.

    At most `max_images` images are drawn, spread evenly over the image ids (see the module docstring); image file
    names are relative to `image_root` (`CocoDataset`).

    Raises:
        DataError: The file or an image is missing (see `CocoDataset`).
    """
    dataset = CocoDataset(path_json, image_root, with_masks=True)
    counts = np.zeros(len(dataset.class_names) + 1, dtype=np.int64)
    for index in _spread(list(range(len(dataset))), max_images):
        mask = dataset[index]["target_mask"].numpy()
        counts += np.bincount(mask.ravel(), minlength=len(counts))[: len(counts)]
    return counts.tolist()


def outline_pixel_counts(dataset: BoxDataset, max_images: int = MAX_MASKS) -> list[int]:
    """Pixels of the background (index 0) and of each class (index + 1) in the masks drawn from the outlines of a
    split of box data as the dataset draws them (`BoxDataset` with `segmentation`, `task=segmentation`'s, or with
    `with_masks`, multitask's: 255, a crowd region or an object without outline among outlined ones, left out), at
    the images' own size, at most `max_images` images spread evenly over the split.

    Raises:
        DataError: The data is bad (see the layout's reader).
    """
    counts = np.zeros(len(dataset.class_names) + 1, dtype=np.int64)
    for index in _spread(list(range(len(dataset))), max_images):
        mask = dataset.semantic_mask(index)
        counts += np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=len(counts))[: len(counts)]
    return counts.tolist()


def classes_in_masks(
    masks: Sequence[Path], num_classes: int, foreground_255: bool = False, colours: MaskColours | None = None
) -> set[int]:
    """The class indices (below `num_classes`; 255, ignored, left out) that the mask files hold, read as training reads
    them. Reading stops once every class is found: first `MAX_MASKS` masks spread evenly over the sorted names, then
    the others in order, so data holding every class costs a few masks and only a class absent (or very rare) has
    every mask read, once.

    Raises:
        DataError: A mask cannot be read (`read_mask`).
    """
    listed = sorted(masks)
    first = _spread(listed, MAX_MASKS)
    chosen = set(first)
    found: set[int] = set()
    for path in [*first, *(path for path in listed if path not in chosen)]:
        values = np.bincount(read_mask(path, foreground_255, colours).ravel(), minlength=num_classes)[:num_classes]
        found.update(np.flatnonzero(values).tolist())
        if len(found) == num_classes:
            break
    return found


def inverse_frequency_weights(
    counts: Sequence[int], class_names: Sequence[str], source: str = "the training split"
) -> list[float]:
    """Class weights proportional to 1 / count, scaled to average 1 over the classes that occur.

    A class that never occurs gets weight 0 (nothing of it is learned from this split anyway), with a warning naming
    it and `source`.

    Raises:
        DataError: No class occurs at all.

    Example:
        >>> inverse_frequency_weights([8, 2], ["common", "rare"])
        [0.4, 1.6]
    """
    counts_array = np.asarray(counts, dtype=np.float64)
    present = counts_array > 0
    if not present.any():
        raise DataError(f"No class of {list(class_names)} occurs in {source}; class weights cannot be computed from it.")
    absent = [str(name) for name, found in zip(class_names, present, strict=True) if not found]
    if absent:
        warnings.warn(
            f"Classes {absent} do not occur in {source}; their class weight is 0 (set loss.class_weights=[...] "
            "to choose weights yourself).",
            UserWarning,
            stacklevel=2,
        )
    inverse = np.divide(1.0, counts_array, out=np.zeros_like(counts_array), where=present)
    weights = inverse * present.sum() / inverse.sum()
    return [round(float(weight), 6) for weight in weights]


def _spread(items: list[T], limit: int) -> list[T]:
    """All `items` if there are at most `limit`, otherwise `limit` of them evenly spaced (the first and the last kept)."""
    if len(items) <= limit:
        return items
    return [items[int(index)] for index in np.linspace(0, len(items) - 1, limit).round()]
