"""Bricks on their own: names, tags, repr, gradients and metrics."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryPrecisionRecallCurve, MulticlassAccuracy, MulticlassF1Score
from torchmetrics.wrappers import ClasswiseWrapper

from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import (
    LOSS,
    METRIC,
    MODEL,
    BrickLoss,
    BrickMetrics,
    BrickMetricSingle,
    BrickModule,
    BrickNotTrainable,
    BrickTensorCache,
    BrickTrainable,
)
from torchbricks.errors import BrickError, BrickNameError, BrickOutputError
from torchbricks.tags import Stage


def test_repr_matches_the_spec() -> None:
    brick = BrickLoss(model=nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"], tags="LOSS")
    assert repr(brick) == (
        "BrickLoss(CrossEntropyLoss, input_names=['logits', 'targets'], output_names=['loss_ce'], tags={'LOSS'})"
    )


def test_repr_sorts_several_tags() -> None:
    brick = BrickTrainable(nn.Identity(), input_names=["x"], output_names=["y"], tags={"b", "a"})
    assert repr(brick).endswith("tags={'a', 'b'})")


def test_a_bare_string_name_is_one_name() -> None:
    brick = BrickTrainable(nn.Identity(), input_names="raw", output_names="features")
    assert brick.input_names == ["raw"]
    assert brick.output_names == ["features"]


@pytest.mark.parametrize(
    ("brick", "tags"),
    [
        (BrickTrainable(nn.Identity(), ["x"], ["y"]), {MODEL}),
        (BrickNotTrainable(nn.Identity(), ["x"], ["y"]), {MODEL}),
        (BrickLoss(nn.MSELoss(), ["x", "y"], ["loss"]), {LOSS}),
        (BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["x", "y"]), {METRIC}),
    ],
)
def test_each_brick_kind_has_default_tags(brick: BrickModule, tags: set[str]) -> None:
    assert brick.tags == tags


def test_tags_accept_a_stage() -> None:
    brick = BrickTrainable(nn.Identity(), ["x"], ["y"], tags=Stage.TRAIN)
    assert brick.tags == {"MODEL", "LOSS", "METRIC"}


def test_a_brick_whose_only_tag_is_a_misspelled_stage_tag_warns_that_it_runs_in_no_stage() -> None:
    with pytest.warns(UserWarning, match=r"BrickLoss with tags \['loss'\] runs in no Stage.*Did you mean 'LOSS'\?") as record:
        BrickLoss(nn.MSELoss(), ["y", "t"], ["mse"], tags="loss")
    assert record[0].filename == __file__  # points at the brick's construction


@pytest.mark.parametrize("tags", ["", [""], {"LOSS", ""}])
def test_an_empty_tag_is_refused(tags: Any) -> None:
    with pytest.raises(BrickNameError, match=r"BrickLoss: tags must be non-empty strings, got \[''"):
        BrickLoss(nn.MSELoss(), ["y", "t"], ["mse"], tags=tags)


@pytest.mark.parametrize("tags", [[], set()])
def test_a_brick_without_tags_warns_that_it_runs_in_no_stage(tags: Any) -> None:
    with pytest.warns(
        UserWarning, match=r"BrickLoss with tags \[\] runs in no Stage\. It has no tag, so it runs only in calls"
    ) as record:
        brick = BrickLoss(nn.MSELoss(), ["y", "t"], ["mse"], tags=tags)
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match="runs in no Stage") as record:
        brick.tags = []
    assert record[0].filename == __file__  # assigned: points at the assignment


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("tags", ["HEAD", {"MODEL", "model"}, Stage.TRAIN])
def test_custom_tags_and_bricks_some_stage_runs_give_no_warning(tags: Any) -> None:
    BrickTrainable(nn.Identity(), ["x"], ["y"], tags=tags)


def test_tags_of_the_wrong_type_are_rejected() -> None:
    with pytest.raises(BrickError, match="BrickTrainable: tags must be a str, an iterable of str or a Stage, got int"):
        BrickTrainable(nn.Identity(), ["x"], ["y"], tags=3)  # type: ignore[arg-type]


def test_names_of_the_wrong_type_are_rejected() -> None:
    with pytest.raises(BrickNameError, match=r"BrickTrainable: input_names must be non-empty strings, got \[1\]"):
        BrickTrainable(nn.Identity(), [1], ["y"])  # type: ignore[list-item]


def test_a_brick_runs_on_its_own_with_named_inputs() -> None:
    brick = BrickTrainable(nn.Linear(2, 3), input_names=["x"], output_names=["y"])
    outputs = brick({"x": torch.ones(4, 2), "unused": 1})
    assert list(outputs) == ["y"]
    torch.testing.assert_close(outputs["y"], brick.model(torch.ones(4, 2)))


def test_dict_input_names_pass_keyword_arguments() -> None:
    class Subtract(nn.Module):
        def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
            return left - right

    brick = BrickTrainable(Subtract(), input_names={"right": "a", "left": "b"}, output_names=["d"])
    assert brick({"a": torch.tensor(1.0), "b": torch.tensor(5.0)})["d"] == 4.0
    assert brick.input_names == {"right": "a", "left": "b"}


def test_not_trainable_freezes_parameters_and_stays_in_eval_mode() -> None:
    brick = BrickNotTrainable(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), ["x"], ["y"])
    brick.train()
    assert not any(parameter.requires_grad for parameter in brick.parameters())
    assert not brick.model.training
    running_mean = brick.model[1].running_mean.clone()
    brick({"x": torch.randn(8, 2)})
    torch.testing.assert_close(brick.model[1].running_mean, running_mean)


def test_assigning_trainable_false_freezes_the_module_as_the_constructor_does_and_true_thaws_it() -> None:
    brick = BrickTrainable(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), ["x"], ["y"])
    collection = BrickCollection({"backbone": brick})
    optimizer = torch.optim.SGD(brick.parameters(), lr=0.5)

    brick.trainable = False  # freezing a backbone during training
    collection.train()
    weights, running_mean = brick.model[0].weight.clone(), brick.model[1].running_mean.clone()
    outputs = collection({"x": torch.randn(8, 2)})
    assert not outputs["y"].requires_grad  # nothing to train: the optimizer has no gradient to step with
    optimizer.step()
    torch.testing.assert_close(brick.model[0].weight, weights)
    torch.testing.assert_close(brick.model[1].running_mean, running_mean)  # eval mode: the statistics do not drift

    brick.trainable = True
    assert brick.model.training
    collection({"x": torch.randn(8, 2)})["y"].sum().backward()
    optimizer.step()
    assert not torch.equal(brick.model[0].weight, weights)
    assert not torch.equal(brick.model[1].running_mean, running_mean)


@pytest.mark.parametrize("swap", ["assign", "add_module", "modules_dict"])
def test_a_module_swapped_into_a_not_trainable_brick_is_frozen_too(swap: str) -> None:
    brick = BrickNotTrainable(nn.Linear(2, 2), input_names=["x"], output_names=["y"])
    replacement = nn.Linear(2, 2)
    if swap == "assign":
        brick.model = replacement
    elif swap == "add_module":
        brick.add_module("model", replacement)
    else:  # as torch.ao.quantization swaps modules
        brick._modules["model"] = replacement
    brick.train()
    assert not any(parameter.requires_grad for parameter in brick.parameters())
    assert not replacement.training


def test_a_module_swapped_into_a_trainable_brick_stays_trainable() -> None:
    brick = BrickTrainable(nn.Linear(2, 2), input_names=["x"], output_names=["y"])
    brick.model = nn.Linear(2, 2)
    assert all(parameter.requires_grad for parameter in brick.parameters())


def test_not_trainable_passes_the_gradient_to_earlier_bricks_and_keeps_none_itself() -> None:
    torch.manual_seed(0)
    first, frozen = nn.Linear(2, 3), nn.Linear(3, 1)
    collection = BrickCollection(
        {
            "first": BrickTrainable(first, ["x"], ["h"]),
            "frozen": BrickNotTrainable(frozen, ["h"], ["y"]),
        }
    )
    x = torch.randn(4, 2)
    collection({"x": x})["y"].sum().backward()

    # reference: d(sum(W2 (W1 x + b1) + b2))/dW1 = W2^T summed over the batch times x
    expected = frozen.weight.detach().T @ torch.ones(1, 4) @ x
    torch.testing.assert_close(first.weight.grad, expected)
    assert frozen.weight.grad is None
    assert frozen.bias.grad is None


def test_calculate_gradients_false_runs_under_no_grad() -> None:
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.is_grad_enabled())
            return x * 2

    out = BrickTrainable(Probe(), ["x"], ["y"], calculate_gradients=False)({"x": torch.ones(2, requires_grad=True)})["y"]
    assert seen == [False]
    assert not out.requires_grad


def test_loss_output_names_must_be_outputs() -> None:
    with pytest.raises(
        BrickNameError, match=r"loss_output_names \['los'\] are not among output_names \['loss'\]. Did you mean 'loss'"
    ):
        BrickLoss(nn.MSELoss(), ["a", "b"], ["loss"], loss_output_names=["los"])


def test_loss_brick_marks_every_output_as_loss_by_default() -> None:
    assert BrickLoss(nn.MSELoss(), ["a", "b"], ["loss"]).loss_output_names == ["loss"]


def test_model_must_be_callable() -> None:
    with pytest.raises(BrickError, match="model must be callable"):
        BrickTrainable(3, ["x"], ["y"])  # type: ignore[arg-type]


def test_metric_brick_accumulates_and_returns_nothing() -> None:
    brick = BrickMetricSingle(MulticlassAccuracy(num_classes=3), input_names=["prediction", "target"])
    assert brick({"prediction": torch.tensor([0, 1]), "target": torch.tensor([0, 1])}) == {}
    brick({"prediction": torch.tensor([2, 2]), "target": torch.tensor([0, 1])})
    reference = MulticlassAccuracy(num_classes=3)
    reference.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 0, 1]))
    values = brick.summarize(reset=True)
    torch.testing.assert_close(values["MulticlassAccuracy"], reference.compute())
    assert brick.metrics.update_count == 0


def test_a_single_metric_returning_a_curve_outputs_the_whole_curve_with_return_metrics() -> None:
    scores, targets = torch.tensor([0.1, 0.8, 0.6, 0.3]), torch.tensor([0, 1, 0, 1])
    brick = BrickMetricSingle(BinaryPrecisionRecallCurve(), ["scores", "targets"], return_metrics=True)
    curve = brick({"scores": scores, "targets": targets})["BinaryPrecisionRecallCurve"]
    expected = BinaryPrecisionRecallCurve()(scores, targets)
    assert len(curve) == len(expected) == 3  # precision, recall and thresholds, not the precision alone
    for value, reference in zip(curve, expected, strict=True):
        torch.testing.assert_close(value, reference)


def test_a_single_metric_returning_a_dict_outputs_the_dict_with_return_metrics() -> None:
    metric = ClasswiseWrapper(MulticlassAccuracy(num_classes=2, average=None), labels=["cat", "dog"])
    brick = BrickMetricSingle(metric, ["predictions", "targets"], metric_name="per_class", return_metrics=True)
    values = brick({"predictions": torch.tensor([0, 1, 1]), "targets": torch.tensor([0, 1, 0])})["per_class"]
    assert sorted(values) == ["multiclassaccuracy_cat", "multiclassaccuracy_dog"]
    torch.testing.assert_close(values["multiclassaccuracy_cat"], torch.tensor(0.5))


def test_metric_brick_with_return_metrics_outputs_the_batch_value() -> None:
    brick = BrickMetricSingle(MulticlassAccuracy(num_classes=2, average="micro"), ["p", "t"], return_metrics=True)
    outputs = brick({"p": torch.tensor([0, 1]), "t": torch.tensor([0, 0])})
    assert list(outputs) == ["MulticlassAccuracy"]
    assert outputs["MulticlassAccuracy"] == 0.5


def test_metric_collection_brick_reports_each_metric() -> None:
    metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes=2), "f1": MulticlassF1Score(num_classes=2)})
    brick = BrickMetrics(metrics, ["p", "t"], return_metrics=True)
    outputs = brick({"p": torch.tensor([0, 1]), "t": torch.tensor([0, 1])})
    assert list(outputs) == ["acc", "f1"]
    assert set(brick.summarize(reset=False)) == {"acc", "f1"}


def _classwise(labels: list[str]) -> ClasswiseWrapper:
    return ClasswiseWrapper(MulticlassAccuracy(num_classes=2, average=None), labels=labels)


LABELS, SCORES, TARGETS = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0.2, 0.9, 0.6, 0.4, 0.7]), torch.tensor([0, 1, 0, 0, 0])
MEMBERS_WITH_DICTS_OR_TUPLES = {  # case -> (a function making the members, the MetricCollection's keywords, predictions)
    "a dict-valued member beside a tensor": (
        lambda: {"per_class": _classwise(["cat", "dog"]), "acc": MulticlassAccuracy(2)},
        {},
        LABELS,
    ),
    "two dict-valued members whose keys clash": (
        lambda: {"a": _classwise(["cat", "dog"]), "b": _classwise(["cat", "dog"])},
        {},
        LABELS,
    ),
    "a dict-valued member with a prefix": (lambda: {"per_class": _classwise(["cat", "dog"])}, {"prefix": "val_"}, LABELS),
    "a tuple-valued member alone": (lambda: {"curve": BinaryPrecisionRecallCurve(thresholds=4)}, {}, SCORES),
    "a tuple-valued member beside a tensor": (
        lambda: {"curve": BinaryPrecisionRecallCurve(thresholds=4), "acc": BinaryAccuracy()},
        {},
        SCORES,
    ),
}


@pytest.mark.parametrize("case", MEMBERS_WITH_DICTS_OR_TUPLES, ids=list(MEMBERS_WITH_DICTS_OR_TUPLES))
def test_return_metrics_outputs_each_value_of_a_metric_collection_as_torchmetrics_names_it(case: str) -> None:
    members, keywords, predictions = MEMBERS_WITH_DICTS_OR_TUPLES[case]
    collection = BrickCollection(
        {"head": {"metrics": BrickMetrics(MetricCollection(members(), **keywords), ["../p", "../t"], return_metrics=True)}}
    )

    outputs = collection({"p": predictions, "t": TARGETS}, return_inputs=False)
    expected = MetricCollection(members(), **keywords)(predictions, TARGETS)  # torchmetrics' own flattening

    assert sorted(outputs) == sorted(f"head/{name}" for name in expected)
    for name, value in expected.items():
        got = outputs[f"head/{name}"]
        if isinstance(value, tuple):  # a curve is one output, a list of its tensors
            assert isinstance(got, list)
            assert len(got) == len(value)
            for part, reference in zip(got, value, strict=True):
                torch.testing.assert_close(part, reference, equal_nan=True)  # a precision at no prediction is nan
        else:
            torch.testing.assert_close(got, value)


def test_return_metrics_output_names_name_the_flattened_values_in_order() -> None:
    metrics = MetricCollection({"per_class": _classwise(["cat", "dog"]), "acc": MulticlassAccuracy(2)})
    with pytest.raises(BrickNameError, match=r"the 3 values \['acc', 'multiclassaccuracy_cat', 'multiclassaccuracy_dog'\]"):
        BrickMetrics(metrics, ["p", "t"], return_metrics=True, output_names=["accuracy", "per_class"])
    brick = BrickMetrics(metrics, ["p", "t"], return_metrics=True, output_names=["accuracy", "cat", "dog"])

    outputs = brick({"p": LABELS, "t": TARGETS})

    expected = metrics.clone()(LABELS, TARGETS)
    renamed = {"acc": "accuracy", "multiclassaccuracy_cat": "cat", "multiclassaccuracy_dog": "dog"}
    torch.testing.assert_close(outputs, {renamed[name]: value for name, value in expected.items()})


class _KeysFromData(Metric):
    """A dict-valued metric whose key depends on the data (the number of samples seen)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        self.count += values.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        return {f"seen_{int(self.count)}": self.count}


