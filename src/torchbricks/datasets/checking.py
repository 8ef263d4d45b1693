"""Checks a data folder in any layout the training job reads and lists every problem at once (`torchbricks check-data`).

The readers do the checking: each takes a `DataProblems` that collects instead of raising, so the rules are the ones
training applies. On top of them the check decodes every image (and mask), compares each image's size with its
annotations, reads every mask's values, finds the same file or identical images used twice (within a split or
across splits: a test image also in training inflates the results) and classes without a training example, and
counts images and instances per class and split.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._data_facts import data_facts_kept
from torchbricks._image_files import all_visible_files
from torchbricks._pictures import converted_profile, fully_transparent, open_image, too_large
from torchbricks.datasets._reading import (
    IMAGE_EXTENSIONS,
    SPLIT_SEED,
    VALIDATION_FRACTION,
    check_data_folder,
    exif_orientation,
    image_files,
    image_notes,
    is_hidden,
    upright_size,
    visible_files,
)
from torchbricks.datasets.class_frequencies import masks_of_split
from torchbricks.datasets.detection_layouts import (
    DETECTION_LAYOUTS,
    LAYOUT_EXPECTS,
    detect_detection_layout,
    detection_class_names,
    find_detection_layouts,
    has_test_split,
    has_validation_split,
    read_detection_split,
)
from torchbricks.datasets.folder_splits import (
    FOLDER_LAYOUTS,
    SPLIT_FOLDERS,
    FolderSplit,
    folder_splits,
    is_pool,
    is_voc_layout,
    segmentation_folders,
    training_folder,
)
from torchbricks.datasets.mask_palettes import palette_disagreement
from torchbricks.datasets.readers import (
    BoxDataset,
    BoxImage,
    DataError,
    DataProblems,
    ImageFolderDataset,
    SegmentationFolderDataset,
    background_line_notice,
    binary_masks_disagree,
    binary_masks_notice,
    image_size_problem,
    mask_colours,
    mask_value_problem,
    masks_are_binary_255,
    numbered_class_list_notice,
    read_mask,
    reads_voc_classes,
    segmentation_class_names,
    training_class_names,
    voc_class_names_notice,
)
from torchbricks.datasets.segmentation_layouts import (
    OUTLINE_LAYOUTS,
    check_outlines,
    holds_mask_folders,
    multitask_masks_notice,
    segmentation_layout,
    unoutlined_notice,
    unread_outlines_notice,
)
from torchbricks.datasets.voc import check_voc_origin, read_voc_splits, voc_class_names
from torchbricks.datasets.voc_segmentation import read_voc_segmentation, split_lists
from torchbricks.datasets.yolo import read_yolo_layout, unread_label_files, yolo_settings_file
from torchbricks.errors import ConfigError, did_you_mean

__all__ = ["TASKS", "DataReport", "check_data", "decode_image"]

TASKS = ("classification", "segmentation", "detection", "multitask")
FOLDER_EXPECTS = {
    "classification": "ROOT/train/<class>/*, ROOT/val/<class>/* (image folders; or ROOT/<class>/*, split at random)",
    "segmentation": "ROOT/train/images/* with ROOT/train/masks/<same stem>.png, and ROOT/val/... (segmentation folders; "
    "or ROOT/images/* with ROOT/masks/*, split at random; or Pascal VOC's ROOT/JPEGImages/* with "
    "ROOT/SegmentationClass/<same stem>.png, split by ROOT/ImageSets/Segmentation/*.txt)",
}


@dataclass
class DataReport:
    """What `check_data` found: the task and layout, the classes, every problem, and per split the number of images
    and, per class, of images holding it and of its instances (pixels for segmentation); notes say what the reader
    should know that is not a problem (a YOLO `data.yaml` pointing to images outside the folder)."""

    root: Path
    task: str
    layout: str
    class_names: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def table(self) -> str:
        """The images and instances per class and split, as aligned text."""
        unit = "pixels" if self.task == "segmentation" else "instances"
        rows = [("split", "class", "images", unit)]
        for split, per_class in self.counts.items():
            for name in self.class_names:
                images, instances = per_class.get(name, [0, 0])
                rows.append((split, name, str(images), str(instances)))
            total = sum(instances for _, instances in per_class.values())
            rows.append((split, "(all)", str(self.images.get(split, 0)), str(total)))
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        return "\n".join(
            "  ".join(
                cell.ljust(width) if column < 2 else cell.rjust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        )

    def render(self) -> str:
        """The report as `torchbricks check-data` prints it."""
        lines = [
            f"Data {str(self.root)!r}: {self.task}, {self.layout} layout, {len(self.class_names)} classes {self.class_names}",
            *(f"Note: {note}" for note in self.notes),
        ]
        if self.counts:
            lines += ["", self.table()]
        lines.append("")
        if self.ok:
            lines.append("No problem found.")
        else:
            lines.append(f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}:")
            lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def decode_image(path: Path) -> tuple[tuple[int, int], str, int, bool, str | None] | str:
    """Fully decodes an image file: its upright size (width, height), a digest of its pixels, its EXIF orientation
    (1: as stored), whether it is transparent everywhere (`torchbricks._pictures.fully_transparent`) and the colour
    profile it is converted to sRGB from (`torchbricks._pictures.converted_profile`), or what is wrong with it."""
    try:
        with Image.open(path) as image:
            image.verify()
        with open_image(path) as image:
            size, orientation = upright_size(image), exif_orientation(image)  # before decoding, as the readers see them
            profile = converted_profile(image)
            image.load()
            return size, hashlib.sha1(image.tobytes()).hexdigest(), orientation, fully_transparent(image), profile
    except FileNotFoundError:
        return f"Image {str(path)!r} does not exist."
    except Image.DecompressionBombError as error:
        return str(too_large(path, error))
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... for a broken file
        return f"Image {str(path)!r} cannot be decoded: {type(error).__name__}: {error}"


def _task_of(root: Path, task: str | None, layout: str) -> tuple[str, str]:
    if task is not None and task not in TASKS:
        raise ConfigError(f"check-data: task must be one of {list(TASKS)}, got {task!r}.{did_you_mean(task, TASKS)}")
    if task in ("detection", "multitask") or (task is None and layout != "auto"):
        return task or "detection", detect_detection_layout(root, layout)
    if task == "segmentation":
        return task, segmentation_layout(root, layout)
    if task == "classification":
        return task, "image_folder"
    check_data_folder(root)
    if find_detection_layouts(root):
        return "detection", detect_detection_layout(root)
    if holds_mask_folders(root):
        return "segmentation", "segmentation_folder"
    if (root / "train").is_dir() or is_pool(root, "image_folder"):
        return "classification", "image_folder"
    expects = "; ".join(
        [
            *(f"{name}: {text}" for name, text in FOLDER_EXPECTS.items()),
            *(f"detection {name}: {LAYOUT_EXPECTS[name]}" for name in DETECTION_LAYOUTS),
        ]
    )
    raise DataError(f"The data folder {str(root)!r} is in no layout torchbricks reads. Expected one of {expects}.")


class _Checker:
    """Runs the readers of one data folder with a collecting `DataProblems`, then the checks they do not make."""

    def __init__(
        self,
        report: DataReport,
        validation_fraction: float = VALIDATION_FRACTION,
        seed: int = SPLIT_SEED,
        voc_origin: int | str = "auto",
    ) -> None:
        self.report = report
        self.voc_origin = voc_origin  # what VOC boxes count from, as training's data.voc_origin
        self.validation_fraction = validation_fraction  # of the splits drawn, as training draws them
        self.seed = seed
        self.problems = DataProblems(collect=True)
        self.digests: dict[str, tuple[str, Path]] = {}
        self.used: dict[Path, str] = {}
        self.turned: list[Path] = []  # images whose EXIF orientation turns or mirrors them
        self.transparent: list[Path] = []  # images whose alpha is 0 everywhere
        self.profiles: dict[Path, str] = {}  # images read converted to sRGB, and from which colour profile
        self.ignored: dict[str, Counter[str]] = {}  # split -> class -> objects training ignores (difficult, crowd)
        self.ignored_pixels: dict[str, list[Any]] = {}  # split -> [pixels 255, pixels, masks of nothing but 0 and 255]

    def image(self, split: str, path: Path) -> tuple[int, int] | None:
        """Decodes an image, noting a problem, a file used twice or identical pixels seen before."""
        resolved = path.resolve()
        if resolved in self.used:
            self.problems.report(f"Image {str(path)!r} is used twice (in the {self.used[resolved]!r} and {split!r} splits).")
            return None
        self.used[resolved] = split
        decoded = decode_image(path)
        if isinstance(decoded, str):
            self.problems.report(decoded)
            return None
        size, digest, orientation, transparent, profile = decoded
        if orientation != 1:
            self.turned.append(path)
        if transparent:
            self.transparent.append(path)
        if profile is not None:
            self.profiles[path] = profile
        if digest in self.digests:
            other_split, other = self.digests[digest]
            self.problems.report(
                f"Images {str(other)!r} ({other_split}) and {str(path)!r} ({split}) have identical pixels; a duplicate "
                "in one split weighs twice, across splits it leaks the answer."
            )
        else:
            self.digests[digest] = (split, path)
        return size

    def count(self, split: str, name: str, instances: int) -> None:
        entry = self.report.counts.setdefault(split, {}).setdefault(name, [0, 0])
        entry[0] += 1
        entry[1] += instances


def _splits(root: Path, layout: str, validation_fraction: float, seed: int) -> list[tuple[str, Any]]:
    """(split, source) of the splits to check: train, validation and the test split when the data has one; the source
    is the split's name for the box layouts, its `FolderSplit` for the folder layouts.

    Raises:
        DataError: A folder layout's validation split cannot be drawn (fewer than two images).
    """
    if layout in DETECTION_LAYOUTS:
        return [("train", "train"), ("validation", "validation"), *([("test", "test")] if has_test_split(root, layout) else [])]
    splits = folder_splits(root, layout, validation_fraction, seed)
    has_test = splits["test"] is not splits["validation"]
    return [(split, splits[split]) for split in ("train", "validation", *(["test"] if has_test else []))]


@data_facts_kept()  # the masks' kind is asked by the classes, the counts, the notes: read once per check
def check_data(
    root: Path | str,
    task: str | None = None,
    layout: str = "auto",
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = SPLIT_SEED,
    voc_origin: int | str = "auto",
) -> DataReport:
    """Checks the data in `root` and reports every problem and the counts per class and split.

    Args:
        root: The data folder.
        task: `classification`, `segmentation`, `detection` or `multitask`; found from the folder when None (a box
            layout, then segmentation folders, then image folders).
        layout: For detection: `auto`, `coco`, `yolo` or `voc`.
        validation_fraction: Data without a validation split of its own: the fraction of its training images drawn
            for validation, as training's `data.validation_fraction` draws it.
        seed: The seed of that draw, training's `data.split_seed`.
        voc_origin: VOC data: what the boxes count from, training's `data.voc_origin` (`auto`, 1 or 0).

    Raises:
        DataError: `root` does not exist or is in no layout (the message lists what each expects).
        ConfigError: An unknown task or layout, or `voc_origin`.
    """
    check_voc_origin(voc_origin)
    root = Path(root)
    task, layout = _task_of(root, task, layout)
    report = DataReport(root, task, layout)
    checker = _Checker(report, validation_fraction, seed, voc_origin)
    drawn_by = (
        f"data.validation_fraction={validation_fraction:g}, data.split_seed={seed}; check-data takes "
        "validation_fraction=... split_seed=... as training sets them"
    )
    names = checker.problems.guard(_class_names, root, layout, checker.problems)
    outlines = task == "segmentation" and layout in OUTLINE_LAYOUTS  # masks drawn from the outlines
    if names is not None:
        report.class_names = ["background", *names] if outlines else list(names)
        alike = _names_alike(report.class_names)
        if alike is not None:
            report.notes.append(alike)
        if layout in DETECTION_LAYOUTS and checker.problems.guard(has_validation_split, root, layout) is False:
            report.notes.append(
                f"{str(root)!r} has no validation split of its own: data.validation_fraction of its training images are "
                f"drawn at random for validation, fixed by data.split_seed ({drawn_by})."
            )
        report.notes += _yolo_notes(root) if layout == "yolo" else _unlisted_voc_files(root, layout, checker.problems)
        if task == "multitask" and layout not in OUTLINE_LAYOUTS:
            checker.problems.report(
                f"task=multitask draws its masks from COCO or YOLO outlines; the {layout} data has boxes only."
            )
        elif task == "multitask":
            report.notes.append(
                "task=multitask draws each image's mask from its objects' outlines (COCO polygons or RLE, YOLO "
                "segmentation lines 'class x1 y1 x2 y2 ...') as task=segmentation does: class index + 1 in annotation "
                "order, 0 the background, 255 crowd regions (a YOLO segmentation line's box is its outline's extent)."
            )
        splits = checker.problems.guard(_splits, root, layout, validation_fraction, seed) or []
        drawn = [source for split, source in splits if split == "validation" and isinstance(source, FolderSplit) and source.only]
        if drawn:
            where, missing = (
                (drawn[0].listed, "validation list (val.txt)")
                if drawn[0].listed is not None
                else (drawn[0].folder, "validation folder (val, valid, validation)")
            )
            report.notes.append(
                f"{str(where)!r} has no {missing}: {len(drawn[0].only or ())} of its images are drawn at random for "
                f"validation ({drawn_by})."
            )
        report.notes += _voc_notes(root, layout, checker.problems)
        if task == "segmentation":
            unread = unread_outlines_notice(root, layout)
            report.notes += [unread] if unread is not None else []
        for split, source in splits:
            report.counts[split] = {}
            check = _check_outlines if outlines else SPLIT_CHECKS.get(layout, _check_boxes)
            check(checker, root, layout, split, source)
        for split, per_class in checker.ignored.items():
            report.notes.append(_ignored_notice(layout, split, per_class, masks=outlines))
        for name in report.class_names[1:] if task == "segmentation" else report.class_names:
            if name not in report.counts.get("train", {}):
                ignored = checker.ignored.get("train", Counter())[name]
                only_ignored = f": it has only {_ignored_words(layout, ignored)} there, which training ignores" if ignored else ""
                checker.problems.report(f"Class {name!r} has no example in the train split{only_ignored}.")
    skipped = _files_not_read(root, layout)
    if skipped:
        kinds = ", ".join(
            f"{suffix or '(no extension)'} ({count})"
            for suffix, count in sorted(Counter(p.suffix.lower() for p in skipped).items())
        )
        report.notes.append(
            f"{len(skipped)} file{'s' if len(skipped) > 1 else ''} in the image folders {'are' if len(skipped) > 1 else 'is'} "
            f"no image torchbricks reads and {'are' if len(skipped) > 1 else 'is'} left out ({str(skipped[0])!r}"
            f"{', ...' if len(skipped) > 1 else ''}): {kinds}. Images read: {', '.join(IMAGE_EXTENSIONS)}; convert "
            "others (HEIC photographs, for one) to JPEG or PNG."
        )
    report.notes += image_notes(checker.turned, checker.transparent, checker.profiles)  # as training says them
    report.problems = checker.problems.messages
    return report


IGNORED_OBJECTS = {"voc": ("difficult object", "difficult objects"), "coco": ("crowd region", "crowd regions")}
"""Layout -> what its objects that training and the mAP ignore (`BoxObject.ignored`) are called, one and several."""


def _ignored_words(layout: str, count: int) -> str:
    one, several = IGNORED_OBJECTS.get(layout, ("ignored object", "ignored objects"))
    return f"{count} {one if count == 1 else several}"


def _ignored_notice(layout: str, split: str, per_class: Counter[str], masks: bool = False) -> str:
    """What `check-data` says of the objects of a split that training ignores: how many, of which classes (`masks`:
    of segmentation masks drawn from the outlines, where they are drawn as ignored pixels)."""
    count = sum(per_class.values())
    classes = ", ".join(f"{name}: {number}" for name, number in sorted(per_class.items()))
    marked = "<difficult>1</difficult>" if layout == "voc" else "iscrowd: 1"
    if masks:
        return (
            f"{_ignored_words(layout, count)} ({marked}) of the {split!r} split ({classes}) {'is' if count == 1 else 'are'} "
            f"drawn as {IGNORE_INDEX} (ignored) in the masks, under the objects drawn over them: a crowd region outlines "
            "a group, background between its members, so its pixels are neither trained on nor measured."
        )
    return (
        f"{_ignored_words(layout, count)} ({marked}) of the {split!r} split ({classes}) {'is' if count == 1 else 'are'} "
        "kept out of training and of the mAP's ground truths (a detection on one is neither right nor a false "
        "positive) and not counted as instances above."
    )


def _voc_notes(root: Path, layout: str, problems: DataProblems) -> list[str]:
    """What `check-data` says of segmentation data in Pascal VOC's layout: VOC's classes read without a labelmap,
    listed images without a mask, masks in no list (training reads the lists)."""
    if not is_voc_layout(root, layout):
        return []
    voc = problems.guard(read_voc_segmentation, root)
    unlabelled = voc.unlabelled_notice() if voc is not None else None
    notes = ([voc_class_names_notice(root)] if reads_voc_classes(root) else []) + ([unlabelled] if unlabelled else [])
    if voc is not None and any(path.is_file() for path, _ in voc.lists.values()):  # lists, not the masks as a pool
        listed = {stem for _, stems in voc.lists.values() for stem in stems}
        masks = visible_files(voc.masks, (".png",), recursive=True)
        unlisted = [path for path in masks if path.relative_to(voc.masks).with_suffix("").as_posix() not in listed]
        if unlisted:
            many = len(unlisted) > 1
            notes.append(
                f"{len(unlisted)} mask{'s' if many else ''} of {str(voc.masks)!r} ({unlisted[0].name!r}"
                f"{', ...' if many else ''}) {'are' if many else 'is'} in no split list of "
                f"{str(root / 'ImageSets' / 'Segmentation')!r} and {'are' if many else 'is'} not read: add "
                f"{'their stems' if many else 'its stem'} to train.txt (or val.txt) to train on them."
            )
    return notes


LABEL_SUFFIXES = (".txt", ".xml", ".json", ".yaml", ".yml", ".names", ".data", ".cache")
"""Files the box layouts keep beside their images (labels, lists, settings, Ultralytics' label caches): not images,
but not left out either."""


def _files_not_read(root: Path, layout: str) -> list[Path]:
    """The visible files of a layout's image folders (class folders, `images/`; YOLO's split folders, VOC's
    `JPEGImages` or its folder of images and XML files) that are no image the readers list, nor a label file beside
    one; none for COCO, whose files list their images."""
    if not root.is_dir():
        return []
    if layout in ("yolo", "voc"):
        if layout == "yolo":
            sources = DataProblems(collect=True).guard(read_yolo_layout, root)
            folders = [path for paths in (sources.splits.values() if sources else []) for path in paths if path.is_dir()]
        else:
            folders = [root / "JPEGImages" if (root / "JPEGImages").is_dir() else root]
        return sorted(
            {
                path
                for folder in folders
                for path in all_visible_files(folder)
                if path.suffix.lower() not in (*IMAGE_EXTENSIONS, *LABEL_SUFFIXES) and path.is_file()
            }
        )
    if layout not in FOLDER_LAYOUTS:
        return []
    if layout == "image_folder":
        splits = [root, *(root / name for name in SPLIT_FOLDERS)]
        folders = [
            path for split in splits if split.is_dir() for path in split.iterdir() if path.is_dir() and not is_hidden(path.name)
        ]
    else:
        folders = [split / "images" for split in (root, *(root / name for name in SPLIT_FOLDERS))]
        folders += [segmentation_folders(root)[0]] if is_voc_layout(root, layout) else []
    files = (
        all_visible_files(folder) if layout == "image_folder" else (path for path in folder.iterdir() if not is_hidden(path.name))
        for folder in folders
        if folder.is_dir()
    )  # a class folder's subfolders are read (cat/2019/*.jpg), a segmentation images/ folder's are an error
    return sorted({path for paths in files for path in paths if path.suffix.lower() not in IMAGE_EXTENSIONS and path.is_file()})


def _yolo_notes(root: Path) -> list[str]:
    """Where `data.yaml` points outside the data folder, and the label files of no image read."""
    layout = read_yolo_layout(root)
    notes = []
    sources = [source for sources in layout.splits.values() for source in sources if source.exists()]
    outside = sorted({str(source) for source in sources if not source.resolve().is_relative_to(root.resolve())})
    if outside:
        settings = yolo_settings_file(root)
        named = settings.name if settings is not None else "data.yaml"
        notes.append(f"{named} points outside {str(root)!r}; images are read from {outside}.")
    unread = unread_label_files(layout)
    if unread:
        many = len(unread) > 1
        notes.append(
            f"{len(unread)} label file{'s' if many else ''} ({str(unread[0])!r}{', ...' if many else ''}) "
            f"{'have' if many else 'has'} no image of the same name and {'are' if many else 'is'} not read."
        )
    return notes


def _unlisted_voc_files(root: Path, layout: str, problems: DataProblems) -> list[str]:
    """The note on the XML files of `Annotations` that no split list of `ImageSets/Main` names (added after the lists
    were written): training reads the lists, so these are not read. None for another layout."""
    if layout != "voc":
        return []
    splits = problems.guard(read_voc_splits, root)
    if splits is None or splits.annotations is None or not split_lists(root / "ImageSets" / "Main"):
        return []
    listed = {path for paths in splits.files.values() for path in paths}
    unlisted = [path for path in visible_files(splits.annotations, (".xml",), recursive=True) if path not in listed]
    if not unlisted:
        return []
    many = len(unlisted) > 1
    return [
        f"{len(unlisted)} XML file{'s' if many else ''} of {str(splits.annotations)!r} ({unlisted[0].name!r}"
        f"{', ...' if many else ''}) {'are' if many else 'is'} in no split list of {str(root / 'ImageSets' / 'Main')!r} "
        f"and {'are' if many else 'is'} not read: add {'their ids' if many else 'its id'} to train.txt (or val.txt) "
        "to train on them."
    ]


def _class_names(root: Path, layout: str, problems: DataProblems) -> list[str]:
    if layout == "image_folder":
        return training_class_names(training_folder(root, layout))
    if layout == "segmentation_folder":
        return segmentation_class_names(root)
    if layout == "voc":  # names from the XML files that parse; each one that does not is a problem of its own
        return voc_class_names(root, problems=problems)
    return detection_class_names(root, layout)


def _names_alike(names: list[str]) -> str | None:
    """A note on class names written alike, or None: the same name twice (two COCO categories named `cat`), or names
    equal but for their case or the spaces around them (`Cat` and `cat`: one class written two ways?).

    Example:
        >>> _names_alike(["cat", "dog", "cat"])[:44]
        "Classes 0 and 2 are both named 'cat': each i"
        >>> _names_alike(["Cat", "dog", "cat"])[:52]
        "Classes 'Cat' and 'cat' (0 and 2) differ only in cas"
    """
    by_folded: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        by_folded.setdefault(name.strip().casefold(), []).append(index)
    found = []
    for indices in (group for group in by_folded.values() if len(group) > 1):
        group = [names[index] for index in indices]
        numbers = " and ".join(str(index) for index in indices)
        if len(set(group)) == 1:
            found.append(f"Classes {numbers} are {'both' if len(group) == 2 else 'all'} named {group[0]!r}")
            continue
        ways = [
            *(["case"] if len({name.strip() for name in group}) > 1 else []),
            *(["the spaces around them"] if len({name.casefold() for name in group}) > 1 else []),
        ]
        same = "are the same name or " if len(set(group)) < len(group) else ""
        shown = " and ".join(repr(name) for name in group)
        found.append(f"Classes {shown} ({numbers}) {same}differ only in {' and '.join(ways)}")
    if not found:
        return None
    return (
        f"{'; '.join(found)}: each is a class of its own, trained and reported apart, and the per-class results and "
        "predictions name them alike. If they are one class, label it with one name; if two, give each a name of its own."
    )


def _check_image_folder(checker: _Checker, root: Path, layout: str, split: str, source: FolderSplit) -> None:
    dataset = ImageFolderDataset(source.folder, checker.report.class_names, problems=checker.problems, only=source.only)
    checker.report.images[split] = 0
    for path, label in dataset.samples:
        if checker.image(split, path) is not None:
            checker.report.images[split] += 1
            checker.count(split, checker.report.class_names[label], 1)


def _check_segmentation_folder(checker: _Checker, root: Path, layout: str, split: str, source: FolderSplit) -> None:
    names = checker.report.class_names
    masks = segmentation_folders(root)[1]
    colours = mask_colours(root)
    binary = colours is None and masks_are_binary_255(masks, len(names))
    if split == "train":
        _check_training_masks(checker, root, layout, binary)
    stems = {path.stem for path in image_files(source.images)}
    # VOC's lists name the images of a split: a mask of no listed image is not the split's, nor an orphan
    orphans = [path for path in visible_files(source.masks, (".png",)) if path.stem not in stems] if source.stems is None else []
    if orphans:
        many = len(orphans) > 1
        note = (
            f"{len(orphans)} mask{'s' if many else ''} in {str(source.masks)!r} ({orphans[0].name!r}"
            f"{', ...' if many else ''}) {'have' if many else 'has'} no image of the same name and "
            f"{'are' if many else 'is'} not read (nor counted in the class weights)."
        )
        if note not in checker.report.notes:  # a drawn split shares its folder with the training split
            checker.report.notes.append(note)
    dataset = SegmentationFolderDataset(
        source.folder,
        len(names),
        problems=checker.problems,
        only=source.only,
        foreground_255=binary,
        colours=colours,
        images=source.images,
        masks=source.masks,
        stems=source.stems,
        listed=source.listed,
        class_names=names,
    )
    checker.report.images[split] = 0
    for image_path, mask_path in dataset.samples:
        size = checker.image(split, image_path)
        decoded = decode_image(mask_path)
        if isinstance(decoded, str):
            checker.problems.report(decoded.replace("Image ", "Mask ", 1))
        if size is None or isinstance(decoded, str):
            continue
        mask = checker.problems.guard(read_mask, mask_path, binary, colours)
        if mask is None:
            continue
        problem = mask_value_problem(mask, len(names), mask_path, names)
        if problem is not None:
            checker.problems.report(problem)
            continue
        checker.report.images[split] += 1
        _count_mask(checker, split, mask, mask_path)
    totals = checker.ignored_pixels.get(split)
    if totals is not None and totals[0] == totals[1] > 0:
        checker.problems.report(_unlabelled_split_problem(split, checker.report.images[split], totals[1]))
    elif totals is not None and totals[0]:
        checker.report.notes.append(_ignored_pixels_notice(split, *totals))
    if split == "train":
        _note_background_line(checker, root)


def _check_training_masks(checker: _Checker, root: Path, layout: str, binary: bool) -> None:
    """What is checked once for a segmentation data set, with its training split: binary 0/255 masks (noted), splits
    whose masks are of two kinds, and palettes that disagree between masks (`palette_disagreement`)."""
    names = checker.report.class_names
    if binary:
        checker.report.notes.append(binary_masks_notice(segmentation_folders(root)[1], names))
    disagree = binary_masks_disagree(root, len(names))
    if disagree is not None:
        checker.problems.report(disagree)
    if mask_colours(root) is None and not binary:
        splits = folder_splits(root, layout)
        every = dict.fromkeys(path for name in ("train", "validation", "test") for path in masks_of_split(splits[name]))
        renumbered = palette_disagreement(list(every), len(names), root)
        if renumbered is not None:
            checker.problems.report(renumbered)


def _note_background_line(checker: _Checker, root: Path) -> None:
    """The note of a `classes.txt` that begins with no background name (`background_line_notice`), once the training
    masks are counted."""
    names = checker.report.class_names
    found = {index for index, name in enumerate(names) if name in checker.report.counts.get("train", {})}
    shifted = background_line_notice(root, names, found)
    numbered = numbered_class_list_notice(root)
    checker.report.notes.extend(note for note in (numbered, shifted) if note is not None)


def _count_mask(checker: _Checker, split: str, mask: np.ndarray, path: Path) -> None:
    """Counts the pixels of each class of a mask read as training reads it, and those it ignores (255)."""
    values, pixels = np.unique(mask[mask != IGNORE_INDEX], return_counts=True)
    for value, count in zip(values.tolist(), pixels.tolist(), strict=True):
        checker.count(split, checker.report.class_names[value], count)
    totals = checker.ignored_pixels.setdefault(split, [0, 0, []])
    ignored = int((mask == IGNORE_INDEX).sum())
    totals[0] += ignored
    totals[1] += mask.size
    if ignored and not (values > 0).any():  # nothing but background and 255: objects drawn as 255 (a 0/255 mask?)
        totals[2].append(path)


def _unlabelled_split_problem(split: str, masks: int, pixels: int) -> str:
    """What `check-data` says of a split whose every mask pixel is 255: nothing there is trained on or measured."""
    uses = {
        "train": "nothing is trained on it",
        "validation": "its mean IoU and loss are undefined, so the best checkpoint and early stopping follow nothing",
        "test": "its mean IoU and loss are undefined",
    }
    return (
        f"Every mask pixel of the {split!r} split ({pixels} pixels of {masks} masks) is {IGNORE_INDEX} (ignored): "
        f"{uses.get(split, 'nothing in it is measured')}. Save its masks with class indices, {IGNORE_INDEX} only where "
        "a pixel's class is unknown."
    )


def _ignored_pixels_notice(split: str, ignored: int, pixels: int, only_ignored: list[Path]) -> str:
    """What `check-data` says of the mask pixels of a split that are 255 (ignored by the loss and the mean IoU), and of
    the masks that hold no class but the background and 255 (objects drawn as 255 among masks of class indices)."""
    notice = (
        f"{ignored} mask pixels of the {split!r} split ({ignored / max(pixels, 1):.1%}) are {IGNORE_INDEX}: ignored, "
        "neither trained on nor measured, and not counted above."
    )
    if only_ignored:
        many = len(only_ignored) > 1
        notice += (
            f" {len(only_ignored)} mask{'s' if many else ''} ({str(only_ignored[0])!r}{', ...' if many else ''}) "
            f"{'hold' if many else 'holds'} no class but the background and {IGNORE_INDEX}: if {IGNORE_INDEX} is an "
            "object there (a binary 0/255 mask among masks of class indices), it is never learned; save it with "
            "the class index."
        )
    return notice


def _check_boxes(checker: _Checker, root: Path, layout: str, split: str, source: str) -> None:
    try:
        dataset: BoxDataset = read_detection_split(
            root,
            layout,
            source,
            checker.report.class_names,
            problems=checker.problems,
            validation_fraction=checker.validation_fraction,
            seed=checker.seed,
            voc_origin=checker.voc_origin,
        )
    except DataError as error:  # a whole file unreadable (COCO JSON, categories differing from train.json's)
        checker.problems.report(str(error))
        return
    if dataset.reading_notice is not None and dataset.reading_notice not in checker.report.notes:
        checker.report.notes.append(dataset.reading_notice)
    duplicates = dataset.duplicates_notice(split)
    if duplicates is not None:
        checker.report.notes.append(duplicates)
    masks = multitask_masks_notice(dataset, split) if checker.report.task == "multitask" else None
    if masks is not None:
        checker.report.notes.append(masks)
    for _, record in _readable_records(checker, split, dataset):
        # what training learns from: an ignored object (VOC difficult, COCO crowd) is neither trained on nor a ground
        # truth of the mAP, so it is told apart below rather than counted as an instance of its class
        per_class: Counter[str] = Counter(checker.report.class_names[item.label] for item in record.objects if not item.ignored)
        for name, instances in per_class.items():
            checker.count(split, name, instances)
        for item in record.objects:
            if item.ignored:
                checker.ignored.setdefault(split, Counter())[checker.report.class_names[item.label]] += 1


def _readable_records(checker: _Checker, split: str, dataset: BoxDataset) -> Iterator[tuple[int, BoxImage]]:
    """The split's records (with their index) whose image reads and has the size its annotations state, counted in
    `checker.report.images`; the others are reported as problems."""
    checker.report.images[split] = 0
    for index, record in enumerate(dataset.records):
        size = checker.image(split, record.path)
        if size is None:
            continue
        problem = image_size_problem(record, size)
        if problem is not None:
            checker.problems.report(problem)
            continue
        checker.report.images[split] += 1
        yield index, record


def _check_outlines(checker: _Checker, root: Path, layout: str, split: str, source: str) -> None:
    """`task=segmentation` on COCO or YOLO outlines: the split read as training reads it, each image decoded and its
    mask drawn (`BoxDataset` with `segmentation`), its pixels counted per class (255 left out, as for mask folders);
    a split without any outline is a problem, objects without one a note."""
    try:
        dataset: BoxDataset = read_detection_split(
            root,
            layout,
            source,
            checker.report.class_names[1:],
            problems=checker.problems,
            validation_fraction=checker.validation_fraction,
            seed=checker.seed,
            segmentation=True,
        )
        check_outlines(dataset, root, split)
    except DataError as error:  # a whole file unreadable, or box data without outlines
        checker.problems.report(str(error))
        return
    notices = [dataset.reading_notice, dataset.duplicates_notice(split), unoutlined_notice(dataset, split)]
    checker.report.notes += [notice for notice in notices if notice is not None and notice not in checker.report.notes]
    for index, record in _readable_records(checker, split, dataset):
        _count_mask(checker, split, dataset.semantic_mask(index), record.path)
        for item in record.objects:
            if item.ignored:
                checker.ignored.setdefault(split, Counter())[checker.report.class_names[item.label + 1]] += 1
    totals = checker.ignored_pixels.get(split)
    if totals is not None and totals[0] == totals[1] > 0:
        checker.problems.report(_unlabelled_split_problem(split, checker.report.images[split], totals[1]))


SPLIT_CHECKS: dict[str, Callable[[_Checker, Path, str, str, Any], None]] = {
    "image_folder": _check_image_folder,
    "segmentation_folder": _check_segmentation_folder,
}
"""Layout -> the check of one split; the box layouts share `_check_boxes`."""
