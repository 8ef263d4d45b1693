"""The checks of an instantiated job's parts against each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchbricks.configuration import compose_config, create_brick_collection
from torchbricks.errors import ConfigError


def test_a_head_with_at_least_the_data_classes_passes_the_class_check() -> None:
    from torchbricks.configuration import check_classes_cover_data
    from torchbricks.lightning.datamodules import DigitsDataModule

    for num_classes in (10, 11):  # 11: a spare class (a segmentation background) is allowed
        collection = create_brick_collection(compose_config([f"model.num_classes={num_classes}"]))
        check_classes_cover_data(DigitsDataModule(), collection)
    with pytest.raises(ConfigError, match=r"brick 'head/classify' \(ImageClassifier\) has 9 classes.*has 10"):
        check_classes_cover_data(DigitsDataModule(), create_brick_collection(compose_config(["model.num_classes=9"])))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optimizer.warmup_fraction=-0.1",
            r"'optimizer\.warmup_fraction' must be a fraction of the training budget in \[0, 1\] \(0: no warm-up\), got -0\.1\.$",
        ),
        ("optimizer.warmup_fraction=1.5", r"'optimizer\.warmup_fraction' must be a fraction .*got 1\.5\.$"),
        ("optimizer.warmup_fraction=nan", r"'optimizer\.warmup_fraction' must be a fraction .*got nan\.$"),
        ("optimizer.warmup_steps=-1", r"'optimizer\.warmup_steps' must be 0 or more \(0: no warm-up\), got -1\.$"),
        ("optimizer.min_lr_ratio=2", r"'optimizer\.min_lr_ratio' must be a fraction of the learning rate in \[0, 1\], got 2\.$"),
    ],
)
def test_a_bad_warm_up_or_floor_of_the_cosine_schedule_is_refused_naming_its_key(override: str, message: str) -> None:
    # Refused as "Config key 'optimizer' does not make an optimizer: BudgetCosine needs warmup_steps >= 0, 0 <=
    # warmup_fraction <= 1 and 0 <= min_lr_ratio <= 1, got 500, -0.1 and 0.0.": the key left to guess.
    from torchbricks.configuration import check_optimizer_factory, instantiate_config

    for optimizer in ("adamw_cosine", "sgd_cosine"):
        config = compose_config([f"optimizer={optimizer}", override])
        with pytest.raises(ConfigError, match=rf"^Config key {message}"):
            check_optimizer_factory(instantiate_config(config, "optimizer"), "optimizer")
    for fine in ("optimizer.warmup_fraction=0", "optimizer.warmup_fraction=1", "optimizer.warmup_steps=0"):
        check_optimizer_factory(instantiate_config(compose_config(["optimizer=adamw_cosine", fine]), "optimizer"), "optimizer")


@pytest.mark.parametrize("processes", [["trainer.devices=2", "trainer.strategy=ddp"], ["trainer.strategy=ddp"]])
def test_synchronised_batch_norm_on_the_cpu_with_a_process_group_is_refused_by_its_key_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], processes: list[str]
) -> None:
    # torch's SyncBatchNorm raises "SyncBatchNorm expected input tensor to be on GPU" at the first training step on the
    # CPU (gloo), with one process of a DDP strategy too: after the data was read and the experiment folder written
    from torchbricks.__main__ import main

    command = ["train", "+trainer.sync_batchnorm=true", *processes, f"experiment.path_experiments={tmp_path / 'runs'}"]

    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: Config key 'trainer.sync_batchnorm' is true, but synchronised BatchNorm")
    assert "on GPUs only" in error
    assert not (tmp_path / "runs").exists()


def test_synchronised_batch_norm_on_one_cpu_process_is_kept() -> None:
    # one process without a process group: SyncBatchNorm falls back to BatchNorm, which is what it computes anyway
    from pytorch_lightning import Trainer

    from torchbricks.configuration.checks import check_sync_batchnorm

    node = {"accelerator": "cpu", "devices": 1, "sync_batchnorm": True}
    check_sync_batchnorm(Trainer(logger=False, **node), node)
