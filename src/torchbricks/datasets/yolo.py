"""Box detection data in the YOLO txt layouts: as Ultralytics writes it, as Darknet (and CVAT's "YOLO 1.1") writes
it, and as labelImg and Label Studio save it.

    ROOT/data.yaml                  names: [cat, dog] (or {0: cat, 1: dog}); optional path, train, val, test
                                    (or dataset.yaml, data.yml, dataset.yml: `YOLO_FILES`)
    ROOT/images/{train,val[,test]}/*.jpg|png|...
    ROOT/labels/{train,val[,test]}/<image stem>.txt    one object per line: class cx cy w h, normalised to [0, 1]

`train`, `val` (or `validation`) and `test` in `data.yaml` name a split's images: a folder (searched recursively), a
text file listing image paths (relative to that file's folder or, when not there, to `path`), or a list of those; they
are relative to `path` when it names an existing folder (absolute, or relative to the folder of `data.yaml`),
otherwise to the folder of `data.yaml` (a leading `../`, as Roboflow exports write it, is dropped when the path does
not exist with it); an empty one (`test: ''`) names none, as Ultralytics reads it. Without them the splits are
`images/train`, `images/val` and, if present, `images/test`. Without `names`, `nc: 3` names the classes `class_0` to
`class_2`, as Ultralytics does. A name YAML reads as a boolean or as nothing (an unquoted `no`, `on`, `null`) is
an error: it would be the class `False`.

Without `data.yaml`: Darknet's `obj.data` (`names`, and a list file per subset, `train`, `valid`, `test` in any case,
as CVAT writes a project's subsets `Train`, `Validation`, `Test`; their entries relative to ROOT, a leading `data/`
dropped when it leads nowhere) and `obj.names`, with the images and their label files in
`obj_train_data/` (`obj_valid_data/`); or `ROOT/classes.txt` (one name per line) with `images/{train,val}`, or with
one pool of images: under `ROOT/images` with their labels in `ROOT/labels` (Label Studio's YOLO export, whose
`notes.json` names the classes by id: `_label_studio_names`), or else in
ROOT and its subfolders with their label files beside them (labelImg; a subfolder none of whose images has a label
file is not labelled and not read, and the job and `check-data` say so: `_side_by_side_images`).
Data without a validation split of its own (no `val` nor
`images/val`, no `valid`, or one pool) has `validation_fraction` of its training images drawn at random for it,
fixed by `seed`.

An image's label file is its path with the last `images` folder below the data folder replaced by `labels` and the
extension by `.txt` (beside the image when no folder below the data folder is `images`). An image without a label
file has no objects (but a split none of whose images has one is an error: its labels are elsewhere; a split of images
without objects has empty label files, as Ultralytics and Roboflow write them); one
whose label file is named as it but for case (`IMG_1.jpg`, `img_1.txt`) is an error. A
line with more than five numbers is a polygon (Ultralytics' segmentation labels, `class x1 y1 x2 y2 ...`): its box is
the polygon's extent; in a pose data set (`kpt_shape: [K, D]` in `data.yaml`) it is the box followed by K keypoints of
D numbers, which are not read. Bad data is a `DataError` naming the file
and line: a malformed line (six numbers: a prediction with its confidence), a class index out of range, coordinates
outside [0, 1] by more than `COORDINATE_TOLERANCE` of the image's side (1%, as Ultralytics allows; at least
`BOX_TOLERANCE` pixels; the box is cut to its image within it), an empty box, two images sharing a label file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchbricks._extras import require
from torchbricks.datasets._reading import (
    BOX_TOLERANCE,
    IMAGE_EXTENSIONS,
    SPLIT_SEED,
    VALIDATION_FRACTION,
    DataError,
    DataProblems,
    Transform,
    image_file_size,
    is_hidden,
    listed_files,
    random_split,
    read_name_lines,
    read_user_text,
    stripped_class_names,
    visible_files,
)
from torchbricks.datasets.boxes import BoxDataset, BoxImage, BoxObject, box_problem, clip_box

__all__ = [
    "DARKNET_DATA",
    "DARKNET_NAMES",
    "LABEL_STUDIO_NOTES",
    "YOLO_FILE",
    "YOLO_FILES",
    "YoloDataset",
    "YoloLayout",
    "read_yolo_layout",
    "unread_label_files",
    "yolo_class_names",
    "yolo_label_path",
    "yolo_settings_file",
]

YOLO_FILE = "data.yaml"
LABEL_STUDIO_NOTES = "notes.json"
"""Written by Label Studio's YOLO export beside `classes.txt`: `{"categories": [{"id": 0, "name": "cat"}, ...]}`."""
YOLO_FILES = (YOLO_FILE, "dataset.yaml", "data.yml", "dataset.yml")
"""The names of the Ultralytics data file in a data folder, in the order they are looked for: `data.yaml` as Roboflow,
CVAT and Ultralytics' examples write it, `dataset.yaml` as Ultralytics' guides (`yolo train data=dataset.yaml`) and
many scripts name it."""
DARKNET_DATA = "obj.data"
DARKNET_NAMES = "obj.names"
SPLIT_KEYS = {"train": "train", "validation": "val", "test": "test"}
"""Split -> its key in `data.yaml` (and its folder under `images/` without one)."""
DARKNET_SETTINGS = ("classes", "names", "backup", "eval")
"""The keys of `obj.data` that are not subsets (every other key names a subset's list of images, as CVAT writes it)."""
DARKNET_SUBSETS = {"train": "train", "valid": "validation", "val": "validation", "validation": "validation", "test": "test"}
"""A subset of `obj.data`, in lower case -> its split (CVAT writes a project's subsets as named: Train, Validation)."""
COORDINATE_TOLERANCE = 0.01
"""How far outside [0, 1] a normalised coordinate may reach (a fraction of the image's side; at least `BOX_TOLERANCE`
pixels) before it is an error, as Ultralytics allows; the box is cut to its image."""


