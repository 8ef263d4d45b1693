from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from torchbricks.errors import DataError
from torchbricks.lightning import samplers, split_datamodule
from torchbricks.lightning.datamodules import NamedTensorDataset
from torchbricks.lightning.samplers import UnpaddedDistributedSampler, check_evaluation_loaders
from torchbricks.lightning.split_datamodule import SplitDataModule


@pytest.mark.parametrize("processes", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [4, 5, 7, 96])
def test_the_shares_of_all_processes_are_the_data_set_once(processes: int, size: int) -> None:
    shares = [list(UnpaddedDistributedSampler(range(size), num_replicas=processes, rank=rank)) for rank in range(processes)]

    assert sorted(index for share in shares for index in share) == list(range(size))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert [len(UnpaddedDistributedSampler(range(size), processes, rank)) for rank in range(processes)] == list(map(len, shares))


def test_without_a_process_group_one_process_reads_everything_and_lightning_keeps_the_sampler() -> None:
    sampler = UnpaddedDistributedSampler(range(5))

    assert (sampler.num_replicas, sampler.rank, list(sampler)) == (1, 0, [0, 1, 2, 3, 4])
    assert isinstance(sampler, DistributedSampler)  # Lightning replaces only samplers that are not distributed
    sampler.set_epoch(3)  # Lightning's loops call it on every distributed sampler
    assert list(sampler) == [0, 1, 2, 3, 4]


def test_fewer_samples_than_processes_or_a_rank_outside_them_is_refused() -> None:
    with pytest.raises(DataError, match=r"1 sample\(s\) for 2 processes; every process needs at least one"):
        list(UnpaddedDistributedSampler(range(1), num_replicas=2, rank=0))
    with pytest.raises(DataError, match="rank 2 is outside the 2 processes"):
        len(UnpaddedDistributedSampler(range(4), num_replicas=2, rank=2))


def test_a_loader_that_would_repeat_or_drop_samples_is_named() -> None:
    data = range(5)
    padded = DataLoader(data, sampler=DistributedSampler(data, num_replicas=2, rank=0, shuffle=False))
    dropping = DataLoader(data, sampler=DistributedSampler(data, num_replicas=3, rank=0, shuffle=False, drop_last=True))

    with pytest.raises(DataError, match=r"The validation loader 0 has 5 samples on 2 processes: .* repeats 1 of them"):
        check_evaluation_loaders(padded, "validation")
    with pytest.raises(DataError, match=r"The test loader 1 has 5 samples on 3 processes: .* drops the last 2 of them"):
        check_evaluation_loaders([DataLoader(data), dropping], "test")


def test_loaders_that_read_every_sample_once_pass() -> None:
    data = range(6)
    even = DataLoader(data, sampler=DistributedSampler(data, num_replicas=2, rank=1, shuffle=False))
    unpadded = DataLoader(range(5), sampler=UnpaddedDistributedSampler(range(5), num_replicas=2, rank=1))

    check_evaluation_loaders({"a": [even, unpadded], "b": DataLoader(range(5))}, "validation")
    check_evaluation_loaders(None, "test")


class _Splits(SplitDataModule):
    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__(batch_size=2, num_workers=0)
        self.sizes = sizes

    def create_datasets(self) -> dict[str, NamedTensorDataset]:
        return {split: NamedTensorDataset(raw=torch.arange(size)) for split, size in self.sizes.items()}


def test_the_data_modules_evaluate_each_sample_once_on_several_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samplers, "distributed_world", lambda: (2, 1))  # as process 1 of 2 sees it
    monkeypatch.setattr(split_datamodule, "distributed_world", lambda: (2, 1))
    data = _Splits({"train": 8, "validation": 5, "test": 7})

    assert torch.cat([batch["raw"] for batch in data.val_dataloader()]).tolist() == [1, 3]
    assert torch.cat([batch["raw"] for batch in data.test_dataloader()]).tolist() == [1, 3, 5]
    assert torch.cat([batch["raw"] for batch in data.predict_dataloader()]).tolist() == [1, 3, 5]
    assert not isinstance(data.train_dataloader().sampler, DistributedSampler)  # Lightning shares training itself


def test_a_split_smaller_than_the_processes_is_named_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split_datamodule, "distributed_world", lambda: (4, 0))
    data = _Splits({"train": 8, "validation": 3, "test": 7})

    with pytest.raises(DataError, match=r"_Splits: the validation split has 3 sample\(s\) for 4 processes"):
        data.val_dataloader()
