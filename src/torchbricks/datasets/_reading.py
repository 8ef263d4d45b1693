"""The plumbing every reader of image data shares: the data errors, where problems go, decoding an image file and
running a `torchvision.transforms.v2` transform over a sample.

Every image is read upright, as viewers, browsers, labelling tools and Ultralytics show it: a photograph whose EXIF
`Orientation` says the camera was turned (phones store them sideways and say so) is turned back when decoded, and its
size is the upright size (`torchbricks._pictures`). Boxes, masks and predictions therefore refer to the picture a person
saw when labelling it.

Hidden files are not data: every listing leaves them out (`visible_files`, `is_hidden`, from
`torchbricks._image_files`, which says which files are hidden).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image

from torchbricks._data_facts import KeptWithin
from torchbricks._extras import require
from torchbricks._image_files import IMAGE_EXTENSIONS, FolderListings, is_hidden, visible_files
from torchbricks._pictures import (
    EXIF_ORIENTATION,
    ImageHeaders,
    exif_orientation,
    open_image,
    read_rgb_as_shown,
    rgb_as_shown,
    too_large,
    upright,
    upright_size,
)
from torchbricks.errors import DataError

__all__ = [
    "BOX_TOLERANCE",
    "EXIF_ORIENTATION",
    "IMAGE_EXTENSIONS",
    "SPLIT_SEED",
    "SWAPPED_BY_EXIF",
    "VALIDATION_FRACTION",
    "DataError",
    "DataProblems",
    "Transform",
    "apply_transform",
    "check_data_folder",
    "class_images",
    "each_file_read_once",
    "exif_orientation",
    "folder_entries",
    "image_file_size",
    "image_files",
    "image_notes",
    "is_hidden",
    "listed_files",
    "load_rgb",
    "open_image",
    "problems_or_raise",
    "random_split",
    "read_name_lines",
    "read_once",
    "read_user_text",
    "reading_once",
    "rgb_as_shown",
    "start_up_headers",
    "start_up_listings",
    "stripped_class_names",
    "to_image",
    "torchvision_parts",
    "turned_by_exif",
    "upright",
    "upright_size",
    "visible_files",
]

VALIDATION_FRACTION = 0.2
"""Fraction of the labelled files that go to validation when the data has no split of its own (VOC or YOLO files
beside their images, as labelImg saves them; a YOLO export without splits, as Label Studio writes it)."""
SPLIT_SEED = 0
"""Seed of that split (independent of the training seed, so runs with other seeds see the same split)."""
BOX_TOLERANCE = 1.0
"""Pixels a box may reach past its image's border (rounding in annotation tools) before it is an error."""

Transform = Callable[[dict[str, Any]], dict[str, Any]]
_T = TypeVar("_T")


def check_data_folder(root: Path) -> None:
    """Raises `DataError` unless `root` (a `data.root`) is a folder: one that does not exist is named with its close
    sibling, a file (an image, a COCO file: the data inside the folder) is named with the folder holding it.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / "train.json").write_text("{}")
        2
        >>> check_data_folder(folder / "train.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        torchbricks.errors.DataError: The data folder '.../train.json' is a file, not a folder: data.root is the folder ...
    """
    if root.is_dir():
        return
    if root.exists():
        raise DataError(
            f"The data folder {str(root)!r} is a file, not a folder: data.root is the folder holding the data (this "
            f"file is in {str(root.parent)!r})."
        )
    from torchbricks.errors import did_you_mean

    siblings = [path.name for path in root.parent.iterdir() if path.is_dir()] if root.parent.is_dir() else []
    hint = did_you_mean(root.name, siblings)
    where = "" if root.parent.is_dir() or root.parent == root else f" (nor does {str(root.parent)!r})"
    raise DataError(f"The data folder {str(root)!r} does not exist{where}.{hint}")


class DataProblems:
    """Where the readers report what is wrong with the data: raised at once as a `DataError` (the default, for
    training), or collected in `messages` while the reader skips what the problem concerns (for checking).

    Example:
        >>> problems = DataProblems(collect=True)
        >>> problems.report("Image 'a.png' does not exist.")
        >>> problems.messages
        ["Image 'a.png' does not exist."]
    """

    def __init__(self, collect: bool = False) -> None:
        self.collect = collect
        self.messages: list[str] = []
        self._reported: set[str] = set()

    def report(self, message: str) -> None:
        """Raises `DataError(message)`, or records it when collecting (once: a file read by two readers, the class
        names' and its split's, is one problem).

        Raises:
            DataError: Not collecting.
        """
        if not self.collect:
            raise DataError(message)
        if message not in self._reported:
            self._reported.add(message)
            self.messages.append(message)

    def guard(self, read: Callable[..., _T], *arguments: Any) -> _T | None:
        """`read(*arguments)`, or None after reporting the `DataError` it raised."""
        try:
            return read(*arguments)
        except DataError as error:
            self.report(str(error))
            return None


