"""The main job: train a configured brick model with Lightning, test it, export it to ONNX and draw its predictions.

Everything comes from a composed config (`torchbricks.configuration.compose_config`); the experiment folder
`<experiment.path_experiments>/<experiment.name>` receives:

- `config.yaml`: the composed config (`resume=true` continues from it);
- `experiment.json`, `resolved_config.yaml`: the input size, the class names and the resolved config, from which
  `torchbricks.trained_experiment.load_experiment` rebuilds the trained model without the training data;
- `checkpoints/`: Lightning's `last.ckpt` (every epoch) and `best.ckpt` (by `checkpoint.monitor`);
- `metrics.json`: the last epoch's train and validation metrics and the test metrics of the best epoch's weights
  (confusion matrices and each head's `per_class` values keyed by class name included), the other test
  values logged (`test_logged`: `loss`, `losses/<head>/<loss>`, `monitored_mean`; `torchbricks train` prints them with
  the test metrics, in place of Lightning's test table), why each `null` value is (`undefined_metrics`), with several
  test loaders each one's values (`test/dataloader_idx_<i>`) and data (`test_loaders`), the epoch of each of the
  first two (`metric_epochs`, counted from 1: the last validated epoch, with `trainer.check_val_every_n_epoch` above
  1, may be older than the last trained), the ONNX check, the wall
  time, the epochs run, why training stopped (`stop_reason`: `max_epochs`, `max_time`, `early_stopping`...) and
  which epoch was best (`best_epoch`, counted from 1, with `best_score` of `checkpoint.monitor`), which weights were
  tested (`tested_weights`) and, when no epoch was validated for a validation monitor, `tested_weights_note`;
  `metrics_<stage>.json`: the last epoch of each stage, written during training;
- `history.json` and `curves.png`: every logged scalar per epoch, and their curves (one panel per head);
- `confusion_matrix.png`: each classification or segmentation head's normalised test confusion matrix with its
  per-class precision, recall and IoU, and per-class bars of the detection (AP), multi-label and points heads; with
  several test loaders whose values are kept apart, one per loader, `confusion_matrix_dataloader_idx_<i>.png`;
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

import contextlib
import fnmatch
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchbricks._checkpoint import read_training_checkpoint
from torchbricks._conventions import LOADER_SUFFIX, logged_name
from torchbricks._data_facts import data_facts_kept
from torchbricks._experiment import (
    CHECKPOINTS_FOLDER,
    CONFIG_FILE,
    check_experiment_folder,
    config_file_text,
    experiment_folder,
    last_checkpoint,
    launched_as_global_zero,
    prepare_experiment_folder,
    with_home_expanded,
)
from torchbricks._extras import require
from torchbricks._files import write_json, write_text
from torchbricks.brick_collection import BrickCollection
from torchbricks.configuration import JobSettings, create_job
from torchbricks.datasets._reading import each_file_read_once
from torchbricks.errors import (
    LOADER_TERMINATED,
    BrickError,
    CheckpointError,
    ConfigError,
    RunStoppedError,
    Terminated,
    UnknownMetricError,
    did_you_mean_key,
)
from torchbricks.lightning.checkpoint_io import with_atomic_checkpoints
from torchbricks.lightning.experiment_files import BRICKS_FOLDER, to_json
from torchbricks.lightning.job_outputs import draw_test_pictures, export_and_check_onnx
from torchbricks.lightning.job_trainer import (
    best_checkpoint,
    best_summary,
    checkpoint_logging_step,
    create_callbacks,
    create_loggers,
    quiet_third_party_notices,
    training_summary,
)
from torchbricks.lightning.module import LightningBrickCollection, create_experiment_name
from torchbricks.lightning.multi_source_config import expand_sources
from torchbricks.lightning.task_resolvers import check_class_weights, register_resolvers
from torchbricks.loss_balancing import create_loss_balancer
from torchbricks.tags import Stage
from torchbricks.trained_experiment import write_experiment_description

__all__ = ["LOADER_SUFFIX", "MainJobResult", "batch_norm_note", "quiet_third_party_notices", "run_main_job"]


@dataclass
class MainJobResult:
    """What the main job made: the experiment folder, the metrics written to `metrics.json` and the module."""

    path_experiment: Path
    metrics: dict[str, Any]
    module: LightningBrickCollection = field(repr=False)


@data_facts_kept()  # the data's classes, masks' kind and class weights: read once per job, again by the next job
def run_main_job(config: Any) -> MainJobResult:
    """Trains, tests, exports and visualizes the model of `config` (see the module docstring for the outputs).

    The config is visited once, by `torchbricks.configuration.create_job`: the job's own keys are read and checked
    (`read_job_settings`) and the `_target_` nodes instantiated, before anything is written.

    Args:
        config: A config composed from `train.yaml` (`torchbricks.configuration.compose_config`).

    Raises:
        ExperimentExistsError: The experiment exists and neither `resume=true` nor `experiment.overwrite=true` is set.
        ConfigError: A part of the config is wrong or cannot be instantiated; the message names the key.
        BrickError: The ONNX model disagrees with PyTorch beyond `ONNX_TOLERANCE`.
    """
    require("pytorch_lightning", "lightning")
    require("omegaconf", "hydra")  # a missing extra is named before anything runs
    register_resolvers()  # the task configs read their classes from the data
    # ~ in the paths; task=multitask data.sources=[...]: a head per separately labelled data set
    config = expand_sources(with_home_expanded(config))
    started = time.perf_counter()
    if config.experiment.get("name") is None:
        config.experiment.name = create_experiment_name()
    check_experiment_folder(config)  # an existing name is refused before the data and the model are read
    quiet_third_party_notices(bool(config.get("resume", False)))
    with each_file_read_once():  # the config's resolvers, the data module and its checks read the same files
        settings, parts, module, checkpoint = start_job(config)
    path_experiment = experiment_folder(config)
    with stops_named(path_experiment):
        data_module, brick_collection = parts.data_module, parts.brick_collection
        class_names = getattr(data_module, "class_names", None)  # several sources (data.sources): a dict, one list per head
        class_names = class_names if isinstance(class_names, list) else None
        trainer = with_atomic_checkpoints(
            parts.create_trainer(
                logger=create_loggers(path_experiment, None if checkpoint is None else checkpoint_logging_step(checkpoint)),
                callbacks=create_callbacks(settings, path_experiment, class_names),
            )
        )
        stopped, best = fit_and_test_best(trainer, module, data_module, checkpoint, settings.enable_checkpointing)
        leave_process_group()  # the test was the run's last collective call
        if not trainer.is_global_zero:
            return MainJobResult(path_experiment, {}, module)
        if best is not None:  # the bricks writer saved the last epoch's weights when fitting ended
            brick_collection.save_bricks(path_experiment / BRICKS_FOLDER, exist_ok=True)

        brick_collection.eval()
        loaders = data_module.test_dataloader()
        loaders = loaders if isinstance(loaders, list) else [loaders]  # one test loader per source with data.sources
        batch = module.named_inputs_from_batch(next(iter(loaders[0])))
        metrics: dict[str, Any] = {
            **to_json(module.epoch_metrics),
            "metric_epochs": {stage: epoch for stage, epoch in module.epoch_metrics_epoch.items() if not is_test_key(stage)},
            **described_test_loaders(loaders),
        }
        onnx_failure: BrickError | None = None
        if settings.export_onnx:
            try:
                metrics["onnx_max_abs_difference"] = export_and_check_onnx(
                    path_experiment / "model.onnx", brick_collection, batch
                )
            except BrickError as error:  # the trained run's metrics and pictures are written all the same
                onnx_failure = error
        if settings.n_visualized:
            draw_test_pictures(path_experiment, module, loaders, settings.n_visualized, class_names)
        metrics.update(
            stopped,
            **best_summary(trainer, best),
            **never_validated_note(settings, module, best),
            **undefined_metrics(module),  # why a null value is null
        )
        metrics["wall_time_seconds"] = round(time.perf_counter() - started, 2)
        write_json(path_experiment / "metrics.json", metrics)
        if onnx_failure is not None:
            raise BrickError(
                f"{onnx_failure} The run's bricks, metrics.json and pictures are written in {str(path_experiment)!r}; "
                "export_onnx=false leaves out the export and its check."
            ) from onnx_failure
        return MainJobResult(path_experiment, metrics, module)


def start_job(config: Any) -> tuple[JobSettings, Any, LightningBrickCollection, Path | None]:
    """The job's settings and parts (`create_job`), its module and the checkpoint it resumes from (None: it starts
    afresh), once every key, the class weights, the data's files and the checkpoint are checked; then the experiment
    folder is prepared and the run's files written (on the first process)."""
    pl = require("pytorch_lightning", "lightning")
    check_class_weights(config, log=pl.utilities.rank_zero_info)  # counted in the training data, logged once
    settings, parts = create_job(config)  # every key checked, every node instantiated: nothing written before
    path_experiment = experiment_folder(config)
    with stops_named(path_experiment):
        module = create_module(settings, parts.brick_collection, parts.create_optimizer)
        check_validation_runs(settings, config.trainer, module)
        check_data_files(parts.data_module)
        checkpoint = path_experiment / CHECKPOINTS_FOLDER / "last.ckpt" if settings.resume else None
        if checkpoint is not None:  # before anything is written: a model the overrides changed leaves the experiment as it was
            check_resumable(checkpoint, module, config.trainer.get("max_epochs"), parts.data_module)
        prepare_experiment_folder(config)  # after every check: experiment.overwrite=true deletes a run only for one that starts
        if launched_as_global_zero():
            write_run_files(path_experiment, config, parts.data_module)
    return settings, parts, module, checkpoint


