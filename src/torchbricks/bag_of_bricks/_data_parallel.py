"""Losses divided within their batch by a count (summed class weights, pixels left after ignored ones, boxes, points,
known labels) under data parallelism: the one place where such a division counts every process's batch.

DDP averages the processes' gradients. A loss that each process divides by its own batch's count then weighs a
process whose batch held few boxes (or light classes, or many ignored pixels) like one whose batch held many, and
two processes train other weights than one process given their batches together. Divided instead by the count of
every process's batch, times the number of processes, DDP's mean is the gradient of the loss of the batches together.

The sum is a functional collective (`torch.distributed._functional_collectives.all_reduce`), which torch.compile
traces into the compiled graph: compiled stages (`LightningBrickCollection(compile_stages=True)`) divide as eager ones.
"""

from __future__ import annotations

import torch

if torch.distributed.is_available():  # builds without torch.distributed have no process group to sum over either
    import torch.distributed._functional_collectives as functional_collectives

__all__ = ["divide_by_every_process", "parts", "training_processes"]


def training_processes(training: bool) -> int:
    """The number of data-parallel processes a training call runs on: 1 outside training (a module in eval mode or no
    gradient) and without a process group. Traced by torch.compile, the answer is fixed in the compiled graph (dynamo
    guards on the grad mode and the module's `training`, and takes the process group's size as a constant)."""
    if not (training and torch.is_grad_enabled()):
        return 1
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 1
    return int(torch.distributed.get_world_size())


def divide_by_every_process(
    numerator: torch.Tensor, denominator: torch.Tensor, training: bool, minimum: float | None = None
) -> torch.Tensor:
    """`numerator / denominator` (the denominator at least `minimum`, when given), where in a training call under DDP
    (see `training_processes`) the denominator is the sum of every process's, and the numerator is multiplied by the
    number of processes.

    The sum takes one collective (`all_reduce`) per call, so a training call must happen at the same steps on every
    process, as DDP's training steps do. `minimum` applies to the summed denominator, as one process given every
    batch applies it. The denominator carries no gradient.

    Example:
        >>> divide_by_every_process(torch.tensor(3.0), torch.tensor(0.0), training=True, minimum=1.0).item()
        3.0
    """
    processes = training_processes(training)
    if processes > 1:
        dtype = torch.promote_types(numerator.dtype, torch.float32)  # counts of a bfloat16 loss stay exact
        denominator = denominator.detach().to(device=numerator.device, dtype=dtype)
        # functional (out of place): traceable, so that a compiled training call sums as an eager one does. (Left out
        # of the trace, as it was, each compiled process divided by its own batch's count without a word.)
        world = torch.distributed.group.WORLD  # not None: training_processes found the process group initialized
        denominator = functional_collectives.all_reduce(denominator, "sum", world)  # type: ignore[arg-type]
        numerator = numerator * processes
    if minimum is not None:
        denominator = denominator.clamp(min=minimum)
    return numerator / denominator


def parts(*fractions: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The (numerator, denominator) of each loss a module returns, as one tensor [n, 2] without gradient: the output
    `torchbricks._conventions.LOSS_PARTS` of the packaged loss bricks.

    Example:
        >>> parts((torch.tensor(3.0), torch.tensor(2)), (torch.tensor(1.0), torch.tensor(4.0))).tolist()
        [[3.0, 2.0], [1.0, 4.0]]
    """
    rows = [torch.stack((numerator.detach().float(), denominator.detach().float())) for numerator, denominator in fractions]
    return torch.stack(rows)
