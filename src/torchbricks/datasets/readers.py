"""Readers of image data in the layouts users already have, as map-style datasets of named samples.

- `ImageFolderDataset`: torchvision's ImageFolder layout, `SPLIT/<class>/*.png|jpg|...`.
- `SegmentationFolderDataset`: `SPLIT/images/*` with `SPLIT/masks/<same stem>.png`; a mask pixel is the class
  index (0 the background) and 255 is ignored, or, beside a `labelmap.txt` (CVAT's and VOC's colour masks), the
  class of its colour (`torchbricks.datasets.labelmap`).
- `CocoDataset` (in `torchbricks.datasets.coco`, importable from here): COCO instances JSON, for boxes alone or
  with a semantic mask drawn from the polygons and the classes present.

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
into `BoxImage` records and share `BoxDataset` (`torchbricks.datasets.boxes`) for the samples. The plumbing they
share (`DataError`, `DataProblems`, decoding and transforming) lives in `torchbricks.datasets._reading`.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._data_facts import kept_for_one_job
from torchbricks._image_files import FolderListings
from torchbricks._pictures import ImageHeaders
from torchbricks.datasets._reading import (
    BOX_TOLERANCE,
    IMAGE_EXTENSIONS,
    SWAPPED_BY_EXIF,
    DataError,
    DataProblems,
    Transform,
    apply_transform,
    class_images,
    exif_orientation,
    folder_entries,
    image_file_size,
    is_hidden,
    load_rgb,
    open_image,
    problems_or_raise,
    read_name_lines,
    to_image,
    torchvision_parts,
    turned_by_exif,
    upright,
    visible_files,
)
from torchbricks.datasets.boxes import (
    BoxDataset,
    BoxImage,
    BoxObject,
    box_problem,
    clip_box,
    image_size_problem,
)
from torchbricks.datasets.coco import CocoDataset, coco_class_names
from torchbricks.datasets.folder_splits import VALIDATION_FOLDERS, is_voc_layout, segmentation_folders
from torchbricks.datasets.image_cache import ResizedImageCache
from torchbricks.datasets.labelmap import LABELMAP_FILE, MaskColours, mask_colours
from torchbricks.datasets.voc_segmentation import VOC_CLASSES, has_voc_palette, image_index

__all__ = [
    "BACKGROUND_NAMES",
    "DataError",
    "DataProblems",
    "ImageFolderDataset",
    "SegmentationFolderDataset",
    "background_line_notice",
    "binary_mask_kind",
    "binary_masks_disagree",
    "binary_masks_notice",
    "image_folder_class_names",
    "is_background_name",
    "mask_colours",
    "mask_value_problem",
    "masks_are_binary_255",
    "numbered_class_list_notice",
    "read_mask",
    "reads_voc_classes",
    "segmentation_class_names",
    "training_class_names",
    "voc_class_names_notice",
]
__all__ += [  # the readers' names from before the box and COCO readers got modules of their own
    "BOX_TOLERANCE",
    "IMAGE_EXTENSIONS",
    "BoxDataset",
    "BoxImage",
    "BoxObject",
    "CocoDataset",
    "box_problem",
    "clip_box",
    "coco_class_names",
    "image_file_size",
    "image_size_problem",
    "is_hidden",
    "visible_files",
]


# --- ImageFolder --------------------------------------------------------------------------------------------------


def training_class_names(folder: Path | str) -> list[str]:
    """The classes of a classification data set: the class folders of its training folder (`image_folder_class_names`).

    Raises:
        DataError: As `image_folder_class_names`, or there is one class folder: a classifier needs two classes or more.
    """
    names = image_folder_class_names(folder)
    other = _other_task_layout(set(names))
    if other is not None:
        raise DataError(
            f"The image folder {str(folder)!r} holds the folders {names}, which are {other}, not classes: classification "
            f"reads a folder per class, {folder}/<class>/<image>. Train it with the task of its layout."
        )
    if len(names) < 2:
        raise DataError(
            f"The image folder {str(folder)!r} holds one class folder, {names[0]!r}; classification needs two or more, a "
            f"folder per class: {folder}/<class>/<image>. (A table of labels, such as a CSV, is not read: sort the "
            "images into class folders.)"
        )
    return names


_OTHER_TASK_FOLDERS = (
    ({"images", "masks"}, "segmentation data (images/ with masks/ of the same names: task=segmentation)"),
    ({"JPEGImages", "SegmentationClass"}, "Pascal VOC's segmentation layout (task=segmentation)"),
    ({"JPEGImages", "Annotations"}, "Pascal VOC's box layout (task=detection)"),
    ({"images", "labels"}, "YOLO's box layout (images/ with labels/*.txt: task=detection)"),
)
"""Folders that together make another task's layout: read as class folders, the classes were 'images' and 'masks'
(task=classification on segmentation data trained, at chance, without a word)."""


def _other_task_layout(names: set[str]) -> str | None:
    return next((layout for folders, layout in _OTHER_TASK_FOLDERS if folders <= names), None)


def image_folder_class_names(folder: Path | str) -> list[str]:
    """The class folders of an ImageFolder split, sorted (torchvision's order); hidden folders are none (`is_hidden`).

    Raises:
        DataError: The folder does not exist or holds no class folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"The image folder {str(folder)!r} does not exist; expected {folder}/<class>/<image>.")
    names = sorted(path.name for path in folder_entries(folder) if path.is_dir() and not is_hidden(path.name))
    if not names:
        raise DataError(f"The image folder {str(folder)!r} holds no class folder; expected {folder}/<class>/<image>.")
    for name in names:
        if not _is_utf_8(name):  # the class name is written into every report, experiment.json and the ONNX metadata
            raise DataError(
                f"The class folder {str(folder / name)!r} has a name that is no UTF-8 ({os.fsencode(name)!r}, as a zip "
                "made on Windows unpacks on Linux): the class could not be named in the reports, experiment.json or an "
                "exported model. Rename the folder."
            )
    return names


