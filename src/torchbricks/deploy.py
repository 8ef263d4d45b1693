"""Running an exported model without torch: `OnnxPredictor` needs numpy, Pillow and onnxruntime only.

`torchbricks export EXPERIMENT` (`torchbricks.deploy_export.export_deployable_onnx`) writes one ONNX file holding its
metadata (the model's `metadata_props` entry `torchbricks`, `METADATA_KEY`), and a copy of the metadata beside it
(`<file>.json`) to read. The ONNX file takes a batch of uint8 RGB images [B, 3, H, W] at the model's
size (the scaling to [0, 1] and the normalization are inside) and returns each head's final results, named
`<head>/<output>`: boxes, scores and labels after non-maximum suppression, class masks, class probabilities, points
and their scores and labels, counts.

`OnnxPredictor` resizes images of any size to the model's size, runs the file in onnxruntime and gives each
image's results back at the image's own size:

    predictor = OnnxPredictor("model.onnx")
    results = predictor.predict(["photo.jpg"])  # files, read as training read them; or uint8 numpy arrays [H, W, 3]
    results[0]["detection"]["boxes"]      # [N, 4] x_min, y_min, x_max, y_max in the image's pixels
    tiled = predictor.predict(["orthomosaic.tif"], batch_size=16, tile=192, overlap=0.2)

With `tile`, each image is cut into overlapping windows, each window is predicted at the model's size and the windows
are merged back into one result per image by the rules the bricks' `predict --tile` follows
(`torchbricks._tiled_predictions`).

A file given to `predict` is decoded as training decoded its images for the model's size
(`read_model_image`): upright as its EXIF orientation says, 16-bit images by their upper 8 bits, in sRGB (an image
with another colour profile, Display P3 or Adobe RGB, converted), and a JPEG at least twice the model's size decoded
at 1/2, 1/4 or 1/8 of its size (libjpeg's scaled decoding, as training decoded it; with `tile`, whole, as training's
tiles). The model is given the pixels `torchbricks predict` and `evaluate` give it; an array decoded whole and
resized differs from them by about 0.3 of 255 on average, up to 7 (`benchmarks/measure_decoding_gap.py`). Arrays
given to `predict` are taken as sRGB: read them with `read_image` (the whole picture, to draw on) or
`read_model_image`, or convert them so (OpenCV's `imread` reads a profile's numbers as they are stored).

`read_image` reads one picture: an animation (GIF, WebP) of several frames is refused, naming its frame count;
`read_frames` reads every frame, as `torchbricks predict` predicts each.

This module imports no torchbricks module that imports torch, so it runs where torch is not installed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from torchbricks._antialiased_resize import resize_antialiased
from torchbricks._image_sources import ANIMATED_EXTENSIONS, VIDEO_EXTENSIONS
from torchbricks._pictures import open_image, read_rgb_for_input, rgb_for_input, too_large
from torchbricks._predict_results import check_image_list, check_images, original_sizes
from torchbricks._tiled_predictions import (
    DEFAULT_IOU_THRESHOLD,
    WindowMerger,
    chosen_overlap,
    image_windows,
    merge_windows,
    resize_mask_nearest,
    tile_pixels,
    tiled_heads,
)
from torchbricks.errors import BrickError, DataError

__all__ = [
    "DEFAULT_FILE",
    "DEFAULT_TILE_BATCH",
    "DEPLOY_OUTPUTS",
    "INPUT_NAME",
    "METADATA_FORMAT",
    "METADATA_KEY",
    "OnnxPredictor",
    "metadata_path",
    "read_frames",
    "read_image",
    "read_model_image",
    "resize_image",
    "resize_mask",
    "resize_mask_nearest",
]

DEFAULT_FILE = "deploy.onnx"
"""The file written into the experiment folder when no output file is given (`deploy_int8.onnx` quantized); what
`predict --onnx` reads without a file named."""

DEFAULT_TILE_BATCH = 32
"""Tiles per onnxruntime call of `OnnxPredictor.predict(tile=...)` when no batch size is given: what `predict --onnx
--tile` gives it (`--batch-size`, 32). All the tiles of an orthomosaic in one call held every tile's input and outputs
at once: the 4356 windows of 192 px of a 10,000 x 10,000 image are 0.5 GB of pixels and, at 5 classes, 3 GB of
probabilities, besides onnxruntime's activations."""

