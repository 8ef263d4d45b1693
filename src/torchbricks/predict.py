"""Prediction with a trained experiment on new images: a backend predicts, writers save what it predicted.

A *backend* turns images into per-image results; `BrickBackend` runs a trained collection (`load_experiment`).
A backend has `heads` (head path -> kind, see `torchbricks.trained_experiment.find_heads`) and one method,
`predict(images)`, taking uint8 arrays [H, W, 3] at their original size and returning one result per image:
`{head_path: {"kind": kind, ...}}` with numpy values at the ORIGINAL image size:

- detection: `boxes` float32 [N, 4] (x_min, y_min, x_max, y_max in original pixels), `scores` float32 [N],
  `labels` int64 [N];
- segmentation: `mask` int64 [H, W], the class index per pixel;
- classification and multilabel: `probabilities` float32 [K].

`PredictionWriter` saves such results (from any backend) into a folder; `predict_images` runs a backend over
image sources with a progress display and writes everything into a temporary folder renamed into place at the end.

Tiled prediction (`BrickBackend(tile=...)`) cuts each image into overlapping windows
(`torchbricks.datasets.tiling.tile_windows`), resizes each window to the model's input size as in training and
merges the windows' predictions in original coordinates: boxes by class-wise non-maximum suppression
(`torchvision.ops.batched_nms`, at the IoU threshold of the head's `BoxDecoder`, 0.5 without one); masks by
averaging the class probabilities of the windows covering a pixel (each window's probabilities resized bilinearly
to the window) and taking the most probable class; classification probabilities by their mean over the windows;
multilabel probabilities by their maximum (a class present in one window is present in the image).
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np
import torch
from PIL import Image

from torchbricks.bag_of_bricks.drawing import PALETTE, draw_boxes, draw_class_label, load_font, overlay_segmentation_mask
from torchbricks.errors import BrickError, ConfigError
from torchbricks.tags import VISUALIZATION, Stage, tags_for
from torchbricks.trained_experiment import TrainedExperiment, find_heads

__all__ = [
    "BrickBackend",
    "ImageResult",
    "PredictionBackend",
    "PredictionSummary",
    "PredictionWriter",
    "predict_images",
    "resize_mask_nearest",
]

ImageResult = dict[str, dict[str, Any]]
"""One image's predictions: head path -> `{"kind": kind, ...values at the original image size}`."""

PREDICTED_TAGS = tags_for(Stage.INFERENCE) - {VISUALIZATION}
"""The inference stage without its drawing: pictures are drawn at the original size by `PredictionWriter`."""

_HEAD_VALUES = {
    "detection": ("boxes", "scores", "labels"),
    "segmentation": ("probabilities", "mask"),
    "classification": ("probabilities",),
    "multilabel": ("probabilities",),
}
DRAWN_MIN_SCORE = 0.3
"""Boxes scoring below it are left out of the drawn pictures (not out of `predictions.json`), as in training's
pictures (`BrickVisualizeBoxes`)."""
MULTILABEL_THRESHOLD = 0.5
"""A class of a multilabel head is present above this probability (`MultiLabelClassifier`'s default)."""
TOP_K = 5
PICTURE_FORMATS = ("jpg", "png", None)


class PredictionBackend(Protocol):
    """What predicts: heads (path -> kind) and `predict(images) -> one ImageResult per image`."""

    heads: dict[str, str]

    def predict(self, images: Sequence[np.ndarray]) -> list[ImageResult]: ...


