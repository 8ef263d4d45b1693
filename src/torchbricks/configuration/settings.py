"""The schema of the training job's own keys in `train.yaml`: types, minimums and checks in one place, read once.

`read_job_settings(config)` walks a composed config once and returns a frozen `JobSettings`; every bad value is
one `ConfigError` naming its key, raised before anything is built or written. The `_target_` nodes (data, model,
trainer, optimizer) are checked against their targets' own signatures when instantiated
(`torchbricks.configuration.instantiate`); the integer parameters whose names mean the same everywhere are
bounded by `PARAMETER_MINIMUMS` here.

Example:
    >>> from torchbricks.configuration import compose_config
    >>> settings = read_job_settings(compose_config(["early_stopping.patience=3"]))
    >>> settings.early_stopping.patience, settings.checkpoint.monitored_value
    (3, 'validation/loss')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchbricks._extras import require
from torchbricks.configuration._values import choice, flag, is_int, is_number, loss_balancing, read_loss_weights
from torchbricks.errors import ConfigError

__all__ = [
    "AVERAGED_METRICS_NAME",
    "PARAMETER_MINIMUMS",
    "CheckpointSettings",
    "DataSettings",
    "EarlyStoppingSettings",
    "ExperimentSettings",
    "JobSettings",
    "read_job_settings",
]

PARAMETER_MINIMUMS = {"batch_size": 1, "num_workers": 0, "num_classes": 1, "n_features": 1}
"""Lower bounds of integer parameters whatever their target: the names mean the same everywhere in torchbricks'
configs, and a bad value would otherwise fail far from its key (a data loader in the first epoch)."""

AVERAGED_METRICS_NAME = "monitored_mean"
"""The logged mean of the validation values `checkpoint.monitor` lists: `validation/monitored_mean`."""

MISSING_TARGETS = ("error", "skip")
CHECKPOINT_MODES = ("min", "max")


@dataclass(frozen=True)
class ExperimentSettings:
    """`experiment`: where the run's folder goes (`<path_experiments>/<name>`) and whether to replace it."""

    path_experiments: Path
    name: str | None
    overwrite: bool


@dataclass(frozen=True)
class CheckpointSettings:
    """`checkpoint`: the value `best.ckpt` and early stopping follow, and which way is better."""

    monitor: str | tuple[str, ...]
    mode: str

    @property
    def averaged_metrics(self) -> tuple[str, ...]:
        """The validation values (without `validation/`) whose mean is monitored when `monitor` lists several;
        none when it names one value."""
        if isinstance(self.monitor, str):
            return ()
        return tuple(name.removeprefix("validation/") for name in self.monitor)

    @property
    def monitored_value(self) -> str:
        """The logged value followed: `monitor`, or `validation/monitored_mean` when it lists several."""
        return self.monitor if isinstance(self.monitor, str) else f"validation/{AVERAGED_METRICS_NAME}"


@dataclass(frozen=True)
class EarlyStoppingSettings:
    """`early_stopping`: stop after `patience` validation epochs without an improvement above `min_delta`, once
    `start_fraction` of the training budget has passed."""

    patience: int | None
    min_delta: float
    start_fraction: float = 0.0
    finish_without_augmentations: bool = False


@dataclass(frozen=True)
class DataSettings:
    """The keys of `data` the job reads itself; the rest go to the data module's constructor."""

    target: str | None
    batch_size: int | None
    tile_size: int | None
    tile_overlap: float


@dataclass(frozen=True)
class JobSettings:
    """The training job's keys of `train.yaml`, typed and checked (see the comments in `train.yaml`)."""

    experiment: ExperimentSettings
    resume: bool
    checkpoint: CheckpointSettings
    early_stopping: EarlyStoppingSettings
    compile: bool
    channels_last: bool
    ema_decay: float | None
    seed: int
    loss_weights: dict[str, float] = field(hash=False)
    loss_balancing: str
    missing_targets: str
    class_weights: Any = field(hash=False)
    export_onnx: bool
    n_visualized: int
    pictures_every_n_epochs: int
    data: DataSettings
    enable_checkpointing: bool
    enable_progress_bar: bool


