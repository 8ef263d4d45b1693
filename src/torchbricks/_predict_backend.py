"""The backends of `torchbricks.predict`: what turns images into per-image results at their original size.

A *backend* has `heads` (head path -> kind, see `torchbricks.trained_experiment.find_heads`) and one method,
`predict(images)`, taking uint8 arrays [H, W, 3] at their original size (or, with `sizes`, decoded reduced from
images of those sizes as training decoded them: `BrickBackend.decoding_size`) and returning one result per image:
`{head_path: {"kind": kind, ...}}` with numpy values at the ORIGINAL image size:

- detection: `boxes` float32 [N, 4] (x_min, y_min, x_max, y_max in original pixels, cut to the image), `scores` float32 [N],
  `labels` int64 [N];
- segmentation: `mask` int64 [H, W], the class index per pixel;
- classification and multilabel: `probabilities` float32 [K]; multilabel also `present` int64 [K], 1 for each class
  the model decides is present (at its head's own threshold, which need not be 0.5);
- points: `points` float32 [N, 2] (x, y in original pixels), `scores` float32 [N], `labels` int64 [N], by score;
- count: `count`, a float32 number (the model's regression, not rounded).

`BrickBackend` runs a trained collection (`load_experiment`). Tiled prediction (`BrickBackend(tile=...)`) cuts each
image into overlapping windows, resizes each window to the model's input size as in training and merges the
windows' predictions in original coordinates by the rules of `torchbricks._tiled_predictions` (numpy, shared with
the ONNX runtime `torchbricks.deploy.OnnxPredictor`): boxes by class-wise non-maximum suppression at the IoU
threshold of the head's `BoxDecoder` (0.5 without one) and without the cut parts of objects another window saw whole;
masks by averaging the class probabilities of the windows covering a pixel (each window's probabilities resized
bilinearly to the window and added into the image's sums as its batch comes back, not kept) and taking the most
probable class; classification probabilities by their mean over the windows; multilabel probabilities by their
maximum (a class present in one window is present in the image).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from torchbricks._predict_results import ImageResult, PredictionBackend, check_images, original_sizes
from torchbricks._tiled_predictions import (
    WindowMerger,
    chosen_overlap,
    image_windows,
    resize_mask_nearest,
    tile_pixels,
    tiled_heads,
)
from torchbricks.errors import BrickError, ConfigError
from torchbricks.tags import VISUALIZATION, Stage, tags_for
from torchbricks.trained_experiment import (
    TrainedExperiment,
    decoder_iou_threshold,
    find_heads,
    use_trained_memory_order,
)

__all__ = ["PREDICTED_TAGS", "BrickBackend", "ImageResult", "PredictionBackend", "resize_mask_nearest"]

PREDICTED_TAGS = tags_for(Stage.INFERENCE) - {VISUALIZATION}
"""The inference stage without its drawing: pictures are drawn at the original size by `PredictionWriter`."""

_HEAD_VALUES = {
    "detection": ("boxes", "scores", "labels"),
    "segmentation": ("probabilities", "mask"),
    "classification": ("probabilities",),
    "multilabel": ("probabilities", "present"),
    "points": ("points", "scores", "labels"),
    "count": ("count",),
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
            image at once. Tiles leave count heads out of `heads` and the results, with a warning naming them.
        overlap: With `tile`, the fraction of a tile shared by neighbouring tiles (`DEFAULT_OVERLAP`, 0.2, when None).

    Raises:
        ConfigError: The experiment has no input size or its collection no task head.
        BrickError: A batch size below 1, a bad tile or overlap, or an overlap without a tile.
    """

    def __init__(
        self, experiment: TrainedExperiment, batch_size: int = 32, tile: int | None = None, overlap: float | None = None
    ) -> None:
        overlap = chosen_overlap(tile, overlap, "BrickBackend")
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
                f"classification, multilabel, points or count head); its inference outputs are {produced}."
            )
        if tile is not None:
            self.heads, left_out = tiled_heads(self.heads)
            if left_out is not None:
                warnings.warn(left_out, stacklevel=2)
            if not self.heads:
                raise BrickError(f"Experiment {str(experiment.folder)!r}: {left_out} It has no other head.")
        self.output_names = tuple(f"{head}/{name}" for head, kind in self.heads.items() for name in _HEAD_VALUES[kind])
        self.iou_thresholds = {head: decoder_iou_threshold(self.collection, head) for head in self.heads}
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
            image_windows(tile, tile, tile, overlap)  # checks tile and overlap now, not at the first image

    @property
    def decoding_size(self) -> tuple[int, int] | None:
        """The (height, width) images are decoded for, as training decoded them (a large JPEG reduced:
        `torchbricks._pictures.rgb_for_input`): the input size when whole images are predicted; None with tiles,
        which are cut from the whole image at full resolution as training's tiles are."""
        return self.input_size if self.tile is None else None

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

    def predict(self, images: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]] | None = None) -> list[ImageResult]:
        """Predicts each image (uint8 [H, W, 3] at its original size); results at the original size.

        Concurrent calls from several threads are safe: the collection is only read (inference mode).

        Args:
            images: The images.
            sizes: (height, width) of the original image each image was decoded reduced from (`decoding_size`,
                `torchbricks._image_sources.ReadImage`), which its results are given at; None: each image's own.

        Raises:
            BrickError: An image is not a uint8 RGB array [H, W, 3] (a float image would be divided by 255 again), or
                `sizes` with tiles (which are cut from the whole image).
        """
        check_images(images, "BrickBackend.predict")
        shown = original_sizes(images, sizes, self.tile, "BrickBackend.predict")
        windows = [image_windows(height, width, self.tile, self.overlap) for height, width in shown]
        views = [(index, window) for index, planned in enumerate(windows) for window in planned]
        mergers = [
            WindowMerger(
                self.heads,
                height,
                width,
                input_size=self.input_size,
                tile=self.tile,
                iou_thresholds=self.iou_thresholds,
                windows=planned,
            )
            for (height, width), planned in zip(shown, windows, strict=True)
        ]
        # each window merged as its batch comes back (a segmentation's probabilities added into the sums of its image's
        # open rows, not kept), and each image finished at its last window
        remaining = np.bincount([index for index, _ in views], minlength=len(images))
        results: list[ImageResult | None] = [None] * len(images)
        for start in range(0, len(views), self.batch_size):
            chunk = views[start : start + self.batch_size]
            batch = torch.stack(
                [
                    self._to_input(images[index] if self.tile is None else tile_pixels(images[index], window, self.tile))
                    for index, window in chunk
                ]
            )
            for (index, window), output in zip(chunk, self._run(batch), strict=True):
                mergers[index].add(window, output)
                remaining[index] -= 1
                if remaining[index] == 0:
                    results[index] = mergers[index].result()  # which frees its sums
        return [result for result in results if result is not None]

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
