"""The class colours and the font every drawing uses (Pillow only).

`torchbricks.bag_of_bricks.drawing` (training's pictures) and `torchbricks._prediction_pictures` (`predict`'s,
also drawn by `predict --onnx` where torch is not installed) both take them from here, so they look alike.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import ImageFont

__all__ = ["PALETTE", "Color", "Font", "color_for", "load_font"]

Color = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

PALETTE: tuple[Color, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)
"""Distinct colors; class `i` is drawn with `PALETTE[i % len(PALETTE)]`."""


def color_for(index: int) -> Color:
    """The palette color of a class index.

    Example:
        >>> color_for(1), color_for(13)
        ((60, 180, 75), (60, 180, 75))
    """
    return PALETTE[int(index) % len(PALETTE)]


@lru_cache(maxsize=16)
def load_font(size: int = 16, path: str | None = None) -> Font:
    """A TrueType font from `path`, or Pillow's bundled default font, at `size` pixels."""
    if path is not None:
        return ImageFont.truetype(path, size=size)
    return ImageFont.load_default(size=size)
