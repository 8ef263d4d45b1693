"""`MultiSourceDataModule`: one model trained from several separately labelled data sets.

Each source is a data module of its own (boxes on one set of images, masks on another, class labels on a third),
named by the head it labels. A training step gets a dict `{source: named batch}`; `LightningBrickCollection` with
`missing_targets="skip"` runs each batch through the model and only through the losses and metrics whose targets
it carries, so a head's metrics only ever see its own source. Validation and test give one loader per source.

Training schedules (`mode`):

- `max_size_cycle` / `min_size`: Lightning's `CombinedLoader`: every step holds one batch of every source; the
  epoch lasts as long as the longest source (the shorter ones cycle) or the shortest.
- `sequential`: one source per step, every batch of the first source, then of the second, ...
- `temperature`: one source per step, drawn with probability proportional to `len(source) ** (1 / temperature)`
  (1: by size, large: uniform), as many steps as all sources have batches, every source at least once. The draw is
  seeded by `seed` and the epoch, so every process of a distributed run follows the same schedule and their
  collectives stay in step.

Under DDP a step that runs one source leaves the other heads' parameters without gradients: use
`strategy="ddp_find_unused_parameters_true"` with the `sequential` and `temperature` schedules.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from torchbricks._extras import require
from torchbricks.errors import BrickError, did_you_mean

require("pytorch_lightning", "lightning")
import pytorch_lightning as pl  # noqa: E402 (after `require`, so a missing extra names what to install)
from pytorch_lightning.utilities import CombinedLoader  # noqa: E402

__all__ = ["MODES", "MultiSourceDataModule", "RenamedDataModule", "SourceSchedule"]

MODES = ("max_size_cycle", "min_size", "sequential", "temperature")


class SourceSchedule:
    """Batches from one source per step, `{source: batch}`, in the `sequential` or `temperature` order.

    Under `torch.distributed` each loader is given a `DistributedSampler` (Lightning only replaces the samplers
    of the loaders it is given directly), so every process draws the same schedule over its own share of data.
    """

    def __init__(self, loaders: Mapping[str, DataLoader[Any]], mode: str, temperature: float = 1.0, seed: int = 0) -> None:
        self.loaders = dict(loaders)
        self.mode = mode
        self.temperature = temperature
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders.values())

    def schedule(self, epoch: int) -> list[str]:
        """The source of each step of `epoch`."""
        if self.mode == "sequential":
            return [name for name, loader in self.loaders.items() for _ in range(len(loader))]
        sizes = {name: len(loader) for name, loader in self.loaders.items()}
        weights = [size ** (1.0 / self.temperature) for size in sizes.values()]
        draw = random.Random(self.seed * 100_003 + epoch)
        steps = draw.choices(list(sizes), weights=weights, k=len(self))
        for name in sizes:  # every source at least once an epoch: each head trains and is measured every epoch
            if name not in steps:
                counts = {source: steps.count(source) for source in sizes}
                steps[draw.choice([index for index, source in enumerate(steps) if counts[source] > 1])] = name
        return steps

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        for loader in self.loaders.values():
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(epoch)
        iterators: dict[str, Iterator[Any]] = {}
        for name in self.schedule(epoch):
            try:
                batch = next(iterators[name])
            except (KeyError, StopIteration):  # first use, or a source drawn more often than it has batches: cycle it
                iterators[name] = iter(self.loaders[name])
                batch = next(iterators[name])
            yield {name: batch}


class MultiSourceDataModule(pl.LightningDataModule):
    """Several data modules, one per labelled source, trained together (see the module docstring).

    Args:
        sources: Source name (the head it labels) -> its data module (any of `torchbricks.lightning.datamodules`).
        mode: The training schedule, one of `MODES`.
        temperature: For `mode="temperature"`: 1 samples sources by size, larger values flatten towards uniform.
        seed: Seed of the `temperature` schedule.

    Raises:
        BrickError: No source, an unknown mode (with the close match), or a temperature <= 0.
    """

    def __init__(
        self, sources: Mapping[str, pl.LightningDataModule], mode: str = "max_size_cycle", temperature: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__()
        if not sources:
            raise BrickError("MultiSourceDataModule needs at least one source: name -> data module.")
        if mode not in MODES:
            raise BrickError(f"Unknown multi-source mode {mode!r}. Available: {list(MODES)}.{did_you_mean(mode, MODES)}")
        if temperature <= 0:
            raise BrickError(f"The sampling temperature must be > 0, got {temperature!r}.")
        self.sources = dict(sources)
        self.mode = mode
        self.temperature = temperature
        self.seed = seed

    @property
    def class_names(self) -> dict[str, list[str]]:
        """Source name -> the class names of its data."""
        return {name: list(getattr(source, "class_names", []) or []) for name, source in self.sources.items()}

    @property
    def category_ids(self) -> dict[str, list[int]]:
        """Source name -> the COCO category ids of its classes, for the sources read from COCO files."""
        return {name: list(ids) for name, source in self.sources.items() if (ids := getattr(source, "category_ids", None))}

    @property
    def classes_without_training_example(self) -> dict[str, list[str]]:
        """Source name -> the classes its training split has no example of, for the sources that have such classes
        (each source's data module warned of them as it was built; `experiment.json` records them per head)."""
        return {
            name: list(untrained)
            for name, source in self.sources.items()
            if (untrained := getattr(source, "classes_without_training_example", None))
        }

    @property
    def image_size(self) -> Any:
        """The input size every source reads (`torchbricks train` gives them one); None when they differ, so that
        nothing (`experiment.json`, `predict`, the export) takes one source's size for all heads."""
        sizes = [getattr(source, "image_size", None) for source in self.sources.values()]
        return sizes[0] if all(size == sizes[0] for size in sizes) else None

    def setup(self, stage: str) -> None:
        for source in self.sources.values():
            source.setup(stage)

    def train_dataloader(self) -> Any:
        loaders = {name: source.train_dataloader() for name, source in self.sources.items()}
        if self.mode in ("max_size_cycle", "min_size"):
            return CombinedLoader(loaders, mode=self.mode)  # type: ignore[arg-type]  # one of the two literals above
        distributed = self.trainer is not None and self.trainer.world_size > 1
        if distributed:
            loaders = {name: _with_distributed_sampler(loader, self.trainer) for name, loader in loaders.items()}
        schedule = SourceSchedule(loaders, self.mode, self.temperature, self.seed)
        if self.trainer is not None:  # a resumed fit (or reloaded loaders) goes on with its epoch's draw, not epoch 0's
            schedule.epoch = int(self.trainer.current_epoch)
        return schedule

    def val_dataloader(self) -> Any:
        return [source.val_dataloader() for source in self.sources.values()]

    def test_dataloader(self) -> Any:
        return [source.test_dataloader() for source in self.sources.values()]


def _with_distributed_sampler(loader: DataLoader[Any], trainer: Any) -> DataLoader[Any]:
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=True, drop_last=loader.drop_last
    )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        drop_last=loader.drop_last,
        persistent_workers=loader.persistent_workers,
    )