def torchvision_parts() -> tuple[Any, Any]:
    tv_tensors = require("torchvision.tv_tensors", "vision")
    functional = require("torchvision.transforms.v2.functional", "vision")
    return tv_tensors, functional


def problems_or_raise(problems: DataProblems | None) -> DataProblems:
    return problems if problems is not None else DataProblems()


def random_split(items: list[_T], validation_fraction: float, seed: int, where: Path) -> tuple[list[_T], list[_T]]:
    """(train, validation) of `items` (sorted within each): `validation_fraction` of them, at least one and leaving at
    least one, drawn at random with `seed`.

    Example:
        >>> random_split(list(range(10)), 0.2, 0, Path("data"))
        ([0, 1, 2, 3, 4, 5, 6, 9], [7, 8])

    Raises:
        DataError: The fraction is not between 0 and 1, or fewer than two items to split (naming `where`).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise DataError(f"validation_fraction must be between 0 and 1 to split {str(where)!r}, got {validation_fraction}.")
    if len(items) < 2:
        raise DataError(f"{str(where)!r} has {len(items)} labelled file(s); a split into train and validation needs two.")
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    count = min(max(1, round(validation_fraction * len(shuffled))), len(shuffled) - 1)
    return sorted(shuffled[count:]), sorted(shuffled[:count])  # type: ignore[type-var]  # paths and numbers sort


_FILES_READ = KeptWithin("torchbricks_files_read")
"""Within `each_file_read_once`: (how, path) -> what `read_once` read."""

each_file_read_once = _FILES_READ.scope
"""Within it, each file `read_once` reads (the annotation files, list files, folder entries and split-list folders
of a start-up, which the class names, the layout's checks and each split's reader all read), each folder listed
(`start_up_listings`) and each image header (`start_up_headers`) is read once and kept until it ends; a read that
raises is not kept, so each reader raises as it would alone. Made for one start-up: a file changed within it is not
seen. Nested, it keeps the outer one's reads. Also a decorator. `run_main_job` holds one from the config's resolvers
to the run's files written (the data module, its checks and the resolved config read the same files), and each
`DetectionDataModule` construction holds one.

Outside one (a notebook calling `class_names_of` or `typical_image_size` itself) each call reads the files again, on
purpose: nothing tells when a start-up ends there, and files fixed between two calls must be seen (as the data facts
of `torchbricks._data_facts`); a call reads what it needs, and only a job's start-up asks dozens of times."""


def read_once(how: str, path: Path, read: Callable[[Path], _T]) -> _T:
    """`read(path)`, kept under `how` within `each_file_read_once` (the kept value is shared: never change it)."""
    return _FILES_READ.value((how, path), lambda: read(path))


def reading_once() -> bool:
    """Whether `each_file_read_once` is under way (a reader that hands out a copy of what it keeps need not copy
    outside it)."""
    return _FILES_READ.within()


def start_up_listings() -> FolderListings:
    """The `FolderListings` of the start-up under way (`each_file_read_once`: the config's resolvers, the data module
    and its checks list each folder once), a new one outside it."""
    return _FILES_READ.value(("listings",), FolderListings)


def start_up_headers() -> ImageHeaders:
    """The `ImageHeaders` of the start-up under way (`each_file_read_once`: the size from the data, the readers'
    sizes and `check_files` open each image once), a new one outside it."""
    return _FILES_READ.value(("headers",), ImageHeaders)


def listed_files(folder: Path, suffixes: tuple[str, ...] = IMAGE_EXTENSIONS, recursive: bool = False) -> list[Path]:
    """`visible_files(folder, suffixes, recursive)`, within `each_file_read_once` from the start-up's listings
    (`start_up_listings`: the size from the data and each split's reader list a split's folder)."""
    if reading_once():
        return start_up_listings().files(folder, suffixes, recursive)
    return visible_files(folder, suffixes, recursive)


def folder_entries(folder: Path) -> list[Path]:
    """`folder.iterdir()` as a list, the folder listed once within `each_file_read_once` (the class names, the
    split folders' checks and each split's reader look at the training folder's entries).

    Raises:
        OSError: As `Path.iterdir`.
    """
    return list(read_once("entries", folder, lambda folder: list(folder.iterdir())))


