"""Losses the task configs build from plain values: `ClassWeightedCrossEntropyLoss` takes its class weights as a list,
as a config gives them (`loss.class_weights=auto` resolves to one, see `torchbricks.lightning.task_resolvers`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from torchbricks.bag_of_bricks._data_parallel import divide_by_every_process, parts, training_processes
from torchbricks.errors import BrickError

__all__ = ["ClassWeightedCrossEntropyLoss"]


class ClassWeightedCrossEntropyLoss(nn.CrossEntropyLoss):
    """`torch.nn.CrossEntropyLoss` with its class weights given as a list of numbers (or None: every class 1).

    The weights are the loss's `weight` buffer, so they move with the module to its device and are saved in its
    state dict. With mean reduction each sample (pixel) counts by its class's weight, divided by the summed weights
    of the batch's targets (those not ignored), as in `CrossEntropyLoss`.

    Under data parallelism (DDP: several processes, `torch.distributed` initialized), the training loss of class
    targets is divided by the summed weights of the targets of every process's batch, times the number of processes:
    DDP's mean of the processes' gradients is then the gradient one process computes on their batches together.
    (Divided by each process's own sum, a process whose batch held more of a light class, or more ignored pixels,
    counted for as much as the others.) This needs one collective per call, so the loss must be called at the same
    steps on every process, as DDP's training steps are; evaluation (no gradient) stays per process.

    Args:
        class_weights: One weight >= 0 per class, or None.
        ignore_index: Targets with this value are left out (255 for segmentation masks).
        label_smoothing: Passed to `CrossEntropyLoss`.
        return_parts: Also return the loss's numerator and denominator on this batch, [1, 2] (see
            `torchbricks._conventions.LOSS_PARTS`), for an epoch's loss over the whole split.

    Raises:
        BrickError: A weight is negative or not finite, every weight is 0, or the weights are a string.

    Example:
        >>> loss = ClassWeightedCrossEntropyLoss(class_weights=[0.4, 1.6])
        >>> loss.weight.tolist()
        [0.4000000059604645, 1.600000023841858]
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        return_parts: bool = False,
    ) -> None:
        weight = None
        if isinstance(class_weights, str):
            raise BrickError(
                f"class_weights must be a list of numbers, got {class_weights!r}; `auto` is a value of the config key "
                "loss.class_weights, which the packaged heads resolve to such a list."
            )
        if class_weights is not None:
            values = [float(value) for value in class_weights]
            if not values or any(not math.isfinite(value) or value < 0 for value in values) or not any(values):
                raise BrickError(f"class_weights must be one finite number >= 0 per class, not all 0; got {list(class_weights)}.")
            weight = torch.tensor(values, dtype=torch.float32)
        super().__init__(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
        self.return_parts = return_parts

    def forward(  # type: ignore[override] # with return_parts, the loss and its parts (a loss brick with two outputs)
        self, input: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        divided = self.reduction == "mean" and not target.is_floating_point()
        if not divided or (training_processes(self.training) < 2 and not self.return_parts):
            loss = super().forward(input, target)
            if not self.return_parts:
                return loss
            if self.reduction != "mean":
                raise BrickError(
                    "ClassWeightedCrossEntropyLoss(return_parts=True) hands over the numerator and denominator of a mean: "
                    f"reduction must be 'mean', got {self.reduction!r}."
                )
            samples = torch.tensor(float(input.numel() // input.shape[1] if input.ndim > 1 else 1), device=loss.device)
            return loss, parts((loss * samples, samples))  # class probabilities: a mean over the samples
        summed = nn.functional.cross_entropy(
            input, target, self.weight, ignore_index=self.ignore_index, reduction="sum", label_smoothing=self.label_smoothing
        )
        counted = target != self.ignore_index  # a mask, not the targets it selects: traceable by torch.compile
        if self.weight is None:
            normalizer = counted.sum()
        else:
            normalizer = (self.weight[torch.where(counted, target, torch.zeros_like(target))] * counted).sum()
        loss = divide_by_every_process(summed, normalizer, self.training)
        return (loss, parts((summed, normalizer))) if self.return_parts else loss