def test_return_metrics_refuses_a_dict_whose_keys_change_with_the_data_naming_the_brick() -> None:
    brick = BrickMetrics(MetricCollection({"seen": _KeysFromData()}), ["x"], return_metrics=True)
    assert brick.output_names == ["./seen_0"]
    with pytest.raises(BrickOutputError, match=r"torchmetrics returned no value 'seen_0' this batch \(values: \['seen_3'\]\)"):
        BrickCollection({"seen": brick})({"x": torch.ones(3)})


def test_metric_brick_needs_a_metric() -> None:
    with pytest.raises(BrickError, match="BrickMetricSingle needs a torchmetrics Metric, got Linear"):
        BrickMetricSingle(nn.Linear(1, 1), ["p", "t"])  # type: ignore[arg-type]


def test_output_names_without_return_metrics_are_rejected() -> None:
    with pytest.raises(BrickNameError, match="output_names are only used with return_metrics=True"):
        BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["p", "t"], output_names=["acc"])


def test_a_copied_metric_brick_keeps_its_own_state() -> None:
    brick = BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["p", "t"])
    twin = copy.deepcopy(brick)
    twin({"p": torch.tensor([0]), "t": torch.tensor([0])})
    assert twin.metrics.update_count == 1
    assert brick.metrics.update_count == 0