class BrickBackend:
    """Predicts with a trained brick collection (the inference stage without its VISUALIZATION bricks).

    Each image is resized (antialiased, aspect not kept) to the experiment's input size as the data modules'
    test transform does, the collection computes only its heads' outputs, and the outputs are brought back to the
    original size: boxes scaled by original / input size, masks resized by nearest neighbour.

    Args:
        experiment: A trained experiment (`torchbricks.trained_experiment.load_experiment`).
        batch_size: Images (or tiles) per call of the collection.
        tile: Predict window by window of this side in original pixels (see the module docstring); None: the whole
            image at once.
        overlap: Fraction of a tile shared by neighbouring tiles.

    Raises:
        ConfigError: The experiment has no input size or its collection no task head.
    """

    def __init__(
        self, experiment: TrainedExperiment, batch_size: int = 32, tile: int | None = None, overlap: float = 0.2
    ) -> None:
        if experiment.image_size is None:
            raise ConfigError(
                f"Experiment {str(experiment.folder)!r} has no image_size in experiment.json; cannot resize images."
            )
        if batch_size < 1:
            raise BrickError(f"The batch size must be 1 or more, got {batch_size}.")
        self.collection = experiment.collection
        self.input_size = experiment.image_size
        self.batch_size = batch_size
        self.tile = tile
        self.overlap = overlap
        produced = list(self.collection.plan(tags=PREDICTED_TAGS).produced)
        self.heads = find_heads(produced)
        if not self.heads:
            raise ConfigError(
                f"Experiment {str(experiment.folder)!r} has no task head (outputs of a detection, segmentation, "
                f"classification or multilabel head); its inference outputs are {produced}."
            )
        self.output_names = tuple(f"{head}/{name}" for head, kind in self.heads.items() for name in _HEAD_VALUES[kind])
        self.iou_thresholds = {head: _decoder_iou_threshold(self.collection, head) for head in self.heads}
        parameter = next(self.collection.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        if tile is not None:
            from torchbricks.datasets.tiling import tile_windows

            tile_windows(tile, tile, tile, overlap)  # checks tile and overlap now, not at the first image

    def predict(self, images: Sequence[np.ndarray]) -> list[ImageResult]:
        """Predicts each image (uint8 [H, W, 3] at its original size); results at the original size."""
        views = [(index, window) for index, image in enumerate(images) for window in self._windows(image)]
        outputs: list[dict[str, np.ndarray]] = []
        for start in range(0, len(views), self.batch_size):
            chunk = views[start : start + self.batch_size]
            batch = torch.stack([self._to_input(_crop(images[index], window)) for index, window in chunk])
            outputs.extend(self._run(batch))
        by_image: list[list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]]] = [[] for _ in images]
        for (index, window), output in zip(views, outputs, strict=True):
            by_image[index].append((window, output))
        return [self._merge(image, parts) for image, parts in zip(images, by_image, strict=True)]

    def _windows(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        height, width = image.shape[:2]
        if self.tile is None:
            return [(0, 0, width, height)]
        from torchbricks.datasets.tiling import tile_windows

        return tile_windows(height, width, self.tile, self.overlap)

    def _to_input(self, image: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        if tuple(tensor.shape[1:]) != self.input_size:
            from torchvision.transforms.v2 import functional

            tensor = functional.resize(tensor, list(self.input_size), antialias=True)
        return tensor

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor) -> list[dict[str, np.ndarray]]:
        raw = batch.to(self.device, non_blocking=True).float().div_(255.0)
        outputs = self.collection(
            named_inputs={"raw": raw}, tags=PREDICTED_TAGS, return_inputs=False, output_names=self.output_names
        )
        arrays = {name: value.cpu().numpy() for name, value in outputs.items()}
        return [{name: value[index] for name, value in arrays.items()} for index in range(len(batch))]

    def _merge(self, image: np.ndarray, parts: list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]]) -> ImageResult:
        height, width = image.shape[:2]
        result: ImageResult = {}
        for head, kind in self.heads.items():
            if kind == "detection":
                result[head] = self._merge_boxes(head, parts)
            elif kind == "segmentation":
                result[head] = self._merge_masks(head, parts, height, width)
            else:
                stacked = np.stack([output[f"{head}/probabilities"] for _, output in parts]).astype(np.float32)
                probabilities = stacked.max(axis=0) if kind == "multilabel" else stacked.mean(axis=0)
                result[head] = {"kind": kind, "probabilities": probabilities}
        return result

    def _merge_boxes(self, head: str, parts: list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]]) -> dict[str, Any]:
        input_height, input_width = self.input_size
        boxes, scores, labels = [], [], []
        for (x_min, y_min, x_max, y_max), output in parts:
            keep = output[f"{head}/labels"] >= 0  # the decoder pads with label -1
            scale = np.array([x_max - x_min, y_max - y_min] * 2, dtype=np.float32) / np.array(
                [input_width, input_height] * 2, np.float32
            )
            boxes.append(output[f"{head}/boxes"][keep] * scale + np.array([x_min, y_min, x_min, y_min], dtype=np.float32))
            scores.append(output[f"{head}/scores"][keep])
            labels.append(output[f"{head}/labels"][keep])
        merged_boxes = np.concatenate(boxes).astype(np.float32)
        merged_scores = np.concatenate(scores).astype(np.float32)
        merged_labels = np.concatenate(labels).astype(np.int64)
        if len(parts) > 1 and len(merged_boxes):
            from torchvision.ops import batched_nms

            kept = batched_nms(
                torch.from_numpy(merged_boxes),
                torch.from_numpy(merged_scores),
                torch.from_numpy(merged_labels),
                self.iou_thresholds[head],
            ).numpy()
            merged_boxes, merged_scores, merged_labels = merged_boxes[kept], merged_scores[kept], merged_labels[kept]
        return {"kind": "detection", "boxes": merged_boxes, "scores": merged_scores, "labels": merged_labels}

    def _merge_masks(
        self, head: str, parts: list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]], height: int, width: int
    ) -> dict[str, Any]:
        if len(parts) == 1:
            return {"kind": "segmentation", "mask": resize_mask_nearest(parts[0][1][f"{head}/mask"], height, width)}
        import torch.nn.functional as F

        num_classes = parts[0][1][f"{head}/probabilities"].shape[0]
        total = torch.zeros(num_classes, height, width)
        count = torch.zeros(1, height, width)
        for (x_min, y_min, x_max, y_max), output in parts:
            probabilities = torch.from_numpy(output[f"{head}/probabilities"])[None]
            resized = F.interpolate(probabilities, size=(y_max - y_min, x_max - x_min), mode="bilinear", align_corners=False)
            total[:, y_min:y_max, x_min:x_max] += resized[0]
            count[:, y_min:y_max, x_min:x_max] += 1
        return {"kind": "segmentation", "mask": (total / count).argmax(dim=0).numpy().astype(np.int64)}