def check_data_files(data_module: Any) -> None:
    """`check_files` of the data module (of each source's, with `data.sources`): a file that cannot be read stops the
    job before anything is written, named with every other one, rather than in a loader later (a test image after
    the whole training)."""
    sources = getattr(data_module, "sources", None)
    for source in sources.values() if isinstance(sources, dict) else [data_module]:
        check = getattr(getattr(source, "data_module", source), "check_files", None)  # a renamed source wraps its module
        if check is not None:
            check()


def batch_norm_note(trainer: Any, module: Any) -> str | None:
    """What the job says when it trains on several processes with BatchNorm layers that are not synchronised
    (`trainer.sync_batchnorm` off, as on the CPU, where it cannot be on: `check_sync_batchnorm`): each process
    normalises with the statistics of its own batch, not of every process's together, and DDP keeps the running
    statistics of the first process. None on one process, without BatchNorm, or with synchronised BatchNorm."""
    import torch

    layers = [
        layer
        for layer in module.modules()
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(layer, torch.nn.SyncBatchNorm)
    ]
    if trainer.world_size <= 1 or not layers or getattr(trainer.strategy, "_layer_sync", None) is not None:
        return None
    return (
        f"torchbricks: note: training on {trainer.world_size} processes, the model's {len(layers)} BatchNorm layers "
        "normalise each process's batch (data.batch_size samples) with its own statistics, not those of every "
        "process's batches together, and the running statistics kept for evaluation are the first process's, as "
        "DDP does without trainer.sync_batchnorm=true (synchronised BatchNorm, on GPUs only)."
    )


