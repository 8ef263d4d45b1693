"""The files `torchbricks predict` writes: `PredictionWriter` saves per-image results of any backend into a folder."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from torchbricks._coco_labels import CocoLabels, boxes_to_label
from torchbricks._conventions import PREDICT_VOC_DATABASE
from torchbricks._predict_results import ImageResult
from torchbricks._prediction_pictures import DRAWN_MIN_SCORE, PALETTE_BYTES, PictureDrawer, per_head, present_classes
from torchbricks.errors import BrickError

__all__ = ["COCO_LABELS_FILE", "LABEL_LAYOUTS", "PICTURE_FORMATS", "TOP_K", "PredictionWriter"]

TOP_K = 5
PICTURE_FORMATS = ("jpg", "png", None)
JPEG_QUALITY = 90
LABEL_LAYOUTS = ("yolo", "voc", "coco", "folders")
"""The layouts predictions can be written in as labels, to correct rather than label from scratch: boxes for a labelling
tool (`yolo`, `voc`), boxes and mask outlines (`coco`), images sorted into class folders (`folders`)."""
COCO_LABELS_FILE = "annotations/instances_default.json"
"""Where `labels="coco"` writes a head's COCO instances (CVAT's "COCO 1.0" layout, beside `images/`)."""


class PredictionWriter:
    """Saves per-image results of any backend into `folder` (created if missing).

    Per image `name` (a relative path without suffix, see `predict_images`):

    - `drawn/<name>.jpg` (or `.png`): the image at its original size with every head drawn on it (mask overlay,
      boxes and points with class and score at or above `DRAWN_MIN_SCORE`, class names, counts);
    - segmentation: `masks/<name>.png`, the class index per pixel (8-bit greyscale, 16-bit above 255 classes), and
      with `overlays`, `overlays/<name>.png`, the mask in colours (a palette PNG, class i in `drawing.PALETTE[i]`,
      the background class 0 transparent) to lay over the image in another tool (the drawn picture has it blended);

    and for all images, when `finish` is called:

    - detection: `predictions.json` in the COCO results format, `[{image_id, file_name, category_id,
      category_name, bbox: [x, y, width, height], score}]` (the category id of the training data when it was COCO,
      else the class index; image ids count from 1 in the order of the images; pixels rounded to 0.001, scores to
      0.00001);
    - points: `points.json`, `[{image_id, file_name, category_id, category_name, point: [x, y], score}]` (ids and
      rounding as `predictions.json`);
    - count: the column `count` of `predictions.csv` (the model's real number, 4 decimals, not rounded to a whole);
    - classification and multilabel: `predictions.csv`, one row per image: `file`, then per head `class`,
      `score` and `top5` (`name:probability;...`), for a multilabel head `present` (`name;...`: the result's
      `present`, the model's decision at its head's own threshold; above `MULTILABEL_THRESHOLD` for a backend that
      gives none) and `probabilities` (`name:probability;...`).

    `predictions.csv` is UTF-8 whatever the system's locale, as the JSON files are (ASCII with `\\u` escapes).

    With `labels`, the boxes of each detection head scoring at least `min_score` are also written as labels a
    labelling tool opens, to correct rather than draw from scratch (and that `torchbricks train` reads back):

    - `yolo`: `labels/<name>.txt`, a line `class cx cy w h` per box (normalised to [0, 1], 6 decimals; an empty file
      for an image without a box), and `classes.txt`, a class name per line (Label Studio's and labelImg's layout;
      put the images in `images/` beside `labels/` to open or train on the folder);
    - `voc`: `Annotations/<name>.xml`, Pascal VOC with the image's file name and size and an `object` per box
      (corners in whole pixels from 0, as CVAT, Label Studio and labelImg write them; `source/database` is
      `torchbricks predict`, so the VOC reader reads them so);
    - `coco` (detection and segmentation heads): `annotations/instances_default.json`, COCO instances (CVAT's
      "COCO 1.0" layout: put the images in `images/` beside `annotations/`), an annotation per box, or per class
      present in a mask with the polygons of its pixels' edges (`torchbricks._coco_labels`);
    - `folders` (classification heads): `classified/<class>/<name>.<suffix>`, each image file in the folder of the
      class predicted for it (a hard link to the file, or a copy where the file system cannot link), the layout
      `torchbricks train task=classification` reads: move the images sorted wrong, then train on it.

    With several heads, each head's files and columns carry its name: `<head>_predictions.json`,
    `<head>_masks/`, `<head>_overlays/`, `<head>_labels/`, `<head>_classes.txt`, `<head>_Annotations/`, columns
    `<head>/class`... (a `/` in a head path becomes `-` in a file name).

    `record` (rows, in order) and `write_images` (files, safe to call from several threads) are the two halves of
    `add`.

    Args:
        folder: Where the files go.
        heads: Head path -> kind, as the backend's `heads`.
        class_names: Names of the classes (indices when None), or head path -> its names (heads trained on data
            sets of their own, `data.sources`).
        category_ids: COCO category id of each class, when the training data was COCO (or head path -> its ids).
        pictures: Format of the drawn pictures, `jpg` (fast to write) or `png`; None draws none.
        overlays: Also write each mask in colours as its own palette PNG (`overlays/`); off by default, since the
            drawn picture already shows the mask blended and every file costs as much as the model per image.
        labels: Also write each detection head's boxes, or sort the images by each classification head's class, in
            this layout (`LABEL_LAYOUTS`), or None.
        min_score: The lowest score of a box (or point) drawn and written as a label; `predictions.json` keeps
            every box the model gives, as COCO results do.

    Raises:
        BrickError: An unknown picture format or label layout, a `labels` layout without a head of its kind (yolo
            and voc: detection; coco: detection or segmentation; folders: classification), or a `min_score` outside
            [0, 1].
    """

    def __init__(
        self,
        folder: Path | str,
        heads: dict[str, str],
        class_names: Sequence[str] | Mapping[str, Sequence[str] | None] | None = None,
        category_ids: Sequence[int] | Mapping[str, Sequence[int] | None] | None = None,
        pictures: str | None = "jpg",
        overlays: bool = False,
        labels: str | None = None,
        min_score: float = DRAWN_MIN_SCORE,
    ) -> None:
        if pictures not in PICTURE_FORMATS:
            raise BrickError(f"pictures must be one of {list(PICTURE_FORMATS)}, got {pictures!r}.")
        _check_labels(labels, min_score, heads)
        self.folder = Path(folder)
        self.heads = dict(heads)
        self.category_ids = per_head(category_ids, heads)
        self.pictures = pictures
        self.overlays = overlays
        self.labels = labels
        self.min_score = min_score
        self.detections: dict[str, list[dict[str, Any]]] = {head: [] for head, kind in heads.items() if kind == "detection"}
        self.points: dict[str, list[dict[str, Any]]] = {head: [] for head, kind in heads.items() if kind == "points"}
        self.rows: list[dict[str, str]] = []
        self.count = 0
        self._drawer = PictureDrawer(self.heads, class_names, min_score)
        self._coco = {
            head: CocoLabels(kind, self._drawer.names_by_head.get(head) or [], self.category_ids[head], min_score)
            for head, kind in self.heads.items()
            if labels == "coco" and kind in ("detection", "segmentation")
        }
        self._created: set[Path] = set()

    def _prefix(self, head: str) -> str:
        return "" if len(self.heads) == 1 else head.replace("/", "-") + "_"

    def _column(self, head: str, name: str) -> str:
        return name if len(self.heads) == 1 else f"{head}/{name}"

    def _name_of(self, index: int, head: str) -> str:
        return self._drawer.name_of(index, head)

    def add(self, name: str, file_name: str, image: np.ndarray, result: ImageResult) -> None:
        """Records one image's rows and writes its files.

        Args:
            name: The image's name in the output (a relative POSIX path without suffix).
            file_name: The source named in `predictions.json` and `predictions.csv`.
            image: The image, uint8 [H, W, 3] at its original size.
            result: The backend's result for the image.
        """
        self.record(file_name, result, image.shape[:2], f"{name}{Path(file_name).suffix or '.jpg'}", name)
        self.write_images(name, image, result)

    def record(
        self,
        file_name: str,
        result: ImageResult,
        size: tuple[int, int] | None = None,
        image_file: str | None = None,
        name: str | None = None,
    ) -> None:
        """Keeps one image's detections and CSV row for `finish`; images are numbered in the order recorded.

        Args:
            file_name: The source named in `predictions.json` and `predictions.csv`.
            result: The backend's result for the image.
            size: The image's (height, width), for `labels="coco"` (needed with a detection head).
            image_file: The image's path in the COCO labels' `file_name` (`file_name` when None).
            name: The image's name in the output, as `write_images` is given it, which then traces the outlines of
                its masks for `labels="coco"` (on the writing threads); None traces them here.
        """
        self.count += 1
        for head, labels in self._coco.items():
            values = result[head]
            shape = size if size is not None else values["mask"].shape[:2] if "mask" in values else None
            if shape is None:
                raise BrickError(f"labels='coco' needs the size of each image of head {head!r}: record(..., size=(H, W)).")
            key = name if name is not None else image_file or file_name
            labels.add(self.count, key, image_file or file_name, (int(shape[0]), int(shape[1])), values)
            if name is None and labels.kind == "segmentation":
                labels.trace(key, values["mask"])
        row: dict[str, str] = {"file": file_name}
        for head, kind in self.heads.items():
            values = result[head]
            if kind == "detection":
                self._add_boxes(head, file_name, values)
            elif kind == "points":
                self._add_points(head, file_name, values)
            elif kind == "count":
                row[self._column(head, "count")] = f"{float(values['count']):.4f}"
            elif kind in ("classification", "multilabel"):
                probabilities = values["probabilities"]
                if kind == "classification":
                    order = np.argsort(-probabilities, kind="stable")
                    best = int(order[0])
                    row[self._column(head, "class")] = self._name_of(best, head)
                    row[self._column(head, "score")] = f"{probabilities[best]:.4f}"
                    row[self._column(head, "top5")] = ";".join(
                        f"{self._name_of(int(index), head)}:{probabilities[index]:.4f}" for index in order[:TOP_K]
                    )
                else:
                    present = [self._name_of(index, head) for index in present_classes(values)]
                    row[self._column(head, "present")] = ";".join(present)
                    row[self._column(head, "probabilities")] = ";".join(
                        f"{self._name_of(index, head)}:{value:.4f}" for index, value in enumerate(probabilities.tolist())
                    )
        if len(row) > 1:
            self.rows.append(row)

    def write_images(
        self,
        name: str,
        image: np.ndarray,
        result: ImageResult,
        size: tuple[int, int] | None = None,
        source: Path | None = None,
    ) -> None:
        """Writes one image's masks, overlays (when asked for), labels (when asked for) and drawn picture.

        Args:
            name: The image's name in the output (a relative POSIX path without suffix).
            image: The picture to draw on, uint8 [H, W, 3].
            result: The backend's result for the image.
            size: The image's (height, width), which the results' pixels are of; the picture's when None.
            source: The image's file, for the labels that name it (VOC's `filename`: `<name>.jpg` when None) and the
                class folders that hold it; None for a frame of a video (no file of its own).
        """
        picture = self._drawer.start(image) if self.pictures else None
        text_line = 0
        for head, kind in self.heads.items():
            values = result[head]
            if kind == "detection" and self.labels in ("yolo", "voc"):
                height, width = size if size is not None else image.shape[:2]
                file_name = source.name if source is not None else f"{Path(name).name}.jpg"
                self._write_labels(head, name, values, (int(height), int(width)), file_name)
            elif kind == "classification" and self.labels == "folders":
                self._sort_into_class_folder(head, name, values, source)
            if kind == "segmentation":
                picture = self._write_mask(head, name, values["mask"], picture)
            elif picture is None:
                continue
            elif kind == "detection":
                self._drawer.draw_boxes(picture, values, head)
            elif kind == "points":
                self._drawer.draw_points(picture, values, head)
            else:
                text = self._drawer.classification_text(kind, values, head)
                self._drawer.write_label(picture, text, text_line)
                text_line += 1
        if picture is not None:
            _save(picture, self.folder / "drawn" / f"{name}.{self.pictures}", self._created)

    def _write_mask(self, head: str, name: str, mask: np.ndarray, picture: Image.Image | None) -> Image.Image | None:
        """Writes one segmentation head's mask (and overlay; traces its COCO outlines) and returns the picture with the
        mask blended in."""
        if head in self._coco:  # the costly part of the COCO labels, here on the writing threads
            self._coco[head].trace(name, mask)
        wide = mask.max(initial=0) > 255
        classes = mask.astype(np.uint16 if wide else np.uint8)
        path = self.folder / f"{self._prefix(head)}masks" / f"{name}.png"
        _make_parent(path, self._created)
        path.write_bytes(grey_png(classes))
        overlay = None
        if not wide and (self.overlays or picture is not None):  # beyond a palette: no overlay file
            overlay = Image.fromarray(classes, mode="P")
            overlay.putpalette(PALETTE_BYTES, "RGB")
            if self.overlays:
                path = self.folder / f"{self._prefix(head)}overlays" / f"{name}.png"
                _save(overlay, path, self._created, transparency=0)
        if picture is not None:  # blended from the palette image, or from the mask itself beyond a palette
            picture = self._drawer.blend_mask(picture, mask, overlay)
        return picture

    def _write_labels(self, head: str, name: str, values: dict[str, Any], size: tuple[int, int], file_name: str) -> None:
        """Writes one image's boxes scoring at least `min_score` as a YOLO or VOC label file (see the class)."""
        height, width = size
        boxes = [
            (label, x_min, y_min, x_max, y_max)
            for label, _, x_min, y_min, x_max, y_max in boxes_to_label(values, self.min_score, width, height)
        ]
        if self.labels == "yolo":
            path = self.folder / f"{self._prefix(head)}labels" / f"{name}.txt"
            text = "".join(
                f"{label} {(x_min + x_max) / 2 / width:.6f} {(y_min + y_max) / 2 / height:.6f} "
                f"{(x_max - x_min) / width:.6f} {(y_max - y_min) / height:.6f}\n"
                for label, x_min, y_min, x_max, y_max in boxes
            )
        else:
            path = self.folder / f"{self._prefix(head)}Annotations" / f"{name}.xml"
            named = [(self._name_of(label, head), x_min, y_min, x_max, y_max) for label, x_min, y_min, x_max, y_max in boxes]
            text = _voc_xml(file_name, size, named)
        _make_parent(path, self._created)
        path.write_text(text, encoding="utf-8", errors="surrogateescape")

    def _sort_into_class_folder(self, head: str, name: str, values: dict[str, Any], source: Path | None) -> None:
        """Links (or copies) the image file into the folder of its predicted class (see the class)."""
        import os
        import shutil

        if source is None:
            raise BrickError(f"labels='folders' sorts image files; {name!r} is a frame of a video, without a file of its own.")
        best = int(np.argsort(-values["probabilities"], kind="stable")[0])
        class_folder = self._name_of(best, head).replace("/", "-").replace(os.sep, "-")
        path = self.folder / f"{self._prefix(head)}classified" / class_folder / f"{name}{source.suffix}"
        _make_parent(path, self._created)
        try:
            os.link(source, path)
        except OSError:  # another file system, or one without hard links
            shutil.copy2(source, path)

    def _add_boxes(self, head: str, file_name: str, values: dict[str, Any]) -> None:
        for box, score, label in zip(values["boxes"].tolist(), values["scores"].tolist(), values["labels"].tolist(), strict=True):
            x_min, y_min, x_max, y_max = box
            ids = self.category_ids[head]
            category = ids[label] if 0 <= label < len(ids) else label
            self.detections[head].append(
                {
                    "image_id": self.count,
                    "file_name": file_name,
                    "category_id": int(category),
                    "category_name": self._name_of(int(label), head),
                    "bbox": [round(x_min, 3), round(y_min, 3), round(x_max - x_min, 3), round(y_max - y_min, 3)],
                    "score": round(score, 5),
                }
            )

    def _add_points(self, head: str, file_name: str, values: dict[str, Any]) -> None:
        for (x, y), score, label in zip(
            values["points"].tolist(), values["scores"].tolist(), values["labels"].tolist(), strict=True
        ):
            ids = self.category_ids[head]
            self.points[head].append(
                {
                    "image_id": self.count,
                    "file_name": file_name,
                    "category_id": int(ids[label] if 0 <= label < len(ids) else label),
                    "category_name": self._name_of(int(label), head),
                    "point": [round(x, 3), round(y, 3)],
                    "score": round(score, 5),
                }
            )

    def finish(self) -> list[Path]:
        """Writes `predictions.json`, `points.json` and `predictions.csv` (for the heads that have them); returns their
        paths."""
        import json

        written = []
        for file, found in (("predictions.json", self.detections), ("points.json", self.points)):
            for head, rows in found.items():
                path = self.folder / f"{self._prefix(head)}{file}"
                path.parent.mkdir(parents=True, exist_ok=True)
                # One object per line, by json's C encoder (an indent makes json encode in Python: 5x slower).
                path.write_text("[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n", encoding="utf-8")
                written.append(path)
        for head, labels in self._coco.items():
            path = self.folder / f"{self._prefix(head)}{COCO_LABELS_FILE}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(labels.document()), encoding="utf-8", errors="surrogateescape")
            written.append(path)
        if self.labels == "yolo":  # the class list of the label files, line n class n
            for head, rows in self.detections.items():
                # without names (a backend given none), the indices, up to the highest predicted
                names = self._drawer.names_by_head.get(head) or [str(index) for index in range(_highest_label(rows) + 1)]
                path = self.folder / f"{self._prefix(head)}classes.txt"
                path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
                written.append(path)
        if self.rows:
            path = self.folder / "predictions.csv"
            columns = list(dict.fromkeys(column for row in self.rows for column in row))
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            # not the locale's encoding: file names in any script; a name that is no UTF-8 (unzipped from a Windows
            # archive) keeps its bytes, as the file system has it, where encoding it failed and lost the whole run
            path.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogateescape")
            written.append(path)
        return written


