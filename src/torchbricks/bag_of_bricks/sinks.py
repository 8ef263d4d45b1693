"""Sinks for visualizations: image grids and animations written to disk, and bricks that write them as they run.

Every write is atomic: the file is written under a temporary name in the target folder and then renamed, so
a reader never sees a half-written image and an interrupted run leaves the previous file intact.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from torchbricks._extras import require
from torchbricks._files import write_atomically
from torchbricks.bag_of_bricks.drawing import to_pillow_rgb
from torchbricks.bricks import BrickInterface
from torchbricks.errors import BrickError
from torchbricks.tags import VISUALIZATION, TagsLike
from torchbricks.tensor_conversions import unpack_batched_tensor_to_pillow_images

__all__ = [
    "BrickDisplay",
    "BrickRecordAnimation",
    "BrickSaveImageGrid",
    "make_image_grid",
    "save_animation",
    "save_image_grid",
]

ImageLike = Image.Image | np.ndarray | torch.Tensor


def _as_images(images: Sequence[ImageLike] | torch.Tensor) -> list[Image.Image]:
    if isinstance(images, torch.Tensor):
        images = unpack_batched_tensor_to_pillow_images(images)
    # The sinks only read the images (paste, save), so RGB Pillow images are taken as they are: to_pillow_rgb
    # copies, which for BrickRecordAnimation meant copying every recorded frame at every save.
    result = [image if isinstance(image, Image.Image) and image.mode == "RGB" else to_pillow_rgb(image) for image in images]
    if not result:
        raise BrickError("Need at least one image; got an empty batch.")
    return result


def make_image_grid(
    images: Sequence[ImageLike] | torch.Tensor,
    columns: int | None = None,
    padding: int = 2,
    background: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    """Tiles images row by row into one RGB image; each cell has the size of the largest image.

    Args:
        images: Pillow images, channel-last arrays [H, W, C], or a batch tensor [B, C, H, W] in [0, 1].
        columns: Images per row; about the square root of the count by default.
        padding: Pixels between and around the cells.
        background: Color of the padding.

    Example:
        >>> make_image_grid([Image.new("RGB", (10, 5))] * 3, columns=2, padding=1).size
        (23, 13)
    """
    pictures = _as_images(images)
    columns = columns or math.ceil(math.sqrt(len(pictures)))
    if columns < 1:
        raise BrickError(f"make_image_grid: columns must be at least 1, got {columns}.")
    rows = math.ceil(len(pictures) / columns)
    cell_width = max(picture.width for picture in pictures)
    cell_height = max(picture.height for picture in pictures)
    grid = Image.new(
        "RGB", (columns * (cell_width + padding) + padding, rows * (cell_height + padding) + padding), color=background
    )
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        grid.paste(picture, (padding + column * (cell_width + padding), padding + row * (cell_height + padding)))
    return grid


def _write_into_folder(path: Path, write: Callable[[Path], None]) -> Path:
    """Creates the missing folders of `path`, then writes it atomically like a brick checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, write)
    return path


def _check_format(path: Path, function: str) -> str:
    extensions = Image.registered_extensions()
    image_format = extensions.get(path.suffix.lower())
    if image_format is None:
        raise BrickError(f"{function}: Pillow cannot write {path.suffix!r} files ({path}); use .png, .jpg, .gif, .webp, ...")
    return image_format


def _check_animation_format(path: Path, function: str) -> str:
    image_format = _check_format(path, function)
    if image_format not in ("GIF", "WEBP", "PNG"):
        raise BrickError(f"{function} writes .gif, .webp or .png (animated), not {path.suffix!r} ({path}).")
    return image_format


def save_image_grid(
    images: Sequence[ImageLike] | torch.Tensor, path: str | os.PathLike[str], columns: int | None = None, padding: int = 2
) -> Path:
    """Writes a batch of images as one grid image (format from the suffix: .png, .jpg, ...), atomically.

    Args:
        images: See `make_image_grid`.
        path: The file to write; missing folders are created.
        columns: Images per row; about the square root of the count by default.
        padding: Pixels between and around the cells.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_image_grid(torch.rand(4, 3, 8, 8), Path(folder) / "grid.png", padding=0)
        ...     Image.open(path).size
        (16, 16)
    """
    target = Path(path)
    image_format = _check_format(target, "save_image_grid")
    grid = make_image_grid(images, columns=columns, padding=padding)
    return _write_into_folder(target, lambda temporary: grid.save(temporary, format=image_format))


def save_animation(
    frames: Sequence[ImageLike] | torch.Tensor, path: str | os.PathLike[str], duration_ms: int = 200, loop: int = 0
) -> Path:
    """Writes frames as an animated image (.gif, .webp or .png), atomically: the video sink.

    Frames of different sizes are placed on a canvas of the largest size.

    Args:
        frames: Pillow images, channel-last arrays [H, W, C], or a tensor [T, C, H, W] in [0, 1].
        path: The file to write; missing folders are created.
        duration_ms: How long each frame shows.
        loop: How often the animation repeats; 0 repeats forever.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_animation([Image.new("RGB", (8, 8), color) for color in ("red", "blue")], Path(folder) / "a.gif")
        ...     Image.open(path).n_frames
        2
    """
    target = Path(path)
    image_format = _check_animation_format(target, "save_animation")
    pictures = _as_images(frames)
    width = max(picture.width for picture in pictures)
    height = max(picture.height for picture in pictures)
    if any(picture.size != (width, height) for picture in pictures):
        pictures = [_on_canvas(picture, (width, height)) for picture in pictures]
    first, *rest = pictures

    def write(temporary: Path) -> None:
        first.save(temporary, format=image_format, save_all=True, append_images=rest, duration=duration_ms, loop=loop)

    return _write_into_folder(target, write)