def read_user_text(path: Path) -> str:
    """A text file a person or a tool wrote (class lists, YOLO labels, COCO JSON), as UTF-8 whatever the locale, a
    byte-order mark left out (Windows Notepad and some exporters begin UTF-8 files with one; it would otherwise stick
    to the first class name or number).

    Raises:
        DataError: The file is not UTF-8 text.
    """
    try:
        return read_once("text", path, lambda path: path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as error:
        raise DataError(f"The file {str(path)!r} is not UTF-8 text: {error}. Save it as UTF-8.") from error


def read_name_lines(path: Path, notes: list[str] | None = None) -> list[str]:
    """The names of a file of one name a line whose line number is the index (`classes.txt`, Darknet's `obj.names`),
    the space around each left out (`stripped_class_names`), as are the empty lines after the last name. A file whose
    every line is its own index, from 0, and a name (`0 red`, as some exporters write it) names the classes after the
    numbers, and says so in `notes`; one numbered otherwise is read as written.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "classes.txt"
        >>> _ = path.write_text("0 red blood cell\\n1 white\\n")
        >>> read_name_lines(path)
        ['red blood cell', 'white']

    Raises:
        DataError: The file is not UTF-8 text, an empty line comes before a name (the names after it would be
            numbered one lower than the label files, and Darknet, number them: another class each), or two lines
            differ only in the spaces around them (`stripped_class_names`).
    """
    lines = read_user_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    empty = next((number for number, line in enumerate(lines, start=1) if not line.strip()), None)
    if empty is not None:
        raise DataError(
            f"{str(path)!r} line {empty} is empty: each line names the class of its index (line 1 is class 0), so "
            f"{lines[empty].strip()!r} on line {empty + 1} would be class {empty} for the labels but class {empty - 1} "
            "once the empty line is skipped. Remove the empty line, or name the class it stands for."
        )
    numbered = [_NUMBERED_LINE.fullmatch(line) for line in lines]
    if lines and all(match is not None and int(match[1]) == index for index, match in enumerate(numbered)):
        names = stripped_class_names([match[2] for match in numbered if match is not None], repr(str(path)), "line", 1)
        if notes is not None:
            notes.append(
                f"{str(path)!r} begins each line with its class index ({lines[0].strip()!r}): the classes are read "
                f"without the numbers, {names}."
            )
        return names
    return stripped_class_names(lines, repr(str(path)), "line", 1)


_NUMBERED_LINE = re.compile(r"\s*(\d+)[ \t]+(\S.*)")
"""A line of a class list that begins with a class index (`0 red`): the index, and the name as written after it."""


def stripped_class_names(
    names: Sequence[str], source: str, entry: str = "class", first: int = 0, ids: Sequence[int] | None = None
) -> list[str]:
    """The class names `names` (in index order) without the spaces around them, as every reader reads a class name
    (VOC's `<name>`, a labelmap's line, a YOLO `names` entry), so that `cat ` in one file is the `cat` of another.
    Names equal as written stay (two classes named alike: `check-data` notes them).

    Args:
        names: The names as the file writes them.
        source: The file (and the key) the names are read from, for the message: `'data/data.yaml' 'names'`.
        entry: What an index counts in the file (`class`, `line`, `entry`), for the message.
        first: The number of the first entry (1 for lines).
        ids: The number of each entry, when they are not counted from `first` (COCO's category ids).

    Example:
        >>> stripped_class_names([" cat", "dog "], "'classes.txt'")
        ['cat', 'dog']

    Raises:
        DataError: A name is only spaces, or two names differ only in the spaces around them (`cat` and `cat `): one
            class the labels number two ways, or two classes no report, column or drawn label could tell apart.
    """
    stripped = [name.strip() for name in names]
    numbers = list(ids) if ids is not None else [index + first for index in range(len(names))]
    blank = next((index for index, name in enumerate(stripped) if not name), None)
    if blank is not None:
        raise DataError(f"{source} has {entry} {numbers[blank]} {names[blank]!r}, which names no class; expected a class name.")
    seen: dict[str, int] = {}
    for index, name in enumerate(stripped):
        earlier = seen.setdefault(name, index)
        if names[earlier] != names[index]:
            raise DataError(
                f"{source} has {entry} {numbers[earlier]} {names[earlier]!r} and {entry} {numbers[index]} {names[index]!r}: "
                f"the same class name {name!r} but for the spaces around it, as every reader reads a name. If they are "
                "one class, list it once and label it with one index; if two, give each a name of its own."
            )
    return stripped


def image_files(folder: Path) -> list[Path]:
    """The visible image files directly in `folder`, sorted (`visible_files`)."""
    return visible_files(folder)


def class_images(folder: Path) -> list[Path]:
    """The visible image files of a class folder, its subfolders included (`photos/cat/2019/*.jpg`), sorted: as
    torchvision's `ImageFolder` reads a class."""
    return visible_files(folder, recursive=True)


def load_rgb(path: Path) -> Image.Image:
    """The image file as the upright 8-bit RGB picture a viewer shows (`torchbricks._pictures.rgb_as_shown`)."""
    return read_rgb_as_shown(path)


def turned_by_exif(path: Path) -> bool:
    """Whether the file's EXIF orientation turns it by a quarter (orientations 5 to 8 swap its sides)."""
    try:
        with Image.open(path) as picture:
            return exif_orientation(picture) >= 5
    except (OSError, Image.DecompressionBombError):
        return False


SWAPPED_BY_EXIF = (
    " The sides are swapped: the image is read upright, as its EXIF orientation turns it (as viewers and labelling "
    "tools show it), but {what} made on the picture as stored. Save the image upright without the orientation tag, "
    "or {fix} as shown."
)
"""What a size error adds when the image's EXIF orientation swaps its sides (`{what}`, `{fix}`: the labels' words)."""


def image_notes(turned: list[Path], transparent: list[Path], profiles: dict[Path, str]) -> list[str]:
    """What training, evaluation and check-data say of the images they read otherwise than their stored pixels
    suggest: those an EXIF orientation turns (`turned`), those transparent everywhere, read by their colours
    (`transparent`: `torchbricks._pictures.fully_transparent`), and those converted to sRGB from another colour
    profile (`profiles`: each image's profile, `torchbricks._pictures.converted_profile`); one note for each kind
    there is, naming the first image.

    Example:
        >>> image_notes([], [], {Path("iphone.jpg"): "Display P3"})[0][:76]
        "1 image ('iphone.jpg') carries a colour profile other than sRGB (Display P3)"
    """
    notes = []
    if turned:
        notes.append(
            f"{_count_and_first(turned)} {_verb(turned, 'carries', 'carry')} an EXIF orientation and "
            f"{_verb(turned, 'is', 'are')} read turned upright, as viewers, labelling tools (CVAT, Label Studio, "
            "labelImg, Roboflow) and Ultralytics show them: their boxes, masks or classes must be of the turned picture "
            "(a tool that ignores the tag labelled the stored one; the test pictures of a run, predictions.png, show "
            "which)."
        )
    if transparent:
        notes.append(
            f"{_count_and_first(transparent)} {_verb(transparent, 'is', 'are')} transparent everywhere (alpha 0): a "
            "viewer shows nothing, and torchbricks reads the colours under the alpha, as OpenCV and Ultralytics do. Such "
            "a file is almost always an export that wrote an empty alpha channel: save it as RGB (or with its alpha set) "
            "so that what a person sees is what is learned."
        )
    if profiles:
        paths = list(profiles)
        names = ", ".join(sorted(set(profiles.values())))
        notes.append(
            f"{_count_and_first(paths)} {_verb(paths, 'carries', 'carry')} a colour profile other than sRGB ({names}) "
            f"and {_verb(paths, 'is', 'are')} read converted to sRGB, as browsers and viewers show them: the model "
            "learns and predicts those colours, so a program of your own that feeds it images must convert them too "
            "(torchbricks.deploy.read_image does; OpenCV's imread and Pillow's convert('RGB') do not)."
        )
    return notes


def _count_and_first(paths: list[Path]) -> str:
    many = len(paths) > 1
    return f"{len(paths)} image{'s' if many else ''} ({str(paths[0])!r}{', ...' if many else ''})"


def _verb(paths: list[Path], one: str, several: str) -> str:
    return several if len(paths) > 1 else one


def image_file_size(path: Path, headers: ImageHeaders | None = None) -> tuple[int, int]:
    """(width, height) of the upright image, from the file's header (from `headers` when given, or within
    `each_file_read_once` from the start-up's: opened once for every check of a start-up)."""
    if headers is None and reading_once():
        headers = start_up_headers()
    header = None if headers is None else headers.header(path)
    if header is not None:
        return header.size
    try:
        with Image.open(path) as image:
            return upright_size(image)
    except Image.DecompressionBombError as error:
        raise too_large(path, error) from error
    except OSError as error:
        raise DataError(f"Image {str(path)!r} cannot be read: {error}") from error


def to_image(image: Image.Image) -> Any:
    tv_tensors, functional = torchvision_parts()
    return tv_tensors.Image(functional.pil_to_tensor(image))


def apply_transform(transform: Transform | None, sample: dict[str, Any]) -> dict[str, Any]:
    if transform is not None:
        sample = transform(sample)
    image = sample["image"]
    if not image.is_floating_point():
        image = image.float() / 255.0
    sample["image"] = image.as_subclass(torch.Tensor)
    return sample