def _highest_label(rows: list[dict[str, Any]]) -> int:
    """The highest class index among a head's `predictions.json` rows (their `category_name` is the index when the
    classes have no names), -1 for none."""
    return max((int(row["category_name"]) for row in rows if row["category_name"].isdigit()), default=-1)


def _check_labels(labels: str | None, min_score: float, heads: Mapping[str, str]) -> None:
    if labels is not None and labels not in LABEL_LAYOUTS:
        raise BrickError(f"labels must be one of {list(LABEL_LAYOUTS)} or None, got {labels!r}.")
    if not 0.0 <= min_score <= 1.0:
        raise BrickError(f"min_score is a score in [0, 1], got {min_score!r}.")
    if labels == "folders" and "classification" not in heads.values():
        raise BrickError(
            f"labels='folders' sorts the images into the class folders of a classification head, and this model has "
            f"none (heads: {dict(heads)}); labels='yolo' or 'voc' write a detection head's boxes."
        )
    if labels == "coco" and not {"detection", "segmentation"} & set(heads.values()):
        raise BrickError(
            f"labels='coco' writes the boxes of a detection head and the mask outlines of a segmentation head, and this "
            f"model has neither (heads: {dict(heads)})."
        )
    if labels in ("yolo", "voc") and "detection" not in heads.values():
        raise BrickError(
            f"labels={labels!r} writes the boxes of a detection head, and this model has none (heads: {dict(heads)}); "
            "a segmentation head's masks/ are already label files (the segmentation layout's masks)."
        )


