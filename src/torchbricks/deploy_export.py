"""Exporting a trained experiment as one deployable ONNX file: uint8 images in, final results out.

`export_deployable_onnx` (the `torchbricks export` command) loads an experiment folder
(`torchbricks.trained_experiment.load_experiment`), puts a brick converting uint8 images [B, 3, H, W] to floats
in [0, 1] in front of its collection (the collection's own preprocessor then normalizes), and exports the export
stage's head outputs with `export_bricks_as_onnx`: detection boxes, scores and labels after top-k and NMS,
segmentation masks and their class probabilities (which `predict --onnx --tile` averages across windows), class
probabilities, points with their scores and labels, counts (`torchbricks.deploy.DEPLOY_OUTPUTS`). The batch dimension is
dynamic.

The file holds its metadata (its ONNX `metadata_props` entry `torchbricks.deploy.METADATA_KEY`, which `OnnxPredictor`
reads), and a copy is written beside it, `<file>.json`, to read: class names, input size, input name, dtype and layout,
each output and its meaning, the heads and their kinds (a detection head's decoder IoU threshold, which merging the
boxes of tiles suppresses at), the torchbricks version, the COCO category ids when the data had them, the check against
PyTorch and, with `quantize="int8"`, the accuracy of the int8 file against the float one. The file replaces an earlier
one in one rename (`_install`), so a killed export leaves the earlier file or the new one, each with its own metadata,
never one file with another's.

`quantize="int8"` quantizes the convolutions and matrix products statically (onnxruntime's QDQ format, int8
weights per channel, uint8 activations) with ranges calibrated on training images of the experiment's data; the
decoding (top-k, NMS, argmax) stays in float. The float and the int8 files are then evaluated with the
collection's own metric bricks on the validation split. Without the data (`data.root` gone), `images` gives a
folder of images to calibrate on, and the report is the agreement of the two files on those images. The int8 part
lives in `torchbricks._deploy_quantize`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchbricks._deploy_quantize import onnx_session, quantize_int8
from torchbricks._experiment import trained_weights_digest
from torchbricks._files import remove_stale_temporaries, sync_folder, write_json
from torchbricks._output_agreement import output_gap
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickNotTrainable
from torchbricks.deploy import DEFAULT_FILE, DEPLOY_OUTPUTS, INPUT_NAME, METADATA_FORMAT, METADATA_KEY, metadata_path
from torchbricks.errors import BrickError, ConfigError, DataError
from torchbricks.tags import MODEL, Stage
from torchbricks.trained_experiment import (
    TrainedExperiment,
    decoder_iou_threshold,
    find_heads,
    load_experiment,
    multilabel_threshold,
)

__all__ = ["DEFAULT_FILE", "QUANTIZE_MODES", "ExportResult", "ImagesToFloat", "export_deployable_onnx"]

QUANTIZE_MODES = ("int8",)
TOLERANCE = 1e-4
"""Largest difference allowed between the exported float file and the collection in PyTorch."""


class ImagesToFloat(nn.Module):
    """uint8 images to float32 in [0, 1], as torchvision's `ToDtype(torch.float32, scale=True)` does.

    Example:
        >>> ImagesToFloat()(torch.tensor([[0, 255]], dtype=torch.uint8)).tolist()
        [[0.0, 1.0]]
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(torch.float32).mul(1.0 / 255.0)


@dataclass
class ExportResult:
    """What `export_deployable_onnx` wrote: the ONNX file, its metadata file and the metadata."""

    path_onnx: Path
    path_metadata: Path
    metadata: dict[str, Any]