class RenamedDataModule(pl.LightningDataModule):
    """A data module whose samples carry some names under others (`{"targets": "classification_targets"}`).

    The wrapped module's datasets (its `datasets` dict of splits, filled by its `setup`) are wrapped, so its own
    loaders, samplers and collate functions are kept.

    Args:
        data_module: A data module keeping its splits in `datasets` (those of `torchbricks.lightning.datamodules`).
        rename: Old name -> new name.
    """

    def __init__(self, data_module: pl.LightningDataModule, rename: Mapping[str, str]) -> None:
        super().__init__()
        if not isinstance(getattr(data_module, "datasets", None), dict):
            raise BrickError(
                f"RenamedDataModule needs a data module keeping its splits in `datasets`, got {type(data_module).__name__}."
            )
        self.data_module = data_module
        self.rename = dict(rename)

    @property
    def class_names(self) -> list[str]:
        return list(getattr(self.data_module, "class_names", []) or [])

    @property
    def category_ids(self) -> list[int] | None:
        return getattr(self.data_module, "category_ids", None)

    @property
    def use_class_names(self) -> Callable[[Sequence[str]], list[str]] | None:
        """The wrapped module's `use_class_names` (class folders numbered as a trained head's classes, for `torchbricks
        evaluate` on new images that lack a class), or None when it numbers its classes by a file (masks, boxes)."""
        return getattr(self.data_module, "use_class_names", None)

    @property
    def classes_without_training_example(self) -> list[str]:
        return list(getattr(self.data_module, "classes_without_training_example", []) or [])

    @property
    def image_size(self) -> Any:
        return getattr(self.data_module, "image_size", None)

    def setup(self, stage: str) -> None:
        self.data_module.setup(stage)
        datasets: dict[str, Any] = getattr(self.data_module, "datasets")  # noqa: B009 (checked in __init__)
        for split, dataset in datasets.items():
            if not isinstance(dataset, _RenamedDataset):
                datasets[split] = _RenamedDataset(dataset, self.rename)

    def train_dataloader(self) -> Any:
        return self.data_module.train_dataloader()

    def val_dataloader(self) -> Any:
        return self.data_module.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.data_module.test_dataloader()


class _RenamedDataset(Dataset[dict[str, Any]]):
    def __init__(self, dataset: Any, rename: Mapping[str, str]) -> None:
        self.dataset = dataset
        self.rename = dict(rename)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {self.rename.get(name, name): value for name, value in self.dataset[index].items()}
