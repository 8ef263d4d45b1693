"""`torchbricks predict --labels coco`: a head's predictions as a COCO instances file, the layout CVAT ("COCO 1.0"),
Label Studio and Roboflow import, to correct rather than draw from scratch (numpy only: no torch with `--onnx`).

- detection: an annotation per box scoring at least the minimum score, cut to the image: `bbox` `[x, y, w, h]`,
  `area` `w * h`, `segmentation` `[]` (no outline: the box), `score`;
- segmentation: an annotation per class present in a mask but the background (class 0): `segmentation` the
  polygons along the pixel edges of the class's pixels (`outline_pixels`), which COCO's pixel rule fills back to
  exactly those pixels, `bbox` their box, `area` their count. A semantic mask has no objects, so the class's pixels are
  one annotation (its parts and holes as several polygons); split it into objects in the labelling tool.

Categories: the experiment's COCO category ids when it trained on COCO, else `class index + 1` for detection and the
class index for segmentation (whose index 0 is the background, not a category).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from torchbricks._pixel_outlines import outline_pixels

__all__ = ["CocoLabels", "boxes_to_label"]


def boxes_to_label(
    values: dict[str, Any], min_score: float, width: int, height: int
) -> list[tuple[int, float, float, float, float, float]]:
    """A detection result's boxes as labels write them: those scoring at least `min_score`, cut to the image
    (`width` x `height`, the part a labelling tool draws), padding rows (label -1) and boxes empty once cut left out;
    each `(label, score, x_min, y_min, x_max, y_max)`.

    Example:
        >>> values = {"boxes": np.array([[-2.0, 1, 5, 9], [1, 1, 2, 2], [0, 0, 3, 3]]),
        ...           "scores": np.array([0.9, 0.1, 0.8]), "labels": np.array([2, 0, -1])}
        >>> boxes_to_label(values, 0.3, 4, 6)
        [(2, 0.9, 0.0, 1.0, 4.0, 6.0)]
    """
    keep = values["scores"] >= min_score
    corners = np.clip(np.asarray(values["boxes"][keep], dtype=np.float64).reshape(-1, 4), 0.0, [width, height, width, height])
    return [
        (int(label), score, x_min, y_min, x_max, y_max)
        for (x_min, y_min, x_max, y_max), score, label in zip(
            corners.tolist(), values["scores"][keep].tolist(), values["labels"][keep].tolist(), strict=True
        )
        if label >= 0 and x_max > x_min and y_max > y_min
    ]


class CocoLabels:
    """One head's COCO instances file, image by image (`add`, in the order of the image ids), then whole (`document`).

    A mask's outlines, the costly part, may be traced apart from `add` (`trace`, on the threads that write the
    images' files, in any order): `document` takes them by the image's name.

    Args:
        kind: `detection` or `segmentation`.
        class_names: The head's class names (indices when empty).
        category_ids: The head's COCO category ids per class, when it trained on COCO.
        min_score: The lowest score of a box written.
    """

    def __init__(self, kind: str, class_names: Sequence[str], category_ids: Sequence[int], min_score: float) -> None:
        self.kind = kind
        self.class_names = list(class_names)
        self.category_ids = list(category_ids)
        self.min_score = min_score
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self._highest = -1
        self._names: list[str] = []  # per image, in `images`' order: its name, by which `trace` keeps its outlines
        self._outlines: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # name -> (class, fields) per class of its mask

    def category_id(self, label: int) -> int:
        """The COCO category id of class `label`."""
        if 0 <= label < len(self.category_ids):
            return int(self.category_ids[label])
        return label + 1 if self.kind == "detection" else label

    def add(self, image_id: int, name: str, file_name: str, size: tuple[int, int], values: dict[str, Any]) -> None:
        """Adds an image (`size`: height, width) and, for detection, its boxes in `values`; a mask's outlines come
        from `trace(name, mask)`."""
        height, width = size
        self.images.append({"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)})
        self._names.append(name)
        if self.kind == "detection":
            self._add_boxes(image_id, values, width, height)

    def trace(self, name: str, mask: np.ndarray) -> None:
        """Keeps the outlines of the image `name`'s mask, per class present but the background (safe from several
        threads: each image's entry is its own)."""
        mask = np.asarray(mask)
        outlines = []
        for label in np.unique(mask).tolist():
            if label == 0:  # the background: no category
                continue
            pixels = mask == label
            rows, columns = np.nonzero(pixels.any(axis=1))[0], np.nonzero(pixels.any(axis=0))[0]
            box = [int(columns[0]), int(rows[0]), int(columns[-1] + 1 - columns[0]), int(rows[-1] + 1 - rows[0])]
            outlines.append((int(label), {"bbox": box, "area": int(pixels.sum()), "segmentation": outline_pixels(pixels)}))
        self._outlines[name] = outlines

    def _annotate(self, image_id: int, label: int, **fields: Any) -> None:
        self._highest = max(self._highest, label)
        entry = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": self.category_id(label)}
        self.annotations.append({**entry, "iscrowd": 0, **fields})

    def _add_boxes(self, image_id: int, values: dict[str, Any], width: int, height: int) -> None:
        for label, score, x_min, y_min, x_max, y_max in boxes_to_label(values, self.min_score, width, height):
            box = [round(x_min, 3), round(y_min, 3), round(x_max - x_min, 3), round(y_max - y_min, 3)]
            self._annotate(image_id, label, bbox=box, area=round(box[2] * box[3], 3), segmentation=[], score=round(score, 5))

    def document(self) -> dict[str, Any]:
        """The COCO instances file: `images`, `annotations` and `categories` (a segmentation head's annotations in
        the order of the images, from their traced outlines).

        Raises:
            KeyError: An image of a segmentation head whose mask was not traced.
        """
        if self.kind != "detection" and not self.annotations:
            for entry, name in zip(self.images, self._names, strict=True):
                for label, fields in self._outlines[name]:
                    self._annotate(entry["id"], label, **fields)
        first = 0 if self.kind == "detection" else 1
        count = max(len(self.class_names), self._highest + 1)
        categories = [
            {"id": self.category_id(label), "name": self.class_names[label] if label < len(self.class_names) else str(label)}
            for label in range(first, count)
        ]
        return {"images": self.images, "annotations": self.annotations, "categories": categories}
