"""Where the splits of the folder layouts (image folders for classification, image and mask folders for segmentation)
are, however a user's folder names them or leaves them out.

- `ROOT/train/` holds the training split; validation is the first of `ROOT/val/`, `ROOT/valid/` (Roboflow's name) and
  `ROOT/validation/` (Keras' name) that exists; the test split is `ROOT/test/`, or the validation split without it.
- No validation folder: `validation_fraction` of the training images are drawn at random for validation, fixed by
  `seed` (image folders draw per class, so each class keeps its share in both splits; a class of one image stays in
  training).
- No split folder at all: `ROOT` itself is the pool the splits are drawn from, as a folder of class folders
  (`ROOT/<class>/*`, how people sort their photographs) or `ROOT/images/` with `ROOT/masks/`.
- Segmentation in Pascal VOC's layout (`ROOT/SegmentationClass/`, as VOC and CVAT's exports write it, without
  `ROOT/train/` or `ROOT/images/`): the splits are the lists of `ROOT/ImageSets/Segmentation/`, drawn from a pool list
  as above when there is no validation list (`torchbricks.datasets.voc_segmentation`).

`folder_splits` gives each split a `FolderSplit`: the folder its files are in and, for a drawn split, which of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torchbricks._image_files import FolderListings
from torchbricks.datasets._reading import (
    SPLIT_SEED,
    VALIDATION_FRACTION,
    DataError,
    check_data_folder,
    class_images,
    folder_entries,
    image_files,
    is_hidden,
    random_split,
)
from torchbricks.datasets.voc_segmentation import (
    IMAGES_FOLDER,
    MASKS_FOLDER,
    VocSegmentation,
    is_voc_segmentation,
    read_voc_segmentation,
)

__all__ = [
    "FOLDER_LAYOUTS",
    "SPLIT_FOLDERS",
    "VALIDATION_FOLDERS",
    "FolderSplit",
    "folder_splits",
    "has_own_split",
    "is_pool",
    "is_voc_layout",
    "segmentation_folders",
    "training_folder",
    "whole_splits",
]

FOLDER_LAYOUTS = ("image_folder", "segmentation_folder")
VALIDATION_FOLDERS = ("val", "valid", "validation")
"""The names of a validation folder, in the order they are looked for."""
SPLIT_FOLDERS = ("train", *VALIDATION_FOLDERS, "test")
"""Every split folder name; a folder holding none of them is a pool (`is_pool`)."""


@dataclass(frozen=True)
class FolderSplit:
    """One split of a folder layout: the folder its files are in (`ROOT/train`, `ROOT/val`, or the pool `ROOT`) and,
    when it was drawn from a folder it shares with another split, the file paths relative to that folder it keeps
    (`<class>/<image>` for image folders, the image file name for segmentation); all the folder's files when None."""

    folder: Path
    only: frozenset[str] | None = None
    stems: tuple[str, ...] | None = None
    """Pascal VOC's layout (`folder` is then the data folder): the split's images by stem, relative to `JPEGImages`
    without extension, in the order of its list; `only` holds them too when the split was drawn."""
    listed: Path | None = None
    """Pascal VOC's layout: the list file the stems come from (the masks folder for a pool of every mask)."""

    def keeps(self, relative: str) -> bool:
        """Whether the file at `relative` (POSIX, relative to `folder`) belongs to this split."""
        return self.only is None or relative in self.only

    @property
    def images(self) -> Path:
        """The folder of a segmentation split's images: `folder/images`, or `JPEGImages` in VOC's layout."""
        return self.folder / ("images" if self.stems is None else IMAGES_FOLDER)

    @property
    def masks(self) -> Path:
        """The folder of a segmentation split's masks: `folder/masks`, or `SegmentationClass` in VOC's layout."""
        return self.folder / ("masks" if self.stems is None else MASKS_FOLDER)


def is_voc_layout(root: Path | str, layout: str) -> bool:
    """Whether the segmentation data at `root` is in Pascal VOC's layout: `SegmentationClass/`, and neither `train/`
    nor `images/` (which the folder layout reads first)."""
    root = Path(root)
    return (
        layout == "segmentation_folder"
        and is_voc_segmentation(root)
        and not (root / "train").is_dir()
        and not (root / "images").is_dir()
    )


