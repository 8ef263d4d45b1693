"""BrickCollection: running the DAG, tags, nesting, validation, errors, mutation and nn.Module behaviour."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import torch
from helpers import AddConstant, Split
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.wrappers import ClasswiseWrapper

from torchbricks import (
    BrickCollection,
    BrickCycleError,
    BrickLoss,
    BrickMetrics,
    BrickMetricSingle,
    BrickNameError,
    BrickNotTrainable,
    BrickOutputError,
    BrickTensorCache,
    BrickTrainable,
    DuplicateOutputError,
    MissingInputError,
    NamedInputsTypeError,
    NoBricksSelectedError,
    NotABrickError,
    Stage,
)
from torchbricks.errors import BrickBuildError, BrickError, UnknownBrickError


def chain() -> dict[str, Any]:
    return {
        "preprocessor": BrickNotTrainable(AddConstant(1), input_names=["raw"], output_names=["processed"]),
        "backbone": BrickTrainable(AddConstant(10), input_names=["processed"], output_names=["embedding"]),
        "head": BrickTrainable(Split(), input_names=["embedding"], output_names=["logits", "negated"]),
        "loss": BrickLoss(nn.L1Loss(), input_names=["logits", "targets"], output_names=["loss"]),
    }


def two_heads() -> BrickCollection:
    def head(targets: str) -> dict[str, Any]:
        return {
            "classify": BrickTrainable(nn.Linear(4, 3), input_names=["../features"], output_names=["./logits"]),
            "predict": BrickTrainable(ArgMax(), input_names=["./logits"], output_names=["./prediction"]),
            "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=3), input_names=["./prediction", targets]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", targets], output_names=["./loss"]),
        }

    return BrickCollection(
        {
            "backbone": BrickTrainable(nn.Linear(2, 4), input_names=["raw"], output_names=["features"]),
            "head0": head("targets0"),
            "head1": head("targets1"),
        }
    )


class ArgMax(nn.Module):
    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)


def batch(size: int = 4) -> dict[str, torch.Tensor]:
    return {
        "raw": torch.randn(size, 2),
        "targets0": torch.randint(0, 3, (size,)),
        "targets1": torch.randint(0, 3, (size,)),
    }


# --- running ---------------------------------------------------------------------------------------------------


def test_outputs_hold_inputs_then_outputs_in_execution_order() -> None:
    outputs = BrickCollection(chain())({"raw": torch.zeros(2), "targets": torch.zeros(2)})
    assert list(outputs) == ["raw", "targets", "processed", "embedding", "logits", "negated", "loss"]
    torch.testing.assert_close(outputs["logits"], torch.full((2,), 11.0))
    torch.testing.assert_close(outputs["negated"], torch.full((2,), -11.0))


def test_insertion_order_does_not_change_the_result() -> None:
    forward = BrickCollection(chain())
    backward = BrickCollection(dict(reversed(list(chain().items()))))
    inputs = {"raw": torch.randn(3), "targets": torch.randn(3)}
    assert backward.execution_order() == ["preprocessor", "backbone", "head", "loss"]
    expected, actual = forward(inputs), backward(inputs)
    assert list(actual) == list(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name])


def test_return_inputs_false_leaves_the_inputs_out() -> None:
    outputs = BrickCollection(chain())({"raw": torch.zeros(2), "targets": torch.zeros(2)}, return_inputs=False)
    assert list(outputs) == ["processed", "embedding", "logits", "negated", "loss"]


def test_tags_select_the_bricks_that_run() -> None:
    collection = BrickCollection(chain())
    outputs = collection({"raw": torch.zeros(2)}, tags={"MODEL"})
    assert "loss" not in outputs
    assert collection.required_inputs(tags="MODEL") == ["raw"]
    assert collection.required_inputs() == ["raw", "targets"]


def test_a_stage_selects_its_tags() -> None:
    collection = BrickCollection(chain())
    assert collection.execution_order(tags=Stage.EXPORT) == ["preprocessor", "backbone", "head"]
    assert collection.execution_order(tags=Stage.TRAIN) == ["preprocessor", "backbone", "head", "loss"]


def test_output_names_run_only_the_bricks_they_need() -> None:
    bricks = chain()
    collection = BrickCollection(bricks)
    outputs = collection({"raw": torch.zeros(2)}, output_names=["embedding"])
    assert list(outputs) == ["embedding"]
    assert bricks["head"].model is not None
    assert bricks["backbone"].model.calls == 1
    assert collection.execution_order(output_names=["embedding"]) == ["preprocessor", "backbone"]


def test_nested_relative_names_resolve_against_the_brick_place() -> None:
    collection = two_heads()
    outputs = collection(batch())
    assert {"head0/logits", "head0/prediction", "head0/loss", "head1/logits", "head1/loss"} <= set(outputs)
    assert collection.loss_names() == ["head0/loss", "head1/loss"]
    assert list(collection.extract_losses(outputs)) == ["head0/loss", "head1/loss"]


def test_summarize_prefixes_nested_metrics_with_their_path() -> None:
    collection = two_heads()
    data = batch(8)
    outputs = collection(data)
    metrics = collection.summarize(reset=True)
    assert list(metrics) == ["head0/MulticlassAccuracy", "head1/MulticlassAccuracy"]
    reference = MulticlassAccuracy(num_classes=3)
    reference.update(outputs["head0/prediction"], data["targets0"])
    torch.testing.assert_close(metrics["head0/MulticlassAccuracy"], reference.compute())


def test_summarize_keeps_a_top_level_metric_name_bare() -> None:
    collection = BrickCollection(
        {"accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=2), input_names=["p", "t"])},
    )
    collection({"p": torch.tensor([1]), "t": torch.tensor([1])})
    assert list(collection.summarize(reset=False)) == ["MulticlassAccuracy"]


def test_summarize_with_reset_starts_over() -> None:
    collection = two_heads()
    collection(batch())
    collection.summarize(reset=True)
    collection(batch())
    brick = collection["head0"]["accuracy"]
    assert brick.metrics.update_count == 1


def test_two_metric_bricks_reporting_the_same_name_are_rejected() -> None:
    with pytest.raises(BrickBuildError, match=r"Metric bricks 'a' and 'b' both report 'MulticlassAccuracy'.*metric_name"):
        BrickCollection(
            {
                "a": BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["p", "t"]),
                "b": BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["p", "t"]),
            }
        )


def test_two_metric_bricks_whose_dict_values_flatten_to_the_same_names_are_rejected() -> None:
    def per_class() -> ClasswiseWrapper:
        return ClasswiseWrapper(MulticlassAccuracy(num_classes=2, average=None), labels=["cat", "dog"])

    # each brick's MetricCollection flattens its dict into `multiclassaccuracy_cat`, ...: summarize kept only b's
    with pytest.raises(BrickBuildError, match=r"Metric bricks 'a' and 'b' both report 'multiclassaccuracy_cat'.*prefix"):
        BrickCollection(
            {"a": BrickMetrics({"strict": per_class()}, ["p", "t"]), "b": BrickMetrics({"loose": per_class()}, ["q", "t"])}
        )
    prefixed = BrickMetrics(MetricCollection({"loose": per_class()}, prefix="loose_"), ["q", "t"])
    collection = BrickCollection({"a": BrickMetrics({"strict": per_class()}, ["p", "t"]), "b": prefixed})
    p, q, t = torch.tensor([0, 1, 1, 0]), torch.tensor([1, 1, 1, 1]), torch.tensor([0, 1, 0, 1])
    collection({"p": p, "q": q, "t": t})
    summary = collection.summarize(reset=True)
    torch.testing.assert_close(summary["multiclassaccuracy_cat"], per_class()(p, t)["multiclassaccuracy_cat"])
    torch.testing.assert_close(summary["loose_multiclassaccuracy_cat"], per_class()(q, t)["multiclassaccuracy_cat"])


def test_two_bricks_whose_own_summaries_report_the_same_name_are_refused_at_summarize() -> None:
    class Counter(BrickTrainable):  # a brick with its own summarize, as 0.4.2 bricks have
        def summarize(self, reset: bool) -> dict[str, torch.Tensor]:
            return {"count": torch.tensor(1.0)}

    collection = BrickCollection(
        {
            "a": Counter(nn.Identity(), ["x"], ["y"]),
            "b": Counter(nn.Identity(), ["x"], ["z"]),
            "head": {"c": Counter(nn.Identity(), ["x"], ["w"])},
        }
    )
    with pytest.raises(BrickError, match=r"Bricks 'a' and 'b' both report 'count' in summarize\(\), so only one value"):
        collection.summarize(reset=True)
    del collection["b"]
    assert sorted(collection.summarize(reset=True)) == ["count", "head/count"]


def test_all_names_passes_every_value_computed_so_far() -> None:
    seen: list[list[str]] = []

    class Report(nn.Module):
        def forward(self, named: dict[str, Any]) -> int:
            seen.append(sorted(named))
            return len(named)

    collection = BrickCollection(
        {
            "report": BrickNotTrainable(Report(), input_names=["__all__"], output_names=["n"]),
            "twice": BrickTrainable(AddConstant(0), input_names=["x"], output_names=["y"]),
        }
    )
    assert collection({"x": torch.ones(1)})["n"] == 2
    assert seen == [["x", "y"]]


def test_sub_collection_keeps_the_matching_bricks_and_nesting() -> None:
    collection = two_heads()
    model_only = collection.sub_collection(tags="MODEL")
    assert [path for path, _ in model_only.iter_bricks()] == [
        "backbone",
        "head0/classify",
        "head0/predict",
        "head1/classify",
        "head1/predict",
    ]
    assert model_only["head0"]["classify"] is collection["head0"]["classify"]


def test_to_dict_returns_the_nested_bricks() -> None:
    collection = two_heads()
    tree = collection.to_dict()
    assert tree["head1"]["loss"] is collection["head1"]["loss"]
    rebuilt = BrickCollection(tree)
    assert rebuilt.execution_order() == collection.execution_order()


def test_to_dict_keeps_the_nesting_and_key_order_including_an_empty_collection() -> None:
    collection = BrickCollection(
        {
            "empty": {},
            "head": {"b": BrickTrainable(AddConstant(), ["x"], ["y"])},
            "a": BrickTrainable(AddConstant(), ["y"], ["z"]),
        }
    )
    tree = collection.to_dict()
    assert tree == {"empty": {}, "head": {"b": collection["head"]["b"]}, "a": collection["a"]}
    assert list(tree) == ["empty", "head", "a"]


# --- errors ----------------------------------------------------------------------------------------------------


def test_a_missing_input_names_the_brick_the_available_names_and_the_close_match() -> None:
    collection = BrickCollection(chain())
    with pytest.raises(MissingInputError) as info:
        collection({"raw": torch.zeros(1), "target": torch.zeros(1)})
    message = str(info.value)
    assert message.startswith("Brick 'loss' needs input 'targets', which no brick produces and named_inputs lacks.")
    assert "Available: ['embedding', 'logits', 'loss', 'negated', 'processed', 'raw', 'target']" in message
    assert message.endswith("Did you mean 'target'?")


def test_a_missing_input_is_reported_before_any_brick_runs() -> None:
    bricks = chain()
    with pytest.raises(MissingInputError):
        BrickCollection(bricks)({"raw": torch.zeros(1)})
    assert bricks["backbone"].model.calls == 0


def test_a_missing_input_names_the_brick_excluded_by_the_tags() -> None:
    collection = BrickCollection(chain())
    with pytest.raises(
        MissingInputError, match=r"which brick 'head' would produce, but its tags \['MODEL'\] are not selected by tags \['LOSS'\]"
    ):
        collection({"raw": torch.zeros(1), "targets": torch.zeros(1)}, tags="LOSS")


def test_tags_selecting_no_brick_are_rejected() -> None:
    with pytest.raises(NoBricksSelectedError, match=r"Tags \['VISUALIZATION'\] select no brick"):
        BrickCollection(chain())({"raw": torch.zeros(1)}, tags="VISUALIZATION")


def test_named_inputs_must_be_a_dict() -> None:
    with pytest.raises(NamedInputsTypeError, match="named_inputs must be a dict of name -> value, got Tensor"):
        BrickCollection(chain())(torch.zeros(1))  # type: ignore[arg-type]


def test_a_cycle_is_rejected_at_build_naming_its_bricks() -> None:
    with pytest.raises(BrickCycleError, match="'a' -> 'b' -> 'a'"):
        BrickCollection(
            {
                "a": BrickTrainable(AddConstant(), input_names=["y"], output_names=["x"]),
                "b": BrickTrainable(AddConstant(), input_names=["x"], output_names=["y"]),
            }
        )


def test_two_producers_of_a_name_are_rejected_naming_both() -> None:
    with pytest.raises(
        DuplicateOutputError, match="Bricks 'head0/classify' and 'head1/classify' both produce the output 'logits'"
    ):
        BrickCollection(
            {
                "head0": {"classify": BrickTrainable(AddConstant(), ["x"], ["logits"])},
                "head1": {"classify": BrickTrainable(AddConstant(), ["x"], ["logits"])},
            }
        )


def test_a_relative_name_escaping_the_root_is_rejected() -> None:
    with pytest.raises(BrickNameError, match=r"'head/classify' uses the relative name '\.\./\.\./x', which climbs above"):
        BrickCollection({"head": {"classify": BrickTrainable(AddConstant(), ["../../x"], ["y"])}})


def test_a_module_that_is_not_a_brick_is_rejected_with_a_hint() -> None:
    with pytest.raises(NotABrickError, match=r"The value at 'head/classify' is a Linear, not a brick.*BrickTrainable\(Linear"):
        BrickCollection({"head": {"classify": nn.Linear(1, 1)}})


@pytest.mark.parametrize("key", ["a/b", "a.b", ""])
def test_brick_names_with_separators_are_rejected(key: str) -> None:
    with pytest.raises(BrickNameError, match="is invalid"):
        BrickCollection({key: BrickTrainable(AddConstant(), ["x"], ["y"])})


def test_brick_names_clashing_with_collection_attributes_are_rejected() -> None:
    with pytest.raises(BrickNameError, match="Brick name 'forward' clashes with the BrickCollection attribute 'forward'"):
        BrickCollection({"forward": BrickTrainable(AddConstant(), ["x"], ["y"])})


def test_wrong_number_of_outputs_names_the_brick_and_its_outputs() -> None:
    collection = BrickCollection({"split": BrickTrainable(AddConstant(), ["x"], ["a", "b"])})
    with pytest.raises(
        BrickOutputError, match=r"Brick 'split' \(AddConstant\) returned a Tensor, but has 2 output_names \['a', 'b'\]"
    ):
        collection({"x": torch.zeros(2)})


def test_too_many_outputs_names_the_count() -> None:
    collection = BrickCollection({"split": BrickTrainable(Split(), ["x"], ["a", "b", "c"])})
    with pytest.raises(BrickOutputError, match="returned 2 values, but has 3 output_names"):
        collection({"x": torch.zeros(2)})


class _PerImageDetections(nn.Module):
    """A detection model as torchvision's: one dict per image, in a list."""

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": image.new_zeros(1, 4), "scores": image.new_ones(1)} for image in images]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_a_list_is_one_value_also_for_several_output_names_so_per_image_results_are_never_split(compiled: bool) -> None:
    collection = BrickCollection({"detect": BrickTrainable(_PerImageDetections(), ["images"], ["boxes", "scores"])})
    torch._dynamo.reset()
    run = torch.compile(collection, fullgraph=True) if compiled else collection

    # two images and two output names: the list used to be split, image 0's dict as 'boxes', image 1's as 'scores'
    with pytest.raises(
        (BrickOutputError, torch._dynamo.exc.Unsupported), match=r"returned a list of 2 values \(a list is one value"
    ):
        run({"images": torch.rand(2, 3, 4, 4)})
    one = BrickCollection({"detect": BrickTrainable(_PerImageDetections(), ["images"], ["detections"])})
    assert len(one({"images": torch.rand(2, 3, 4, 4)})["detections"]) == 2  # one output name: the list, whole


