"""The parts of a training job built from its config in one pass: the data, the model, the optimizer and the trainer.

`create_job(config)` is what the main job calls: it reads and checks the job's keys (`read_job_settings`), seeds
every random generator with `seed`, then instantiates the parts. `instantiate_job(config, settings)` instantiates
each `_target_` node once, checks the parts against each other (the optimizer builds, the heads cover the data's
classes) and leaves the trainer as a factory that the job calls with its loggers and callbacks, which depend on the
experiment folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torchbricks._data_facts import data_facts_kept
from torchbricks.brick_collection import BrickCollection
from torchbricks.configuration.checks import check_classes_cover_data, check_optimizer_factory, check_trainer_factory
from torchbricks.configuration.instantiate import create_brick_collection, instantiate_config
from torchbricks.configuration.settings import JobSettings, read_job_settings
from torchbricks.errors import CheckpointError, ConfigError

__all__ = ["JobParts", "create_job", "create_model_bricks", "describe_auto_weights", "instantiate_job"]


@dataclass
class JobParts:
    """What a job's config instantiates: the data module, the collection, the optimizer factory (called with the
    trainable parameters) and the trainer factory (called with `logger=` and `callbacks=`)."""

    data_module: Any
    brick_collection: BrickCollection = field(repr=False)
    create_optimizer: Callable[..., Any] = field(repr=False)
    create_trainer: Callable[..., Any] = field(repr=False)


@data_facts_kept()  # each class interpolation of the config reads the data's classes: once per job
def create_job(config: Any) -> tuple[JobSettings, JobParts]:
    """The settings of a composed `train.yaml` config, checked once, and its parts, instantiated once after seeding
    Python, numpy and torch (and the data loader workers) with `seed`.

    Raises:
        ConfigError: A key has a wrong value, or a node cannot be instantiated; the message names the key.
    """
    from torchbricks._extras import require

    settings = read_job_settings(config)
    require("pytorch_lightning", "lightning").seed_everything(settings.seed, workers=True, verbose=False)
    return settings, instantiate_job(config, settings)


def instantiate_job(config: Any, settings: JobSettings) -> JobParts:
    """Instantiates `data`, `model.bricks`, `optimizer` and (partially) `trainer` of a composed `train.yaml` config.

    Raises:
        ConfigError: A node cannot be instantiated, the optimizer or the trainer cannot be built, or a head has fewer
            classes than the data; the message names the key.
    """
    data_module = instantiate_config(config, "data")
    collection = create_model_bricks(config)
    if settings.channels_last:  # convolutions run faster on the CPU (oneDNN) and on tensor cores
        import torch

        collection.to(memory_format=torch.channels_last)
    create_optimizer = instantiate_config(config, "optimizer")
    check_optimizer_factory(create_optimizer, "optimizer")
    check_classes_cover_data(data_module, collection, "model.num_classes" if "num_classes" in config.model else "model")
    create_trainer = instantiate_config(config, "trainer", _partial_=True)
    check_trainer_factory(create_trainer, config.trainer, "trainer")
    return JobParts(data_module, collection, create_optimizer, create_trainer)


def create_model_bricks(config: Any) -> BrickCollection:
    """The collection of `model.bricks`; weights that cannot be loaded are reported under `model.weights`.

    Raises:
        ConfigError: A brick cannot be built; `Config key 'model.weights': ...` when the backbone's weights file
            is missing, unreadable or of another architecture.
    """
    try:
        collection = create_brick_collection(config, "model.bricks")
    except ConfigError as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, CheckpointError):
            cause = cause.__cause__ or cause.__context__
        weights = config.model.get("weights") if "model" in config else None
        if cause is None or weights is None:
            raise
        message = str(cause).removeprefix("create_task_backbone: ").removeprefix("create_backbone: ")
        raise ConfigError(f"Config key 'model.weights': {message[:1].lower()}{message[1:]}") from cause
    described = describe_auto_weights(config)
    if described is not None:
        from torchbricks._experiment import launched_as_global_zero

        if launched_as_global_zero():
            print(described, flush=True)
    return collection


def describe_auto_weights(config: Any) -> str | None:
    """The line the job prints for `model.weights=auto`: which weights that gave the backbone; None for other values.

    Example:
        >>> from omegaconf import OmegaConf
        >>> describe_auto_weights(OmegaConf.create({"model": {"backbone": "compact_cnn", "weights": "auto"}}))
        "model.weights: auto, the weights shipped for compact_cnn ('shapes'); model.weights=null starts from scratch"
    """
    from torchbricks.bag_of_bricks.compact_cnn import AUTO_WEIGHTS, shipped_weights_for

    model = config.get("model") if hasattr(config, "get") else None
    if model is None or model.get("weights") != AUTO_WEIGHTS:
        return None
    backbone = model.get("backbone")
    shipped = shipped_weights_for(backbone)  # the vision tasks' images are RGB
    if shipped is not None:
        return f"model.weights: auto, the weights shipped for {backbone} ({shipped!r}); model.weights=null starts from scratch"
    return (
        f"model.weights: auto, from scratch: torchbricks ships no weights for {backbone}; "
        "model.weights=DEFAULT (torchvision's, downloaded) or a weights file starts from pretrained ones"
    )
