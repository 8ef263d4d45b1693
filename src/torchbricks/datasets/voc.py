"""Box detection data in the Pascal VOC layout: one XML file per image.

    ROOT/JPEGImages/*.jpg
    ROOT/Annotations/<id>.xml
    ROOT/ImageSets/Main/{train,val[,test]}.txt      one image id (XML stem) per line, the whole line (`IMG 0001`)

or a folder per split with the images and their XML files beside them, `ROOT/{train,valid,test}/*.jpg|xml` (as
Roboflow exports VOC; the validation folder may be `valid`, `val` or `validation`), or one folder of images with
their XML files beside them (as labelImg saves them), `ROOT/*.jpg` and `ROOT/*.xml`, or `JPEGImages` and
`Annotations` without split lists, their subfolders included (`Annotations/cam1/*.xml`): then the XML files are
split into train and validation at random,
`validation_fraction` of them (`VALIDATION_FRACTION` by default, at least one) to validation, fixed by `seed`
(`SPLIT_SEED` by default, independent of the training seed so runs with other seeds see the same split). The lists of
`ImageSets/Main` are named as in `torchbricks.datasets.voc_segmentation.split_lists` (in any case, `val`, `valid` or
`validation`); without `train.txt`, `trainval.txt` or else `default.txt` (CVAT's "PASCAL VOC 1.1" export of a task)
is the training list, less what `val.txt` holds; a training list without a validation list has its validation split
drawn from its ids as above. VOC's per-class lists (`aeroplane_train.txt`, `<id> <flag>` a line) are not read; a
split list's line is an id whole, spaces included (`IMG 0001`, as CVAT writes an image's name).

Each XML's `filename` names its image, looked up in the subfolder of `JPEGImages` that mirrors the XML file's
subfolder of `Annotations`, in `JPEGImages` (or `ROOT`) and then beside the XML file (the XML's stem with an image
extension when it does not exist); `size` gives
the image's width and height (read from the file when it is missing or zero). Each `object` has a `name`, a
`bndbox` and an optional `difficult` flag, `0` or `1` (`true` or `false` in any case, as writers that print a
Python boolean write it; any other value is an error naming the file, the object and the value; `truncated`,
`pose`, `occluded` are not read): difficult objects are kept
with the label that `BoxDataset` marks as ignored (not trained on; in mAP neither a ground truth nor, when
detected, a false positive).

The tools do not agree on what a `bndbox` number is (`voc_coordinate_origin`). VOC's devkit, and the VOC data sets,
write 1-based pixel indices, `xmin` to `xmax` inclusive: the box is `(xmin - 1, ymin - 1, xmax, ymax)` in pixel
edges. The annotation tools write pixel edges from 0, the box as it is: CVAT's "PASCAL VOC 1.1" export (Datumaro's
writer: floats, `263.58`, source `annotation` and `image` 'Unknown'), Label Studio's export (whole pixels from 0,
truncated, owner 'Label Studio'), `torchbricks predict --labels voc` (whole pixels from 0, source database
'torchbricks predict') and labelImg (whole pixels, truncated, a `path` element, source `database`
'Unknown'; it raises an edge at 0 to 1). A data set is read from 0 when one of its XML files is written by one of
those tools or holds what 1-based indices cannot (a `xmin` or `ymin` of 0, a coordinate with a fraction); from 1
otherwise (`data.voc_origin=auto`; `1` or `0` says it). Read the other way, every box would be one pixel wider and
taller (its left and top edges moved out), or narrower, without a word; the job and `check-data` say which way the
data was read when it is found to be from 0. Roboflow's `supervision` writes every corner as its pixel edge plus 1:
under `auto`, its files (`SUPERVISION_WRITER`) are read as it reads them back, `xmin - 1` to `xmax - 1`, unless a
box starts at 0 (its versions before 0.14, of July 2023, wrote pixel edges from 0). The files of the VOC data sets
themselves (source database 'The VOC2007 Database', annotation 'PASCAL VOC2007') are read as 1-based indices under
`auto` whatever the other files say, so VOC merged with one's own CVAT or labelImg files is read right throughout.
CVAT's export makes an `object` of each rectangle only (polygons are not in its XML files, masks go to
`SegmentationObject`): its files marked `<segmented>1</segmented>` are named by the notice (`_masks_beside`).

The classes are the object names of the train split, sorted; a name in another split that the train split lacks is
a `DataError` naming the file. When the split is made here, the names of every XML file are the classes, so a rare
class that the random split puts only in validation is not an error. Other bad data is a `DataError` naming the
file: XML that does not parse or lacks a box field, a missing image, a box outside its image, two XML files
describing one image (a `filename` left from before the images were renamed), an XML file whose `filename` names
another image than the one of its own name, both there (`_check_no_image_of_the_xml_name`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from torchbricks._conventions import PREDICT_VOC_DATABASE
from torchbricks.datasets._reading import (
    IMAGE_EXTENSIONS,
    SPLIT_SEED,
    VALIDATION_FRACTION,
    DataError,
    DataProblems,
    Transform,
    image_file_size,
    random_split,
    read_once,
    visible_files,
)
from torchbricks.datasets.boxes import BoxDataset, BoxImage, BoxObject, box_problem, clip_box
from torchbricks.datasets.folder_splits import VALIDATION_FOLDERS
from torchbricks.datasets.voc_segmentation import split_lists
from torchbricks.errors import ConfigError, did_you_mean

__all__ = [
    "SPLIT_SEED",
    "SUPERVISION_WRITER",
    "VALIDATION_FRACTION",
    "VOC_ORIGINS",
    "VocAnnotation",
    "VocDataset",
    "VocSplits",
    "check_voc_origin",
    "parse_voc_xml",
    "read_voc_splits",
    "voc_class_names",
    "voc_coordinate_origin",
]

SPLIT_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}
VOC_ORIGINS = ("auto", "1", "0")
"""The values of `data.voc_origin`: what the `bndbox` numbers count from (see the module docstring)."""


@dataclass
class VocAnnotation:
    """One parsed XML file: its image, the image's size (width, height) and its objects as (name, box, difficult)."""

    path: Path
    image: Path
    width: int
    height: int
    objects: list[tuple[str, tuple[float, float, float, float], bool]] = field(default_factory=list)