def export_deployable_onnx(
    experiment: Path | str,
    path_onnx: Path | str | None = None,
    *,
    image_size: int | Sequence[int] | None = None,
    quantize: str | None = None,
    images: Path | str | None = None,
    num_calibration_images: int = 32,
    overwrite: bool = False,
) -> ExportResult:
    """Exports the trained experiment in `experiment` as one ONNX file taking uint8 images (see the module docstring).

    Args:
        experiment: The experiment folder (written by `torchbricks train`).
        path_onnx: The file to write; `<experiment>/deploy.onnx` (`deploy_int8.onnx` quantized) when None.
        image_size: Side (or `[height, width]`) of the images the file takes; the experiment's when None.
        quantize: `"int8"` for a statically quantized file; float32 when None.
        images: A folder of images to calibrate on (and compare the float and int8 files on) when the experiment's
            data is not available.
        num_calibration_images: Training images the int8 ranges are calibrated on.
        overwrite: Replace an existing file; refused otherwise.

    Returns:
        The paths written and the metadata.

    Raises:
        BrickError: A bad argument, an existing file without `overwrite`, an experiment without task heads, or an
            exported file that disagrees with PyTorch. Nothing is written then.
        ConfigError: `experiment` is not a trained experiment folder.
    """
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise BrickError(f"quantize must be one of {list(QUANTIZE_MODES)} or None, got {quantize!r}.")
    size = None if image_size is None else _image_size(image_size)
    if num_calibration_images < 1:
        raise BrickError(f"num_calibration_images must be at least 1, got {num_calibration_images}.")
    folder = Path(experiment)
    default = DEFAULT_FILE if quantize is None else DEFAULT_FILE.replace(".onnx", f"_{quantize}.onnx")
    path_onnx = folder / default if path_onnx is None else Path(path_onnx)
    path_json = metadata_path(path_onnx)
    existing = [str(path) for path in (path_onnx, path_json) if path.exists()]
    if existing and not overwrite:
        raise BrickError(f"{existing} already exist; pass overwrite=True (--overwrite) to replace them.")
    if images is not None and quantize is None:
        raise BrickError("images (--images) are calibration images for quantize='int8' (--quantize int8); nothing uses them.")
    if images is not None and not Path(images).is_dir():
        raise BrickError(f"The images folder {str(images)!r} does not exist.")

    loaded = load_experiment(folder)
    size = size or loaded.image_size
    if size is None:
        raise ConfigError(f"Experiment {str(folder)!r} does not record its image size; pass image_size (--image-size).")
    heads, outputs = _deployed_outputs(loaded)
    collection = _uint8_collection(loaded.collection)
    example = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    class_counts = _class_counts(loaded, heads, example)

    path_onnx.parent.mkdir(parents=True, exist_ok=True)
    # Named as `torchbricks._files` names its temporary folders: what a killed export leaves is removed later.
    workdir = path_onnx.with_name(f".{path_onnx.name}.{uuid.uuid4().hex}.tmp")
    workdir.mkdir()
    try:
        float_file = workdir / "float.onnx"
        from torchbricks.brick_collection_utils import export_bricks_as_onnx

        export_bricks_as_onnx(float_file, collection, {INPUT_NAME: example}, tags=Stage.EXPORT, output_names=outputs)
        difference = _check_against_pytorch(float_file, collection, heads, outputs, example)
        metadata = _metadata(loaded, size, heads, outputs, class_counts, difference)
        written = float_file
        if quantize == "int8":
            written = workdir / "int8.onnx"
            metadata["quantization"] = quantize_int8(loaded, size, float_file, written, workdir, images, num_calibration_images)
        metadata["file"] = path_onnx.name
        _embed_metadata(written, metadata)
        write_json(workdir / "metadata.json", metadata)
        _install(workdir, written, path_onnx, path_json)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    remove_stale_temporaries(path_onnx.parent)  # the folders of exports killed earlier
    return ExportResult(path_onnx, path_json, metadata)


def _embed_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Writes `metadata` as JSON into the ONNX file's own metadata (`metadata_props`, key `METADATA_KEY`)."""
    import json

    import onnx

    model = onnx.load(str(path))
    kept = [entry for entry in model.metadata_props if entry.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata, allow_nan=False))
    onnx.save(model, str(path))


def _install(workdir: Path, written: Path, path_onnx: Path, path_json: Path) -> None:
    """Puts the complete export of `workdir` in place: the model (holding its metadata) in one rename, then the copy of
    the metadata beside it (`workdir/metadata.json`).

    An earlier copy beside `path_onnx` is first moved into `workdir`, so the copy beside a file is always that file's
    or none: stopped before the model's rename, the earlier export is complete (its copy is put back unless the
    process was killed); stopped after it, the new model is there with its own metadata. Only a file exported before
    2026-12-07, which holds no metadata, needs its copy: an export killed between the two renames over such a file
    leaves it refused, saying to export again, as every export killed between its renames did before.
    """
    sync_folder(workdir)  # on the disk before they are renamed into place: a power loss leaves no empty model
    earlier = workdir / "earlier.json"
    if path_json.exists():
        os.replace(path_json, earlier)
    try:
        os.replace(written, path_onnx)
    except BaseException:
        if earlier.exists():
            os.replace(earlier, path_json)
        raise
    os.replace(workdir / "metadata.json", path_json)


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    sizes = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(sizes) not in (1, 2) or not all(isinstance(side, int) and side > 0 for side in sizes):
        raise BrickError(f"image_size must be a positive int or [height, width], got {image_size!r}.")
    return (sizes[0], sizes[-1])


