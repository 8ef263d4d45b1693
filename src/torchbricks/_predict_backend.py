"""The backends of `torchbricks.predict`: what turns images into per-image results at their original size.

A *backend* has `heads` (head path -> kind, see `torchbricks.trained_experiment.find_heads`) and one method,
`predict(images)`, taking uint8 arrays [H, W, 3] at their original size and returning one result per image:
`{head_path: {"kind": kind, ...}}` with numpy values at the ORIGINAL image size:

- detection: `boxes` float32 [N, 4] (x_min, y_min, x_max, y_max in original pixels), `scores` float32 [N],
  `labels` int64 [N];
- segmentation: `mask` int64 [H, W], the class index per pixel;
- classification and multilabel: `probabilities` float32 [K].

`BrickBackend` runs a trained collection (`load_experiment`). Tiled prediction (`BrickBackend(tile=...)`) cuts each
image into overlapping windows (`torchbricks.datasets.tiling.tile_windows`), resizes each window to the model's
input size as in training and merges the windows' predictions in original coordinates: boxes by class-wise
non-maximum suppression (`torchvision.ops.batched_nms`, at the IoU threshold of the head's `BoxDecoder`, 0.5
without one); masks by averaging the class probabilities of the windows covering a pixel (each window's
probabilities resized bilinearly to the window) and taking the most probable class; classification probabilities
by their mean over the windows; multilabel probabilities by their maximum (a class present in one window is
present in the image).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from torchbricks._predict_results import ImageResult, PredictionBackend
from torchbricks.deploy import resize_mask_nearest
from torchbricks.errors import BrickError, ConfigError
from torchbricks.tags import VISUALIZATION, Stage, tags_for
from torchbricks.trained_experiment import TrainedExperiment, find_heads, use_trained_memory_order

__all__ = ["PREDICTED_TAGS", "BrickBackend", "ImageResult", "PredictionBackend", "resize_mask_nearest"]

PREDICTED_TAGS = tags_for(Stage.INFERENCE) - {VISUALIZATION}
"""The inference stage without its drawing: pictures are drawn at the original size by `PredictionWriter`."""

_HEAD_VALUES = {
    "detection": ("boxes", "scores", "labels"),
    "segmentation": ("probabilities", "mask"),
    "classification": ("probabilities",),
    "multilabel": ("probabilities",),
}


class BrickBackend:
    """Predicts with a trained brick collection (the inference stage without its VISUALIZATION bricks).

    Each image is resized (antialiased, aspect not kept) to the experiment's input size as the data modules'
    test transform does, the collection computes only its heads' outputs, and the outputs are brought back to the
    original size: boxes scaled by original / input size, masks resized by nearest neighbour. When the experiment
    trained with `channels_last`, its collection is put in that memory order, as `evaluate` and the job's test do.

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
        use_trained_memory_order(self.collection, experiment.config)
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
        try:  # one black image: a model of other inputs (the digits job's grey 8 x 8 images) is one line, not a traceback
            self._run(torch.zeros((1, 3, *self.input_size), dtype=torch.uint8))
        except RuntimeError as error:
            raise BrickError(
                f"Experiment {str(experiment.folder)!r} does not run on RGB images of {list(self.input_size)} pixels, "
                f"which predict gives it: {str(error).splitlines()[0]}"
            ) from error
        if tile is not None:
            from torchbricks.datasets.tiling import tile_windows

            tile_windows(tile, tile, tile, overlap)  # checks tile and overlap now, not at the first image

    @property
    def threads(self) -> int:
        """CPU threads predicting takes: torch's intra-op threads on a CPU, one thread feeding an accelerator."""
        return torch.get_num_threads() if self.device.type == "cpu" else 1

    @contextlib.contextmanager
    def shared_threads(self, lanes: int) -> Iterator[None]:
        """Gives each of `lanes` concurrent `predict` calls an equal share of torch's intra-op threads, for the block.

        torch's thread count is the process's: it is set to `threads // lanes` (at least 1) and restored after.
        Threads started inside the block take the shared count when they first run an operator.
        """
        before = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, before // lanes))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def predict(self, images: Sequence[np.ndarray]) -> list[ImageResult]:
        """Predicts each image (uint8 [H, W, 3] at its original size); results at the original size.

        Concurrent calls from several threads are safe: the collection is only read (inference mode).
        """
        views = [(index, window) for index, image in enumerate(images) for window in self._windows(image)]
        outputs: list[dict[str, np.ndarray]] = []
        for start in range(0, len(views), self.batch_size):
            chunk = views[start : start + self.batch_size]
            batch = torch.stack([self._to_input(self._tile_of(images[index], window)) for index, window in chunk])
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

    def _tile_of(self, image: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
        """The window's pixels; with `tile`, padded with black to the tile's size at the right and bottom, as the
        training tiles of an image smaller than the tile are (`torchbricks.datasets.tiled.crop_sample`): a window
        of an image side shorter than the tile keeps its scale instead of being stretched to the input size."""
        pixels = _crop(image, window)
        if self.tile is None or pixels.shape[:2] == (self.tile, self.tile):
            return pixels
        padded = np.zeros((self.tile, self.tile, *pixels.shape[2:]), dtype=pixels.dtype)
        padded[: pixels.shape[0], : pixels.shape[1]] = pixels
        return padded

    def _canvas(self, window: tuple[int, int, int, int]) -> tuple[int, int]:
        """(width, height) of the pixels a window's input shows: the tile's, or the window's without tiles."""
        x_min, y_min, x_max, y_max = window
        return (self.tile, self.tile) if self.tile is not None else (x_max - x_min, y_max - y_min)

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
                result[head] = self._merge_boxes(head, parts, height, width)
            elif kind == "segmentation":
                result[head] = self._merge_masks(head, parts, height, width)
            else:
                stacked = np.stack([output[f"{head}/probabilities"] for _, output in parts]).astype(np.float32)
                probabilities = stacked.max(axis=0) if kind == "multilabel" else stacked.mean(axis=0)
                result[head] = {"kind": kind, "probabilities": probabilities}
        return result

    def _merge_boxes(
        self, head: str, parts: list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]], height: int, width: int
    ) -> dict[str, Any]:
        input_height, input_width = self.input_size
        boxes, scores, labels, cut = [], [], [], []
        for window, output in parts:
            x_min, y_min = window[0], window[1]
            keep = output[f"{head}/labels"] >= 0  # the decoder pads with label -1
            scale = np.array(list(self._canvas(window)) * 2, dtype=np.float32) / np.array(
                [input_width, input_height] * 2, np.float32
            )
            found = output[f"{head}/boxes"][keep] * scale + np.array([x_min, y_min, x_min, y_min], dtype=np.float32)
            boxes.append(found)
            scores.append(output[f"{head}/scores"][keep])
            labels.append(output[f"{head}/labels"][keep])
            cut.append(_at_inner_border(found, window, height, width))
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
            kept = _without_cut_parts(kept, merged_boxes, merged_scores, merged_labels, np.concatenate(cut))
            merged_boxes, merged_scores, merged_labels = merged_boxes[kept], merged_scores[kept], merged_labels[kept]
        return {"kind": "detection", "boxes": merged_boxes, "scores": merged_scores, "labels": merged_labels}

    def _merge_masks(
        self, head: str, parts: list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]], height: int, width: int
    ) -> dict[str, Any]:
        if len(parts) == 1 and self.tile is None:
            return {"kind": "segmentation", "mask": resize_mask_nearest(parts[0][1][f"{head}/mask"], height, width)}
        import torch.nn.functional as F

        num_classes = parts[0][1][f"{head}/probabilities"].shape[0]
        total = torch.zeros(num_classes, height, width)
        count = torch.zeros(1, height, width)
        for (x_min, y_min, x_max, y_max), output in parts:
            probabilities = torch.from_numpy(output[f"{head}/probabilities"])[None]
            canvas_width, canvas_height = self._canvas((x_min, y_min, x_max, y_max))
            resized = F.interpolate(probabilities, size=(canvas_height, canvas_width), mode="bilinear", align_corners=False)
            total[:, y_min:y_max, x_min:x_max] += resized[0, :, : y_max - y_min, : x_max - x_min]  # padding left out
            count[:, y_min:y_max, x_min:x_max] += 1
        return {"kind": "segmentation", "mask": (total / count).argmax(dim=0).numpy().astype(np.int64)}