def _voc_xml(file_name: str, size: tuple[int, int], objects: list[tuple[str, float, float, float, float]]) -> str:
    """A Pascal VOC annotation of an image `file_name` of `size` (height, width) with `objects` (name and box in
    pixel edges), the corners rounded to whole pixels from 0, as the labelling tools write them.

    Example:
        >>> print(_voc_xml("a.jpg", (20, 30), [("cat", 2.4, 3.6, 10.5, 19.9)]).splitlines()[11])
            <bndbox><xmin>2</xmin><ymin>4</ymin><xmax>10</xmax><ymax>20</ymax></bndbox>
    """
    from xml.sax.saxutils import escape

    height, width = size
    lines = [
        "<annotation>",
        "  <folder>JPEGImages</folder>",
        f"  <filename>{escape(file_name)}</filename>",
        f"  <source><database>{PREDICT_VOC_DATABASE}</database></source>",
        f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
        "  <segmented>0</segmented>",
    ]
    for name, *box in objects:
        x_min, y_min, x_max, y_max = (round(value) for value in box)
        if x_max <= x_min or y_max <= y_min:  # narrower than half a pixel: no whole pixel to draw it on
            continue
        lines += [
            "  <object>",
            f"    <name>{escape(name)}</name>",
            "    <pose>Unspecified</pose>",
            "    <truncated>0</truncated>",
            "    <difficult>0</difficult>",
            f"    <bndbox><xmin>{x_min}</xmin><ymin>{y_min}</ymin><xmax>{x_max}</xmax><ymax>{y_max}</ymax></bndbox>",
            "  </object>",
        ]
    return "\n".join([*lines, "</annotation>", ""])


