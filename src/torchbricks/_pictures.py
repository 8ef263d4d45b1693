"""Image files as viewers show them (numpy and Pillow only: `torchbricks.deploy` uses it without torch).

Upright: phones and many cameras store a photograph as the sensor saw it and note in the EXIF `Orientation` tag how
to turn (and mirror) it; viewers, browsers, labelling tools and Ultralytics show it turned. Eight bits: a 16-bit
image (microscopy, thermal, some satellite and medical files) keeps its upper 8 bits, as OpenCV and Ultralytics
read it, instead of Pillow's RGB conversion, which clips every value above 255 to white. In sRGB: an image whose
embedded ICC colour profile is another (Display P3, which iPhones and macOS screenshots embed, Adobe RGB from cameras
and Lightroom, a CMYK press profile) is converted to sRGB with LittleCMS (`PIL.ImageCms`), as browsers and viewers
show it; Pillow alone reads its numbers as if sRGB (the sRGB red (255, 0, 0) is stored in Display P3 as
(234, 51, 35), which read so is a duller red).
Images without a profile, or with an sRGB one, are read as stored (`srgb_profile_conversion`). torchbricks reads every
image this way (`rgb_as_shown`), for training, evaluation, prediction and the checks alike, so boxes and masks refer
to the picture a person saw when labelling it and a model sees the same colours in every stage.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from torchbricks.errors import ConfigError, DataError

__all__ = [
    "EXIF_ORIENTATION",
    "JPEG_REDUCTIONS",
    "PIXEL_LIMIT_VARIABLE",
    "ImageFacts",
    "ImageHeader",
    "ImageHeaders",
    "check_image_file",
    "converted_profile",
    "exif_orientation",
    "fully_transparent",
    "has_alpha",
    "open_image",
    "read_rgb_as_shown",
    "read_rgb_for_input",
    "read_rgb_reduced",
    "reduce_jpeg_decoding",
    "rgb_as_shown",
    "rgb_for_input",
    "srgb_profile_conversion",
    "stored_palette",
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
    A file that is no image raises Pillow's `UnidentifiedImageError` naming the path, as Pillow words it for a path
    (for a file object it names `<_io.BufferedReader ...>`, which `predict` listed in skipped.txt).
    """
    with open(path, "rb") as file, _image_in(file, path) as image:
        yield image