def segmentation_folders(root: Path | str) -> tuple[Path, Path]:
    """The folders of the training images and masks of segmentation data: `JPEGImages` and `SegmentationClass` in
    VOC's layout (every split's), else `images` and `masks` of the training folder (`training_folder`).

    Raises:
        DataError: There is neither a training folder nor a pool.
    """
    root = Path(root)
    if is_voc_layout(root, "segmentation_folder"):
        return root / IMAGES_FOLDER, root / MASKS_FOLDER
    train = training_folder(root, "segmentation_folder")
    return train / "images", train / "masks"


def is_pool(root: Path | str, layout: str) -> bool:
    """Whether `root` is a pool without split folders: class folders holding images (`image_folder`), or `images/`
    and `masks/` (`segmentation_folder`), and none of `train`, `val`, `valid`, `validation`, `test`."""
    root = Path(root)
    if not root.is_dir() or any(_is_split_folder(root / name, layout) for name in SPLIT_FOLDERS):
        return False
    if layout == "segmentation_folder":
        return (root / "images").is_dir() and (root / "masks").is_dir()
    return any(path.is_dir() and not is_hidden(path.name) and class_images(path) for path in folder_entries(root))


def _is_split_folder(path: Path, layout: str) -> bool:
    """Whether `path` (named as a split) is one: for image folders, not when it holds images and no folder, as the
    class `train` of a pool of vehicles or the class `test` of a pool of lab results would."""
    if not path.is_dir():
        return False
    if layout != "image_folder":
        return True
    return any(child.is_dir() and not is_hidden(child.name) for child in folder_entries(path)) or not image_files(path)


def training_folder(root: Path | str, layout: str) -> Path:
    """The folder of the training split: `root/train`, or `root` itself when it is a pool (`is_pool`); the class
    names, image sizes and class frequencies of the data are read there.

    Raises:
        DataError: There is neither (the message says what the layout expects).
    """
    root = Path(root)
    check_data_folder(root)
    if is_pool(root, layout) or is_voc_layout(root, layout):
        return root
    train = root / "train"
    if not train.is_dir():
        expected = "<class>/<image>" if layout == "image_folder" else "images/* and masks/<same stem>.png"
        raise DataError(
            f"The data folder {str(root)!r} has no training folder {str(train)!r}; expected {root}/train/{expected} "
            f"(validation in val/, valid/ or validation/), or {root}/{expected} for all labelled images, split at random"
            + (
                f", or Pascal VOC's {root}/{IMAGES_FOLDER}/* with {root}/{MASKS_FOLDER}/<same stem>.png."
                if layout == "segmentation_folder"
                else "."
            )
        )
    return train


def has_own_split(root: Path | str, layout: str, split: str) -> bool:
    """Whether the data at `root` has a folder of its own for `split` (`validation`: `val`, `valid` or `validation`;
    `test`: `test`), decided from the folders alone (nothing is drawn).

    Raises:
        DataError: There is neither a training folder nor a pool (`training_folder`).
    """
    root = Path(root)
    if is_voc_layout(root, layout):
        return split in read_voc_segmentation(root).lists
    if training_folder(root, layout) == root:
        return False
    names = VALIDATION_FOLDERS if split == "validation" else (split,)
    return any((root / name).is_dir() for name in names)


def folder_splits(
    root: Path | str,
    layout: str,
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = SPLIT_SEED,
    listings: FolderListings | None = None,
) -> dict[str, FolderSplit]:
    """The `train`, `validation` and `test` splits of the folder layout `layout` at `root` (see the module docstring);
    a segmentation pool's images are listed by `listings` when given (`FolderListings`: once for a data module's
    start-up).

    Raises:
        DataError: There is neither a training folder nor a pool, or a drawn split lacks images to draw from.
    """
    root = Path(root)
    if is_voc_layout(root, layout):
        return _voc_splits(read_voc_segmentation(root), validation_fraction, seed)
    train_folder = training_folder(root, layout)
    validation = next((root / name for name in VALIDATION_FOLDERS if train_folder != root and (root / name).is_dir()), None)
    if validation is not None:
        splits = {"train": FolderSplit(train_folder), "validation": FolderSplit(validation)}
    else:
        kept, drawn = _draw(train_folder, layout, validation_fraction, seed, listings)
        splits = {"train": FolderSplit(train_folder, kept), "validation": FolderSplit(train_folder, drawn)}
    test = root / "test"
    splits["test"] = FolderSplit(test) if train_folder != root and test.is_dir() else splits["validation"]
    return splits