def test_tensor_cache_concatenates_batches_in_order() -> None:
    cache = BrickTensorCache(input_names=["embedding", "label"])
    cache({"embedding": torch.ones(2, 3), "label": torch.tensor([1, 2])})
    cache({"embedding": torch.zeros(1, 3), "label": torch.tensor([3])})
    cached = cache.cached(reset=True)
    torch.testing.assert_close(cached["embedding"], torch.cat([torch.ones(2, 3), torch.zeros(1, 3)]))
    torch.testing.assert_close(cached["label"], torch.tensor([1, 2, 3]))
    with pytest.raises(BrickError, match="nothing is cached yet"):
        cache.cached()


def test_tensor_cache_keeps_only_the_latest_batches_and_detaches() -> None:
    cache = BrickTensorCache(input_names={"score": "logits"}, max_batches=2)
    for value in range(3):
        cache({"logits": torch.full((1,), float(value), requires_grad=True)})
    cached = cache.cached()["score"]
    torch.testing.assert_close(cached, torch.tensor([1.0, 2.0]))
    assert not cached.requires_grad
    assert repr(cache) == "BrickTensorCache(max_batches=2, input_names={'score': 'logits'}, output_names=[], tags={'METRIC'})"


def test_tensor_cache_rejects_a_non_positive_size() -> None:
    with pytest.raises(BrickError, match="max_batches must be at least 1 or None, got 0"):
        BrickTensorCache(input_names=["x"], max_batches=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BrickTrainable(nn.Linear(4, 3), input_names=["x", "y"], output_names=["z"]), r"too many positional"),
        (lambda: BrickTrainable(nn.Linear(4, 3), input_names={"inp": "x"}, output_names=["z"]), r"\{'inp': 'x'\}"),
        (lambda: BrickMetricSingle(MulticlassAccuracy(num_classes=3), input_names=["logits"]), r"metric 'MulticlassAccuracy'"),
    ],
)
def test_inputs_the_wrapped_callable_cannot_take_are_refused_when_the_brick_is_built(make: Any, message: str) -> None:
    from torchbricks.errors import BrickBuildError

    with pytest.raises(BrickBuildError, match=message):
        make()


