"""COCO instances files: `bbox` `[x, y, w, h]`, category ids need not be contiguous, crowd regions ignored by training
and evaluation as COCO's evaluation ignores them, a `bbox` of zero width or height left out (`reading_notice` says
so); boxes alone or with a semantic mask drawn from the polygons (RLE masks need pycocotools, the `detection` extra).

The folders COCO comes in (`read_coco_layout`), as tools write them:

- `ROOT/train.json`, `val.json`, `test.json`, file names relative to `ROOT` (torchbricks' own, `make-dataset`);
- Roboflow: `ROOT/{train,valid,test}/_annotations.coco.json`, each split's images beside its file;
- COCO itself and CVAT / Datumaro ("COCO 1.0"): `ROOT/annotations/instances_<subset>.json` with images in
  `ROOT/images/<subset>/`, `ROOT/images/` or `ROOT/<subset>/` (`train2017/`); the subset `default` (CVAT's name for
  a task without subsets) is the training split;
- Label Studio: `ROOT/result.json` with `ROOT/images/`.

File names may use Windows separators (`images\\a.jpg`, as Label Studio writes them on Windows). Data without a
validation split of its own has `validation_fraction` of its training images drawn at random for it, fixed by a seed,
as YOLO and VOC data without splits have.
"""

from __future__ import annotations

import json
import marshal
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

from torchbricks.datasets._reading import (
    BOX_TOLERANCE,
    SPLIT_SEED,
    VALIDATION_FRACTION,
    DataError,
    DataProblems,
    Transform,
    image_file_size,
    problems_or_raise,
    random_split,
    read_once,
    read_user_text,
    reading_once,
    stripped_class_names,
)
from torchbricks.datasets.boxes import BoxDataset, BoxImage, BoxObject, box_problem, clip_box
from torchbricks.datasets.folder_splits import VALIDATION_FOLDERS

__all__ = [
    "CocoDataset",
    "CocoFile",
    "CocoLayout",
    "coco_categories",
    "coco_class_names",
    "coco_file_category_ids",
    "image_path",
    "parsed_json",
    "read_coco_layout",
    "split_image_ids",
    "whole_number",
]

ROBOFLOW_FILE = "_annotations.coco.json"
LABEL_STUDIO_FILE = "result.json"
_SPLIT_PREFIXES = {"train": ("train", "default"), "validation": ("val",), "test": ("test",)}
"""Split -> the starts of the subset names of `instances_<subset>.json` that mean it."""


@dataclass(frozen=True)
class CocoFile:
    """One instances file and the folders its image `file_name`s are looked up in, in order."""

    path: Path
    image_roots: tuple[Path, ...]


@dataclass(frozen=True)
class CocoLayout:
    """The COCO files of a data folder: one per split; `validation` None when the data has no validation split of
    its own (it is then drawn from the training file's images, `CocoDataset`'s `image_ids`), `test` None when
    there is no test split."""

    root: Path
    train: CocoFile
    validation: CocoFile | None
    test: CocoFile | None

    def file(self, split: str) -> CocoFile | None:
        """The file of `split` (`train`, `validation`, `test`)."""
        return {"train": self.train, "validation": self.validation, "test": self.test}[split]


def read_coco_layout(root: Path | str) -> CocoLayout | None:
    """The COCO files of the folder `root` in any of the layouts of the module docstring, or None when it holds none.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for split in ("train", "valid"):
        ...     (root / split).mkdir()
        ...     _ = (root / split / ROBOFLOW_FILE).write_text("{}")
        >>> layout = read_coco_layout(root)
        >>> layout.validation.path.relative_to(root).as_posix(), layout.test
        ('valid/_annotations.coco.json', None)
    """
    root = Path(root)
    if (root / "train.json").is_file():
        files = {split: root / f"{name}.json" for split, name in (("train", "train"), ("validation", "val"), ("test", "test"))}
        return _layout(root, {split: CocoFile(path, (root,)) for split, path in files.items() if path.is_file()})
    if (root / "train" / ROBOFLOW_FILE).is_file():  # the split folders by their exact names (not train_old/)
        names = {"train": ("train",), "validation": VALIDATION_FOLDERS, "test": ("test",)}
        found: dict[str | None, CocoFile] = {}
        for split, candidates in names.items():
            folder = next((root / name for name in candidates if (root / name / ROBOFLOW_FILE).is_file()), None)
            if folder is not None:
                found[split] = CocoFile(folder / ROBOFLOW_FILE, (folder, folder / "images"))
        return _layout(root, found)
    instances = sorted((root / "annotations").glob("instances_*.json")) if (root / "annotations").is_dir() else []
    if instances:
        found = {}
        for path in instances:
            subset = path.stem.removeprefix("instances_")
            roots = (root / "images" / subset, root / "images", root / subset, root)
            found.setdefault(_split_of(subset), CocoFile(path, roots))
        return _layout(root, found)
    if (root / LABEL_STUDIO_FILE).is_file():
        return _layout(root, {"train": CocoFile(root / LABEL_STUDIO_FILE, (root, root / "images"))})
    return None