def _say(note: str | None) -> None:
    """Prints a note of the job once, from the first process, on stderr beside the other notes."""
    if note is not None and launched_as_global_zero():
        print(note, file=sys.stderr, flush=True)


def leave_process_group() -> None:
    """Destroys the default process group of a multi-process run (nothing for one process). A process that reached
    its end with the group alive could abort in the teardown of gloo's threads ("terminate called without an active
    exception", exit status -6 on the second node of a two-node run whose work was done)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def stops_named(path_experiment: Path) -> Iterator[None]:
    """Turns a run stopped from outside (Ctrl-C, SIGTERM from a scheduler or `docker stop`) into a `RunStoppedError`
    that says what was not done and how to continue. Lightning ends a fit stopped by SIGTERM with a `SystemExit`
    without a code (exit status 0, as if the run had finished) and one stopped by Ctrl-C with `sys.exit(1)`."""

    def stopped(signal_name: str, exit_status: int) -> RunStoppedError:
        return RunStoppedError(path_experiment, signal_name, exit_status, last_checkpoint(path_experiment).is_file())

    try:
        yield
    except KeyboardInterrupt:
        raise stopped("Ctrl-C", 130) from None
    except SystemExit as stop:
        if type(stop).__name__ == "SIGTERMException" or isinstance(stop, Terminated):
            raise stopped("SIGTERM", 143) from None
        if isinstance(stop.__context__, KeyboardInterrupt):  # Lightning's sys.exit(1) after a Ctrl-C in fit
            raise stopped("Ctrl-C", 130) from None
        raise
    except RuntimeError as error:
        if LOADER_TERMINATED in str(error):  # SIGTERM sent to the process group reached a loader process first
            raise stopped("SIGTERM", 143) from None
        raise


def check_checkpoint_fits(checkpoint: Path, saved_checkpoint: dict[str, Any], module: Any) -> None:
    """Raises `ConfigError` when the weights of `checkpoint` (read as `saved_checkpoint`) do not fit `module` (a
    resumed run whose overrides changed the model: `model.n_features=32`, `loss.class_weights=auto`), naming the
    first keys that differ."""
    saved = saved_checkpoint.get("state_dict", {})
    expected = module.state_dict()
    missing = [key for key in expected if key not in saved]
    unexpected = [key for key in saved if key not in expected]
    reshaped = [
        f"{key} {list(saved[key].shape)} in the checkpoint, {list(value.shape)} now"
        for key, value in expected.items()
        if key in saved and hasattr(saved[key], "shape") and tuple(saved[key].shape) != tuple(value.shape)
    ]
    if not (missing or unexpected or reshaped):
        return
    found = [
        *(["shapes differ: " + "; ".join(reshaped[:3])] if reshaped else []),
        *([f"the model now has weights the checkpoint lacks: {missing[:3]}"] if missing else []),
        *([f"the checkpoint has weights the model lacks: {unexpected[:3]}"] if unexpected else []),
    ]
    raise ConfigError(
        f"resume=true: the model built from the saved config and this command's overrides does not fit "
        f"{str(checkpoint)!r} ({'; '.join(found)}). An override changed the model; resume without it, or start a new "
        "experiment for it. Nothing was written."
    )


def check_resumable(checkpoint: Path, module: Any, max_epochs: Any, data_module: Any) -> None:
    """`check_checkpoint_fits`, `check_epochs_left` and `check_same_classes`: what a `resume=true` run checks before
    anything is written. The checkpoint is read once, memory-mapped, without executing code."""
    try:
        saved = read_training_checkpoint(checkpoint, mmap=True)
    except CheckpointError as error:
        raise CheckpointError(
            f"{error} resume=true cannot continue from it; nothing was written. Copy {CHECKPOINTS_FOLDER}/best.ckpt "
            "over it to continue from the best epoch, or start the run again with experiment.overwrite=true."
        ) from error
    check_checkpoint_fits(checkpoint, saved, module)
    check_epochs_left(checkpoint, saved, max_epochs)
    check_same_classes(checkpoint.parent.parent, data_module)  # <experiment>/checkpoints/last.ckpt


def check_same_classes(path_experiment: Path, data_module: Any) -> None:
    """Raises `ConfigError` when the data a resumed run reads has other classes than the run trained on
    (`experiment.json`'s `class_names`, or `head_class_names` with several sources): with as many classes, the
    checkpoint fits the model, and each output would go on being trained as another class than it learned, with
    `experiment.json` rewritten to the new names."""
    from torchbricks._experiment import EXPERIMENT_FILE, read_experiment_description

    names = getattr(data_module, "class_names", None)
    if not names:
        return
    key = "head_class_names" if isinstance(names, dict) else "class_names"
    trained = read_experiment_description(path_experiment, required=[key], reader="resume=true")[key]
    now = {head: list(value) for head, value in names.items()} if isinstance(names, dict) else list(names)
    if trained is not None and trained != now:
        raise ConfigError(
            f"resume=true: the data has the classes {now}, but {str(path_experiment)!r} trained on {trained} "
            f"({EXPERIMENT_FILE}); each output would go on as another class than it learned. Resume on the run's own "
            "data (its data.root), or start a new experiment on this data. Nothing was written."
        )


def check_epochs_left(checkpoint: Path, saved: dict[str, Any], max_epochs: Any) -> None:
    """Raises `ConfigError` when `trainer.max_epochs` of a resumed run is below the epochs `checkpoint` (read as
    `saved`) has trained: Lightning refused it only after the run's config.yaml, logs and TensorBoard files were
    rewritten, with a traceback (or, one epoch below, trained nothing and tested again as if the run had ended
    there)."""
    if max_epochs is None or max_epochs == -1:
        return
    progress = saved.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    trained = int(progress.get("processed", saved.get("epoch", 0) + 1))
    if max_epochs < trained:
        raise ConfigError(
            f"Config key 'trainer.max_epochs' is {max_epochs}, but {str(checkpoint)!r} has trained {trained} epochs "
            f"already; resume=true trains on up to trainer.max_epochs: give more than {trained} (or -1 and "
            "trainer.max_time). Nothing was written."
        )


def write_run_files(path_experiment: Path, config: Any, data_module: Any) -> None:
    """Writes `config.yaml`, `experiment.json` and `resolved_config.yaml` when a run starts."""
    omegaconf = require("omegaconf", "hydra")
    path_experiment.mkdir(parents=True, exist_ok=True)
    write_text(path_experiment / CONFIG_FILE, config_file_text(omegaconf.OmegaConf.to_yaml(config)))
    write_experiment_description(path_experiment, config, data_module)


def create_module(settings: JobSettings, brick_collection: BrickCollection, create_optimizer: Any) -> LightningBrickCollection:
    """The Lightning module of the job: the collection, the optimizer factory, the losses' balancing and what
    `checkpoint.monitor` averages.

    Raises:
        ConfigError: `checkpoint.monitor` lists a value that no metric brick logs, or `loss_balancing` does not fit
            the collection's losses.
    """
    averaged = settings.checkpoint.averaged_metrics
    balancer = None
    if settings.loss_balancing != "fixed":  # fixed: the module weighs the losses by loss_weights
        try:
            balancer = create_loss_balancer(settings.loss_balancing, brick_collection.loss_names())
        except BrickError as error:
            raise ConfigError(f"Config key 'loss_balancing': {error}") from error
    try:
        return LightningBrickCollection(
            path_experiments=settings.experiment.path_experiments,
            experiment_name=settings.experiment.name,
            brick_collection=brick_collection,
            create_optimizers_func=create_optimizer,
            loss_weights=settings.loss_weights,
            compile_stages=settings.compile,
            loss_balancer=balancer,
            missing_targets=settings.missing_targets,
            averaged_metrics=averaged,
        )
    except UnknownMetricError as error:
        raise ConfigError(f"Config key 'checkpoint.monitor': {error.phrased('lists')}") from error


def fit_and_test_best(
    trainer: Any, module: LightningBrickCollection, data_module: Any, checkpoint: Path | None, checkpointing: bool
) -> tuple[dict[str, Any], Path | None]:
    """Trains (from `checkpoint` when resuming), then tests the best epoch's weights by `checkpoint.monitor` (the
    last weights when `checkpointing` is off or no checkpoint was saved), which the module keeps afterwards; says
    first how BatchNorm layers normalise on several processes (`batch_norm_note`).

    Returns:
        `training_summary` of the fit with the test's `logged_test_values` (`test_logged`), and the best checkpoint's
        file (None when the last weights were tested).
    """
    pl = require("pytorch_lightning", "lightning")
    _say(batch_norm_note(trainer, module))
    try:
        trainer.fit(module, datamodule=data_module, ckpt_path=checkpoint)
    except pl.utilities.exceptions.MisconfigurationException as error:
        if "could not find the monitored key" not in str(error):
            raise
        monitor = str(getattr(trainer.checkpoint_callback, "monitor", ""))
        hint = did_you_mean_key(monitor, [name for name in trainer.callback_metrics if not name.endswith("_step")])
        raise ConfigError(f"Config key 'checkpoint.monitor' names a metric that is not logged: {error}{hint}") from error
    except UnknownMetricError as error:  # a value the validation stage did not compute, averaged by the monitor
        raise ConfigError(f"Config key 'checkpoint.monitor': {error.phrased('lists')}") from error
    stopped = training_summary(trainer)
    best = best_checkpoint(trainer) if checkpointing else None
    # verbose=False: Lightning's table of the test values would say what the job's summary says after it
    tested = trainer.test(module, datamodule=data_module, ckpt_path=None if best is None else str(best), verbose=False)
    stopped["test_logged"] = logged_test_values(tested, module.epoch_metrics, module.undefined_metrics)
    return stopped, best


def is_test_key(key: str) -> bool:
    """Whether `key` of `epoch_metrics` holds test values: `test`, or `test/dataloader_idx_<i>` of one of several
    test loaders."""
    return key == "test" or key.startswith("test" + LOADER_SUFFIX)


def logged_test_values(
    tested: list[dict[str, float]], epoch_metrics: dict[str, dict[str, Any]], undefined: dict[str, dict[str, str]]
) -> dict[str, float | None]:
    """The values `trainer.test` logged (one dict per test loader) that the test metrics of `epoch_metrics` lack, by
    their logged name without `test/`: the losses (`loss`, `losses/<head>/<loss>`) and, for a checkpoint that follows
    several heads, `monitored_mean`. With them the job's summary says every value Lightning's test table said. With
    several test loaders the names end as Lightning logs them, `/dataloader_idx_<i>`, and each loader's metrics are
    in `epoch_metrics["test/dataloader_idx_<i>"]`. A value `undefined` names (`undefined_metrics`: the losses of a head
    that scored no pixel, logged as 0) is None."""
    prefix = logged_name("test", "")

    def kept_as(name: str) -> tuple[str, str]:  # (the key of epoch_metrics, the name there)
        metric, suffix, loader = name.removeprefix(prefix).rpartition(LOADER_SUFFIX)
        if suffix and loader.isdigit():
            return "test" + LOADER_SUFFIX + loader, metric
        return "test", name.removeprefix(prefix)

    logged: dict[str, float | None] = {}
    for values in tested:
        for name, value in values.items():
            key, metric = kept_as(name)
            if metric not in epoch_metrics.get(key, {}):
                logged[name.removeprefix(prefix)] = None if metric in undefined.get(key, {}) else float(value)
    return logged


def described_test_loaders(loaders: list[Any]) -> dict[str, Any]:
    """With several test loaders (a data module whose `test_dataloader` returns a list), which data each one's values
    (`test/dataloader_idx_<i>`, `<i>` the loader's position in the list) are of, as
    `{"test_loaders": {"dataloader_idx_<i>": {"dataset": <its class>, "samples": <its count>}}}`. An empty dict with
    one loader."""
    if len(loaders) < 2:
        return {}
    described: dict[str, Any] = {}
    for index, loader in enumerate(loaders):
        dataset = getattr(loader, "dataset", None)
        size = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None
        described[LOADER_SUFFIX.strip("/") + str(index)] = {"dataset": type(dataset).__name__, "samples": size}
    return {"test_loaders": described}


def monitors_validation(settings: JobSettings) -> bool:
    """Whether the job has a checkpoint or early stopping that follows a validation value of `checkpoint.monitor`."""
    uses_monitor = settings.enable_checkpointing or settings.early_stopping.patience is not None
    return uses_monitor and settings.checkpoint.monitored_value.startswith(logged_name("validation", ""))


def check_validation_runs(settings: JobSettings, trainer_config: Any, module: LightningBrickCollection) -> None:
    """Checks, before training, that the best checkpoint and early stopping can act: their value is logged
    (`check_checkpoint_monitor`) and, for a validation value, the trainer's keys validate some epoch.

    Raises:
        ConfigError: the monitored value is not logged, or it is a validation value while `trainer.limit_val_batches=0`
            or `trainer.check_val_every_n_epoch` above `trainer.max_epochs` validates nothing: neither would ever act,
            and the weights tested as the best would be the last ones.
    """
    if settings.enable_checkpointing or settings.early_stopping.patience is not None:
        check_checkpoint_monitor(settings.checkpoint.monitored_value, module)
    if not monitors_validation(settings):
        return
    limit = trainer_config.get("limit_val_batches")
    every = trainer_config.get("check_val_every_n_epoch")
    max_epochs = trainer_config.get("max_epochs")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit == 0:
        cause = f"trainer.limit_val_batches={limit} validates no batch"
    elif isinstance(every, int) and isinstance(max_epochs, int) and max_epochs > 0 and every > max_epochs:
        cause = f"trainer.check_val_every_n_epoch={every} validates no epoch of trainer.max_epochs={max_epochs}"
    else:
        return
    users = ["checkpoint.monitor", *(["early_stopping.patience"] if settings.early_stopping.patience is not None else [])]
    raise ConfigError(
        f"Config keys {users}: {settings.checkpoint.monitored_value!r} is a validation value, but {cause}, so the best "
        "checkpoint and early stopping would never act. Validate (trainer.limit_val_batches, "
        "trainer.check_val_every_n_epoch), monitor a training value (checkpoint.monitor=train/loss checkpoint.mode=min), "
        "or set early_stopping.patience=null and enable_checkpointing=false to test the last weights."
    )


def undefined_metrics(module: LightningBrickCollection) -> dict[str, Any]:
    """Why each value of `metrics.json` that is `null` (NaN) is, as `{"undefined_metrics": {stage: {name: reason}}}`
    (`LightningBrickCollection.undefined_metrics`: a test split whose every mask pixel is 255 scores no pixel, and
    has no mean IoU nor loss, nor a total loss over the heads; a per-class value with nothing to divide by, named
    `<head>/per_class/<class>/<score>`); an empty dict when every value is a number."""
    undefined = {key: reasons for key, reasons in module.undefined_metrics.items() if reasons}
    return {"undefined_metrics": undefined} if undefined else {}


def never_validated_note(settings: JobSettings, module: LightningBrickCollection, best: Path | None) -> dict[str, str]:
    """When no epoch of the fit was validated (no validation data, a run cut by `trainer.max_time` before its first
    validation) although the best checkpoint or early stopping follows a validation value: the note, said in the
    progress output and kept in `metrics.json` (`tested_weights_note`), that neither acted and the last weights
    are tested, as `{"tested_weights_note": note}`; an empty dict otherwise."""
    validated = any(key.startswith("validation") for key in module.epoch_metrics_epoch)
    if best is not None or validated or not monitors_validation(settings):
        return {}
    acting = "the best checkpoint" + (" and early stopping" if settings.early_stopping.patience is not None else "")
    note = (
        f"No epoch was validated, so {acting} (checkpoint.monitor={settings.checkpoint.monitored_value!r}) never "
        "acted: the last weights are tested and kept in bricks/ (and model.onnx)."
    )
    rank_zero_warn = require("pytorch_lightning", "lightning").utilities.rank_zero_warn
    rank_zero_warn(note)
    return {"tested_weights_note": note}


def check_checkpoint_monitor(monitor: str, module: LightningBrickCollection, key: str = "checkpoint.monitor") -> None:
    """Checks, before training, that the checkpoint's monitored value is one the module logs by the time a
    checkpoint is saved (the training and validation values of `module.logged_names`), instead of Lightning
    finding out when the first checkpoint is due.

    Raises:
        ConfigError: `monitor` is not logged; the message names `key`, the values logged and the close match.
    """
    logged = [name for stage in (Stage.TRAIN, Stage.VALIDATION) for name in module.logged_names(stage)]
    if any(fnmatch.fnmatchcase(monitor, name) for name in logged):
        return
    shown = [name for name in logged if not name.endswith(("_epoch", "_step"))]
    raise ConfigError(
        f"Config key {key!r} is {monitor!r}, which the run never logs; it logs {shown} (training values also with "
        f"_epoch and _step).{did_you_mean_key(monitor, logged)}"
    )