def test_a_callable_taking_any_arguments_is_not_checked() -> None:
    class TakesAny(nn.Module):
        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return sum(tensors)

    assert BrickTrainable(TakesAny(), input_names=["a", "b", "c"], output_names=["s"]).input_names == ["a", "b", "c"]


# --- a brick run on its own keeps its plan ----------------------------------------------------------------------------


def test_a_brick_run_on_its_own_plans_once_and_again_only_after_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchbricks._plan

    plans: list[object] = []
    planner = torchbricks._plan.plan

    def counting_plan(*args: Any, **kwargs: Any) -> Any:
        plans.append(args)
        return planner(*args, **kwargs)

    monkeypatch.setattr(torchbricks._plan, "plan", counting_plan)
    brick = BrickTrainable(nn.Identity(), ["x"], ["y"])
    x = torch.ones(2)
    for _ in range(3):
        assert list(brick({"x": x})) == ["y"]
    assert len(plans) == 1

    brick.output_names = ["z"]  # each change is seen by the next call
    assert list(brick({"x": x})) == ["z"]
    brick.model = _Negate()
    torch.testing.assert_close(brick({"x": x})["z"], -x)
    brick.calculate_gradients = False
    assert not brick({"x": x.requires_grad_()})["z"].requires_grad
    assert len(plans) == 4
    copied = copy.copy(brick)  # a copy plans for itself: its plan holds its own module
    copied.model = nn.Identity()
    torch.testing.assert_close(copied({"x": x})["z"], x)
    torch.testing.assert_close(brick({"x": x})["z"], -x)


