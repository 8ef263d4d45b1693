"""Models, data and trainers from Hydra configs: `_target_` nodes instantiated, errors naming the config key.

The configs shipped with the package live in `torchbricks/configs` (`train.yaml` and its groups `data`, `model`,
`head`, `trainer`, `optimizer`). A model config has a `bricks` node: every node in it with a `_target_` is a brick,
every node without one is a nested collection, so a head is a config group that can be added under any name
(`+head@model.bricks.head2=classification`).

One module per job: `compose` (Hydra's compose API, errors naming the key of a bad override), `settings` (the
schema of the training job's own keys, read and checked once into a `JobSettings`), `instantiate` (`_target_`
nodes, their plain values checked against the target's annotations), `checks` (the instantiated parts checked
against each other) and `job` (the parts of a training job in one pass).

Needs the `hydra` extra: `pip install "torchbricks[hydra]"`.
"""

from __future__ import annotations

from torchbricks.configuration.checks import check_classes_cover_data, check_optimizer_factory, check_train_config
from torchbricks.configuration.compose import CONFIG_DIR, FREE_FORM_KEYS, compose_config
from torchbricks.configuration.instantiate import create_brick_collection, instantiate_config
from torchbricks.configuration.job import JobParts, create_job, create_model_bricks, instantiate_job
from torchbricks.configuration.settings import JobSettings, read_job_settings

__all__ = [
    "CONFIG_DIR",
    "FREE_FORM_KEYS",
    "JobParts",
    "JobSettings",
    "check_classes_cover_data",
    "check_optimizer_factory",
    "check_train_config",
    "compose_config",
    "create_brick_collection",
    "create_job",
    "create_model_bricks",
    "instantiate_config",
    "instantiate_job",
    "read_job_settings",
]
