"""A generated data set of coloured shapes on cluttered backgrounds, written in the three layouts users bring.

`write_shapes_dataset(root)` (the command `torchbricks make-dataset shapes DIR`) writes:

- `DIR/classification/{train,val}/<class>/*.png`: one shape per image (torchvision's ImageFolder layout);
- `DIR/segmentation/{train,val}/images/*.png` and `masks/*.png` of the same stem (pixel = class index, 0 the
  background) and `DIR/segmentation/classes.txt` (one class name per line, line 0 the background);
- `DIR/detection/{train,val}.json`: COCO instances with `bbox` `[x, y, w, h]` and polygon `segmentation`, images
  under `DIR/detection/images/{train,val}/`, category ids that are not contiguous. A shape's polygon follows the
  pixel edges around the pixels drawn, so that COCO's pixel rule (pycocotools' `annToMask`, the multitask masks)
  gives exactly those pixels, the segmentation layout's mask; `bbox` and `area` are those pixels' box and count.

A shape's class is its form (circle, square, triangle), never its colour; images hold one to four shapes that do
not overlap. The same seed writes the same files. Everything is written into a temporary folder beside `DIR`
and renamed into place at the end, so an interrupted run leaves no half-written data set.
"""

from __future__ import annotations

import colorsys
import json
import math
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from torchbricks._files import recover_folder, replace_folder
from torchbricks.datasets.polygons import outline_pixels
from torchbricks.errors import BrickError, ShapesDatasetExistsError

__all__ = ["CATEGORY_IDS", "SHAPE_CLASSES", "ShapesDatasetExistsError", "draw_shapes_image", "write_shapes_dataset"]

SHAPE_CLASSES = ("circle", "square", "triangle")
CATEGORY_IDS = {"circle": 3, "square": 7, "triangle": 12}
"""COCO category ids of the classes: deliberately not contiguous, as in COCO itself."""

_SPLITS = ("train", "val")


@dataclass(frozen=True)
class Shape:
    """One drawn shape: its class index (into `SHAPE_CLASSES`), the polygon Pillow filled (pixel centres on the
    integers, the pixels its outline passes through included) and `outline`, the COCO polygons of the pixels it
    filled: COCO's pixel rule (`torchbricks.datasets.polygons.rasterize_polygons`, pycocotools' `annToMask`) gives
    exactly those pixels back, where `polygon` itself would give about half a pixel less all round."""

    label: int
    polygon: list[tuple[float, float]]
    outline: list[list[float]]

    def bbox(self) -> tuple[float, float, float, float]:
        """`[x, y, w, h]` of the outline, COCO style: the box of the pixels drawn."""
        xs = [part[i] for part in self.outline for i in range(0, len(part), 2)]
        ys = [part[i] for part in self.outline for i in range(1, len(part), 2)]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)

    def area(self) -> int:
        """Pixels drawn: the area of the outline."""
        return round(sum(_polygon_area(list(zip(part[::2], part[1::2], strict=True))) for part in self.outline))


def _polygon(label: int, center: tuple[float, float], radius: float, angle: float) -> list[tuple[float, float]]:
    corners = {0: 32, 1: 4, 2: 3}[label]
    offset = angle + (math.pi / 4 if corners == 4 else -math.pi / 2 if corners == 3 else 0.0)
    return [
        (
            center[0] + radius * math.cos(offset + 2 * math.pi * k / corners),
            center[1] + radius * math.sin(offset + 2 * math.pi * k / corners),
        )
        for k in range(corners)
    ]


