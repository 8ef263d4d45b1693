"""Which layout semantic segmentation data is read in (`task=segmentation`): mask folders, or the outlines labelling
tools export (COCO polygons and RLE, Ultralytics' YOLO segmentation lines), whose masks are drawn from them.

- `segmentation_folder`: `ROOT/{train,val}/images` with `masks/`, `ROOT/images` with `ROOT/masks` (split at random)
  or Pascal VOC's `SegmentationClass` (`torchbricks.datasets.folder_splits`). A folder holding mask folders is read
  so, whatever box or outline files lie beside them (`data.layout=coco` or `yolo` reads those instead): mask folders
  keep being read as they always were.
- `coco`, `yolo`: the box layouts of `torchbricks.datasets.detection_layouts`, each object's outline drawn into the
  mask (`BoxDataset` with `segmentation`: pixel = class index + 1, 0 the background, 255 ignored). Pascal VOC XML
  files hold boxes only: such data is detection data.

`check_outlines` refuses a split of objects none of which has an outline (box data: the masks would be the boxes, or
nothing), and `unoutlined_notice` says how many objects of a split have a box but no outline (drawn ignored).

`task=multitask` draws its masks from the same outlines in the same way (COCO or YOLO), but reads box data too: in a
split without any outline each box stands in for its object's outline, drawn as the class, and
`multitask_masks_notice` says so (or, among outlined objects, what `unoutlined_notice` says).
"""

from __future__ import annotations

from pathlib import Path

from torchbricks.datasets._reading import DataError, check_data_folder
from torchbricks.datasets.boxes import BoxDataset
from torchbricks.datasets.detection_layouts import detect_detection_layout, find_detection_layouts
from torchbricks.datasets.folder_splits import is_pool, is_voc_layout
from torchbricks.errors import ConfigError, did_you_mean

__all__ = [
    "OUTLINE_LAYOUTS",
    "SEGMENTATION_LAYOUTS",
    "check_outlines",
    "holds_mask_folders",
    "multitask_masks_notice",
    "segmentation_layout",
    "unoutlined_notice",
    "unread_outlines_notice",
]

OUTLINE_LAYOUTS = ("coco", "yolo")
"""The box layouts whose objects may have outlines to draw masks from."""
SEGMENTATION_LAYOUTS = ("segmentation_folder", *OUTLINE_LAYOUTS)


def holds_mask_folders(root: Path | str) -> bool:
    """Whether the folder holds segmentation masks in a folder layout: `train/images` with `train/masks`, a pool
    `images/` with `masks/`, or Pascal VOC's `SegmentationClass/`."""
    root = Path(root)
    return (
        ((root / "train" / "images").is_dir() and (root / "train" / "masks").is_dir())
        or is_pool(root, "segmentation_folder")
        or is_voc_layout(root, "segmentation_folder")
    )


def segmentation_layout(root: Path | str, layout: str = "auto") -> str:
    """The layout the segmentation data in `root` is read in (see the module docstring): `layout` when it names one,
    else mask folders when the folder holds them, else the COCO or YOLO data it holds; a folder holding neither is
    read as mask folders (whose reader then says what it expects).

    Raises:
        ConfigError: An unknown `layout` (`voc`: box data).
        DataError: `root` does not exist, holds box data without outlines (VOC XML), or looks like COCO and YOLO both.
    """
    choices = ("auto", *SEGMENTATION_LAYOUTS)
    if layout == "voc":
        raise ConfigError(
            "Config key 'data.layout' is 'voc': Pascal VOC XML files hold boxes, no outlines to draw masks from. Train "
            "task=detection on them, or give segmentation masks (SegmentationClass/) or COCO or YOLO outlines."
        )
    if layout not in choices:
        raise ConfigError(
            f"Config key 'data.layout' is {layout!r}; task=segmentation reads {list(choices)}.{did_you_mean(layout, choices)}"
        )
    root = Path(root)
    check_data_folder(root)
    if layout != "auto":
        return layout
    if holds_mask_folders(root):
        return "segmentation_folder"
    found = find_detection_layouts(root)
    if found == ["voc"]:
        raise DataError(
            f"The data folder {str(root)!r} holds Pascal VOC XML files: boxes, with no outline to draw segmentation "
            f"masks from. It is box detection data: train task=detection on it (torchbricks train task=detection "
            f"data.root={root}), or give it masks (train/images with train/masks) or COCO or YOLO outlines."
        )
    if not found:
        return "segmentation_folder"
    return detect_detection_layout(root, "auto")


