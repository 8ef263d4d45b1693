"""`SplitDataModule`: the base of torchbricks' data modules, serving train, validation and test datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from torch.utils.data import DataLoader

from torchbricks._extras import require
from torchbricks.datasets.tiled import TiledDataset
from torchbricks.errors import DataError
from torchbricks.lightning.samplers import UnpaddedDistributedSampler, distributed_world

require("pytorch_lightning", "lightning")
import pytorch_lightning as pl  # noqa: E402 (after `require`, so a missing extra names what to install)

__all__ = ["SplitDataModule", "cap_num_workers"]


def cap_num_workers(num_workers: int) -> int:
    """`num_workers` capped so loader processes leave one CPU core to the training process.

    Example:
        >>> cap_num_workers(0)
        0
    """
    return max(0, min(num_workers, (os.cpu_count() or 1) - 1))


class SplitDataModule(pl.LightningDataModule):
    """Serves `self.datasets["train" | "validation" | "test"]`, built by `create_datasets` in `setup` (and by the
    loaders when called outside a Trainer); prediction runs on the test split. On several processes the validation,
    test and predict loaders read every sample exactly once (`UnpaddedDistributedSampler`).

    Args:
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
    """

    supports_tiling: ClassVar[bool] = False
    """Whether the module cuts large images into tiles (`tile_size`); the config checks read it before training."""
    why_not_tiled: ClassVar[str] = "it reads whole images."

    def __init__(self, batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = cap_num_workers(num_workers)
        self.datasets: dict[str, Any] = {}
        self.collate_fn: Callable[[list[Any]], Any] | None = None
        self.drop_last_train = False

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_datasets()

    def prepare_datasets(self) -> None:
        """Fills `self.datasets` with `create_datasets()` once; `setup` and the loaders call it."""
        if not self.datasets:
            self.datasets = self.create_datasets()

    def create_datasets(self) -> dict[str, Any]:
        """The `train`, `validation` and `test` datasets; each data module builds its own."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to build its datasets.")

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        if split not in self.datasets:
            self.prepare_datasets()
        dataset = self.datasets[split]
        # Tiles are shuffled a few images at a time, so each image is decoded once per epoch, not once per tile.
        sampler: Any = dataset.train_sampler() if shuffle and isinstance(dataset, TiledDataset) else None
        processes = distributed_world()[0]
        if not shuffle and processes > 1:  # evaluation on several processes: every sample once, none repeated
            if len(dataset) < processes:
                raise DataError(
                    f"{type(self).__name__}: the {split} split has {len(dataset)} sample(s) for {processes} processes; "
                    f"each process needs at least one. Give the {split} split at least {processes} samples or train "
                    "on fewer processes (trainer.devices, trainer.num_nodes)."
                )
            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn,
            drop_last=self.drop_last_train and split == "train" and len(self.datasets[split]) > self.batch_size,
        )
