"""Pictures upright, as their EXIF orientation says (Pillow only: `torchbricks.deploy` uses it without torch).

Phones and many cameras store a photograph as the sensor saw it and note in the EXIF `Orientation` tag how to turn
(and mirror) it; viewers, browsers, labelling tools and Ultralytics show it turned. torchbricks reads every image
that way, for training, evaluation, prediction and the checks alike, so boxes and masks refer to the picture a
person saw when labelling it.
"""

from __future__ import annotations

from PIL import Image

__all__ = ["EXIF_ORIENTATION", "exif_orientation", "upright", "upright_size"]

EXIF_ORIENTATION = 0x0112
"""The EXIF tag saying how the stored picture must be turned (and mirrored) to be upright: 1 (as stored) to 8."""
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation (1 to 8), 1 without one or with a value outside them (read from the header).

    Example:
        >>> exif_orientation(Image.new("RGB", (4, 2)))
        1
    """
    try:
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block: Pillow raises SyntaxError, struct.error, ValueError...
        return 1
    return orientation if orientation in _UPRIGHT else 1


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned as EXIF `orientation` says (the same image for 1).

    Example:
        >>> upright(Image.new("RGB", (4, 2)), 6).size  # stored 4 wide, turned a quarter: 2 wide
        (2, 4)
    """
    method = _UPRIGHT.get(orientation)
    return image if method is None else image.transpose(method)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as shown (orientations 5 to 8 swap the stored sides), from the header."""
    width, height = image.size
    return (height, width) if exif_orientation(image) >= 5 else (width, height)