@dataclass(frozen=True)
class YoloLayout:
    """What `data.yaml` says: the class names, and each split's image sources (folders or list files)."""

    root: Path
    class_names: list[str]
    splits: dict[str, list[Path]]
    """Split -> its image sources: folders, `.txt` lists of images, or (split at random) the image files themselves."""
    drawn: bool = False
    """Whether the validation split was drawn at random from the training images (the data has none of its own)."""
    keypoint_fields: int = 0
    """Numbers after the box on each line of a pose data set (`kpt_shape: [K, D]` in `data.yaml`: K x D), not read."""
    base: Path | None = None
    """The folder the label files are found under (`yolo_label_path`): `data.yaml`'s `path` when it names a folder,
    else `root`."""
    pool: list[Path] | None = None
    """Drawn: the training images the validation split was drawn from, in the order the draw shuffles them."""
    validation_fraction: float = VALIDATION_FRACTION
    """Drawn: the fraction drawn for validation."""
    seed: int = SPLIT_SEED
    """Drawn: the seed of the draw."""
    notice: str | None = None
    """How the class names were read, when the job and `check-data` should say so (Label Studio's `notes.json`
    numbering them otherwise than its `classes.txt` lists them), else None."""


def _yaml_document(path: Path) -> dict[str, Any]:
    yaml = require("yaml", "hydra")
    try:
        document = yaml.safe_load(read_user_text(path))
    except (OSError, yaml.YAMLError) as error:
        raise DataError(f"The YOLO file {str(path)!r} cannot be read as YAML: {' '.join(str(error).split())}") from error
    if not isinstance(document, dict):
        raise DataError(f"The YOLO file {str(path)!r} holds {type(document).__name__}; expected a mapping with 'names'.")
    return document


def _names(path: Path, names: Any, count: Any) -> list[str]:
    given = list(names.values()) if isinstance(names, dict) else names if isinstance(names, list) else []
    read_as = [name for name in given if name is None or isinstance(name, bool)]
    if read_as:  # str() would name the class 'True' or 'None' in every report
        raise DataError(
            f"The YOLO file {str(path)!r} has 'names' {names}: YAML reads an unquoted yes, no, on, off, true or false as "
            f"a boolean and null, ~ or nothing as no value ({read_as[0]!r} here). Quote the class names: ['yes', 'no']."
        )
    if isinstance(names, dict):
        try:
            by_index = {int(index): str(name) for index, name in names.items()}
        except (TypeError, ValueError) as error:
            raise DataError(f"The YOLO file {str(path)!r} has 'names' keys that are not class indices: {list(names)}.") from error
        if sorted(by_index) != list(range(len(by_index))):
            raise DataError(
                f"The YOLO file {str(path)!r} numbers its 'names' {sorted(by_index)}; expected 0 to {len(by_index) - 1}."
            )
        names = [by_index[index] for index in range(len(by_index))]
    if not isinstance(names, list) or not names:
        raise DataError(
            f"The YOLO file {str(path)!r} has 'names' {names!r}; expected a list [cat, dog] or a mapping {{0: cat, 1: dog}}."
        )
    if count is not None and str(count) != str(len(names)):
        raise DataError(f"The YOLO file {str(path)!r} has nc: {count} but {len(names)} names.")
    for index, name in enumerate(names):
        # an empty name ('' or a `- ` line) would be a class no message, column or drawn label can show, and a list
        # or mapping (`- [cat]`, an indented block) a class named by its Python spelling
        if isinstance(name, list | dict) or not str(name).strip():
            raise DataError(
                f"The YOLO file {str(path)!r} has 'names' entry {index} {name!r}; expected a class name, as "
                f"`names: [cat, dog]` or `names: {{0: cat, 1: dog}}` gives them."
            )
    return stripped_class_names([str(name) for name in names], f"The YOLO file {str(path)!r} 'names'", "entry")