INPUT_NAME = "images"
"""The input of an exported file: uint8 RGB images [B, 3, H, W] (B dynamic, H and W the model's size)."""

METADATA_FORMAT = "torchbricks-deployable-onnx/1"
"""The `format` written in the metadata JSON; `OnnxPredictor` refuses other formats."""

METADATA_KEY = "torchbricks"
"""The entry of an exported file's own metadata (ONNX `metadata_props`) that holds its metadata JSON: the file and its
metadata are one file, renamed into place in one step, so a killed export leaves the earlier file or the new one, each
with its own metadata. Files exported before 2026-12-07 lack it; their metadata is the `<file>.json` beside them."""

DEPLOY_OUTPUTS: dict[str, dict[str, str]] = {
    "detection": {
        "boxes": "float32 [B, P, 4]: x_min, y_min, x_max, y_max in pixels of the model's input; padding rows are 0",
        "scores": "float32 [B, P]: score of each box after non-maximum suppression, sorted; padding rows are 0",
        "labels": "int64 [B, P]: class index of each box; -1 marks a padding row (suppressed or below the score threshold)",
    },
    "segmentation": {
        "mask": "int64 [B, H, W]: class index of each pixel of the model's input",
        "probabilities": "float32 [B, K, H, W]: probability of each class at each pixel of the model's input",
    },
    "classification": {
        "probabilities": "float32 [B, K]: softmax probability of each class",
        "class_prediction": "int64 [B]: the most probable class",
    },
    "points": {
        "points": "float32 [B, P, 2]: x, y of each point in pixels of the model's input; padding rows are 0",
        "scores": "float32 [B, P]: score of each point, sorted",
        "labels": "int64 [B, P]: class index of each point; -1 marks a padding row (below the decoder's threshold)",
    },
    "count": {
        "count": "float32 [B]: the number of objects in each image, regressed (a real number, not rounded)",
    },
    "multilabel": {
        "probabilities": "float32 [B, K]: sigmoid probability that each class is present",
        "present": "int64 [B, K]: 1 for each class above the head's threshold (the head's `threshold` in the metadata)",
    },
}
"""Head kind -> the outputs an exported file has for a head of that kind (`<head>/<output>`) and their meaning."""


def metadata_path(path_onnx: Path | str) -> Path:
    """The copy of an exported ONNX file's metadata written beside it, `<file>.json` (the metadata itself of a file
    exported before 2026-12-07, which holds none).

    Example:
        >>> metadata_path("build/model.onnx").name
        'model.onnx.json'
    """
    path_onnx = Path(path_onnx)
    return path_onnx.with_name(f"{path_onnx.name}.json")


def read_image(path: Path | str) -> np.ndarray:
    """An image file as the whole uint8 RGB picture [H, W, 3] a viewer shows: upright as its EXIF orientation says, a
    16-bit image by its upper 8 bits, in sRGB (an embedded Display P3, Adobe RGB or CMYK profile converted with
    LittleCMS: `torchbricks._pictures.rgb_as_shown`). What results are drawn on; the model is given
    `read_model_image`'s pixels (`OnnxPredictor.predict` of the file's path reads them).

    Photographs from phones are often stored sideways with a tag saying so; read without it, their boxes would
    come back in the sideways picture's pixels.

    Raises:
        DataError: Naming the file: it does not exist, Pillow cannot read it, it is a floating-point image, or it is an
            animation of several frames (`read_frames` reads each).
    """
    return _read_one_picture(path, None, "read_image")[0]


