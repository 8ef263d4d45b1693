"""The input size a data set suggests: its training images' typical size, read from the file headers.

`typical_image_size` is what the packaged data configs use when `data.image_size` is left to its default (the
`${torchbricks_image_size:...}` resolver of `torchbricks.lightning.task_resolvers`): the median height and median
width of (at most `max_sampled`) training images, times `scale` (`data.image_scale` of the classification config: 2
for small objects), each rounded to a multiple of the backbone's coarsest stride, and scaled down to `max_side`
for large photographs. Pillow reads only the header of each file (no decoding), and
COCO files give the sizes in their `images` entries, so thousands of files take a fraction of a second.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchbricks._image_files import FolderListings
from torchbricks._pictures import ImageHeaders
from torchbricks.datasets._reading import start_up_listings
from torchbricks.datasets.coco import image_path, parsed_json
from torchbricks.datasets.folder_splits import is_voc_layout, segmentation_folders, training_folder
from torchbricks.datasets.readers import (
    IMAGE_EXTENSIONS,
    DataError,
    image_file_size,
    image_folder_class_names,
)
from torchbricks.errors import ConfigError, did_you_mean

__all__ = [
    "IMAGE_SIZE_LAYOUTS",
    "MAX_ENLARGED_SIDE",
    "ImageSizeChoice",
    "check_image_scale",
    "choose_image_size",
    "read_image_sizes",
    "record_sizes",
    "typical_image_size",
]

IMAGE_SIZE_LAYOUTS = ("image_folder", "segmentation_folder", "coco", "yolo", "voc", "auto")
"""The data layouts whose training images `read_image_sizes` finds (see `torchbricks.lightning.task_resolvers`)."""


MAX_ENLARGED_SIDE = 256
"""A scale above 1 enlarges images until their larger side reaches this many pixels, no further: it is for small
images (small objects at the backbone's stride 32), and larger ones would cost time without gaining detail."""


@dataclass(frozen=True)
class ImageSizeChoice:
    """A chosen input size and where it came from."""

    size: tuple[int, int]
    """(height, width), multiples of `multiple`."""
    median: tuple[float, float]
    """The median (height, width) of the images read."""
    sampled: int
    """How many images were read."""
    total: int
    """How many training images there are."""
    capped: bool
    """Whether the median was scaled down to `max_side`."""
    scale: float = 1.0
    """The scale asked for (`data.image_scale`)."""
    factor: float = 1.0
    """The factor applied to the median before the `max_side` cap: `scale`, or less where enlarging by it would pass
    `max_enlarged_side` (a scale below 1 applies as it is)."""
    max_enlarged_side: int = MAX_ENLARGED_SIDE
    """The side a scale above 1 enlarges images to at most."""
    multiple: int = 32
    """What each side was rounded to a multiple of (the backbone's coarsest stride)."""

    def describe(self) -> str:
        """One line for the log."""
        height, width = self.size
        shown = str(height) if height == width else f"[{height}, {width}]"
        note = " (scaled down to the cap; larger images may be cut into tiles instead)" if self.capped else ""
        times = f"{self.factor:.3g} times " if self.factor != 1.0 else "from "
        limited = "" if self.factor == self.scale else f", which enlarges images to at most {self.max_enlarged_side} px"
        by = "" if self.scale == 1.0 else f" (data.image_scale: {self.scale:g}{limited})"
        exact = all(math.isclose(side, median * self.factor) for side, median in zip(self.size, self.median, strict=True))
        rounded = "" if exact or self.capped else f", rounded to a multiple of {self.multiple}"
        return (
            f"data.image_size: {shown}, {times}the median size {self.median[0]:g} x {self.median[1]:g} (height x width) "
            f"of {self.sampled} of the {self.total} images the training split comes from{by}{rounded}{note}; "
            "set data.image_size=SIDE or [H,W] to choose"
        )


def choose_image_size(
    sizes: list[tuple[int, int]],
    multiple: int = 32,
    max_side: int = 512,
    total: int | None = None,
    scale: float = 1.0,
    max_enlarged_side: int = MAX_ENLARGED_SIDE,
) -> ImageSizeChoice:
    """The input size for images of `sizes` ((height, width) each): the median height and width times `scale`
    (a scale above 1 enlarges only up to `max_enlarged_side`, and never shrinks), rounded to the nearest multiple
    of `multiple` (at least `multiple`), both scaled down, aspect kept, when the larger exceeds `max_side`.

    Example:
        >>> choose_image_size([(96, 96), (100, 90), (90, 120)]).size
        (96, 96)
        >>> choose_image_size([(96, 96), (100, 90), (90, 120)], scale=2).size
        (192, 192)
        >>> choose_image_size([(160, 160)], scale=2).size, choose_image_size([(300, 300)], scale=2).size
        ((256, 256), (288, 288))
        >>> choose_image_size([(3000, 4000)] * 3, max_side=512).size
        (384, 512)
    """
    if not sizes:
        raise DataError("choose_image_size needs at least one image size.")
    if multiple < 1 or max_side < multiple:
        raise ConfigError(f"choose_image_size needs 1 <= multiple <= max_side, got multiple={multiple}, max_side={max_side}.")
    scale = check_image_scale(scale)
    height = float(statistics.median(size[0] for size in sizes))
    width = float(statistics.median(size[1] for size in sizes))
    enlarged = scale if scale <= 1.0 else max(1.0, min(scale, max_enlarged_side / max(height, width)))
    factor = min(enlarged, max_side / max(height, width))
    limit = max_side // multiple * multiple

    def rounded(side: float) -> int:
        return min(limit, max(multiple, round(side * factor / multiple) * multiple))

    chosen = (rounded(height), rounded(width))
    total = len(sizes) if total is None else total
    return ImageSizeChoice(
        chosen, (height, width), len(sizes), total, factor < enlarged, scale, enlarged, max_enlarged_side, multiple
    )


def check_image_scale(scale: object) -> float:
    """`scale` as a float if it is a number > 0 (the config key `data.image_scale`), else a `ConfigError` naming it."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0 or scale == float("inf"):
        raise ConfigError(
            "Config key 'data.image_scale' must be a number > 0 (the default input size is this many times the "
            f"training images' median size; 1 keeps it), got {type(scale).__name__} {scale!r}."
        )
    return float(scale)


def read_image_sizes(
    layout: str,
    root: Path | str,
    max_sampled: int = 200,
    listings: FolderListings | None = None,
    headers: ImageHeaders | None = None,
) -> tuple[list[tuple[int, int]], int]:
    """(height, width) of up to `max_sampled` training images of the data at `root` in `layout`, evenly spread over
    the sorted files, and how many training images there are. A segmentation folder's images are listed through
    `listings` and their headers read through `headers` when given (a data module's start-up, whose readers list and
    open them again).

    Raises:
        ConfigError: An unknown layout.
        DataError: The training split is missing, empty or holds an unreadable image.
    """
    folder = Path(str(root))
    listings = listings if listings is not None else start_up_listings()
    if layout in ("yolo", "voc", "auto"):  # box layouts: the sizes the train split's records hold
        from torchbricks.datasets.detection_layouts import detect_detection_layout, read_detection_split

        layout = detect_detection_layout(folder, layout)
        if layout != "coco":
            return record_sizes(read_detection_split(folder, layout, "train").records, folder, layout, max_sampled)
    if layout == "coco":
        from torchbricks.datasets.detection_layouts import coco_layout

        train = coco_layout(folder).train
        return _coco_sizes(train.path, train.image_roots, max_sampled)
    if layout == "image_folder":  # the training folder's images (a pool's all: validation is drawn from them)
        split = training_folder(folder, layout)
        files = [path for name in image_folder_class_names(split) for path in listings.files(split / name, recursive=True)]
    elif layout == "segmentation_folder":
        split = segmentation_folders(folder)[0]
        if not split.is_dir():
            raise DataError(f"The image folder {str(split)!r} does not exist; expected {str(folder)!r}/train/images/*.")
        files = listings.files(split, recursive=is_voc_layout(folder, layout))
    else:
        raise ConfigError(
            f"Unknown data layout {layout!r} for the image size. Available: {list(IMAGE_SIZE_LAYOUTS)}."
            f"{did_you_mean(layout, IMAGE_SIZE_LAYOUTS)}"
        )
    if not files:
        raise DataError(f"The training split {str(split)!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}).")
    return [_header_size(path, headers) for path in _spread(files, max_sampled)], len(files)


def record_sizes(
    records: Sequence[Any], root: Path | str, layout: str, max_sampled: int = 200
) -> tuple[list[tuple[int, int]], int]:
    """`read_image_sizes` of a box layout's training split read already (its `BoxImage` records hold the sizes).

    Raises:
        DataError: The split holds no image.
    """
    if not records:
        raise DataError(f"The training split of {str(root)!r} ({layout}) holds no image.")
    return [(record.height, record.width) for record in _spread(list(records), max_sampled)], len(records)


def typical_image_size(
    layout: str,
    root: Path | str,
    multiple: int = 32,
    max_side: int = 512,
    max_sampled: int = 200,
    scale: float = 1.0,
    listings: FolderListings | None = None,
    headers: ImageHeaders | None = None,
) -> ImageSizeChoice:
    """`choose_image_size` of the training images of the data at `root` in `layout` (see `read_image_sizes`)."""
    check_image_scale(scale)
    sizes, total = read_image_sizes(layout, root, max_sampled, listings, headers)
    return choose_image_size(sizes, multiple, max_side, total, scale)


def _spread(items: list[Any], count: int) -> list[Any]:
    if len(items) <= count:
        return items
    return [items[index * len(items) // count] for index in range(count)]


def _header_size(path: Path, headers: ImageHeaders | None = None) -> tuple[int, int]:
    """(height, width) of the upright image, from the file's header."""
    width, height = image_file_size(path, headers)
    return height, width


def _coco_sizes(path: Path, image_roots: Sequence[Path], max_sampled: int) -> tuple[list[tuple[int, int]], int]:
    if not path.is_file():
        raise DataError(f"The COCO file {str(path)!r} does not exist.")
    try:
        images = parsed_json(path).get("images", [])
    except (OSError, ValueError) as error:
        raise DataError(f"The COCO file {str(path)!r} cannot be read as JSON: {error}") from error
    if not images:
        raise DataError(f"The COCO file {str(path)!r} lists no image.")
    chosen = [images[index * len(images) // max_sampled] for index in range(max_sampled)] if len(images) > max_sampled else images
    sizes = []
    for image in chosen:  # COCO gives the sizes; an entry without them is read from its file's header
        if isinstance(image.get("height"), int) and isinstance(image.get("width"), int):
            sizes.append((image["height"], image["width"]))
        else:
            sizes.append(_header_size(image_path(str(image.get("file_name", "")), image_roots)))
    return sizes, len(images)
