from __future__ import annotations

import pytest
import torch

from torchbricks.bag_of_bricks.losses import ClassWeightedCrossEntropyLoss
from torchbricks.errors import BrickError


def test_class_weighted_cross_entropy_equals_torch_with_a_weight_tensor_ignoring_255() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=generator)
    targets = torch.randint(0, 3, (2, 4, 4), generator=generator)
    targets[0, 0, 0] = 255
    weights = [0.2, 1.0, 1.8]

    loss = ClassWeightedCrossEntropyLoss(class_weights=weights, ignore_index=255)
    reference = torch.nn.functional.cross_entropy(logits, targets, weight=torch.tensor(weights), ignore_index=255)

    torch.testing.assert_close(loss(logits, targets), reference)
    assert "weight" in loss.state_dict()  # saved with the brick, moved with it to its device


def test_no_class_weights_is_plain_cross_entropy() -> None:
    logits, targets = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])

    torch.testing.assert_close(
        ClassWeightedCrossEntropyLoss()(logits, targets), torch.nn.functional.cross_entropy(logits, targets)
    )


@pytest.mark.parametrize("weights", [[1.0, -0.5], [0.0, 0.0], [1.0, float("inf")], []])
def test_negative_infinite_or_all_zero_weights_are_refused(weights: list[float]) -> None:
    with pytest.raises(BrickError, match="class_weights must be one finite number >= 0 per class"):
        ClassWeightedCrossEntropyLoss(class_weights=weights)


def test_auto_given_to_the_loss_itself_says_where_auto_belongs() -> None:
    with pytest.raises(BrickError, match=r"`auto` is a value of the config key loss\.class_weights"):
        ClassWeightedCrossEntropyLoss(class_weights="auto")  # type: ignore[arg-type]
