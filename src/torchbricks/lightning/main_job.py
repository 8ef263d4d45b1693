"""The main job: train a configured brick model with Lightning, test it, export it to ONNX and draw its predictions.

Everything comes from a composed config (`torchbricks.configuration.compose_config`); the experiment folder
`<experiment.path_experiments>/<experiment.name>` receives:

- `config.yaml`: the composed config (`resume=true` continues from it);
- `experiment.json`, `resolved_config.yaml`: the input size, the class names and the resolved config, from which
  `torchbricks.trained_experiment.load_experiment` rebuilds the trained model without the training data;
- `checkpoints/`: Lightning's `last.ckpt` (every epoch) and `best.ckpt` (by `checkpoint.monitor`);
- `metrics.json`: the last epoch's train and validation metrics and the test metrics of the best epoch's weights
  (confusion matrices and each head's `per_class` values keyed by class name included), the ONNX check, the wall
  time, the epochs run, why training stopped (`stop_reason`: `max_epochs`, `max_time`, `early_stopping`...) and
  which epoch was best (`best_epoch`, counted from 1, with `best_score` of `checkpoint.monitor`);
  `metrics_<stage>.json`: the last epoch of each stage, written during training;
- `history.json` and `curves.png`: every logged scalar per epoch, and their curves (one panel per head);
- `confusion_matrix.png`: each classification or segmentation head's normalised test confusion matrix with its
  per-class precision, recall and IoU, and per-class bars of the detection (AP) and multi-label heads;
- `predictions.png`: test images with ground truth beside prediction, mistakes first, one section per head;
- `brick_graph.md`: the mermaid graph of the collection;
- `bricks/`: one checkpoint per brick (`BrickCollection.save_bricks`) of the best epoch (the last one when
  checkpointing is off), the weights that are tested, exported and drawn;
- `model.onnx`: the export stage of the collection, run in onnxruntime and compared with PyTorch;
- `logs/`: Lightning's CSV log, and `tensorboard/` when tensorboard is installed.

An existing experiment is refused unless `resume=true` (continue from `checkpoints/last.ckpt`) or
`experiment.overwrite=true` (start again) is set. The pictures need matplotlib (the `plots` extra); without it
`predictions.png` is the grid of the collection's own visualizations and the other pictures are left out.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from torchbricks._experiment import CHECKPOINTS_FOLDER, CONFIG_FILE, launched_as_global_zero, prepare_experiment_folder
from torchbricks._extras import require
from torchbricks._files import write_json, write_text
from torchbricks.brick_collection import BrickCollection
from torchbricks.configuration import (
    check_classes_cover_data,
    check_optimizer_factory,
    check_train_config,
    create_brick_collection,
    instantiate_config,
)
from torchbricks.errors import BrickError, CheckpointError, ConfigError, did_you_mean
from torchbricks.lightning.module import (
    AVERAGED_METRICS_NAME,
    BRICKS_FOLDER,
    LightningBrickCollection,
    create_experiment_name,
    to_json,
)
from torchbricks.lightning.multi_source_config import expand_sources
from torchbricks.lightning.task_resolvers import check_class_weights, register_resolvers
from torchbricks.loss_balancing import create_loss_balancer
from torchbricks.tags import Stage
from torchbricks.trained_experiment import write_experiment_description

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
        ExperimentExistsError: The experiment exists and neither `resume=true` nor `experiment.overwrite=true` is set.
        ConfigError: A part of the config cannot be instantiated; the message names the key.
        BrickError: The ONNX model disagrees with PyTorch beyond `ONNX_TOLERANCE`.
    """
    pl = require("pytorch_lightning", "lightning")
    require("omegaconf", "hydra")  # a missing extra is named before anything runs
    register_resolvers()  # the task configs read their classes from the data
    config = expand_sources(config)  # task=multitask data.sources=[...]: a head per separately labelled data set
    started = time.perf_counter()
    check_config(config)
    if config.experiment.name is None:
        config.experiment.name = create_experiment_name()
    path_experiment = prepare_experiment_folder(config)
    resume = bool(config.get("resume", False))
    quiet_third_party_notices(resume)

    pl.seed_everything(int(config.seed), workers=True, verbose=False)
    data_module = instantiate_config(config, "data")
    brick_collection = create_model_bricks(config)
    if config.get("channels_last", False):  # convolutions run faster on the CPU (oneDNN) and on tensor cores
        brick_collection.to(memory_format=torch.channels_last)
    create_optimizer = instantiate_config(config, "optimizer")
    check_optimizer_factory(create_optimizer, "optimizer")
    check_classes_cover_data(data_module, brick_collection, "model.num_classes" if "num_classes" in config.model else "model")
    module = create_module(config, brick_collection, create_optimizer)
    checkpointing = bool(config.trainer.get("enable_checkpointing", True))
    if checkpointing or early_stopping_patience(config) is not None:
        check_checkpoint_monitor(monitored_value(config), module)
    if launched_as_global_zero():
        write_run_files(path_experiment, config, data_module)
    class_names = getattr(data_module, "class_names", None)  # several sources (data.sources): a dict, one list per head
    class_names = class_names if isinstance(class_names, list) else None
    trainer = instantiate_config(
        config,
        "trainer",
        logger=create_loggers(path_experiment, resume),
        callbacks=create_callbacks(config, path_experiment, class_names),
    )
    checkpoint = path_experiment / CHECKPOINTS_FOLDER / "last.ckpt" if resume else None
    stopped, best = fit_and_test_best(trainer, module, data_module, checkpoint, checkpointing)
    if not trainer.is_global_zero:
        return MainJobResult(path_experiment, {}, module)
    if best is not None:  # on_fit_end saved the last epoch's weights
        brick_collection.save_bricks(path_experiment / BRICKS_FOLDER, exist_ok=True)

    brick_collection.eval()
    loaders = data_module.test_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]  # one test loader per source with data.sources
    batch = module.named_inputs_from_batch(next(iter(loaders[0])))
    metrics: dict[str, Any] = to_json(module.epoch_metrics)
    if config.export_onnx:
        metrics["onnx_max_abs_difference"] = export_and_check_onnx(path_experiment / "model.onnx", brick_collection, batch)
    if config.n_visualized:
        draw_test_pictures(path_experiment, module, loaders, int(config.n_visualized), class_names)
    metrics.update(stopped, **best_summary(trainer, best))
    metrics["wall_time_seconds"] = round(time.perf_counter() - started, 2)
    write_json(path_experiment / "metrics.json", metrics)
    return MainJobResult(path_experiment, metrics, module)