def check_outlines(dataset: BoxDataset, root: Path | str, split: str) -> None:
    """Refuses box data: a split whose objects (crowd regions and difficult objects left out) have not one outline.

    Raises:
        DataError: Naming the folder, the split and its objects, and `task=detection`.
    """
    without, images, outlined = dataset.unoutlined()
    if without and not outlined:
        raise DataError(
            f"The {split!r} split of {str(root)!r} has {without} object{'s' if without > 1 else ''} in {images} "
            f"image{'s' if images > 1 else ''} and not one outline (COCO segmentation polygons or RLE, YOLO "
            "segmentation lines 'class x1 y1 x2 y2 ...'): it is box detection data, with no mask to learn. Train "
            f"task=detection on it (torchbricks train task=detection data.root={root}), or export the outlines "
            "(COCO with segmentations, YOLO segmentation)."
        )


def unoutlined_notice(dataset: BoxDataset, split: str) -> str | None:
    """What the job and `check-data` say of the objects of a split with a box but no outline, drawn as ignored
    (255) over their boxes; None when every object has an outline."""
    without, images, outlined = dataset.unoutlined()
    if not without:
        return None
    many = without > 1
    return (
        f"{without} object{'s' if many else ''} of the {split!r} split (in {images} image{'s' if images > 1 else ''}; "
        f"{outlined} with an outline) {'have' if many else 'has'} a box but no outline (a YOLO box line, a COCO "
        f"annotation with an empty segmentation): {'their boxes are' if many else 'its box is'} drawn as 255 "
        "(ignored) in the masks, neither trained on nor measured, since a box drawn as the object would teach its "
        "background pixels as the class."
    )


def unread_outlines_notice(root: Path | str, layout: str) -> str | None:
    """What the job and `check-data` say when segmentation data read as mask folders also holds COCO or YOLO files,
    which are then not read; None otherwise."""
    if layout != "segmentation_folder":
        return None
    beside = [found for found in find_detection_layouts(root) if found in OUTLINE_LAYOUTS]
    if not beside:
        return None
    return (
        f"{str(root)!r} holds mask folders and {' and '.join(name.upper() for name in beside)} files: task=segmentation "
        f"reads the masks and not the outlines (data.layout={beside[0]} reads the outlines, drawn into masks, instead)."
    )


def multitask_masks_notice(dataset: BoxDataset, split: str) -> str | None:
    """What the job and `check-data` say of multitask's masks of a split (`BoxDataset` with `with_masks`) when some
    object has no outline: among outlined objects, `unoutlined_notice` (their boxes drawn ignored); in a split
    without any outline (box data), that the boxes are drawn as the masks. None when every object has an outline."""
    without, images, outlined = dataset.unoutlined()
    if not without:
        return None
    if outlined:
        return unoutlined_notice(dataset, split)
    many = without > 1
    return (
        f"The {split!r} split has {without} object{'s' if many else ''} (in {images} image{'s' if images > 1 else ''}) "
        "and not one outline (YOLO box lines 'class cx cy w h', COCO annotations with empty segmentations): "
        "task=multitask draws each box as its class in the masks, the box standing in for the outline, so the "
        "segmentation head learns and is measured on boxes, background pixels inside them counted as the class. "
        "Export the outlines (YOLO segmentation, COCO with segmentations) for true masks."
    )