@dataclass(frozen=True)
class VocSplits:
    """The XML files of each split, and whether the split came from `ImageSets/Main` (False: made here by seed)."""

    root: Path
    images: Path
    files: dict[str, list[Path]]
    listed: bool
    annotations: Path | None = None
    """The folder of the XML files (`Annotations`, or the root), whose subfolders the images' mirror."""


def _text(element: ElementTree.Element, tag: str) -> str | None:
    found = element.find(tag)
    return found.text.strip() if found is not None and found.text is not None else None


def _image_of(path: Path, filename: str | None, images: Path, annotations: Path | None = None) -> Path:
    """The image of the XML file `path`: its `filename`, else its stem with an image extension, in the subfolder of
    `images` that mirrors the XML file's subfolder of `annotations` (CVAT's `Annotations/cam1/x.xml` for
    `JPEGImages/cam1/x.jpg`), in `images` and then beside the XML file; `images / filename` when there is none (for
    the message)."""
    folders = [images]
    if annotations is not None and path.parent != annotations and path.is_relative_to(annotations):
        folders.insert(0, images / path.parent.relative_to(annotations))
    if path.parent not in folders:
        folders.append(path.parent)
    for folder in folders:
        if filename and (folder / filename).is_file():
            named = folder / filename
            if named.stem.lower() != path.stem.lower():
                _check_no_image_of_the_xml_name(path, named, folders)
            return named
        candidate = _image_named(folder, path.stem)
        if candidate is not None:
            return candidate
    return images / (filename or f"{path.stem}.jpg")