@pytest.mark.parametrize("output_names", [["y"], ["y", "z"]])
def test_a_brick_returning_none_for_its_outputs_names_the_brick(output_names: list[str]) -> None:
    class Forgot(nn.Module):  # computes, but forgets `return`
        def forward(self, x: torch.Tensor) -> None:
            x + 1

    collection = BrickCollection(
        {"forgot": BrickTrainable(Forgot(), ["x"], output_names), "after": BrickTrainable(AddConstant(), ["y"], ["w"])}
    )
    with pytest.raises(BrickOutputError, match=r"Brick 'forgot' \(Forgot\) returned None, but has output_names") as info:
        collection({"x": torch.zeros(1)}, output_names=output_names)  # not `after`: None would reach the caller
    assert info.value.__notes__ == ["while running brick 'forgot' of a BrickCollection"]


def test_a_brick_error_raised_inside_a_brick_carries_the_brick_name() -> None:
    class Strict(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise BrickError("x must be positive")

    collection = BrickCollection({"head": {"strict": BrickTrainable(Strict(), ["x"], ["y"])}})
    with pytest.raises(BrickError, match="x must be positive") as info:
        collection({"x": torch.zeros(1)})
    assert info.value.__notes__ == ["while running brick 'head/strict' of a BrickCollection"]


def test_an_error_inside_a_brick_carries_the_brick_name() -> None:
    collection = BrickCollection({"linear": BrickTrainable(nn.Linear(3, 1), ["x"], ["y"])})
    with pytest.raises(RuntimeError) as info:
        collection({"x": torch.zeros(2, 5)})
    assert "while running brick 'linear'" in "".join(info.value.__notes__)


# --- mutation --------------------------------------------------------------------------------------------------


def test_adding_a_brick_updates_the_plan() -> None:
    collection = BrickCollection(chain())
    collection({"raw": torch.zeros(1), "targets": torch.zeros(1)})
    collection["extra"] = BrickTrainable(AddConstant(5), ["logits"], ["shifted"])
    assert "shifted" in collection({"raw": torch.zeros(1), "targets": torch.zeros(1)})


def test_a_mutation_creating_a_cycle_is_rejected_and_undone() -> None:
    collection = BrickCollection(chain())
    with pytest.raises(BrickCycleError):
        collection["preprocessor"] = BrickTrainable(AddConstant(), ["negated"], ["processed"])
    assert collection["preprocessor"].model.constant == 1
    assert collection.execution_order()[0] == "preprocessor"


def test_a_mutation_adding_a_duplicate_producer_is_undone() -> None:
    collection = BrickCollection(chain())
    with pytest.raises(DuplicateOutputError):
        collection["copy"] = BrickTrainable(AddConstant(), ["raw"], ["embedding"])
    assert "copy" not in collection


def test_update_keeps_none_of_the_bricks_when_one_is_invalid() -> None:
    collection = BrickCollection(chain())
    with pytest.raises(DuplicateOutputError):
        collection.update(
            {
                "fine": BrickTrainable(AddConstant(), ["logits"], ["fine"]),
                "clash": BrickTrainable(AddConstant(), ["raw"], ["loss"]),
            }
        )
    assert list(collection) == ["preprocessor", "backbone", "head", "loss"]
    collection.update({"fine": BrickTrainable(AddConstant(), ["logits"], ["fine"])})
    assert "fine" in collection({"raw": torch.zeros(1), "targets": torch.zeros(1)})


@pytest.mark.parametrize("into", ["itself", "its nested collection"])
def test_a_collection_put_into_itself_is_refused_and_leaves_the_tree_as_it_was(into: str) -> None:
    collection = BrickCollection(
        {
            "backbone": BrickTrainable(nn.Identity(), ["x"], ["features"]),
            "head": {"c": BrickTrainable(nn.Identity(), ["../features"], ["./y"])},
        }
    )
    target = collection if into == "itself" else collection["head"]

    with pytest.raises(BrickBuildError, match="a tree cannot hold itself"):
        target["loop"] = collection

    assert [path for path, _ in collection.iter_bricks()] == ["backbone", "head/c"]
    assert sorted(collection({"x": torch.ones(1)})) == ["features", "head/y", "x"]


def test_a_nested_collection_run_on_its_own_says_its_relative_names_resolve_from_it() -> None:
    collection = BrickCollection(
        {
            "backbone": BrickTrainable(nn.Identity(), ["x"], ["features"]),
            "head": {"classify": BrickTrainable(nn.Identity(), ["../features"], ["./logits"])},
        }
    )

    with pytest.raises(BrickNameError, match="climbs above the root collection") as error:
        collection["head"]({"features": torch.ones(1)})

    assert error.value.__notes__ == [
        "This collection is nested (under the key 'head'), and relative names resolve from the collection that is run: "
        "run the outer collection instead, with output_names=[...] to run only this part."
    ]
    assert list(collection({"x": torch.ones(1)}, output_names=["head/logits"])) == ["head/logits"]


def test_mutating_a_nested_collection_is_validated_at_the_root() -> None:
    collection = two_heads()
    with pytest.raises(DuplicateOutputError, match="'backbone' and 'head0/again' both produce the output 'features'"):
        collection["head0"]["again"] = BrickTrainable(AddConstant(), ["raw"], ["features"])
    assert "again" not in collection["head0"]


def test_mutating_a_nested_collection_invalidates_the_root_plan() -> None:
    collection = two_heads()
    collection(batch())
    collection["head0"]["extra"] = BrickTrainable(AddConstant(), ["./logits"], ["./shifted"])
    assert "head0/shifted" in collection(batch())
    del collection["head0"]["extra"]
    assert "head0/shifted" not in collection(batch())


def test_replacing_a_brick_model_is_seen_by_the_next_call() -> None:
    collection = BrickCollection(chain())
    inputs = {"raw": torch.zeros(1), "targets": torch.zeros(1)}
    collection(inputs)
    collection["backbone"].model = AddConstant(100)
    assert collection(inputs)["embedding"].item() == 101.0


def test_deleting_a_brick_as_an_attribute_is_seen_by_the_next_call() -> None:
    collection = BrickCollection(chain())
    inputs = {"raw": torch.zeros(1), "targets": torch.zeros(1)}
    collection(inputs)  # fills the plan cache
    del collection.loss
    assert "loss" not in collection
    assert "loss" not in collection(inputs)


@pytest.mark.parametrize("swap", ["add_module", "register_module"])
def test_swapping_a_brick_model_through_add_module_is_seen_by_the_next_call(swap: str) -> None:
    collection = BrickCollection(chain())
    inputs = {"raw": torch.zeros(1), "targets": torch.zeros(1)}
    collection(inputs)
    getattr(collection["backbone"], swap)("model", AddConstant(100))
    assert collection(inputs)["embedding"].item() == 101.0


def test_a_module_swapped_through_modules_dict_is_seen_by_the_next_call() -> None:
    """As torch.ao.quantization's in-place convert swaps a module: `module._modules[key] = new`, past `__setattr__`."""
    collection = BrickCollection(chain())
    inputs = {"raw": torch.zeros(1), "targets": torch.zeros(1)}
    collection(inputs)  # fills the plan cache
    collection["backbone"]._modules["model"] = AddConstant(100)
    assert collection(inputs)["embedding"].item() == 101.0


def test_deleting_a_brick_model_is_seen_by_the_next_call() -> None:
    collection = BrickCollection(chain())
    inputs = {"raw": torch.zeros(1), "targets": torch.zeros(1)}
    collection(inputs)
    del collection["backbone"].model
    with pytest.raises(AttributeError, match="model"):
        collection(inputs)


def test_a_mistyped_brick_key_names_the_keys_and_the_close_match() -> None:
    collection = two_heads()
    with pytest.raises(
        UnknownBrickError, match=r"has no brick or collection 'backbon'. Keys: \['backbone', .*Did you mean 'backbone'\?"
    ):
        collection["backbon"]
    with pytest.raises(UnknownBrickError, match=r"BrickCollection 'head0' has no brick or collection 'clasify'.*'classify'"):
        collection["head0"]["clasify"]
    with pytest.raises(KeyError, match="Did you mean 'backbone'"):  # still a KeyError, as for a dict
        del collection["bakbone"]


def test_a_nested_brick_path_as_a_key_says_how_to_index_it() -> None:
    with pytest.raises(
        UnknownBrickError, match=r"holds 'head0/classify' nested: index it as collection\['head0'\]\['classify'\]"
    ):
        two_heads()["head0/classify"]


def test_assigning_a_module_attribute_goes_through_validation() -> None:
    collection = BrickCollection(chain())
    with pytest.raises(NotABrickError):
        collection.extra = nn.Linear(1, 1)


# --- changes written straight into `_modules` (model surgery) ----------------------------------------------------
# Model-surgery code (torch.ao.quantization's convert, users' "replace module" helpers) writes `parent._modules[name]`
# past `__setitem__`; such a change must reach the cached plans as `collection[name] = ...` does, eager and compiled.


def _chain_inputs() -> dict[str, torch.Tensor]:
    return {"raw": torch.zeros(1), "targets": torch.zeros(1)}


def _compiled_or_not(collection: BrickCollection, compiled: bool) -> Any:
    torch._dynamo.reset()
    return torch.compile(collection, fullgraph=True, backend="eager") if compiled else collection


def _shift() -> BrickTrainable:
    return BrickTrainable(AddConstant(5), ["logits"], ["shifted"])


ADD_ROUTES = {
    "item": lambda collection: collection._modules.__setitem__("extra", _shift()),
    "dict_update": lambda collection: collection._modules.update({"extra": _shift()}),
    "dict_update_keywords": lambda collection: collection._modules.update(extra=_shift()),
    "setdefault": lambda collection: collection._modules.setdefault("extra", _shift()),
    "in_place_or": lambda collection: collection._modules.__ior__({"extra": _shift()}),
    "module_dict_update_pairs": lambda collection: collection.update([("extra", _shift())]),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("route", ADD_ROUTES)
def test_a_brick_added_through_the_modules_dict_runs_in_the_next_call(route: str, compiled: bool) -> None:
    collection = BrickCollection(chain())
    run = _compiled_or_not(collection, compiled)
    assert "shifted" not in run(_chain_inputs())  # fills the plan cache (and compiles)
    ADD_ROUTES[route](collection)
    outputs = run(_chain_inputs())
    torch.testing.assert_close(outputs["shifted"], torch.tensor([16.0]))  # raw 0 + 1 + 10 is logits 11, + 5
    assert collection.execution_order()[-1] == "extra"


REPLACE_ROUTES = {
    "item": lambda collection, brick: collection._modules.__setitem__("backbone", brick),
    "dict_update": lambda collection, brick: collection._modules.update(backbone=brick),
    "in_place_or": lambda collection, brick: collection._modules.__ior__({"backbone": brick}),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("route", REPLACE_ROUTES)
def test_a_brick_replaced_through_the_modules_dict_runs_in_the_next_call(route: str, compiled: bool) -> None:
    collection = BrickCollection(chain())
    run = _compiled_or_not(collection, compiled)
    run(_chain_inputs())
    replacement = BrickTrainable(AddConstant(100), input_names=["processed"], output_names=["embedding"])
    REPLACE_ROUTES[route](collection, replacement)
    torch.testing.assert_close(run(_chain_inputs())["embedding"], torch.tensor([101.0]))
    assert collection["backbone"] is replacement


DELETE_ROUTES = {
    "del_item": lambda collection: collection._modules.__delitem__("loss"),
    "dict_pop": lambda collection: collection._modules.pop("loss"),
    "dict_popitem": lambda collection: collection._modules.popitem(),
    "module_dict_pop": lambda collection: collection.pop("loss"),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("route", DELETE_ROUTES)
def test_a_brick_deleted_through_the_modules_dict_no_longer_runs(route: str, compiled: bool) -> None:
    collection = BrickCollection(chain())
    run = _compiled_or_not(collection, compiled)
    assert "loss" in run(_chain_inputs())
    DELETE_ROUTES[route](collection)
    assert list(collection) == ["preprocessor", "backbone", "head"]
    assert set(run(_chain_inputs())) == {"raw", "targets", "processed", "embedding", "logits", "negated"}


@pytest.mark.parametrize("route", ["dict_clear", "module_dict_clear"])
def test_clearing_the_modules_dict_leaves_no_brick_to_run(route: str) -> None:
    collection = BrickCollection(chain())
    collection(_chain_inputs())
    (collection._modules if route == "dict_clear" else collection).clear()
    assert list(collection) == []
    with pytest.raises(NoBricksSelectedError, match="The collection holds no brick"):  # as a collection built empty
        collection(_chain_inputs())
    with pytest.raises(NoBricksSelectedError, match="The collection holds no brick, so a call has nothing to run"):
        BrickCollection({})(_chain_inputs())


def test_popping_a_missing_key_from_the_modules_dict_behaves_as_a_dict() -> None:
    collection = BrickCollection(chain())
    assert collection._modules.pop("absent", None) is None
    with pytest.raises(KeyError):
        collection._modules.pop("absent")
    assert collection._modules.setdefault("loss", _shift()) is collection["loss"]  # present: kept, not replaced


def test_a_brick_written_into_the_modules_dict_is_validated_and_refused_as_through_setitem() -> None:
    collection = two_heads()
    collection(batch())
    clash = BrickTrainable(AddConstant(), ["raw"], ["features"])
    with pytest.raises(DuplicateOutputError, match="'backbone' and 'head0/again' both produce the output 'features'"):
        collection["head0"]._modules["again"] = clash
    with pytest.raises(DuplicateOutputError, match="'backbone' and 'again' both produce the output 'features'"):
        collection._modules.update({"fine": _shift(), "again": clash})
    with pytest.raises(NotABrickError, match=r"The value at 'head1/linear' is a Linear, not a brick.*BrickTrainable\(Linear"):
        collection["head1"]._modules["linear"] = nn.Linear(2, 2)
    with pytest.raises(BrickNameError, match=r"Brick name 'head1/a\.b' is invalid"):
        collection["head1"]._modules["a.b"] = _shift()
    assert list(collection) == ["backbone", "head0", "head1"]  # nothing of a refused write is kept
    assert list(collection["head0"]) == list(collection["head1"]) == ["classify", "predict", "accuracy", "loss"]
    assert "again" not in collection(batch())


def test_writing_back_the_bricks_a_collection_holds_changes_nothing() -> None:
    """torch.ao.quantization's convert writes every child back (`module._modules[name] = swap_module(child)`)."""
    collection = BrickCollection(chain())
    plan = collection.compiled_plan()
    for key, value in list(collection._modules.items()):
        collection._modules[key] = value
    assert collection.compiled_plan() is plan


def test_dynamic_quantization_in_place_runs_the_quantized_modules() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    reference = torch.ao.quantization.quantize_dynamic(copy.deepcopy(nn.Sequential(linear)), {nn.Linear}, torch.qint8)
    collection = BrickCollection({"head": {"classify": BrickTrainable(linear, ["x"], ["logits"])}})
    x = torch.randn(5, 4)
    collection({"x": x})  # fills the plan cache
    torch.ao.quantization.quantize_dynamic(collection, {nn.Linear}, torch.qint8, inplace=True)
    assert type(collection["head"]["classify"].model).__module__.startswith("torch.ao.nn.quantized")
    torch.testing.assert_close(collection({"x": x})["logits"], reference(x))


SWAP_ROUTES = {
    "item": lambda brick, module: brick._modules.__setitem__("model", module),
    "dict_update": lambda brick, module: brick._modules.update(model=module),
    "in_place_or": lambda brick, module: brick._modules.__ior__({"model": module}),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("route", SWAP_ROUTES)
def test_a_brick_module_swapped_through_its_modules_dict_runs_in_the_next_call(route: str, compiled: bool) -> None:
    collection = BrickCollection(chain())
    run = _compiled_or_not(collection, compiled)
    run(_chain_inputs())
    SWAP_ROUTES[route](collection["backbone"], AddConstant(100))
    torch.testing.assert_close(run(_chain_inputs())["embedding"], torch.tensor([101.0]))


@pytest.mark.parametrize("route", ["dict_pop", "dict_popitem", "dict_clear"])
def test_a_brick_module_deleted_through_its_modules_dict_is_not_run(route: str) -> None:
    collection = BrickCollection(chain())
    collection(_chain_inputs())
    modules = collection["backbone"]._modules
    {"dict_pop": lambda: modules.pop("model"), "dict_popitem": modules.popitem, "dict_clear": modules.clear}[route]()
    with pytest.raises(AttributeError, match="model"):
        collection(_chain_inputs())


@pytest.mark.parametrize("copier", ["deepcopy", "copy", "pickle"])
def test_a_copy_sees_changes_written_into_its_own_modules_dict_only(copier: str) -> None:
    collection = BrickCollection(chain())
    collection(_chain_inputs())
    twin = {"deepcopy": copy.deepcopy, "copy": copy.copy, "pickle": lambda c: pickle.loads(pickle.dumps(c))}[copier](collection)
    twin._modules["extra"] = _shift()
    del twin._modules["loss"]
    assert set(twin(_chain_inputs())) == {"raw", "targets", "processed", "embedding", "logits", "negated", "shifted"}
    assert list(collection) == ["preprocessor", "backbone", "head", "loss"]
    assert "shifted" not in collection(_chain_inputs())
    assert "loss" in collection(_chain_inputs())


# --- nn.Module behaviour ---------------------------------------------------------------------------------------


def test_state_dict_round_trips_into_a_fresh_collection() -> None:
    source, target = two_heads(), two_heads()
    target.load_state_dict(source.state_dict())
    data = batch()
    torch.testing.assert_close(target(data)["head1/logits"], source(data)["head1/logits"])


def test_to_moves_parameters_and_precision() -> None:
    collection = two_heads().to(torch.float64)
    data = batch()
    data["raw"] = data["raw"].double()
    assert collection(data)["head0/logits"].dtype == torch.float64


def test_gradients_reach_every_trainable_brick() -> None:
    collection = two_heads()
    losses = collection.extract_losses(collection(batch()))
    sum(losses.values()).backward()
    assert all(parameter.grad is not None for parameter in collection.parameters())


def test_a_deep_copy_runs_its_own_modules() -> None:
    collection = two_heads()
    data = batch()
    collection(data)  # fills the plan cache
    twin = copy.deepcopy(collection)
    with torch.no_grad():
        twin["backbone"].model.weight.zero_()
        twin["backbone"].model.bias.zero_()
    assert twin(data)["features"].abs().sum() == 0
    assert collection(data)["features"].abs().sum() > 0


def test_a_shallow_copy_gets_its_own_bricks_dict_and_the_original_runs_what_it_holds() -> None:
    collection = BrickCollection(chain())
    inputs = {"raw": torch.zeros(1), "targets": torch.zeros(1)}
    collection(inputs)  # fills the plan cache
    twin = copy.copy(collection)
    twin["extra"] = BrickTrainable(AddConstant(), ["logits"], ["extra"])
    del twin["loss"]
    assert list(collection) == ["preprocessor", "backbone", "head", "loss"]
    assert set(collection(inputs)) == {"raw", "targets", "processed", "embedding", "logits", "negated", "loss"}
    twin_outputs = twin(inputs)
    assert "extra" in twin_outputs
    assert "loss" not in twin_outputs
    assert twin["backbone"] is collection["backbone"]


def test_a_module_assigned_to_a_shallow_copy_of_a_brick_leaves_the_original_running_its_own() -> None:
    collection = BrickCollection(chain())
    inputs = {"raw": torch.zeros(1), "targets": torch.zeros(1)}
    embedding = collection(inputs)["embedding"].item()
    twin = copy.copy(collection["backbone"])
    twin.model = AddConstant(100)
    assert collection["backbone"].model is not twin.model
    assert collection(inputs)["embedding"].item() == embedding


def test_a_pickled_collection_runs_and_validates_nested_mutations() -> None:
    collection = two_heads()
    collection(batch())
    restored = pickle.loads(pickle.dumps(collection))
    assert restored(batch())["head0/logits"].shape == (4, 3)
    with pytest.raises(DuplicateOutputError):
        restored["head1"]["dup"] = BrickTrainable(AddConstant(), ["raw"], ["features"])


@pytest.mark.parametrize("tags", [None, {"MODEL"}, {"MODEL", "LOSS"}, Stage.TRAIN, Stage.VALIDATION, Stage.EXPORT])
def test_compile_fullgraph_matches_eager_for_every_tag_set(tags: Any) -> None:
    torch._dynamo.reset()
    collection = two_heads()
    data = batch()
    compiled = torch.compile(collection, fullgraph=True, backend="eager")
    expected, actual = collection(data, tags=tags), compiled(data, tags=tags)
    assert list(actual) == list(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name])


@pytest.mark.slow
def test_compile_fullgraph_updates_metrics() -> None:
    torch._dynamo.reset()
    collection = two_heads()
    compiled = torch.compile(collection, fullgraph=True, backend="aot_eager")
    data = batch(8)
    outputs = compiled(data, tags=Stage.TRAIN)
    compiled(data, tags=Stage.TRAIN)
    brick = collection["head0"]["accuracy"]
    assert brick.metrics.update_count == 2
    reference = MulticlassAccuracy(num_classes=3)
    reference.update(outputs["head0/prediction"], data["targets0"])
    torch.testing.assert_close(collection.summarize(reset=True)["head0/MulticlassAccuracy"], reference.compute())
    sum(collection.extract_losses(outputs).values()).backward()
    assert collection["backbone"].model.weight.grad is not None


@pytest.mark.slow
def test_compile_fullgraph_fills_a_tensor_cache() -> None:
    torch._dynamo.reset()
    collection = two_heads()
    collection["features_cache"] = BrickTensorCache(input_names=["features"])
    compiled = torch.compile(collection, fullgraph=True, backend="aot_eager")
    first, second = compiled(batch(3), tags=Stage.VALIDATION), compiled(batch(2), tags=Stage.VALIDATION)
    cached = collection["features_cache"].cached()["features"]
    torch.testing.assert_close(cached, torch.cat([first["features"], second["features"]]).detach())


EAGER_MISSING_INPUT_MESSAGE = (
    "Brick 'loss' needs input 'targets', which no brick produces and named_inputs lacks. "
    "Available: ['embedding', 'logits', 'loss', 'negated', 'processed', 'raw', 'target']. Did you mean 'target'?"
)


def test_a_missing_input_under_compile_fullgraph_gets_the_eager_message() -> None:
    torch._dynamo.reset()
    collection = BrickCollection(chain())
    data = {"raw": torch.zeros(1), "target": torch.zeros(1)}
    with pytest.raises(MissingInputError) as eager:
        collection(data)
    assert str(eager.value) == EAGER_MISSING_INPUT_MESSAGE
    # fullgraph=True cannot let an exception out of the graph, so dynamo reports it, quoting our error
    with pytest.raises(torch._dynamo.exc.Unsupported) as compiled:
        torch.compile(collection, fullgraph=True, backend="eager")(data)
    assert f"MissingInputError({EAGER_MISSING_INPUT_MESSAGE!r})" in str(compiled.value)


def test_a_missing_input_under_compile_without_fullgraph_raises_the_eager_error() -> None:
    torch._dynamo.reset()
    collection = BrickCollection(chain())
    with pytest.raises(MissingInputError) as info:
        torch.compile(collection, backend="eager")({"raw": torch.zeros(1), "target": torch.zeros(1)})
    assert str(info.value) == EAGER_MISSING_INPUT_MESSAGE


@pytest.mark.slow
def test_compiling_a_collection_with_tags_keeps_the_inductor_cache_key_picklable(caplog: pytest.LogCaptureFixture) -> None:
    # 30 bricks make the graph deep enough for inductor's pickler to meet a tag set twice, which it cannot do
    # when the set is part of the graph's input sources
    torch._dynamo.reset()
    collection = BrickCollection({f"linear{i}": BrickTrainable(nn.Linear(2, 2), [f"x{i}"], [f"x{i + 1}"]) for i in range(30)})
    compiled = torch.compile(collection, fullgraph=True)
    data = {"x0": torch.randn(3, 2)}
    with caplog.at_level("WARNING", logger="torch._inductor"), torch.no_grad():
        outputs = compiled(data, tags=Stage.TRAIN)
        expected = collection(data, tags=Stage.TRAIN)
    torch.testing.assert_close(outputs["x30"], expected["x30"])
    assert not [record for record in caplog.records if "pickle" in record.getMessage()]


def test_output_names_free_intermediates_once_nothing_reads_them() -> None:
    import weakref

    alive: list[weakref.ref[torch.Tensor]] = []

    class Remember(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = x + 1
            alive.append(weakref.ref(out))
            return out

    class Check(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert alive[0]() is None, "the first intermediate should be freed by now"
            return x * 2

    collection = BrickCollection(
        {
            "first": BrickTrainable(Remember(), ["x"], ["a"]),
            "second": BrickTrainable(Remember(), ["a"], ["b"]),
            "third": BrickTrainable(Check(), ["b"], ["c"]),
        }
    )
    with torch.no_grad():
        outputs = collection({"x": torch.zeros(2)}, output_names=["c"])
    torch.testing.assert_close(outputs["c"], torch.full((2,), 4.0))


def test_compile_fullgraph_matches_eager_for_keywords_all_names_several_outputs_and_output_names() -> None:
    torch._dynamo.reset()

    def keys_of(everything: dict[str, Any], scale: torch.Tensor) -> torch.Tensor:
        return scale * len(everything)

    collection = BrickCollection(
        {
            "split": BrickTrainable(Split(), ["x"], ["a", "b"]),
            "add": BrickTrainable(AddConstant(2), ["a", "b"], ["c"]),
            "count": BrickTrainable(keys_of, {"everything": "__all__", "scale": "c"}, ["n"]),
        }
    )
    compiled = torch.compile(collection, fullgraph=True, backend="eager")
    data = {"x": torch.arange(3.0)}
    for kwargs in ({}, {"output_names": ["c"]}, {"return_inputs": False}):
        expected, actual = collection(data, **kwargs), compiled(data, **kwargs)
        assert list(actual) == list(expected)
        for name in expected:
            torch.testing.assert_close(actual[name], expected[name])


@pytest.mark.parametrize("compiled", [False, True])
def test_a_named_input_a_brick_produces_is_refused_naming_the_brick_and_its_readers(compiled: bool) -> None:
    from torchbricks import ShadowedInputError

    collection = BrickCollection(chain())
    run = torch.compile(collection, fullgraph=True, backend="eager") if compiled else collection
    inputs = {"raw": torch.ones(2), "targets": torch.zeros(2)}

    expected = ShadowedInputError if not compiled else Exception  # dynamo wraps it, with the message
    with pytest.raises(expected, match=r"gives 'embedding', which brick 'backbone' produces.*\['head'\] would read"):
        run(named_inputs={**inputs, "embedding": torch.zeros(2)})
    assert set(run(named_inputs={**inputs, "extra": 1})) >= {"extra", "embedding"}  # an unused extra name is fine
    losses_only = run(named_inputs={**inputs, "logits": torch.zeros(2)}, tags="LOSS")  # its producer is not selected
    assert float(losses_only["loss"]) == 0.0


@pytest.mark.parametrize("compiled", [False, True])
def test_a_tuple_returned_for_one_output_name_is_refused_at_the_brick_that_returned_it(compiled: bool) -> None:
    collection = BrickCollection(
        {
            "head": BrickTrainable(Split(), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.L1Loss(), input_names=["logits", "targets"], output_names=["loss"]),
        }
    )
    run = torch.compile(collection, fullgraph=True, backend="eager") if compiled else collection

    with pytest.raises(
        Exception, match=r"Brick 'head' \(.*\) returned a tuple of 2 values, but has one output name \['logits'\]"
    ):
        run(named_inputs={"raw": torch.ones(2), "targets": torch.zeros(2)})


def test_an_unknown_output_name_lists_what_the_bricks_produce_and_the_close_name() -> None:
    collection = BrickCollection(chain())

    with pytest.raises(MissingInputError, match=r"output_names include 'logit'.*'logits'.*Did you mean 'logits'") as raised:
        collection(named_inputs={"raw": torch.ones(2)}, output_names=["logit"])
    assert "'embedding'" in str(raised.value)  # every name the selected bricks produce, though none was kept


def test_an_error_met_while_planning_is_not_chained_to_an_internal_lookup() -> None:
    collection = BrickCollection(chain())

    with pytest.raises(NoBricksSelectedError) as raised:
        collection(named_inputs={"raw": torch.ones(2)}, tags="train")
    assert raised.value.__context__ is None
