from __future__ import annotations

import pytest
import torch

from torchbricks.bag_of_bricks.custom_metrics import ConcatenatePredictionAndTarget
from torchbricks.bricks import BrickMetricSingle
from torchbricks.errors import BrickError


def test_concatenate_prediction_and_target_returns_every_batch_in_order() -> None:
    batches = [(torch.rand(3, 4), torch.randint(0, 4, (3,))), (torch.rand(2, 4), torch.randint(0, 4, (2,)))]
    metric = ConcatenatePredictionAndTarget()
    for predictions, targets in batches:
        metric.update(predictions, targets)

    predictions, targets = metric.compute()

    torch.testing.assert_close(predictions, torch.cat([batch[0] for batch in batches]))
    torch.testing.assert_close(targets, torch.cat([batch[1] for batch in batches]))
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update`` method"):
        assert [value.numel() for value in metric.compute()] == [0, 0]


def test_concatenate_prediction_and_target_rejects_batches_of_different_sizes() -> None:
    with pytest.raises(BrickError, match=r"got shapes \(3, 4\) and \(2,\)"):
        ConcatenatePredictionAndTarget().update(torch.rand(3, 4), torch.zeros(2))


def test_concatenate_prediction_and_target_works_in_a_metric_brick() -> None:
    brick = BrickMetricSingle(ConcatenatePredictionAndTarget(), input_names=["logits", "targets"], metric_name="concat")
    logits, targets = torch.rand(5, 3), torch.arange(5)
    brick({"logits": logits, "targets": targets})

    (values,) = brick.summarize(reset=True).values()
    torch.testing.assert_close(values[0], logits)
    torch.testing.assert_close(values[1], targets)
