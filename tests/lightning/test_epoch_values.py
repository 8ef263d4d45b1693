"""Epoch values: batch-size weighted loss means and metric summaries, reduced over processes in one fixed order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import spawn_two_gloo_processes
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
from torchmetrics.detection import MeanAveragePrecision

from torchbricks import BrickCollection, BrickMetrics
from torchbricks.lightning._epoch_values import LossMeans, metric_value_names, summarize_metrics

CPU = torch.device("cpu")


def _no_other_process(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def test_loss_means_weigh_each_batch_by_its_size() -> None:
    means = LossMeans()
    batches = [(0.5, 4), (2.0, 1), (1.0, 3)]
    for loss, size in batches:
        means.update({"loss": torch.tensor(loss)}, size)

    computed = means.compute(["loss", "never_seen"], CPU, _no_other_process)

    expected = np.average([loss for loss, _ in batches], weights=[size for _, size in batches])
    assert list(computed) == ["loss"]  # a loss no process saw is left out
    assert float(computed["loss"]) == pytest.approx(expected)


def _sums_of(means: LossMeans, names: list[str]) -> torch.Tensor:
    """What `means` hands to the reduction over processes: the other process's share of a sum."""
    handed: list[torch.Tensor] = []
    means.compute(names, CPU, lambda tensor: handed.append(tensor) or tensor)
    return handed[0]


def test_loss_means_add_up_the_sums_and_counts_of_every_process() -> None:
    here, there = LossMeans(), LossMeans()
    here.update({"loss": torch.tensor(1.0)}, 2)
    there.update({"loss": torch.tensor(4.0)}, 6)  # the other process: loss 4 over 6 samples

    computed = here.compute(["loss"], CPU, lambda tensor: tensor + _sums_of(there, ["loss"]))

    assert float(computed["loss"]) == pytest.approx((1.0 * 2 + 4.0 * 6) / 8)


def test_a_loss_with_parts_is_its_numerators_over_its_denominators_on_every_process() -> None:
    # Per batch (numerator, denominator) of a loss divided by its boxes: its epoch value is the whole split's, not
    # a mean of the batches' ratios weighed by their sizes. A batch without boxes adds its numerator (its negatives).
    batches = [((6.0, 3.0), 4), ((1.0, 1.0), 4), ((2.0, 0.0), 1)]
    elsewhere = ((10.0, 4.0), 2)
    here, there = LossMeans(), LossMeans()
    for (numerator, denominator), size in batches:
        ratio = numerator / max(denominator, 1.0)
        here.update({"boxes": torch.tensor(ratio)}, size, {"boxes": torch.tensor([numerator, denominator])})
    (numerator, denominator), size = elsewhere
    there.update({"boxes": torch.tensor(numerator / denominator)}, size, {"boxes": torch.tensor([numerator, denominator])})

    computed = here.compute(["boxes"], CPU, lambda tensor: tensor + _sums_of(there, ["boxes"]))

    assert float(computed["boxes"]) == pytest.approx((6.0 + 1.0 + 2.0 + 10.0) / (3.0 + 1.0 + 0.0 + 4.0))


def test_a_loss_whose_denominators_are_all_zero_is_its_numerator_as_the_losses_divide_by_at_least_one() -> None:
    means = LossMeans()
    means.update({"boxes": torch.tensor(2.5)}, 3, {"boxes": torch.tensor([2.5, 0.0])})
    means.update({"boxes": torch.tensor(0.5)}, 3, {"boxes": torch.tensor([0.5, 0.0])})

    assert float(means.compute(["boxes"], CPU, _no_other_process)["boxes"]) == pytest.approx(3.0)