def _on_canvas(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    canvas = Image.new("RGB", size)
    canvas.paste(picture, (0, 0))
    return canvas


class BrickSaveImageGrid(BrickInterface):
    """A sink brick writing each batch of images it receives as one grid image: `{prefix}_{call:05d}.png`.

    Wire it to the output of a visualization brick (a list of images) or to a batch tensor [B, C, H, W].
    Tagged VISUALIZATION by default; it has no outputs.

    Args:
        input_name: Name of the images.
        path_folder: Folder the grids are written to.
        file_prefix: Start of each file name.
        columns: Images per row.
        tags: VISUALIZATION by default.
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({VISUALIZATION})

    def __init__(
        self,
        input_name: str,
        path_folder: str | os.PathLike[str],
        file_prefix: str = "grid",
        columns: int | None = None,
        tags: TagsLike | None = None,
    ) -> None:
        super().__init__(input_names=[input_name], output_names=None, tags=tags)
        self.path_folder = Path(path_folder)
        self.file_prefix = file_prefix
        self.columns = columns
        self.count = 0
        self.written: list[Path] = []

    def describe(self) -> str:
        return f"save_image_grid to {str(self.path_folder)!r}"

    def step_function(self) -> Callable[..., Any]:
        def save(images: Sequence[ImageLike] | torch.Tensor) -> None:
            path = self.path_folder / f"{self.file_prefix}_{self.count:05d}.png"
            self.written.append(save_image_grid(images, path, columns=self.columns))
            self.count += 1

        return save


class BrickRecordAnimation(BrickInterface):
    """A sink brick collecting one frame per batch (a grid of its images) and writing them as an animation.

    `save()` writes the animation; with `save_every=n` it is also rewritten (atomically) every n frames, so
    a long run always has a recent file on disk.

    Args:
        input_name: Name of the images.
        path: The animation file (.gif, .webp or .png).
        duration_ms: How long each frame shows.
        columns: Images per row within a frame.
        save_every: Write the animation every this many frames; 0 writes only on `save()`.
        max_frames: Keep only the last this many frames.
        tags: VISUALIZATION by default.
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({VISUALIZATION})

    def __init__(
        self,
        input_name: str,
        path: str | os.PathLike[str],
        duration_ms: int = 200,
        columns: int | None = None,
        save_every: int = 0,
        max_frames: int = 500,
        tags: TagsLike | None = None,
    ) -> None:
        super().__init__(input_names=[input_name], output_names=None, tags=tags)
        self.path = Path(path)
        _check_animation_format(self.path, type(self).__name__)
        if max_frames < 1:
            raise BrickError(f"{type(self).__name__}: max_frames must be at least 1, got {max_frames}.")
        self.duration_ms = duration_ms
        self.columns = columns
        self.save_every = save_every
        self.max_frames = max_frames
        self.frames: deque[Image.Image] = deque(maxlen=max_frames)
        self._frames_added = 0  # len(self.frames) stops growing at max_frames, so save_every counts here

    def describe(self) -> str:
        return f"save_animation to {str(self.path)!r}"

    def add_frame(self, images: Sequence[ImageLike] | torch.Tensor) -> None:
        """Adds one frame: the grid of a batch of images."""
        self.frames.append(make_image_grid(images, columns=self.columns))
        self._frames_added += 1
        if self.save_every and self._frames_added % self.save_every == 0:
            self.save()

    def save(self) -> Path:
        """Writes the frames collected so far."""
        if not self.frames:
            raise BrickError(f"{type(self).__name__}: no frames to save to {self.path}; run the brick first.")
        return save_animation(self.frames, self.path, duration_ms=self.duration_ms)

    def step_function(self) -> Callable[..., Any]:
        return self.add_frame


class BrickDisplay(BrickInterface):
    """A sink brick showing each batch of images it receives as one grid: the display sink.

    By default the grid goes to IPython's `display` (in a notebook); any other function taking a Pillow image
    can be given instead, for example `lambda image: image.show()` or a logger.

    Args:
        input_name: Name of the images.
        display_function: Called with each grid; IPython's `display` when None.
        columns: Images per row.
        tags: VISUALIZATION by default.

    Example:
        >>> shown = []
        >>> brick = BrickDisplay("drawn", display_function=shown.append, columns=2)
        >>> brick({"drawn": torch.zeros(4, 3, 8, 8)})
        {}
        >>> shown[0].size
        (22, 22)
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({VISUALIZATION})

    def __init__(
        self,
        input_name: str,
        display_function: Callable[[Image.Image], Any] | None = None,
        columns: int | None = None,
        tags: TagsLike | None = None,
    ) -> None:
        super().__init__(input_names=[input_name], output_names=None, tags=tags)
        self.display_function = display_function
        self.columns = columns

    def describe(self) -> str:
        function = self.display_function
        return (
            "display"
            if function is None
            else getattr(function, "__name__", type(function).__name__).replace("<lambda>", "lambda")
        )

    def step_function(self) -> Callable[..., Any]:
        def show(images: Sequence[ImageLike] | torch.Tensor) -> None:
            display = self.display_function or _ipython_display()
            display(make_image_grid(images, columns=self.columns))

        return show


def _ipython_display() -> Callable[..., Any]:
    ipython_display = require(
        "IPython.display",
        package="ipython",
        why="BrickDisplay shows images with IPython's display",
        alternative="or pass display_function=...",
    )
    return ipython_display.display
