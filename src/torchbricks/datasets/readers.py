"""Readers of image data in the layouts users already have, as map-style datasets of named samples.

- `ImageFolderDataset`: torchvision's ImageFolder layout, `SPLIT/<class>/*.png|jpg|...`.
- `SegmentationFolderDataset`: `SPLIT/images/*` with `SPLIT/masks/<same stem>.png`; a mask pixel is the class
  index (0 the background) and 255 is ignored.
- `CocoDataset`: COCO instances JSON (`bbox` `[x, y, w, h]`, category ids need not be contiguous, crowd
  annotations ignored), for boxes alone or with a semantic mask drawn from the polygons and the classes present.

Each sample is read with Pillow, wrapped in `torchvision.tv_tensors` (image, mask, boxes) and passed through a
`torchvision.transforms.v2` transform that keeps them aligned (see `torchbricks.datasets.transforms`); it comes out
as a dict of named tensors: `raw` (the image, float [3, H, W] in [0, 1]) and the targets of the task. The readers
of boxes and masks also give the decoded sample before any transform (`load_sample`), its size without decoding
it (`image_size_at`) and the named tensors of a transformed sample (`named_sample`), which is what
`torchbricks.datasets.tiled.TiledDataset` needs to cut an image into tiles before the resize. Bad data raises
`DataError` naming the file: a missing image or mask, a mask whose size differs from its image, a box outside its
image, an unknown category id, an empty split. Needs torchvision (the `vision` extra); RLE masks need pycocotools
(the `detection` extra).

The readers take a `DataProblems`: by default it raises the first problem (training stops at bad data), and
`DataProblems(collect=True)` lists every problem and skips what it concerns (`torchbricks check-data`). The box
readers (COCO here, YOLO in `torchbricks.datasets.yolo`, Pascal VOC in `torchbricks.datasets.voc`) parse their files
into `BoxImage` records and share `BoxDataset` for the samples.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from torchbricks._extras import require
from torchbricks.errors import DataError

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_EXTENSIONS",
    "BoxDataset",
    "BoxImage",
    "BoxObject",
    "CocoDataset",
    "DataError",
    "DataProblems",
    "ImageFolderDataset",
    "SegmentationFolderDataset",
    "box_problem",
    "clip_box",
    "coco_class_names",
    "image_file_size",
    "image_folder_class_names",
    "image_size_problem",
    "mask_value_problem",
    "read_mask",
    "segmentation_class_names",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IGNORE_INDEX = 255
"""Mask value that losses and metrics ignore."""
BOX_TOLERANCE = 1.0
"""Pixels a box may reach past its image's border (rounding in annotation tools) before it is an error."""

Transform = Callable[[dict[str, Any]], dict[str, Any]]
_T = TypeVar("_T")


class DataProblems:
    """Where the readers report what is wrong with the data: raised at once as a `DataError` (the default, for
    training), or collected in `messages` while the reader skips what the problem concerns (for checking).

    Example:
        >>> problems = DataProblems(collect=True)
        >>> problems.report("Image 'a.png' does not exist.")
        >>> problems.messages
        ["Image 'a.png' does not exist."]
    """

    def __init__(self, collect: bool = False) -> None:
        self.collect = collect
        self.messages: list[str] = []

    def report(self, message: str) -> None:
        """Raises `DataError(message)`, or records it when collecting.

        Raises:
            DataError: Not collecting.
        """
        if not self.collect:
            raise DataError(message)
        self.messages.append(message)

    def guard(self, read: Callable[..., _T], *arguments: Any) -> _T | None:
        """`read(*arguments)`, or None after reporting the `DataError` it raised."""
        try:
            return read(*arguments)
        except DataError as error:
            self.report(str(error))
            return None


def _tv() -> tuple[Any, Any]:
    tv_tensors = require("torchvision.tv_tensors", "vision")
    functional = require("torchvision.transforms.v2.functional", "vision")
    return tv_tensors, functional


def _problems(problems: DataProblems | None) -> DataProblems:
    return problems if problems is not None else DataProblems()


def _image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())


def _load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as error:
        raise DataError(f"Image {str(path)!r} does not exist.") from error
    except OSError as error:
        raise DataError(f"Image {str(path)!r} cannot be read: {error}") from error