def _voc_splits(voc: VocSegmentation, fraction: float, seed: int) -> dict[str, FolderSplit]:
    """The splits of VOC's layout: its lists, each image with its mask (`VocSegmentation.labelled`), the validation
    split drawn from the training (or pool) list when there is no validation list."""
    root = voc.root

    def listed(split: str) -> FolderSplit:
        return FolderSplit(root, stems=voc.labelled(split), listed=voc.lists[split][0])

    source = "train" if "train" in voc.lists else "pool"
    where = voc.lists[source][0]
    if "validation" in voc.lists:  # VOC's trainval holds val: what the validation list holds is not trained on
        held = set(voc.labelled("validation"))
        train = tuple(stem for stem in voc.labelled(source) if stem not in held)
        splits = {"train": FolderSplit(root, stems=train, listed=where), "validation": listed("validation")}
    else:
        kept, drawn = random_split(list(voc.labelled(source)), fraction, seed, where)
        splits = {
            "train": FolderSplit(root, frozenset(kept), tuple(kept), where),
            "validation": FolderSplit(root, frozenset(drawn), tuple(drawn), where),
        }
    splits["test"] = listed("test") if "test" in voc.lists else splits["validation"]
    return splits


def whole_splits(root: Path | str, layout: str) -> list[FolderSplit]:
    """The splits of data whose validation split is drawn, read whole (nothing drawn, so a pool too small to split is
    still evaluated): the training folder (or VOC's pool list) and the test split when the data has its own.

    Raises:
        DataError: There is neither a training folder nor a pool.
    """
    root = Path(root)
    if is_voc_layout(root, layout):
        voc = read_voc_segmentation(root)
        pool = "train" if "train" in voc.lists else "pool"
        parts = [FolderSplit(root, stems=voc.labelled(pool), listed=voc.lists[pool][0])]
        if "test" in voc.lists:
            parts.append(FolderSplit(root, stems=voc.labelled("test"), listed=voc.lists["test"][0]))
        return parts
    parts = [FolderSplit(training_folder(root, layout))]
    return parts + ([FolderSplit(root / "test")] if has_own_split(root, layout, "test") else [])


def _draw(
    folder: Path, layout: str, fraction: float, seed: int, listings: FolderListings | None = None
) -> tuple[frozenset[str], frozenset[str]]:
    """The files of `folder` drawn at random into (train, validation), relative to `folder`.

    Raises:
        DataError: Fewer than two images to draw from.
    """
    if layout == "segmentation_folder":
        images = image_files(folder / "images") if listings is None else listings.files(folder / "images")
        names = [path.name for path in images]
        train, validation = random_split(names, fraction, seed, folder / "images")
        return frozenset(train), frozenset(validation)
    groups = [
        [f"{path.name}/{image.relative_to(path).as_posix()}" for image in class_images(path)]
        for path in sorted(folder.iterdir())
        if path.is_dir() and not is_hidden(path.name)
    ]
    if sum(len(group) for group in groups) < 2:
        raise DataError(f"{str(folder)!r} has fewer than two images; a split into train and validation needs two.")
    if all(len(group) < 2 for group in groups):
        raise DataError(
            f"Every class folder of {str(folder)!r} holds one image at most, and a class's only image stays in training: "
            "no validation image can be drawn. Add images, or a val/ folder of class folders."
        )
    kept: set[str] = set()
    drawn: set[str] = set()
    for group in groups:  # per class, so that every class keeps its share; a class of one image stays in training
        if len(group) < 2:
            kept.update(group)
            continue
        train, validation = random_split(group, fraction, seed, folder)
        kept.update(train)
        drawn.update(validation)
    return frozenset(kept), frozenset(drawn)
