"""The drawn pictures of `torchbricks predict`: every head of one image drawn on it at its original size.

`PictureDrawer` draws what `torchbricks.bag_of_bricks.drawing` draws (boxes in their class colour labelled with
class and score above, class names on a filled box in the corner, the mask blended at half opacity with the
background class clear), tuned for one picture per image written while the model predicts the next batch:

- everything is drawn in place on one RGB copy of the image, at the image's size;
- a text label (its filled box and its text) is rendered once per (text, colour, font size) and pasted after
  that: measuring and rasterising text was most of the time of a picture (0.25 and 0.2 ms per label on 96x96
  images, against 0.15 ms to encode the whole JPEG);
- the segmentation palette is kept as bytes, which Pillow writes as they are (a list of 768 integers was converted
  again at every save).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from torchbricks._conventions import of_head
from torchbricks._palette import PALETTE, Color, color_for, load_font

__all__ = [
    "BOX_FONT_SIZE",
    "DRAWN_MIN_SCORE",
    "MULTILABEL_THRESHOLD",
    "PALETTE_BYTES",
    "PictureDrawer",
    "label_tile",
    "per_head",
    "present_classes",
]

DRAWN_MIN_SCORE = 0.3
"""Boxes scoring below it are left out of the drawn pictures (not out of `predictions.json`), as in training's
pictures (`BrickVisualizeBoxes`)."""
MULTILABEL_THRESHOLD = 0.5
"""A class of a multilabel head is present above this probability when the backend's result gives no `present` (the
model's own decision, at its head's threshold, which both `predict` backends give): `MultiLabelClassifier`'s default."""
BOX_FONT_SIZE = 12
"""Font size of the box labels, as `drawing.draw_boxes`."""
BOX_WIDTH = 2
POINT_RADIUS = 3
PALETTE_BYTES = (bytes(value for color in PALETTE for value in color) * (256 // len(PALETTE) + 1))[:768]
"""256 RGB palette entries, class i in `PALETTE[i % len(PALETTE)]`, for the segmentation overlays (palette PNGs)."""


@lru_cache(maxsize=4096)
def label_tile(text: str, color: Color, font_size: int) -> Image.Image:
    """A text on a filled box in `color` (white or black text, whichever reads), as `drawing`'s labels look.

    Example:
        >>> tile = label_tile("car 0.90", (230, 25, 75), 12)
        >>> tile.getpixel((0, 0)), tile.height > 12
        ((230, 25, 75), True)
    """
    font = load_font(font_size)
    _, _, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    tile = Image.new("RGB", (int(right) + 5, int(bottom) + 5), color)
    ImageDraw.Draw(tile).text((2, 2), text, font=font, fill=(255, 255, 255) if sum(color) < 384 else (0, 0, 0))
    return tile


class PictureDrawer:
    """Draws one image's results (`torchbricks.predict.ImageResult`) on a copy of the image.

    Args:
        heads: Head path -> kind.
        class_names: Names of the classes (indices when None), or head path -> its names (heads trained on data
            sets of their own, `data.sources`).
        min_score: The lowest score of a box or point drawn.
    """

    def __init__(
        self,
        heads: dict[str, str],
        class_names: Sequence[str] | Mapping[str, Sequence[str] | None] | None = None,
        min_score: float = DRAWN_MIN_SCORE,
    ) -> None:
        self.heads = dict(heads)
        self.names_by_head = per_head(class_names, heads)
        self.min_score = min_score

    def name_of(self, index: int, head: str) -> str:
        """The name of class `index` of `head`, or the index itself when it has no name."""
        names = self.names_by_head.get(head) or []
        return names[index] if 0 <= index < len(names) else str(index)

    def start(self, image: np.ndarray) -> Image.Image:
        """The picture to draw on: an RGB copy of the image (uint8 [H, W, 3])."""
        return Image.fromarray(np.ascontiguousarray(image)).convert("RGB")

    def blend_mask(self, picture: Image.Image, mask: np.ndarray, overlay: Image.Image | None) -> Image.Image:
        """The mask blended over the picture at half opacity, background class 0 left clear.

        `overlay` is the mask as a palette image (`PALETTE_BYTES`), when the classes fit a palette.
        """
        colors = overlay.convert("RGB") if overlay is not None else Image.fromarray(_class_colors(mask))
        foreground = Image.fromarray(((mask != 0) * 255).astype(np.uint8), mode="L")
        return Image.composite(Image.blend(picture, colors, 0.5), picture, foreground)

    def draw_boxes(self, picture: Image.Image, values: dict[str, Any], head: str) -> None:
        """Draws the boxes scoring at least `min_score`, each labelled `name score` above its top-left corner."""
        keep = values["scores"] >= self.min_score
        if not keep.any():
            return
        draw = ImageDraw.Draw(picture)
        for (x_min, y_min, x_max, y_max), score, label in zip(
            values["boxes"][keep].tolist(), values["scores"][keep].tolist(), values["labels"][keep].tolist(), strict=True
        ):
            if label < 0:
                continue
            color = color_for(label)
            draw.rectangle((x_min, y_min, x_max, y_max), outline=color, width=BOX_WIDTH)
            tile = label_tile(f"{self.name_of(label, head)} {score:.2f}", color, BOX_FONT_SIZE)
            picture.paste(tile, (int(x_min), int(max(0.0, y_min - (tile.height - 1)))))

    def draw_points(self, picture: Image.Image, values: dict[str, Any], head: str) -> None:
        """Draws the points scoring at least `min_score` as dots in their class colour, each labelled `name score` to
        its right."""
        keep = values["scores"] >= self.min_score
        if not keep.any():
            return
        draw = ImageDraw.Draw(picture)
        for (x, y), score, label in zip(
            values["points"][keep].tolist(), values["scores"][keep].tolist(), values["labels"][keep].tolist(), strict=True
        ):
            if label < 0:
                continue
            color = color_for(label)
            draw.ellipse(
                (x - POINT_RADIUS, y - POINT_RADIUS, x + POINT_RADIUS, y + POINT_RADIUS), fill=color, outline=(255, 255, 255)
            )
            tile = label_tile(f"{self.name_of(label, head)} {score:.2f}", color, BOX_FONT_SIZE)
            picture.paste(tile, (int(x + POINT_RADIUS + 1), int(max(0.0, y - tile.height / 2))))

    def write_label(self, picture: Image.Image, text: str, line: int) -> None:
        """Writes a text on a filled box at the top-left corner, on the `line`-th line."""
        font_size = max(10, min(32, picture.height // 16))
        picture.paste(label_tile(text or "-", PALETTE[0], font_size), (4, 4 + line * (font_size + 8)))

    def classification_text(self, kind: str, values: Mapping[str, Any], head: str) -> str:
        """`name score` of the most probable class, the present classes of a multilabel head (`present_classes`), or a
        count head's `count N.N`."""
        if kind == "count":
            return f"count {float(values['count']):.1f}"
        if kind == "classification":
            probabilities = values["probabilities"]
            best = int(np.argmax(probabilities))
            return f"{self.name_of(best, head)} {probabilities[best]:.2f}"
        return ", ".join(self.name_of(i, head) for i in present_classes(values))


def present_classes(values: Mapping[str, Any]) -> list[int]:
    """The classes a multilabel head's result says are present: its `present` (the model's own decision at its head's
    threshold) where nonzero, or without one, those of probability above `MULTILABEL_THRESHOLD`.

    Example:
        >>> scores = np.array([0.9, 0.4, 0.2])
        >>> present_classes({"probabilities": scores}), present_classes({"probabilities": scores, "present": [1, 1, 0]})
        ([0], [0, 1])
    """
    if values.get("present") is not None:
        return np.flatnonzero(values["present"]).tolist()
    return np.flatnonzero(np.asarray(values["probabilities"]) > MULTILABEL_THRESHOLD).tolist()


def per_head(values: Sequence[Any] | Mapping[str, Sequence[Any] | None] | None, heads: Mapping[str, str]) -> dict[str, list[Any]]:
    """Head path -> its list: `values` for every head, or each head's entry of a mapping (by its path, else by its
    first name: a source `detection` names the head `detection/...`); empty lists where there is none.

    Example:
        >>> per_head({"boxes": ["car"], "kind": ["cat", "dog"]}, {"boxes": "detection", "kind/head": "classification"})
        {'boxes': ['car'], 'kind/head': ['cat', 'dog']}
    """
    if values is None or not isinstance(values, Mapping):
        return {head: list(values or []) for head in heads}
    return {head: list(of_head(values, head) or []) for head in heads}


def _class_colors(mask: np.ndarray) -> np.ndarray:
    return np.array(PALETTE, dtype=np.uint8)[np.mod(mask, len(PALETTE))]
