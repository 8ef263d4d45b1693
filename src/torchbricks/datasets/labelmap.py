"""The class colours of segmentation masks saved in colour: a `labelmap.txt`, as Pascal VOC's tools, Datumaro and
CVAT's "Segmentation mask 1.1" export write it beside their colour masks (`SegmentationClass/*.png`):

    # label:color_rgb:parts:actions
    background:0,0,0::
    cat:128,0,0::
    person:192,128,128:head,hand:jumping

One class a line, `name:r,g,b:parts:actions` (the parts and actions, VOC's person layout and action lists, are not
read); a line starting with `#` is a comment. A file without any colour (`background:::`, as CVAT's "PASCAL VOC 1.1"
export writes it) colours its classes with VOC's colour map by line (`voc_colour_map`), as Datumaro paints them.
The classes are numbered in the file's order, with the background first (index 0): the class coloured (0, 0, 0), else
the class named `background` whatever its colour (a CVAT project with its own `background` label keeps that label's
colour and paints the unlabelled pixels with it, as Datumaro does), else a `background` added in black. A colour mask
pixel is the class of its exact colour; Pascal VOC's border colour (224, 224, 192) is the ignored value 255 unless the
file lists it. A colour the file does not list is a `DataError` naming the mask, the colour, its pixels and the
file's closest colour. Palette masks are read by the colour their palette gives each index, as RGB masks are, so a
mask an image editor saved with a renumbered palette reads right; index 255 stays ignored whatever its colour (VOC's
own `SegmentationClass` PNGs are palette images whose index 255 is the border). Grey-level masks hold class indices,
as they do without a labelmap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchbricks._conventions import IGNORE_INDEX
from torchbricks.datasets._reading import DataError, read_user_text

__all__ = ["LABELMAP_FILE", "VOC_BORDER_COLOUR", "MaskColours", "mask_colours", "read_labelmap", "voc_colour_map"]

LABELMAP_FILE = "labelmap.txt"
VOC_BORDER_COLOUR = (224, 224, 192)
"""The colour Pascal VOC draws object borders and unclear regions in: ignored (255) unless a labelmap lists it."""
_LISTED_COLOURS = 12
"""Colours a message lists before it says how many more there are."""

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class MaskColours:
    """The classes of a `labelmap.txt` (index order, the background first) and the colour of each."""

    path: Path
    names: tuple[str, ...]
    colours: tuple[Colour, ...]

    def _described(self, index: int) -> str:
        return f"{self.names[index]!r} {self.colours[index]}"

    def indices(self, rgb: np.ndarray, mask: Path) -> np.ndarray:
        """The class index of each pixel of the colour mask `rgb` (uint8 [H, W, 3]) read from the file `mask`, int64
        [H, W]; VOC's border colour is 255 when the labelmap does not list it.

        Raises:
            DataError: A pixel's colour is not listed (naming `mask`, the colour, its pixels and the closest listed).
        """
        listed = {_packed(colour): index for index, colour in enumerate(self.colours)}
        listed.setdefault(_packed(VOC_BORDER_COLOUR), IGNORE_INDEX)
        keys = np.array(sorted(listed), dtype=np.int64)
        values = np.array([listed[key] for key in keys.tolist()], dtype=np.int64)
        channels = rgb.astype(np.int64)
        packed = (channels[..., 0] << 16) | (channels[..., 1] << 8) | channels[..., 2]
        position = np.minimum(np.searchsorted(keys, packed), len(keys) - 1)
        known = keys[position] == packed
        if not known.all():
            raise DataError(self._unknown_colours_message(packed[~known], mask))
        return values[position]

    def _unknown_colours_message(self, unknown: np.ndarray, mask: Path) -> str:
        found, pixels = np.unique(unknown, return_counts=True)
        order = np.argsort(-pixels, kind="stable")
        colour = _unpacked(int(found[order[0]]))
        distances = [sum((a - b) ** 2 for a, b in zip(colour, listed, strict=True)) for listed in self.colours]
        closest = int(np.argmin(distances))
        others = f" ({len(found) - 1} more unlisted colours)" if len(found) > 1 else ""
        shown = ", ".join(self._described(index) for index in range(min(len(self.names), _LISTED_COLOURS)))
        if len(self.names) > _LISTED_COLOURS:
            shown += f", ... ({len(self.names)} classes)"
        return (
            f"Mask {str(mask)!r} has {int(pixels[order[0]])} pixels of colour {colour}{others}, which "
            f"{str(self.path)!r} does not list; closest: {self._described(closest)}. Its colours: {shown}. Colour masks "
            "are read by exact colour: save them without smoothing (nearest-neighbour resizing, no antialiasing), or "
            "add the class to the labelmap."
        )

    def palette_indices(self, indices: np.ndarray, palette: list[int] | None, mask: Path) -> np.ndarray:
        """The class index of each pixel of the palette mask `mask` (its `indices`, int64 [H, W], and its flat RGB
        `palette`), read by the colour its palette gives it, as an RGB mask is (`indices`), so that a palette an
        image editor renumbered reads right. Index 255 stays 255 (ignored, VOC's border) whatever its colour.

        Raises:
            DataError: An index the palette does not colour, or a colour the labelmap does not list.
        """
        entries = np.asarray(palette or [], dtype=np.uint8).reshape(-1, 3)
        ignored = indices == IGNORE_INDEX
        past = (indices >= len(entries)) & ~ignored
        if past.any():
            raise DataError(
                f"Mask {str(mask)!r} is a palette PNG with index {int(indices[past].max())}, which its palette of "
                f"{len(entries)} colours does not colour; with {str(self.path)!r} palette masks are read by colour."
            )
        rgb = entries[np.where(ignored, 0, indices)]
        rgb[ignored] = self.colours[0]  # any listed colour; these pixels stay ignored
        classes = self.indices(rgb, mask)
        classes[ignored] = IGNORE_INDEX
        return classes


def _packed(colour: Colour) -> int:
    return (colour[0] << 16) | (colour[1] << 8) | colour[2]


def _unpacked(packed: int) -> Colour:
    return ((packed >> 16) & 255, (packed >> 8) & 255, packed & 255)


def _labelmap_line(path: Path, number: int, line: str) -> tuple[int, str, str, Colour | None]:
    """(number, line, name, colour or None when the line gives none) of one line of a labelmap.

    Raises:
        DataError: No name, or a colour that is not three numbers 0 to 255.
    """
    name, _, rest = line.partition(":")
    name, field = name.strip(), rest.split(":")[0].strip()
    try:
        values = tuple(int(value) for value in field.split(",")) if field else ()
    except ValueError:
        values = (-1,)
    if not name or (field and (len(values) != 3 or not all(0 <= value <= 255 for value in values))):
        raise DataError(
            f"{str(path)!r} line {number} is {line!r}; expected name:r,g,b:parts:actions with a colour of three "
            "numbers 0 to 255, such as cat:128,0,0::."
        )
    return number, line, name, (values[0], values[1], values[2]) if field else None


def read_labelmap(path: Path | str) -> MaskColours:
    """The classes and colours of a `labelmap.txt` (see the module docstring).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "labelmap.txt"
        >>> _ = path.write_text("# label:color_rgb:parts:actions\\ncat:128,0,0::\\nbackground:0,0,0::\\n")
        >>> read_labelmap(path).names, read_labelmap(path).colours
        (('background', 'cat'), ((0, 0, 0), (128, 0, 0)))

    Raises:
        DataError: A line without a colour `r,g,b` (0 to 255 each), a name or a colour given twice, more classes
            than fit below the ignored value 255, or fewer than two classes.
    """
    path = Path(path)
    lines = [
        _labelmap_line(path, number, text.strip())
        for number, text in enumerate(read_user_text(path).splitlines(), start=1)
        if text.strip() and not text.strip().startswith("#")
    ]
    if all(colour is None for *_, colour in lines):  # no colour at all (CVAT's "PASCAL VOC 1.1"): VOC's, by position
        lines = [
            (number, line, name, colour)
            for (number, line, name, _), colour in zip(lines, voc_colour_map(len(lines)), strict=True)
        ]
    names: list[str] = []
    colours: list[Colour] = []
    for number, line, name, given in lines:
        if given is None:
            raise DataError(
                f"{str(path)!r} line {number} is {line!r}, without the colour other lines give; expected "
                "name:r,g,b:parts:actions, such as cat:128,0,0:: (a labelmap without any colour takes VOC's colour map)."
            )
        colour: Colour = given
        if name in names:
            raise DataError(f"{str(path)!r} line {number} lists the class {name!r} a second time.")
        if colour in colours:
            raise DataError(
                f"{str(path)!r} line {number} gives {name!r} the colour {colour} of {names[colours.index(colour)]!r}: a "
                "pixel of that colour would be either class."
            )
        names.append(name)
        colours.append(colour)
    # the background, index 0 of every segmentation layout: black, else CVAT's own `background` label in its colour
    background = (
        colours.index((0, 0, 0)) if (0, 0, 0) in colours else names.index("background") if "background" in names else None
    )
    if background is not None:
        names.insert(0, names.pop(background))
        colours.insert(0, colours.pop(background))
    else:
        names.insert(0, "background")
        colours.insert(0, (0, 0, 0))
    if len(names) < 2 or len(names) > IGNORE_INDEX:
        raise DataError(
            f"{str(path)!r} lists {len(names)} classes with the background; expected 2 to {IGNORE_INDEX} "
            f"({IGNORE_INDEX} is the ignored value): {names[:_LISTED_COLOURS]}."
        )
    return MaskColours(path, tuple(names), tuple(colours))


def voc_colour_map(count: int) -> list[Colour]:
    """The first `count` colours of Pascal VOC's colour map (the devkit's: the bits of the index spread over the
    channels, highest first), which its masks, CVAT and Datumaro colour classes with by index.

    Example:
        >>> voc_colour_map(4)
        [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
    """
    colours: list[Colour] = []
    for index in range(count):
        channels = [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                channels[channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
        colours.append((channels[0], channels[1], channels[2]))
    return colours


def mask_colours(root: Path | str) -> MaskColours | None:
    """The colours of `root/labelmap.txt` (`read_labelmap`), or None when there is no such file.

    Raises:
        DataError: See `read_labelmap`.
    """
    path = Path(root) / LABELMAP_FILE
    return read_labelmap(path) if path.is_file() else None
