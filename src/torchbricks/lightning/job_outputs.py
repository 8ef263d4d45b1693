"""What the main job draws and exports after testing: `predictions.png`, `confusion_matrix.png` (one per test loader
with several, `confusion_matrix_dataloader_idx_<i>.png`) and `model.onnx`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from torchbricks._conventions import LOADER_SUFFIX
from torchbricks._extras import require
from torchbricks._output_agreement import output_gap
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import BrickError
from torchbricks.lightning.module import LightningBrickCollection
from torchbricks.tags import Stage

__all__ = [
    "CLASS_SCORES_FILE",
    "ONNX_TOLERANCE",
    "draw_test_pictures",
    "export_and_check_onnx",
    "save_class_scores",
    "save_pictures",
    "save_visualizations",
]

ONNX_TOLERANCE = 1e-4


def installed(module: str) -> bool:
    """Whether `module` can be imported (an optional extra is installed)."""
    return importlib.util.find_spec(module) is not None


def draw_test_pictures(
    path_experiment: Path, module: LightningBrickCollection, loaders: list[Any], n_visualized: int, class_names: list[str] | None
) -> None:
    """`predictions.png` and the confusion matrices (`save_class_scores`) of the test loaders, see `save_pictures`.

    With several loaders (several sources, one loader each, or a data module's own list) each head is drawn from the
    test images of the loaders carrying its targets, with class indices for names (each head of several sources has
    classes of its own).
    """
    if len(loaders) > 1 and installed("matplotlib"):
        from torchbricks.lightning import report

        collection = module.brick_collection
        predictions = [
            head
            for loader in loaders
            for head in report.collect_predictions(collection, (module.named_inputs_from_batch(batch) for batch in loader))
        ]
        if predictions:
            report.save_figure(
                report.plot_predictions(predictions, None, n_samples=n_visualized), path_experiment / "predictions.png"
            )
        save_class_scores(path_experiment, module.epoch_metrics, class_names)
        return
    test_batches = (module.named_inputs_from_batch(batch) for loader in loaders for batch in loader)
    save_pictures(path_experiment, module, test_batches, n_visualized, class_names)


def save_pictures(
    path_experiment: Path,
    module: LightningBrickCollection,
    test_batches: Any,
    n_visualized: int,
    class_names: list[str] | None = None,
) -> None:
    """Draws `predictions.png` and `confusion_matrix.png` (see `torchbricks.lightning.report`) after testing.

    Without matplotlib, or when no head's predictions can be drawn beside their targets, `predictions.png` is
    the grid of the images the collection's VISUALIZATION bricks draw.
    """
    collection = module.brick_collection
    first: dict[str, Any] | None = None
    if installed("matplotlib"):
        from torchbricks.lightning import report

        batches = list(test_batches)
        first = batches[0] if batches else None
        predictions = report.collect_predictions(collection, batches)
        if predictions:
            report.save_figure(
                report.plot_predictions(predictions, class_names, n_samples=n_visualized), path_experiment / "predictions.png"
            )
        save_class_scores(path_experiment, module.epoch_metrics, class_names)
        if predictions:
            return
    else:
        first = next(iter(test_batches), None)
    if first is not None:
        images = {name: value[:n_visualized] for name, value in first.items()}
        save_visualizations(path_experiment / "predictions.png", collection, images)


CLASS_SCORES_FILE = "confusion_matrix{loader}.png"
"""The picture of the test values' per-class results; `{loader}` is empty, or `_dataloader_idx_<i>` for each of
several test loaders with values of their own."""


def save_class_scores(
    path_experiment: Path, epoch_metrics: dict[str, dict[str, Any]], class_names: list[str] | None
) -> list[Path]:
    """Draws the per-class results of the test values (`report.plot_class_scores`): `confusion_matrix.png` of the
    test split (of every test loader pooled, with several sources), and with several test loaders whose values are
    kept apart (`epoch_metrics["test/dataloader_idx_<i>"]`, as `metrics.json` has them) one picture per loader,
    `confusion_matrix_dataloader_idx_<i>.png`, titled by the loader. None for values without per-class results.

    Returns:
        The pictures written.
    """
    from torchbricks.lightning import report

    written = []
    for key, values in epoch_metrics.items():
        stage, suffix, loader = key.partition(LOADER_SUFFIX)
        if stage != "test" or (suffix and not loader.isdigit()):
            continue
        title = f"test loader {loader} (test/dataloader_idx_{loader} of metrics.json)" if suffix else None
        figure = report.plot_class_scores(values, class_names, title=title)
        if figure is not None:
            path = path_experiment / CLASS_SCORES_FILE.format(loader="_" + suffix.strip("/") + loader if suffix else "")
            report.save_figure(figure, path)
            written.append(path)
    return written


def export_and_check_onnx(path_onnx: Path, brick_collection: BrickCollection, named_inputs: dict[str, Any]) -> float:
    """Exports the export stage of the collection to `path_onnx`, runs it in onnxruntime and compares with PyTorch.

    Returns:
        The largest absolute difference between the onnxruntime and the PyTorch outputs; an integer output (a mask,
        a label) that differs on at most a 0.1 % share of its elements, near ties of two classes, counts as equal
        (`torchbricks._output_agreement.output_gap`).

    Raises:
        BrickError: The difference exceeds `ONNX_TOLERANCE`.
    """
    from torchbricks.brick_collection_utils import export_bricks_as_onnx

    onnxruntime = require("onnxruntime", "onnx")
    # The export keeps only the inputs the export stage reads; the others (the targets) are left out.
    export_bricks_as_onnx(path_onnx, brick_collection, named_inputs, dynamic_batch_size=True)
    with torch.no_grad():
        expected = brick_collection(named_inputs=named_inputs, tags=Stage.EXPORT, return_inputs=False)
    session = onnxruntime.InferenceSession(str(path_onnx), providers=["CPUExecutionProvider"])
    feed = {node.name: named_inputs[node.name].numpy() for node in session.get_inputs()}
    output_names = [node.name for node in session.get_outputs()]
    actual = dict(zip(output_names, session.run(None, feed), strict=True))
    if not set(output_names) <= set(expected):
        raise BrickError(f"The ONNX model outputs {output_names}; the export stage of the collection outputs {list(expected)}.")
    difference = 0.0
    for name, value in actual.items():
        difference = max(difference, output_gap(value, expected[name].numpy()))
    if difference > ONNX_TOLERANCE:
        raise BrickError(f"The ONNX model in {str(path_onnx)!r} differs from PyTorch by {difference:.3g} > {ONNX_TOLERANCE}.")
    return difference


def save_visualizations(path_png: Path, brick_collection: BrickCollection, named_inputs: dict[str, Any]) -> None:
    """Runs the inference stage and saves every image the VISUALIZATION bricks draw as one grid PNG."""
    from torchbricks.bag_of_bricks.sinks import save_image_grid

    with torch.no_grad():
        outputs = brick_collection(named_inputs=named_inputs, tags=Stage.INFERENCE, return_inputs=False)
    # Drawn images are lists of Pillow images; other VISUALIZATION outputs (an upscaled tensor) feed the drawing.
    drawn = [value for value in outputs.values() if isinstance(value, list) and value and isinstance(value[0], Image.Image)]
    images = [image for images in drawn for image in images]
    if not images:
        raise BrickError("The collection has no VISUALIZATION brick drawing images; nothing to save in predictions.png.")
    save_image_grid(images, path_png)
