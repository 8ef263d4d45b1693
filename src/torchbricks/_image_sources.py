"""The images `torchbricks predict` reads: image files, folders (recursive), glob patterns and videos.

Still images are read with Pillow. Animated GIF and WebP files are read frame by frame with Pillow (no extra
package). Other videos (`VIDEO_EXTENSIONS`) need torchcodec (`pip install torchcodec`; torchvision has no video
reader since 0.24). A video found in a folder or by a glob that cannot be opened (torchcodec missing, a file it cannot
decode) is one unreadable source, skipped and listed as an unreadable image is; a video given by name stops with an
error naming it.
"""

from __future__ import annotations

import glob
import threading
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

    @property
    def label(self) -> str:
        """How the outputs name it: the path, with `#<frame>` for a frame."""
        return str(self.path) if self.frame is None else f"{self.path}#{self.frame}"


def collect_image_sources(
    sources: list[str | Path] | tuple[str | Path, ...] | Any, exclude: Path | str | None = None
) -> list[ImageSource]:
    """The images of `sources`, in order: a file as given, a folder's image and video files (recursive, sorted), a
    glob's matching image and video files (sorted); animations and videos expand to one source per frame. A video of a
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
            items.extend(_frames(file, given=file == path))
    return items


def _outside(files: list[Path], folder: Path | None) -> list[Path]:
    """The files that do not lie inside `folder` (resolved; all of them when None)."""
    if folder is None:
        return files
    return [file for file in files if not file.resolve().is_relative_to(folder)]


def _frames(path: Path, given: bool = True) -> list[ImageSource]:
    """The sources of one file: itself, or one per frame of an animation or video. A video that cannot be opened
    raises when the user `given` it by name, else is one source with the reason."""
    suffix = path.suffix.lower()
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
    names = []
    taken: set[str] = set()  # case-folded: x.png and x.PNG must not write one file, on any file system
    for item, (relative, stem) in zip(items, stems, strict=True):
        name = stem if len(counts[stem]) == 1 else f"{stem}_{relative.suffix.lstrip('.')}"
        name = name if item.frame is None else f"{name}_frame{item.frame:06d}"
        unique, number = name, 1
        while unique.casefold() in taken:
            number += 1
            unique = f"{name}_{number}"
        taken.add(unique.casefold())
        names.append(unique)
    return names


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

    Safe to read from several threads at once."""

    def __init__(self, items: list[ImageSource]) -> None:
        self.items = items
        self._decoders: dict[Path, Any] = {}
        self._video_lock = threading.Lock()  # a video decoder is not shared between threads safely

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        index, read, reason = self.read(index, None)
        return index, None if read is None else read.pixels, reason

    def read(self, index: int, input_size: tuple[int, int] | None, picture: bool = True) -> tuple[int, ReadImage | None, str]:
        """Item `index` decoded for a model of `input_size` ((height, width); None: whole, as tiles are cut from it)
        as training decoded its images for it (`torchbricks._pictures.rgb_for_input`), with the whole picture when
        `picture` (decoded a second time when the first decoding was reduced); None with the reason when unreadable."""
        item = self.items[index]
        if item.unreadable is not None:
            return index, None, item.unreadable
        try:
            return index, self._read(item, input_size, picture), ""
        except Image.DecompressionBombError as error:  # an orthomosaic, say: the reason says how to read it
            return index, None, str(too_large(item.path, error))
        except (OSError, ValueError, RuntimeError) as error:  # Pillow's and the decoders' errors for a bad file
            return index, None, f"{type(error).__name__}: {error}"

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
            if item.frame is not None:
                image.seek(item.frame)
            shown = upright_size(image)
            # as the job read its training images; a writable copy: torch.from_numpy warns on read-only arrays
            return np.array(rgb_for_input(image, input_size)), shown