class _Negate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


# --- assigning a metric brick's metrics re-derives its names ----------------------------------------------------------

PREDS, TARGETS = torch.tensor([0, 1, 2, 0, 2]), torch.tensor([0, 1, 1, 0, 0])


def test_a_metric_assigned_to_a_single_metric_brick_is_reported_under_its_own_name_not_the_old_ones() -> None:
    brick = BrickMetricSingle(MulticlassAccuracy(num_classes=3), ["preds", "targets"])
    collection = BrickCollection({"metric": brick})
    brick.metrics = MulticlassF1Score(num_classes=3)
    collection({"preds": PREDS, "targets": TARGETS})

    expected = MulticlassF1Score(num_classes=3)(PREDS, TARGETS)
    assert collection.summarize(reset=True) == {"MulticlassF1Score": expected}
    assert (brick.metric_names, brick.value_names, brick.describe()) == (
        ["MulticlassF1Score"],
        ["MulticlassF1Score"],
        "['MulticlassF1Score']",
    )


def test_a_metric_assigned_to_a_brick_with_its_own_metric_name_keeps_that_name() -> None:
    brick = BrickMetricSingle(MulticlassAccuracy(num_classes=3), ["preds", "targets"], metric_name="score")
    brick.metrics = MulticlassF1Score(num_classes=3)
    brick.metrics.update(PREDS, TARGETS)
    assert list(brick.summarize(reset=True)) == ["score"]
    brick.metric_names = ["renamed"]
    assert (brick.metric_names, brick.value_names) == (["renamed"], ["renamed"])


