"""SplitDataModule: the base serving train, validation and test datasets."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from torchbricks.datasets.in_memory import NamedTensorDataset
from torchbricks.lightning.split_datamodule import SplitDataModule, cap_num_workers


def test_num_workers_are_capped_to_leave_a_core_for_training() -> None:
    assert cap_num_workers(0) == 0
    assert cap_num_workers(1000) < 1000


class _Counting(SplitDataModule):
    built = 0

    def create_datasets(self) -> dict[str, Any]:
        _Counting.built += 1
        return {split: NamedTensorDataset(raw=torch.arange(6.0).reshape(6, 1)) for split in ("train", "validation", "test")}


def test_the_datasets_are_built_once_in_setup_or_by_the_first_loader() -> None:
    data = _Counting(batch_size=4, num_workers=0)
    assert data.datasets == {}

    batches = [len(batch["raw"]) for batch in data.val_dataloader()]
    data.setup("fit")
    data.train_dataloader()

    assert batches == [4, 2]
    assert _Counting.built == 1


def test_a_module_that_does_not_build_datasets_says_so() -> None:
    with pytest.raises(NotImplementedError, match="SplitDataModule does not say how to build its datasets"):
        SplitDataModule(batch_size=1, num_workers=0).setup()
