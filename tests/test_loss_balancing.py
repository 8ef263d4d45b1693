from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from torchbricks.errors import BrickError
from torchbricks.loss_balancing import DynamicWeightAverage, FixedWeights, PCGrad, UncertaintyWeighting, create_loss_balancer


def test_fixed_weights_weigh_named_losses_and_leave_the_others_at_the_default() -> None:
    total = FixedWeights({"a": 0.5}, default=2.0)({"a": torch.tensor(4.0), "b": torch.tensor(1.0)})
    assert total.item() == pytest.approx(0.5 * 4 + 2.0 * 1)


def test_fixed_weights_refuse_a_negative_weight() -> None:
    with pytest.raises(BrickError, match=r"weight of loss 'a' must be a finite number >= 0, got -1"):
        FixedWeights({"a": -1})


def test_uncertainty_weighting_learns_weights_inverse_to_each_loss() -> None:
    balancer = UncertaintyWeighting(["large", "small"])
    optimizer = torch.optim.SGD(balancer.parameters(), lr=0.05)
    losses = {"large": torch.tensor(4.0), "small": torch.tensor(0.25)}
    for _ in range(2000):
        optimizer.zero_grad()
        balancer(losses).backward()
        optimizer.step()
    weights = balancer.logged_values()
    # The optimum of exp(-s) * L + s is s = log(L): weight exp(-s) = 1 / L.
    assert weights["weights/large"] == pytest.approx(1 / 4, rel=0.02)
    assert weights["weights/small"] == pytest.approx(1 / 0.25, rel=0.02)


def test_uncertainty_weighting_counts_only_the_losses_a_batch_produced() -> None:
    balancer = UncertaintyWeighting(["a", "b"])
    assert balancer({"a": torch.tensor(3.0)}).item() == pytest.approx(3.0)
    with pytest.raises(BrickError, match="got the unknown loss 'c'"):
        balancer({"c": torch.tensor(1.0)})


def test_uncertainty_weighting_leaves_out_a_loss_over_no_scored_pixel_and_keeps_training() -> None:
    # A segmentation head given a batch whose every mask pixel is ignored computes 0 / 0 = NaN. Its log-variance
    # took a NaN gradient, the optimizer made it NaN, and every later step's total and gradients were NaN.
    from torchbricks.bag_of_bricks.losses import ClassWeightedCrossEntropyLoss

    torch.manual_seed(0)
    balancer = UncertaintyWeighting(["seg", "cls"])
    head = nn.Conv2d(3, 3, 1)
    optimizer = torch.optim.AdamW([*balancer.parameters(), *head.parameters()], lr=0.1)
    segmentation = ClassWeightedCrossEntropyLoss(ignore_index=255, return_parts=True)
    images = torch.randn(2, 3, 4, 4)
    for masks in (torch.full((2, 4, 4), 255), torch.randint(0, 3, (2, 4, 4))):
        optimizer.zero_grad()
        seg_loss, _ = segmentation(head(images), masks)
        cls_loss = head(images).pow(2).mean()
        total = balancer({"seg": seg_loss, "cls": cls_loss})
        total.backward()
        if bool((masks == 255).all()):
            assert math.isnan(seg_loss.item())
            assert total.item() == pytest.approx(cls_loss.item())  # the classification term alone (s = 0)
            assert balancer.log_variances.grad[0].item() == 0.0
        assert all(bool(torch.isfinite(parameter.grad).all()) for parameter in (*balancer.parameters(), *head.parameters()))
        optimizer.step()
    assert bool(torch.isfinite(balancer.log_variances).all())
    assert math.isfinite(total.item())


def test_dynamic_weight_average_gives_more_weight_to_the_loss_that_falls_slower() -> None:
    balancer = DynamicWeightAverage(["slow", "fast"], temperature=2.0)
    balancer.epoch_end({"slow": 1.0, "fast": 1.0})
    assert balancer.logged_values() == {"weights/slow": 1.0, "weights/fast": 1.0}  # one epoch of history: unchanged
    balancer.epoch_end({"slow": 0.9, "fast": 0.5})
    rates = torch.tensor([0.9, 0.5])
    expected = 2 * torch.softmax(rates / 2.0, dim=0)
    weights = balancer.logged_values()
    assert weights["weights/slow"] == pytest.approx(expected[0].item())
    assert weights["weights/fast"] == pytest.approx(expected[1].item())
    assert weights["weights/slow"] > 1 > weights["weights/fast"]
    total = balancer({"slow": torch.tensor(1.0), "fast": torch.tensor(1.0)})
    assert total.item() == pytest.approx(2.0)


