"""A collection under torch.compile(fullgraph=True): the same step table, results, errors and notes as an eager call."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers import AddConstant, Split
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from torchbricks import BrickCollection, BrickLoss, BrickMetricSingle, BrickOutputError, BrickTrainable


def _three_values() -> BrickCollection:
    return BrickCollection({"head": {"split": BrickTrainable(Split(), ["x"], ["./a", "./b", "./c"])}})


def _value_without_output_names() -> BrickCollection:
    return BrickCollection({"head": {"lost": BrickTrainable(AddConstant(), ["x"], [])}})


def _loss_per_element() -> BrickCollection:
    return BrickCollection({"head": {"loss": BrickLoss(nn.MSELoss(reduction="none"), ["x", "x"], ["./loss"])}})


BAD_BRICKS = {  # case -> (collection, the error message, the brick its note names)
    "returns two values for three output names": (_three_values, "returned 2 values, but has 3 output_names", "head/split"),
    "returns a value but has no output names": (_value_without_output_names, "returned a value, but has no output", "head/lost"),
    "returns a loss that is not one value": (_loss_per_element, r"returned the loss 'head/loss' with shape \[3\]", "head/loss"),
}


@pytest.mark.parametrize("case", BAD_BRICKS, ids=list(BAD_BRICKS))
def test_a_bad_brick_raises_the_same_message_and_note_eagerly_and_under_compile_fullgraph(case: str) -> None:
    make, expected, path = BAD_BRICKS[case]
    torch._dynamo.reset()
    data = {"x": torch.arange(3.0)}
    with pytest.raises(BrickOutputError, match=expected) as eager:
        make()(data)
    message, notes = str(eager.value), eager.value.__notes__
    assert notes == [f"while running brick {path!r} of a BrickCollection"]

    # fullgraph=True lets no exception out of the graph: dynamo raises its own error, quoting ours with its note
    with pytest.raises(torch._dynamo.exc.Unsupported) as compiled:
        torch.compile(make(), fullgraph=True, backend="eager")(data)
    assert f"BrickOutputError({message!r}, {notes[0]!r})" in str(compiled.value)


def test_a_bad_brick_under_compile_without_fullgraph_raises_the_eager_error_and_note() -> None:
    torch._dynamo.reset()
    with pytest.raises(BrickOutputError, match="returned 2 values, but has 3 output_names") as info:
        torch.compile(_three_values(), backend="eager")({"x": torch.arange(3.0)})
    assert info.value.__notes__ == ["while running brick 'head/split' of a BrickCollection"]


def _scaled_chain(scale: float) -> BrickCollection:
    return BrickCollection(
        {
            "first": BrickTrainable(AddConstant(scale), ["x"], ["y"]),
            "second": BrickTrainable(AddConstant(2 * scale), ["y"], ["z"]),
        }
    )


def test_collections_of_one_structure_compiled_side_by_side_each_run_their_own_bricks() -> None:
    torch._dynamo.reset()
    first, second = _scaled_chain(1.0), _scaled_chain(10.0)
    compiled_first = torch.compile(first, fullgraph=True, backend="eager")
    compiled_second = torch.compile(second, fullgraph=True, backend="eager")
    x = torch.zeros(2)
    for _ in range(2):
        torch.testing.assert_close(compiled_first({"x": x})["z"], torch.full((2,), 3.0))
        torch.testing.assert_close(compiled_second({"x": x})["z"], torch.full((2,), 30.0))


def test_a_brick_added_after_compiling_runs_in_the_next_compiled_call() -> None:
    torch._dynamo.reset()
    collection = _scaled_chain(1.0)
    compiled = torch.compile(collection, fullgraph=True, backend="eager")
    assert list(compiled({"x": torch.zeros(1)})) == ["x", "y", "z"]
    collection["third"] = BrickTrainable(AddConstant(100), ["z"], ["w"])
    outputs = compiled({"x": torch.zeros(1)})
    assert list(outputs) == ["x", "y", "z", "w"]
    torch.testing.assert_close(outputs["w"], torch.tensor([103.0]))


# --- what a compiled call guards: the structure, not the collection ---------------------------------------------------


def _classifier() -> BrickCollection:
    """A model, a loss and a metric, as a training stage runs them."""
    return BrickCollection(
        {
            "model": BrickTrainable(nn.Linear(4, 3), ["x"], ["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), ["logits", "targets"], ["ce"]),
            "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=3), ["logits", "targets"]),
        }
    )


class _HandWrittenClassifier(nn.Module):
    """What `_classifier` computes, written by hand (the metric updated eagerly, as dynamo cannot trace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Linear(4, 3)
        self.loss = nn.CrossEntropyLoss()

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.model(named_inputs["x"])
        return {**named_inputs, "logits": logits, "ce": self.loss(logits, named_inputs["targets"])}


def _batch() -> dict[str, torch.Tensor]:
    return {"x": torch.rand(5, 4, generator=torch.Generator().manual_seed(0)), "targets": torch.tensor([0, 1, 2, 0, 1])}


def _graphs_compiled() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


@pytest.mark.parametrize("kind", ["collection", "hand-written"])
def test_twelve_models_built_alike_each_compiled_and_called_compile_once(kind: str) -> None:
    # a model per fold, or Lightning's stage views rebuilt at every fit/validate/test: dynamo's recompile limit is 8
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    batch = _batch()
    for _ in range(12):
        model = _classifier() if kind == "collection" else _HandWrittenClassifier()
        outputs = torch.compile(model, fullgraph=True, backend="eager")(batch)
        expected = model(batch)
        torch.testing.assert_close(outputs["ce"], expected["ce"])
        del model  # the models of earlier folds are gone: their compiled code must not count against the next
    assert _graphs_compiled() == 1


def test_a_brick_replaced_twelve_times_by_one_wired_alike_compiles_once_as_a_hand_written_module_does() -> None:
    # re-initializing a head (a new module, the same wiring) is no change of structure
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    collection, hand_written = _classifier(), _HandWrittenClassifier()
    compiled_collection = torch.compile(collection, fullgraph=True, backend="eager")
    compiled_hand_written = torch.compile(hand_written, fullgraph=True, backend="eager")
    batch = _batch()
    for _ in range(12):
        collection["model"] = BrickTrainable(nn.Linear(4, 3), ["x"], ["logits"])
        hand_written.model = nn.Linear(4, 3)
        torch.testing.assert_close(compiled_collection(batch)["logits"], collection["model"].model(batch["x"]))
        torch.testing.assert_close(compiled_hand_written(batch)["logits"], hand_written.model(batch["x"]))
    assert _graphs_compiled() == 2


def test_a_brick_replaced_twelve_times_through_the_modules_dict_compiles_once_and_runs_each_new_brick() -> None:
    # model surgery writes `parent._modules[name] = new`: the same structure, so no recompile, but the new module runs
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    collection = _classifier()
    compiled = torch.compile(collection, fullgraph=True, backend="eager")
    batch = _batch()
    for _ in range(12):
        collection._modules["model"] = BrickTrainable(nn.Linear(4, 3), ["x"], ["logits"])
        torch.testing.assert_close(compiled(batch)["logits"], collection["model"].model(batch["x"]))
    assert _graphs_compiled() == 1


def _survived_changes(compiled: Any, change: Any, data: dict[str, torch.Tensor]) -> int:
    """How many of 12 changes a compiled module survives, each followed by a compiled call."""
    for count in range(12):
        change(count)
        try:
            compiled(data)
        except torch._dynamo.exc.FailOnRecompileLimitHit:
            return count
    return 12


def test_a_collection_survives_as_many_added_bricks_as_a_hand_written_module_survives_added_layers() -> None:
    # every brick added is a new structure, so each recompiles; no more often than a hand-written module
    torch._dynamo.reset()
    collection = BrickCollection({"first": BrickTrainable(AddConstant(1.0), ["x"], ["y0"])})

    def add_brick(count: int) -> None:
        collection[f"added{count}"] = BrickTrainable(nn.Identity(), [f"y{count}"], [f"y{count + 1}"])

    hand_written = _Layers()

    def add_layer(count: int) -> None:
        hand_written.layers.append(nn.Identity())

    data = {"x": torch.zeros(2)}
    survived = _survived_changes(torch.compile(collection, fullgraph=True, backend="eager"), add_brick, data)
    torch._dynamo.reset()
    survived_by_hand = _survived_changes(torch.compile(hand_written, fullgraph=True, backend="eager"), add_layer, data)
    assert survived >= survived_by_hand
    torch.testing.assert_close(collection(data)[f"y{survived}"], torch.ones(2))


class _Layers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList()

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        value = named_inputs["x"] + 1
        for layer in self.layers:
            value = layer(value)
        return {"y": value}


def _wired(second_reads: str, tags: str = "MODEL") -> BrickCollection:
    return BrickCollection(
        {
            "first": BrickTrainable(AddConstant(1.0), ["x"], ["y"]),
            "second": BrickTrainable(AddConstant(10.0), [second_reads], ["z"], tags=tags),
        }
    )


def test_collections_wired_differently_compiled_side_by_side_each_give_their_own_eager_result() -> None:
    torch._dynamo.reset()
    reads_y, reads_x = _wired("y"), _wired("x")
    compiled = [(collection, torch.compile(collection, fullgraph=True, backend="eager")) for collection in (reads_y, reads_x)]
    x = torch.zeros(2)
    for _ in range(2):
        for collection, run in compiled:
            outputs, expected = run({"x": x}), collection({"x": x})
            assert list(outputs) == list(expected)
            for name, value in expected.items():
                torch.testing.assert_close(outputs[name], value)
    torch.testing.assert_close(reads_y({"x": x})["z"], torch.full((2,), 11.0))
    torch.testing.assert_close(reads_x({"x": x})["z"], torch.full((2,), 10.0))


def test_collections_alike_that_planned_their_calls_in_another_order_each_run_the_plan_asked_for() -> None:
    torch._dynamo.reset()
    first, second = _wired("y", tags="LOSS"), _wired("y", tags="LOSS")
    x = torch.zeros(2)
    first({"x": x}, tags="MODEL")  # eager calls plan the two selections in opposite orders
    first({"x": x}, tags=["MODEL", "LOSS"])
    second({"x": x}, tags=["MODEL", "LOSS"])
    second({"x": x}, tags="MODEL")
    for collection in (first, second, first):
        run = torch.compile(collection, fullgraph=True, backend="eager")
        assert list(run({"x": x}, tags="MODEL")) == ["x", "y"]
        assert list(run({"x": x}, tags=["MODEL", "LOSS"])) == ["x", "y", "z"]