def test_a_loss_that_is_nan_in_a_batch_is_the_mean_of_the_other_batches_on_every_process() -> None:
    # A loss over nothing (a segmentation batch whose every mask pixel is 255: 0 / 0) made the epoch's mean NaN.
    here, there = LossMeans(), LossMeans()
    here.update({"loss": torch.tensor(1.0)}, 2)
    here.update({"loss": torch.tensor(float("nan"))}, 5)
    there.update({"loss": torch.tensor(4.0)}, 6)
    there.update({"loss": torch.tensor(float("nan"))}, 3)

    computed = here.compute(["loss"], CPU, lambda tensor: tensor + _sums_of(there, ["loss"]))

    assert float(computed["loss"]) == pytest.approx((1.0 * 2 + 4.0 * 6) / 8)


def test_a_loss_that_is_nan_in_every_batch_is_nan_not_zero() -> None:
    means = LossMeans()
    means.update({"loss": torch.tensor(float("nan"))}, 2)

    assert np.isnan(float(means.compute(["loss"], CPU, _no_other_process)["loss"]))


def test_only_metrics_that_saw_a_batch_are_summarized_and_reset() -> None:
    collection = BrickCollection(
        {
            "a": {"metrics": BrickMetrics({"accuracy": MulticlassAccuracy(3, average="micro")}, input_names=["p", "t"])},
            "b": {"metrics": BrickMetrics({"accuracy": MulticlassAccuracy(3, average="micro")}, input_names=["q", "t"])},
        }
    )
    predictions, targets = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])
    collection["a"]["metrics"].metrics.update(predictions, targets)

    values = summarize_metrics(collection, CPU, _no_other_process)

    assert list(values) == ["a/accuracy"]
    assert float(values["a/accuracy"]) == pytest.approx(float((predictions == targets).float().mean()))
    assert summarize_metrics(collection, CPU, _no_other_process) == {}  # reset after summarizing


def _summarize_on_one_of_two_processes(rank: int, port: int, folder: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    collection = BrickCollection(
        {
            "a": {"metrics": BrickMetrics({"accuracy": MulticlassAccuracy(3, average="micro")}, input_names=["p", "t"])},
            "b": {"metrics": BrickMetrics({"accuracy": MulticlassAccuracy(3, average="micro")}, input_names=["q", "t"])},
        }
    )
    if rank == 0:  # a test split smaller than the processes: only this one saw a batch of head a
        collection["a"]["metrics"].metrics.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    collection["b"]["metrics"].metrics.update(torch.tensor([rank, rank]), torch.tensor([0, 0]))  # right here, wrong there

    def reduce(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    values = summarize_metrics(collection, CPU, reduce)
    reduce(torch.zeros(3))  # the next collective of the epoch's end (a logged value), as the module goes on
    Path(folder, f"{rank}.json").write_text(json.dumps({name: float(value) for name, value in values.items()}))
    dist.destroy_process_group()


@pytest.mark.slow
def test_a_brick_one_process_saw_no_batch_of_is_computed_from_every_process_batches_on_each(tmp_path: Path) -> None:
    spawn_two_gloo_processes(_summarize_on_one_of_two_processes, tmp_path, timeout=60, waiting="summarize_metrics")

    expected_a = (np.array([0, 1]) == 0).mean()  # only process 0's batch
    expected_b = (np.array([0, 0, 1, 1]) == 0).mean()  # both processes' batches
    for rank in range(2):
        values = json.loads((tmp_path / f"{rank}.json").read_text())
        assert values == pytest.approx({"a/accuracy": expected_a, "b/accuracy": expected_b}), rank


def test_metric_value_names_are_the_scalars_known_before_any_batch() -> None:
    scalars = BrickMetrics(
        {"accuracy": MulticlassAccuracy(3), "confusion_matrix": MulticlassConfusionMatrix(3)}, input_names=["p", "t"]
    )
    detection = BrickMetrics({"coco": MeanAveragePrecision()}, input_names=["p", "t"])

    assert metric_value_names(scalars) == ["accuracy"]  # a confusion matrix is not a scalar
    assert metric_value_names(detection) is None  # a dict whose keys are known once it computes
