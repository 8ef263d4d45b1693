"""Image files as viewers show them (numpy and Pillow only: `torchbricks.deploy` uses it without torch).

Upright: phones and many cameras store a photograph as the sensor saw it and note in the EXIF `Orientation` tag how
to turn (and mirror) it; viewers, browsers, labelling tools and Ultralytics show it turned. Eight bits: a 16-bit
image (microscopy, thermal, some satellite and medical files) keeps its upper 8 bits, as OpenCV and Ultralytics
read it, instead of Pillow's RGB conversion, which clips every value above 255 to white. torchbricks reads every
image this way (`rgb_as_shown`), for training, evaluation, prediction and the checks alike, so boxes and masks refer
to the picture a person saw when labelling it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from torchbricks.errors import ConfigError, DataError

__all__ = [
    "EXIF_ORIENTATION",
    "JPEG_REDUCTIONS",
    "PIXEL_LIMIT_VARIABLE",
    "check_image_file",
    "exif_orientation",
    "fully_transparent",
    "has_alpha",
    "open_image",
    "read_rgb_as_shown",
    "read_rgb_reduced",
    "reduce_jpeg_decoding",
    "rgb_as_shown",
    "too_large",
    "upright",
    "upright_size",
]

PIXEL_LIMIT_VARIABLE = "TORCHBRICKS_MAX_IMAGE_PIXELS"
"""The environment variable that sets Pillow's limit of pixels per image (`PIL.Image.MAX_IMAGE_PIXELS`, its guard
against decompression bombs: about 179 million pixels are refused, half as many warned about); 0 lifts it. An
orthomosaic of 20,000 x 10,000 pixels is read with `TORCHBRICKS_MAX_IMAGE_PIXELS=0`."""


def _apply_pixel_limit() -> None:
    value = os.environ.get(PIXEL_LIMIT_VARIABLE)
    if value is None:
        return
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise ConfigError(
            f"The environment variable {PIXEL_LIMIT_VARIABLE} must be a number of pixels >= 0 (0: no limit), got {value!r}."
        )
    Image.MAX_IMAGE_PIXELS = limit or None


_apply_pixel_limit()


def too_large(path: Path | str, error: Exception) -> DataError:
    """The error for an image Pillow refuses as a possible decompression bomb, saying how to read it."""
    return DataError(
        f"Image {str(path)!r} is larger than Pillow reads by default ({error}). If you trust the file, set the "
        f"environment variable {PIXEL_LIMIT_VARIABLE}=0 (no limit) or a larger number of pixels; `torchbricks predict "
        "--tile N` reads such images whatever the limit."
    )


@contextmanager
def open_image(path: Path | str) -> Iterator[Image.Image]:
    """`PIL.Image.open` of the file, read through a file object rather than by path.

    Pillow memory-maps an uncompressed file it opens by path, and then loads a single-channel TIFF (8 or 16 bits)
    whose orientation tag turns it by a quarter (5 to 8) with its pixels scrambled: the size is turned, the rows are
    the stored ones cut to it. Read through a file object it is turned right. Every reader of pixels opens files here.
    """
    with open(path, "rb") as file, Image.open(file) as image:
        yield image


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
    """The image's EXIF orientation (1 to 8) still to apply, 1 without one or with a value outside them (read from the
    header). 1 for a TIFF: Pillow turns a TIFF upright itself (its size as it opens it, its pixels as it loads it), and
    turned again it would be shown wrong.

    Example:
        >>> exif_orientation(Image.new("RGB", (4, 2)))
        1
    """
    if image.format == "TIFF":
        return 1
    if image.format == "PNG" and "exif" not in image.info:
        return 1  # Pillow would decode the whole PNG looking for an eXIf chunk after the pixels (cameras write JPEG)
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


def rgb_as_shown(image: Image.Image) -> Image.Image:
    """An opened image file as the 8-bit RGB picture a viewer shows: upright, 16-bit values reduced to their upper
    8 bits (see the module docstring), a transparent image on white (one transparent everywhere, which a viewer shows
    blank, by the colours under its alpha: `fully_transparent`).

    Example:
        >>> sixteen_bits = Image.fromarray(np.array([[0, 256, 65535]], dtype=np.uint16))
        >>> np.asarray(rgb_as_shown(sixteen_bits))[0, :, 0].tolist()  # Pillow's own conversion: [0, 255, 255]
        [0, 1, 255]

    Raises:
        DataError: A floating-point image, or 32-bit integers outside 0-65535: no range says what is black and white.
    """
    orientation = exif_orientation(image)
    image.load()  # before np.asarray: Pillow turns a TIFF as it loads it, and an array of it unloaded keeps it stored
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(
                f"A {image.mode} image with values {values.min()} to {values.max()}: only 8- and 16-bit images have a "
                "range that says what is black and white. Convert it to 8 or 16 bits."
            )
        image = Image.fromarray((values >> 8).astype(np.uint8))
    elif image.mode == "F":
        raise _floating_point()
    elif has_alpha(image):
        # on white, as a viewer shows it on a page: dropping the alpha would show the colour hidden under transparent
        # pixels, often black (an icon drawn black on transparency would be black on black)
        picture = image.convert("RGBA")
        if not fully_transparent(picture):
            return upright(Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture).convert("RGB"), orientation)
        image = picture  # nothing shown: an export that wrote alpha 0 (a zeroed channel); its colours, as OpenCV reads it
    return upright(image.convert("RGB"), orientation)


def has_alpha(image: Image.Image) -> bool:
    """Whether an opened image has an alpha channel or a transparent colour (from its header)."""
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def fully_transparent(image: Image.Image) -> bool:
    """Whether every pixel of an image with an alpha channel (`has_alpha`) is transparent (alpha 0): a viewer shows
    nothing, and `rgb_as_shown` reads the colours under the alpha, as OpenCV, torchvision, Ultralytics and Pillow's
    RGB conversion read every image, rather than a blank white picture. Such a file is almost always an export that
    wrote a zeroed alpha channel (a 4-channel array saved without its alpha set).

    Example:
        >>> fully_transparent(Image.new("RGBA", (2, 2), (200, 30, 60, 0))), fully_transparent(Image.new("RGB", (2, 2)))
        (True, False)
    """
    if not has_alpha(image):
        return False
    alpha = (image if image.mode == "RGBA" else image.convert("RGBA")).getchannel("A")
    return alpha.getextrema()[1] == 0


def _floating_point() -> DataError:
    return DataError(
        "A floating-point (mode F) image has no range that says what is black and white. Convert it to 8 or 16 bits."
    )


def read_rgb_as_shown(path: Path | str) -> Image.Image:
    """The image file as the upright 8-bit RGB picture a viewer shows (`rgb_as_shown`).

    Raises:
        DataError: Naming the file: it does not exist, Pillow cannot read it, or it has no known range of values.
    """
    return read_rgb_reduced(path, None)[0]


def read_rgb_reduced(path: Path | str, at_least: tuple[int, int] | None) -> tuple[Image.Image, tuple[int, int]]:
    """`read_rgb_as_shown`, decoded smaller when the file allows it and `at_least` ((width, height) as shown) still
    fits (`reduce_jpeg_decoding`); and the (width, height) of the whole image as shown, which boxes and masks refer to.

    Raises:
        DataError: As `read_rgb_as_shown`.
    """
    with _named(path), open_image(path) as image:
        shown = upright_size(image)
        if at_least is not None:
            reduce_jpeg_decoding(image, at_least)
        return rgb_as_shown(image), shown


_LAST_BYTES = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b";"}
"""How a whole file of the format ends (JPEG's end-of-image marker, PNG's IEND chunk, GIF's trailer)."""


def check_image_file(path: Path | str) -> tuple[tuple[int, int], int]:
    """The (width, height) of the image as shown and its EXIF orientation (1: as stored; `exif_orientation`), from the
    file's header, once a look at the file says it is whole:
    a JPEG, PNG or GIF that does not end as one ends (cut short by an interrupted copy or download) is decoded to tell
    (a phone's motion photo keeps a video after its JPEG), as is an uncompressed file (BMP, PPM, PGM, a raw TIFF),
    whose decoding is a read. For a photograph that is about a thousandth of a decode's time; damage inside a
    compressed file that ends well shows only when it is decoded.

    Raises:
        DataError: Naming the file: it does not exist, is no image Pillow reads, is cut short, or is of floating-point
            values.
    """
    with _named(path):
        with open_image(path) as image:
            if image.mode == "F":
                raise _floating_point()
            shown, orientation = upright_size(image), exif_orientation(image)
            ending = _LAST_BYTES.get(image.format or "")
            tiles = getattr(image, "tile", [])  # how an ImageFile decodes its pixels
            uncompressed = bool(tiles) and all(tile[0] == "raw" for tile in tiles)
        if uncompressed or (ending is not None and not _ends_with(path, ending)):
            read_rgb_reduced(path, (1, 1))
        return shown, orientation


def _ends_with(path: Path | str, ending: bytes) -> bool:
    """Whether the file ends with `ending`, padding of zeros or line ends after it left out."""
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - 64))
        return file.read().rstrip(b"\x00\r\n ").endswith(ending)


