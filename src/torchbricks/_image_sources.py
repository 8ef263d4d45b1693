"""The images `torchbricks predict` reads: image files, folders (recursive), glob patterns and videos.

Still images are read with Pillow. Animated GIF and WebP files are read frame by frame with Pillow (no extra
package); `predict` opens each once, when it reaches it, counts its frames and decodes them from that opening
(`collect_image_sources(count_frames=False)`, `ImageSourceDataset.reaches`). Other videos (`VIDEO_EXTENSIONS`) need
torchcodec (`pip install torchcodec`; torchvision has no video reader since 0.24). A video found in a folder or by a
glob that cannot be opened (torchcodec missing, a file it cannot decode) is one unreadable source, skipped and listed
as an unreadable image is; a video given by name stops with an error naming it.
"""

from __future__ import annotations

import glob
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from torchbricks._extras import require
from torchbricks._image_files import IMAGE_EXTENSIONS, visible_files
from torchbricks._pictures import open_image, rgb_for_input, too_large, upright_size
from torchbricks.errors import BrickError, MissingExtraError

__all__ = [
    "ANIMATED_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ImageSource",
    "ImageSourceDataset",
    "OutputNamer",
    "ReadImage",
    "collect_image_sources",
    "frame_count",
    "output_names",
]

ANIMATED_EXTENSIONS = (".gif", ".webp")
"""Files Pillow reads frame by frame (a single-frame file is one image)."""
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
"""Videos read with torchcodec."""
_KNOWN = tuple(sorted({*IMAGE_EXTENSIONS, *ANIMATED_EXTENSIONS, *VIDEO_EXTENSIONS}))


@dataclass(frozen=True)
class ImageSource:
    """One image to predict: a file, or one frame of an animation or video."""

    path: Path
    frame: int | None = None
    unreadable: str | None = None
    """Why it cannot be read, known when it was listed (a video torchcodec cannot open); None otherwise."""
    animation: bool = False
    """An animation whose frames are not counted yet (`collect_image_sources(count_frames=False)`): the
    `ImageSourceDataset` reading it opens it once, when it reaches it, and reads its frames from that opening."""

    @property
    def label(self) -> str:
        """How the outputs name it: the path, with `#<frame>` for a frame."""
        return str(self.path) if self.frame is None else f"{self.path}#{self.frame}"


def collect_image_sources(
    sources: list[str | Path] | tuple[str | Path, ...] | Any, exclude: Path | str | None = None, count_frames: bool = True
) -> list[ImageSource]:
    """The images of `sources`, in order: a file as given, a folder's image and video files (recursive, sorted), a
    glob's matching image and video files (sorted); animations and videos expand to one source per frame (without
    `count_frames`, an animation is one source marked `animation`, not opened here: `ImageSourceDataset` expands it
    as it reaches it, from the one opening it reads its frames from). A video of a
    folder or glob that cannot be opened is one source with the reason (`ImageSource.unreadable`), which
    `ImageSourceDataset` reports as unreadable. Files a folder or glob finds inside the folder `exclude` (the output
    folder of `predict`, whose drawn pictures a second run into a folder of the sources would find) are left out.

    Raises:
        BrickError: A source is neither a file, a folder nor a glob, matches no image or video file, or is a video
            that cannot be decoded.
        MissingExtraError: A video given by name needs torchcodec, which is not installed.
    """
    items: list[ImageSource] = []
    excluded = Path(exclude).resolve() if exclude is not None else None
    for source in sources:
        text = str(source)
        path = Path(text)
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = _outside(visible_files(path, _KNOWN, recursive=True), excluded)
        elif glob.has_magic(text):
            files = sorted(Path(match) for match in glob.glob(text, recursive=True) if Path(match).suffix.lower() in _KNOWN)
            files = _outside([file for file in files if file.is_file()], excluded)
        else:
            raise BrickError(f"Source {text!r} is neither an image, a folder nor a glob pattern (no such file or folder).")
        if not files:
            raise BrickError(f"Source {text!r} matches no image or video file (looked for {', '.join(_KNOWN)}).")
        for file in files:
            items.extend(_frames(file, given=file == path, count_frames=count_frames))
    return items


