"""The box detection layouts (COCO, YOLO, Pascal VOC) behind one interface: find which one a folder holds, read its
class names, and read a split as a `BoxDataset`. The data module, the class-name resolver of the configs and
`torchbricks check-data` all go through here.
"""

from __future__ import annotations

import json
from pathlib import Path

from torchbricks.datasets._reading import DataError, DataProblems, Transform, visible_files
from torchbricks.datasets.boxes import BoxDataset
from torchbricks.datasets.coco import CocoDataset, coco_class_names
from torchbricks.datasets.voc import SPLIT_SEED, VALIDATION_FRACTION, VocDataset, read_voc_splits, voc_class_names
from torchbricks.datasets.yolo import DARKNET_DATA, DARKNET_NAMES, YOLO_FILE, YoloDataset, read_yolo_layout, yolo_class_names
from torchbricks.errors import ConfigError, did_you_mean

__all__ = [
    "DETECTION_LAYOUTS",
    "LAYOUT_EXPECTS",
    "coco_category_ids",
    "detect_detection_layout",
    "detection_class_names",
    "find_detection_layouts",
    "has_test_split",
    "read_detection_split",
]

DETECTION_LAYOUTS = ("coco", "yolo", "voc")
LAYOUT_EXPECTS = {
    "coco": "ROOT/train.json and ROOT/val.json (COCO instances; image file_name relative to ROOT)",
    "yolo": f"ROOT/{YOLO_FILE} (names) with ROOT/images/{{train,val}}/* and ROOT/labels/{{train,val}}/*.txt, or "
    "ROOT/obj.data and obj.names with ROOT/obj_train_data/* (Darknet, CVAT YOLO 1.1), or ROOT/classes.txt with "
    "ROOT/images/* and ROOT/labels/*.txt, or with images and their .txt files beside them",
    "voc": "ROOT/Annotations/*.xml with ROOT/JPEGImages/* (split by ROOT/ImageSets/Main/{train,val}.txt), "
    "or images with their .xml files beside them",
}
"""Layout -> what a data folder in it holds, for messages."""


def find_detection_layouts(root: Path | str) -> list[str]:
    """The box layouts whose marks the folder has: `train.json` (COCO), `data.yaml`, `obj.data` or `obj.names`,
    `labels/`, or `classes.txt` with images and their .txt files side by side (YOLO), `Annotations/` or XML files
    (VOC)."""
    root = Path(root)
    side_by_side = (root / "classes.txt").is_file() and any(path.with_suffix(".txt").is_file() for path in visible_files(root))
    signs = {
        "coco": (root / "train.json").is_file(),
        "yolo": any((root / name).is_file() for name in (YOLO_FILE, DARKNET_DATA, DARKNET_NAMES))
        or (root / "labels").is_dir()
        or side_by_side,
        "voc": (root / "Annotations").is_dir() or bool(visible_files(root, (".xml",))),
    }
    return [name for name, present in signs.items() if present]


def detect_detection_layout(root: Path | str, layout: str = "auto") -> str:
    """The box layout of the data in `root`: `layout` itself when it names one, otherwise the one the folder holds.

    Raises:
        DataError: `root` does not exist, holds no box layout or holds more than one (then `data.layout` picks).
        ConfigError: An unknown `layout`.
    """
    root = Path(root)
    if layout != "auto" and layout not in DETECTION_LAYOUTS:
        choices = ("auto", *DETECTION_LAYOUTS)
        raise ConfigError(
            f"Config key 'data.layout' is {layout!r}; choose one of {list(choices)}.{did_you_mean(layout, choices)}"
        )
    if not root.is_dir():
        raise DataError(f"The data folder {str(root)!r} does not exist.")
    if layout != "auto":
        return layout
    found = find_detection_layouts(root)
    if len(found) == 1:
        return found[0]
    expects = "; ".join(f"{name}: {LAYOUT_EXPECTS[name]}" for name in DETECTION_LAYOUTS)
    if not found:
        raise DataError(f"The data folder {str(root)!r} holds no box detection layout. Expected one of {expects}.")
    raise DataError(f"The data folder {str(root)!r} looks like more than one layout ({found}); set data.layout to one of them.")


def detection_class_names(root: Path | str, layout: str = "auto") -> list[str]:
    """The class names of the box data in `root`, in index order: COCO categories in id order, YOLO `names`, VOC
    object names of the train split sorted.

    Raises:
        DataError: See `detect_detection_layout` and the layout's reader.
    """
    root = Path(root)
    layout = detect_detection_layout(root, layout)
    if layout == "coco":
        return coco_class_names(root / "train.json")
    if layout == "yolo":
        return yolo_class_names(root)
    return voc_class_names(root)


def coco_category_ids(root: Path | str) -> list[int]:
    """The category ids of `root/train.json` in id order (the class index is the position)."""
    path = Path(root) / "train.json"
    coco_class_names(path)  # the file's own checks
    return sorted(int(category["id"]) for category in json.loads(path.read_text())["categories"])


def has_test_split(root: Path | str, layout: str) -> bool:
    """Whether the data has its own test split (`test.json`, YOLO `test`, VOC `ImageSets/Main/test.txt`)."""
    root = Path(root)
    if layout == "coco":
        return (root / "test.json").is_file()
    if layout == "yolo":
        return any(source.exists() for source in read_yolo_layout(root).splits["test"])
    return bool(read_voc_splits(root).files["test"])


def read_detection_split(
    root: Path | str,
    layout: str,
    split: str,
    class_names: list[str] | None = None,
    with_masks: bool = False,
    transform: Transform | None = None,
    problems: DataProblems | None = None,
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = SPLIT_SEED,
) -> BoxDataset:
    """One split (`train`, `validation`, `test`) of the box data in `root`, in `layout` (not `auto`).

    `class_names` are the train split's (so every split numbers the classes alike); a split whose classes differ
    (COCO categories) or name one outside them (VOC) is an error. With `with_masks` (COCO only) the samples also have
    the multitask targets.

    Raises:
        DataError: The data is bad (see the layout's reader).
    """
    root = Path(root)
    if layout == "coco":
        path = root / {"train": "train.json", "validation": "val.json", "test": "test.json"}[split]
        dataset: BoxDataset = CocoDataset(path, root, with_masks=with_masks, transform=transform, problems=problems)
        if class_names is not None and dataset.class_names != class_names:
            raise DataError(f"The categories of {str(path)!r} ({dataset.class_names}) differ from train.json's ({class_names}).")
        return dataset
    if layout == "yolo":
        return YoloDataset(root, split, transform, problems, validation_fraction, seed)
    return VocDataset(root, split, class_names, transform, validation_fraction, seed, problems)
