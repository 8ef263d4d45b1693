"""A collection under torch.compile(fullgraph=True): the same step table, results, errors and notes as an eager call."""

from __future__ import annotations

import pytest
import torch
from helpers import AddConstant, Split
from torch import nn

from torchbricks import BrickCollection, BrickLoss, BrickOutputError, BrickTrainable


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