def _source(base: Path, value: str) -> Path:
    """`value` relative to `base`; a leading `../` (Roboflow) or `data/` (Darknet, CVAT) that leads nowhere is dropped,
    and Windows separators (`images\\train`, `data\\obj_train_data\\a.jpg`: a `data.yaml` or list written on Windows)
    are read as separators where no file has the name as written."""
    if "\\" in value and not (base / value).exists():
        value = value.replace("\\", "/")
    path = Path(value)
    if path.is_absolute():
        return path
    for prefix in ("../", "data/"):
        if not (base / path).exists() and value.startswith(prefix) and (base / value[len(prefix) :]).exists():
            return base / value[len(prefix) :]
    return base / path


def read_yolo_layout(root: Path | str, validation_fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED) -> YoloLayout:
    """The class names and split sources of a YOLO data folder (see the module docstring).

    Args:
        root: The data folder.
        validation_fraction: Data without a validation split: the fraction of the training images held out for it.
        seed: The seed of that split (independent of the training seed).

    Raises:
        DataError: No `data.yaml`, `obj.names` or `classes.txt` with usable class names; or images to split at random
            fewer than two.
    """
    root = Path(root)
    base, keypoint_fields, notice = root, 0, None
    settings = yolo_settings_file(root)
    if settings is not None:
        names, splits, base = _ultralytics_splits(root, settings)
        keypoint_fields = _keypoint_fields(settings)
    elif (root / DARKNET_DATA).is_file() or (root / DARKNET_NAMES).is_file():
        notes: list[str] = []
        names, splits = _darknet_splits(root, notes)
        notice = notes[0] if notes else None
    elif (root / "classes.txt").is_file() or _label_studio_categories(root) is not None:
        names, notice = _label_studio_names(root)
        if (root / "images" / SPLIT_KEYS["train"]).is_dir():
            splits = {split: [root / "images" / key] for split, key in SPLIT_KEYS.items()}
            splits["validation"] = splits["validation"] if splits["validation"][0].is_dir() else None
        else:  # one pool of labelled images: Label Studio's images/ and labels/, or labelImg's files side by side
            if (root / "images").is_dir():
                pool = [root / "images"]
            else:
                pool, unlabelled = _side_by_side_images(root, names)
                if unlabelled:
                    notice = " ".join(text for text in (notice, _unlabelled_folders_notice(root, unlabelled)) if text)
            splits = {"train": pool, "validation": None, "test": []}
    else:
        others = sorted(path.name for path in visible_files(root, (".yaml", ".yml")))
        holds = f" It holds {others}: name the one with 'names' {YOLO_FILE}." if others else ""
        raise DataError(
            f"The YOLO folder {str(root)!r} has no {YOLO_FILE} (or {', '.join(YOLO_FILES[1:])}; names: [...]), "
            f"{DARKNET_NAMES}, classes.txt nor Label Studio's {LABEL_STUDIO_NOTES} naming its classes.{holds}"
        )
    if splits["validation"] is None:  # no validation split of its own: drawn at random from the training images
        pool = _split_images(splits["train"], DataProblems(), base)
        train, validation = random_split(pool, validation_fraction, seed, root)
        drawn_splits = {"train": train, "validation": validation, "test": splits["test"]}
        return YoloLayout(
            root,
            names,
            drawn_splits,
            drawn=True,
            keypoint_fields=keypoint_fields,
            base=base,
            pool=pool,
            validation_fraction=validation_fraction,
            seed=seed,
            notice=notice,
        )
    return YoloLayout(root, names, splits, keypoint_fields=keypoint_fields, base=base, notice=notice)