def write_run_files(path_experiment: Path, config: Any, data_module: Any) -> None:
    """Writes `config.yaml`, `experiment.json` and `resolved_config.yaml` when a run starts."""
    omegaconf = require("omegaconf", "hydra")
    path_experiment.mkdir(parents=True, exist_ok=True)
    write_text(path_experiment / CONFIG_FILE, omegaconf.OmegaConf.to_yaml(config))
    write_experiment_description(path_experiment, config, data_module)


def draw_test_pictures(
    path_experiment: Path, module: LightningBrickCollection, loaders: list[Any], n_visualized: int, class_names: list[str] | None
) -> None:
    """`predictions.png` (and `confusion_matrix.png`) of the test loaders, see `save_pictures`.

    With several sources (one loader each) each head is drawn from the test images of the source labelling it,
    with class indices for names (each head has classes of its own).
    """
    if len(loaders) > 1 and _installed("matplotlib"):
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
        return
    test_batches = (module.named_inputs_from_batch(batch) for loader in loaders for batch in loader)
    save_pictures(path_experiment, module, test_batches, n_visualized, class_names)


def create_balancer(config: Any, collection: BrickCollection) -> Any:
    """The loss balancer of `loss_balancing` (None for `fixed`: the module weighs the losses by `loss_weights`).

    Raises:
        ConfigError: An unknown strategy, or `loss_weights` with a strategy that learns its own weights.
    """
    strategy = str(config.get("loss_balancing", "fixed"))
    if strategy == "fixed":
        return None
    if config.get("loss_weights"):
        raise ConfigError(
            f"Config key 'loss_weights' applies to loss_balancing=fixed; loss_balancing={strategy} sets its own weights."
        )
    processes = int(config.trainer.get("devices", 1) or 1) * int(config.trainer.get("num_nodes", 1) or 1)
    if strategy == "pcgrad" and processes > 1:
        raise ConfigError(
            "Config key 'loss_balancing': pcgrad computes one gradient per loss on one process; DDP averages gradients "
            "in its own backward pass. Use uncertainty or dwa with several processes."
        )
    try:
        return create_loss_balancer(strategy, collection.loss_names())
    except BrickError as error:
        raise ConfigError(f"Config key 'loss_balancing': {error}") from error


