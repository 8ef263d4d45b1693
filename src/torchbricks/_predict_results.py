"""What a `torchbricks predict` backend gives: `ImageResult` per image, and the `PredictionBackend` protocol.

No torch: the writer, the drawn pictures and the ONNX backend (`predict --onnx`, which runs where torch is not
installed) share them with the bricks backend (`torchbricks._predict_backend.BrickBackend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["ImageResult", "PredictionBackend"]

ImageResult = dict[str, dict[str, Any]]
"""One image's predictions: head path -> `{"kind": kind, ...values at the original image size}`."""


class PredictionBackend(Protocol):
    """What predicts: heads (path -> kind) and `predict(images) -> one ImageResult per image`.

    Optional, read by `predict_images`: `threads` (CPU threads a call takes) and `shared_threads(lanes)` (a context
    manager sharing them among concurrent calls); a backend with both predicts in lanes (`BrickBackend`).
    """

    heads: dict[str, str]

    def predict(self, images: Sequence[np.ndarray]) -> list[ImageResult]: ...