def _crop(image: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    x_min, y_min, x_max, y_max = window
    return image[y_min:y_max, x_min:x_max]


def _decoder_iou_threshold(collection: Any, head: str) -> float:
    for path, brick in collection.iter_bricks():
        threshold = getattr(getattr(brick, "model", None), "iou_threshold", None)
        if path.startswith(f"{head}/") and isinstance(threshold, float):
            return threshold
    return 0.5


def resize_mask_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A class mask [h, w] resized to [height, width] by nearest neighbour (torch's `mode="nearest"`).

    Example:
        >>> resize_mask_nearest(np.array([[0, 1], [2, 3]]), 4, 4)[:, 0].tolist()
        [0, 0, 2, 2]
    """
    rows = np.minimum((np.arange(height) * (mask.shape[0] / height)).astype(np.int64), mask.shape[0] - 1)
    columns = np.minimum((np.arange(width) * (mask.shape[1] / width)).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], columns[None, :]].astype(np.int64)


# --- writing --------------------------------------------------------------------------------------------------------


class PredictionWriter:
    """Saves per-image results of any backend into `folder` (created if missing).

    Per image `name` (a relative path without suffix, see `predict_images`):

    - `drawn/<name>.jpg` (or `.png`): the image at its original size with every head drawn on it (mask overlay,
      boxes with class and score at or above `DRAWN_MIN_SCORE`, class names);
    - segmentation: `masks/<name>.png`, the class index per pixel (8-bit greyscale, 16-bit above 255 classes), and
      `overlays/<name>.png`, the mask in colours (a palette PNG, class i in `drawing.PALETTE[i]`, the background
      class 0 transparent) to lay over the image;

    and for all images, when `finish` is called:

    - detection: `predictions.json` in the COCO results format, `[{image_id, file_name, category_id,
      category_name, bbox: [x, y, width, height], score}]` (the category id of the training data when it was COCO,
      else the class index; image ids count from 1 in the order of the images; pixels rounded to 0.001, scores to
      0.00001);
    - classification and multilabel: `predictions.csv`, one row per image: `file`, then per head `class`,
      `score` and `top5` (`name:probability;...`), for a multilabel head `present` (`name;...` above
      `MULTILABEL_THRESHOLD`) and `probabilities` (`name:probability;...`).

    With several heads, each head's files and columns carry its name: `<head>_predictions.json`,
    `<head>_masks/`, `<head>_overlays/`, columns `<head>/class`... (a `/` in a head path becomes `-` in a file name).

    `record` (rows, in order) and `write_images` (files, safe to call from several threads) are the two halves of
    `add`.

    Args:
        folder: Where the files go.
        heads: Head path -> kind, as the backend's `heads`.
        class_names: Names of the classes (indices when None).
        category_ids: COCO category id of each class, when the training data was COCO.
        pictures: Format of the drawn pictures, `jpg` (fast to write) or `png`; None draws none.
    """

    def __init__(
        self,
        folder: Path | str,
        heads: dict[str, str],
        class_names: Sequence[str] | None = None,
        category_ids: Sequence[int] | None = None,
        pictures: str | None = "jpg",
    ) -> None:
        if pictures not in PICTURE_FORMATS:
            raise BrickError(f"pictures must be one of {list(PICTURE_FORMATS)}, got {pictures!r}.")
        self.folder = Path(folder)
        self.heads = dict(heads)
        self.class_names = list(class_names) if class_names else None
        self.category_ids = list(category_ids) if category_ids else None
        self.pictures = pictures
        self.detections: dict[str, list[dict[str, Any]]] = {head: [] for head, kind in heads.items() if kind == "detection"}
        self.rows: list[dict[str, str]] = []
        self.count = 0
        palette = [value for color in PALETTE for value in color]
        self._palette = (palette * (768 // len(palette) + 1))[:768]
        self._created: set[Path] = set()

    def _prefix(self, head: str) -> str:
        return "" if len(self.heads) == 1 else head.replace("/", "-") + "_"

    def _column(self, head: str, name: str) -> str:
        return name if len(self.heads) == 1 else f"{head}/{name}"

    def _name_of(self, index: int) -> str:
        names = self.class_names or []
        return names[index] if 0 <= index < len(names) else str(index)

    def add(self, name: str, file_name: str, image: np.ndarray, result: ImageResult) -> None:
        """Records one image's rows and writes its files.

        Args:
            name: The image's name in the output (a relative POSIX path without suffix).
            file_name: The source named in `predictions.json` and `predictions.csv`.
            image: The image, uint8 [H, W, 3] at its original size.
            result: The backend's result for the image.
        """
        self.record(file_name, result)
        self.write_images(name, image, result)

    def record(self, file_name: str, result: ImageResult) -> None:
        """Keeps one image's detections and CSV row for `finish`; images are numbered in the order recorded."""
        self.count += 1
        row: dict[str, str] = {"file": file_name}
        for head, kind in self.heads.items():
            values = result[head]
            if kind == "detection":
                self._add_boxes(head, file_name, values)
            elif kind in ("classification", "multilabel"):
                probabilities = values["probabilities"]
                if kind == "classification":
                    order = np.argsort(-probabilities, kind="stable")
                    best = int(order[0])
                    row[self._column(head, "class")] = self._name_of(best)
                    row[self._column(head, "score")] = f"{probabilities[best]:.4f}"
                    row[self._column(head, "top5")] = ";".join(
                        f"{self._name_of(int(index))}:{probabilities[index]:.4f}" for index in order[:TOP_K]
                    )
                else:
                    present = [
                        self._name_of(index) for index, value in enumerate(probabilities.tolist()) if value > MULTILABEL_THRESHOLD
                    ]
                    row[self._column(head, "present")] = ";".join(present)
                    row[self._column(head, "probabilities")] = ";".join(
                        f"{self._name_of(index)}:{value:.4f}" for index, value in enumerate(probabilities.tolist())
                    )
        if len(row) > 1:
            self.rows.append(row)

    def write_images(self, name: str, image: np.ndarray, result: ImageResult) -> None:
        """Writes one image's masks, overlays and drawn picture."""
        drawn = Image.fromarray(image) if self.pictures else None
        text_line = 0
        font_size = max(10, min(32, image.shape[0] // 16))
        for head, kind in self.heads.items():
            values = result[head]
            if kind == "segmentation":
                mask = values["mask"]
                wide = mask.max(initial=0) > 255
                _save(
                    Image.fromarray(mask.astype(np.uint16 if wide else np.uint8)),
                    self.folder / f"{self._prefix(head)}masks" / f"{name}.png",
                    self._created,
                )
                if wide:  # beyond a palette: no overlay file; the picture is blended from the mask itself
                    drawn = None if drawn is None else overlay_segmentation_mask(drawn, mask)
                    continue
                overlay = Image.fromarray(mask.astype(np.uint8), mode="P")
                overlay.putpalette(self._palette)
                _save(overlay, self.folder / f"{self._prefix(head)}overlays" / f"{name}.png", self._created, transparency=0)
                if drawn is not None:  # overlay_segmentation_mask's blend (alpha 0.5, background clear), in Pillow's C code
                    foreground = Image.fromarray(((mask != 0) * 255).astype(np.uint8), mode="L")
                    drawn = Image.composite(Image.blend(drawn, overlay.convert("RGB"), 0.5), drawn, foreground)
            elif drawn is None:
                continue
            elif kind == "detection":
                keep = values["scores"] >= DRAWN_MIN_SCORE
                drawn = draw_boxes(drawn, values["boxes"][keep], values["labels"][keep], values["scores"][keep], self.class_names)
            else:
                probabilities = values["probabilities"]
                if kind == "classification":
                    best = int(np.argmax(probabilities))
                    text = f"{self._name_of(best)} {probabilities[best]:.2f}"
                else:
                    text = ", ".join(
                        self._name_of(i) for i, value in enumerate(probabilities.tolist()) if value > MULTILABEL_THRESHOLD
                    )
                position = (4, 4 + text_line * (font_size + 8))
                drawn = draw_class_label(drawn, text or "-", font=load_font(font_size), position=position)
                text_line += 1
        if drawn is not None:
            _save(drawn, self.folder / "drawn" / f"{name}.{self.pictures}", self._created)

    def _add_boxes(self, head: str, file_name: str, values: dict[str, Any]) -> None:
        for box, score, label in zip(values["boxes"].tolist(), values["scores"].tolist(), values["labels"].tolist(), strict=True):
            x_min, y_min, x_max, y_max = box
            category = self.category_ids[label] if self.category_ids and 0 <= label < len(self.category_ids) else label
            self.detections[head].append(
                {
                    "image_id": self.count,
                    "file_name": file_name,
                    "category_id": int(category),
                    "category_name": self._name_of(int(label)),
                    "bbox": [round(x_min, 3), round(y_min, 3), round(x_max - x_min, 3), round(y_max - y_min, 3)],
                    "score": round(score, 5),
                }
            )

    def finish(self) -> list[Path]:
        """Writes `predictions.json` and `predictions.csv` (for the heads that have them); returns their paths."""
        import json

        written = []
        for head, detections in self.detections.items():
            path = self.folder / f"{self._prefix(head)}predictions.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(detections, indent=1) + "\n")
            written.append(path)
        if self.rows:
            path = self.folder / "predictions.csv"
            columns = list(dict.fromkeys(column for row in self.rows for column in row))
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            path.write_text(buffer.getvalue())
            written.append(path)
        return written


def _save(image: Image.Image, path: Path, created: set[Path], **options: Any) -> None:
    # Inside predict_images' temporary folder, renamed into place whole: no per-file atomic write needed.
    if path.parent not in created:  # one mkdir per folder, not per file
        path.parent.mkdir(parents=True, exist_ok=True)
        created.add(path.parent)
    if path.suffix == ".jpg":
        image.save(path, format="JPEG", quality=90)
    else:
        image.save(path, format="PNG", compress_level=1, **options)


# --- running --------------------------------------------------------------------------------------------------------


@dataclass
class PredictionSummary:
    """What `predict_images` did: the output folder, the images predicted, the sources skipped and the time."""

    folder: Path
    num_images: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason) of each image that could not be read."""
    seconds: float = 0.0


class _Progress:
    """tqdm's bar on a terminal; otherwise a plain line at every tenth of the work (a log keeps every line)."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.done = 0
        self.started = time.perf_counter()
        self.next_line = 1
        self.enabled = enabled
        self.bar = None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc="predict", file=self.stream)

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        tenth = 10 * self.done // self.total if self.total else 10
        if self.enabled and tenth >= self.next_line:  # one line per update at most, however many tenths it crossed
            seconds = time.perf_counter() - self.started
            rate = self.done / seconds if seconds > 0 else 0.0
            print(
                f"predict {self.done}/{self.total} images ({100 * self.done // self.total} %)  {rate:.1f} images/s",
                file=self.stream,
                flush=True,
            )
            self.next_line = tenth + 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def predict_images(
    backend: PredictionBackend,
    sources: Sequence[str | Path],
    out: Path | str,
    class_names: Sequence[str] | None = None,
    category_ids: Sequence[int] | None = None,
    batch_size: int = 32,
    overwrite: bool = False,
    workers: int = 2,
    pictures: str | None = "jpg",
    progress: bool = True,
    stream: TextIO | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> PredictionSummary:
    """Predicts every image of `sources` with `backend` and writes the files of `PredictionWriter` into `out`.

    Sources are image files, folders (searched recursively), glob patterns and videos (each frame an image; see
    `torchbricks._image_sources`). Images are read and the per-image files written by `workers` threads while the
    backend predicts the next batch (Pillow's decoders and encoders release the GIL). Everything is written into a
    temporary folder beside `out`, renamed to `out` once complete, so a failed run leaves nothing behind. An image
    that cannot be read is skipped, reported (`on_skip(source, reason)`), listed in `skipped.txt` and in the
    summary; the others are predicted.

    Args:
        backend: What predicts (`BrickBackend`, or any `PredictionBackend`).
        sources: Images, folders, globs or videos.
        out: The output folder; an existing non-empty one is refused unless `overwrite`.
        class_names: Names of the classes, for the files and pictures.
        category_ids: COCO category id of each class, for `predictions.json`.
        batch_size: Images given to the backend at once.
        overwrite: Replace an existing non-empty `out` once the new predictions are complete.
        workers: Threads reading images and writing files; 0 reads and writes in this thread, between batches.
        pictures: Format of the drawn pictures (`jpg`, `png`), or None for none.
        progress: Show progress (a bar on a terminal, a line per tenth of the images otherwise).
        stream: Where progress goes; standard output by default.
        on_skip: Called with (source, reason) for each image that cannot be read.

    Raises:
        BrickError: No image matches a source, no image can be read, or `out` exists and is not empty without
            `overwrite`; nothing is written.
    """
    import shutil
    import uuid

    from torchbricks._files import replace_folder
    from torchbricks._image_sources import ImageSourceDataset, collect_image_sources, output_names

    if batch_size < 1 or workers < 0:
        raise BrickError(f"batch_size must be 1 or more and workers 0 or more, got {batch_size} and {workers}.")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise BrickError(f"The output folder {str(out)!r} exists and is not empty; pass --overwrite to replace it.")
    items = collect_image_sources(sources)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    temporary.mkdir()
    writer = PredictionWriter(temporary, backend.heads, class_names, category_ids, pictures)
    bar = _Progress(len(items), stream, enabled=progress)
    skipped: list[tuple[str, str]] = []

    def skip(index: int, reason: str) -> None:
        skipped.append((items[index].label, reason))
        if on_skip is not None:
            on_skip(items[index].label, reason)

    try:
        labels = [item.label for item in items]
        _predict_all(backend, ImageSourceDataset(items), labels, output_names(items), writer, batch_size, workers, bar, skip)
        if writer.count == 0:
            raise BrickError(f"None of the {len(items)} images could be read; first reasons: {skipped[:3]}")
        writer.finish()
        if skipped:
            (temporary / "skipped.txt").write_text("".join(f"{source}\t{reason}\n" for source, reason in skipped))
        replace_folder(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    finally:
        bar.close()
    return PredictionSummary(out, writer.count, skipped, time.perf_counter() - started)


class _InThread:
    """An executor running each call at once, in this thread (`workers=0`)."""

    def __enter__(self) -> _InThread:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, function: Callable[..., Any], *arguments: Any) -> Any:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        try:
            future.set_result(function(*arguments))
        except Exception as error:
            future.set_exception(error)
        return future


def _predict_all(
    backend: PredictionBackend,
    dataset: Any,
    labels: list[str],
    names: list[str],
    writer: PredictionWriter,
    batch_size: int,
    workers: int,
    bar: _Progress,
    skip: Callable[[int, str], None],
) -> None:
    """Reads ahead and writes behind on `workers` threads while the backend predicts in this one."""
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="torchbricks-predict") if workers else _InThread() as pool:
        reads: deque[Future[tuple[int, np.ndarray | None, str]]] = deque()
        writes: deque[Future[None]] = deque()
        next_item = 0
        while next_item < len(labels) or reads:
            while next_item < len(labels) and len(reads) < 2 * batch_size:  # read ahead, bounded
                reads.append(pool.submit(dataset.__getitem__, next_item))
                next_item += 1
            batch = [reads.popleft().result() for _ in range(min(batch_size, len(reads)))]
            readable: list[tuple[int, np.ndarray]] = []
            for index, image, reason in batch:
                if image is None:
                    skip(index, reason)
                else:
                    readable.append((index, image))
            results = backend.predict([image for _, image in readable]) if readable else []
            for (index, image), result in zip(readable, results, strict=True):
                writer.record(labels[index], result)
                writes.append(pool.submit(writer.write_images, names[index], image, result))
            while len(writes) > 2 * batch_size:  # bounded: decoded images wait in memory only this long
                writes.popleft().result()
            bar.update(len(batch))
        for future in writes:
            future.result()  # a failed write raises here
