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
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from torchbricks._extras import require
from torchbricks.errors import BrickError

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_EXTENSIONS",
    "CocoDataset",
    "DataError",
    "ImageFolderDataset",
    "SegmentationFolderDataset",
    "coco_class_names",
    "image_folder_class_names",
    "segmentation_class_names",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IGNORE_INDEX = 255
"""Mask value that losses and metrics ignore."""
BOX_TOLERANCE = 1.0
"""Pixels a box may reach past its image's border (rounding in annotation tools) before it is an error."""

Transform = Callable[[dict[str, Any]], dict[str, Any]]


class DataError(BrickError):
    """Data on disk is missing, empty or inconsistent; the message names the file."""


def _tv() -> tuple[Any, Any]:
    tv_tensors = require("torchvision.tv_tensors", "vision")
    functional = require("torchvision.transforms.v2.functional", "vision")
    return tv_tensors, functional


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


def _image_size(path: Path) -> tuple[int, int]:
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

    Raises:
        DataError: The folder is missing or empty, or has a class folder not in `class_names`.
    """

    def __init__(self, folder: Path | str, class_names: Sequence[str] | None = None, transform: Transform | None = None) -> None:
        self.folder = Path(folder)
        present = image_folder_class_names(self.folder)
        self.class_names = list(class_names) if class_names is not None else present
        unknown = sorted(set(present) - set(self.class_names))
        if unknown:
            raise DataError(
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
            raise DataError(f"The image folder {str(self.folder)!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}).")
        self.transform = transform

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

    Raises:
        DataError: No image, an image without its mask, or a mask whose size differs from its image.
    """

    def __init__(self, folder: Path | str, num_classes: int, transform: Transform | None = None) -> None:
        self.folder = Path(folder)
        images, masks = self.folder / "images", self.folder / "masks"
        for needed in (images, masks):
            if not needed.is_dir():
                raise DataError(f"The segmentation split {str(self.folder)!r} has no folder {str(needed)!r}.")
        self.samples: list[tuple[Path, Path]] = []
        self.sizes: list[tuple[int, int]] = []
        for image in _image_files(images):
            mask = masks / f"{image.stem}.png"
            if not mask.is_file():
                raise DataError(f"Image {str(image)!r} has no mask {str(mask)!r}.")
            image_size, mask_size = _image_size(image), _image_size(mask)
            if image_size != mask_size:
                raise DataError(
                    f"Mask {str(mask)!r} is {mask_size[0]}x{mask_size[1]} but its image {str(image)!r} is "
                    f"{image_size[0]}x{image_size[1]} (width x height)."
                )
            self.samples.append((image, mask))
            self.sizes.append((image_size[1], image_size[0]))
        if not self.samples:
            raise DataError(f"The segmentation split {str(self.folder)!r} holds no image in {str(images)!r}.")
        self.num_classes = num_classes
        self.transform = transform

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
        with Image.open(mask_path) as mask_file:
            mask = np.asarray(mask_file.convert("L") if mask_file.mode not in ("L", "P") else mask_file).astype(np.int64)
        bad = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
        if bad.any():
            raise DataError(
                f"Mask {str(mask_path)!r} has value {int(mask[bad][0])}; classes are 0 to {self.num_classes - 1} "
                f"and {IGNORE_INDEX} is ignored."
            )
        return {"image": _to_image(_load_rgb(image_path)), "mask": tv_tensors.Mask(torch.from_numpy(mask))}

    def named_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        """`{"raw", "targets"}` of a (transformed) sample of `load_sample`, the image as float in [0, 1]."""
        sample = _apply(None, sample)
        return {"raw": sample["image"], "targets": sample["mask"].as_subclass(torch.Tensor).long()}


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


