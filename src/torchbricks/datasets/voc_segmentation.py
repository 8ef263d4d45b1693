"""Segmentation data in the Pascal VOC layout, as the VOC devkit and CVAT's "Segmentation mask 1.1" and "PASCAL VOC
1.1" exports write it, read where it lies:

    ROOT/JPEGImages/<stem>.jpg|png|...             the images (CVAT keeps each image's own extension)
    ROOT/SegmentationClass/<stem>.png              the class masks (SegmentationObject/, the instance masks, unread)
    ROOT/labelmap.txt                              the classes and their colours (CVAT; optional)
    ROOT/ImageSets/Segmentation/<split>.txt        one stem a line: train, val, test, trainval, default

The splits (`split_lists`): `train.txt` and `val.txt` (also `valid.txt` or `validation.txt`; the names in any case,
as a CVAT project's subsets name them), `test.txt` if present. Without `train.txt`, `trainval.txt` (VOC) or else
`default.txt` (CVAT's one subset) is the training list, less what `val.txt` holds (VOC's trainval holds val). Without
a validation list, the validation split is drawn at random from the training list, as the other folder layouts draw
theirs (`torchbricks.datasets.folder_splits`). Without `ImageSets/Segmentation`, the masks of `SegmentationClass` are
that list. A stem is a list line's whole text less the space around it: it may hold a subfolder
(`cam1/frame_000001`), as CVAT writes the images of a task's subfolders, and spaces (`IMG 0001`, as CVAT writes an
image's name, unquoted). Only the split lists are read, which the devkit writes one stem a line; VOC's per-class lists
(`aeroplane_train.txt`, `<stem> <flag>` a line) are not, so no line is cut at a space.

CVAT lists every image of a task, also those nobody annotated, and writes no mask for them: a listed image without
its mask is left out of every split (`VocSegmentation.unlabelled`, which the job and `check-data` report), never
read as background; a test list none of whose images has a mask (VOC2012's `test.txt`: its test set ships no masks) is
left out, and the validation split is the test split, as without a test list. A listed image missing from
`JPEGImages` is an error naming the list; an export without images
(CVAT's "Save images" off) has no `JPEGImages` at all, which is an error saying so.

The classes: `labelmap.txt` (`torchbricks.datasets.labelmap`), else `classes.txt`, else, when the training masks are
palette PNGs coloured with VOC's colour map (as VOC's own `SegmentationClass` is), VOC's 21 classes (`VOC_CLASSES`);
other masks get `background`, `class_1`, ... up to their largest value, as the folder layout does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from torchbricks.datasets._reading import DataError, read_once, read_user_text, visible_files
from torchbricks.datasets.labelmap import voc_colour_map

__all__ = [
    "IMAGES_FOLDER",
    "LISTS_FOLDER",
    "MASKS_FOLDER",
    "VOC_CLASSES",
    "VocSegmentation",
    "has_voc_palette",
    "image_index",
    "is_voc_segmentation",
    "read_voc_segmentation",
    "split_lists",
]

IMAGES_FOLDER = "JPEGImages"
MASKS_FOLDER = "SegmentationClass"
LISTS_FOLDER = Path("ImageSets") / "Segmentation"
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""Pascal VOC's classes in index order (the palette index of its masks), the background first."""
LIST_NAMES = {
    "train": ("train",),
    "validation": ("val", "valid", "validation"),
    "test": ("test",),
    "pool": ("trainval", "default"),
}
"""Split -> the names of its list in `ImageSets/Segmentation`, in the order they are looked for (any case)."""


@dataclass(frozen=True)
class VocSegmentation:
    """The files of a VOC segmentation folder: its image and mask folders and the stems of each list it has."""

    root: Path
    lists: dict[str, tuple[Path, tuple[str, ...]]]
    """Split (`train`, `validation`, `test`, `pool`) -> (the list file, its stems in order); the masks folder stands
    for the list of a pool of every mask."""
    unmasked_test: Path | None = None
    """A test list none of whose images has a mask (VOC2012's `test.txt`: its test set ships no masks), left out of
    `lists`: the validation split is then the test split, as without a test list."""

    @property
    def images(self) -> Path:
        return self.root / IMAGES_FOLDER

    @property
    def masks(self) -> Path:
        return self.root / MASKS_FOLDER

    def has_mask(self, stem: str) -> bool:
        return (self.masks / f"{stem}.png").is_file()

    def labelled(self, split: str) -> tuple[str, ...]:
        """The stems of `split`'s list that have their mask, in the list's order, each once."""
        _, stems = self.lists[split]
        return tuple(stem for stem in dict.fromkeys(stems) if self.has_mask(stem))

    def unlabelled(self) -> list[str]:
        """The listed stems without a mask (images nobody annotated, as CVAT lists them), sorted."""
        return sorted({stem for _, stems in self.lists.values() for stem in stems if not self.has_mask(stem)})

    def unlabelled_notice(self) -> str | None:
        """What the job and `check-data` say of the listed images without a mask and of a test list without any, or
        None when there is none."""
        missing = self.unlabelled()
        test = (
            f"The test list {str(self.unmasked_test)!r} has no image with a mask in {str(self.masks)!r} (as VOC2012's "
            "test set ships none): the validation split is the test split, as without a test list."
            if self.unmasked_test is not None
            else None
        )
        if not missing:
            return test
        many = len(missing) > 1
        return (f"{test}\n" if test else "") + (
            f"{len(missing)} image{'s' if many else ''} listed in {str(self.root / LISTS_FOLDER)!r} ({missing[0]!r}"
            f"{', ...' if many else ''}) {'have' if many else 'has'} no mask in {str(self.masks)!r} and "
            f"{'are' if many else 'is'} left out (CVAT lists the images nobody annotated and writes no mask for them). "
            "An image that shows only background needs a mask too: paint it with the background class."
        )


