"""Evaluation on several processes that reads every sample exactly once (`UnpaddedDistributedSampler`).

Lightning gives a validation or test loader under DDP a `DistributedSampler`, which repeats the first samples so
that every process gets as many: with 95 images on two processes one image is evaluated twice, and the metrics,
gathered over the processes, count it twice (or, with `drop_last`, leave the last images out). The accuracy a
user reads would be that of another data set. `UnpaddedDistributedSampler` gives process `r` of `W` the indices
`r, r + W, r + 2W, ...`: the shares differ by at most one sample and together they are the data set once. This is
safe because `LightningBrickCollection` starts no collective per evaluation step (it reduces its sums and metrics
once, at the end of the epoch), so processes with one batch more or less stay in step; every process must have a
sample, since DDP synchronises the buffers in the first forward of an evaluation (the sampler says so otherwise).

The torchbricks data modules use it for their validation, test and predict loaders; `LightningBrickCollection`
refuses a validation or test loader whose sampler would repeat or drop samples (`check_evaluation_loaders`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any, cast

import torch.distributed as dist
from torch.utils.data import DistributedSampler

from torchbricks.errors import DataError

__all__ = ["UnpaddedDistributedSampler", "check_evaluation_loaders", "distributed_world"]


def distributed_world() -> tuple[int, int]:
    """(world size, rank) of the initialised default process group, (1, 0) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class UnpaddedDistributedSampler(DistributedSampler):
    """Process `rank` of `num_replicas` reads indices `rank, rank + num_replicas, ...`, in order, none repeated.

    A `DistributedSampler` (so Lightning keeps it instead of putting its own, padding one in its place) for
    evaluation: nothing is shuffled, repeated or dropped. The world size and rank are those given, or else read
    from `torch.distributed` when first needed, so the sampler can be built before the processes are started.

    Example:
        >>> shares = [list(UnpaddedDistributedSampler(range(5), num_replicas=2, rank=rank)) for rank in (0, 1)]
        >>> shares
        [[0, 2, 4], [1, 3]]

    Args:
        dataset: The data set (anything with a length).
        num_replicas: The number of processes; None: the default process group's size (1 without one).
        rank: This process's rank; None: its rank in the default process group (0 without one).

    Raises:
        DataError: The data set has fewer samples than there are processes (a process would have nothing to
            evaluate), or the rank is outside the processes.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None) -> None:
        # DistributedSampler.__init__ is not called: it needs the process group at once and would shuffle.
        self.dataset = dataset
        self._num_replicas = num_replicas
        self._rank = rank
        self.shuffle = False
        self.drop_last = False
        self.seed = 0
        self.epoch = 0

    @property
    def num_replicas(self) -> int:  # type: ignore[override]  # read lazily instead of set in __init__
        return self._num_replicas if self._num_replicas is not None else distributed_world()[0]

    @property
    def rank(self) -> int:  # type: ignore[override]
        return self._rank if self._rank is not None else distributed_world()[1]

    @property
    def total_size(self) -> int:  # type: ignore[override]
        return len(cast(Sized, self.dataset))

    @property
    def num_samples(self) -> int:  # type: ignore[override]
        return len(self._indices())

    def _indices(self) -> range:
        num_replicas, rank, size = self.num_replicas, self.rank, self.total_size
        if not 0 <= rank < num_replicas:
            raise DataError(
                f"UnpaddedDistributedSampler: rank {rank} is outside the {num_replicas} processes (0-{num_replicas - 1})."
            )
        if size < num_replicas:
            raise DataError(
                f"UnpaddedDistributedSampler: {size} sample(s) for {num_replicas} processes; every process needs at "
                f"least one to evaluate. Give the split at least {num_replicas} samples or run on fewer processes."
            )
        return range(rank, size, num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return self.num_samples


def check_evaluation_loaders(loaders: Any, stage: str) -> None:
    """Raises when a loader of `stage` (validation, test) would show some samples twice, or none, under DDP.

    A `DistributedSampler` over a data set whose size the processes do not divide pads it with repeated samples
    (or, with `drop_last`, drops the last ones); an `UnpaddedDistributedSampler` never does. Loaders without a
    distributed sampler, and data sets the processes divide evenly, pass.

    Raises:
        DataError: Naming the stage, the data set size, the processes, the samples repeated or dropped and the fix.
    """
    for index, loader in enumerate(_flatten(loaders)):
        sampler = getattr(loader, "sampler", None)
        if not isinstance(sampler, DistributedSampler) or isinstance(sampler, UnpaddedDistributedSampler):
            continue
        size, replicas = len(sampler.dataset), sampler.num_replicas  # type: ignore[arg-type]
        if size % replicas == 0:
            continue
        uneven = size % replicas
        what = f"drops the last {uneven}" if sampler.drop_last else f"repeats {replicas - uneven}"
        raise DataError(
            f"The {stage} loader {index} has {size} samples on {replicas} processes: its {type(sampler).__name__} "
            f"{what} of them so every process gets as many, and the {stage} metrics would count a different data set. "
            "Give the loader `sampler=UnpaddedDistributedSampler(dataset)` (torchbricks.lightning.samplers), as the "
            "torchbricks data modules do, or evaluate on one process."
        )


def _flatten(loaders: Any) -> list[Any]:
    if loaders is None:
        return []
    if isinstance(loaders, dict):
        return [loader for value in loaders.values() for loader in _flatten(value)]
    if isinstance(loaders, (list, tuple)):
        return [loader for value in loaders for loader in _flatten(value)]
    return [loaders]