def _is_utf_8(name: str) -> bool:
    """Whether a file name read from the file system is UTF-8 (Python keeps other bytes as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ImageFolderDataset(Dataset[dict[str, Any]]):
    """Images in class folders, `folder/<class>/<image>`, as samples `{"raw": image, "targets": class index}`.

    Args:
        folder: The split's folder.
        class_names: The classes in index order (the train split's, so every split numbers them alike); the
            split's own class folders when None. A class folder not among them is an error.
        transform: A `torchvision.transforms.v2` transform of `{"image": tv_tensors.Image}`.
        problems: Where problems go; the first raises when None.
        only: The images of the split, as `<class>/<file name>`, when it shares its folder with another split (drawn
            from it, `torchbricks.datasets.folder_splits`); every image of the folder when None.
        listings: Where the class folders are listed (`FolderListings`, shared by a data module's start-up); listed
            here when None.

    Raises:
        DataError: The folder is missing or empty, or has a class folder not in `class_names`.
    """

    image_cache: ResizedImageCache | None = None
    """Reads the images at the transform's size and keeps them between epochs (the data modules set it for their
    training and validation splits); None decodes each image whenever it is read."""

    def __init__(
        self,
        folder: Path | str,
        class_names: Sequence[str] | None = None,
        transform: Transform | None = None,
        problems: DataProblems | None = None,
        only: frozenset[str] | None = None,
        listings: FolderListings | None = None,
    ) -> None:
        problems = problems_or_raise(problems)
        self.folder = Path(folder)
        self.transform = transform
        self.samples: list[tuple[Path, int]] = []
        present = problems.guard(image_folder_class_names, self.folder)
        self.class_names = list(class_names) if class_names is not None else list(present or [])
        if present is None:
            return
        # by the names' Unicode form: a copy from macOS (or a zip made there) writes `café` decomposed (NFD), so the
        # split folders of one data set can spell a class in two forms that show alike
        folder_of = {unicodedata.normalize("NFC", name): name for name in present}
        known = {unicodedata.normalize("NFC", name) for name in self.class_names}
        unknown = sorted(name for normal, name in folder_of.items() if normal not in known)
        if unknown:
            problems.report(
                f"The image folder {str(self.folder)!r} has class folders {unknown} that the training split lacks; "
                f"classes: {self.class_names}."
            )
        folders = [
            (index, self.folder / folder_of.get(unicodedata.normalize("NFC", name), name))
            for index, name in enumerate(self.class_names)
        ]
        self.samples = [
            (path, index)
            for index, class_folder in folders
            if class_folder.is_dir()
            # subfolders too, as torchvision's ImageFolder reads them
            for path in (class_images(class_folder) if listings is None else listings.files(class_folder, recursive=True))
            if only is None or f"{class_folder.name}/{path.relative_to(class_folder).as_posix()}" in only
        ]
        if not self.samples:
            problems.report(f"The image folder {str(self.folder)!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}).")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self.samples[index]
        image = self.image_cache.image(path)[0] if self.image_cache is not None else to_image(load_rgb(path))
        sample = apply_transform(self.transform, {"image": image})
        return {"raw": sample["image"], "targets": torch.tensor(label, dtype=torch.int64)}


# --- Segmentation folders -----------------------------------------------------------------------------------------


@kept_for_one_job  # asked again by every class interpolation of a job's config: read once per job (`torchbricks._data_facts`)
def _scanned_class_count(masks_folder: str) -> int:
    largest = 0
    for path in visible_files(Path(masks_folder), (".png",)):
        values = np.unique(read_mask(path))
        values = values[values != IGNORE_INDEX]
        largest = max(largest, int(values.max(initial=0)))
    return largest + 1


BINARY_MASKS_SAMPLED = 300
"""Training masks read (spread evenly over the sorted names) to tell binary 0/255 masks (`masks_are_binary_255`)."""


SMOOTHED_EDGE_SHARE = 0.1
"""Binary masks saved with smoothed edges (resized bilinearly, drawn antialiased) hold 0, 255 and grey levels between
on their edges: under this share of their pixels."""
SMOOTHED_EDGE_LEVELS = 8
"""...and on at least this many grey levels (masks of a few class indices with a 255 border hold a few values)."""


@kept_for_one_job  # asked again by the class names, the data module's checks and notices, the class weights
def _sampled_mask_counts(masks_folder: str) -> tuple[tuple[int, int], ...]:
    """(value, pixels) over up to `BINARY_MASKS_SAMPLED` masks of the folder, spread evenly over the sorted names."""
    paths = visible_files(Path(masks_folder), (".png",))
    if len(paths) > BINARY_MASKS_SAMPLED:
        paths = [paths[index * len(paths) // BINARY_MASKS_SAMPLED] for index in range(BINARY_MASKS_SAMPLED)]
    counts: dict[int, int] = {}
    for path in paths:
        values, pixels = np.unique(read_mask(path), return_counts=True)
        for value, count in zip(values.tolist(), pixels.tolist(), strict=True):
            counts[value] = counts.get(value, 0) + count
    return tuple(sorted(counts.items()))


def binary_mask_kind(masks_folder: Path | str) -> str | None:
    """`exact` when the masks hold only 0 and 255 (white on black, as most tools and many data sets save one
    foreground class), `smoothed` when they also hold grey levels on their edges (`SMOOTHED_EDGE_SHARE`,
    `SMOOTHED_EDGE_LEVELS`: a binary mask resized bilinearly or drawn antialiased), else None (masks of class indices,
    or no masks). Up to `BINARY_MASKS_SAMPLED` masks are read."""
    counts = dict(_sampled_mask_counts(str(Path(masks_folder).resolve())))
    if IGNORE_INDEX not in counts or 0 not in counts:
        return None
    between = {value: pixels for value, pixels in counts.items() if value not in (0, IGNORE_INDEX)}
    if not between:
        return "exact"
    if len(between) >= SMOOTHED_EDGE_LEVELS and sum(between.values()) < SMOOTHED_EDGE_SHARE * sum(counts.values()):
        return "smoothed"
    return None


def masks_are_binary_255(masks_folder: Path | str, num_classes: int) -> bool:
    """Whether a two-class data set's training masks are binary masks drawn as 0 and 255, exact or with smoothed
    edges (`binary_mask_kind`), not class indices. Such masks are read with 128 and above as class 1
    (`read_mask(foreground_255=True)`); read as indices, 255 is the ignored value and the foreground would never be
    trained on nor measured (and smoothed edges would be classes of their own)."""
    return num_classes == 2 and binary_mask_kind(masks_folder) is not None


def binary_masks_notice(masks_folder: Path, class_names: Sequence[str]) -> str:
    """What the job and `check-data` say when the masks are read as binary 0/255 masks."""
    if binary_mask_kind(masks_folder) == "smoothed":
        return (
            f"The masks in {str(masks_folder)!r} hold 0 and 255 with grey levels on their edges (smoothed binary masks): "
            f"read as binary masks, 128 and above the class {class_names[1]!r}."
        )
    return (
        f"The masks in {str(masks_folder)!r} hold only 0 and 255: read as binary masks, 255 the class "
        f"{class_names[1]!r} (not the ignored value, as in masks of class indices)."
    )


def binary_masks_disagree(root: Path | str, num_classes: int) -> str | None:
    """The problem when a two-class data set's splits hold masks of two kinds (binary 0/255 in one, class indices 0/1
    in another, as two tools export them): read the training split's way, the other's foreground would be ignored
    or background. None when they agree, and for colour masks (a `labelmap.txt` at `root`)."""
    root = Path(root)
    if num_classes != 2 or (root / LABELMAP_FILE).is_file() or is_voc_layout(root, "segmentation_folder"):
        return None  # VOC's layout keeps every split's masks in one folder
    training = segmentation_folders(root)[1]
    binary = masks_are_binary_255(training, num_classes)
    for split in (*VALIDATION_FOLDERS, "test"):
        masks = root / split / "masks"
        if masks.resolve() == training.resolve() or not visible_files(masks, (".png",)):
            continue
        if {value for value, _ in _sampled_mask_counts(str(masks.resolve()))} <= {0}:
            continue  # background only (a split without objects): read alike either way
        if masks_are_binary_255(masks, num_classes) != binary:
            kinds = ("0 and 255 (binary masks)", "class indices 0 and 1")
            train_kind, other_kind = (kinds[0], kinds[1]) if binary else (kinds[1], kinds[0])
            return (
                f"The masks in {str(training)!r} hold {train_kind}, those in {str(masks)!r} {other_kind}: read one way, "
                "the other split's objects would be lost. Save every split's masks the same way."
            )
    return None


LABELME_IGNORE = "__ignore__"
"""The first line of labelme's `labels.txt` (`__ignore__`, `_background_`, then the classes): the pixels its
labelme2voc leaves unlabelled, -1, which its masks hold as 255, as torchbricks ignores them; the background is the
next line."""


def segmentation_class_names(root: Path | str) -> list[str]:
    """Class names of a segmentation folder: the classes of `root/labelmap.txt` (colour masks, the background first,
    `torchbricks.datasets.labelmap`), else the lines of `root/classes.txt` (line 0 the background; a first line
    `__ignore__`, as labelme's `labels.txt` begins, is no class: `LABELME_IGNORE`), else in Pascal
    VOC's layout with palette masks coloured by VOC's colour map VOC's 21 classes (`voc_class_names_notice`), else
    `background`, `class_1`, ... up to the largest value in the training masks.

    Raises:
        DataError: Neither a class list nor training masks exist, a bad `labelmap.txt`, or a `classes.txt` beside it
            that names other classes.
    """
    root = Path(root)
    listed = root / "classes.txt"
    names = read_name_lines(listed) if listed.is_file() else None
    colours = mask_colours(root)
    if colours is not None:
        if names is not None and names != list(colours.names):
            raise DataError(
                f"{str(listed)!r} lists {names} but {str(colours.path)!r} {list(colours.names)} (the background first); "
                "the labelmap's classes are those of the colour masks: remove classes.txt or make it agree."
            )
        return list(colours.names)
    if names is not None and names[:1] == [LABELME_IGNORE]:  # labelme's labels.txt: its masks hold it as 255
        names = names[1:]
    if names is not None:
        if len(names) < 2:
            # a folder of another layout (labelImg's YOLO boxes beside a classes.txt of one class) is named as not
            # segmentation data, rather than sent to add a background line to a class list of boxes
            segmentation_folders(root)
            raise DataError(
                f"{str(listed)!r} must list at least two classes (line 0 the background), got {names}"
                f"{'' if not names or is_background_name(names[0]) else ': put a line `background` first'}."
            )
        return names
    masks = segmentation_folders(root)[1]
    if not masks.is_dir():
        raise DataError(f"The segmentation folder {str(root)!r} has neither classes.txt nor {str(masks)!r}.")
    if reads_voc_classes(root):
        return list(VOC_CLASSES)
    if binary_mask_kind(masks) is not None:  # white objects on black, edges smoothed or not: one class
        return ["background", "class_1"]
    count = _scanned_class_count(str(masks))
    return ["background", *(f"class_{index}" for index in range(1, max(count, 2)))]


VOC_PALETTE_MASKS_SAMPLED = 20
"""Masks read (spread evenly over the sorted names) to tell VOC's own palette masks (`reads_voc_classes`)."""


def reads_voc_classes(root: Path | str) -> bool:
    """Whether the segmentation data at `root` gets VOC's 21 classes: Pascal VOC's layout without `labelmap.txt`
    and `classes.txt`, its masks palette PNGs coloured by VOC's colour map (up to `VOC_PALETTE_MASKS_SAMPLED` read)."""
    root = Path(root)
    if not is_voc_layout(root, "segmentation_folder") or (root / LABELMAP_FILE).is_file() or (root / "classes.txt").is_file():
        return False
    masks = visible_files(segmentation_folders(root)[1], (".png",), recursive=True)
    if len(masks) > VOC_PALETTE_MASKS_SAMPLED:
        masks = [masks[index * len(masks) // VOC_PALETTE_MASKS_SAMPLED] for index in range(VOC_PALETTE_MASKS_SAMPLED)]
    return has_voc_palette(masks)


def voc_class_names_notice(root: Path | str) -> str:
    """What the job and `check-data` say when the masks are read as VOC's 21 classes (`reads_voc_classes`)."""
    return (
        f"{str(root)!r} has no {LABELMAP_FILE} nor classes.txt and its masks are palette PNGs in Pascal VOC's colours: "
        f"read as VOC's {len(VOC_CLASSES)} classes ({', '.join(VOC_CLASSES[:4])}, ..., {VOC_CLASSES[-1]}). Other "
        f"classes: put their names in {str(Path(root) / 'classes.txt')!r}, one a line, the background first."
    )


class SegmentationFolderDataset(Dataset[dict[str, Any]]):
    """Images with class masks of the same stem, `folder/images/<stem>.*` and `folder/masks/<stem>.png`, as samples
    `{"raw": image, "targets": mask}` (mask int64 [H, W]: class index, 0 background, 255 ignored).

    Args:
        folder: The split's folder.
        num_classes: Classes including the background; a mask value at or above it (other than 255) is an error.
        transform: A `torchvision.transforms.v2` transform of `{"image": Image, "mask": Mask}`.
        problems: Where problems go; the first raises when None.
        only: The image file names of the split when it shares its folder with another split (drawn from it,
            `torchbricks.datasets.folder_splits`); every image of the folder when None.
        foreground_255: The masks are binary, 0 and 255 (`masks_are_binary_255`): 128 and above is class 1.
        colours: The class colours of colour masks (`mask_colours` of the data folder); None reads class indices.
        images: The folder of the images; `folder/images` when None.
        masks: The folder of the masks; `folder/masks` when None.
        stems: The split's images by stem (relative to `images`, subfolders included, without extension) in this
            order, as a list of Pascal VOC's layout names them, instead of every image of `images`; a stem without
            image is a problem naming `listed`.
        listed: The list file `stems` come from, for messages.
        class_names: The classes, for the message of a mask value past them (`mask_value_problem`).
        listings: Where the folders are listed (`FolderListings`, shared by a data module's start-up); listed here
            when None.
        headers: Where the files' headers are read (`ImageHeaders`, shared by a data module's start-up); opened here
            when None.

    Raises:
        DataError: No image, an image without its mask, or a mask whose size differs from its image.
    """

    image_cache: ResizedImageCache | None = None
    """Reads images and masks at the transform's size and keeps them between epochs (the data modules set it for
    their training and validation splits); None decodes each file whenever it is read."""

    def __init__(
        self,
        folder: Path | str,
        num_classes: int,
        transform: Transform | None = None,
        problems: DataProblems | None = None,
        only: frozenset[str] | None = None,
        foreground_255: bool = False,
        colours: MaskColours | None = None,
        images: Path | None = None,
        masks: Path | None = None,
        stems: Sequence[str] | None = None,
        listed: Path | None = None,
        class_names: Sequence[str] | None = None,
        listings: FolderListings | None = None,
        headers: ImageHeaders | None = None,
    ) -> None:
        if num_classes > IGNORE_INDEX:
            raise DataError(
                f"The segmentation split {str(folder)!r} has {num_classes} classes, but mask value {IGNORE_INDEX} "
                f"marks ignored pixels: class {IGNORE_INDEX} would be left out of training and the metrics without a "
                f"word. Masks of class indices take at most {IGNORE_INDEX} classes with the background (0 to "
                f"{IGNORE_INDEX - 1})."
            )
        problems = problems_or_raise(problems)
        self.folder = Path(folder)
        self.class_names = class_names
        self.foreground_255 = foreground_255
        self.colours = colours
        self.num_classes = num_classes
        self.class_numbers: np.ndarray | None = None
        """Each mask value -> the class index it is read as (255 stays 255), when the masks number their classes
        otherwise than the model (`SegmentationFolderDataModule.use_class_names`); None: as they are."""
        self.transform = transform
        self.samples: list[tuple[Path, Path]] = []
        self.sizes: list[tuple[int, int]] = []
        images = images if images is not None else self.folder / "images"
        masks = masks if masks is not None else self.folder / "masks"
        missing = [needed for needed in (images, masks) if not needed.is_dir()]
        for needed in missing:
            problems.report(f"The segmentation split {str(self.folder)!r} has no folder {str(needed)!r}.")
        if missing:
            return
        owners: dict[Path, Path] = {}
        pairs = _image_mask_pairs(images, masks, only, stems, listed, problems, listings)
        for image, mask in pairs:
            if mask in owners:
                problems.report(
                    f"Images {str(owners[mask])!r} and {str(image)!r} share the mask {str(mask)!r}; rename one of them."
                )
                continue
            owners[mask] = image
            if not mask.is_file():
                problems.report(f"Image {str(image)!r} has no mask {str(mask)!r}.{_other_mask_hint(mask)}")
                continue
            image_size, mask_size = (
                problems.guard(image_file_size, image, headers),
                problems.guard(image_file_size, mask, headers),
            )
            if image_size is None or mask_size is None:
                continue
            if image_size != mask_size:
                swapped = mask_size == image_size[::-1] and turned_by_exif(image)
                problems.report(
                    f"Mask {str(mask)!r} is {mask_size[0]}x{mask_size[1]} but its image {str(image)!r} is "
                    f"{image_size[0]}x{image_size[1]} (width x height)."
                    + (SWAPPED_BY_EXIF.format(what="the mask was", fix="draw the mask on it") if swapped else "")
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
        tv_tensors, _ = torchvision_parts()
        image_path, mask_path = self.samples[index]
        if self.image_cache is not None:
            return {"image": self.image_cache.image(image_path)[0], "mask": self.image_cache.mask(mask_path, self._read_mask)}
        return {"image": to_image(load_rgb(image_path)), "mask": tv_tensors.Mask(torch.from_numpy(self._read_mask(mask_path)))}

    def _read_mask(self, mask_path: Path) -> np.ndarray:
        mask = read_mask(mask_path, self.foreground_255, self.colours)
        problem = mask_value_problem(mask, self.num_classes, mask_path, self.class_names)
        if problem is not None:
            raise DataError(problem)
        return mask if self.class_numbers is None else self.class_numbers[mask]

    def named_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        """`{"raw", "targets"}` of a (transformed) sample of `load_sample`, the image as float in [0, 1]."""
        sample = apply_transform(None, sample)
        return {"raw": sample["image"], "targets": sample["mask"].as_subclass(torch.Tensor).long()}


def _image_mask_pairs(
    images: Path,
    masks: Path,
    only: frozenset[str] | None,
    stems: Sequence[str] | None,
    listed: Path | None,
    problems: DataProblems,
    listings: FolderListings | None = None,
) -> list[tuple[Path, Path]]:
    """(image, its mask) of a segmentation split (see `SegmentationFolderDataset`), the mask maybe missing; a listed
    stem without image is reported."""
    if stems is None:
        files = visible_files if listings is None else listings.files
        found = files(images, recursive=True)
        nested = [path for path in found if path.parent != images]
        if nested:  # without a list naming them, they would be left out without a word
            many = len(nested) > 1
            problems.report(
                f"{len(nested)} image{'s' if many else ''} in subfolders of {str(images)!r} "
                f"({nested[0].relative_to(images).as_posix()!r}{', ...' if many else ''}) {'are' if many else 'is'} not "
                "read: a segmentation split reads the images directly in its images/ folder, each with the mask of its "
                "name directly in masks/. Move them (and their masks) up, or out of images/."
            )
        by_stem: dict[str, Path] = {}
        for path in files(masks, (".png",)):  # `.png` in any case, as every mask scan reads them
            by_stem.setdefault(path.stem, path)
        return [
            (image, by_stem.get(image.stem, masks / f"{image.stem}.png"))
            for image in found
            if image.parent == images  # the folder's own (a report that collects goes on without the subfolders')
            if only is None or image.name in only
        ]
    index = image_index(images)  # named by a list, subfolders included: `cam1/frame_000001`
    pairs = []
    for stem in stems:
        if stem not in index:
            where = f" (listed in {str(listed)!r})" if listed is not None else ""
            problems.report(f"The image {stem!r}{where} is not in {str(images)!r}.")
            continue
        pairs.append((index[stem], masks / f"{stem}.png"))
    return pairs


def _other_mask_hint(mask: Path) -> str:
    """What to do when the mask exists only under another image extension (JPEG masks: lossy, their values blur at
    edges)."""
    lossy = tuple(suffix for suffix in IMAGE_EXTENSIONS if suffix != ".png")
    others = [path.name for path in visible_files(mask.parent, lossy) if path.stem == mask.stem]
    if not others:
        return ""
    return (
        f" {str(mask.parent / others[0])!r} exists, but masks are read from PNG only: a lossy format (JPEG) blurs the "
        "class values at every edge. Save the masks as PNG (from the original, not from the JPEG, if you have it)."
    )


def read_mask(path: Path, foreground_255: bool = False, colours: MaskColours | None = None) -> np.ndarray:
    """A class mask file as int64 [H, W]: palette images keep their indices, grey levels (8 or 16 bits) are the
    indices, an RGB(A) mask whose three channels agree is read by its first; with `foreground_255` (binary 0/255
    masks, `masks_are_binary_255`, edges smoothed or not), 128 and above is class 1. With `colours` (a labelmap), an
    RGB(A) mask is read by colour (`MaskColours.indices`), and so is a palette mask, by the colour its palette gives
    each index (255 stays ignored; `MaskColours.palette_indices`). Palettes that disagree between the masks of a data
    set without a labelmap are found before training (`torchbricks.datasets.mask_palettes`).

    Raises:
        DataError: A colour mask without `colours` (the channels differ: colours, as CVAT's "Segmentation mask"
            export and colour-coded data sets save classes), which grey levels would turn into other classes without
            a word; with `colours`, a colour it does not list, or a palette index without a colour.
    """
    with open_image(path) as mask_file:
        orientation = exif_orientation(mask_file)
        mask_file.load()  # before np.asarray: Pillow turns a TIFF as it loads it, and an array of it unloaded keeps it stored
        upright_mask = upright(mask_file, orientation)  # upright, as its image
        if mask_file.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            mask = np.asarray(upright_mask).astype(np.int64)
            if colours is not None and mask_file.mode == "P":  # the labelmap's colours are the classes
                mask = colours.palette_indices(mask, mask_file.getpalette("RGB"), path)
        elif colours is not None:
            mask = colours.indices(np.asarray(upright_mask.convert("RGB")), path)
        else:
            channels = np.asarray(upright_mask.convert("RGB"))
            differ = (channels[..., 0] != channels[..., 1]) | (channels[..., 0] != channels[..., 2])
            if differ.any():
                colour = tuple(int(value) for value in channels[differ][0])
                raise DataError(
                    f"Mask {str(path)!r} is a colour mask: its pixels have colours such as {colour}, not class indices. "
                    "A mask holds the class index of each pixel (0 the background, 255 ignored) in one channel, as a "
                    f"grey-level or palette PNG. Colour masks are read by the {LABELMAP_FILE} that lists their colours "
                    "(as CVAT's 'Segmentation mask' export and Pascal VOC write it), put in the data folder beside "
                    "train/ (where classes.txt goes)."
                )
            mask = channels[..., 0].astype(np.int64)
    if foreground_255:  # binary masks (smoothed edges too): 128 and above is the object
        mask = (mask >= 128).astype(np.int64)
    return mask


def mask_value_problem(mask: np.ndarray, num_classes: int, path: Path, class_names: Sequence[str] | None = None) -> str | None:
    """The message for a mask value at or above `num_classes` (other than the ignored 255), or None; with the
    `class_names`, it names the first (value 0) and, when that is no background name, says what a class list
    without its background line does."""
    bad = (mask >= num_classes) & (mask != IGNORE_INDEX)
    if not bad.any():
        return None
    value = int(mask[bad].max())
    first = f" ({class_names[0]!r}, the first line of the class list)" if class_names else ""
    message = (
        f"Mask {str(path)!r} has value {value}; classes are 0 to {num_classes - 1} and {IGNORE_INDEX} is ignored. "
        f"Value 0 is the background{first}: masks of class indices number the object classes from 1."
    )
    if class_names and not is_background_name(class_names[0]) and value == num_classes:
        message += (
            f" A classes.txt listing only the object classes ({', '.join(map(repr, class_names[:3]))}"
            f"{', ...' if len(class_names) > 3 else ''}) names every value one class too low: put a line "
            "`background` first."
        )
    return message


BACKGROUND_NAMES = frozenset(
    {"background", "bg", "back", "backgnd", "void", "unlabeled", "unlabelled", "none", "null", "nothing", "empty"}
    | {"other", "others", "rest", "clutter", "ignore", "ignored", "negative", "unknown", "0"}
)
"""Names (lower case, without `_`, `-`, spaces and dots) that say a class list's first line is the background, as
VOC, labelme (`_background_`), CVAT, Cityscapes-like lists (`unlabeled`, `void`) and other exports write it."""


def is_background_name(name: str) -> bool:
    """Whether `name` reads as the background (`BACKGROUND_NAMES`): `background`, `_background_`, `Background`,
    `bg`, `void`, ... .

    Example:
        >>> is_background_name("_background_"), is_background_name("cat")
        (True, False)
    """
    return "".join(character for character in name.lower() if character not in "_- .") in BACKGROUND_NAMES


def numbered_class_list_notice(root: Path | str) -> str | None:
    """What the job and `check-data` say when `root/classes.txt` begins each line with its class index (`0 background`,
    `1 cat`), which `read_name_lines` reads without the numbers; None for any other class list, and with a labelmap."""
    root = Path(root)
    listed = root / "classes.txt"
    if not listed.is_file() or (root / LABELMAP_FILE).is_file():
        return None
    notes: list[str] = []
    read_name_lines(listed, notes)
    return notes[0] if notes else None


def background_line_notice(root: Path | str, class_names: Sequence[str], found: set[int]) -> str | None:
    """What the job and `check-data` say when `root/classes.txt` (the class list of masks of class indices) begins
    with no background name (`is_background_name`): line 1 names mask value 0, which the masks of most tools give
    the background, so a file listing only the object classes reads every class one too low, silently when the
    highest value the masks use has no pixel yet. `found` (the class values of the training masks) adds whether its
    last class has a pixel. None for a labelmap, a labelme `labels.txt` and a first line `background`,
    `_background_`, `void`, ... (as VOC, labelme and CVAT export)."""
    root = Path(root)
    if (
        not (root / "classes.txt").is_file()
        or (root / LABELMAP_FILE).is_file()
        or len(class_names) < 2
        or is_background_name(class_names[0])
    ):
        return None
    unused = (
        f" Its last class {class_names[-1]!r} has no pixel in the training masks, as when it is so."
        if len(class_names) - 1 not in found
        else ""
    )
    return (
        f"{str(root / 'classes.txt')!r} begins with {class_names[0]!r}: its first line names mask value 0, which the "
        f"masks of most tools give the background. If the file lists only the object classes, every class is read "
        f"one too low ({class_names[1]!r} is trained on the pixels of value 1, those of {class_names[0]!r}): put a "
        f"line `background` first.{unused} If value 0 is indeed {class_names[0]!r}, this note can be ignored."
    )
