"""The main job: train a configured brick model with Lightning, test it, export it to ONNX and draw its predictions.

Everything comes from a composed config (`torchbricks.configuration.compose_config`); the experiment folder
`<experiment.path_experiments>/<experiment.name>` receives:

- `metrics.json`: the final train, validation and test metrics (confusion matrices included), the ONNX check and
  the wall time; `metrics_<stage>.json`: the last epoch of each stage, written during training;
- `brick_graph.md`: the mermaid graph of the collection;
- `bricks/`: one checkpoint per brick (`BrickCollection.save_bricks`);
- `model.onnx`: the export stage of the collection, run in onnxruntime and compared with PyTorch;
- `predictions.png`: visualized test predictions (the collection's VISUALIZATION bricks);
- `logs/`: Lightning's CSV log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from torchbricks._extras import require
from torchbricks.brick_collection import BrickCollection
from torchbricks.configuration import (
    check_classes_cover_data,
    check_optimizer_factory,
    check_train_config,
    create_brick_collection,
    instantiate_config,
)
from torchbricks.errors import BrickError
from torchbricks.lightning.module import LightningBrickCollection, _write_json, create_experiment_name, to_json
from torchbricks.tags import Stage

__all__ = ["MainJobResult", "run_main_job"]

ONNX_TOLERANCE = 1e-4


@dataclass
class MainJobResult:
    """What the main job made: the experiment folder, the metrics written to `metrics.json` and the module."""

    path_experiment: Path
    metrics: dict[str, Any]
    module: LightningBrickCollection = field(repr=False)


def run_main_job(config: Any) -> MainJobResult:
    """Trains, tests, exports and visualizes the model of `config` (see the module docstring for the outputs).

    Args:
        config: A config composed from `train.yaml` (`torchbricks.configuration.compose_config`).

    Raises:
        ConfigError: A part of the config cannot be instantiated; the message names the key.
        BrickError: The ONNX model disagrees with PyTorch beyond `ONNX_TOLERANCE`.
    """
    pl = require("pytorch_lightning", "lightning")
    omegaconf = require("omegaconf", "hydra")
    started = time.perf_counter()
    check_train_config(config)
    if config.experiment.name is None:
        config.experiment.name = create_experiment_name()
    path_experiment = Path(config.experiment.path_experiments) / str(config.experiment.name)

    pl.seed_everything(int(config.seed), workers=True, verbose=False)
    data_module = instantiate_config(config, "data")
    brick_collection = create_brick_collection(config, "model.bricks")
    create_optimizer = instantiate_config(config, "optimizer")
    check_optimizer_factory(create_optimizer, "optimizer")
    check_classes_cover_data(data_module, brick_collection, "model.num_classes" if "num_classes" in config.model else "model")
    module = LightningBrickCollection(
        path_experiments=config.experiment.path_experiments,
        experiment_name=str(config.experiment.name),
        brick_collection=brick_collection,
        create_optimizers_func=create_optimizer,
        loss_weights=omegaconf.OmegaConf.to_container(config.loss_weights),
    )
    logger = pl.loggers.CSVLogger(save_dir=str(path_experiment), name="logs", version="")
    trainer = instantiate_config(config, "trainer", logger=logger)
    trainer.fit(module, datamodule=data_module)
    trainer.test(module, datamodule=data_module)
    if not trainer.is_global_zero:
        return MainJobResult(path_experiment, {}, module)

    brick_collection.eval()
    batch = module.named_inputs_from_batch(next(iter(data_module.test_dataloader())))
    metrics: dict[str, Any] = to_json(module.epoch_metrics)
    if config.export_onnx:
        metrics["onnx_max_abs_difference"] = export_and_check_onnx(path_experiment / "model.onnx", brick_collection, batch)
    if config.n_visualized:
        images = {name: value[: int(config.n_visualized)] for name, value in batch.items()}
        save_visualizations(path_experiment / "predictions.png", brick_collection, images)
    metrics["epochs"] = trainer.current_epoch
    metrics["wall_time_seconds"] = round(time.perf_counter() - started, 2)
    _write_json(path_experiment / "metrics.json", metrics)
    return MainJobResult(path_experiment, metrics, module)


def export_and_check_onnx(path_onnx: Path, brick_collection: BrickCollection, named_inputs: dict[str, Any]) -> float:
    """Exports the export stage of the collection to `path_onnx`, runs it in onnxruntime and compares with PyTorch.

    Returns:
        The largest absolute difference between the onnxruntime and the PyTorch outputs.

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
        reference = expected[name].numpy()
        difference = max(difference, float(np.max(np.abs(value.astype(np.float64) - reference.astype(np.float64)), initial=0.0)))
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