@contextmanager
def _image_in(file: BinaryIO, path: Path | str) -> Iterator[Image.Image]:
    """`PIL.Image.open` of the opened image file at `path` (`open_image`)."""
    try:
        opened = Image.open(file)
    except UnidentifiedImageError as error:
        raise UnidentifiedImageError(f"cannot identify image file {str(path)!r}") from error
    with opened as image:
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
    blank, by the colours under its alpha: `fully_transparent`), in sRGB (an embedded colour profile of other colours
    converted: `srgb_profile_conversion`).

    Example:
        >>> sixteen_bits = Image.fromarray(np.array([[0, 256, 65535]], dtype=np.uint16))
        >>> np.asarray(rgb_as_shown(sixteen_bits))[0, :, 0].tolist()  # Pillow's own conversion: [0, 255, 255]
        [0, 1, 255]

    Raises:
        DataError: A floating-point image, or 32-bit integers outside 0-65535: no range says what is black and white.
    """
    orientation = exif_orientation(image)
    conversion = _conversion_of(image)  # from the opened file: its mode and profile, before the steps below change them
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
            on_white = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture).convert("RGB")
            return upright(_in_srgb(on_white, conversion), orientation)  # white stays white in every profile
        image = picture  # nothing shown: an export that wrote alpha 0 (a zeroed channel); its colours, as OpenCV reads it
    return upright(_in_srgb(image, conversion), orientation)


_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"})
_PROFILE_MODES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}
"""The ICC colour spaces converted to sRGB, and the Pillow mode of the pictures each converts."""
_SRGB_TOLERANCE = 2
"""A profile converting every probe colour within this many levels of 255 of itself is sRGB (as the sRGB profiles
of cameras, Photoshop and LittleCMS differ among themselves): its images are read as stored."""
_PROBE_LEVELS = (16, 64, 128, 192, 240)


def _kind(mode: str) -> str:
    """What colours an opened image of `mode` has: 'L' (grey), 'CMYK' or 'RGB' (palette and alpha images included)."""
    return "L" if mode in _GREY_MODES else "CMYK" if mode == "CMYK" else "RGB"


def _conversion_of(image: Image.Image) -> tuple[str, Any] | None:
    profile = image.info.get("icc_profile")
    return srgb_profile_conversion(profile, _kind(image.mode)) if profile else None


def _in_srgb(image: Image.Image, conversion: tuple[str, Any] | None) -> Image.Image:
    """The 8-bit picture `image` in RGB, converted to sRGB by `conversion` (`srgb_profile_conversion`) when given."""
    if conversion is None:
        return image.convert("RGB")
    from PIL import ImageCms

    mode, transform = conversion
    return cast(Image.Image, ImageCms.applyTransform(image if image.mode == mode else image.convert(mode), transform))


class _ImageCmsMissing:
    noted = False


@functools.lru_cache(maxsize=64)
def srgb_profile_conversion(profile: bytes, kind: str) -> tuple[str, Any] | None:
    """How a picture of `kind` ('RGB', 'L', 'CMYK': `_kind`) with the ICC `profile` embedded is converted to sRGB:
    (the mode it is converted to first, the LittleCMS transform from that mode to sRGB RGB), or None when it is read
    as stored: the profile is sRGB (it converts every probe colour within `_SRGB_TOLERANCE` of itself), cannot be
    read, or is of colours the picture is not (a CMYK profile on an RGB picture); and without LittleCMS, said once
    on stderr. Computed once per profile (transforms are made without LittleCMS's cache: predict reads on threads).

    Example:
        >>> from PIL import ImageCms
        >>> srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        >>> srgb_profile_conversion(srgb, "RGB") is None
        True
    """
    try:
        from PIL import ImageCms
    except ImportError:  # a Pillow built without LittleCMS
        if not _ImageCmsMissing.noted:
            _ImageCmsMissing.noted = True
            print(
                "torchbricks: note: this Pillow has no ImageCms (LittleCMS): images with a colour profile other than "
                "sRGB (Display P3, Adobe RGB, CMYK) are read as if sRGB, their colours off; Pillow's wheels from PyPI "
                "include it.",
                file=sys.stderr,
                flush=True,
            )
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        mode = _PROFILE_MODES.get(source.profile.xcolor_space.strip())
        if mode is None or (kind == "CMYK") != (mode == "CMYK") or (mode == "L" and kind != "L"):
            return None
        transform = ImageCms.buildTransform(
            source, _srgb_profile(), mode, "RGB", ImageCms.Intent.PERCEPTUAL, flags=ImageCms.Flags.NOCACHE
        )
        levels = np.array(_PROBE_LEVELS, dtype=np.uint8)
        channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
        grid = np.stack(np.meshgrid(*[levels] * channels), axis=-1).reshape(1, -1, channels)
        probe = Image.frombytes(mode, (grid.shape[1], 1), grid.tobytes())
        converted = np.asarray(ImageCms.applyTransform(probe, transform), dtype=np.int16)  # raises now, not in a read
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):  # a broken or unsupported profile: read as stored
        return None
    if mode != "CMYK" and np.abs(converted - np.asarray(probe.convert("RGB"), dtype=np.int16)).max() <= _SRGB_TOLERANCE:
        return None
    return mode, transform


@functools.lru_cache(maxsize=1)
def _srgb_profile() -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def converted_profile(image: Image.Image) -> str | None:
    """The description of the colour profile an opened image is converted from (`srgb_profile_conversion`), e.g.
    'Display P3'; None when it is read as stored (no profile, or an sRGB one)."""
    profile = image.info.get("icc_profile")
    if not profile or srgb_profile_conversion(profile, _kind(image.mode)) is None:
        return None
    from PIL import ImageCms

    try:
        description = ImageCms.ImageCmsProfile(io.BytesIO(profile)).profile.profile_description
    except (ImageCms.PyCMSError, OSError, ValueError):
        description = None
    return (description or "").strip() or "an unnamed profile"


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


def rgb_for_input(image: Image.Image, input_size: tuple[int, int] | None) -> Image.Image:
    """An opened image file (not yet loaded) decoded as every stage decodes it for a model of `input_size` ((height,
    width)) before resizing it to that size: `rgb_as_shown`, a large JPEG decoded at 1/2, 1/4 or 1/8 of its size while
    that keeps `input_size` (`reduce_jpeg_decoding`). None: decoded whole, as tiles are cut from it (training's tiles,
    `predict --tile`). Training, validation, testing, `evaluate`, `predict` (bricks and `--onnx`) and
    `torchbricks.deploy` all decode here, so a model is given the same pixels in every stage: a 4032 x 3024 JPEG
    decoded whole and then resized to 384 x 512 differs from it by 0.3 of 255 on average and up to 7
    (`benchmarks/measure_decoding_gap.py`).

    Example:
        >>> file = io.BytesIO()
        >>> Image.new("RGB", (4032, 3024), "white").save(file, "JPEG")
        >>> rgb_for_input(Image.open(file), (384, 512)).size, rgb_for_input(Image.open(file), None).size
        ((1008, 756), (4032, 3024))
    """
    if input_size is not None:
        reduce_jpeg_decoding(image, (input_size[1], input_size[0]))
    return rgb_as_shown(image)


def read_rgb_for_input(
    path: Path | str, input_size: tuple[int, int] | None, check: Callable[[Image.Image], None] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """The image file decoded for a model of `input_size` ((height, width); None: whole) as every stage decodes it
    (`rgb_for_input`), and the (width, height) of the whole image as shown, which boxes, masks and predictions refer
    to. `check` is given the opened image before it is decoded (a `DataError` it raises names the file): what a caller
    refuses is looked at in the same opening.

    Raises:
        DataError: As `read_rgb_as_shown`, or from `check`.
    """
    with _named(path), open_image(path) as image:
        if check is not None:
            check(image)
        shown = upright_size(image)
        return rgb_for_input(image, input_size), shown


_LAST_BYTES = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b";"}
"""How a whole file of the format ends (JPEG's end-of-image marker, PNG's IEND chunk, GIF's trailer)."""


class ImageFacts(NamedTuple):
    """What `check_image_file` tells of an image file before it is read."""

    size: tuple[int, int]
    """(width, height) as shown."""
    orientation: int
    """Its EXIF orientation (1: as stored; `exif_orientation`)."""
    transparent: bool = False
    """Whether it is transparent everywhere (`fully_transparent`): read by the colours under its alpha."""
    profile: str | None = None
    """The colour profile it is converted to sRGB from (`converted_profile`); None: read as stored."""


class ImageHeader(NamedTuple):
    """What one opening of an image file tells without decoding it (`ImageHeaders`), for `check_image_file`,
    `torchbricks.datasets._reading.image_file_size` and the palette check (`torchbricks.datasets.mask_palettes`)."""

    size: tuple[int, int]
    """(width, height) as shown (`upright_size`)."""
    orientation: int
    mode: str
    profile: str | None
    """`converted_profile`."""
    ending: bytes | None
    """How a whole file of its format ends (`_LAST_BYTES`); None: not looked at."""
    whole: bool
    """Whether the file ends so (True when `ending` is None), looked at in the same opening."""
    uncompressed: bool
    alpha: bool
    """`has_alpha`."""
    palette: tuple[int, ...] | None
    """The flat RGB palette of a palette image (`stored_palette`: a whole PNG's from its header), read when asked for;
    None for another mode, or when it could not be decoded."""
    palette_read: bool
    """Whether `palette` was asked for: a header read without it is read again when it is."""


class ImageHeaders:
    """The `ImageHeader` of each file, the file opened once: a data module's start-up looks at each image and mask
    from several checks (the palettes of the masks, the sizes of images and masks, `check_image_file` of each), and a
    data set of thousands of files pays for every opening (the end of the file, which says whether it is whole, is read
    in the same opening). A file Pillow cannot open (or whose header cannot be read)
    has no header here: each check then opens it itself and says so as it always did. Made for one start-up: a file
    changed later is not seen.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "mask.png"
        >>> mask = Image.new("P", (3, 2))
        >>> mask.putpalette([0, 0, 0, 200, 10, 10])
        >>> mask.save(path)
        >>> headers = ImageHeaders()
        >>> header = headers.header(path, palette=True)
        >>> header.size, header.mode, header.palette[:6]
        ((3, 2), 'P', (0, 0, 0, 200, 10, 10))
        >>> headers.header(path) is header, headers.header(Path(path).parent / "missing.png")
        (True, None)
    """

    def __init__(self) -> None:
        self._headers: dict[Path, ImageHeader | None] = {}
        self._palettes: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple per palette: masks share a few

    def header(self, path: Path | str, palette: bool = False) -> ImageHeader | None:
        """The header of the file at `path` (with its palette when `palette`), None when it cannot be read."""
        path = path if isinstance(path, Path) else Path(path)
        known = self._headers.get(path)
        if path not in self._headers or (palette and known is not None and not known.palette_read):
            self._headers[path] = known = self._read(path, palette)
        return known

    def _read(self, path: Path, palette: bool) -> ImageHeader | None:
        try:
            with open(path, "rb") as file, _image_in(file, path) as image:
                tiles = getattr(image, "tile", [])  # before any decoding, which empties it
                ending = _LAST_BYTES.get(image.format or "")
                header = ImageHeader(
                    size=upright_size(image),
                    orientation=exif_orientation(image),
                    mode=image.mode,
                    profile=converted_profile(image),
                    ending=ending,
                    whole=ending is None or _file_ends_with(file, ending),
                    uncompressed=bool(tiles) and all(tile[0] == "raw" for tile in tiles),
                    alpha=has_alpha(image),
                    palette=None,
                    palette_read=palette,
                )
                colours = stored_palette(image, path, whole=header.whole) if palette else None
                if colours is not None:
                    header = header._replace(palette=self._palettes.setdefault(colours, colours))
                return header
        except Exception:
            return None


def check_image_file(path: Path | str, alpha: bool = True, headers: ImageHeaders | None = None) -> ImageFacts:
    """The size of the image as shown, its EXIF orientation and colour profile, from the file's header, and whether
    it is transparent everywhere (`ImageFacts`), once a look at the file says it is whole:
    a JPEG, PNG or GIF that does not end as one ends (cut short by an interrupted copy or download) is decoded to tell
    (a phone's motion photo keeps a video after its JPEG), as is an uncompressed file (BMP, PPM, PGM, a raw TIFF),
    whose decoding is a read. For a photograph that is about a thousandth of a decode's time; damage inside a
    compressed file that ends well shows only when it is decoded. With `alpha` (not for a mask), an image with an
    alpha channel or a transparent colour (from its header) is decoded to tell whether it is transparent everywhere.

    Raises:
        DataError: Naming the file: it does not exist, is no image Pillow reads, is cut short, or is of floating-point
            values.

    With `headers`, the file's header comes from there (opened once for every check of a start-up).
    """
    header = None if headers is None else headers.header(path)
    if header is not None and header.mode != "F" and not (alpha and header.alpha):
        with _named(path):
            if header.uncompressed or not header.whole:
                read_rgb_reduced(path, (1, 1))
        return ImageFacts(header.size, header.orientation, False, header.profile)
    with _named(path):
        with open_image(path) as image:
            if image.mode == "F":
                raise _floating_point()
            shown, orientation, profile = upright_size(image), exif_orientation(image), converted_profile(image)
            ending = _LAST_BYTES.get(image.format or "")
            tiles = getattr(image, "tile", [])  # how an ImageFile decodes its pixels
            uncompressed = bool(tiles) and all(tile[0] == "raw" for tile in tiles)
            decoded = alpha and has_alpha(image)
            transparent = decoded and fully_transparent(image)  # decodes it: a file cut short is an error here
        if not decoded and (uncompressed or (ending is not None and not _ends_with(path, ending))):
            read_rgb_reduced(path, (1, 1))
        return ImageFacts(shown, orientation, transparent, profile)


def stored_palette(image: Image.Image, path: Path | str, whole: bool | None = None) -> tuple[int, ...] | None:
    """The flat RGB palette of the opened palette image (mode P) at `path`, as `Image.getpalette("RGB")` gives it,
    None for another mode or when the file cannot be decoded. `getpalette` decodes the pixels; a PNG's palette is its
    PLTE chunk, which Pillow holds from the header and hands to the decoded image as it is (short palettes, 1- to
    8-bit indices and a tRNS chunk alike: compared on such files in tests/test_pictures.py), so a PNG that ends as a
    whole one ends gives it undecoded. Other files, and a PNG cut short (whose decoding fails: no palette, its own
    error comes when it is read), are decoded. `whole`: whether the file ends as a whole one of its format, when known
    (`ImageHeader.whole`); looked at here when None."""
    if image.mode != "P":
        return None
    held = image.palette  # before decoding: the PLTE chunk's bytes, not yet handed to the decoded image (dirty)
    if (
        image.format == "PNG"
        and held is not None
        and held.dirty
        and (held.rawmode or held.mode) == "RGB"
        and 0 < len(held.palette) <= 3 * 256
        and len(held.palette) % 3 == 0
        and (whole if whole is not None else _ends_with(path, _LAST_BYTES["PNG"]))
    ):
        return tuple(held.palette)
    try:
        return tuple(image.getpalette("RGB") or ())
    except (OSError, Image.DecompressionBombError):
        return None


def _ends_with(path: Path | str, ending: bytes) -> bool:
    """Whether the file ends with `ending`, padding of zeros or line ends after it left out."""
    with open(path, "rb") as file:
        return _file_ends_with(file, ending)


def _file_ends_with(file: BinaryIO, ending: bytes) -> bool:
    """`_ends_with` of an opened file, left where it was (Pillow reads on from there)."""
    position = file.tell()
    try:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - 64))
        return file.read().rstrip(b"\x00\r\n ").endswith(ending)
    finally:
        file.seek(position)


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
    """Lets an opened JPEG (not yet loaded; the first picture of an MPO file too: Pillow opens a JPEG followed by
    further pictures, as Android's Ultra HDR photographs carry their gain map, as MPO) decode at 1/2, 1/4 or 1/8 of
    its size, the largest reduction whose picture still has at least `at_least` ((width, height) as shown) pixels on
    each side, and that divides both sides exactly (so the reduced picture covers the same area: boxes and masks
    stay aligned). A 12-megapixel photograph read for a 512 x 384 input decodes at a quarter, about 5 times faster;
    each reduced pixel is the mean of the pixels it covers, so the resize that follows gives nearly the same picture
    (0.3 to 0.5 of 255 on average, up to 10): nearly, not the same, so every stage decodes alike (`rgb_for_input`).

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
    if image.format not in ("JPEG", "MPO"):  # MPO: a JPEG followed by more pictures (a phone's HDR gain map, say)
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
