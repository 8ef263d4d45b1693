"""Stateful updates (metrics, tensor caches) that `torch.compile(fullgraph=True)` can trace.

torchmetrics' `update` is Python full of checks and data-dependent shapes, so dynamo would break the graph on
it. Inside a compiled region an accumulating brick instead calls the opaque custom op
`torchbricks::stateful_update`, which runs the real update eagerly at run time. The op declares that it
mutates a small per-brick token tensor, so no compiler pass drops it as dead code. Outside compilation the
update is called directly.

State: the one process-wide registry of the package, `_updates` (an int handle -> a weak reference to a brick's
bound `update`), numbered by `_handles`. It exists because a custom op's schema takes tensors, numbers and lists
only, so the compiled graph can name a brick's update by a number and nothing else. It holds no brick alive (weak
references; dead entries are dropped every 1024 registrations), and a copied or unpickled brick registers its own
handle. The plans of a collection are not here: they belong to the collection (`torchbricks._plan.PlanCache`).

The handle reaches the op as a CPU tensor holding the number (`handle_tensor`), not as an int: dynamo bakes an int
into the graph and guards its value, so each brick (each fold's model, each stage view Lightning rebuilds) would
compile anew; a tensor is a graph input, read by the op when it runs, so bricks built alike share compiled code.
It is kept on the CPU (a plain attribute, not a buffer, so `.to(device)` leaves it there): reading it costs no
device synchronisation.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable

import torch

_handles = itertools.count()
_updates: dict[int, Callable[[], Callable[..., None] | None]] = {}


def register(update: Callable[..., None]) -> torch.Tensor:
    """Registers a bound update method; returns the handle the compiled graph passes to the op (see `handle_tensor`)."""
    handle = next(_handles)
    _updates[handle] = weakref.WeakMethod(update)
    if handle % 1024 == 0:  # drop the entries of bricks that no longer exist
        for dead in [key for key, ref in _updates.items() if ref() is None]:
            del _updates[dead]
    return handle_tensor(handle)


def handle_tensor(handle: int) -> torch.Tensor:
    """The handle as the op takes it: a CPU int64 tensor holding the number."""
    return torch.tensor(handle, dtype=torch.int64)


@torch.library.custom_op("torchbricks::stateful_update", mutates_args=("token",))
def stateful_update(token: torch.Tensor, handle: torch.Tensor, args: list[torch.Tensor]) -> None:
    number = int(handle)
    update = _updates[number]()
    if update is None:
        raise RuntimeError(f"The brick behind handle {number} no longer exists.")
    update(*args)


@stateful_update.register_fake
def _stateful_update_fake(token: torch.Tensor, handle: torch.Tensor, args: list[torch.Tensor]) -> None:
    return None
