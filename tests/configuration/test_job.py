"""instantiate_job: the data, the model, the optimizer and the trainer of a job's config in one pass."""

from __future__ import annotations

import pytest
import torch

from torchbricks.configuration import compose_config, instantiate_job, read_job_settings
from torchbricks.errors import ConfigError


def _parts(*overrides: str):
    config = compose_config(list(overrides))
    return instantiate_job(config, read_job_settings(config))


def test_the_parts_of_the_default_job_fit_together() -> None:
    parts = _parts("trainer.max_epochs=2")

    assert type(parts.data_module).__name__ == "DigitsDataModule"
    assert parts.brick_collection.loss_names() == ["head/loss_ce"]
    optimizer = parts.create_optimizer(list(parts.brick_collection.parameters()))
    assert isinstance(optimizer, torch.optim.AdamW)
    trainer = parts.create_trainer(logger=False, callbacks=[], enable_checkpointing=False)
    assert trainer.max_epochs == 2  # the config's values, with the job's own arguments added


def test_sgd_cosine_is_a_packaged_optimizer_choice() -> None:
    parts = _parts("optimizer=sgd_cosine", "optimizer.lr=0.05")

    config = parts.create_optimizer(list(parts.brick_collection.parameters()))

    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["optimizer"].defaults["lr"] == 0.05
    assert config["optimizer"].defaults["nesterov"] is True
    assert config["lr_scheduler"]["interval"] == "step"


def test_channels_last_puts_the_convolution_weights_in_channels_last_order() -> None:
    parts = _parts("channels_last=true")

    weights = [parameter for parameter in parts.brick_collection.parameters() if parameter.ndim == 4]
    assert weights
    assert all(weight.is_contiguous(memory_format=torch.channels_last) for weight in weights)


def test_an_optimizer_that_cannot_be_built_is_reported_by_key() -> None:
    with pytest.raises(ConfigError, match=r"^Config key 'optimizer' does not make an optimizer: Invalid learning rate: -1"):
        _parts("optimizer.lr=-1")


def test_a_head_with_fewer_classes_than_the_data_is_reported_by_key() -> None:
    with pytest.raises(ConfigError, match=r"^Config key 'model.num_classes': brick 'head/classify' .* set model.num_classes=10"):
        _parts("model.num_classes=5")