def _outside(files: list[Path], folder: Path | None) -> list[Path]:
    """The files that do not lie inside `folder` (resolved; all of them when None)."""
    if folder is None:
        return files
    return [file for file in files if not file.resolve().is_relative_to(folder)]


def _frames(path: Path, given: bool = True, count_frames: bool = True) -> list[ImageSource]:
    """The sources of one file: itself, or one per frame of an animation or video. A video that cannot be opened
    raises when the user `given` it by name, else is one source with the reason."""
    suffix = path.suffix.lower()
    if suffix in ANIMATED_EXTENSIONS and not count_frames:
        return [ImageSource(path, animation=True)]
    if suffix in ANIMATED_EXTENSIONS:
        count = frame_count(path)
        return [ImageSource(path)] if count == 1 else [ImageSource(path, frame) for frame in range(count)]
    if suffix in VIDEO_EXTENSIONS:
        try:
            decoder = _video_decoder(path)
        except MissingExtraError as error:
            if given:
                raise
            return [ImageSource(path, unreadable=f"a video: {error}")]
        except (OSError, ValueError, RuntimeError) as error:  # torchcodec's errors for a file it cannot decode
            if given:
                raise BrickError(f"Video {str(path)!r} cannot be decoded: {type(error).__name__}: {error}") from error
            return [ImageSource(path, unreadable=f"a video torchcodec cannot decode: {type(error).__name__}: {error}")]
        return [ImageSource(path, frame) for frame in range(len(decoder))]
    return [ImageSource(path)]


def frame_count(path: Path | str) -> int:
    """The frames `predict` reads from an image file, each an image of its own: Pillow's frames of an animation (GIF,
    WebP: `ANIMATED_EXTENSIONS`), 1 for any other image file (a TIFF's further pages are most often its overviews or
    thumbnail: its first page is the image) and for a file Pillow cannot open (its error comes when it is read).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "blink.gif"
        >>> Image.new("L", (2, 2), 0).save(path, save_all=True, append_images=[Image.new("L", (2, 2), 255)])
        >>> frame_count(path), frame_count(path.with_suffix(".png"))
        (2, 1)
    """
    if Path(path).suffix.lower() not in ANIMATED_EXTENSIONS:
        return 1
    try:
        with open_image(path) as image:
            return int(getattr(image, "n_frames", 1))
    except (OSError, Image.DecompressionBombError):
        return 1  # unreadable: reported, with its reason, when it is read


def _video_decoder(path: Path) -> Any:
    decoders = require(
        "torchcodec.decoders",
        package="torchcodec",
        why=f"Reading video {str(path)!r} needs torchcodec",
        alternative=f"or extract its frames to images; GIF and animated WebP ({', '.join(ANIMATED_EXTENSIONS)}) need no extra",
    )
    return decoders.VideoDecoder(str(path))


def output_names(items: list[ImageSource]) -> list[str]:
    """A unique output name per item: its path relative to the items' common folder, without suffix (with the
    suffix as `_<ext>` when two files differ only by it), and `_frame<n>` for a frame. Paths are taken as given,
    made absolute without following links: a file of a linked folder (`photos/2019 -> /mnt/archive/2019`) is named
    by the link (`2019/b`), as the user sees it, not by where the link points.

    Example:
        >>> output_names([ImageSource(Path("a/x.png")), ImageSource(Path("a/b/y.jpg")), ImageSource(Path("a/x.jpg"))])
        ['x_png', 'b/y', 'x_jpg']
    """
    namer = OutputNamer(items)
    return [namer.name(item) for item in items]


