"""Box data, whatever its layout (COCO, YOLO, Pascal VOC): the parsed records (`BoxImage`, `BoxObject`), the checks
of a box against its image, and `BoxDataset`, the samples every box reader serves."""

from __future__ import annotations

import dataclasses
import math
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._extras import require
from torchbricks.datasets._reading import (
    BOX_TOLERANCE,
    SWAPPED_BY_EXIF,
    DataError,
    Transform,
    apply_transform,
    load_rgb,
    to_image,
    torchvision_parts,
    turned_by_exif,
)
from torchbricks.datasets.image_cache import ResizedImageCache
from torchbricks.datasets.polygons import rasterize_polygons
from torchbricks.errors import BrickError

PRESENCE_IGNORED = -1
"""`target_classes` of a class whose only objects in the image are ignored (crowd regions, objects a tile cuts): the
multi-label loss and metrics (`ignore_index`) leave it out."""

__all__ = [
    "PRESENCE_IGNORED",
    "BoxDataset",
    "BoxImage",
    "BoxObject",
    "box_problem",
    "clip_box",
    "decode_rle",
    "has_outline",
    "image_size_problem",
    "outline_points",
]

# --- Boxes: the samples of every box layout -----------------------------------------------------------------------


@dataclass
class BoxObject:
    """One annotated object: its box `(x_min, y_min, x_max, y_max)` in pixels, its class index, its outline (COCO
    polygons or RLE, None when the box stands in for it) and whether evaluation ignores it: a Pascal VOC `difficult`
    object, or a COCO crowd region (`iscrowd: 1`, whose pixels the semantic mask marks as ignored)."""

    box: tuple[float, float, float, float]
    label: int
    segmentation: Any = None
    difficult: bool = False
    crowd: bool = False

    @property
    def ignored(self) -> bool:
        """Neither trained on nor counted by the mAP (`BoxDataset`)."""
        return self.difficult or self.crowd


def has_outline(item: BoxObject) -> bool:
    """Whether the object has an outline to draw (COCO polygons or RLE, a YOLO segmentation line), not a box alone (a
    YOLO box line, a COCO annotation whose segmentation is missing or `[]`).

    Example:
        >>> has_outline(BoxObject((0, 0, 2, 2), 0, [[0, 0, 2, 0, 2, 2]])), has_outline(BoxObject((0, 0, 2, 2), 0, []))
        (True, False)
    """
    return isinstance(item.segmentation, dict) or (isinstance(item.segmentation, list) and bool(item.segmentation))


@dataclass
class BoxImage:
    """One image of a box data set: its file, its size (width, height) as the annotations state it, its objects and
    the annotation file (and place in it) that describes it, for messages."""

    path: Path
    width: int
    height: int
    objects: list[BoxObject] = field(default_factory=list)
    source: str = ""


def box_problem(
    box: Sequence[float], width: float, height: float, tolerance: tuple[float, float] = (BOX_TOLERANCE, BOX_TOLERANCE)
) -> bool:
    """Whether a box `(x_min, y_min, x_max, y_max)` is empty, reaches past its image by more than `tolerance`
    (pixels across, pixels down), lies outside it within that tolerance (empty once cut to the image, `clip_box`: it
    would be a true box no detection can match) or has a coordinate that is not a finite number (`nan`, which every
    comparison below would let through).

    Example:
        >>> box_problem((0, 0, 10, 10), 10, 10), box_problem((0, 0, 11.5, 10), 10, 10), box_problem((4, 0, 4, 10), 10, 10)
        (False, True, True)
        >>> box_problem((float("nan"), 0, 10, 10), 10, 10), box_problem((10, 0, 10.5, 10), 10, 10)
        (True, True)
    """
    if not all(math.isfinite(coordinate) for coordinate in box):
        return True
    x_min, y_min, x_max, y_max = box
    across, down = tolerance
    outside = x_min < -across or y_min < -down or x_max > width + across or y_max > height + down
    # what is left inside, beyond rounding (a YOLO line 1.005 0.01 wide ends at 0.99999999999999 of the image)
    inside = min(x_max, width) - max(x_min, 0.0) > _INSIDE and min(y_max, height) - max(y_min, 0.0) > _INSIDE
    return x_max <= x_min or y_max <= y_min or outside or not inside