def read_model_image(path: Path | str, input_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file decoded as training decoded it for a model of `input_size` ((height, width), an
    `OnnxPredictor`'s `image_size`; None: whole, as tiles are cut from it), a uint8 RGB array [h, w, 3], and the
    (height, width) of the whole image as shown, which its results refer to: `read_image`, a JPEG at least twice
    `input_size` decoded at 1/2, 1/4 or 1/8 of its size (`torchbricks._pictures.rgb_for_input`).

    Example:
        >>> import io, tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "photo.jpg"
        >>> Image.new("RGB", (4032, 3024), "white").save(path)
        >>> pixels, size = read_model_image(path, (384, 512))
        >>> pixels.shape, size
        ((756, 1008, 3), (3024, 4032))

    Raises:
        DataError: As `read_image`.
    """
    return _read_one_picture(path, input_size, "read_model_image")


_EVERY_FRAME = {
    "read_image": "read every frame with torchbricks.deploy.read_frames(path)",
    "read_model_image": "read every frame with torchbricks.deploy.read_frames(path)",
    "OnnxPredictor.predict": "predict every frame with predict(torchbricks.deploy.read_frames(path))",
}
"""What each reader of one picture says to do with an animation, by the name the user called it by."""


def _read_one_picture(path: Path | str, input_size: tuple[int, int] | None, called: str) -> tuple[np.ndarray, tuple[int, int]]:
    """`read_model_image` as `called` (what the user called, which an animation's refusal names), the file opened once:
    its frames are counted in the opening that decodes it."""

    def one_frame(image: Image.Image) -> None:
        frames = int(getattr(image, "n_frames", 1)) if Path(path).suffix.lower() in ANIMATED_EXTENSIONS else 1
        if frames > 1:
            raise DataError(
                f"Image {str(path)!r} is an animation of {frames} frames; {called} reads one picture of a file: "
                f"{_EVERY_FRAME[called]}, as `torchbricks predict` predicts each."
            )

    picture, (width, height) = read_rgb_for_input(path, input_size, one_frame)
    return np.array(picture), (height, width)  # writable, as predict reads it: torch.from_numpy warns on read-only arrays


def read_frames(path: Path | str, input_size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Every frame of an image file as `torchbricks predict` reads them (each a whole uint8 RGB picture [H, W, 3], as
    `read_image`; with `input_size`, decoded for a model of that (height, width) as `read_model_image` decodes it):
    the frames of an animation (GIF, WebP), one picture for any other image (a TIFF's first page: its further pages
    are most often overviews or a thumbnail). The file is opened once, its frames counted and decoded in that opening.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "blink.gif"
        >>> Image.new("L", (2, 2), 0).save(path, save_all=True, append_images=[Image.new("L", (2, 2), 255)])
        >>> [frame[0, 0].tolist() for frame in read_frames(path)]
        [[0, 0, 0], [255, 255, 255]]

    Raises:
        DataError: Naming the file: it does not exist or Pillow cannot read it, or it is a video (`torchbricks predict`
            reads videos, with torchcodec).
    """
    path = Path(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        raise DataError(
            f"{str(path)!r} is a video; read_frames reads image files ({', '.join(ANIMATED_EXTENSIONS)} frame by "
            "frame). `torchbricks predict` predicts a video's frames (pip install torchcodec)."
        )
    if not path.is_file():
        raise DataError(f"Image {str(path)!r} does not exist.")
    frames = []
    try:
        with open_image(path) as image:
            count = int(getattr(image, "n_frames", 1)) if path.suffix.lower() in ANIMATED_EXTENSIONS else 1
            for frame in range(count):
                if count > 1:
                    image.seek(frame)
                # a writable copy, as predict reads it: torch.from_numpy warns on read-only arrays
                frames.append(np.array(rgb_for_input(image, input_size)))
    except Image.DecompressionBombError as error:
        raise too_large(path, error) from error
    except (OSError, ValueError, RuntimeError) as error:  # Pillow's errors for a bad file, as predict reports them
        raise DataError(f"Image {str(path)!r} cannot be read: {type(error).__name__}: {error}") from error
    return frames


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a uint8 image [H, W, 3] to `size` (height, width) as training resizes it: torchvision's
    `Resize(antialias=True)` on uint8, computed in numpy (`torchbricks._antialiased_resize`), so the exported model
    is given the pixels the trained collection is given (equal on x86 CPUs with AVX2, where torchvision resizes uint8
    natively; within a grey level of torchvision's float path on other CPUs).

    Example:
        >>> resize_image(np.zeros((10, 20, 3), dtype=np.uint8), (4, 6)).shape
        (4, 6, 3)
    """
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return resize_antialiased(image, height, width)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a class mask [h, w] to `size` (height, width) by nearest neighbour: each output pixel takes the input
    pixel under its centre (torch's `nearest-exact`, in exact integer arithmetic).

    Example:
        >>> resize_mask(np.array([[0, 1], [2, 3]]), (2, 4)).tolist()
        [[0, 0, 1, 1], [2, 2, 3, 3]]
    """
    height, width = size
    rows = ((2 * np.arange(height) + 1) * mask.shape[0]) // (2 * height)
    columns = ((2 * np.arange(width) + 1) * mask.shape[1]) // (2 * width)
    return mask[rows[:, None], columns[None, :]]


def _read_metadata(path: Path, inside: str | None) -> dict[str, Any]:
    """The metadata of the exported file `path`: its own (`inside`, the `METADATA_KEY` entry) when it holds one, else
    the `<file>.json` beside it (a file exported before 2026-12-07). The copy beside a file holding its own is not
    read: after an export killed between its renames it may be missing."""
    beside = metadata_path(path)
    where = f"{str(path)!r}'s own metadata ({METADATA_KEY!r})" if inside is not None else repr(str(beside))
    if inside is None and not beside.is_file():
        raise BrickError(
            f"Cannot load the exported model {str(path)!r}: it holds no metadata ({METADATA_KEY!r}) and {[str(beside)]} "
            "is missing (written by `torchbricks export`)."
        )
    try:
        metadata = json.loads(beside.read_text(encoding="utf-8") if inside is None else inside)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:  # cut short by a full disk or a copy, say
        raise BrickError(
            f"{where} is not the JSON `torchbricks export` writes ({type(error).__name__}: {error}); "
            "export the model again (`torchbricks export EXPERIMENT --overwrite`)."
        ) from error
    if not isinstance(metadata, dict) or metadata.get("format") != METADATA_FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise BrickError(f"{where} has format {found!r}; expected {METADATA_FORMAT!r}.")
    return metadata


class OnnxPredictor:
    """Runs a file written by `torchbricks export` in onnxruntime on images of any size.

    Args:
        path: The ONNX file. Its metadata is read from the file itself (`METADATA_KEY`); a file exported before
            2026-12-07 holds none, and its `<path>.json` must lie beside it.
        providers: onnxruntime execution providers; the CPU's by default.
        num_threads: Threads onnxruntime uses within an operator; onnxruntime's choice when None.

    Raises:
        BrickError: The file or its metadata is missing, the metadata is not an export's, or onnxruntime cannot load
            the file (cut short, not ONNX).
        MissingExtraError: onnxruntime is not installed.
    """

    def __init__(self, path: Path | str, providers: Sequence[str] | None = None, num_threads: int | None = None) -> None:
        from torchbricks._extras import require

        onnxruntime = require("onnxruntime", "onnx")
        self.path = Path(path)
        if not self.path.is_file():
            raise BrickError(f"Cannot load the exported model: {[str(self.path)]} missing (written by `torchbricks export`).")
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as error:  # onnxruntime's own classes (InvalidProtobuf, Fail), not one library error
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            why = "the file is cut short (a copy that did not finish) or is not an ONNX file" if "Protobuf" in text else text
            raise BrickError(
                f"Cannot load the exported model {str(self.path)!r}: {why} ({type(error).__name__}). Export the model "
                "again (`torchbricks export EXPERIMENT --overwrite`)."
            ) from error
        metadata = _read_metadata(self.path, self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY))
        self.metadata: dict[str, Any] = metadata
        self.heads: dict[str, str] = {head: entry["kind"] for head, entry in metadata["heads"].items()}
        self.image_size: tuple[int, int] = (int(metadata["image_size"][0]), int(metadata["image_size"][1]))
        self.output_names = [output.name for output in self.session.get_outputs()]
        self._warned_tiles = False
        self.iou_thresholds: dict[str, float] = {
            head: float(entry.get("iou_threshold", DEFAULT_IOU_THRESHOLD))
            for head, entry in metadata["heads"].items()
            if entry["kind"] == "detection"
        }

    def __repr__(self) -> str:
        return f"OnnxPredictor({str(self.path)!r})"

    @property
    def class_names(self) -> dict[str, list[str] | None]:
        """The class names of each head (a segmentation head's start with its background class)."""
        return {head: entry.get("class_names") for head, entry in self.metadata["heads"].items()}

    @property
    def category_ids(self) -> dict[str, list[int] | None]:
        """The COCO category id of each class of each head, when its training data was COCO (None otherwise)."""
        shared = self.metadata.get("category_ids")
        return {head: entry.get("category_ids") or shared for head, entry in self.metadata["heads"].items()}

    def run(self, images: np.ndarray, output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Runs the file on uint8 images [B, 3, H, W] at the model's size; returns its outputs (`output_names`, every
        output when None) by name."""
        names = list(self.output_names if output_names is None else output_names)
        values = self.session.run(names, {INPUT_NAME: images})
        return dict(zip(names, values, strict=True))

    def check_tile(self, tile: int, overlap: float | None = None) -> None:
        """Checks that the file predicts tile by tile with these values (`predict(tile=..., overlap=...)`).

        Raises:
            BrickError: `tile` below 1, `overlap` outside [0, 1), only count heads (their windows' counts do not
                merge; beside other heads they are left out of tiled results, with a warning naming them, once), or a
                segmentation head without the class probabilities that the windows' masks are merged by (a file
                exported before they were an output).
        """
        image_windows(tile, tile, tile, chosen_overlap(tile, overlap, "OnnxPredictor.check_tile"))
        heads, left_out = tiled_heads(self.heads)
        if left_out is not None and not self._warned_tiles:
            warnings.warn(left_out, stacklevel=2)
            self._warned_tiles = True  # once per predictor, not at every call
        if not heads:
            raise BrickError(f"{str(self.path)!r}: {left_out} It has no other head.")
        for head, kind in heads.items():
            if kind == "segmentation" and f"{head}/probabilities" not in self.output_names:
                raise BrickError(
                    f"{str(self.path)!r} has no output '{head}/probabilities', which merging the tiles of a segmentation "
                    f"needs (its outputs: {self.output_names}); export the experiment again with `torchbricks export`."
                )

    def predict(
        self,
        images: Sequence[np.ndarray | str | Path],
        batch_size: int | None = None,
        tile: int | None = None,
        overlap: float | None = None,
        sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[dict[str, dict[str, Any]]]:
        """Each image's results, at the image's own size.

        Args:
            images: Image files, each decoded as training decoded its images for this model (`read_model_image`: a
                large JPEG reduced; whole with `tile`), or uint8 RGB arrays [H, W, 3] of any sizes.
            batch_size: Images (with `tile`, tiles) per onnxruntime call. None: all the images at once; with `tile`,
                `DEFAULT_TILE_BATCH` (32) tiles, as `predict --onnx --tile` gives (an orthomosaic's thousands of tiles
                at once would hold all their inputs and outputs).
            tile: Predict windows of this side in the image's pixels and merge them (see the module docstring); None:
                each image whole. Tiled results leave count heads out (a warning names them, once).
            overlap: With `tile`, the fraction of a tile its neighbours share (0.2 when None); refused without `tile`.
            sizes: (height, width) of the whole image each array was decoded reduced from (`read_model_image`'s
                second value), which its results are given at; None: each array's own size. Refused with `tile`
                where it differs from the arrays' sizes (tiles are cut from the whole image).

        Returns:
            Per image, head path -> `{"kind": kind, ...}` with numpy values: a detection head's `boxes` float32
            [N, 4] (x_min, y_min, x_max, y_max in the image's pixels, cut to the image; padding rows and boxes wholly
            outside it removed), `scores` [N] and `labels` int64 [N]; a segmentation head's `mask` int64 [H, W] class
            indices (resized back by nearest neighbour, `resize_mask_nearest`); a classification or multilabel head's
            `probabilities` float32 [K], and a multilabel head's `present` int64 [K] (1 for each class the model
            decides is present, at its head's own threshold); a points head's `points` float32 [N, 2] (x, y in the
            image's pixels), `scores` [N] and `labels` int64 [N]; a count head's `count` (a float32 number).

        Raises:
            BrickError: An image is not a uint8 array [H, W, 3], a batch size below 1, a bad tile (`check_tile`), an
                overlap without a tile (it would be ignored), or `sizes` not one per image or given with a tile.
            DataError: A file cannot be read (`read_image`).
        """
        overlap = chosen_overlap(tile, overlap, "OnnxPredictor.predict")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            # a negative step would predict no image at all and 0 every image at once, both without a word
            raise BrickError(
                f"OnnxPredictor.predict: batch_size must be an int of 1 or more (or None: all at once), got {batch_size!r}."
            )
        arrays, shown = self._read(images, sizes, tile)
        if tile is not None:
            return self._predict_tiles(arrays, batch_size, tile, overlap)
        names = [name for name in self.output_names if not self._is_segmentation_probabilities(name)]
        step = batch_size or max(1, len(arrays))
        results: list[dict[str, dict[str, Any]]] = []
        for start in range(0, len(arrays), step):
            chunk = arrays[start : start + step]
            batch = np.stack([resize_image(image, self.image_size).transpose(2, 0, 1) for image in chunk])
            outputs = self.run(np.ascontiguousarray(batch), names)
            for offset in range(len(chunk)):
                height, width = shown[start + offset]
                whole = (0, 0, width, height)  # one window, the whole image: scaled back to it as tiles are
                part = {name: value[offset] for name, value in outputs.items()}
                results.append(merge_windows(self.heads, [(whole, part)], height, width, input_size=self.image_size, tile=None))
        return results

    def _read(
        self, images: Sequence[np.ndarray | str | Path], sizes: Sequence[tuple[int, int]] | None, tile: int | None
    ) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
        """The arrays `predict` resizes for the model (each file decoded by `read_model_image`) and the (height, width)
        each one's results are given at."""
        check_image_list(images, "OnnxPredictor.predict")
        if sizes is not None and len(sizes) != len(images):
            raise BrickError(f"OnnxPredictor.predict: {len(sizes)} sizes for {len(images)} images; give one per image.")
        arrays: list[np.ndarray] = []
        read: dict[int, tuple[int, int]] = {}  # index -> the size as shown of each file decoded here
        for index, image in enumerate(images):
            if isinstance(image, str | Path):
                pixels, read[index] = _read_one_picture(image, self.image_size if tile is None else None, "OnnxPredictor.predict")
                arrays.append(pixels)
            else:
                arrays.append(image)
        check_images(arrays, "OnnxPredictor.predict")
        given = [
            read.get(index, sizes[index] if sizes is not None else (array.shape[0], array.shape[1]))
            for index, array in enumerate(arrays)
        ]
        return arrays, original_sizes(arrays, given, tile, "OnnxPredictor.predict")

    def _is_segmentation_probabilities(self, name: str) -> bool:
        head, _, leaf = name.rpartition("/")
        return leaf == "probabilities" and self.heads.get(head) == "segmentation"

    def _predict_tiles(
        self, images: Sequence[np.ndarray], batch_size: int | None, tile: int, overlap: float
    ) -> list[dict[str, dict[str, Any]]]:
        """The windows of every image predicted in batches of `batch_size`, then merged image by image."""
        self.check_tile(tile, overlap)
        heads = tiled_heads(self.heads)[0]
        kinds = {
            "detection": ("boxes", "scores", "labels"),
            "points": ("points", "scores", "labels"),
            "multilabel": ("probabilities", "present"),
        }
        names = [
            f"{head}/{leaf}"
            for head, kind in heads.items()
            for leaf in kinds.get(kind, ("probabilities",))
            if leaf != "present" or f"{head}/present" in self.output_names  # a hand-made file may lack it
        ]
        windows = [image_windows(image.shape[0], image.shape[1], tile, overlap) for image in images]
        views = [(index, window) for index, planned in enumerate(windows) for window in planned]
        step = batch_size or DEFAULT_TILE_BATCH
        mergers = [
            WindowMerger(
                heads,
                image.shape[0],
                image.shape[1],
                input_size=self.image_size,
                tile=tile,
                iou_thresholds=self.iou_thresholds,
                windows=planned,
            )
            for image, planned in zip(images, windows, strict=True)
        ]
        # each window merged as its batch comes back (a segmentation's probabilities added into the sums of its image's
        # open rows, not kept), and each image finished at its last window
        remaining = np.bincount([index for index, _ in views], minlength=len(images))
        results: list[dict[str, dict[str, Any]] | None] = [None] * len(images)
        for start in range(0, len(views), step):
            chunk = views[start : start + step]
            pixels = [resize_image(tile_pixels(images[index], window, tile), self.image_size) for index, window in chunk]
            outputs = self.run(np.ascontiguousarray(np.stack(pixels).transpose(0, 3, 1, 2)), names)
            for offset, (index, window) in enumerate(chunk):
                mergers[index].add(window, {name: value[offset] for name, value in outputs.items()})
                remaining[index] -= 1
                if remaining[index] == 0:
                    results[index] = mergers[index].result()  # which frees its sums
        return [result for result in results if result is not None]