def _deployed_outputs(loaded: TrainedExperiment) -> tuple[dict[str, str], list[str]]:
    """The task heads of the export stage and the outputs the file keeps, `<head>/<output>`."""
    plan = loaded.collection.plan(tags=Stage.EXPORT)
    heads = find_heads(list(plan.produced))
    if not heads:
        raise BrickError(
            f"Experiment {str(loaded.folder)!r} has no task head to export: its export stage outputs {list(plan.produced)}, "
            f"none of which ends a head of a known kind {sorted(DEPLOY_OUTPUTS)}."
        )
    if tuple(plan.required_inputs) != ("raw",):
        raise BrickError(
            f"Experiment {str(loaded.folder)!r} reads {list(plan.required_inputs)}; an exported model feeds images as 'raw' only."
        )
    outputs = [f"{head}/{name}" for head, kind in heads.items() for name in DEPLOY_OUTPUTS[kind]]
    return heads, outputs


def _uint8_collection(collection: BrickCollection) -> BrickCollection:
    """The collection behind a brick making `raw` (float in [0, 1]) of uint8 `images`; it shares the bricks."""
    converter = BrickNotTrainable(ImagesToFloat(), input_names=[INPUT_NAME], output_names=["raw"], tags=[MODEL])
    return BrickCollection({"images_to_float": converter, **collection.to_dict()})


def _class_counts(loaded: TrainedExperiment, heads: dict[str, str], example: torch.Tensor) -> dict[str, int]:
    """Classes per head, from a run of the collection (a segmentation head may add a background class)."""
    try:
        with torch.no_grad():
            named = loaded.collection(named_inputs={"raw": example[:1].float() / 255}, tags=Stage.EXPORT, return_inputs=False)
    except RuntimeError as error:
        raise BrickError(
            f"Experiment {str(loaded.folder)!r} does not run on RGB images of {list(example.shape[2:])} pixels: {error}"
        ) from error
    counts = {}
    for head, kind in heads.items():
        if kind in ("detection", "points"):
            counts[head] = len(loaded.head_class_names(head) or [])
        elif kind != "count":  # a count has no classes
            counts[head] = int(named[f"{head}/probabilities"].shape[1])
    return counts


def _check_against_pytorch(
    path: Path, collection: BrickCollection, heads: dict[str, str], outputs: list[str], example: torch.Tensor
) -> float:
    """The largest difference between the file in onnxruntime and the collection, on two batch sizes.

    A detection head's boxes and a points head's points are compared as sets (the rows with a label, each matched
    with its closest reference row): candidates of equal score may leave top-k in another order in another runtime.
    A mask that differs on at most 0.1 % of its pixels, near ties of two classes, counts as equal (`output_gap`).
    """
    session = onnx_session(path)
    difference = 0.0
    for batch in (example, example[:1]):
        with torch.no_grad():
            named = collection(named_inputs={INPUT_NAME: batch}, tags=Stage.EXPORT, return_inputs=False, output_names=outputs)
        expected = {name: named[name].numpy() for name in outputs}
        actual = dict(zip(outputs, session.run(outputs, {INPUT_NAME: batch.numpy()}), strict=True))
        for name in outputs:
            if actual[name].shape != expected[name].shape:
                raise BrickError(
                    f"Output {name!r} of the ONNX file has shape {actual[name].shape}; PyTorch's {expected[name].shape}."
                )
            if heads[name.rpartition("/")[0]] not in _LOCATED:
                difference = max(difference, output_gap(actual[name], expected[name]))
        for head, kind in heads.items():
            if kind not in _LOCATED:
                continue
            rows, reference = _located_rows(actual, head, _LOCATED[kind]), _located_rows(expected, head, _LOCATED[kind])
            for image in range(len(batch)):
                difference = max(difference, _set_difference(rows[image], reference[image]))
    if difference > TOLERANCE:
        raise BrickError(f"The exported file differs from the PyTorch collection by {difference:.3g} > {TOLERANCE}.")
    return difference