_INSIDE = 1e-6
"""Pixels of a box that must lie inside its image, across and down (more than rounding leaves of a box outside it)."""


def clip_box(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """The box cut to its image."""
    return (max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height))


def image_size_problem(image: BoxImage, size: tuple[int, int]) -> str | None:
    """The message when an image file's size (width, height) differs from what its annotations say, or None."""
    if size == (image.width, image.height):
        return None
    message = f"Image {str(image.path)!r} is {size[0]}x{size[1]}; {image.source} says {image.width}x{image.height}."
    if size == (image.height, image.width) and turned_by_exif(image.path):
        message += SWAPPED_BY_EXIF.format(what="the annotations were", fix="annotate it")
    return message


class BoxDataset(Dataset[dict[str, Any]]):
    """Images with boxes as samples `{"raw", "target_boxes" [N, 4] (x_min, y_min, x_max, y_max), "target_labels" [N]}`,
    the sample path that every box layout shares (`CocoDataset`, `YoloDataset`, `VocDataset` parse their files into
    `BoxImage` records and leave the rest to this class).

    An object that evaluation ignores (`BoxObject.ignored`: VOC difficult, COCO crowd) keeps its box with the label
    `-2 - class index`: the loss and the drawings skip negative labels as they skip the padding (-1), and
    `BoxMeanAveragePrecision` counts it as neither a ground truth nor, when detected, a false positive. An object
    identical to an earlier one of the same image (same class, box, outline and flags: a label line written twice, as
    labelling tools and merged exports do) is read once, as Ultralytics reads a repeated label line: kept, it would be
    a ground truth no detection can match, lowering the mAP, and a box trained on twice; `duplicates` counts them per
    image (`duplicates_notice` says so). With `with_masks`, each sample also has `target_mask` (int64 [H, W]: class
    index + 1, 0 the background, drawn in object order from the outlines, a crowd region's pixels 255, ignored) and
    `target_classes` (int64 [K]: 1 for each class with a box in the image, `PRESENCE_IGNORED` (-1) for a class whose
    only objects are ignored ones, a crowd region or an object a tile cuts, whose presence is then neither right nor
    wrong: the multi-label loss and metrics leave it out, as the detection metric leaves out the object).

    An object without outline (`has_outline`: a YOLO box line, a COCO annotation with an empty segmentation) among
    outlined ones has its box drawn as `IGNORE_INDEX` (255), with the crowd regions, before the outlines (an outlined
    object keeps its pixels there): drawn as the class, its box would teach the box's background pixels as the class.
    Only in a split without any outline (box data) does the box stand in for the outline, drawn as the class
    (`unoutlined_ignored`). `unoutlined` counts such objects.

    With `segmentation` (semantic segmentation from outlines, `task=segmentation` on COCO or YOLO data) the samples
    are `{"raw", "targets"}`, `targets` the mask `with_masks` draws, an object without outline always drawn ignored
    (a split without any outline is refused by the data module).

    Args:
        images: The records.
        class_names: The classes in index order.
        with_masks: Also give the semantic mask and the classes present (the multitask targets).
        transform: A `torchvision.transforms.v2` transform of `{"image", "boxes", "labels"[, "mask"]}`.
        segmentation: Serve semantic segmentation samples (implies `with_masks`).
    """

    reading_notice: str | None = None
    """How the layout's files were read, when the data module and `check-data` should say so (`VocDataset`: boxes
    read as pixel edges from 0); None when there is nothing to say."""

    image_cache: ResizedImageCache | None = None
    """Reads the images at the transform's size and keeps them between epochs (the data modules set it for their
    training and validation splits; the boxes keep the decoded size as their canvas, which the transform's resize maps
    to the input size); with `with_masks` it also keeps the masks drawn from the outlines, at the input size, so each
    is drawn once rather than at every epoch. None decodes each image and draws each mask whenever it is read."""

    def __init__(
        self,
        images: Sequence[BoxImage],
        class_names: Sequence[str],
        with_masks: bool = False,
        transform: Transform | None = None,
        segmentation: bool = False,
    ) -> None:
        self.records = list(images)
        self.duplicates: dict[Path, int] = {}
        """Image -> how many of its objects repeated an earlier one exactly and were dropped."""
        for record in self.records:
            kept = _without_duplicates(record.objects)
            if len(kept) < len(record.objects):
                self.duplicates[record.path] = len(record.objects) - len(kept)
                record.objects = kept
        self.class_names = list(class_names)
        self.with_masks = False
        self.segmentation = False
        self.unoutlined_ignored = False
        """Whether the masks draw the box of an object without outline as `IGNORE_INDEX` rather than as its class:
        with `segmentation`, and for the multitask masks when the split has an outlined object (`draw_masks`)."""
        if with_masks or segmentation:
            self.draw_masks(segmentation)
        self.transform = transform

    def draw_masks(self, segmentation: bool = False) -> None:
        """From now on the samples have the masks drawn from the outlines: the multitask targets, or with
        `segmentation` the semantic segmentation samples (see the class). An object without outline is drawn as
        ignored with `segmentation` or when an object of the split has an outline, else (box data) as its box.

        Raises:
            DataError: The classes do not fit a mask (255 or more).
        """
        if len(self.class_names) >= IGNORE_INDEX:  # drawn as index + 1: the 255th class would be 255
            raise DataError(
                f"{len(self.class_names)} classes do not fit the semantic masks drawn from their outlines: a mask "
                f"holds the background 0, the classes 1 to {IGNORE_INDEX - 1} and {IGNORE_INDEX} for ignored pixels, "
                f"so class {self.class_names[IGNORE_INDEX - 1]!r} (the {IGNORE_INDEX}th) would be drawn as ignored. "
                f"Segmentation and multitask take at most {IGNORE_INDEX - 1} classes; task=detection takes any number."
            )
        self.with_masks = True
        self.segmentation = segmentation
        self.unoutlined_ignored = segmentation or self.unoutlined()[2] > 0

    def __len__(self) -> int:
        return len(self.records)

    def object_counts(self, outlined: bool = False) -> tuple[list[int], list[int]]:
        """Per class, in index order: the objects trained on, and those ignored (crowd regions, difficult objects and,
        with `outlined`, objects without outline, which the segmentation masks draw ignored), read from the parsed
        records (no image is decoded).

        Example:
            >>> records = [BoxImage(Path("a.png"), 8, 8, [BoxObject((0, 0, 2, 2), 1), BoxObject((2, 2, 4, 4), 0, crowd=True)])]
            >>> BoxDataset(records, ["cat", "dog", "bird"]).object_counts()
            ([0, 1, 0], [1, 0, 0])
            >>> BoxDataset(records, ["cat", "dog", "bird"]).object_counts(outlined=True)
            ([0, 0, 0], [1, 1, 0])
        """
        trained, ignored = [0] * len(self.class_names), [0] * len(self.class_names)
        for record in self.records:
            for item in record.objects:
                (ignored if item.ignored or (outlined and not has_outline(item)) else trained)[item.label] += 1
        return trained, ignored

    def unoutlined(self) -> tuple[int, int, int]:
        """The objects without outline (`has_outline`; crowd regions and difficult objects left out, being ignored
        anyway), the images holding one, and the objects with an outline, read from the parsed records.

        Example:
            >>> objects = [BoxObject((0, 0, 2, 2), 1), BoxObject((2, 2, 4, 4), 0, [[2, 2, 4, 2, 4, 4]])]
            >>> BoxDataset([BoxImage(Path("a.png"), 8, 8, objects)], ["cat", "dog"]).unoutlined()
            (1, 1, 1)
        """
        without = images = outlined = 0
        for record in self.records:
            kept = [item for item in record.objects if not item.ignored]
            missing = sum(not has_outline(item) for item in kept)
            without, images, outlined = without + missing, images + bool(missing), outlined + len(kept) - missing
        return without, images, outlined

    def use_class_names(self, class_names: Sequence[str]) -> None:
        """Numbers the objects' classes as `class_names` (a trained experiment's, which hold every class of this data
        set: `torchbricks evaluate` on data labelled with some of them) number them, by name; the boxes, the masks
        drawn from the outlines (class index + 1) and the presence targets follow. Numbering by the same list twice
        changes nothing.

        Raises:
            DataError: A class of this data set is not in `class_names`.

        Example:
            >>> records = [BoxImage(Path("a.png"), 8, 8, [BoxObject((0, 0, 2, 2), 1)])]
            >>> dataset = BoxDataset(records, ["cat", "dog"])
            >>> dataset.use_class_names(["bird", "dog", "cat"])
            >>> dataset.records[0].objects[0].label, dataset.class_names
            (1, ['bird', 'dog', 'cat'])
        """
        names = list(class_names)
        if names == self.class_names:
            return
        index_of = {name: index for index, name in enumerate(names)}
        unknown = [name for name in self.class_names if name not in index_of]
        if unknown:
            raise DataError(f"The classes {unknown} of this data are not among {names}.")
        moved = [index_of[name] for name in self.class_names]
        # new records: a parsed record may be shared with another split's data set (files are read once)
        self.records = [
            dataclasses.replace(record, objects=[dataclasses.replace(item, label=moved[item.label]) for item in record.objects])
            for record in self.records
        ]
        self.class_names = names

    def duplicates_notice(self, split: str) -> str | None:
        """What the training job and `check-data` say of the objects dropped as exact repeats (`duplicates`), naming
        the count and the first images; None when there were none."""
        if not self.duplicates:
            return None
        count, images = sum(self.duplicates.values()), list(self.duplicates)
        shown = ", ".join(repr(str(path)) for path in images[:3]) + (", ..." if len(images) > 3 else "")
        return (
            f"{count} object{'s' if count > 1 else ''} in {len(images)} image{'s' if len(images) > 1 else ''} of the "
            f"{split!r} split ({shown}) repeat{'' if count > 1 else 's'} another of the same image exactly (same class "
            f"and box: an annotation written twice) and {'are' if count > 1 else 'is'} read once."
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load_sample(index)
        return self.named_sample(self.transform(sample) if self.transform is not None else sample)

    def image_size_at(self, index: int) -> tuple[int, int]:
        """`(height, width)` of sample `index` as its annotations state it (checked against the file when decoded)."""
        record = self.records[index]
        return record.height, record.width

    def load_sample(self, index: int) -> dict[str, Any]:
        """Sample `index` decoded, before any transform: `{"image": uint8 Image, "boxes": BoundingBoxes (XYXY),
        "labels"}` (ignored objects as `-2 - class index`), with `"mask"` (Mask [H, W]) when `with_masks`.

        Raises:
            DataError: The image's size differs from its annotations'.
        """
        tv_tensors, _ = torchvision_parts()
        record = self.records[index]
        if self.image_cache is not None:
            image, (width, height) = self.image_cache.image(record.path)  # at the input size: the boxes keep their canvas
        else:
            picture = load_rgb(record.path)
            image, (width, height) = to_image(picture), picture.size
        problem = image_size_problem(record, (width, height))
        if problem is not None:
            raise DataError(problem)
        objects = record.objects
        boxes = torch.tensor([item.box for item in objects], dtype=torch.float32).reshape(-1, 4)
        labels = [-2 - item.label if item.ignored else item.label for item in objects]
        sample: dict[str, Any] = {
            "image": image,
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        if self.with_masks:
            if self.image_cache is not None:  # drawn once, at the input size, as the transform's resize leaves it
                sample["mask"] = self.image_cache.drawn_mask(
                    _drawing_source(record, self.unoutlined_ignored), lambda: self._semantic_mask(record)
                )
            else:
                sample["mask"] = tv_tensors.Mask(torch.from_numpy(self._semantic_mask(record)))
        if getattr(self.transform, "uses_outlines", False) and all(_polygons(item) for item in objects):
            # RandomRotationTightBoxes turns by any angle and makes the boxes from them; an image with an object
            # without polygons gets none and is turned by right angles, so that no box of it becomes loose
            from torchbricks.datasets.augmentations import Outlines

            sample["outlines"] = Outlines.from_points(outline_points(objects), (height, width))
        return sample

    def named_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The named tensors of a (transformed) sample of `load_sample` (see the class), the image as float in [0, 1]."""
        sample = apply_transform(None, sample)
        named = {
            "raw": sample["image"],
            "target_boxes": sample["boxes"].as_subclass(torch.Tensor).float(),
            "target_labels": sample["labels"],
        }
        if self.segmentation:
            return {"raw": named["raw"], "targets": sample["mask"].as_subclass(torch.Tensor).long()}
        if self.with_masks:
            named["target_mask"] = sample["mask"].as_subclass(torch.Tensor).long()
            present = torch.zeros(len(self.class_names), dtype=torch.int64)
            labels = sample["labels"]
            present[-2 - labels[labels <= -2]] = PRESENCE_IGNORED  # a class seen only in ignored objects: unknown
            present[labels[labels >= 0]] = 1
            named["target_classes"] = present
        return named

    def semantic_mask(self, index: int, segmentation: bool | None = None) -> np.ndarray:
        """The mask of sample `index` drawn from its outlines at its annotations' size, before any transform (int64
        [H, W], see the class): an object without outline drawn ignored as `segmentation` says, by default as the
        dataset draws it (`unoutlined_ignored`).

        Example:
            >>> objects = [BoxObject((0, 0, 2, 2), 1), BoxObject((1, 1, 4, 3), 0, [[1, 1, 4, 1, 4, 3, 1, 3]])]
            >>> BoxDataset([BoxImage(Path("a.png"), 4, 3, objects)], ["cat", "dog"]).semantic_mask(0, segmentation=True).tolist()
            [[255, 255, 0, 0], [255, 1, 1, 1], [0, 1, 1, 1]]
        """
        return self._semantic_mask(self.records[index], segmentation)

    def _semantic_mask(self, record: BoxImage, segmentation: bool | None = None) -> np.ndarray:
        """Class index + 1 per pixel, drawn in object order (a later object covers an earlier one, as pycocotools'
        users draw `annToMask` of each annotation in turn); crowd regions are drawn first as `IGNORE_INDEX`, so that
        the loss and the mean IoU leave their pixels out (a crowd of people is neither background nor a person to
        outline) and an object drawn over one keeps its pixels. Polygons, and a box standing in for a missing outline,
        are filled by COCO's pixel rule, as pycocotools' `annToMask` fills them (`rasterize_polygons`); with
        `segmentation` (by default `unoutlined_ignored`), an object without outline is drawn as `IGNORE_INDEX` over
        its box, with the crowds."""
        unoutlined_ignored = self.unoutlined_ignored if segmentation is None else segmentation
        canvas = np.zeros((record.height, record.width), dtype=np.int64)
        ignored = [item.crowd or (unoutlined_ignored and not has_outline(item)) for item in record.objects]
        order = sorted(range(len(record.objects)), key=lambda index: not ignored[index])  # stable: ignored ones first
        for index in order:
            item = record.objects[index]
            outline = item.segmentation
            if isinstance(outline, list) and outline:
                pixels = rasterize_polygons(outline, record.height, record.width)
            elif isinstance(outline, dict):  # RLE, uncompressed (counts a list) or compressed (a string)
                pixels = decode_rle(outline)
            else:  # no outline: the box stands in for it, as pycocotools turns a box into a polygon
                x_min, y_min, x_max, y_max = item.box
                pixels = rasterize_polygons(
                    [[x_min, y_min, x_min, y_max, x_max, y_max, x_max, y_min]], record.height, record.width
                )
            canvas[pixels] = IGNORE_INDEX if ignored[index] else item.label + 1
        return canvas


def _drawing_source(record: BoxImage, unoutlined_ignored: bool) -> bytes:
    """Everything `BoxDataset._semantic_mask` reads of a record, serialized: its size, `unoutlined_ignored` (whether
    an object without outline is drawn ignored) and, in order, each object's
    class, crowd flag, outline and box (which stands in for a missing outline). Equal bytes unpickle to equal values,
    so two records share a mask kept under it (`ResizedImageCache.drawn_mask`) only when they draw the same one
    (pickled in 5 us an image, where the outlines as nested tuples took 0.1-0.3 ms)."""
    drawn = [(item.label, item.crowd, item.segmentation, item.box) for item in record.objects]
    return pickle.dumps((record.height, record.width, unoutlined_ignored, drawn), protocol=pickle.HIGHEST_PROTOCOL)


def _without_duplicates(objects: list[BoxObject]) -> list[BoxObject]:
    """The objects, each exact repeat of an earlier one left out (in order)."""
    kept: list[BoxObject] = []
    seen: dict[tuple[Any, ...], list[BoxObject]] = {}
    for item in objects:
        alike = seen.setdefault((item.box, item.label, item.difficult, item.crowd), [])
        if any(other.segmentation == item.segmentation for other in alike):
            continue
        alike.append(item)
        kept.append(item)
    return kept


def _polygons(item: BoxObject) -> list[list[float]]:
    """The object's COCO polygons with at least one vertex (none for a box only or an RLE mask)."""
    segmentation = item.segmentation
    return [polygon for polygon in segmentation if len(polygon) >= 2] if isinstance(segmentation, list) else []


def outline_points(objects: Sequence[BoxObject]) -> torch.Tensor:
    """The vertices of every object's COCO polygons as float32 [N, P, K, 2] (x, y): P polygons (parts) per object,
    K vertices per part. A shorter part repeats its first vertex up to K (its closing edge stays its own), an object
    of fewer parts repeats its first part up to P (which adds no area).

    Raises:
        BrickError: An object has no polygon.

    Example:
        >>> outline_points([BoxObject((1, 1, 3, 3), 1, [[1, 1, 3, 1, 2, 3]]), BoxObject((0, 0, 2, 2), 0, [[0, 0, 2, 2]])])[1]
        tensor([[[0., 0.],
                 [2., 2.],
                 [0., 0.]]])
    """
    outlines = []
    for item in objects:
        parts = [
            torch.tensor(polygon[: len(polygon) // 2 * 2], dtype=torch.float32).reshape(-1, 2) for polygon in _polygons(item)
        ]
        if not parts:
            raise BrickError(f"outline_points: the object of class {item.label} at {item.box} has no polygon.")
        outlines.append(parts)
    most_parts = max((len(parts) for parts in outlines), default=1)
    longest = max((len(part) for parts in outlines for part in parts), default=1)
    padded = torch.zeros((len(outlines), most_parts, longest, 2), dtype=torch.float32)
    for index, parts in enumerate(outlines):
        for place in range(most_parts):
            part = parts[place] if place < len(parts) else parts[0]
            padded[index, place] = torch.cat([part, part[:1].expand(longest - len(part), 2)])
    return padded


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """The boolean mask [H, W] of a COCO RLE, decoded by pycocotools as its `annToMask` does."""
    mask_utils = require("pycocotools.mask", "detection")
    if isinstance(rle["counts"], list):
        height, width = rle["size"]
        rle = mask_utils.frPyObjects(rle, height, width)
    with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so each call
        warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)
