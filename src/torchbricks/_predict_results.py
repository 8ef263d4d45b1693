"""What a `torchbricks predict` backend gives: `ImageResult` per image, and the `PredictionBackend` protocol.

No torch: the writer, the drawn pictures and the ONNX backend (`predict --onnx`, which runs where torch is not
installed) share them with the bricks backend (`torchbricks._predict_backend.BrickBackend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from torchbricks.errors import BrickError

__all__ = ["ImageResult", "PredictionBackend", "check_images"]

ImageResult = dict[str, dict[str, Any]]
"""One image's predictions: head path -> `{"kind": kind, ...values at the original image size}`."""


class PredictionBackend(Protocol):
    """What predicts: heads (path -> kind) and `predict(images) -> one ImageResult per image`.

    Optional, read by `predict_images`: `threads` (CPU threads a call takes) and `shared_threads(lanes)` (a context
    manager sharing them among concurrent calls); a backend with both predicts in lanes (`BrickBackend`).
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
    for index, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            found = f"{image.dtype} array {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise BrickError(f"{caller}: image {index} must be a uint8 RGB array [H, W, 3], got a {found}.")
