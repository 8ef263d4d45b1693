"""The box detection layouts (COCO, YOLO, Pascal VOC) behind one interface: find which one a folder holds, read its
class names, and read a split as a `BoxDataset`. The data module, the class-name resolver of the configs and
`torchbricks check-data` all go through here.
"""

from __future__ import annotations

from pathlib import Path

from torchbricks.datasets._reading import (
    DataError,
    DataProblems,
    Transform,
    check_data_folder,
    read_once,
    visible_files,
)
from torchbricks.datasets.boxes import BoxDataset
from torchbricks.datasets.coco import (
    CocoDataset,
    CocoLayout,
    coco_class_names,
    coco_file_category_ids,
    read_coco_layout,
    split_image_ids,
)
from torchbricks.datasets.voc import SPLIT_SEED, VALIDATION_FRACTION, VocDataset, read_voc_splits, voc_class_names
from torchbricks.datasets.yolo import (
    DARKNET_DATA,
    DARKNET_NAMES,
    YOLO_FILE,
    YOLO_FILES,
    YoloDataset,
    read_yolo_layout,
    yolo_class_names,
)
from torchbricks.errors import ConfigError, did_you_mean

__all__ = [
    "DETECTION_LAYOUTS",
    "LAYOUT_EXPECTS",
    "coco_category_ids",
    "coco_layout",
    "detect_detection_layout",
    "detection_class_names",
    "find_detection_layouts",
    "has_test_split",
    "has_validation_split",
    "read_detection_split",
]

DETECTION_LAYOUTS = ("coco", "yolo", "voc")
LAYOUT_EXPECTS = {
    "coco": "ROOT/train.json and ROOT/val.json (COCO instances; image file_name relative to ROOT), or "
    "ROOT/{train,valid,test}/_annotations.coco.json (Roboflow), or ROOT/annotations/instances_<subset>.json with "
    "ROOT/images/<subset>/* (COCO, CVAT), or ROOT/result.json with ROOT/images/* (Label Studio)",
    "yolo": f"ROOT/{YOLO_FILE} (or dataset.yaml; names) with ROOT/images/{{train,val}}/* and ROOT/labels/{{train,val}}/*.txt, or "
    "ROOT/obj.data and obj.names with ROOT/obj_train_data/* (Darknet, CVAT YOLO 1.1), or ROOT/classes.txt with "
    "ROOT/images/* and ROOT/labels/*.txt, or with images and their .txt files beside them",
    "voc": "ROOT/Annotations/*.xml with ROOT/JPEGImages/* (split by ROOT/ImageSets/Main/{train,val}.txt), "
    "or images with their .xml files beside them, in ROOT or in ROOT/{train,valid,test} (Roboflow)",
}
"""Layout -> what a data folder in it holds, for messages."""


def find_detection_layouts(root: Path | str) -> list[str]:
    """The box layouts whose marks the folder has: `train.json`, `train/_annotations.coco.json`,
    `annotations/instances_*.json` or `result.json` (COCO), `data.yaml` (`dataset.yaml`), `obj.data` or `obj.names`,
    `labels/`, or `classes.txt` with images and their .txt files side by side (YOLO; in subfolders too),
    `Annotations/` or XML files (VOC; without any other sign, XML files beside images in subfolders)."""
    root = Path(root)
    # labelImg's files may all lie in subfolders, a folder per day or camera
    side_by_side = (root / "classes.txt").is_file() and any(
        path.with_suffix(".txt").is_file() for path in visible_files(root, recursive=True)
    )
    signs = {
        "coco": _holds_coco(root),
        "yolo": any((root / name).is_file() for name in (*YOLO_FILES, DARKNET_DATA, DARKNET_NAMES))
        or (root / "labels").is_dir()
        or side_by_side,
        "voc": (root / "Annotations").is_dir()
        or bool(visible_files(root, (".xml",)))
        or bool(visible_files(root / "train", (".xml",))),
    }
    found = [name for name, present in signs.items() if present]
    if not found and _xml_beside_an_image(visible_files(root, (".xml",), recursive=True)):
        found = ["voc"]  # labelImg's XML files beside their images in subfolders only (no other layout's sign)
    return found


def _xml_beside_an_image(xml_files: list[Path]) -> bool:
    """Whether one of the XML files has an image of its stem beside it (the suffix in any case); each folder listed once."""
    stems: dict[Path, set[str]] = {}
    for path in xml_files:
        if path.parent not in stems:
            stems[path.parent] = {image.stem.lower() for image in visible_files(path.parent)}
        if path.stem.lower() in stems[path.parent]:
            return True
    return False