def check_config(config: Any) -> None:
    """Checks the plain values of `config` and resolves `loss.class_weights` (counted in the training data and logged
    once), before anything is written.

    Raises:
        ConfigError: A value is wrong; the message names its key.
    """
    pl = require("pytorch_lightning", "lightning")
    check_train_config(config)
    check_class_weights(config, log=pl.utilities.rank_zero_info)


def create_model_bricks(config: Any) -> BrickCollection:
    """The collection of `model.bricks`; weights that cannot be loaded are reported under `model.weights`.

    Raises:
        ConfigError: A brick cannot be built; `Config key 'model.weights': ...` when the backbone's weights file
            is missing, unreadable or of another architecture.
    """
    try:
        return create_brick_collection(config, "model.bricks")
    except ConfigError as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, CheckpointError):
            cause = cause.__cause__ or cause.__context__
        weights = config.model.get("weights") if "model" in config else None
        if cause is None or weights is None:
            raise
        message = str(cause).removeprefix("create_task_backbone: ")
        raise ConfigError(f"Config key 'model.weights': {message[:1].lower()}{message[1:]}") from cause


def fit_and_test_best(
    trainer: Any, module: LightningBrickCollection, data_module: Any, checkpoint: Path | None, checkpointing: bool
) -> tuple[dict[str, Any], Path | None]:
    """Trains (from `checkpoint` when resuming), then tests the best epoch's weights by `checkpoint.monitor` (the
    last weights when `checkpointing` is off or no checkpoint was saved), which the module keeps afterwards.

    Returns:
        `training_summary` of the fit and the best checkpoint's file (None when the last weights were tested).
    """
    pl = require("pytorch_lightning", "lightning")
    try:
        trainer.fit(module, datamodule=data_module, ckpt_path=checkpoint)
    except pl.utilities.exceptions.MisconfigurationException as error:
        if "could not find the monitored key" not in str(error):
            raise
        raise ConfigError(f"Config key 'checkpoint.monitor' names a metric that is not logged: {error}") from error
    stopped = training_summary(trainer)
    best = best_checkpoint(trainer) if checkpointing else None
    trainer.test(module, datamodule=data_module, ckpt_path=None if best is None else str(best))
    return stopped, best


def create_module(config: Any, brick_collection: BrickCollection, create_optimizer: Any) -> LightningBrickCollection:
    """The Lightning module of the job: the collection, the optimizer factory, the losses' balancing and what
    `checkpoint.monitor` averages.

    Raises:
        ConfigError: `checkpoint.monitor` lists a value that no metric brick logs.
    """
    omegaconf = require("omegaconf", "hydra")
    averaged = averaged_metrics(config)
    try:
        return LightningBrickCollection(
            path_experiments=config.experiment.path_experiments,
            experiment_name=str(config.experiment.name),
            brick_collection=brick_collection,
            create_optimizers_func=create_optimizer,
            loss_weights=omegaconf.OmegaConf.to_container(config.loss_weights),
            compile_stages=bool(config.get("compile", False)),
            loss_balancer=create_balancer(config, brick_collection),
            missing_targets=str(config.get("missing_targets", "error")),
            averaged_metrics=averaged,
        )
    except BrickError as error:
        if not averaged or "averaged_metrics" not in str(error):
            raise
        raise ConfigError(f"Config key 'checkpoint.monitor': {str(error).replace('averaged_metrics names', 'lists')}") from error


def averaged_metrics(config: Any) -> tuple[str, ...]:
    """The validation values whose mean `checkpoint.monitor` follows when it is a list (`[validation/a/map_50,
    validation/b/mean_iou]`, all better in the direction of `checkpoint.mode`); none when it names one value.

    Raises:
        ConfigError: An item of the list is not a `validation/...` value.
    """
    omegaconf = require("omegaconf", "hydra").OmegaConf
    monitor = config.checkpoint.monitor
    if not omegaconf.is_list(monitor) and not isinstance(monitor, (list, tuple)):
        return ()
    names = [str(name) for name in monitor]
    wrong = [name for name in names if not name.startswith("validation/")]
    if not names or wrong:
        raise ConfigError(
            "Config key 'checkpoint.monitor' lists validation values whose mean is monitored, each 'validation/...'; "
            f"got {names}."
        )
    return tuple(name.removeprefix("validation/") for name in names)


def monitored_value(config: Any) -> str:
    """The logged value that `best.ckpt` and early stopping follow: `checkpoint.monitor`, or
    `validation/monitored_mean` when `checkpoint.monitor` lists several values."""
    return f"validation/{AVERAGED_METRICS_NAME}" if averaged_metrics(config) else str(config.checkpoint.monitor)


