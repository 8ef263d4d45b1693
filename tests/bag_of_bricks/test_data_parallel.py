"""The packaged losses divided within their batch (class weights, ignored pixels, boxes, points, known labels) give,
on two gloo processes, DDP's mean of gradients equal to one process's on their batches together."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import spawn_two_gloo_processes
from torch import nn

from torchbricks.bag_of_bricks._data_parallel import divide_by_every_process
from torchbricks.bag_of_bricks.losses import ClassWeightedCrossEntropyLoss
from torchbricks.bag_of_bricks.multilabel_classification import MultiLabelLoss
from torchbricks.bag_of_bricks.object_detection import BoxDetectionLoss
from torchbricks.bag_of_bricks.point_detection import PointDetectionLoss

Inputs = tuple[list[torch.Tensor], list[torch.Tensor]]  # predictions (differentiated), targets


def _class_weighted_inputs(generator: torch.Generator) -> Inputs:
    targets = torch.randint(0, 3, (4, 5, 5), generator=generator)
    targets[2:, :4] = 255  # the second half's images are mostly ignored pixels
    return [torch.randn(4, 3, 5, 5, generator=generator)], [targets]


def _box_inputs(generator: torch.Generator) -> Inputs:
    corners = torch.rand(4, 3, 2, generator=generator) * 16
    boxes = torch.cat((corners, corners + 4 + torch.rand(4, 3, 2, generator=generator) * 12), dim=-1)
    labels = torch.randint(0, 2, (4, 3), generator=generator)
    labels[2:, 1:] = -1  # three boxes on each image of the first half, one on each of the second
    predictions = [torch.randn(4, 2, 8, 8, generator=generator), torch.rand(4, 4, 8, 8, generator=generator) * 3]
    return predictions, [boxes, labels]


def _point_inputs(generator: torch.Generator) -> Inputs:
    points, labels = torch.rand(4, 4, 2, generator=generator) * 32, torch.randint(0, 2, (4, 4), generator=generator)
    labels[2:, 1:] = -1
    return [torch.randn(4, 2, 8, 8, generator=generator), torch.rand(4, 2, 8, 8, generator=generator)], [points, labels]


def _multilabel_inputs(generator: torch.Generator) -> Inputs:
    targets = torch.randint(0, 2, (4, 5), generator=generator)
    targets[2:, 1:] = -1  # classes seen only in ignored objects: left out
    return [torch.randn(4, 5, generator=generator)], [targets]


LOSSES: dict[str, tuple[Callable[[], nn.Module], Callable[[torch.Generator], Inputs]]] = {
    "class_weighted_cross_entropy": (
        lambda: ClassWeightedCrossEntropyLoss([0.3, 1.0, 3.0], ignore_index=255),
        _class_weighted_inputs,
    ),
    "box_detection": (lambda: BoxDetectionLoss(num_classes=2, stride=4), _box_inputs),
    "point_detection": (lambda: PointDetectionLoss(num_classes=2, stride=4), _point_inputs),
    "multilabel": (MultiLabelLoss, _multilabel_inputs),
}


def _batch(name: str, images: slice) -> Inputs:
    predictions, targets = LOSSES[name][1](torch.Generator().manual_seed(0))
    return [value[images].clone().requires_grad_() for value in predictions], [value[images] for value in targets]


def _losses_and_gradients(name: str, images: slice, training: bool = True) -> tuple[list[float], list[torch.Tensor]]:
    """Each loss the module returns for `images` of the batch, and the gradients of their sum by the predictions."""
    predictions, targets = _batch(name, images)
    loss = LOSSES[name][0]().train(training)
    outputs = loss(*predictions, *targets)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    if not training:
        return [float(output.detach()) for output in outputs], []
    sum(outputs).backward()  # type: ignore[union-attr]
    return [float(output.detach()) for output in outputs], [prediction.grad for prediction in predictions]  # type: ignore[misc]


def _on_two_processes(rank: int, port: int, folder: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    half = slice(2 * rank, 2 * rank + 2)
    results = {}
    for name in LOSSES:
        losses, gradients = _losses_and_gradients(name, half)
        evaluated, _ = _losses_and_gradients(name, half, training=False)  # no collective: the other process makes none
        results[name] = {"losses": losses, "gradients": gradients, "evaluated": evaluated}
    torch.save(results, Path(folder) / f"{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_train_the_gradients_of_one_process_on_their_batches_together(tmp_path: Path) -> None:
    # Each process holds two of the four images, the second process's with fewer boxes, points, known labels and
    # heavy or unignored pixels. DDP averages the processes' gradients: divided by each process's own count, the
    # second process's few boxes counted for as much as the first's many.
    spawn_two_gloo_processes(_on_two_processes, tmp_path, timeout=300, waiting="the losses")
    ranks = [torch.load(tmp_path / f"{rank}.pt", weights_only=True) for rank in range(2)]

    for name in LOSSES:
        together, gradients = _losses_and_gradients(name, slice(0, 4))
        averaged = [(ranks[0][name]["losses"][i] + ranks[1][name]["losses"][i]) / 2 for i in range(len(together))]
        assert averaged == pytest.approx(together, rel=1e-5), name  # what the step logs: the mean over processes
        for index, gradient in enumerate(gradients):
            # DDP's mean of the two processes' gradients, for the images each holds
            ddp = torch.cat([ranks[rank][name]["gradients"][index] for rank in range(2)]) / 2
            torch.testing.assert_close(ddp, gradient, rtol=1e-5, atol=1e-7, msg=f"{name} prediction {index}")
        for rank in range(2):  # evaluation divides by each process's own count
            alone, _ = _losses_and_gradients(name, slice(2 * rank, 2 * rank + 2), training=False)
            assert ranks[rank][name]["evaluated"] == pytest.approx(alone, rel=1e-6), f"{name} rank {rank}"


def test_without_a_process_group_the_division_is_by_the_batch_own_denominator_at_least_the_minimum() -> None:
    numerator = torch.tensor(6.0)
    assert divide_by_every_process(numerator, torch.tensor(3.0), training=True).item() == 2.0
    assert divide_by_every_process(numerator, torch.tensor(0.0), training=True, minimum=1.0).item() == 6.0


@pytest.mark.parametrize("name", list(LOSSES))
def test_with_return_parts_each_loss_is_the_numerator_over_the_denominator_it_hands_over(name: str) -> None:
    predictions, targets = _batch(name, slice(0, 4))
    plain = LOSSES[name][0]()
    with_parts = LOSSES[name][0]()
    with_parts.return_parts = True

    *losses, parts = with_parts(*predictions, *targets)
    expected = plain(*predictions, *targets)

    expected = expected if isinstance(expected, tuple) else (expected,)
    assert parts.shape == (len(expected), 2)
    for loss, reference, (numerator, denominator) in zip(losses, expected, parts, strict=True):
        torch.testing.assert_close(loss, reference)
        torch.testing.assert_close(loss.detach(), numerator / denominator.clamp(min=1e-6), rtol=1e-5, atol=0)
