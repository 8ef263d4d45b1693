"""What a `torchbricks predict` backend gives: `ImageResult` per image, and the `PredictionBackend` protocol.

No torch: the writer, the drawn pictures and the ONNX backend (`predict --onnx`, which runs where torch is not
installed) share them with the bricks backend (`torchbricks._predict_backend.BrickBackend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, Protocol

import numpy as np

from torchbricks.errors import BrickError

__all__ = ["ImageResult", "PredictionBackend", "check_image_list", "check_images", "original_sizes"]

ImageResult = dict[str, dict[str, Any]]
"""One image's predictions: head path -> `{"kind": kind, ...values at the original image size}`."""


class PredictionBackend(Protocol):
    """What predicts: heads (path -> kind) and `predict(images) -> one ImageResult per image`.

    Optional, read by `predict_images`: `threads` (CPU threads a call takes) and `shared_threads(lanes)` (a context
    manager sharing them among concurrent calls); a backend with both predicts in lanes (`BrickBackend`). And
    `decoding_size`, the (height, width) the images are decoded for as training decoded them (a large JPEG
    reduced: `torchbricks._pictures.rgb_for_input`; None: whole): a backend with one is called
    `predict(images, sizes=...)`, `sizes` the (height, width) of each original image, which its results are given at
    (one whose `predict` takes no `sizes` is given whole images, with a warning).
    """

    heads: dict[str, str]

    def predict(self, images: Sequence[np.ndarray]) -> list[ImageResult]: ...


def check_images(images: Sequence[np.ndarray], caller: str) -> None:
    """Checks that each image is what both backends predict on: a uint8 RGB array [H, W, 3] (a float image in [0, 1]
    would be read as almost black, a grey or RGBA one cannot be read as RGB).

    Raises:
        BrickError: Naming the first image that is not, and what it is.

    Example:
        >>> check_images([np.zeros((4, 6, 3), np.float32)], "predict")
        Traceback (most recent call last):
        ...
        torchbricks.errors.BrickError: predict: image 0 must be a uint8 RGB array [H, W, 3], got a float32 array (4, 6, 3).
    """
    check_image_list(images, caller)
    for index, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            found = f"{image.dtype} array {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise BrickError(f"{caller}: image {index} must be a uint8 RGB array [H, W, 3], got a {found}.")
        if image.size == 0:  # numpy's reductions fail on it with a message that names no image
            raise BrickError(f"{caller}: image {index} is empty, an array {image.shape}; an image has pixels.")


def check_image_list(images: object, caller: str) -> None:
    """Checks that `images` is a list of images, not one image: a file name would be read as a list of one-letter
    file names (`Image 'p' does not exist.` for `predict("photo.jpg")`) and an array [H, W, 3] as H images of one row.

    Raises:
        BrickError: Naming what was given and the call that predicts it.

    Example:
        >>> check_image_list("a.jpg", "predict")
        Traceback (most recent call last):
        ...
        torchbricks.errors.BrickError: predict takes a list of images, got one file name 'a.jpg': predict(['a.jpg']).
    """
    if isinstance(images, str | PurePath):
        raise BrickError(f"{caller} takes a list of images, got one file name {str(images)!r}: predict([{str(images)!r}]).")
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise BrickError(
            f"{caller} takes a list of images (or an array [B, H, W, 3]), got one {images.dtype} array {images.shape}: "
            "predict([image])."
        )


def original_sizes(
    images: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]] | None, tile: int | None, caller: str
) -> list[tuple[int, int]]:
    """The (height, width) each image's results are given at: `sizes` (the originals a reduced decoding was read
    from), else each image's own.

    Raises:
        BrickError: `sizes` does not give one size per image, is given with `tile` (tiles are cut from the whole
            image: a reduced one would give tiles of another scale than training's), or a size is not one its image
            was decoded reduced from: smaller than the image, or of other proportions (a size given as (width,
            height), which would stretch the results silently).

    Example:
        >>> original_sizes([np.zeros((3, 4, 3), np.uint8)], [(12, 16)], None, "predict")
        [(12, 16)]
    """
    own = [(image.shape[0], image.shape[1]) for image in images]
    if sizes is not None and len(sizes) != len(images):
        raise BrickError(f"{caller}: {len(sizes)} sizes for {len(images)} images; give one (height, width) per image.")
    if sizes is None or [tuple(size) for size in sizes] == own:
        return own
    if tile is not None:
        raise BrickError(
            f"{caller}: tiles are cut from the whole image at full resolution, as training cut them; got images decoded "
            f"smaller than their sizes {list(sizes)[:3]}. Decode them whole (input size None)."
        )
    shown = [(int(height), int(width)) for height, width in sizes]
    for index, ((height, width), (own_height, own_width)) in enumerate(zip(shown, own, strict=True)):
        if not _reduced_from(own_height, own_width, height, width):
            meant = f" Did you mean {(width, height)}?" if _reduced_from(own_height, own_width, width, height) else ""
            raise BrickError(
                f"{caller}: image {index} of [{own_height}, {own_width}] pixels cannot have been decoded reduced from "
                f"size {(height, width)}: a size is the (height, width) of the whole image, as read_model_image gives "
                f"it, at least the image's own and of its proportions.{meant}"
            )
    return shown


def _reduced_from(own_height: int, own_width: int, height: int, width: int) -> bool:
    """Whether an image of (own_height, own_width) can be one of (height, width) decoded reduced: not larger, and of
    the same proportions to within the rounding of each reduced side (below one pixel)."""
    return own_height <= height and own_width <= width and abs(own_height * width - own_width * height) < height + width