def is_voc_segmentation(root: Path | str) -> bool:
    """Whether `root` holds segmentation data in the VOC layout: a `SegmentationClass` folder."""
    return (Path(root) / MASKS_FOLDER).is_dir()


def split_lists(folder: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """The split lists in `folder` (VOC's `ImageSets/Segmentation` or `ImageSets/Main`): split (`train`, `validation`,
    `test`, `pool`) -> (the first file of `LIST_NAMES` that exists, the name in any case; its stems in order, each
    line's whole text less the space around it, as a name may hold spaces). No `pool` beside a `train` list."""
    if not folder.is_dir():
        return {}
    entries = read_once("listing", folder, lambda folder: sorted(folder.iterdir()))  # each split's reader asks too
    by_name = {path.stem.casefold(): path for path in entries if path.suffix.lower() == ".txt" and path.is_file()}
    found = {split: next((by_name[name] for name in names if name in by_name), None) for split, names in LIST_NAMES.items()}
    lists = {split: (path, _stems(path)) for split, path in found.items() if path is not None}
    if "train" in lists:
        lists.pop("pool", None)
    return lists


def _stems(path: Path) -> tuple[str, ...]:
    """The stems of a split list: each line whole, stripped (a byte-order mark and CRLF line ends left out), as CVAT
    writes `IMG 0001` for the image `IMG 0001.jpg`; the first word would name another image or none."""
    return tuple(line.strip() for line in read_user_text(path).splitlines() if line.strip())


def read_voc_segmentation(root: Path | str) -> VocSegmentation:
    """The lists of the VOC segmentation folder `root` (see the module docstring).

    Raises:
        DataError: `root` has no `JPEGImages` (an export without its images), or no list and no mask.
    """
    root = Path(root)
    if not (root / IMAGES_FOLDER).is_dir():
        raise DataError(
            f"The segmentation folder {str(root)!r} holds {MASKS_FOLDER}/ but no {IMAGES_FOLDER}/: the images are "
            f"expected in {root / IMAGES_FOLDER}/<stem>.jpg (Pascal VOC's layout). Export the data set with its images "
            "(CVAT: 'Save images' on)."
        )
    lists = split_lists(root / LISTS_FOLDER)
    if "train" not in lists and "pool" not in lists:
        masks = visible_files(root / MASKS_FOLDER, (".png",), recursive=True)
        stems = tuple(path.relative_to(root / MASKS_FOLDER).with_suffix("").as_posix() for path in masks)
        if not stems:
            raise DataError(
                f"The segmentation folder {str(root)!r} has no mask in {str(root / MASKS_FOLDER)!r} and no list in "
                f"{str(root / LISTS_FOLDER)!r} (train.txt, val.txt, trainval.txt or default.txt, one image stem a line)."
            )
        lists["pool"] = (root / MASKS_FOLDER, stems)
    unmasked_test = None
    if "test" in lists and not any((root / MASKS_FOLDER / f"{stem}.png").is_file() for stem in lists["test"][1]):
        unmasked_test = lists.pop("test")[0]  # VOC2012's test set: images without masks, nothing to test on
    return VocSegmentation(root, lists, unmasked_test)


def image_index(images: Path) -> dict[str, Path]:
    """The images under `images`, subfolders included, by their path relative to it without the extension."""
    index: dict[str, Path] = {}
    for path in visible_files(images, recursive=True):
        index.setdefault(path.relative_to(images).with_suffix("").as_posix(), path)
    return index


def has_voc_palette(masks: list[Path]) -> bool:
    """Whether the masks are palette PNGs whose first 21 colours are VOC's colour map (as VOC's own masks are)."""
    expected = [value for colour in voc_colour_map(len(VOC_CLASSES)) for value in colour]
    if not masks:
        return False
    for path in masks:
        with Image.open(path) as mask:
            if mask.mode != "P" or (mask.getpalette("RGB") or [])[: len(expected)] != expected:
                return False
    return True