class OutputNamer:
    """The names of `output_names`, given one item at a time: `name` of the items in their order, frames included,
    gives the names `output_names` gives the expanded list. The names depend on the files only, so the items of an
    animation whose frames are not counted yet (`ImageSource.animation`) name its frames alike once they are."""

    def __init__(self, items: list[ImageSource]) -> None:
        import os

        resolved: dict[Path, Path] = {}
        paths = []
        for item in items:
            folder = resolved.get(item.path.parent)
            if folder is None:  # absolute and without '..', links kept: Path.resolve would name a link's target
                folder = resolved[item.path.parent] = Path(os.path.abspath(item.path.parent))
            paths.append(folder / item.path.name)
        common = Path(os.path.commonpath(sorted({str(folder) for folder in resolved.values()}))) if resolved else Path()
        stems = []
        for path in paths:
            relative = PurePosixPath(path.relative_to(common).as_posix())
            stems.append((relative, str(relative.with_suffix(""))))
        counts: dict[str, set[PurePosixPath]] = {}
        for relative, stem in stems:
            counts.setdefault(stem, set()).add(relative)
        self._names = {
            item.path: stem if len(counts[stem]) == 1 else f"{stem}_{relative.suffix.lstrip('.')}"
            for item, (relative, stem) in zip(items, stems, strict=True)
        }
        self._taken: set[str] = set()  # case-folded: x.png and x.PNG must not write one file, on any file system

    def name(self, item: ImageSource) -> str:
        """The next item's name (`item.path` one of the items the namer was made with)."""
        name = self._names[item.path]
        name = name if item.frame is None else f"{name}_frame{item.frame:06d}"
        unique, number = name, 1
        while unique.casefold() in self._taken:
            number += 1
            unique = f"{name}_{number}"
        self._taken.add(unique.casefold())
        return unique


@dataclass(frozen=True)
class ReadImage:
    """One image as `predict` reads it (`ImageSourceDataset.read`)."""

    pixels: np.ndarray
    """uint8 [h, w, 3]: what the model is given once resized to its input size, decoded as training decoded it for
    that size (a large JPEG reduced: `torchbricks._pictures.rgb_for_input`)."""
    size: tuple[int, int]
    """(height, width) of the whole image as shown, which the predictions refer to (`pixels` may be smaller)."""
    picture: np.ndarray | None
    """The whole image [height, width, 3] to draw on (`pixels` itself when not decoded reduced); None when not asked
    for and `pixels` is reduced."""