def _side_by_side_images(root: Path, names: Sequence[str]) -> tuple[list[Path], dict[Path, int]]:
    """The images of a labelImg folder, whose label files lie beside them: those in `root` and in its subfolders
    (labelImg labels a folder at a time, so a project often keeps a folder per day or camera), and the subfolders left
    out with their image counts: a subfolder none of whose images has a label file beside it (named as the image but
    for case) is taken as not labelled (its pictures read as images without objects would teach the model that they
    show none).

    Raises:
        DataError: A subfolder read has a `classes.txt` of its own that lists other classes than `names` (the data
            folder's): labelImg writes one into each folder it saves in, numbered as that session's class list, so its
            label files number the classes otherwise.
    """
    by_folder: dict[Path, list[Path]] = {}
    for image in listed_files(root, recursive=True):
        by_folder.setdefault(image.parent, []).append(image)
    images: list[Path] = []
    unlabelled: dict[Path, int] = {}
    for folder, folder_images in sorted(by_folder.items()):
        labels = {path.stem.lower() for path in visible_files(folder, (".txt",))}
        if folder == root or any(image.stem.lower() in labels for image in folder_images):
            own = folder / "classes.txt"
            if folder != root and own.is_file() and (listed := _listed_names(own)) != list(names):
                raise DataError(
                    f"{str(own)!r} lists the classes {listed}, {str(root / 'classes.txt')!r} {list(names)}: labelImg "
                    "numbers the classes of a folder's label files as the classes.txt it writes beside them, so read "
                    "by the data folder's list their classes would be others. Make the two lists the same (and the "
                    "label files' numbers with them), or train the folders apart."
                )
            images.extend(folder_images)
        else:
            unlabelled[folder] = len(folder_images)
    return sorted(images), unlabelled


def _unlabelled_folders_notice(root: Path, unlabelled: dict[Path, int]) -> str:
    """What the job and `check-data` say of the subfolders `_side_by_side_images` leaves out."""
    count = sum(unlabelled.values())
    folders = [repr(str(folder)) for folder in unlabelled]
    shown = folders[:3] + (["..."] if len(folders) > 3 else [])
    return (
        f"{count} image{'s' if count != 1 else ''} in {len(folders)} subfolder{'s' if len(folders) != 1 else ''} of "
        f"{str(root)!r} without any label file beside {'them' if count != 1 else 'it'} ({', '.join(shown)}) "
        f"{'are' if count != 1 else 'is'} not read: such a folder is taken as not labelled. Save an empty .txt file "
        "beside each image without objects (as labelImg does) to read them as such."
    )