@contextmanager
def _named(path: Path | str) -> Iterator[None]:
    """Turns what Pillow raises for a file it cannot read (and a `DataError` of its values) into a `DataError`
    naming the file."""
    try:
        yield
    except FileNotFoundError as error:
        raise DataError(f"Image {str(path)!r} does not exist.") from error
    except Image.DecompressionBombError as error:
        raise too_large(path, error) from error
    except OSError as error:
        raise DataError(f"Image {str(path)!r} cannot be read: {error}") from error
    except DataError as error:
        if str(path) in str(error):
            raise
        raise DataError(f"Image {str(path)!r}: {error}") from error


JPEG_REDUCTIONS = (8, 4, 2)
"""The fractions of its size a JPEG can be decoded at (libjpeg's DCT scaling), largest reduction first."""


def reduce_jpeg_decoding(image: Image.Image, at_least: tuple[int, int]) -> int:
    """Lets an opened JPEG (not yet loaded) decode at 1/2, 1/4 or 1/8 of its size, the largest reduction whose
    picture still has at least `at_least` ((width, height) as shown) pixels on each side, and that divides both
    sides exactly (so the reduced picture covers the same area: boxes and masks stay aligned). A 12-megapixel
    photograph read for a 512 x 384 input decodes at a quarter, about 5 times faster; each reduced pixel is the
    mean of the pixels it covers, so the resize that follows gives nearly the same picture (0.5 of 255 on average).

    Returns:
        The reduction applied (1: none; other formats, or a picture too small to reduce).

    Example:
        >>> import io
        >>> file = io.BytesIO()
        >>> Image.new("RGB", (4032, 3024), "white").save(file, "JPEG")
        >>> photo = Image.open(file)
        >>> reduce_jpeg_decoding(photo, (512, 384)), photo.size
        (4, (1008, 756))
        >>> reduce_jpeg_decoding(Image.open(file), (4032, 3024))
        1
    """
    if image.format != "JPEG":
        return 1
    width, height = image.size  # as stored: orientations 5 to 8 swap the sides as shown
    wanted_width, wanted_height = at_least if exif_orientation(image) < 5 else (at_least[1], at_least[0])
    for reduction in JPEG_REDUCTIONS:
        if width % reduction or height % reduction:
            continue
        if width // reduction >= wanted_width and height // reduction >= wanted_height:
            image.draft(image.mode, (width // reduction, height // reduction))
            return reduction if image.size == (width // reduction, height // reduction) else 1
    return 1