def _holds_coco(root: Path) -> bool:
    """Whether the folder has a COCO file where a layout puts one (a bad layout is then COCO's reader's error)."""
    try:
        return read_coco_layout(root) is not None
    except DataError:
        return True


def coco_layout(root: Path | str) -> CocoLayout:
    """The COCO files of the data in `root` (`torchbricks.datasets.coco.read_coco_layout`).

    Raises:
        DataError: The folder holds no COCO file where a layout puts one, or none for training.
    """
    layout = read_coco_layout(root)
    if layout is None:
        raise DataError(f"The data folder {str(root)!r} holds no COCO data: expected {LAYOUT_EXPECTS['coco']}.")
    return layout


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
    check_data_folder(root)
    if layout != "auto":
        return layout
    found = list(read_once("detection layouts", root, find_detection_layouts))  # asked by every class interpolation
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
        return coco_class_names(coco_layout(root).train.path)
    if layout == "yolo":
        return yolo_class_names(root)
    return voc_class_names(root)


def coco_category_ids(root: Path | str) -> list[int]:
    """The category ids of the COCO training file in `root`, in id order (the class index is the position)."""
    return coco_file_category_ids(coco_layout(root).train.path)


def has_test_split(root: Path | str, layout: str) -> bool:
    """Whether the data has its own test split (a COCO test file, YOLO `test`, VOC `ImageSets/Main/test.txt`)."""
    root = Path(root)
    if layout == "coco":
        return coco_layout(root).test is not None
    if layout == "yolo":
        return any(source.exists() for source in read_yolo_layout(root).splits["test"])
    return bool(read_voc_splits(root).files["test"])


def has_validation_split(root: Path | str, layout: str) -> bool:
    """Whether the box data has a validation split of its own (else one is drawn from its training images): a COCO
    validation file, YOLO `val` (or Darknet `valid`), VOC split lists or a validation folder."""
    root = Path(root)
    if layout == "coco":
        return coco_layout(root).validation is not None
    if layout == "yolo":
        return not read_yolo_layout(root).drawn
    return read_voc_splits(root).listed


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
    voc_origin: int | str = "auto",
    segmentation: bool = False,
) -> BoxDataset:
    """One split (`train`, `validation`, `test`) of the box data in `root`, in `layout` (not `auto`); VOC boxes
    counted from `voc_origin` (`VocDataset`'s `origin`).

    `class_names` are the train split's (so every split numbers the classes alike); a split whose classes differ
    (COCO categories) or name one outside them (VOC) is an error. With `with_masks` the samples also have the
    multitask targets, the masks drawn from the outlines (COCO polygons or RLE, YOLO segmentation lines); with
    `segmentation` (COCO, YOLO) they are semantic segmentation's (`BoxDataset`).

    Raises:
        DataError: The data is bad (see the layout's reader).
    """
    root = Path(root)
    dataset: BoxDataset
    if layout == "coco":
        dataset = _coco_split(root, split, class_names, with_masks, transform, problems, validation_fraction, seed)
    elif layout == "yolo":
        dataset = YoloDataset(root, split, transform, problems, validation_fraction, seed)
    else:
        dataset = VocDataset(root, split, class_names, transform, validation_fraction, seed, problems, voc_origin)
    if segmentation or with_masks:
        dataset.draw_masks(segmentation=segmentation)
    return dataset


def _coco_split(
    root: Path,
    split: str,
    class_names: list[str] | None,
    with_masks: bool,
    transform: Transform | None,
    problems: DataProblems | None,
    validation_fraction: float,
    seed: int,
) -> BoxDataset:
    """`read_detection_split` of COCO data: the split's file, or the training file's images drawn at random into
    train and validation when the data has no validation file (the test split is then the validation split)."""
    layout = coco_layout(root)
    if split == "test" and layout.test is None:
        split = "validation"
    file, image_ids = layout.file(split), None
    if file is None:  # no validation file: drawn from the training file's images
        file = layout.train
        drawn = dict(zip(("train", "validation"), split_image_ids(file.path, validation_fraction, seed), strict=True))
        image_ids = drawn[split]
    elif split == "train" and layout.validation is None:
        image_ids = split_image_ids(file.path, validation_fraction, seed)[0]
    dataset = CocoDataset(file.path, file.image_roots, with_masks, transform, problems, image_ids=image_ids)
    if class_names is not None and dataset.class_names != class_names:
        raise DataError(
            f"The categories of {str(file.path)!r} ({dataset.class_names}) differ from the training file "
            f"{str(layout.train.path)!r}'s ({class_names})."
        )
    return dataset