def _label_studio_categories(root: Path) -> list[Any] | None:
    """The `categories` of Label Studio's `notes.json` in `root`, or None when there is no such file or it is not
    Label Studio's (a file of notes of one's own, without `categories`).

    Raises:
        DataError: The file is not JSON.
    """
    path = root / LABEL_STUDIO_NOTES
    if not path.is_file():
        return None
    try:
        document = json.loads(read_user_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{str(path)!r} cannot be read as JSON: {error}") from error
    categories = document.get("categories") if isinstance(document, dict) else None
    return categories if isinstance(categories, list) else None


def _label_studio_names(root: Path) -> tuple[list[str], str | None]:
    """The class names of labelImg's or Label Studio's YOLO folder, in index order, and what to say of how they were
    read: by id from Label Studio's `notes.json` when there is one (its label lines are numbered by those ids, and
    it writes `classes.txt` in the order of its categories, which is not the order of their ids when the labelling
    config gives a label its `category`), else from `classes.txt`.

    Raises:
        DataError: `notes.json`'s categories are not ids 0 to n - 1 with names, or `classes.txt` names other classes.
    """
    listed_path, notes_path = root / "classes.txt", root / LABEL_STUDIO_NOTES
    notes: list[str] = []
    listed = _listed_names(listed_path, notes) if listed_path.is_file() else None
    categories = _label_studio_categories(root)
    if categories is None:
        return listed or [], notes[0] if notes else None
    by_id: dict[int, str] = {}
    for category in categories:
        identifier = category.get("id") if isinstance(category, dict) else None
        name = category.get("name") if isinstance(category, dict) else None
        if isinstance(identifier, bool) or not isinstance(identifier, int) or not isinstance(name, str) or identifier in by_id:
            raise DataError(
                f"{str(notes_path)!r} has the category {category!r}; expected {{'id': <class index>, 'name': ...}}, each id once."
            )
        by_id[identifier] = name
    if sorted(by_id) != list(range(len(by_id))) or not by_id:
        raise DataError(
            f"{str(notes_path)!r} numbers its categories {sorted(by_id)}; the label files number the classes 0 to "
            f"n - 1, so each id from 0 to {len(by_id) - 1} names one. Give each label of the labelling config a "
            "category from 0 up (or none), and export again."
        )
    names = stripped_class_names([by_id[index] for index in range(len(by_id))], f"{str(notes_path)!r}", "category id")
    if listed is None or listed == names:
        return names, notes[0] if notes else None
    if sorted(listed) != sorted(names):
        raise DataError(
            f"{str(listed_path)!r} lists the classes {listed}, but {str(notes_path)!r}, which Label Studio writes "
            f"beside it, names {names} (by id): one of them was edited. Make them agree."
        )
    return names, (
        f"The classes of {str(root)!r} are read by id from Label Studio's {str(notes_path)!r}, {names}: its "
        f"classes.txt lists them as {listed}, in the order Label Studio keeps the labels that have a category in "
        "the labelling config, while the label files number them by id. Read by classes.txt, these classes would "
        "be swapped."
    )


def _listed_names(path: Path, notes: list[str] | None = None) -> list[str]:
    if not path.is_file():
        raise DataError(f"The YOLO class names file {str(path)!r} does not exist.")
    names = read_name_lines(path, notes)
    if not names:
        raise DataError(f"{str(path)!r} names no class.")
    return names


def yolo_settings_file(root: Path | str) -> Path | None:
    """The Ultralytics data file of a data folder (`YOLO_FILES`: `data.yaml`, else `dataset.yaml`, ...), or None.

    Raises:
        DataError: Two of them say different things (which one the data means is not known).
    """
    found = [Path(root) / name for name in YOLO_FILES if (Path(root) / name).is_file()]
    for other in found[1:]:
        if _yaml_document(other) != _yaml_document(found[0]):
            raise DataError(
                f"The YOLO folder {str(root)!r} has both {found[0].name} and {other.name}, and they differ; keep the one "
                "the data is described by."
            )
    return found[0] if found else None


def _ultralytics_splits(root: Path, path: Path) -> tuple[list[str], dict[str, Any], Path]:
    """The names, the split sources and the folder they are relative to (`path` when it names a folder, else `root`)
    of the Ultralytics data file `path`."""
    document = _yaml_document(path)
    if "names" in document:
        names = _names(path, document["names"], document.get("nc"))
    elif isinstance(document.get("nc"), int) and document["nc"] > 0:  # as Ultralytics names them
        names = [f"class_{index}" for index in range(document["nc"])]
    else:
        raise DataError(f"The YOLO file {str(path)!r} has no 'names' (nor a class count 'nc'); it has {sorted(document)}.")
    if "val" not in document and "validation" in document:  # Ultralytics reads it as 'val'
        document["val"] = document.pop("validation")
    for key in SPLIT_KEYS.values():  # `test: ''` or `[]` names no split, as Ultralytics reads it (not the whole folder)
        if document.get(key) in ("", []):
            del document[key]
    base = _ultralytics_base(root, document)
    splits: dict[str, Any] = {}
    for split, key in SPLIT_KEYS.items():
        value = document.get(key)
        if value is None:
            splits[split] = [base / "images" / key]
        else:
            values = value if isinstance(value, list) else [value]
            splits[split] = [_source(base, str(item)) for item in values]
    if "val" not in document and not (base / "images" / "val").is_dir():
        splits["validation"] = None  # CVAT's Ultralytics export of a train subset alone
    return names, splits, base


def _keypoint_fields(path: Path) -> int:
    """K x D of `kpt_shape: [K, D]` (a pose data set: each line is a box followed by K keypoints of D numbers), else 0."""
    shape = _yaml_document(path).get("kpt_shape")
    if shape is None:
        return 0
    valid = isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) and n > 0 for n in shape)
    if not valid or shape[1] not in (2, 3):
        raise DataError(f"The YOLO file {str(path)!r} has kpt_shape {shape!r}; expected [keypoints, 2 or 3], e.g. [17, 3].")
    return shape[0] * shape[1]


def _ultralytics_base(root: Path, document: dict[str, Any]) -> Path:
    """The folder `data.yaml`'s paths are relative to: its `path` when that names a folder, else `root`."""
    if document.get("path"):
        candidate = Path(str(document["path"]))
        candidate = candidate if candidate.is_absolute() else root / candidate
        return candidate if candidate.is_dir() else root
    return root


