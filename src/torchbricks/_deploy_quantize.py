"""int8 quantization of an exported deployable ONNX file, and how the int8 file compares with the float one.

`quantize_int8` (used by `torchbricks.deploy_export.export_deployable_onnx(quantize="int8")`) quantizes the
convolutions and matrix products statically (onnxruntime's QDQ format, int8 weights per channel in 7 bits, uint8
activations) with ranges calibrated on training images of the experiment's data, or on a folder of images when the
data is gone; the decoding (top-k, NMS, argmax) stays in float. The float and the int8 files are then evaluated
with the collection's own metric bricks on the validation split, or compared output by output on the calibration
images.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchbricks._extras import require
from torchbricks.datasets._reading import IMAGE_EXTENSIONS, visible_files
from torchbricks.deploy import INPUT_NAME, read_frames, resize_image
from torchbricks.errors import BrickError
from torchbricks.tags import METRIC
from torchbricks.trained_experiment import TrainedExperiment

__all__ = ["IMAGE_SUFFIXES", "QUANTIZED_OPS", "onnx_session", "quantize_int8"]

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
"""Operators quantized to int8; everything else (decoding, NMS, softmax) stays in float."""
IMAGE_SUFFIXES = IMAGE_EXTENSIONS
"""The calibration images read from a folder: the readers' own (hidden files left out, as every reader does)."""


def onnx_session(path: Path) -> Any:
    """An onnxruntime session on the CPU, quiet about the initializers QDQ models keep as inputs."""
    onnxruntime = require("onnxruntime", "onnx")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # onnxruntime warns about initializers it keeps as inputs of QDQ models
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize_int8(
    loaded: TrainedExperiment,
    size: tuple[int, int],
    float_file: Path,
    int8_file: Path,
    workdir: Path,
    images: Path | str | None,
    num_calibration_images: int,
) -> dict[str, Any]:
    """Quantizes `float_file` into `int8_file` and reports how the int8 file compares with the float one."""
    quantization = require("onnxruntime.quantization", "onnx")
    data_module = None if images is not None else _data_module(loaded, size)
    if data_module is None and images is None:
        unlocated = loaded.unlocated_data_root
        if unlocated:
            raise BrickError(f"Quantizing needs images to calibrate on: {unlocated}; pass a folder of images (--images DIR).")
        raise BrickError(
            f"Quantizing needs images to calibrate on: the experiment's data ({loaded.config.data.get('root')!r}) is "
            "not available; pass a folder of images (--images DIR)."
        )
    if data_module is not None:
        calibration = [image for image, _ in _dataset_images(data_module, "train", num_calibration_images)]
        source = f"{len(calibration)} training images of {data_module.root}"
    else:
        calibration = _folder_images(Path(str(images)), size, num_calibration_images)
        if not calibration:
            raise BrickError(f"The images folder {str(images)!r} has no image ({', '.join(IMAGE_SUFFIXES)}).")
        source = f"{len(calibration)} images of {images}"

    prepared = workdir / "prepared.onnx"
    quantization.shape_inference.quant_pre_process(str(float_file), str(prepared), skip_symbolic_shape=True)
    started = time.perf_counter()
    quantization.quantize_static(
        str(prepared),
        str(int8_file),
        _CalibrationImages(calibration),
        quant_format=quantization.QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OPS),
        per_channel=True,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax,
        # weights in 7 bits (-64 to 63): x86 CPUs without VNNI (AVX2 only, as many AMD EPYC and older Intel) multiply
        # uint8 by int8 in pairs summed into int16, which saturates with 8-bit weights: a convolution on such a CPU came
        # out 11 % of its range off, without a word, while the same file was right on a CPU with VNNI
        reduce_range=True,
    )
    report: dict[str, Any] = {
        "mode": "int8 static (onnxruntime QDQ): int8 weights per channel in 7 bits, uint8 activations, MinMax calibration",
        "quantized_operators": list(QUANTIZED_OPS),
        "calibration": source,
        "seconds": round(time.perf_counter() - started, 2),
        "float_file_bytes": float_file.stat().st_size,
        "int8_file_bytes": int8_file.stat().st_size,
    }
    float_session, int8_session = onnx_session(float_file), onnx_session(int8_file)
    if data_module is not None:
        report.update(_evaluate(loaded, data_module, float_session, int8_session))
    else:
        pairs = [(_run(float_session, batch), _run(int8_session, batch)) for batch in _batches(calibration)]
        report["agreement"] = _agreement(pairs)
        report["evaluated_on"] = f"{source} (no labels: agreement of the float and int8 files only)"
    return report