def _split_of(subset: str) -> str | None:
    """The split a subset name means (`train2017` -> train, `valid` -> validation), None for another name."""
    for split, prefixes in _SPLIT_PREFIXES.items():
        if subset.lower().startswith(prefixes):
            return split
    return None


def _layout(root: Path, found: dict[str | None, CocoFile]) -> CocoLayout:
    """The layout of the files found per split.

    Raises:
        DataError: None of them is a training split.
    """
    if "train" not in found and list(found) == [None]:  # one file of a subset no split is named after: training
        found = {"train": found[None]}
    if "train" not in found:
        names = sorted(str(file.path.relative_to(root)) for file in found.values())
        raise DataError(
            f"The COCO data in {str(root)!r} has no training file among {names}; name one train.json, "
            f"train/{ROBOFLOW_FILE} or annotations/instances_train.json."
        )
    return CocoLayout(root, found["train"], found.get("validation"), found.get("test"))


# --- COCO ---------------------------------------------------------------------------------------------------------


def parsed_json(path: Path) -> Any:
    """The JSON file at `path` parsed, the caller's own to change: within `each_file_read_once` the file is parsed
    once and each caller gets a copy of that parse (`marshal`, which copies the JSON types exactly, an eighth of a
    parse's time: a start-up's class names, category ids, split draw, image sizes and readers all read the training
    file); outside it, parsed for the caller.

    Raises:
        DataError: The file is not UTF-8 text (`read_user_text`).
        OSError, ValueError: It cannot be read, or is not JSON.
    """
    if not reading_once():
        return json.loads(read_user_text(path))
    return marshal.loads(read_once("json", path, lambda path: marshal.dumps(json.loads(read_user_text(path)))))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"The COCO file {str(path)!r} does not exist.")
    try:
        document = parsed_json(path)
    except (OSError, ValueError) as error:
        raise DataError(f"The COCO file {str(path)!r} cannot be read as JSON: {error}") from error
    missing = [key for key in ("images", "annotations", "categories") if key not in document]
    if missing:
        raise DataError(f"The COCO file {str(path)!r} lacks {missing}; an instances file has images, annotations, categories.")
    for kind, keys in (("images", ("id", "file_name")), ("categories", ("id", "name"))):
        for entry in document[kind]:
            if not isinstance(entry, dict) or any(key not in entry for key in keys):
                raise DataError(f"The COCO file {str(path)!r} has an entry of {kind} without {list(keys)}: {str(entry)[:80]}.")
            if whole_number(entry["id"]) is None:
                raise DataError(
                    f"The COCO file {str(path)!r} has an entry of {kind} whose id {entry['id']!r} is not a whole number "
                    f"(annotations name {kind} by their number): {str(entry)[:80]}."
                )
    names: dict[int, str] = {}
    for category in document["categories"]:  # two classes of one id: its annotations would all go to the last
        name = names.setdefault(int(category["id"]), str(category["name"]))
        if name != str(category["name"]):
            raise DataError(
                f"The COCO file {str(path)!r} gives the category id {category['id']} to {name!r} and to "
                f"{str(category['name'])!r}; each category needs an id of its own."
            )
    categories = sorted(document["categories"], key=lambda category: int(category["id"]))
    stripped = stripped_class_names(
        [str(category["name"]) for category in categories],
        f"The COCO file {str(path)!r}",
        "category id",
        ids=[int(category["id"]) for category in categories],
    )
    for category, name in zip(categories, stripped, strict=True):  # the document is this caller's own (`parsed_json`)
        category["name"] = name
    return document


