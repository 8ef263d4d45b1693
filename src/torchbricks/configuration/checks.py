"""Checks of an instantiated job against its config, before training: the optimizer builds, the heads cover the
data's classes. The plain values are checked by `torchbricks.configuration.settings`."""

from __future__ import annotations

import re
from typing import Any

from torchbricks.brick_collection import BrickCollection
from torchbricks.configuration.settings import JobSettings, read_job_settings
from torchbricks.errors import ConfigError

__all__ = [
    "check_classes_cover_data",
    "check_optimizer_factory",
    "check_sync_batchnorm",
    "check_train_config",
    "check_trainer_factory",
]


def check_train_config(config: Any) -> JobSettings:
    """Checks the plain values of a `train.yaml` config (seed, n_visualized, export_onnx, loss_weights, the data's
    tile_size and tile_overlap, checkpoint, early_stopping...) by key: `read_job_settings`, whose result it returns.

    Raises:
        ConfigError: A value has the wrong type or range; the message names the key.
    """
    return read_job_settings(config)


def check_optimizer_factory(create_optimizer: Any, key: str = "optimizer") -> None:
    """Builds the optimizer once on a throw-away parameter, so a bad value (`optimizer.lr=-1`) is reported by key
    before training instead of from inside `configure_optimizers`.

    Raises:
        ConfigError: The optimizer cannot be built; the message names the key and the optimizer's reason.
    """
    import torch

    try:
        create_optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as error:
        argument = re.match(r"(\w+) must be ", str(error))  # a factory's `<argument> must be ...`: its own key
        if argument is not None:
            raise ConfigError(f"Config key '{key}.{argument[1]}' {str(error)[len(argument[1]) + 1 :]}") from error
        raise ConfigError(f"Config key {key!r} does not make an optimizer: {error}") from error


def check_trainer_factory(create_trainer: Any, node: Any, key: str = "trainer") -> None:
    """Builds the trainer once, without loggers and callbacks, so a value Lightning refuses (`trainer.strategy=dpp`,
    `trainer.precision=17`, `trainer.accelerator=gpu` without one) is reported by key before the experiment folder is
    written; the job builds its own trainer later, when its loggers and callbacks have a folder.

    Raises:
        ConfigError: Lightning cannot build the trainer; the message names the key its reason mentions (or `key`),
            the value given and Lightning's reason.
    """
    import logging
    import re

    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    notices = logging.getLogger("pytorch_lightning.utilities.rank_zero")  # "GPU available: ...", said by the real one
    level = notices.level
    notices.setLevel(logging.WARNING)
    try:
        trainer = create_trainer(logger=False, callbacks=[])
    except (TypeError, ValueError, MisconfigurationException) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        names = [str(name) for name in (node or {}) if not str(name).startswith("_")]
        named = [name for name in names if re.search(rf"\b{re.escape(name)}\b", reason, re.IGNORECASE)]
        named = named or [name for name in names if isinstance(node[name], str) and node[name] and node[name] in reason]
        where = f"{key}.{named[0]}" if named else key
        given = f" is {node[named[0]]!r}, which" if named else ""
        if named and named[0] == "accelerator" and (missing := _missing_device(node[named[0]])) is not None:
            raise ConfigError(f"Config key {where!r}{given} needs {missing}") from error
        hint = _close_choice(named[0], node[named[0]]) if named else ""
        raise ConfigError(f"Config key {where!r}{given} does not make a Lightning Trainer: {reason}{hint}") from error
    finally:
        notices.setLevel(level)
    check_sync_batchnorm(trainer, node, key)


