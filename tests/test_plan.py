"""The step table and its interpreter: every way a brick takes its inputs gives what a plain function call gives."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from torchbricks import BrickCollection, BrickTrainable


class Affine(nn.Module):
    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return x * scale + 1


def _count_names(everything: dict[str, Any]) -> torch.Tensor:
    count = torch.tensor(float(len(everything)))
    everything["injected"] = None  # the brick gets a copy: the collection's outputs do not hold this
    return count


def _collection() -> BrickCollection:
    return BrickCollection(
        {
            "twice": BrickTrainable(lambda x: 2 * x, ["x"], ["a"]),  # one input
            "affine": BrickTrainable(Affine(), ["a", "s"], ["b"]),  # several positional inputs
            "by_keyword": BrickTrainable(Affine(), {"scale": "a", "x": "b"}, ["c"]),  # keyword inputs
            "split": BrickTrainable(lambda c: (c, -c), ["c"], ["d", "e"]),  # several outputs
            "count": BrickTrainable(_count_names, ["__all__"], ["n"]),  # every name
        }
    )


def _reference(x: torch.Tensor, s: torch.Tensor) -> dict[str, torch.Tensor]:
    a = 2 * x
    b = a * s + 1
    c = b * a + 1
    return {"x": x, "s": s, "a": a, "b": b, "c": c, "d": c, "e": -c, "n": torch.tensor(7.0)}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_every_input_kind_gives_the_plain_call_result(compiled: bool) -> None:
    torch._dynamo.reset()
    collection = _collection()
    run = torch.compile(collection, fullgraph=True, backend="eager") if compiled else collection
    x, s = torch.arange(3.0), torch.tensor(0.5)
    expected = _reference(x, s)
    outputs = run({"x": x, "s": s})
    assert list(outputs) == list(expected)  # no "injected"
    for name, value in expected.items():
        torch.testing.assert_close(outputs[name], value)
    only_e = run({"x": x, "s": s}, output_names=["e"])
    assert list(only_e) == ["e"]
    torch.testing.assert_close(only_e["e"], expected["e"])
    produced = run({"x": x, "s": s}, return_inputs=False)
    assert list(produced) == ["a", "b", "c", "d", "e", "n"]


def test_a_brick_run_on_its_own_returns_only_its_outputs() -> None:
    brick = BrickTrainable(Affine(), {"x": "./in", "scale": "s"}, ["./out"])
    outputs = brick({"in": torch.tensor([1.0, 2.0]), "s": torch.tensor(3.0)})
    assert list(outputs) == ["out"]
    torch.testing.assert_close(outputs["out"], torch.tensor([4.0, 7.0]))