class ImageSourceDataset:
    """Reads `items` as `(index, uint8 array [H, W, 3] or None, reason)`: None with the reason when unreadable; the
    whole image as shown (`read` decodes it for a model's input size, as training did).

    An animation whose frames are not counted yet (`ImageSource.animation`) is opened once, when `reaches` (or a read)
    first gets to it: its frames become items of their own (`items`: one for an animation of one frame, as
    `collect_image_sources` lists it) and are decoded from that opening, which the read of its last frame (or `close`)
    closes. Safe to read from several threads at once."""

    def __init__(self, items: list[ImageSource]) -> None:
        self.items: list[ImageSource] = []
        """The items reached so far, animations expanded to their frames."""
        self._sources = list(items)
        self._next_source = 0
        self._opened: dict[int, _OpenAnimation] = {}  # item index -> the animation its frame is decoded from
        self._expand_lock = threading.Lock()
        self._decoders: dict[Path, Any] = {}
        self._video_lock = threading.Lock()  # a video decoder is not shared between threads safely

    def __len__(self) -> int:
        self.reaches(sys.maxsize)  # every animation opened and counted
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        index, read, reason = self.read(index, None)
        return index, None if read is None else read.pixels, reason

    def reaches(self, index: int) -> bool:
        """Whether there is an item `index`: the items before it are expanded, each animation among them opened once
        and its frames counted."""
        if index < len(self.items):
            return True
        with self._expand_lock:
            while index >= len(self.items) and self._next_source < len(self._sources):
                self._expand(self._sources[self._next_source])
                self._next_source += 1
            return index < len(self.items)

    @property
    def sources_left(self) -> int:
        """The sources not reached yet (each an image, or an animation of one or more frames)."""
        return len(self._sources) - self._next_source

    def close(self) -> None:
        """Closes the animations still open (their last frames not read: a run stopped early)."""
        for opened in set(self._opened.values()):
            opened.close()
        self._opened.clear()

    def _expand(self, source: ImageSource) -> None:
        if not source.animation:
            self.items.append(source)
            return
        try:
            opened = _OpenAnimation(source.path)
        except (OSError, ValueError, Image.DecompressionBombError) as error:  # as a read says it (`read`)
            self.items.append(ImageSource(source.path, unreadable=_unreadable_reason(source.path, error)))
            return
        for frame in [None] if opened.count == 1 else range(opened.count):
            self._opened[len(self.items)] = opened
            self.items.append(ImageSource(source.path, frame))

    def read(self, index: int, input_size: tuple[int, int] | None, picture: bool = True) -> tuple[int, ReadImage | None, str]:
        """Item `index` decoded for a model of `input_size` ((height, width); None: whole, as tiles are cut from it)
        as training decoded its images for it (`torchbricks._pictures.rgb_for_input`), with the whole picture when
        `picture` (decoded a second time when the first decoding was reduced); None with the reason when unreadable."""
        self.reaches(index)
        item = self.items[index]
        if item.unreadable is not None:
            return index, None, item.unreadable
        try:
            opened = self._opened.pop(index, None)
            if opened is not None:
                return index, opened.read(item.frame or 0, input_size), ""
            return index, self._read(item, input_size, picture), ""
        except (OSError, ValueError, RuntimeError, Image.DecompressionBombError) as error:  # a bad file
            return index, None, _unreadable_reason(item.path, error)

    def _read(self, item: ImageSource, input_size: tuple[int, int] | None, picture: bool) -> ReadImage:
        if item.frame is not None and item.path.suffix.lower() in VIDEO_EXTENSIONS:
            with self._video_lock:
                decoder = self._decoders.get(item.path)
                if decoder is None:
                    decoder = self._decoders[item.path] = _video_decoder(item.path)
                frame = decoder[item.frame]  # uint8 [C, H, W]
            array = np.asarray(frame.permute(1, 2, 0).cpu())
            array = np.ascontiguousarray(array[..., :3] if array.shape[-1] >= 3 else np.repeat(array, 3, axis=-1))
            return ReadImage(array, (array.shape[0], array.shape[1]), array)
        pixels, (width, height) = self._decode(item, input_size)
        if pixels.shape[:2] == (height, width):
            return ReadImage(pixels, (height, width), pixels)
        return ReadImage(pixels, (height, width), self._decode(item, None)[0] if picture else None)

    @staticmethod
    def _decode(item: ImageSource, input_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
        with open_image(item.path) as image:
            return _decode_frame(image, item.frame, input_size)


def _decode_frame(
    image: Image.Image, frame: int | None, input_size: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Frame `frame` of the opened `image` (None: the image itself) decoded for `input_size`, and its (width, height)
    as shown."""
    if frame is not None:
        image.seek(frame)
    shown = upright_size(image)
    # as the job read its training images; a writable copy: torch.from_numpy warns on read-only arrays
    return np.array(rgb_for_input(image, input_size)), shown


def _unreadable_reason(path: Path, error: BaseException) -> str:
    """Why the image file `path` cannot be read, as `skipped.txt` and the summary give it."""
    if isinstance(error, Image.DecompressionBombError):  # an orthomosaic, say: the reason says how to read it
        return str(too_large(path, error))
    return f"{type(error).__name__}: {error}"


class _OpenAnimation:
    """An animation opened once (`open_image`), its frames counted: each frame is decoded from this opening, one
    thread at a time, and the read of the last frame closes it."""

    def __init__(self, path: Path) -> None:
        self._stack = ExitStack()
        try:
            self._image: Image.Image | None = self._stack.enter_context(open_image(path))
            self.count = int(getattr(self._image, "n_frames", 1))
        except BaseException:
            self._stack.close()
            raise
        self._left = self.count
        self._lock = threading.Lock()

    def read(self, frame: int, input_size: tuple[int, int] | None) -> ReadImage:
        """Frame `frame` decoded whole (a GIF or WebP is never decoded reduced: `reduce_jpeg_decoding`), the picture
        drawn on too."""
        with self._lock:
            try:
                if self._image is None:
                    raise ValueError("the animation was closed before this frame was read")
                # Frames are read in order as a rule (a later one first costs Pillow a rewind within this opening).
                pixels, (width, height) = _decode_frame(self._image, frame if self.count > 1 else None, input_size)
                return ReadImage(pixels, (height, width), pixels if pixels.shape[:2] == (height, width) else None)
            finally:
                self._left -= 1
                if self._left == 0:
                    self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._image = None
        self._stack.close()