def grey_png(mask: np.ndarray) -> bytes:
    """A greyscale PNG of a uint8 or uint16 array [H, W] (zlib level 1, no filter), as Pillow reads it back.

    Twice as fast as Pillow's writer for a small class mask: per image, its Python set-up cost more than the
    compression.

    Example:
        >>> from PIL import Image
        >>> mask = np.array([[0, 1], [2, 300]], dtype=np.uint16)
        >>> np.array(Image.open(io.BytesIO(grey_png(mask)))).tolist()
        [[0, 1], [2, 300]]
    """
    import struct
    import zlib

    if mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
        raise BrickError(f"grey_png takes a uint8 or uint16 array [H, W], got {mask.dtype} {list(mask.shape)}.")
    height, width = mask.shape
    rows = np.ascontiguousarray(mask, dtype=mask.dtype.newbyteorder(">")).view(np.uint8).reshape(height, -1)
    scanlines = np.zeros((height, rows.shape[1] + 1), dtype=np.uint8)  # each row starts with filter type 0
    scanlines[:, 1:] = rows

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8 * mask.itemsize, 0, 0, 0, 0)  # greyscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


def _make_parent(path: Path, created: set[Path]) -> None:
    # Inside predict_images' temporary folder, renamed into place whole: no per-file atomic write needed.
    if path.parent not in created:  # one mkdir per folder, not per file
        path.parent.mkdir(parents=True, exist_ok=True)
        created.add(path.parent)


def _save(image: Image.Image, path: Path, created: set[Path], **options: Any) -> None:
    _make_parent(path, created)
    if path.suffix == ".jpg":
        image.save(path, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(path, format="PNG", compress_level=1, **options)
