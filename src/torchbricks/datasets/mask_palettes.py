"""Palette masks whose palettes disagree: one index coloured otherwise in two masks of a data set.

Palette PNG masks (mode P) are read by index, as Pascal VOC's are. An image editor that saves an indexed PNG with an
"optimised" palette (GIMP's and Photoshop's indexed modes do) keeps each pixel's colour and renumbers the indices,
so the edited mask's pixels would be read as other classes without a word. Masks from one tool share one palette, so
a data set whose masks colour one class index two ways is refused before training (`palette_disagreement`):

- the palettes are compared from the files' headers; only when two differ are the masks of the other palettes
  decoded, and an index counts only where a mask uses it, so palettes that differ in colours no mask uses pass;
- the first mask read (the training split's first, by name) gives the colours the others are compared with;
- with a `labelmap.txt` the colours are the classes and palette masks are read by colour
  (`torchbricks.datasets.readers.read_mask`), so nothing is compared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._pictures import ImageHeaders, stored_palette
from torchbricks.datasets._reading import open_image

__all__ = ["palette_disagreement"]

Colour = tuple[int, int, int]


def _palette(path: Path, headers: ImageHeaders | None = None) -> tuple[int, ...] | None:
    """The flat RGB palette of a palette PNG from its header, None for any other mask (or a file Pillow cannot open:
    its own error comes when it is read)."""
    header = None if headers is None else headers.header(path, palette=True)
    if header is not None:
        return header.palette
    try:
        with Image.open(path) as mask:
            return stored_palette(mask, path)
    except (OSError, Image.DecompressionBombError):
        return None


def _colour(palette: Sequence[int], index: int) -> Colour | None:
    if 3 * index + 3 > len(palette):
        return None
    red, green, blue = palette[3 * index : 3 * index + 3]
    return (red, green, blue)


def _used_indices(path: Path, num_classes: int) -> list[int]:
    """The class indices (below `num_classes`, 255 left out) the palette mask `path` holds."""
    with open_image(path) as mask:
        values = np.unique(np.asarray(mask))
    return [int(value) for value in values.tolist() if value < num_classes and value != IGNORE_INDEX]


def palette_disagreement(
    masks: Sequence[Path], num_classes: int, root: Path | str, headers: ImageHeaders | None = None
) -> str | None:
    """The problem when two palette masks of `masks` (every split's, the training split's first) colour a class
    index they both use differently, or None.

    The palettes are read from the headers. Where all agree in their first `num_classes` colours nothing is decoded.
    Otherwise the masks of every palette but the first mask's are decoded, and for an index one of them colours
    otherwise than the first palette, masks of the first palette are decoded until one using that index is found.
    Grey-level masks, and index 255 (ignored), are not compared. With `headers`, each mask's header is opened there
    (once for every check of a start-up: the data module reads the masks' sizes from it too).
    """
    groups: dict[tuple[int, ...], list[Path]] = {}
    for path in masks:
        palette = _palette(path, headers)
        if palette is not None:
            groups.setdefault(palette[: 3 * num_classes], []).append(path)
    if len(groups) < 2:
        return None
    (reference, reference_masks), *others = groups.items()
    seen: dict[int, tuple[Colour, Path]] = {}  # index -> (its colour, the first mask using it) in the other palettes
    for palette, paths in others:
        for path in paths:
            for index in _used_indices(path, num_classes):
                colour = _colour(palette, index)
                if colour is None:
                    continue  # a value past its palette: read by index, as a grey level is
                first = seen.setdefault(index, (colour, path))
                if first[0] != colour:
                    return _message(index, first, (colour, path), root)
    differing = {index: found for index, found in seen.items() if _colour(reference, index) != found[0]}
    for path in reference_masks:
        for index in set(_used_indices(path, num_classes)) & set(differing):
            colour = _colour(reference, index)
            if colour is not None:
                return _message(index, (colour, path), differing[index], root)
    return None


def _message(index: int, first: tuple[Colour, Path], other: tuple[Colour, Path], root: Path | str) -> str:
    return (
        f"The palette masks {str(first[1])!r} and {str(other[1])!r} colour class index {index} differently: "
        f"{first[0]} in the first, {other[0]} in the second. Palette masks are read by index, so if an image editor "
        "saved one with another palette (GIMP and Photoshop renumber the colours of an indexed image when they "
        "optimise its palette), its pixels would be read as other classes. If the colours are the classes, list "
        f"them in {str(Path(root) / 'labelmap.txt')!r} (one class a line, `name:r,g,b::`, the background first): "
        "palette masks are then read by colour. If the indices are right, save every mask with one palette or as "
        "grey levels (`Image.fromarray(numpy.asarray(Image.open(path))).save(path)` keeps the indices)."
    )