def coco_categories(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The categories of a COCO document that are classes, in id order: all of them, except the one Roboflow adds
    to every export (id 0, named after the project, supercategory `none`, the `supercategory` of every other
    category and used by no annotation), which would be a class no image holds. Only that exact pattern is left out,
    so that every file of a data set (train, valid, test) keeps the same classes.

    Example:
        >>> document = {"annotations": [{"category_id": 1}], "categories": [
        ...     {"id": 0, "name": "cells-x1", "supercategory": "none"},
        ...     {"id": 1, "name": "red", "supercategory": "cells-x1"}, {"id": 2, "name": "white", "supercategory": "cells-x1"}]}
        >>> [category["name"] for category in coco_categories(document)]
        ['red', 'white']
    """
    categories = sorted(document["categories"], key=lambda category: category["id"])
    if len(categories) < 2 or categories[0]["id"] != 0 or categories[0].get("supercategory") not in ("none", "", None):
        return categories
    project, others = categories[0], categories[1:]
    used = {annotation.get("category_id") for annotation in document["annotations"]}
    # the names are stripped by the time they get here (`stripped_category_names`), the supercategories are not
    if 0 not in used and all(_stripped(category.get("supercategory")) == _stripped(project["name"]) for category in others):
        return others
    return categories


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def coco_class_names(path: Path | str) -> list[str]:
    """The category names of a COCO file, in the order of their ids (the contiguous index is the position).

    Raises:
        DataError: The file is missing, not JSON, or has no category.
    """
    path = Path(path)
    categories = _categories(path)
    if not categories:
        raise DataError(f"The COCO file {str(path)!r} has no category.")
    return [name for _, name in categories]


def coco_file_category_ids(path: Path | str) -> list[int]:
    """The category ids of a COCO file, in id order (the contiguous index is the position; `coco_class_names`).

    Raises:
        DataError: As `coco_class_names`.
    """
    coco_class_names(path)  # the file's own checks
    return [category_id for category_id, _ in _categories(Path(path))]


def _categories(path: Path) -> tuple[tuple[int, str], ...]:
    """(id, name) of the `coco_categories` of a COCO file, read once within `each_file_read_once`."""

    def read(path: Path) -> tuple[tuple[int, str], ...]:
        return tuple((int(category["id"]), str(category["name"])) for category in coco_categories(_read_json(path)))

    return read_once("coco categories", path, read)


# --- COCO ---------------------------------------------------------------------------------------------------------


class CocoDataset(BoxDataset):
    """COCO instances as samples `{"raw", "target_boxes" [N, 4] (x_min, y_min, x_max, y_max), "target_labels" [N]}`.

    With `with_masks`, each sample also has `target_mask` (int64 [H, W]: contiguous class index + 1, 0 the
    background) and `target_classes` (int64 [K]: 1 for each class with a box in the image). The mask is drawn in
    annotation order from each annotation's `segmentation`: an RLE, uncompressed (`counts` a list) or compressed
    (a string), is decoded by pycocotools exactly as its `annToMask` does; polygons are filled by COCO's pixel rule
    (a pixel whose centre is inside; `torchbricks.datasets.polygons`), the same pixels as `annToMask` gives, without
    pycocotools; an annotation without one fills its box by the same rule.
    Category ids are mapped to contiguous indices in id order. A crowd annotation (`iscrowd: 1`) is a region that
    evaluation ignores, as COCO's own evaluation does: its box keeps the label `-2 - class index` (see `BoxDataset`),
    so the loss skips it and a detection on it is not a false positive; the mask marks its pixels as ignored (255:
    neither background nor an object for the loss and the mean IoU) and the classes present leave it out.

    Args:
        path_json: The instances file; image `file_name`s are relative to `image_root`.
        image_root: The folder image file names are relative to, or several, tried in order (the first holding the
            file wins; then each folder with the file name's last part alone); the JSON file's folder when None.
        with_masks: Also give the semantic mask and the classes present (the multitask targets).
        transform: A `torchvision.transforms.v2` transform of `{"image", "boxes", "labels"[, "mask"]}`.
        problems: Where problems go; the first raises when None.
        image_ids: Read only these images (a split drawn from one file); all when None.

    Raises:
        DataError: A missing image, an unknown category or image id, two categories of one id, an annotation without
            its image_id, category_id or a bbox of four finite numbers, a box outside its image, a polygon of fewer than
            three points, no image.
    """

    def __init__(
        self,
        path_json: Path | str,
        image_root: Path | str | Sequence[Path | str] | None = None,
        with_masks: bool = False,
        transform: Transform | None = None,
        problems: DataProblems | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> None:
        problems = problems_or_raise(problems)
        self.path_json = Path(path_json)
        if image_root is None:
            roots = [self.path_json.parent]
        else:
            roots = [Path(image_root)] if isinstance(image_root, (str, Path)) else [Path(folder) for folder in image_root]
        self.image_roots = roots
        self.image_root = roots[0]
        document = _read_json(self.path_json)
        categories = coco_categories(document)  # of the whole file, before a drawn split keeps some of its images
        if image_ids is not None:
            kept = {int(image_id) for image_id in image_ids}
            document = {
                **document,
                "images": [image for image in document["images"] if int(image["id"]) in kept],
                "annotations": [  # one without a readable image_id stays, to be reported
                    item
                    for item in document["annotations"]
                    if whole_number(item.get("image_id")) is None or whole_number(item["image_id"]) in kept
                ],
            }
        self.category_ids = [int(category["id"]) for category in categories]
        self.images = self._read_images(document, problems)
        if not document["images"]:
            problems.report(f"The COCO file {str(self.path_json)!r} lists no image.")
        cvat_crowds, flat = self._read_annotations(document, problems)
        self.ids = sorted(self.images)
        super().__init__(
            [self.images[image_id] for image_id in self.ids],
            [str(category["name"]) for category in categories],
            with_masks,
            transform,
        )
        notices = [_cvat_crowds_notice(self.path_json, cvat_crowds) if cvat_crowds else "", _flat_notice(self.path_json, flat)]
        self.reading_notice = " ".join(notice for notice in notices if notice) or None

    def _read_annotations(self, document: dict[str, Any], problems: DataProblems) -> tuple[int, list[dict[str, Any]]]:
        """Adds each annotation's object to its image's record; returns how many are crowd regions written by CVAT,
        and the annotations left out for a bbox of zero width or height."""
        listed = {int(image["id"]) for image in document["images"]}
        index_of = {category_id: index for index, category_id in enumerate(self.category_ids)}
        cvat_crowds = 0
        flat: list[dict[str, Any]] = []
        for annotation in document["annotations"]:
            where = f"annotation {annotation.get('id')} in {str(self.path_json)!r}"
            problem = _annotation_problem(annotation)
            if problem is not None:
                problems.report(f"The {where} {problem}")
                continue
            record = self.images.get(int(annotation["image_id"]))
            if int(annotation["category_id"]) not in index_of:
                problems.report(
                    f"The {where} has category_id {annotation['category_id']}; the file's categories are {self.category_ids}."
                )
            elif record is None:
                if int(annotation["image_id"]) not in listed:
                    problems.report(f"The {where} names image_id {annotation['image_id']}, which the file does not list.")
            elif _flat_in_image(annotation, record):
                flat.append(annotation)
            else:
                found = problems.guard(_coco_object, annotation, where, record)
                if found is not None:
                    crowd = bool(annotation.get("iscrowd", 0))  # 0 or 1 (`_annotation_problem`)
                    record.objects.append(BoxObject(found[0], index_of[int(annotation["category_id"])], found[1], crowd=crowd))
                    if crowd and _written_by_cvat(annotation):
                        cvat_crowds += 1
        return cvat_crowds, flat

    def _read_images(self, document: dict[str, Any], problems: DataProblems) -> dict[int, BoxImage]:
        images: dict[int, BoxImage] = {}
        read_as: dict[Path, dict[str, Any]] = {}  # file -> the first entry read from it
        for image in document["images"]:
            source = f"id {image['id']} in {str(self.path_json)!r}"
            path = image_path(str(image["file_name"]), self.image_roots)
            if not path.is_file():
                tried = "" if len(self.image_roots) == 1 else f"; looked in {[str(folder) for folder in self.image_roots]}"
                problems.report(f"Image {str(path)!r} ({source}) does not exist{tried}.")
                continue
            if int(image["id"]) in images:
                problems.report(f"The image {source} is listed twice.")
                continue
            first = read_as.setdefault(path.resolve(), image)
            if first is not image:  # each entry would be the picture with part of its objects: the rest read as background
                problems.report(
                    f"The images id {first['id']} ({str(first['file_name'])!r}) and id {image['id']} "
                    f"({str(image['file_name'])!r}) in {str(self.path_json)!r} are both read from {str(path)!r}"
                    + (
                        ": the image is listed twice under two ids, each with its own annotations (as merged exports "
                        "leave it). Merge them into one entry."
                        if str(first["file_name"]) == str(image["file_name"])
                        else ", the only file of that name where they were looked for (the folders of their file_name "
                        "do not hold them). Put each image where its file_name says."
                    )
                )
                continue
            given = (whole_number(image.get("width")), whole_number(image.get("height")))
            size: tuple[int, int] | None = (given[0], given[1]) if given[0] and given[1] else None
            if size is None and (image.get("width"), image.get("height")) not in ((None, None), (0, 0)):
                problems.report(
                    f"The image {source} has width {image.get('width')!r} and height {image.get('height')!r}; expected "
                    "numbers of pixels (or neither, to read them from the file)."
                )
                continue
            if size is None:  # optional in some exports (null, or 0 as Label Studio may write it): from the file's header
                size = problems.guard(image_file_size, path)
            if size is not None:
                images[int(image["id"])] = BoxImage(path, size[0], size[1], source=repr(str(self.path_json)))
        return images


def _flat_in_image(annotation: dict[str, Any], record: BoxImage) -> bool:
    """Whether an annotation's bbox has a width or height of 0 (and neither below), its corner in its image: no pixel
    to train on or to find. COCO's own instances_train2017.json has two (a height of 0.0); torchvision's and
    MMDetection's COCO readers leave such boxes out."""
    x, y, w, h = (float(value) for value in annotation["bbox"])
    inside = -BOX_TOLERANCE <= x <= record.width + BOX_TOLERANCE and -BOX_TOLERANCE <= y <= record.height + BOX_TOLERANCE
    return min(w, h) == 0 and max(w, h) >= 0 and inside


def _flat_notice(path: Path, flat: Sequence[dict[str, Any]]) -> str:
    """What the job and `check-data` say of the annotations left out for a bbox of zero width or height; "" for none."""
    if not flat:
        return ""
    many = len(flat) > 1
    shown = ", ".join(f"id {item.get('id')} (bbox {item['bbox']})" for item in flat[:3]) + (", ..." if len(flat) > 3 else "")
    return (
        f"{len(flat)} annotation{'s' if many else ''} of {str(path)!r}, {shown}, {'have' if many else 'has'} a bbox of "
        f"zero width or height: no pixel to train on or to find, {'they are' if many else 'it is'} left out (as "
        "torchvision's and MMDetection's COCO readers leave them out; COCO's own training file has two)."
    )


def _written_by_cvat(annotation: dict[str, Any]) -> bool:
    """Whether an annotation carries the `attributes` (with `occluded`) that CVAT's COCO export (Datumaro's writer)
    adds to every annotation, and COCO's own files never have."""
    attributes = annotation.get("attributes")
    return isinstance(attributes, dict) and "occluded" in attributes


def _cvat_crowds_notice(path: Path, count: int) -> str:
    """What the job and `check-data` say of the crowd regions of a COCO file written by CVAT."""
    return (
        f"{count} annotation{'s' if count > 1 else ''} of {str(path)!r} {'are' if count > 1 else 'is'} a crowd region "
        "(iscrowd: 1), which training and the mAP ignore, in a file written by CVAT: its COCO export marks every object "
        "drawn with the brush or mask tool as a crowd region (its mask as an RLE). If they are single objects, give "
        "their label the attribute is_crowd, unchecked, before exporting (the masks are then written as polygons of "
        "objects), or export them with Datumaro's --segmentation-mode polygons."
    )


def image_path(file_name: str, image_roots: Sequence[Path]) -> Path:
    """Where the image `file_name` of a COCO file is: relative to the first of `image_roots` holding it, else the last
    part of the name in the first holding that; the first root's path when none does (for the message). Windows
    separators count as separators.

    Example:
        >>> image_path("images\\\\a.jpg", [Path("/nowhere")]).as_posix()
        '/nowhere/images/a.jpg'
    """
    relative = Path(*PureWindowsPath(file_name).parts) if "\\" in file_name else Path(file_name)
    for candidate in [folder / relative for folder in image_roots] + [folder / relative.name for folder in image_roots]:
        if candidate.is_file():
            return candidate
    return image_roots[0] / relative


def split_image_ids(
    path_json: Path | str, validation_fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED
) -> tuple[list[int], list[int]]:
    """The image ids of a COCO file drawn at random into (train, validation), fixed by `seed` (`random_split`).

    Raises:
        DataError: The file is bad, lists fewer than two images or the fraction is not between 0 and 1.
    """
    path = Path(path_json)
    ids = read_once("coco image ids", path, lambda path: sorted(int(image["id"]) for image in _read_json(path)["images"]))
    return random_split(list(ids), validation_fraction, seed, path)


def whole_number(value: Any) -> int | None:
    """`value` as an int when it is one as a COCO file can write it (`3`, `3.0`, `"3"`), else None (`"cat"`, `None`,
    `true`: a boolean would be read as 0 or 1).

    Example:
        >>> whole_number(3), whole_number(3.0), whole_number("3"), whole_number("x1"), whole_number(True)
        (3, 3, 3, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _annotation_problem(annotation: dict[str, Any]) -> str | None:
    """What an annotation lacks to be read (its image_id, category_id, and bbox as four finite numbers; an iscrowd of
    0 or 1), or None."""
    missing = [key for key in ("image_id", "category_id", "bbox") if annotation.get(key) is None]
    if missing:
        return f"has no {' nor '.join(missing)}; an annotation has image_id, category_id and bbox [x, y, w, h]."
    for key in ("image_id", "category_id"):
        if whole_number(annotation[key]) is None:
            return f"has {key} {annotation[key]!r}; expected the whole number that is the id of an entry of the file."
    crowd = annotation.get("iscrowd", 0)
    if crowd not in (0, 1):  # True and 1.0 are 1
        # a string "0" is true in Python: read so, every object would be a crowd region, ignored by training
        return f"has iscrowd {crowd!r}; expected 0 (an object) or 1 (a crowd region, ignored), as numbers."
    bbox = annotation["bbox"]
    try:
        values = [float(value) for value in bbox] if isinstance(bbox, list) else []
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(math.isfinite(value) for value in values):  # nan would pass every box check
        return f"has bbox {bbox!r}; expected [x, y, w, h], four finite numbers in pixels."
    return None


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
    """Passes a list of polygons of three points or more, an RLE of the image's size (an uncompressed one's counts
    covering it), or nothing (`None` or `[]`: the box then stands in for the outline).

    Raises:
        DataError: Anything else: a polygon of fewer than three points (`[[]]`, a point) would fail to draw as a mask
            and turn to an empty box under `RandomRotationTightBoxes`; a coordinate that is not a finite number
            (`NaN`, a string) has no pixels.
    """
    if segmentation is None:
        return
    if isinstance(segmentation, list):
        short = next((polygon for polygon in segmentation if not isinstance(polygon, list) or len(polygon) < 6), None)
        if short is not None or any(len(polygon) % 2 for polygon in segmentation):
            shown = short if short is not None else next(polygon for polygon in segmentation if len(polygon) % 2)
            raise DataError(
                f"The {where} has the polygon {str(shown)[:80]}; a polygon is [x1, y1, x2, y2, x3, y3, ...], three "
                "points or more (a segmentation of no outline is [], and the box then stands in for it)."
            )
        unreadable = next((polygon for polygon in segmentation if not all(map(_finite_number, polygon))), None)
        if unreadable is not None:
            raise DataError(
                f"The {where} has the polygon {str(unreadable)[:80]}, with "
                f"{next(value for value in unreadable if not _finite_number(value))!r}; expected finite numbers."
            )
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
    counts = segmentation["counts"]
    if isinstance(counts, list) and sum(int(count) for count in counts) != size[0] * size[1]:
        raise DataError(  # pycocotools decodes a short run list from memory it never wrote: pixels at random
            f"The {where} has an uncompressed RLE whose counts add up to {sum(int(count) for count in counts)} pixels, "
            f"but its size {size} [height, width] has {size[0] * size[1]}; each count is a run of pixels, column by "
            "column, starting with the pixels outside the object, and together they cover the whole image."
        )


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