class _CalibrationImages:
    """onnxruntime's calibration reader protocol over uint8 images [3, H, W], one image per call."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._images = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        return None if image is None else {INPUT_NAME: image[None]}


def _data_module(loaded: TrainedExperiment, size: tuple[int, int]) -> Any:
    """The experiment's data module at `size`, without training augmentations; None when its data is gone."""
    from torchbricks.configuration import instantiate_config

    omegaconf = require("omegaconf", "hydra").OmegaConf
    root = loaded.config.data.get("root")
    if root is None or not Path(str(root)).is_dir():
        return None
    config = omegaconf.merge(loaded.config, {"data": {"image_size": list(size)}})  # boxes and masks at the file's size
    data_module = instantiate_config(config, "data")
    if hasattr(data_module, "read_for_evaluation"):  # calibrate on the images as the model sees them: no augmentation,
        data_module.read_for_evaluation()  # tiles at their fixed windows (tiling builds its datasets at construction)
    elif hasattr(data_module, "train_transform"):
        data_module.train_transform = data_module.test_transform
    data_module.prepare_datasets()
    return data_module


def _to_uint8(raw: torch.Tensor) -> np.ndarray:
    """The uint8 image the data module's float image came from (`ToDtype(scale=True)` divides by 255)."""
    return (raw * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def _dataset_images(data_module: Any, split: str, limit: int | None) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    dataset = data_module.datasets[split]
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in range(count):
        sample = dataset[index]
        yield _to_uint8(sample["raw"]), sample


def _folder_images(folder: Path, size: tuple[int, int], limit: int | None = None) -> list[np.ndarray]:
    """The first `limit` (None: all) calibration images of `folder` [3, height, width] as `predict` gives them to a
    model of `size`: each file decoded as training decoded it (`read_model_image`), each frame of an animated WebP
    an image (`read_frames`, which opens each file once); the files past them are not decoded."""
    images: list[np.ndarray] = []
    for path in visible_files(folder, IMAGE_SUFFIXES):
        if limit is not None and len(images) >= limit:
            break
        images.extend(resize_image(picture, size).transpose(2, 0, 1).copy() for picture in read_frames(path, size))
    return images[:limit]


def _batches(images: list[np.ndarray], batch_size: int = 8) -> Iterator[np.ndarray]:
    for start in range(0, len(images), batch_size):
        yield np.stack(images[start : start + batch_size])


def _run(session: Any, batch: np.ndarray) -> dict[str, np.ndarray]:
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {INPUT_NAME: batch}), strict=True))


def _evaluate(loaded: TrainedExperiment, data_module: Any, float_session: Any, int8_session: Any) -> dict[str, Any]:
    """The collection's metric bricks on the validation split, fed with each file's outputs and the split's targets."""
    collection = loaded.collection
    samples = list(_dataset_images(data_module, "validation", None))
    batches = []  # (targets, float outputs, int8 outputs)
    for start in range(0, len(samples), 8):
        chunk = samples[start : start + 8]
        images = np.stack([image for image, _ in chunk])
        targets = data_module.collate_fn([sample for _, sample in chunk])
        batches.append((targets, _run(float_session, images), _run(int8_session, images)))
    needed = set(collection.required_inputs(tags=[METRIC]))
    metrics: dict[str, dict[str, float]] = {}
    if batches and needed <= set(batches[0][0]) | set(batches[0][1]):
        for precision, which in (("float32", 1), ("int8", 2)):
            collection.reset_metrics()
            for batch in batches:
                named: dict[str, Any] = {name: torch.from_numpy(value) for name, value in batch[which].items()}
                named.update({name: value for name, value in batch[0].items() if name in needed and name not in named})
                with torch.no_grad():
                    collection(named_inputs=named, tags=[METRIC], return_inputs=False)
            values = collection.summarize(reset=True).items()
            # Scalars only: per-class values (dicts) and confusion matrices are not compared.
            metrics[precision] = {
                name: float(value) for name, value in values if isinstance(value, torch.Tensor) and value.numel() == 1
            }
        metrics["change"] = {name: metrics["int8"][name] - metrics["float32"][name] for name in metrics["float32"]}
    return {
        "evaluated_on": f"the validation split of {data_module.root} ({len(samples)} images)",
        "metrics": metrics or None,
        "agreement": _agreement([(batch[1], batch[2]) for batch in batches]),
    }


def _agreement(pairs: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]) -> dict[str, Any]:
    """How close the int8 outputs are to the float ones, per output."""
    if not pairs:
        return {}
    agreement: dict[str, Any] = {}
    for name in pairs[0][0]:
        reference = np.concatenate([pair[0][name] for pair in pairs])
        quantized = np.concatenate([pair[1][name] for pair in pairs])
        leaf = name.rpartition("/")[2]
        if leaf == "labels":
            counts = (reference >= 0).sum(axis=1), (quantized >= 0).sum(axis=1)
            agreement[f"{name}:same_box_count"] = float((counts[0] == counts[1]).mean())
            agreement[f"{name}:mean_boxes_float32"] = float(counts[0].mean())
            agreement[f"{name}:mean_boxes_int8"] = float(counts[1].mean())
        elif reference.dtype.kind in "iu":
            agreement[f"{name}:equal_fraction"] = float((reference == quantized).mean())
        elif leaf not in ("boxes", "points", "scores"):  # sorted by score: positions do not pair them across files
            agreement[f"{name}:max_abs_difference"] = float(np.abs(reference - quantized).max(initial=0.0))
    return agreement