def image_file_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header."""
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise DataError(f"Image {str(path)!r} cannot be read: {error}") from error


def _to_image(image: Image.Image) -> Any:
    tv_tensors, functional = _tv()
    return tv_tensors.Image(functional.pil_to_tensor(image))


def _apply(transform: Transform | None, sample: dict[str, Any]) -> dict[str, Any]:
    if transform is not None:
        sample = transform(sample)
    image = sample["image"]
    if not image.is_floating_point():
        image = image.float() / 255.0
    sample["image"] = image.as_subclass(torch.Tensor)
    return sample


# --- ImageFolder --------------------------------------------------------------------------------------------------


def image_folder_class_names(folder: Path | str) -> list[str]:
    """The class folders of an ImageFolder split, sorted (torchvision's order).

    Raises:
        DataError: The folder does not exist or holds no class folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"The image folder {str(folder)!r} does not exist; expected {folder}/<class>/<image>.")
    names = sorted(path.name for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not names:
        raise DataError(f"The image folder {str(folder)!r} holds no class folder; expected {folder}/<class>/<image>.")
    return names


class ImageFolderDataset(Dataset[dict[str, Any]]):
    """Images in class folders, `folder/<class>/<image>`, as samples `{"raw": image, "targets": class index}`.

    Args:
        folder: The split's folder.
        class_names: The classes in index order (the train split's, so every split numbers them alike); the
            split's own class folders when None. A class folder not among them is an error.
        transform: A `torchvision.transforms.v2` transform of `{"image": tv_tensors.Image}`.
        problems: Where problems go; the first raises when None.

    Raises:
        DataError: The folder is missing or empty, or has a class folder not in `class_names`.
    """

    def __init__(
        self,
        folder: Path | str,
        class_names: Sequence[str] | None = None,
        transform: Transform | None = None,
        problems: DataProblems | None = None,
    ) -> None:
        problems = _problems(problems)
        self.folder = Path(folder)
        self.transform = transform
        self.samples: list[tuple[Path, int]] = []
        present = problems.guard(image_folder_class_names, self.folder)
        self.class_names = list(class_names) if class_names is not None else list(present or [])
        if present is None:
            return
        unknown = sorted(set(present) - set(self.class_names))
        if unknown:
            problems.report(
                f"The image folder {str(self.folder)!r} has class folders {unknown} that the training split lacks; "
                f"classes: {self.class_names}."
            )
        self.samples = [
            (path, index)
            for index, name in enumerate(self.class_names)
            if (self.folder / name).is_dir()
            for path in _image_files(self.folder / name)
        ]
        if not self.samples:
            problems.report(f"The image folder {str(self.folder)!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}).")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self.samples[index]
        sample = _apply(self.transform, {"image": _to_image(_load_rgb(path))})
        return {"raw": sample["image"], "targets": torch.tensor(label, dtype=torch.int64)}


# --- Segmentation folders -----------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _scanned_class_count(masks_folder: str) -> int:
    largest = 0
    for path in sorted(Path(masks_folder).glob("*.png")):
        with Image.open(path) as mask:
            values = np.unique(np.asarray(mask))
        values = values[values != IGNORE_INDEX]
        largest = max(largest, int(values.max(initial=0)))
    return largest + 1


def segmentation_class_names(root: Path | str) -> list[str]:
    """Class names of a segmentation folder: the lines of `root/classes.txt` (line 0 the background) or, without
    it, `background`, `class_1`, ... up to the largest value in the training masks.

    Raises:
        DataError: Neither `classes.txt` nor training masks exist.
    """
    root = Path(root)
    listed = root / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        if len(names) < 2:
            raise DataError(f"{str(listed)!r} must list at least two classes (line 0 the background), got {names}.")
        return names
    masks = root / "train" / "masks"
    if not masks.is_dir():
        raise DataError(f"The segmentation folder {str(root)!r} has neither classes.txt nor {str(masks)!r}.")
    count = _scanned_class_count(str(masks))
    return ["background", *(f"class_{index}" for index in range(1, max(count, 2)))]


class SegmentationFolderDataset(Dataset[dict[str, Any]]):
    """Images with class masks of the same stem, `folder/images/<stem>.*` and `folder/masks/<stem>.png`, as samples
    `{"raw": image, "targets": mask}` (mask int64 [H, W]: class index, 0 background, 255 ignored).

    Args:
        folder: The split's folder.
        num_classes: Classes including the background; a mask value at or above it (other than 255) is an error.
        transform: A `torchvision.transforms.v2` transform of `{"image": Image, "mask": Mask}`.
        problems: Where problems go; the first raises when None.

    Raises:
        DataError: No image, an image without its mask, or a mask whose size differs from its image.
    """

    def __init__(
        self, folder: Path | str, num_classes: int, transform: Transform | None = None, problems: DataProblems | None = None
    ) -> None:
        problems = _problems(problems)
        self.folder = Path(folder)
        self.num_classes = num_classes
        self.transform = transform
        self.samples: list[tuple[Path, Path]] = []
        self.sizes: list[tuple[int, int]] = []
        images, masks = self.folder / "images", self.folder / "masks"
        missing = [needed for needed in (images, masks) if not needed.is_dir()]
        for needed in missing:
            problems.report(f"The segmentation split {str(self.folder)!r} has no folder {str(needed)!r}.")
        if missing:
            return
        owners: dict[Path, Path] = {}
        for image in _image_files(images):
            mask = masks / f"{image.stem}.png"
            if mask in owners:
                problems.report(
                    f"Images {str(owners[mask])!r} and {str(image)!r} share the mask {str(mask)!r}; rename one of them."
                )
                continue
            owners[mask] = image
            if not mask.is_file():
                problems.report(f"Image {str(image)!r} has no mask {str(mask)!r}.")
                continue
            image_size, mask_size = (
                problems.guard(image_file_size, image),
                problems.guard(image_file_size, mask),
            )
            if image_size is None or mask_size is None:
                continue
            if image_size != mask_size:
                problems.report(
                    f"Mask {str(mask)!r} is {mask_size[0]}x{mask_size[1]} but its image {str(image)!r} is "
                    f"{image_size[0]}x{image_size[1]} (width x height)."
                )
                continue
            self.samples.append((image, mask))
            self.sizes.append((image_size[1], image_size[0]))
        if not self.samples:
            problems.report(f"The segmentation split {str(self.folder)!r} holds no image in {str(images)!r}.")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load_sample(index)
        return self.named_sample(self.transform(sample) if self.transform is not None else sample)

    def image_size_at(self, index: int) -> tuple[int, int]:
        """`(height, width)` of sample `index`, read from the file's header when the split was listed."""
        return self.sizes[index]

    def load_sample(self, index: int) -> dict[str, Any]:
        """Sample `index` decoded, before any transform: `{"image": uint8 Image [3, H, W], "mask": Mask [H, W]}`."""
        tv_tensors, _ = _tv()
        image_path, mask_path = self.samples[index]
        mask = read_mask(mask_path)
        problem = mask_value_problem(mask, self.num_classes, mask_path)
        if problem is not None:
            raise DataError(problem)
        return {"image": _to_image(_load_rgb(image_path)), "mask": tv_tensors.Mask(torch.from_numpy(mask))}

    def named_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        """`{"raw", "targets"}` of a (transformed) sample of `load_sample`, the image as float in [0, 1]."""
        sample = _apply(None, sample)
        return {"raw": sample["image"], "targets": sample["mask"].as_subclass(torch.Tensor).long()}


def read_mask(path: Path) -> np.ndarray:
    """A class mask file as int64 [H, W] (palette images keep their indices, others are read as grey levels)."""
    with Image.open(path) as mask_file:
        return np.asarray(mask_file.convert("L") if mask_file.mode not in ("L", "P") else mask_file).astype(np.int64)


def mask_value_problem(mask: np.ndarray, num_classes: int, path: Path) -> str | None:
    """The message for a mask value at or above `num_classes` (other than the ignored 255), or None."""
    bad = (mask >= num_classes) & (mask != IGNORE_INDEX)
    if not bad.any():
        return None
    return f"Mask {str(path)!r} has value {int(mask[bad][0])}; classes are 0 to {num_classes - 1} and {IGNORE_INDEX} is ignored."


# --- COCO ---------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"The COCO file {str(path)!r} does not exist.")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"The COCO file {str(path)!r} cannot be read as JSON: {error}") from error
    missing = [key for key in ("images", "annotations", "categories") if key not in document]
    if missing:
        raise DataError(f"The COCO file {str(path)!r} lacks {missing}; an instances file has images, annotations, categories.")
    return document


def coco_class_names(path: Path | str) -> list[str]:
    """The category names of a COCO file, in the order of their ids (the contiguous index is the position).

    Raises:
        DataError: The file is missing, not JSON, or has no category.
    """
    path = Path(path)
    categories = sorted(_read_json(path)["categories"], key=lambda category: category["id"])
    if not categories:
        raise DataError(f"The COCO file {str(path)!r} has no category.")
    return [str(category["name"]) for category in categories]


# --- Boxes: the samples of every box layout -----------------------------------------------------------------------


@dataclass
class BoxObject:
    """One annotated object: its box `(x_min, y_min, x_max, y_max)` in pixels, its class index, its outline (COCO
    polygons or RLE, None when the box stands in for it) and whether evaluation ignores it (Pascal VOC `difficult`)."""

    box: tuple[float, float, float, float]
    label: int
    segmentation: Any = None
    difficult: bool = False


@dataclass
class BoxImage:
    """One image of a box data set: its file, its size (width, height) as the annotations state it, its objects and
    the annotation file (and place in it) that describes it, for messages."""

    path: Path
    width: int
    height: int
    objects: list[BoxObject] = field(default_factory=list)
    source: str = ""


def box_problem(box: Sequence[float], width: float, height: float) -> bool:
    """Whether a box `(x_min, y_min, x_max, y_max)` is empty or reaches past its image by more than `BOX_TOLERANCE`.

    Example:
        >>> box_problem((0, 0, 10, 10), 10, 10), box_problem((0, 0, 11.5, 10), 10, 10), box_problem((4, 0, 4, 10), 10, 10)
        (False, True, True)
    """
    x_min, y_min, x_max, y_max = box
    return (
        x_max <= x_min
        or y_max <= y_min
        or x_min < -BOX_TOLERANCE
        or y_min < -BOX_TOLERANCE
        or x_max > width + BOX_TOLERANCE
        or y_max > height + BOX_TOLERANCE
    )


def clip_box(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """The box cut to its image."""
    return (max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height))


def image_size_problem(image: BoxImage, size: tuple[int, int]) -> str | None:
    """The message when an image file's size (width, height) differs from what its annotations say, or None."""
    if size == (image.width, image.height):
        return None
    return f"Image {str(image.path)!r} is {size[0]}x{size[1]}; {image.source} says {image.width}x{image.height}."


class BoxDataset(Dataset[dict[str, Any]]):
    """Images with boxes as samples `{"raw", "target_boxes" [N, 4] (x_min, y_min, x_max, y_max), "target_labels" [N]}`,
    the sample path that every box layout shares (`CocoDataset`, `YoloDataset`, `VocDataset` parse their files into
    `BoxImage` records and leave the rest to this class).

    An object that evaluation ignores (`BoxObject.difficult`) keeps its box with the label `-2 - class index`: the
    loss and the drawings skip negative labels as they skip the padding (-1), and `BoxMeanAveragePrecision` counts
    it as neither a ground truth nor, when detected, a false positive. With `with_masks`, each sample also has
    `target_mask` (int64 [H, W]: class index + 1, 0 the background, drawn in object order from the outlines) and
    `target_classes` (int64 [K]: 1 for each class with a box in the image).

    Args:
        images: The records.
        class_names: The classes in index order.
        with_masks: Also give the semantic mask and the classes present (the multitask targets).
        transform: A `torchvision.transforms.v2` transform of `{"image", "boxes", "labels"[, "mask"]}`.
    """

    def __init__(
        self, images: Sequence[BoxImage], class_names: Sequence[str], with_masks: bool = False, transform: Transform | None = None
    ) -> None:
        self.records = list(images)
        self.class_names = list(class_names)
        self.with_masks = with_masks
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load_sample(index)
        return self.named_sample(self.transform(sample) if self.transform is not None else sample)

    def image_size_at(self, index: int) -> tuple[int, int]:
        """`(height, width)` of sample `index` as its annotations state it (checked against the file when decoded)."""
        record = self.records[index]
        return record.height, record.width

    def load_sample(self, index: int) -> dict[str, Any]:
        """Sample `index` decoded, before any transform: `{"image": uint8 Image, "boxes": BoundingBoxes (XYXY),
        "labels"}` (difficult objects as `-2 - class index`), with `"mask"` (Mask [H, W]) when `with_masks`.

        Raises:
            DataError: The image's size differs from its annotations'.
        """
        tv_tensors, _ = _tv()
        record = self.records[index]
        picture = _load_rgb(record.path)
        problem = image_size_problem(record, picture.size)
        if problem is not None:
            raise DataError(problem)
        objects = record.objects
        boxes = torch.tensor([item.box for item in objects], dtype=torch.float32).reshape(-1, 4)
        labels = [-2 - item.label if item.difficult else item.label for item in objects]
        sample: dict[str, Any] = {
            "image": _to_image(picture),
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(picture.height, picture.width)),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        if self.with_masks:
            sample["mask"] = tv_tensors.Mask(torch.from_numpy(self._semantic_mask(record)))
        return sample

    def named_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The named tensors of a (transformed) sample of `load_sample` (see the class), the image as float in [0, 1]."""
        sample = _apply(None, sample)
        named = {
            "raw": sample["image"],
            "target_boxes": sample["boxes"].as_subclass(torch.Tensor).float(),
            "target_labels": sample["labels"],
        }
        if self.with_masks:
            named["target_mask"] = sample["mask"].as_subclass(torch.Tensor).long()
            present = torch.zeros(len(self.class_names), dtype=torch.int64)
            present[sample["labels"][sample["labels"] >= 0]] = 1
            named["target_classes"] = present
        return named

    def _semantic_mask(self, record: BoxImage) -> np.ndarray:
        """Class index + 1 per pixel, drawn in object order (a later object covers an earlier one)."""
        canvas = Image.new("L", (record.width, record.height), 0)
        draw = ImageDraw.Draw(canvas)
        for item in record.objects:
            fill = item.label + 1
            segmentation = item.segmentation
            if isinstance(segmentation, list) and segmentation:
                for polygon in segmentation:
                    draw.polygon([(polygon[i], polygon[i + 1]) for i in range(0, len(polygon) - 1, 2)], fill=fill)
            elif isinstance(segmentation, dict):  # RLE, uncompressed (counts a list) or compressed (a string)
                mask = np.asarray(canvas).copy()
                mask[_decode_rle(segmentation)] = fill
                canvas = Image.fromarray(mask)
                draw = ImageDraw.Draw(canvas)
            else:  # no outline: the box stands in for it
                draw.rectangle(item.box, fill=fill)
        return np.asarray(canvas).astype(np.int64)


# --- COCO ---------------------------------------------------------------------------------------------------------


class CocoDataset(BoxDataset):
    """COCO instances as samples `{"raw", "target_boxes" [N, 4] (x_min, y_min, x_max, y_max), "target_labels" [N]}`.

    With `with_masks`, each sample also has `target_mask` (int64 [H, W]: contiguous class index + 1, 0 the
    background) and `target_classes` (int64 [K]: 1 for each class with a box in the image). The mask is drawn in
    annotation order from each annotation's `segmentation`: an RLE, uncompressed (`counts` a list) or compressed
    (a string), is decoded by pycocotools exactly as its `annToMask` does; polygons are filled with Pillow, which
    also covers the pixels the outline passes through (as the shapes generator draws its images), so a polygon's
    mask is up to a pixel wider at its border than `annToMask`'s; an annotation without one fills its box.
    Category ids are mapped to contiguous indices in id order; crowd annotations (`iscrowd: 1`) are left out of
    the boxes, the mask and the classes present.

    Args:
        path_json: The instances file; image `file_name`s are relative to `image_root`.
        image_root: The folder image file names are relative to; the JSON file's folder when None.
        with_masks: Also give the semantic mask and the classes present (the multitask targets).
        transform: A `torchvision.transforms.v2` transform of `{"image", "boxes", "labels"[, "mask"]}`.
        problems: Where problems go; the first raises when None.

    Raises:
        DataError: A missing image, an unknown category or image id, a box outside its image, no image.
    """

    def __init__(
        self,
        path_json: Path | str,
        image_root: Path | str | None = None,
        with_masks: bool = False,
        transform: Transform | None = None,
        problems: DataProblems | None = None,
    ) -> None:
        problems = _problems(problems)
        self.path_json = Path(path_json)
        self.image_root = Path(image_root) if image_root is not None else self.path_json.parent
        document = _read_json(self.path_json)
        categories = sorted(document["categories"], key=lambda category: category["id"])
        self.category_ids = [int(category["id"]) for category in categories]
        self.images = self._read_images(document, problems)
        if not document["images"]:
            problems.report(f"The COCO file {str(self.path_json)!r} lists no image.")
        listed = {int(image["id"]) for image in document["images"]}
        index_of = {category_id: index for index, category_id in enumerate(self.category_ids)}
        for annotation in document["annotations"]:
            where = f"annotation {annotation.get('id')} in {str(self.path_json)!r}"
            if annotation.get("iscrowd", 0):
                continue
            record = self.images.get(int(annotation["image_id"]))
            if int(annotation["category_id"]) not in index_of:
                problems.report(
                    f"The {where} has category_id {annotation['category_id']}; the file's categories are {self.category_ids}."
                )
            elif record is None:
                if int(annotation["image_id"]) not in listed:
                    problems.report(f"The {where} names image_id {annotation['image_id']}, which the file does not list.")
            else:
                found = problems.guard(_coco_object, annotation, where, record)
                if found is not None:
                    record.objects.append(BoxObject(found[0], index_of[int(annotation["category_id"])], found[1]))
        self.ids = sorted(self.images)
        super().__init__(
            [self.images[image_id] for image_id in self.ids],
            [str(category["name"]) for category in categories],
            with_masks,
            transform,
        )

    def _read_images(self, document: dict[str, Any], problems: DataProblems) -> dict[int, BoxImage]:
        images: dict[int, BoxImage] = {}
        for image in document["images"]:
            path = self.image_root / image["file_name"]
            source = f"id {image['id']} in {str(self.path_json)!r}"
            if not path.is_file():
                problems.report(f"Image {str(path)!r} ({source}) does not exist.")
                continue
            if int(image["id"]) in images:
                problems.report(f"The image {source} is listed twice.")
                continue
            size: tuple[int, int] | None = (
                (int(image["width"]), int(image["height"])) if "width" in image and "height" in image else None
            )
            if size is None:  # optional in some exports: read from the file's header
                size = problems.guard(image_file_size, path)
            if size is not None:
                images[int(image["id"])] = BoxImage(path, size[0], size[1], source=repr(str(self.path_json)))
        return images


def _coco_object(annotation: dict[str, Any], where: str, record: BoxImage) -> tuple[tuple[float, float, float, float], Any]:
    """The clipped box and the segmentation of an annotation.

    Raises:
        DataError: The box is outside its image or the segmentation is neither polygons nor an RLE of its size.
    """
    x, y, w, h = (float(value) for value in annotation["bbox"])
    if box_problem((x, y, x + w, y + h), record.width, record.height):
        raise DataError(
            f"The {where} has bbox [x, y, w, h] = {annotation['bbox']}, outside (or empty in) its image "
            f"{str(record.path)!r} of {record.width}x{record.height}."
        )
    segmentation = annotation.get("segmentation")
    _check_segmentation(segmentation, where, record)
    return clip_box((x, y, x + w, y + h), record.width, record.height), segmentation


def _check_segmentation(segmentation: Any, where: str, image: BoxImage) -> None:
    """Passes a polygon list, an RLE of the image's size, or nothing (the box then stands in for the outline).

    Raises:
        DataError: Anything else.
    """
    if segmentation is None or isinstance(segmentation, list):
        return
    size = [image.height, image.width]
    if not isinstance(segmentation, dict) or not isinstance(segmentation.get("counts"), (list, str)):
        raise DataError(
            f"The {where} has segmentation {str(segmentation)[:80]!r}; expected a list of polygons or an RLE "
            "{'size': [height, width], 'counts': [...] or '...'}."
        )
    if [int(side) for side in segmentation.get("size", ())] != size:
        raise DataError(
            f"The {where} has an RLE segmentation of size {segmentation.get('size')} [height, width], but its image "
            f"{str(image.path)!r} is {size}."
        )


def _decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """The boolean mask [H, W] of a COCO RLE, decoded by pycocotools as its `annToMask` does."""
    mask_utils = require("pycocotools.mask", "detection")
    if isinstance(rle["counts"], list):
        height, width = rle["size"]
        rle = mask_utils.frPyObjects(rle, height, width)
    with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so each call
        warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)