def _image_named(folder: Path, stem: str) -> Path | None:
    """The image file `stem` with an image extension (in lower or upper case) in `folder`, if any."""
    for extension in IMAGE_EXTENSIONS:
        for candidate in (folder / f"{stem}{extension}", folder / f"{stem}{extension.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _check_no_image_of_the_xml_name(path: Path, named: Path, folders: Sequence[Path]) -> None:
    """Refuses an XML file whose `filename` names another image than the one of its own name, both there: renaming
    images with their XML files (a renumbering script) leaves each `filename` naming another image of the set, and an
    XML file copied for the next image keeps the first one's; read by `filename`, each image got another's boxes
    without a word (every other VOC reader, torchvision's, Detectron2's, MMDetection's, pairs them by name).

    Raises:
        DataError: Naming the XML file, both images and the fix.
    """
    for folder in folders:
        own = _image_named(folder, path.stem)
        if own is not None:
            raise DataError(
                f"The VOC file {str(path)!r} names its image {named.name!r} (<filename>), but {str(own)!r} has the XML "
                f"file's name: a <filename> left from before the images were renamed, or an XML file copied for "
                f"another image, would give one image the other's boxes. Set <filename> to {own.name!r} if the boxes "
                f"are of {str(own)!r}, or rename the XML file after the image its boxes are of."
            )


def parse_voc_xml(
    path: Path, images: Path, annotations: Path | None = None, origin: int = 1, end_shift: int = 0
) -> VocAnnotation:
    """Reads one VOC XML file; its image is looked up in `images` (in the subfolder mirroring the XML file's
    subfolder of `annotations`, first); its boxes are pixel indices from `origin` (1: VOC's devkit, inclusive; 0:
    pixel edges, as the annotation tools write them; `voc_coordinate_origin`), their `xmax` and `ymax` less
    `end_shift` (1 for Roboflow's supervision, which adds 1 to both corners: `SUPERVISION_WRITER`).

    Raises:
        DataError: The file does not parse, an object lacks its name or a box field, or the image is missing.
    """
    try:
        tree = read_once("xml", path, ElementTree.parse)
    except (OSError, ElementTree.ParseError) as error:
        raise DataError(f"The VOC file {str(path)!r} cannot be read as XML: {error}") from error
    root = tree.getroot()
    image = _image_of(path, _text(root, "filename"), images, annotations)
    if not image.is_file():
        raise DataError(f"The image {str(image)!r} of the VOC file {str(path)!r} does not exist.")
    width, height = (_text(root, "size/width"), _text(root, "size/height"))
    try:
        size = (int(float(width or 0)), int(float(height or 0)))
    except ValueError as error:
        raise DataError(f"The VOC file {str(path)!r} has size {width}x{height}; expected numbers.") from error
    if size[0] <= 0 or size[1] <= 0:
        size = image_file_size(image)
    annotation = VocAnnotation(path, image, size[0], size[1])
    for number, item in enumerate(root.iter("object"), start=1):
        name = _text(item, "name")
        corners = [_text(item, f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")]
        if not name or any(corner is None for corner in corners):
            raise DataError(f"The VOC file {str(path)!r}: object {number}{f' ({name})' if name else ''} {_lacks(item)}")
        flag = _text(item, "difficult")
        difficult = _difficult_flag(flag)
        if difficult is None:
            raise DataError(
                f"The VOC file {str(path)!r}: object {number} ({name}) has difficult = {flag!r}; expected 0 or 1 (or "
                "true or false, as writers that print a boolean write it)."
            )
        try:
            x_min, y_min, x_max, y_max = (float(corner) for corner in corners)  # type: ignore[arg-type]
            if not all(math.isfinite(corner) for corner in (x_min, y_min, x_max, y_max)):  # `nan` parses as a float
                raise ValueError(corners)
        except ValueError as error:
            raise DataError(
                f"The VOC file {str(path)!r}: object {number} ({name}) has a field that is not a number: bndbox "
                f"(xmin, ymin, xmax, ymax) = {tuple(corners)}."
            ) from error
        shift = float(origin)  # 1-based inclusive indices: the first pixel's left edge is 0, the last's right edge xmax
        annotation.objects.append((name, (x_min - shift, y_min - shift, x_max - end_shift, y_max - end_shift), difficult))
    return annotation


def _difficult_flag(text: str | None) -> bool | None:
    """An object's `difficult` as written: absent or empty is False, `0` or `1` (`1.0` too) as the devkit writes it,
    `true` or `false` in any case (Python writers that print a boolean, `str(box.difficult)`, write `True`); None for
    anything else (`2`, `0.5`, `yes`), which is no flag.

    Example:
        >>> [_difficult_flag(text) for text in (None, "", "1", "0.0", "True", "false", "2")]
        [False, False, True, False, True, False, None]
    """
    if not text:
        return False
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(text)
    except ValueError:
        return None
    return bool(number) if number in (0.0, 1.0) else None


def _lacks(item: ElementTree.Element) -> str:
    """What an `object` element lacks to be read (its name, its bndbox or a corner of it), and what it has instead."""
    if not _text(item, "name"):
        return "has no name; an object has a name and a bndbox (xmin, ymin, xmax, ymax)."
    box = item.find("bndbox")
    if box is None:
        shapes = sorted({child.tag for child in item} - {"name", "pose", "truncated", "occluded", "difficult", "attributes"})
        has = f" (it has {shapes}: a shape this layout does not read; draw a box, or export COCO for outlines)" if shapes else ""
        return f"has no bndbox{has}; an object has a name and a bndbox (xmin, ymin, xmax, ymax)."
    missing = [tag for tag in ("xmin", "ymin", "xmax", "ymax") if _text(box, tag) is None]
    return f"has a bndbox without {', '.join(missing)}; a bndbox has xmin, ymin, xmax and ymax."


_ZERO_BASED_WRITERS = (
    ("torchbricks predict --labels voc", lambda root: _text(root, "source/database") == PREDICT_VOC_DATABASE),
    ("Label Studio's export (owner 'Label Studio')", lambda root: _text(root, "owner/name") == "Label Studio"),
    (
        "CVAT's or Datumaro's export (source annotation and image 'Unknown')",
        lambda root: _text(root, "source/annotation") == "Unknown" and _text(root, "source/image") == "Unknown",
    ),
    (
        "labelImg (a path element, source database 'Unknown')",
        lambda root: (
            root.find("path") is not None
            and _text(root, "source/database") == "Unknown"
            and root.find("source/annotation") is None
        ),
    ),
)
"""The tools that write pixel edges from 0, and how their XML files show it."""

SUPERVISION_WRITER = "Roboflow's supervision (folder 'VOC', source database 'roboflow.ai', objects of a name and a box)"
"""Roboflow's `supervision` library (`detections_to_pascal_voc`, `DetectionDataset.as_pascal_voc`, since 0.14) writes
each corner of a box in pixel edges plus 1, `int(x + 1)`, the right and bottom too, and reads its files back by
subtracting 1 from each: read as VOC's devkit indices, its boxes would end 1 pixel right of and below their
objects. Its files have the folder `VOC`, the source database `roboflow.ai`, no `path`, and objects of a name, a
box and maybe a polygon only (Roboflow's web export also names the database `roboflow.ai`, but writes a `path`
and each object's `pose`, `truncated` and `difficult`)."""


def _written_by_supervision(root: ElementTree.Element) -> bool:
    """Whether a parsed XML file is as `supervision` writes it (`SUPERVISION_WRITER`)."""
    return (
        _text(root, "folder") == "VOC"
        and _text(root, "source/database") == "roboflow.ai"
        and root.find("path") is None
        and all({child.tag for child in item} <= {"name", "bndbox", "polygon"} for item in root.iter("object"))
    )


def voc_coordinate_origin(files: Sequence[Path]) -> tuple[int, str | None]:
    """Whether the `bndbox` numbers of a data set's XML `files` count pixels from 1, as VOC's devkit writes them, or
    are pixel edges from 0, as the annotation tools write them (see the module docstring): `(0, why)` when a file is
    written by such a tool or holds what 1-based indices cannot (a `xmin` or `ymin` of 0, a fraction), naming the
    file; `(1, None)` otherwise. A file that does not parse is passed over (reading it reports it)."""
    for path in files:
        root = _parsed(path)
        why = _zero_based(path, root) if root is not None else None
        if why is not None:
            return 0, why
    return 1, None


def _parsed(path: Path) -> ElementTree.Element | None:
    try:
        return read_once("xml", path, ElementTree.parse).getroot()
    except (OSError, ElementTree.ParseError):
        return None  # reading it reports it


def _zero_based(path: Path, root: ElementTree.Element) -> str | None:
    """Why the XML file `path` (parsed: `root`) holds pixel edges from 0, or None (see `voc_coordinate_origin`)."""
    writer = next((name for name, written_by in _ZERO_BASED_WRITERS if written_by(root)), None)
    if writer is not None:
        return f"{str(path)!r} is written by {writer}"
    for item in root.iter("object"):
        corners = [_text(item, f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")]
        try:
            values = [float(corner) for corner in corners if corner is not None]
        except ValueError:
            continue
        if any(math.isfinite(value) and not value.is_integer() for value in values):
            return f"{str(path)!r} has a box {tuple(corners)} with a fraction, which pixel indices never have"
        if len(values) == 4 and 0.0 in values[:2]:
            return f"{str(path)!r} has a box {tuple(corners)} starting at 0, which 1-based pixel indices never do"
    return None


def _written_by_voc_devkit(root: ElementTree.Element) -> bool:
    """Whether a parsed XML file is one of the VOC data sets' own (source database 'The VOC2007 Database' and
    annotation 'PASCAL VOC2007', 2008...): 1-based pixel indices, whatever the other files of a data set it was
    merged into are."""
    database, annotation = _text(root, "source/database") or "", _text(root, "source/annotation") or ""
    return database.startswith("The VOC") and annotation.startswith("PASCAL VOC")


def _masks_beside(root: ElementTree.Element) -> bool:
    """Whether a parsed XML file is written by CVAT's "PASCAL VOC 1.1" export (Datumaro's writer) for an image with
    masks (`segmented` 1): that writer makes an `object` of each rectangle only, and the image's masks go to
    `SegmentationClass` and `SegmentationObject`, so the objects drawn as masks are not among the file's boxes."""
    datumaro = _text(root, "source/annotation") == "Unknown" and _text(root, "source/image") == "Unknown"
    return datumaro and _text(root, "segmented") == "1"


@dataclass
class _DataSetReading:
    """What reading a split needs to know of the whole data set's XML files (`_read_data_set`)."""

    origin: int
    end_shift: int
    why: str | None
    clashes: dict[Path, Path]
    """XML file -> an earlier one whose image is the same file."""
    devkit: set[Path]
    """The files of the VOC data sets themselves (`_written_by_voc_devkit`), read as 1-based indices whatever the
    others say."""
    masks_beside: list[Path]
    """The files whose image has objects drawn as masks that are not among their boxes (`_masks_beside`)."""


def _read_data_set(files: Sequence[Path], splits: VocSplits) -> _DataSetReading:
    """What reading a split needs to know of the whole data set's XML `files`, each parsed once: the coordinate
    origin, what `xmax` and `ymax` are shifted by and why (`voc_coordinate_origin`; 1 and 1 for files `supervision`
    wrote, `SUPERVISION_WRITER`, unless one starts a box at 0, as its versions before 0.14, of July 2023, wrote
    pixel edges from 0), and the rest of `_DataSetReading`."""
    why: str | None = None
    supervision: str | None = None
    described_by: dict[Path, Path] = {}
    clashes: dict[Path, Path] = {}
    devkit: set[Path] = set()
    masks_beside: list[Path] = []
    for path in files:
        root = _parsed(path)
        if root is None:
            continue
        if _written_by_voc_devkit(root):
            devkit.add(path)
        if _masks_beside(root):
            masks_beside.append(path)
        why = why or _zero_based(path, root)
        if supervision is None and _written_by_supervision(root):
            supervision = f"{str(path)!r} is written by {SUPERVISION_WRITER}"
        image = _image_of(path, _text(root, "filename"), splits.images, splits.annotations)
        if image.is_file():
            first = described_by.setdefault(image.resolve(), path)
            if first != path:
                clashes[path] = first
    if why is None and supervision is not None:
        return _DataSetReading(1, 1, supervision, clashes, devkit, masks_beside)
    return _DataSetReading(1 if why is None else 0, 0, why, clashes, devkit, masks_beside)


def _masks_beside_notice(files: Sequence[Path]) -> str:
    """What the job and `check-data` say of the XML files whose masks are not among their boxes; "" for none."""
    if not files:
        return ""
    many = len(files) > 1
    return (
        f"{len(files)} XML file{'s' if many else ''} written by CVAT ({str(files[0])!r}{', ...' if many else ''}) "
        f"{'mark their images' if many else 'marks its image'} segmented (<segmented>1</segmented>): CVAT's PASCAL VOC "
        "export writes only rectangles as the XML's objects and the masks to SegmentationClass and SegmentationObject, "
        "so the objects drawn there as masks have no box here and are read as background. Export the task as COCO 1.0 "
        "to read them as boxes, or draw them as rectangles."
    )


def check_voc_origin(origin: int | str) -> int | None:
    """`data.voc_origin` read: 1 or 0, None for `auto` (found from the files, `voc_coordinate_origin`).

    Raises:
        ConfigError: Another value.
    """
    if str(origin) not in VOC_ORIGINS:
        raise ConfigError(
            f"Config key 'data.voc_origin' is {origin!r}; expected auto (found from the XML files), 1 (VOC's devkit: "
            "1-based pixel indices, xmin - 1 the left edge) or 0 (pixel edges from 0, as CVAT, Label Studio and labelImg "
            f"write them).{did_you_mean(str(origin), VOC_ORIGINS)}"
        )
    return None if str(origin) == "auto" else int(origin)


def voc_origin_notice(root: Path, why: str, end_shift: int = 0, devkit_files: int = 0) -> str:
    """What the job and `check-data` say when the VOC data at `root` is read with pixel edges from 0, or as
    `supervision` writes it (`end_shift` 1); `devkit_files` of the VOC data sets' own are read as their indices."""
    own = (
        f" The {devkit_files} XML file{'s' if devkit_files > 1 else ''} of the VOC data sets themselves (source "
        f"'The VOC... Database') {'are' if devkit_files > 1 else 'is'} read as VOC's 1-based indices."
        if devkit_files
        else ""
    )
    return _origin_notice(root, why, end_shift) + own


def _origin_notice(root: Path, why: str, end_shift: int) -> str:
    if end_shift:
        return (
            f"The VOC boxes of {str(root)!r} are read as Roboflow's supervision writes them, each corner a pixel edge "
            f"plus 1 (xmin - 1 to xmax - 1, as supervision reads them back), not as VOC's devkit indices, which would "
            f"end every box 1 pixel right of and below its object: {why}. data.voc_origin=1 reads them as the devkit's."
        )
    return (
        f"The VOC boxes of {str(root)!r} are read as pixel edges from 0, as CVAT, Label Studio and labelImg write "
        f"them, not as the 1-based pixel indices of VOC's devkit (xmin - 1): {why}."
    )


def read_voc_splits(root: Path | str, validation_fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED) -> VocSplits:
    """The XML files of each split (see the module docstring); `test` is empty without `ImageSets/Main/test.txt`.

    Raises:
        DataError: No XML file, a split file names an id without XML file, or the fraction leaves no training file.
    """
    root = Path(root)
    annotations = root / "Annotations" if (root / "Annotations").is_dir() else root
    images = root / "JPEGImages" if (root / "JPEGImages").is_dir() else root
    lists = split_lists(root / "ImageSets" / "Main")
    if "train" in lists or "pool" in lists:
        source = "train" if "train" in lists else "pool"
        files = {
            split: [annotations / f"{stem}.xml" for stem in lists[split][1]] if split in lists else [] for split in SPLIT_FILES
        }
        files["train"] = [annotations / f"{stem}.xml" for stem in lists[source][1]]
        if "validation" in lists:  # VOC's trainval holds val: what the validation list holds is not trained on
            held = set(files["validation"])
            files["train"] = [path for path in files["train"] if path not in held]
            return VocSplits(root, images, files, listed=True, annotations=annotations)
        # a training list alone (CVAT's default.txt, or a train subset): validation drawn from it
        files["train"], files["validation"] = random_split(files["train"], validation_fraction, seed, lists[source][0])
        return VocSplits(root, images, files, listed=False, annotations=annotations)
    if annotations == root and not _xml_in(root) and _xml_in(root / "train"):  # a folder per split
        folders = {"train": "train", "validation": next((n for n in VALIDATION_FOLDERS if _xml_in(root / n)), None)}
        files = {split: _xml_in(root / folder) if folder else [] for split, folder in {**folders, "test": "test"}.items()}
        if folders["validation"] is None:  # no validation folder: drawn from the training files
            files["train"], files["validation"] = random_split(files["train"], validation_fraction, seed, root / "train")
        return VocSplits(root, images, files, listed=folders["validation"] is not None)
    xml_files = _xml_in(annotations, recursive=True)  # CVAT keeps a task's subfolders: Annotations/cam1/*.xml
    if not xml_files:
        raise DataError(f"The VOC folder {str(root)!r} has no XML file in {str(annotations)!r}.")
    train, validation = random_split(xml_files, validation_fraction, seed, root)
    return VocSplits(root, images, {"train": train, "validation": validation, "test": []}, listed=False, annotations=annotations)


def _flagged(path: Path) -> str:
    """What to add to the message of a listed XML file that does not exist when its list line reads `<id> <flag>`, as
    VOC's per-class lists do, and the XML file of `<id>` exists; "" otherwise."""
    words = path.stem.split()
    if len(words) != 2 or words[1] not in ("-1", "0", "1") or not path.with_name(f"{words[0]}.xml").is_file():
        return ""
    return (
        f" Its line {path.stem!r} reads as VOC's per-class form (<id> <flag>); a split list holds one image id a line, "
        "the whole line."
    )


def _xml_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The visible XML files of `folder` (with `recursive`, of its subfolders too), none when it does not exist."""
    return visible_files(folder, (".xml",), recursive=recursive)


def voc_class_names(
    root: Path | str,
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = SPLIT_SEED,
    problems: DataProblems | None = None,
) -> list[str]:
    """The object names of the train split, sorted (of every XML file when the split is made here).

    Args:
        root: The data folder.
        validation_fraction: See `read_voc_splits`.
        seed: See `read_voc_splits`.
        problems: Where a file that does not parse goes (the names are then those of the other files); the first
            raises when None.

    Raises:
        DataError: See `read_voc_splits` and `parse_voc_xml`, or no object at all.
    """
    problems = problems if problems is not None else DataProblems()
    splits = read_voc_splits(root, validation_fraction, seed)
    files = splits.files["train"] if splits.listed else [path for paths in splits.files.values() for path in paths]
    parsed = [problems.guard(parse_voc_xml, path, splits.images, splits.annotations) for path in files if path.is_file()]
    names = sorted({name for annotation in parsed if annotation is not None for name, _, _ in annotation.objects})
    if not names:
        raise DataError(f"The VOC folder {str(splits.root)!r} has no object in its training XML files.")
    return names


class VocDataset(BoxDataset):
    """One split of a Pascal VOC folder as box samples (see `BoxDataset` and the module docstring).

    Args:
        root: The data folder.
        split: `train`, `validation` or `test`.
        class_names: The classes in index order; `voc_class_names(root, ...)` when None.
        transform: A `torchvision.transforms.v2` transform of `{"image", "boxes", "labels"}`.
        validation_fraction: Fraction of the XML files split off for validation when there are no split files.
        seed: Seed of that split.
        problems: Where problems go; the first raises when None.
        origin: What the `bndbox` numbers count from: `auto` (found from the files), 1 (VOC's devkit) or 0 (pixel
            edges; see the module docstring).

    Raises:
        DataError: A bad or missing file, an unknown class name, a box outside its image, an empty split.
        ConfigError: An `origin` other than those.
    """

    def __init__(
        self,
        root: Path | str,
        split: str = "train",
        class_names: list[str] | None = None,
        transform: Transform | None = None,
        validation_fraction: float = VALIDATION_FRACTION,
        seed: int = SPLIT_SEED,
        problems: DataProblems | None = None,
        origin: int | str = "auto",
    ) -> None:
        given = check_voc_origin(origin)
        problems = problems if problems is not None else DataProblems()
        splits = read_voc_splits(root, validation_fraction, seed)
        self.root = splits.root
        self.split = split
        names = class_names if class_names is not None else voc_class_names(root, validation_fraction, seed)
        every_file = list(dict.fromkeys(path for paths in splits.files.values() for path in paths if path.is_file()))
        reading = _read_data_set(every_file, splits)  # of the whole data set: read alike
        clashes, devkit = reading.clashes, reading.devkit
        origin, end_shift, why = (reading.origin, reading.end_shift, reading.why) if given is None else (given, 0, None)
        self.origin = origin
        """1: the boxes are VOC's 1-based pixel indices; 0: pixel edges from 0 (`voc_coordinate_origin`); under
        `auto`, the VOC data sets' own files are read as 1-based indices whatever this is."""
        self.end_shift = end_shift
        """1: `xmax` and `ymax` are pixel edges plus 1, as `supervision` writes them (`SUPERVISION_WRITER`); else 0."""
        index_of = {name: index for index, name in enumerate(names)}
        records = []
        seen: set[Path] = set()
        for path in splits.files[split]:
            if path in seen:
                problems.report(f"The VOC split {split!r} lists {path.stem!r} twice.")
                continue
            seen.add(path)
            if not path.is_file():
                problems.report(f"The VOC file {str(path)!r} (listed in the {split!r} split) does not exist.{_flagged(path)}")
                continue
            # VOC's own files (merged with one's own CVAT or labelImg files) keep their 1-based indices
            file_origin, file_shift = (1, 0) if given is None and path in devkit else (origin, end_shift)
            annotation = problems.guard(parse_voc_xml, path, splits.images, splits.annotations, file_origin, file_shift)
            if annotation is None:
                continue
            if path in clashes:  # a filename left from before the images were renamed, or copied from another file
                problems.report(
                    f"The VOC files {str(clashes[path])!r} and {str(path)!r} both describe the image "
                    f"{str(annotation.image)!r} (their filename element, or their name): one of them would be read "
                    "with the other's picture. Correct its filename (the image of x.xml is found as x.jpg when "
                    "filename names no file)."
                )
                continue
            record = BoxImage(annotation.image, annotation.width, annotation.height, source=repr(str(path)))
            for name, box, difficult in annotation.objects:
                if name not in index_of:
                    problems.report(f"The VOC file {str(path)!r} has an object {name!r}, not a class of the train split {names}.")
                elif box_problem(box, record.width, record.height):
                    problems.report(
                        f"The VOC file {str(path)!r} has an object {name!r} with box (x_min, y_min, x_max, y_max) = {box} "
                        f"(pixel edges), outside (or empty in) its image {str(record.path)!r} of {record.width}x{record.height}."
                    )
                else:
                    record.objects.append(
                        BoxObject(clip_box(box, record.width, record.height), index_of[name], difficult=difficult)
                    )
            records.append(record)
        if not records and (split != "test" or splits.files[split]):
            problems.report(f"The VOC split {split!r} of {str(self.root)!r} holds no image.")
        super().__init__(records, names, with_masks=False, transform=transform)
        notices = [
            voc_origin_notice(self.root, why, end_shift, len(devkit) if given is None else 0) if why is not None else "",
            _masks_beside_notice(reading.masks_beside),
        ]
        self.reading_notice = " ".join(notice for notice in notices if notice) or None