def test_metrics_assigned_to_a_brick_returning_its_values_return_them_under_the_new_names() -> None:
    brick = BrickMetrics({"accuracy": MulticlassAccuracy(num_classes=3)}, ["preds", "targets"], return_metrics=True)
    collection = BrickCollection({"metrics": brick})
    brick.metrics = {"f1": MulticlassF1Score(num_classes=3)}
    outputs = collection({"preds": PREDS, "targets": TARGETS})
    torch.testing.assert_close(outputs["f1"], MulticlassF1Score(num_classes=3)(PREDS, TARGETS))
    assert (brick.metric_names, brick.value_names, brick.output_names) == (["f1"], ["f1"], ["./f1"])
    brick.return_metrics = False
    assert brick.output_names == []
    assert list(collection({"preds": PREDS, "targets": TARGETS})) == ["preds", "targets"]


def test_metrics_assigned_under_a_name_another_brick_reports_are_refused_and_nothing_changes() -> None:
    first = BrickMetrics({"accuracy": MulticlassAccuracy(num_classes=3)}, ["preds", "targets"])
    second = BrickMetrics({"f1": MulticlassF1Score(num_classes=3)}, ["preds", "targets"])
    collection = BrickCollection({"first": first, "second": second})
    kept = second.metrics
    with pytest.raises(BrickError, match=r"Metric bricks 'first' and 'second' both report 'accuracy'"):
        second.metrics = MetricCollection({"accuracy": MulticlassAccuracy(num_classes=3, average="micro")})
    assert second.metrics is kept
    assert (second.metric_names, second.value_names) == (["f1"], ["f1"])
    collection({"preds": PREDS, "targets": TARGETS})
    assert sorted(collection.summarize(reset=True)) == ["accuracy", "f1"]


@pytest.mark.parametrize(
    ("make", "assigned", "message"),
    [
        (lambda: BrickMetrics({"a": BinaryAccuracy()}, ["p", "t"]), BinaryAccuracy(), "must be a torchmetrics MetricCollection"),
        (
            lambda: BrickMetricSingle(BinaryAccuracy(), ["p", "t"]),
            MetricCollection([BinaryAccuracy()]),
            "must be one torchmetrics Metric",
        ),
    ],
    ids=["a metric for a collection brick", "a collection for a single metric brick"],
)
def test_metrics_of_the_wrong_kind_are_refused_and_nothing_changes(make: Any, assigned: Any, message: str) -> None:
    brick = make()
    kept = brick.metrics
    with pytest.raises(BrickError, match=message):
        brick.metrics = assigned
    assert brick.metrics is kept


def test_metric_names_other_than_a_collections_keys_are_refused() -> None:
    brick = BrickMetrics({"accuracy": BinaryAccuracy()}, ["p", "t"])
    with pytest.raises(BrickNameError, match=r"are the keys of its MetricCollection \['accuracy'\], got metric_names \['acc'\]"):
        brick.metric_names = ["acc"]
    assert brick.metric_names == ["accuracy"]


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        (nn.Bilinear(2, 2, 2), r"its module takes \(input1: torch.Tensor, input2: torch.Tensor\).*input_names \['x'\]"),
        (3, "model must be callable"),
    ],
    ids=["a module taking two inputs", "not callable"],
)
def test_a_model_assigned_that_cannot_take_the_inputs_is_refused_and_nothing_changes(replacement: Any, message: str) -> None:
    brick = BrickTrainable(nn.Linear(2, 2), ["x"], ["y"])
    collection = BrickCollection({"layer": brick})
    kept = brick.model
    with pytest.raises(BrickError, match=message):
        brick.model = replacement
    assert brick.model is kept
    torch.testing.assert_close(collection({"x": torch.ones(1, 2)})["y"], kept(torch.ones(1, 2)))