_LOCATED = {"detection": "boxes", "points": "points"}
"""Head kinds whose outputs are padded rows of a place (boxes, points), a score and a label; their coordinates."""


def _located_rows(outputs: dict[str, np.ndarray], head: str, place: str) -> list[np.ndarray]:
    """Per image, the boxes (or points) with a label as rows (x_min, y_min, x_max, y_max or x, y, then score, label)."""
    boxes, scores, labels = (outputs[f"{head}/{name}"].astype(np.float64) for name in (place, "scores", "labels"))
    rows = np.concatenate([boxes, scores[..., None], labels[..., None]], axis=-1)
    return [image_rows[image_labels >= 0] for image_rows, image_labels in zip(rows, labels, strict=True)]


def _set_difference(rows: np.ndarray, reference: np.ndarray) -> float:
    """The largest difference of each row to its closest unmatched reference row; infinite when the counts differ."""
    if len(rows) != len(reference):
        return float("inf")
    unmatched = list(range(len(reference)))
    largest = 0.0
    for row in rows:
        gaps = np.abs(reference[unmatched] - row).max(axis=1)
        best = int(np.argmin(gaps))
        largest = max(largest, float(gaps[best]))
        unmatched.pop(best)
    return largest


def _head_class_names(class_names: list[str] | None, count: int) -> list[str] | None:
    if not class_names:
        return None
    if count == len(class_names):
        return list(class_names)
    if count == len(class_names) + 1:
        return ["background", *class_names]  # masks drawn from COCO polygons: class 0 is the background
    return None


def _metadata(
    loaded: TrainedExperiment,
    size: tuple[int, int],
    heads: dict[str, str],
    outputs: list[str],
    class_counts: dict[str, int],
    difference: float,
) -> dict[str, Any]:
    import torchbricks

    metadata: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "torchbricks_version": torchbricks.__version__,
        "experiment": str(loaded.folder.resolve()),
        "image_size": list(size),
        "trained_image_size": list(loaded.image_size) if loaded.image_size else None,
        "class_names": loaded.class_names,
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "layout": "NCHW",
            "shape": ["batch", 3, *size],
            "meaning": "RGB images in [0, 255] resized to image_size (bilinear, antialiased); scaled to [0, 1] and "
            "normalized inside the model",
        },
        "heads": {
            head: {
                "kind": kind,
                **(
                    {
                        "num_classes": class_counts[head],
                        "class_names": _head_class_names(loaded.head_class_names(head), class_counts[head]),
                    }
                    if kind != "count"
                    else {}
                ),
                "outputs": [f"{head}/{name}" for name in DEPLOY_OUTPUTS[kind]],
                **({"category_ids": ids} if kind == "detection" and (ids := loaded.head_category_ids(head)) else {}),
                **({"iou_threshold": decoder_iou_threshold(loaded.collection, head)} if kind == "detection" else {}),
                **_multilabel_threshold_entry(loaded, head, kind),
            }
            for head, kind in heads.items()
        },
        "outputs": {name: DEPLOY_OUTPUTS[heads[name.rpartition("/")[0]]][name.rpartition("/")[2]] for name in outputs},
        "max_abs_difference_to_pytorch": difference,
        "trained_weights": trained_weights_digest(loaded.folder),  # predict --onnx tells a file exported before training went on
    }
    category_ids = loaded.category_ids or _coco_category_ids(loaded)
    if category_ids:
        metadata["category_ids"] = list(category_ids)
    return metadata


def _multilabel_threshold_entry(loaded: TrainedExperiment, head: str, kind: str) -> dict[str, float]:
    """`{"threshold": t}` of a multilabel head whose model names the threshold its `present` output decides at."""
    threshold = multilabel_threshold(loaded.collection, head) if kind == "multilabel" else None
    return {} if threshold is None else {"threshold": threshold}


def _coco_category_ids(loaded: TrainedExperiment) -> list[int] | None:
    """The COCO category ids of the classes (contiguous index = position), read from the training file when the
    experiment's description lacks them and the data is still there."""
    if not str(loaded.description.get("data_module", "")).endswith("CocoDataModule"):
        return None
    from torchbricks.datasets.detection_layouts import coco_category_ids

    try:
        return coco_category_ids(str(loaded.config.data.get("root")))
    except DataError:  # the data is gone or changed: the export goes without the ids
        return None