def read_job_settings(config: Any) -> JobSettings:
    """Reads and checks the job's keys of a composed `train.yaml` config, once.

    Raises:
        ConfigError: A value has the wrong type or range, or contradicts another; the message names the key.
    """
    omegaconf = require("omegaconf", "hydra")
    _check_no_missing_value(omegaconf.OmegaConf.to_container(config, resolve=False))
    seed = config.get("seed")
    if not is_int(seed):
        raise ConfigError(f"Config key 'seed' must be an int, got {type(seed).__name__} {seed!r}.")
    n_visualized = config.get("n_visualized", 0)
    if not is_int(n_visualized) or n_visualized < 0:
        raise ConfigError(f"Config key 'n_visualized' must be an int >= 0, got {type(n_visualized).__name__} {n_visualized!r}.")
    export_onnx = config.get("export_onnx", True)
    if not isinstance(export_onnx, bool):
        raise ConfigError(f"Config key 'export_onnx' must be true or false, got {export_onnx!r}.")
    loss_weights = read_loss_weights(config.get("loss_weights"), omegaconf)
    data = _data(config.get("data"), omegaconf)
    _check_hidden_channels_read(config, omegaconf)
    every = config.get("pictures_every_n_epochs", 1)
    if not is_int(every) or every < 1:
        raise ConfigError(f"Config key 'pictures_every_n_epochs' must be 1 or more (1: every epoch), got {every}.")
    trainer = config.get("trainer") or {}
    _check_trainer(trainer)
    experiment = config.get("experiment") or {}
    name = experiment.get("name")
    return JobSettings(
        experiment=ExperimentSettings(
            path_experiments=Path(str(experiment.get("path_experiments", "build/experiments"))),
            name=None if name is None else str(name),
            overwrite=flag(experiment, "overwrite", False, "experiment."),
        ),
        resume=flag(config, "resume", False),
        checkpoint=_checkpoint(config.get("checkpoint") or {}, omegaconf),
        early_stopping=_last_phase_used(_early_stopping(config.get("early_stopping") or {}), config.get("data")),
        compile=flag(config, "compile", False),
        channels_last=flag(config, "channels_last", False),
        ema_decay=_ema_decay(config.get("ema_decay")),
        seed=seed,
        loss_weights=loss_weights,
        loss_balancing=loss_balancing(config, loss_weights),
        missing_targets=choice(config.get("missing_targets", "error"), "missing_targets", MISSING_TARGETS),
        class_weights=omegaconf.OmegaConf.select(config, "loss.class_weights", default=None),
        export_onnx=export_onnx,
        n_visualized=n_visualized,
        pictures_every_n_epochs=every,
        data=data,
        enable_checkpointing=flag(trainer, "enable_checkpointing", True, "trainer."),
        enable_progress_bar=flag(trainer, "enable_progress_bar", True, "trainer."),
    )


def _check_no_missing_value(node: Any, key: str = "") -> None:
    """Raises `ConfigError` for the first key left `???` (a value the user must give, as `data.root` of the vision
    tasks), naming it and how to set it; Hydra said `Config key 'data' cannot be instantiated: Missing mandatory value:
    data.root full_key: data.root object_type=dict`."""
    if isinstance(node, (dict, list)):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for name, value in items:
            _check_no_missing_value(value, f"{key}.{name}" if key else str(name))
    elif node == "???":
        example = f"{key}=DIR, the data folder" if key.endswith("root") else f"{key}=VALUE"
        raise ConfigError(f"Config key {key!r} has no value (??? in its config); set it on the command line: {example}.")


def _checkpoint(node: Any, omegaconf: Any) -> CheckpointSettings:
    monitor = node.get("monitor", "validation/loss")
    mode = choice(node.get("mode", "min"), "checkpoint.mode", CHECKPOINT_MODES)
    if not omegaconf.OmegaConf.is_list(monitor) and not isinstance(monitor, (list, tuple)):
        return CheckpointSettings(str(monitor), mode)
    names = [str(name) for name in monitor]
    if not names or any(not name.startswith("validation/") for name in names):
        raise ConfigError(
            "Config key 'checkpoint.monitor' lists validation values whose mean is monitored, each 'validation/...'; "
            f"got {names}."
        )
    return CheckpointSettings(tuple(names), mode)