CUT_PART_CONTAINED = 0.7
"""A box found against an inner window border is the cut part of an object when at least this share of it lies
inside a better box of its class (`_without_cut_parts`)."""


def _at_inner_border(boxes: np.ndarray, window: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """Whether each box (image coordinates) reaches a border of its window that is not the image's own border: the
    window may have cut the object there."""
    x_min, y_min, x_max, y_max = window
    return (
        ((x_min > 0) & (boxes[:, 0] <= x_min + 1))
        | ((y_min > 0) & (boxes[:, 1] <= y_min + 1))
        | ((x_max < width) & (boxes[:, 2] >= x_max - 1))
        | ((y_max < height) & (boxes[:, 3] >= y_max - 1))
    )


def _without_cut_parts(
    kept: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, cut: np.ndarray
) -> np.ndarray:
    """`kept` (indices after non-maximum suppression) without the boxes that are the cut part of an object another
    window saw whole: found against an inner window border, and mostly (`CUT_PART_CONTAINED`) inside a better box of
    the same class (higher score, or as high and larger). Such a part overlaps the whole box too little for the IoU
    threshold (a third of an object: IoU 0.33), so suppression alone reported the object twice."""
    if not cut[kept].any():
        return kept
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    parts, others = kept[cut[kept]], kept  # every cut box against every kept box at once: [parts, others]
    overlap = np.clip(
        np.minimum(boxes[parts, None, 2:], boxes[None, others, 2:]) - np.maximum(boxes[parts, None, :2], boxes[None, others, :2]),
        0,
        None,
    ).prod(axis=2)
    better = (scores[others][None] > scores[parts][:, None]) | (
        (scores[others][None] == scores[parts][:, None]) & (area[others][None] > area[parts][:, None])
    )
    inside = overlap >= CUT_PART_CONTAINED * np.maximum(area[parts], 1e-6)[:, None]
    dropped = parts[((labels[others][None] == labels[parts][:, None]) & better & inside).any(axis=1)]
    return kept[~np.isin(kept, dropped)]


def _crop(image: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    x_min, y_min, x_max, y_max = window
    return image[y_min:y_max, x_min:x_max]


def _decoder_iou_threshold(collection: Any, head: str) -> float:
    for path, brick in collection.iter_bricks():
        threshold = getattr(getattr(brick, "model", None), "iou_threshold", None)
        if path.startswith(f"{head}/") and isinstance(threshold, float):
            return threshold
    return 0.5