def early_stopping_patience(config: Any) -> int | None:
    """`early_stopping.patience` of the config: None when early stopping is off (the key null or absent).

    Raises:
        ConfigError: The patience is not an int >= 1 or `early_stopping.min_delta` is not a number >= 0.
    """
    settings = config.get("early_stopping") or {}
    patience = settings.get("patience")
    if patience is None:
        return None
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ConfigError(
            f"Config key 'early_stopping.patience' must be an int >= 1 (validation epochs without improvement) "
            f"or null (no early stopping), got {type(patience).__name__} {patience!r}."
        )
    min_delta = settings.get("min_delta", 0.0)
    if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
        raise ConfigError(
            f"Config key 'early_stopping.min_delta' must be a number >= 0, got {type(min_delta).__name__} {min_delta!r}."
        )
    return patience


def training_summary(trainer: Any) -> dict[str, Any]:
    """How many epochs a finished `trainer.fit` ran and why it stopped.

    `stop_reason` is `early_stopping` (with `early_stopping_message`, Lightning's explanation), `max_time`,
    `max_steps`, `max_epochs` or `interrupted`.
    """
    pl = require("pytorch_lightning", "lightning")
    summary: dict[str, Any] = {"epochs": int(trainer.current_epoch)}
    stoppers = [callback for callback in trainer.callbacks if isinstance(callback, pl.callbacks.EarlyStopping)]
    timers = [callback for callback in trainer.callbacks if isinstance(callback, pl.callbacks.Timer)]
    if trainer.interrupted:
        summary["stop_reason"] = "interrupted"
    elif stoppers and stoppers[0].stopped_epoch > 0:
        summary["stop_reason"] = "early_stopping"
        summary["early_stopping_message"] = stoppers[0].stopping_reason_message
    elif timers and (timers[0].time_remaining() or 0.0) <= 0.0:
        summary["stop_reason"] = "max_time"
    elif trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        summary["stop_reason"] = "max_steps"
    else:
        summary["stop_reason"] = "max_epochs"
    if timers:
        summary["training_seconds"] = round(timers[0].time_elapsed(), 2)
    return summary