_TIME_UNITS = ("days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "weeks")


def _check_trainer(trainer: Any) -> None:
    """`trainer.max_time` null, `DD:HH:MM:SS` or a mapping of time units; `trainer.max_epochs` null, -1 (no limit) or
    >= 1; `trainer.devices` not 0: checked before anything is written (Lightning would refuse them later, with a
    traceback, after the experiment folder exists)."""
    max_time = trainer.get("max_time")
    if max_time is not None:
        units = dict(max_time) if hasattr(max_time, "items") else None
        fields = str(max_time).split(":") if units is None else []
        valid = (
            all(unit in _TIME_UNITS and is_number(value) and value >= 0 for unit, value in units.items())
            if units is not None
            else isinstance(max_time, str) and len(fields) == 4 and all(field.isdigit() for field in fields)
        )
        if not valid:
            raise ConfigError(
                "Config key 'trainer.max_time' must be null or a time budget DD:HH:MM:SS (00:00:08:00 is 8 minutes), "
                f"got {type(max_time).__name__} {max_time!r}."
            )
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and (not is_int(max_epochs) or (max_epochs < 1 and max_epochs != -1)):
        raise ConfigError(
            "Config key 'trainer.max_epochs' must be an int >= 1 (or -1: no limit but trainer.max_time), got "
            f"{type(max_epochs).__name__} {max_epochs!r}."
        )
    devices = trainer.get("devices")
    if (is_int(devices) and devices == 0) or devices in ("0", ""):
        raise ConfigError(f"Config key 'trainer.devices' must be a number of devices >= 1, -1 (all) or auto, got {devices!r}.")


def _ema_decay(decay: Any) -> float | None:
    """`ema_decay` null (the trained weights are validated, tested and kept) or a number in (0, 1)."""
    if decay is None:
        return None
    if not is_number(decay) or not 0 < decay < 1:
        raise ConfigError(
            "Config key 'ema_decay' must be null (no averaging) or the decay of an exponential moving average of the "
            f"weights, a number between 0 and 1 such as 0.99, got {type(decay).__name__} {decay!r}."
        )
    return float(decay)


def _early_stopping(node: Any) -> EarlyStoppingSettings:
    patience = node.get("patience")
    min_delta = node.get("min_delta", 0.0)
    start = node.get("start_fraction", 0.0)
    if not is_number(start) or not 0 <= start < 1:
        raise ConfigError(
            "Config key 'early_stopping.start_fraction' must be a number in [0, 1) (the fraction of the training budget "
            f"before which early stopping never ends a run), got {type(start).__name__} {start!r}."
        )
    finish = node.get("finish_without_augmentations", False)
    if not isinstance(finish, bool):
        raise ConfigError(
            "Config key 'early_stopping.finish_without_augmentations' must be true or false, "
            f"got {type(finish).__name__} {finish!r}."
        )
    if patience is None:
        return EarlyStoppingSettings(None, float(min_delta) if is_number(min_delta) else 0.0, float(start), finish)
    if not is_int(patience) or patience < 1:
        raise ConfigError(
            f"Config key 'early_stopping.patience' must be an int >= 1 (validation epochs without improvement) "
            f"or null (no early stopping), got {type(patience).__name__} {patience!r}."
        )
    if not is_number(min_delta) or min_delta < 0:
        raise ConfigError(
            f"Config key 'early_stopping.min_delta' must be a number >= 0, got {type(min_delta).__name__} {min_delta!r}."
        )
    return EarlyStoppingSettings(patience, float(min_delta), float(start), finish)


def _last_phase_used(early_stopping: EarlyStoppingSettings, data: Any) -> EarlyStoppingSettings:
    """`data.last_phase_augmentations` only where early stopping starts a last phase: otherwise they would never run."""
    last_phase = _last_phase_augmentations(data)
    if last_phase and not (early_stopping.patience is not None and early_stopping.finish_without_augmentations):
        raise ConfigError(
            "Config key 'data.last_phase_augmentations' lists transforms for early stopping's last phase, which this "
            "run never starts: it needs early_stopping.finish_without_augmentations=true and an "
            f"early_stopping.patience (now {early_stopping.finish_without_augmentations} and {early_stopping.patience}). "
            "Set them, or data.last_phase_augmentations=[]."
        )
    return early_stopping


def _last_phase_augmentations(data: Any) -> list[Any]:
    """`data.last_phase_augmentations`, and those of each source of a multi-source module (`data.sources`, expanded)."""
    if not hasattr(data, "get"):
        return []
    found = list(data.get("last_phase_augmentations") or [])
    sources = data.get("sources")
    for source in sources.values() if hasattr(sources, "values") else ():
        found += _last_phase_augmentations(source.get("data_module") if hasattr(source, "get") else None)
    return found


def _data(data: Any, omegaconf: Any) -> DataSettings:
    """`data.batch_size` >= 1, `data.image_scale` only beside the default `data.image_size`, `data.validation_fraction`
    in (0, 1), `data.split_seed` an int, `data.tile_size` null or >= 1, `data.tile_overlap` in [0, 1), and a module
    that tiles."""
    if not isinstance(data, omegaconf.DictConfig):
        return DataSettings(None, None, None, 0.2)
    target = str(data._target_) if "_target_" in data else None
    batch_size = data.get("batch_size")
    minimum = PARAMETER_MINIMUMS["batch_size"]
    if is_int(batch_size) and batch_size < minimum:
        raise ConfigError(f"Config key 'data.batch_size' must be an int >= {minimum}, got {batch_size}.")
    _check_image_scale_is_used(data, omegaconf)
    fraction = data.get("validation_fraction", 0.2)
    if not is_number(fraction) or not 0 < fraction < 1:
        raise ConfigError(
            "Config key 'data.validation_fraction' must be the fraction of the training images drawn for validation "
            f"where the data has no validation split of its own, a number between 0 and 1, got {type(fraction).__name__} "
            f"{fraction!r}."
        )
    if not is_int(data.get("split_seed", 0)):
        raise ConfigError(f"Config key 'data.split_seed' must be an int, got {data.get('split_seed')!r}.")
    tile_size = data.get("tile_size")
    overlap = data.get("tile_overlap", 0.2)
    settings = DataSettings(target, batch_size if is_int(batch_size) else None, tile_size, overlap)
    if tile_size is None:
        return settings
    if not is_int(tile_size) or tile_size < 1:
        raise ConfigError(
            f"Config key 'data.tile_size' must be null (whole images) or the side of a tile in pixels, an int >= 1, "
            f"got {type(tile_size).__name__} {tile_size!r}."
        )
    if not is_number(overlap) or not 0 <= overlap < 1:
        raise ConfigError(
            f"Config key 'data.tile_overlap' must be the fraction of a tile shared by its neighbours, in [0, 1), "
            f"got {type(overlap).__name__} {overlap!r}."
        )
    try:
        module = require("hydra.utils", "hydra").get_object(str(target))
    except Exception:  # a target that does not import is reported, by key, when the data is instantiated
        return settings
    if not getattr(module, "supports_tiling", False):
        reason = getattr(module, "why_not_tiled", "it reads whole images.")
        raise ConfigError(f"Config key 'data.tile_size' is {tile_size}, but {module.__name__} does not tile images: {reason}")
    return settings


def _check_hidden_channels_read(config: Any, omegaconf: Any) -> None:
    """A `model.hidden_channels` given where no brick reads it (`task=classification`: the classifier is linear on the
    pooled features) would change nothing, so it is refused. The packaged default is an interpolation (`vision.yaml`),
    as `data.image_scale`'s, so the default goes unread without a word and a value set on the command line does not.
    With `data.sources`, each source's head is composed with the value on its own and the sources share it. A resumed
    run is not checked: its saved config is the run's, and older ones hold the default as a plain value."""
    model = config.get("model")
    if model is None or "hidden_channels" not in model or omegaconf.OmegaConf.is_interpolation(model, "hidden_channels"):
        return
    if (config.get("data") or {}).get("sources") is not None or model.get("hidden_channels") is None:
        return
    if config.get("resume", False):  # a config.yaml saved before the default was an interpolation holds a plain 64
        return
    bricks = omegaconf.OmegaConf.to_container(model.get("bricks") or {}, resolve=False)
    if "model.hidden_channels" in str(bricks):  # an interpolation of a head: ${model.hidden_channels}
        return
    heads = sorted(str(name) for name, node in (model.get("bricks") or {}).items() if "_target_" not in node)
    raise ConfigError(
        f"Config key 'model.hidden_channels' is {model.hidden_channels}, but no brick of the model reads it (heads "
        f"{heads}): a classification head is a linear classifier on the pooled backbone features, without necks or "
        "hidden layers, so it would change nothing. Leave it out; the detection, segmentation, points and count heads "
        "read it."
    )


def _check_image_scale_is_used(data: Any, omegaconf: Any) -> None:
    """`data.image_scale` only chooses the default `data.image_size` (an interpolation of the data); a scale given
    beside a given size, or beside `data.tile_size` (the tile is the input), would be ignored, so those pairs are
    refused. The packaged scales are interpolations too (an `oc.decode` in each packaged data config), so a size or
    tile size given alone is accepted. Its value is checked where it is
    used (`torchbricks.datasets.image_sizes.check_image_scale`)."""
    if "image_size" not in data or "image_scale" not in data or omegaconf.OmegaConf.is_interpolation(data, "image_scale"):
        return
    scale = data.get("image_scale")
    if not is_number(scale) or scale == 1:
        return
    if not omegaconf.OmegaConf.is_interpolation(data, "image_size"):
        raise ConfigError(
            f"Config key 'data.image_scale' is {scale}, but data.image_size is set ({data.image_size}): the scale only "
            "chooses the default size from the data. Leave out one of them."
        )
    if data.get("tile_size") is not None:
        raise ConfigError(
            f"Config key 'data.image_scale' is {scale}, but data.tile_size is set ({data.tile_size}): tiles are the "
            "input at their own size, so the scale would be ignored. Leave out one of them."
        )