def check_sync_batchnorm(trainer: Any, node: Any, key: str = "trainer") -> None:
    """Refuses `trainer.sync_batchnorm=true` for a trainer on the CPU with a process group (several processes, or a
    DDP strategy): torch's `SyncBatchNorm` synchronises on GPUs only and raises at the first training step on the
    CPU, after the data was read and the experiment folder written. On one CPU process without a process group it
    is kept (it changes nothing there: the batch is the whole batch).

    Raises:
        ConfigError: Naming `trainer.sync_batchnorm`, why and what to do instead.
    """
    from pytorch_lightning.accelerators import CPUAccelerator
    from pytorch_lightning.strategies import DDPStrategy

    if not (node or {}).get("sync_batchnorm", False) or not isinstance(trainer.accelerator, CPUAccelerator):
        return
    if trainer.world_size > 1 or isinstance(trainer.strategy, DDPStrategy):
        raise ConfigError(
            f"Config key '{key}.sync_batchnorm' is true, but synchronised BatchNorm (torch.nn.SyncBatchNorm) runs on "
            f"GPUs only: on the CPU ({key}.accelerator={(node or {}).get('accelerator', 'auto')}, "
            f"{trainer.world_size} processes, {type(trainer.strategy).__name__}) it fails at the first training step. "
            f"Leave it out (each process's BatchNorm layers then normalise with the statistics of its own batch), or "
            f"train on GPUs ({key}.accelerator=gpu)."
        )


def _missing_device(accelerator: Any) -> str | None:
    """The end of the error for a known accelerator this machine lacks (`gpu` without CUDA): Lightning's own reason
    for `gpu` ("No supported gpu backend found! Did you mean 'tpu'?") reads as a misspelling. None for a name that
    is not a known accelerator, or one that is available."""
    import torch

    name = str(accelerator).lower()
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        found = "no GPU is found (torch.cuda.is_available() is False)"
    elif name == "mps" and not torch.backends.mps.is_available():
        found = "no Apple GPU is found (torch.backends.mps.is_available() is False)"
    else:
        return None
    return (
        f"a GPU, but {found}. Use trainer.accelerator=cpu, or trainer.accelerator=auto to take a GPU where there is "
        "one and the CPU elsewhere."
    )


def _close_choice(name: str, value: Any) -> str:
    """` Did you mean 'ddp'?` for a misspelt strategy or accelerator name; "" for other keys and values."""
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    from torchbricks.errors import did_you_mean

    choices = {"strategy": StrategyRegistry.available_strategies, "accelerator": AcceleratorRegistry.available_accelerators}
    if name not in choices or not isinstance(value, str):
        return ""
    return did_you_mean(value, sorted(choices[name]()))


def check_classes_cover_data(data_module: Any, collection: BrickCollection, key: str = "model.num_classes") -> None:
    """Checks that every classification layer and metric of `collection` has at least as many classes as the data,
    before training (otherwise the first target beyond the head's classes fails mid-epoch with "Target 9 is out of
    bounds"). More classes than the data is allowed (a segmentation head counting the background, a spare class).

    The data's classes come from its `num_classes` or `class_names` attribute; without either nothing is checked.

    Raises:
        ConfigError: A brick has fewer classes than the data; the message names `key` and the brick.
    """
    expected = _data_classes(data_module)
    if expected is None:
        return
    for path, brick in collection.iter_bricks():
        for owner, classes in _brick_classes(brick):
            if classes < expected:
                raise ConfigError(
                    f"Config key {key!r}: brick {path!r} ({owner}) has {classes} classes, but the data "
                    f"({type(data_module).__name__}) has {expected}; set {key}={expected}."
                )


def _data_classes(data_module: Any) -> int | None:
    classes = getattr(data_module, "num_classes", None)
    if isinstance(classes, int) and not isinstance(classes, bool):
        return classes
    names = getattr(data_module, "class_names", None)
    if isinstance(names, (list, tuple)) and names:
        return len(names)
    return None


def _brick_classes(brick: Any) -> list[tuple[str, int]]:
    """(what, number of classes) of the modules of a brick that classify: classifiers and torchmetrics metrics."""
    found: list[tuple[str, int]] = []
    for module in brick.modules():
        classes = getattr(module, "num_classes", None)
        if isinstance(classes, int) and not isinstance(classes, bool):
            found.append((type(module).__name__, classes))
    return found