class CocoDataset(Dataset[dict[str, Any]]):
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

    Raises:
        DataError: A missing image, an unknown category or image id, a box outside its image, no image.
    """

    def __init__(
        self,
        path_json: Path | str,
        image_root: Path | str | None = None,
        with_masks: bool = False,
        transform: Transform | None = None,
    ) -> None:
        self.path_json = Path(path_json)
        self.image_root = Path(image_root) if image_root is not None else self.path_json.parent
        document = _read_json(self.path_json)
        categories = sorted(document["categories"], key=lambda category: category["id"])
        self.category_ids = [int(category["id"]) for category in categories]
        self.class_names = [str(category["name"]) for category in categories]
        index_of = {category_id: index for index, category_id in enumerate(self.category_ids)}
        self.images: dict[int, dict[str, Any]] = {}
        for image in document["images"]:
            path = self.image_root / image["file_name"]
            if not path.is_file():
                raise DataError(f"Image {str(path)!r} (id {image['id']} in {str(self.path_json)!r}) does not exist.")
            record = {**image, "path": path, "annotations": []}
            if "width" not in image or "height" not in image:  # optional in some exports: read from the file's header
                record["width"], record["height"] = _image_size(path)
            self.images[int(image["id"])] = record
        if not self.images:
            raise DataError(f"The COCO file {str(self.path_json)!r} lists no image.")
        for annotation in document["annotations"]:
            where = f"annotation {annotation.get('id')} in {str(self.path_json)!r}"
            if annotation.get("iscrowd", 0):
                continue
            category = int(annotation["category_id"])
            if category not in index_of:
                raise DataError(f"The {where} has category_id {category}; the file's categories are {self.category_ids}.")
            image = self.images.get(int(annotation["image_id"]))
            if image is None:
                raise DataError(f"The {where} names image_id {annotation['image_id']}, which the file does not list.")
            x, y, w, h = (float(value) for value in annotation["bbox"])
            width, height = image["width"], image["height"]
            if (
                w <= 0
                or h <= 0
                or x < -BOX_TOLERANCE
                or y < -BOX_TOLERANCE
                or x + w > width + BOX_TOLERANCE
                or y + h > height + BOX_TOLERANCE
            ):
                raise DataError(
                    f"The {where} has bbox [x, y, w, h] = {annotation['bbox']}, outside (or empty in) its image "
                    f"{str(image['path'])!r} of {width}x{height}."
                )
            box = (max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height))
            segmentation = annotation.get("segmentation")
            _check_segmentation(segmentation, where, image)
            image["annotations"].append((box, index_of[category], segmentation))
        self.ids = sorted(self.images)
        self.with_masks = with_masks
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load_sample(index)
        return self.named_sample(self.transform(sample) if self.transform is not None else sample)

    def image_size_at(self, index: int) -> tuple[int, int]:
        """`(height, width)` of sample `index`, from the COCO file (or the image's header when the file lacks it)."""
        record = self.images[self.ids[index]]
        return record["height"], record["width"]

    def load_sample(self, index: int) -> dict[str, Any]:
        """Sample `index` decoded, before any transform: `{"image": uint8 Image, "boxes": BoundingBoxes (XYXY),
        "labels"}`, with `"mask"` (Mask [H, W]) when `with_masks`."""
        tv_tensors, _ = _tv()
        record = self.images[self.ids[index]]
        picture = _load_rgb(record["path"])
        if picture.size != (record["width"], record["height"]):
            raise DataError(
                f"Image {str(record['path'])!r} is {picture.size[0]}x{picture.size[1]}; {str(self.path_json)!r} says "
                f"{record['width']}x{record['height']}."
            )
        annotations = record["annotations"]
        boxes = torch.tensor([box for box, _, _ in annotations], dtype=torch.float32).reshape(-1, 4)
        sample: dict[str, Any] = {
            "image": _to_image(picture),
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(picture.height, picture.width)),
            "labels": torch.tensor([label for _, label, _ in annotations], dtype=torch.int64),
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
            present[sample["labels"]] = 1
            named["target_classes"] = present
        return named

    def _semantic_mask(self, record: dict[str, Any]) -> np.ndarray:
        """Class index + 1 per pixel, drawn in annotation order (a later object covers an earlier one)."""
        width, height = record["width"], record["height"]
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for box, label, segmentation in record["annotations"]:
            if isinstance(segmentation, list) and segmentation:
                for polygon in segmentation:
                    draw.polygon([(polygon[i], polygon[i + 1]) for i in range(0, len(polygon) - 1, 2)], fill=label + 1)
            elif isinstance(segmentation, dict):  # RLE, uncompressed (counts a list) or compressed (a string)
                mask = np.asarray(canvas).copy()
                mask[_decode_rle(segmentation)] = label + 1
                canvas = Image.fromarray(mask)
                draw = ImageDraw.Draw(canvas)
            else:  # no outline: the box stands in for it
                draw.rectangle(box, fill=label + 1)
        return np.asarray(canvas).astype(np.int64)


def _check_segmentation(segmentation: Any, where: str, image: dict[str, Any]) -> None:
    """A polygon list, an RLE of the image's size, or nothing (the box then stands in for the outline)."""
    if segmentation is None or isinstance(segmentation, list):
        return
    size = [image["height"], image["width"]]
    if not isinstance(segmentation, dict) or not isinstance(segmentation.get("counts"), (list, str)):
        raise DataError(
            f"The {where} has segmentation {str(segmentation)[:80]!r}; expected a list of polygons or an RLE "
            "{'size': [height, width], 'counts': [...] or '...'}."
        )
    if [int(side) for side in segmentation.get("size", ())] != size:
        raise DataError(
            f"The {where} has an RLE segmentation of size {segmentation.get('size')} [height, width], but its image "
            f"{str(image['path'])!r} is {size}."
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