def test_pcgrad_projects_conflicting_gradients_off_each_other() -> None:
    shared = nn.Parameter(torch.zeros(2))
    head = nn.Parameter(torch.tensor(3.0))
    first = torch.dot(torch.tensor([1.0, 0.0]), shared) + head  # gradient (1, 0)
    second = torch.dot(torch.tensor([-1.0, 1.0]), shared)  # gradient (-1, 1): conflicts with the first
    balancer = PCGrad(["first", "second"])
    balancer.backward({"first": first, "second": second}, [shared])
    # (1, 0) projected off (-1, 1) is (0.5, 0.5); (-1, 1) projected off (1, 0) is (0, 1).
    torch.testing.assert_close(shared.grad, torch.tensor([0.5, 1.5]))
    assert head.grad is not None
    assert head.grad.item() == pytest.approx(1.0)
    assert balancer.logged_values() == {"pcgrad/conflicting_fraction": 1.0}


def test_pcgrad_leaves_agreeing_gradients_summed() -> None:
    shared = nn.Parameter(torch.zeros(2))
    losses = {"a": torch.dot(torch.tensor([1.0, 2.0]), shared), "b": torch.dot(torch.tensor([0.5, 0.0]), shared)}
    PCGrad(list(losses)).backward(losses, [shared])
    torch.testing.assert_close(shared.grad, torch.tensor([1.5, 2.0]))


def test_create_loss_balancer_names_the_strategies_and_the_close_match() -> None:
    assert isinstance(create_loss_balancer("dwa", ["a", "b"]), DynamicWeightAverage)
    with pytest.raises(BrickError, match=r"Unknown loss balancing 'uncertainity'.*Did you mean 'uncertainty'"):
        create_loss_balancer("uncertainity", ["a"])
    with pytest.raises(BrickError, match="sets its own weights"):
        create_loss_balancer("uncertainty", ["a"], {"a": 2.0})
    assert math.isclose(create_loss_balancer("fixed", ["a"], {"a": 2.0}).weight("a"), 2.0)


@pytest.mark.parametrize("strategy", ["fixed", "uncertainty", "dwa", "pcgrad"])
def test_the_names_logged_are_known_before_training_and_naming_them_changes_nothing(strategy: str) -> None:
    balancer = create_loss_balancer(strategy, ["head0/loss_ce", "head1/loss_ce"])
    names = balancer.logged_value_names()
    assert balancer.logged_value_names() == names  # asking twice: no counter reset, nothing consumed
    assert sorted(names) == sorted(balancer.logged_values())


def test_pcgrad_with_no_parameter_shared_by_two_losses_backpropagates_the_plain_sum() -> None:
    first, second = nn.Parameter(torch.tensor([1.0, 2.0])), nn.Parameter(torch.tensor([3.0]))
    losses = {"a": (first**2).sum(), "b": 2 * second.sum()}
    total = PCGrad(["a", "b"]).backward(losses)
    assert float(total) == 11.0
    torch.testing.assert_close(first.grad, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(second.grad, torch.tensor([2.0]))


def test_pcgrad_under_several_processes_refuses_a_step_whose_losses_differ_between_them() -> None:
    shared = nn.Parameter(torch.ones(2))
    losses = {"a": shared.sum(), "b": (2 * shared).sum()}

    def other_process_lacks_b(tensor: torch.Tensor) -> torch.Tensor:  # the mean with a process that computed only "a"
        return (tensor + torch.tensor([1.0, 0.0])) / 2

    with pytest.raises(BrickError, match=r"the loss 'b' was computed on some processes and not on others"):
        PCGrad(["a", "b"]).backward(losses, average=other_process_lacks_b)
    with pytest.raises(BrickError, match=r"needs the names of the losses it balances"):
        PCGrad().backward(losses, average=lambda tensor: tensor)


def test_pcgrad_under_several_processes_projects_the_averaged_gradients() -> None:
    # The other process's gradients of "a" and "b" are (-3, 0) and (0, 0): averaged with this one's (1, 0) and
    # (-1, 1), "a" becomes (-1, 0), which no longer conflicts with "b" (-0.5, 0.5) and is kept as it is.
    shared = nn.Parameter(torch.zeros(2))
    losses = {"a": torch.dot(torch.tensor([1.0, 0.0]), shared), "b": torch.dot(torch.tensor([-1.0, 1.0]), shared)}
    others = {2: torch.tensor([[-3.0, 0.0], [0.0, 0.0]]), 1: torch.tensor([1.0, 1.0])}  # gradients; losses present

    def average(tensor: torch.Tensor) -> torch.Tensor:
        return (tensor + others[tensor.ndim]) / 2

    balancer = PCGrad(["a", "b"])
    balancer.backward(losses, [shared], average=average)
    torch.testing.assert_close(shared.grad, torch.tensor([-1.5, 0.5]))
    assert balancer.logged_values() == {"pcgrad/conflicting_fraction": 0.0}