def best_checkpoint(trainer: Any) -> Path | None:
    """The file of the best checkpoint by `checkpoint.monitor`, or None when none was saved (no epoch was validated)."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return Path(path) if path and Path(path).is_file() else None


def best_summary(trainer: Any, best: Path | None) -> dict[str, Any]:
    """Which weights were tested: `best_epoch` (counted from 1, as `epochs`; the epoch whose end the best checkpoint
    saved), its `best_score` of `checkpoint.monitor`, and `tested_weights` (`best`, or `last` without a checkpoint)."""
    if best is None:
        return {"best_epoch": None, "best_score": None, "tested_weights": "last"}
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    score = trainer.checkpoint_callback.best_model_score
    return {
        "best_epoch": int(checkpoint["epoch"]) + 1,
        "best_score": None if score is None else float(score),
        "tested_weights": "best",
    }


def check_checkpoint_monitor(monitor: str, module: LightningBrickCollection, key: str = "checkpoint.monitor") -> None:
    """Checks, before training, that the checkpoint's monitored value is one the module logs by the time a
    checkpoint is saved (the training and validation values of `module.logged_names`), instead of Lightning
    finding out when the first checkpoint is due.

    Raises:
        ConfigError: `monitor` is not logged; the message names `key`, the values logged and the close match.
    """
    import fnmatch

    logged = [name for stage in (Stage.TRAIN, Stage.VALIDATION) for name in module.logged_names(stage)]
    if any(fnmatch.fnmatchcase(monitor, name) for name in logged):
        return
    shown = [name for name in logged if not name.endswith(("_epoch", "_step"))]
    raise ConfigError(
        f"Config key {key!r} is {monitor!r}, which the run never logs; it logs {shown} (training values also with "
        f"_epoch and _step).{did_you_mean(monitor, logged)}"
    )


def create_loggers(path_experiment: Path, resume: bool) -> list[Any]:
    """Lightning's CSV logger (`logs/`), and its TensorBoard logger (`tensorboard/`) when tensorboard is installed.

    A resumed run logs its CSV into `logs/resumed_<time>/`, as Lightning's CSV logger would otherwise delete the
    interrupted run's file; TensorBoard adds an event file beside the earlier ones and continues their steps.
    """
    pl = require("pytorch_lightning", "lightning")
    version = f"resumed_{create_experiment_name()}" if resume else ""
    loggers = [pl.loggers.CSVLogger(save_dir=str(path_experiment), name="logs", version=version)]
    if _installed("tensorboard"):
        loggers.append(
            pl.loggers.TensorBoardLogger(save_dir=str(path_experiment), name="tensorboard", version="", default_hp_metric=False)
        )
    return loggers


def create_callbacks(config: Any, path_experiment: Path, class_names: list[str] | None = None) -> list[Any]:
    """The main job's callbacks: per-epoch seeding, the metric history and curves, checkpoints, line progress
    output when standard output is not a terminal, and prediction pictures for TensorBoard."""
    pl = require("pytorch_lightning", "lightning")
    from torchbricks.lightning.callbacks import EpochSeed, LineProgressBar, MetricHistory, TensorBoardPredictions

    draw = _installed("matplotlib")
    every = int(config.get("pictures_every_n_epochs", 1))
    if every < 1:
        raise ConfigError(f"Config key 'pictures_every_n_epochs' must be 1 or more (1: every epoch), got {every}.")
    callbacks: list[Any] = [EpochSeed(int(config.seed)), MetricHistory(path_experiment, draw=draw, draw_every_n_epochs=every)]
    patience = early_stopping_patience(config)
    if patience is not None:
        callbacks.append(
            pl.callbacks.EarlyStopping(
                monitor=monitored_value(config),
                mode=str(config.checkpoint.mode),
                patience=patience,
                min_delta=float(config.early_stopping.get("min_delta", 0.0)),
                check_on_train_epoch_end=True,  # as the checkpoints: after validation and the epoch's metrics
                strict=False,  # the name is checked before training; a first epoch cut by max_time has no value yet
            )
        )
    if config.trainer.get("enable_checkpointing", True):
        # Two callbacks: Lightning 2.6's save_last=True writes last.ckpt only in an epoch that also improved best.ckpt,
        # so a resumed run would go back to the best epoch. The best one first: it is `trainer.checkpoint_callback`.
        folder = str(path_experiment / CHECKPOINTS_FOLDER)
        for name, monitor in (("best", monitored_value(config)), ("last", None)):
            callbacks.append(
                pl.callbacks.ModelCheckpoint(
                    dirpath=folder,
                    filename=name,
                    monitor=monitor,  # None: the latest epoch
                    mode=str(config.checkpoint.mode),
                    save_top_k=1,
                    save_on_train_epoch_end=True,  # after validation and the epoch's metrics: a resumed run starts the next epoch
                    enable_version_counter=False,
                )
            )
    if config.trainer.get("enable_progress_bar", True) and not sys.stdout.isatty():
        callbacks.append(LineProgressBar())
    if draw and _installed("tensorboard") and config.n_visualized:
        callbacks.append(TensorBoardPredictions(int(config.n_visualized), class_names, every_n_epochs=every))
    return callbacks


def quiet_third_party_notices(resume: bool = False) -> None:
    """Silences what a user of the main job can neither act on nor needs to read.

    - Lightning's "module(s) in eval mode at the start of training": frozen bricks (`BrickNotTrainable`) keep their
      modules in eval mode on purpose, so batch-norm statistics and dropout stay frozen.
    - Lightning's advertising tips for its cloud services, and its use of a torch API that torch deprecated.
    - With `resume`, Lightning's warning that the checkpoint folder is not empty: resuming is why it is not.
    - Lightning's note that an epoch has fewer batches than `log_every_n_steps`: the history, the curves and the
      progress lines use epoch values.
    """
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training", category=UserWarning)
    if resume:  # Lightning warns that the checkpoint folder is not empty: resuming is why it is not
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
    # The history, the curves and the per-epoch lines use epoch values; a short epoch only thins the step log.
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging interval")
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(existing, _DropTips) for existing in logger.filters):
        logger.addFilter(_DropTips())


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


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
    if _installed("matplotlib"):
        from torchbricks.lightning import report

        batches = list(test_batches)
        first = batches[0] if batches else None
        predictions = report.collect_predictions(collection, batches)
        if predictions:
            report.save_figure(
                report.plot_predictions(predictions, class_names, n_samples=n_visualized), path_experiment / "predictions.png"
            )
        class_scores = report.plot_class_scores(module.epoch_metrics.get("test", {}), class_names)
        if class_scores is not None:
            report.save_figure(class_scores, path_experiment / "confusion_matrix.png")
        if predictions:
            return
    else:
        first = next(iter(test_batches), None)
    if first is not None:
        images = {name: value[:n_visualized] for name, value in first.items()}
        save_visualizations(path_experiment / "predictions.png", collection, images)


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