def _darknet_splits(root: Path, notes: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Darknet's layout, as CVAT's "YOLO 1.1" export writes it: `obj.data` (`names`, `train`, `valid` files),
    `obj.names`, images with their label files in `obj_train_data/` (and `obj_valid_data/`); what to say of how the
    names were read goes to `notes`."""
    settings: dict[str, str] = {}
    if (root / DARKNET_DATA).is_file():
        for line in read_user_text(root / DARKNET_DATA).splitlines():
            key, separator, value = line.split("#", 1)[0].partition("=")
            if separator:
                settings[key.strip()] = value.strip()
    names = _listed_names(_source(root, settings.get("names", DARKNET_NAMES)), notes)
    splits: dict[str, Any] = {"train": None, "validation": None, "test": []}  # None: not given
    subsets = [key for key in settings if key.lower() not in DARKNET_SETTINGS]
    for key in subsets:  # a list file of images
        split = DARKNET_SUBSETS.get(key.lower())
        if split is not None:
            splits[split] = [_source(root, settings[key])]
    for split, key in (("train", "train"), ("validation", "valid")):
        if splits[split] is None and (root / f"obj_{key}_data").is_dir():
            splits[split] = [root / f"obj_{key}_data"]
    if splits["train"] is None:
        raise DataError(
            f"The Darknet YOLO folder {str(root)!r} has no 'train' subset in {DARKNET_DATA} (it lists {subsets}) nor "
            "obj_train_data/."
        )
    return names, splits


def yolo_class_names(root: Path | str) -> list[str]:
    """The class names of a YOLO data folder, in index order.

    Raises:
        DataError: See `read_yolo_layout`.
    """
    return read_yolo_layout(root).class_names


def yolo_label_path(image: Path, root: Path | None = None) -> Path:
    """The label file of an image: the last `images` folder of its path replaced by `labels`, the extension by `.txt`;
    beside the image when no folder of its path is `images`. Only the folders below `root` (the data folder) count
    when the image lies under it, so data kept in a folder that happens to be named `images` (`~/images/cats/`,
    labelImg's files side by side) keeps its label files beside its images.

    Example:
        >>> yolo_label_path(Path("data/images/train/cat.jpg")).as_posix()
        'data/labels/train/cat.txt'
        >>> yolo_label_path(Path("images/cats/cat.jpg"), root=Path("images/cats")).as_posix()
        'images/cats/cat.txt'
    """
    parts = list(image.with_suffix(".txt").parts)
    first = 0
    if root is not None and image.is_relative_to(root):
        first = len(root.parts)
    for index in range(len(parts) - 2, first - 1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts)


def _listed_image(list_file: Path, entry: str, base: Path) -> Path:
    """An image path written in a split's list file: relative to the list file's folder (`./images/a.jpg`, as
    Ultralytics reads it) or, when it is not there, to `base` (`data.yaml`'s `path`), or absolute (`_source`)."""
    beside = _source(list_file.parent, entry)
    if beside.exists() or Path(entry).is_absolute():
        return beside
    under_base = _source(base, entry)
    return under_base if under_base.exists() else beside


def unread_label_files(layout: YoloLayout) -> list[Path]:
    """The label files of a YOLO data folder that belong to no image it reads (`labels/train/x.txt` whose image was
    deleted or never copied), sorted: those of the `labels` folders of the images read, and, where label files sit
    beside their images (Darknet's `obj_train_data/`, labelImg), the `.txt` files there that hold label lines and are
    neither `classes.txt` nor a split's list of images (such a folder also keeps lists and notes)."""
    problems = DataProblems(collect=True)  # a split source that does not exist is reported where the split is read
    base = layout.base or layout.root
    images = [image for sources in layout.splits.values() for image in _split_images(sources, problems, base)]
    used = {yolo_label_path(image, layout.base) for image in images}
    folders = {path.parent for path in used}
    beside = folders & {image.parent for image in images}
    lists = {source.resolve() for sources in layout.splits.values() for source in sources}
    return sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in visible_files(folder, (".txt",))
        if path not in used
        and (
            folder not in beside
            or (path.name != "classes.txt" and path.resolve() not in lists and _holds_label_lines(path, layout.keypoint_fields))
        )
    )


def _holds_label_lines(path: Path, keypoint_fields: int) -> bool:
    """Whether the text file holds lines and each is a label line (numbers, as many as a box, polygon or pose line
    has): a label file, not a list of images or a note."""
    try:
        lines = [line.split() for line in read_user_text(path).splitlines() if line.strip()]
    except (OSError, DataError):
        return False
    if not lines:
        return False
    for fields in lines:
        if _field_count_problem(len(fields), keypoint_fields) is not None:
            return False
        try:
            [float(field) for field in fields]
        except ValueError:
            return False
    return True


def _split_images(sources: Sequence[Path], problems: DataProblems, base: Path) -> list[Path]:
    images: list[Path] = []
    for source in sources:
        if source.is_dir():
            images.extend(listed_files(source, recursive=True))
        elif source.suffix.lower() in IMAGE_EXTENSIONS:  # an image drawn into a random split
            images.append(source)
        elif source.is_file() and source.suffix == ".txt":
            for line in read_user_text(source).splitlines():
                if line.strip():
                    images.append(_listed_image(source, line.strip(), base))
        elif not source.exists():
            problems.report(f"The YOLO split source {str(source)!r} does not exist.")
        else:
            problems.report(f"The YOLO split source {str(source)!r} is neither a folder of images nor a .txt list of them.")
    return images


class YoloDataset(BoxDataset):
    """One split of a YOLO data folder as box samples (see `BoxDataset` and the module docstring).

    Args:
        root: The data folder (holding `data.yaml` or `classes.txt`).
        split: `train`, `validation` or `test`.
        transform: A `torchvision.transforms.v2` transform of `{"image", "boxes", "labels"}`.
        problems: Where problems go; the first raises when None.
        validation_fraction: Data without splits: the fraction of the images held out for validation.
        seed: Data without splits: the seed of that split.

    Raises:
        DataError: The split holds no image, an image is missing or unreadable, or a label line is bad (the message
            names the file and line).
    """

    def __init__(
        self,
        root: Path | str,
        split: str = "train",
        transform: Transform | None = None,
        problems: DataProblems | None = None,
        validation_fraction: float = VALIDATION_FRACTION,
        seed: int = SPLIT_SEED,
    ) -> None:
        problems = problems if problems is not None else DataProblems()
        layout = read_yolo_layout(root, validation_fraction, seed)
        self.root = layout.root
        self.split = split
        sources = layout.splits[split]
        records = []
        label_owner: dict[Path, Path] = {}
        label_files: dict[Path, dict[str, Path]] = {}  # folder -> its .txt files by their name in lower case
        labelled = 0  # images with a label file
        for image in _split_images(sources, problems, layout.base or layout.root):
            label_path = yolo_label_path(image, layout.base)
            if label_path in label_owner:
                problems.report(
                    f"Images {str(label_owner[label_path])!r} and {str(image)!r} share the label file {str(label_path)!r}; "
                    "rename one of them."
                )
                continue
            label_owner[label_path] = image
            if not image.is_file():
                problems.report(f"Image {str(image)!r} (listed in the YOLO split {split!r}) does not exist.")
                continue
            size = problems.guard(image_file_size, image)
            if size is None:
                continue
            record = BoxImage(image, size[0], size[1], source=repr(str(label_path)))
            if label_path.is_file():
                labelled += 1
                record.objects = _read_label_file(label_path, record, len(layout.class_names), problems, layout.keypoint_fields)
            elif (other := _other_case(label_path, label_files)) is not None:
                problems.report(
                    f"Image {str(image)!r} has no label file {str(label_path)!r}, but {str(other)!r} differs from it only "
                    "in case (as a copy from Windows or macOS, whose file names ignore case, leaves them): read without "
                    "it, the image would have no objects. Rename one of them."
                )
                continue
            records.append(record)
        if not records:
            shown = [str(source) for source in sources]
            problems.report(f"The YOLO split {split!r} holds no image; looked in {shown}.")
        elif not labelled:  # a split of images without objects says so with empty label files
            message = _no_label_file_message(split, records, yolo_label_path(records[0].path, layout.base))
            problems.report(message + (_another_draw_hint(layout) if layout.drawn and split == "validation" else ""))
        super().__init__(records, layout.class_names, with_masks=False, transform=transform)
        self.reading_notice = layout.notice


def _no_label_file_message(split: str, records: Sequence[BoxImage], first: Path) -> str:
    """The problem of a split none of whose images has a label file (a `labels` folder misnamed, elsewhere or not
    copied), with what the nearest existing folder on the way to the first image's label file holds."""
    folder = first.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    holds = sorted(child.name for child in folder.iterdir() if child.is_dir() and not is_hidden(child.name))
    read_so = (
        "every image would be trained on as one without objects"
        if split == "train"
        else "every image would be one without objects, and its mAP would be measured against no true box"
    )
    return (
        f"The YOLO split {split!r} has {len(records)} image{'s' if len(records) > 1 else ''} and not one label file: the "
        f"first image's would be {str(first)!r} (its path with the last 'images' folder made 'labels' and the "
        f"extension '.txt'), and {str(folder)!r} holds the folders {holds}. Read so, {read_so}. Put the label files "
        "there; images without objects have empty ones, as Ultralytics and Roboflow write them (a split of such "
        "images only is read when they have)."
    )


def _another_draw_hint(layout: YoloLayout) -> str:
    """For a validation split drawn at random that holds no labelled image: how many of the pool have a label file,
    and the next seeds whose draw holds some (the pool's labels are where they should be; the draw missed them)."""
    pool = layout.pool or []
    labelled = {image for image in pool if yolo_label_path(image, layout.base).is_file()}
    seeds: list[int] = []
    for seed in range(layout.seed + 1, layout.seed + 1000):
        if len(seeds) == 3 or not labelled:
            break
        if labelled.intersection(random_split(pool, layout.validation_fraction, seed, layout.root)[1]):
            seeds.append(seed)
    has = "has" if len(labelled) == 1 else "have"
    others = f" (data.split_seed={', '.join(map(str, seeds))} draw{'s' if len(seeds) == 1 else ''} some)" if seeds else ""
    return (
        f" This validation split was drawn at random from the {len(pool)} training images (data.validation_fraction="
        f"{layout.validation_fraction}, data.split_seed={layout.seed}), of which {len(labelled)} {has} a label file, and "
        f"the draw took none of them: draw another with another data.split_seed{others} or a larger "
        "data.validation_fraction, or give the data a validation split of its own ('val' in data.yaml, 'valid' in "
        "obj.data, or images/val beside images/train, with their label files)."
    )


def _other_case(label_path: Path, label_files: dict[Path, dict[str, Path]]) -> Path | None:
    """The file of `label_path`'s folder named as it but for case, or None (`label_files` caches each folder's)."""
    folder = label_path.parent
    if folder not in label_files:
        label_files[folder] = {path.name.casefold(): path for path in visible_files(folder, (".txt",))}
    return label_files[folder].get(label_path.name.casefold())


def _read_label_file(
    path: Path, image: BoxImage, num_classes: int, problems: DataProblems, keypoint_fields: int = 0
) -> list[BoxObject]:
    objects = []
    for number, line in enumerate(read_user_text(path).splitlines(), start=1):
        if line.strip():
            parsed = _parse_line(line, image, num_classes, keypoint_fields)
            if isinstance(parsed, str):
                problems.report(f"Label file {str(path)!r} line {number}: {parsed}")
            else:
                objects.append(parsed)
    return objects


def _field_count_problem(count: int, keypoint_fields: int) -> str | None:
    """What is wrong with a label line of `count` numbers, or None: a box has 5, a polygon an odd number from 7, a
    pose line (`keypoint_fields` > 0) 5 and its keypoints'."""
    if keypoint_fields:
        if count == 5 + keypoint_fields:
            return None
        return (
            f"has {count} numbers; with the kpt_shape of data.yaml a pose line is 'class cx cy w h' and "
            f"{keypoint_fields} keypoint numbers ({5 + keypoint_fields} in all)."
        )
    if count == 5 or (count >= 7 and count % 2 == 1):
        return None
    if count == 6:
        return (
            "has 6 numbers: 'class cx cy w h confidence' is how Ultralytics saves predictions (save_txt with "
            "save_conf); a label line is 'class cx cy w h', without the confidence."
        )
    return "is not 'class cx cy w h' (or 'class x1 y1 x2 y2 x3 y3 ...' for a polygon)."


def _parse_line(line: str, image: BoxImage, num_classes: int, keypoint_fields: int = 0) -> BoxObject | str:
    """The object of one label line, or what is wrong with it; with `keypoint_fields`, a pose line (the box, then
    that many keypoint numbers, which are not read)."""
    fields = line.split()
    problem = _field_count_problem(len(fields), keypoint_fields)
    if problem is not None:
        return f"{line.strip()!r} {problem}"
    fields = fields[:5] if keypoint_fields else fields
    try:
        number = float(fields[0])  # "1.0" as converters that write every column as a float give it
        values = [float(value) for value in fields[1:]]
    except ValueError:
        return f"{line.strip()!r} is not a class index followed by numbers."
    # `nan` parses as a float (a converter dividing by a size it did not know writes it) and passes every comparison
    not_finite = [field for field, value in zip(fields, (number, *values), strict=True) if not math.isfinite(value)]
    if not_finite or not number.is_integer():
        reason = f"it holds {not_finite[0]!r}" if not_finite else f"the class {fields[0]} is not a whole number"
        return f"{line.strip()!r} is not a class index followed by numbers: {reason}."
    label = int(number)
    if not 0 <= label < num_classes:
        return f"class {label} is out of range; the data has {num_classes} classes (0 to {num_classes - 1})."
    width, height = image.width, image.height
    if len(values) == 4:
        cx, cy, w, h = values
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        polygon = None
    else:
        xs, ys = [x * width for x in values[0::2]], [y * height for y in values[1::2]]
        box = (min(xs), min(ys), max(xs), max(ys))
        polygon = [coordinate for point in zip(xs, ys, strict=True) for coordinate in point]
    tolerance = (max(BOX_TOLERANCE, COORDINATE_TOLERANCE * width), max(BOX_TOLERANCE, COORDINATE_TOLERANCE * height))
    if box_problem(box, width, height, tolerance):
        return (
            f"{line.strip()!r} is outside [0, 1] in its image {str(image.path)!r} of {width}x{height} (by more than "
            f"{COORDINATE_TOLERANCE:.0%} of its side or {BOX_TOLERANCE:g} pixel, or wholly), or empty; coordinates are "
            "normalised by the image's width and height."
        )
    return BoxObject(clip_box(box, width, height), label, [polygon] if polygon else None)