def _shape_color(rng: np.random.Generator) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.65, 1.0))
    return int(red * 255), int(green * 255), int(blue * 255)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A gradient between two muted colours, noise, and clutter: thin lines and small dots in random colours."""
    start, end = rng.uniform(20, 200, size=3), rng.uniform(20, 200, size=3)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    gradient = start + (end - start) * ramp
    if rng.uniform() < 0.5:
        gradient = gradient.transpose(1, 0, 2)
    pixels = np.broadcast_to(gradient, (size, size, 3)) + rng.normal(0, 10, size=(size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 10))):
        points = [tuple(rng.uniform(0, size, size=2)) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(0, 256, size=3)), width=int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(3, 8))):
        x, y = rng.uniform(0, size, size=2)
        r = rng.uniform(1, 2.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, size=3)))
    return image


def draw_shapes_image(
    rng: np.random.Generator, size: int, num_shapes: int, radius_range: tuple[float, float]
) -> tuple[Image.Image, Image.Image, list[Shape]]:
    """An RGB image with up to `num_shapes` non-overlapping shapes, its class mask (0 background, class + 1) and
    the shapes.

    Example:
        >>> image, mask, shapes = draw_shapes_image(np.random.default_rng(0), 64, 2, (0.1, 0.2))
        >>> image.size, mask.mode, 1 <= len(shapes) <= 2
        ((64, 64), 'L', True)
    """
    image = _background(rng, size)
    mask = Image.new("L", (size, size), 0)
    draw, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    shapes: list[Shape] = []
    taken: list[tuple[float, float, float]] = []
    for _ in range(num_shapes * 20):  # placement attempts
        if len(shapes) == num_shapes:
            break
        radius = rng.uniform(*radius_range) * size
        center = (rng.uniform(radius + 1, size - radius - 1), rng.uniform(radius + 1, size - radius - 1))
        if any(math.dist(center, (x, y)) < radius + r + 2 for x, y, r in taken):
            continue
        label = int(rng.integers(len(SHAPE_CLASSES)))
        polygon = _polygon(label, center, radius, rng.uniform(0, 2 * math.pi))
        draw.polygon(polygon, fill=_shape_color(rng))
        draw_mask.polygon(polygon, fill=label + 1)
        taken.append((*center, radius))
        shapes.append(Shape(label, polygon, outline_pixels(_pixels_filled(polygon, size))))
    return image, mask, shapes


def _pixels_filled(polygon: list[tuple[float, float]], size: int) -> np.ndarray:
    """The pixels Pillow's `polygon` fills for `polygon` (boolean [size, size]), drawn alone: the shapes of an image
    do not overlap, so these are the shape's pixels in the image and in its mask."""
    canvas = Image.new("1", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(polygon, fill=1)
    return np.asarray(canvas, dtype=bool)


def write_shapes_dataset(
    root: Path | str,
    num_train: int = 500,
    num_val: int = 100,
    image_size: int = 96,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Writes the shapes data set in the three layouts under `root` (see the module docstring); returns `root`.

    Args:
        root: The folder to create.
        num_train: Images per layout in the train split.
        num_val: Images per layout in the validation split.
        image_size: Side of the square images in pixels.
        seed: Seed of everything drawn; each image has its own stream, so the splits do not depend on each other.
        overwrite: Replace an existing `root` (only once the new data set is complete).

    Raises:
        ShapesDatasetExistsError: `root` exists and `overwrite` is False; nothing is written.
        BrickError: A count or the size is out of range.

    Example:
        >>> import tempfile
        >>> root = write_shapes_dataset(Path(tempfile.mkdtemp()) / "shapes", num_train=2, num_val=1, image_size=32)
        >>> sorted(path.name for path in (root / "classification" / "train").iterdir())
        ['circle', 'square', 'triangle']
    """
    root = Path(root)
    if num_train < 1 or num_val < 1:
        raise BrickError(f"write_shapes_dataset: num_train and num_val must be at least 1, got {num_train} and {num_val}.")
    if image_size < 16:
        raise BrickError(f"write_shapes_dataset: image_size must be at least 16 pixels, got {image_size}.")
    recover_folder(root)  # a data set whose replacement was killed is put back first: without overwrite it is kept
    if root.exists() and not overwrite:
        raise ShapesDatasetExistsError(f"{str(root)!r} already exists; pass overwrite=True (--overwrite) to replace it.")
    root.parent.mkdir(parents=True, exist_ok=True)
    temporary = root.with_name(f".{root.name}.{uuid.uuid4().hex}.tmp")
    try:
        for split_index, (split, count) in enumerate(zip(_SPLITS, (num_train, num_val), strict=True)):
            _write_classification(temporary / "classification" / split, count, image_size, (seed, split_index, 0))
            _write_multi_shape(temporary, split, count, image_size, (seed, split_index, 1))
        (temporary / "segmentation" / "classes.txt").write_text(
            "\n".join(("background", *SHAPE_CLASSES)) + "\n", encoding="utf-8"
        )
        replace_folder(temporary, root)  # an existing data set is put back if the swap fails
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return root


def _rng(stream: Sequence[int], index: int) -> np.random.Generator:
    return np.random.default_rng([*stream, index])


def _write_classification(folder: Path, count: int, size: int, stream: Sequence[int]) -> None:
    for name in SHAPE_CLASSES:
        (folder / name).mkdir(parents=True)
    for index in range(count):
        rng = _rng(stream, index)
        image, _, shapes = draw_shapes_image(rng, size, num_shapes=1, radius_range=(0.2, 0.38))
        image.save(folder / SHAPE_CLASSES[shapes[0].label] / f"{index:05d}.png")


def _write_multi_shape(root: Path, split: str, count: int, size: int, stream: Sequence[int]) -> None:
    images_segmentation = root / "segmentation" / split / "images"
    masks = root / "segmentation" / split / "masks"
    images_detection = root / "detection" / "images" / split
    for folder in (images_segmentation, masks, images_detection):
        folder.mkdir(parents=True)
    coco_images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for index in range(count):
        rng = _rng(stream, index)
        image, mask, shapes = draw_shapes_image(rng, size, num_shapes=int(rng.integers(1, 5)), radius_range=(0.1, 0.22))
        name = f"{index:05d}.png"
        image.save(images_segmentation / name)
        mask.save(masks / name)
        image.save(images_detection / name)
        image_id = index + 1
        coco_images.append({"id": image_id, "file_name": f"images/{split}/{name}", "width": size, "height": size})
        for shape in shapes:
            x, y, w, h = (int(value) for value in shape.bbox())
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[SHAPE_CLASSES[shape.label]],
                    "bbox": [x, y, w, h],
                    "area": shape.area(),
                    "iscrowd": 0,
                    "segmentation": [[int(value) for value in part] for part in shape.outline],
                }
            )
    categories = [{"id": CATEGORY_IDS[name], "name": name, "supercategory": "shape"} for name in SHAPE_CLASSES]
    document = {"images": coco_images, "annotations": annotations, "categories": categories}
    (root / "detection" / f"{split}.json").write_text(json.dumps(document), encoding="utf-8")


def _polygon_area(polygon: list[tuple[float, float]]) -> float:
    """The area of a simple polygon (the shoelace formula)."""
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True))) / 2
