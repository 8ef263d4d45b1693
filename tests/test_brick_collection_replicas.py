"""Collections and bricks under `nn.DataParallel`: each copy `torch.nn.parallel.replicate` makes runs its own bricks,
and the original keeps running its own.

`replicate` is torch's own, run on the CPU: only its broadcast of the parameters and buffers to the devices, which
needs CUDA, is replaced by copies that carry the gradient back to the originals, as the broadcast's do.
"""

from __future__ import annotations

import gc
import importlib
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchbricks import BrickCollection, BrickTrainable
from torchbricks.bricks import BrickInterface

Replicate = Callable[[nn.Module, int], list[Any]]


@pytest.fixture
def replicate(monkeypatch: pytest.MonkeyPatch) -> Replicate:
    """`torch.nn.parallel.replicate(module, devices)` to `copies` devices, its broadcast replaced by `clone()`."""
    replicate_module = importlib.import_module("torch.nn.parallel.replicate")

    def broadcast(tensors: Sequence[torch.Tensor], devices: Sequence[int], detach: bool = False) -> list[list[torch.Tensor]]:
        return [[tensor.detach().clone() if detach else tensor.clone() for tensor in tensors] for _ in devices]

    monkeypatch.setattr(replicate_module, "_broadcast_coalesced_reshape", broadcast)
    return lambda module, copies: replicate_module.replicate(module, list(range(copies)))


class _LinearByMethod(BrickInterface):
    """A brick whose callable is a bound method, which reads its module when it runs."""

    def __init__(self, model: nn.Module, input_names: list[str], output_names: list[str]) -> None:
        super().__init__(input_names, output_names)
        self.model = model

    def step_function(self) -> Callable[..., Any]:
        return self.run

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _Linear042(BrickInterface):
    """A brick written for torchbricks 0.4.2: its own `forward(named_inputs)`."""

    def __init__(self, model: nn.Module, input_names: list[str], output_names: list[str]) -> None:
        super().__init__(input_names, output_names)
        self.model = model

    def forward(self, named_inputs: dict[str, Any]) -> dict[str, Any]:
        return {self.output_names[0]: self.model(named_inputs[self.input_names[0]])}


BRICK_KINDS: dict[str, Callable[[nn.Module, list[str], list[str]], BrickInterface]] = {
    "module": BrickTrainable,
    "without_gradients": lambda model, ins, outs: BrickTrainable(model, ins, outs, calculate_gradients=False),
    "bound_method": _LinearByMethod,
    "forward_042": _Linear042,
}
TRAINED_KINDS = ["module", "bound_method", "forward_042"]


def chain(kind: str) -> BrickCollection:
    make = BRICK_KINDS[kind]
    return BrickCollection({"a": make(nn.Linear(3, 3), ["x"], ["h"]), "b": make(nn.Linear(3, 2), ["h"], ["y"])})


def weights(collection: nn.Module) -> list[torch.Tensor]:
    """The chain's weights as the collection (or a copy of it) holds them."""
    return [tensor for key in ("a", "b") for tensor in (collection[key].model.weight, collection[key].model.bias)]


def reference(x: torch.Tensor, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The chain written out: two linear maps."""
    return F.linear(F.linear(x, tensors[0], tensors[1]), tensors[2], tensors[3])


def shift(tensors: Sequence[torch.Tensor], by: float) -> None:
    with torch.no_grad():
        for tensor in tensors:
            tensor.add_(by)


X = torch.linspace(-1, 1, 12).reshape(4, 3)


@pytest.mark.parametrize("kind", BRICK_KINDS)
def test_each_replica_runs_its_own_bricks(kind: str, replicate: Replicate) -> None:
    collection = chain(kind)
    collection(named_inputs={"x": X})  # planned before, as by the previous step
    replicas = replicate(collection, 2)
    for number, replica in enumerate(replicas):
        shift(weights(replica), by=number + 1.0)
    for replica in replicas:
        torch.testing.assert_close(replica(named_inputs={"x": X})["y"], reference(X, weights(replica)))


@pytest.mark.parametrize("kind", BRICK_KINDS)
def test_the_original_runs_its_own_bricks_after_replication(kind: str, replicate: Replicate) -> None:
    collection = chain(kind)
    collection(named_inputs={"x": X})
    replicas = replicate(collection, 2)
    shift(weights(collection), by=1.0)  # as an optimizer step does, in place

    torch.testing.assert_close(collection(named_inputs={"x": X})["y"], reference(X, weights(collection)))
    for replica in replicas:  # the copies keep the weights they were made with
        expected = reference(X, weights(replica))
        torch.testing.assert_close(replica(named_inputs={"x": X})["y"], expected)
        assert not torch.allclose(expected, reference(X, weights(collection)))


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_a_data_parallel_step_trains_the_weights_the_original_then_runs(kind: str, replicate: Replicate) -> None:
    collection = chain(kind)
    leaves = [tensor.detach().clone().requires_grad_() for tensor in weights(collection)]
    reference_gradients = torch.autograd.grad(reference(X, leaves).square().sum(), leaves)

    replicas = replicate(collection, 2)  # one step of nn.DataParallel: the batch split over two copies
    outputs = [replica(named_inputs={"x": part})["y"] for replica, part in zip(replicas, X.chunk(2), strict=True)]
    torch.cat(outputs).square().sum().backward()
    for tensor, expected in zip(weights(collection), reference_gradients, strict=True):
        torch.testing.assert_close(tensor.grad, expected)
    torch.optim.SGD(collection.parameters(), lr=0.1).step()

    stepped = [leaf - 0.1 * gradient for leaf, gradient in zip(leaves, reference_gradients, strict=True)]
    with torch.no_grad():  # evaluated without DataParallel after the step
        torch.testing.assert_close(collection(named_inputs={"x": X})["y"], reference(X, stepped))


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_nested_collections_replicate_with_their_own_bricks(kind: str, replicate: Replicate) -> None:
    make = BRICK_KINDS[kind]
    collection = BrickCollection(
        {
            "backbone": make(nn.Linear(3, 3), ["x"], ["features"]),
            "head": {"classify": make(nn.Linear(3, 2), ["../features"], ["./logits"])},
        }
    )
    collection(named_inputs={"x": X})
    replicas = replicate(collection, 2)
    shift(weights_nested(replicas[1]), by=1.0)
    shift(weights_nested(collection), by=-1.0)

    for copy in (collection, *replicas):
        torch.testing.assert_close(copy(named_inputs={"x": X})["head/logits"], reference(X, weights_nested(copy)))
        only_head = copy(named_inputs={"x": X}, output_names=["head/logits"])["head/logits"]
        torch.testing.assert_close(only_head, reference(X, weights_nested(copy)))


def weights_nested(collection: nn.Module) -> list[torch.Tensor]:
    backbone, classify = collection["backbone"].model, collection["head"]["classify"].model
    return [backbone.weight, backbone.bias, classify.weight, classify.bias]


@pytest.mark.parametrize("route", ["attribute", "modules_dict"])
def test_a_module_swapped_in_a_replica_brick_runs_in_that_replica_only(route: str, replicate: Replicate) -> None:
    collection = chain("module")
    collection(named_inputs={"x": X})
    replicas = replicate(collection, 2)
    for replica in replicas:
        replica(named_inputs={"x": X})
    swapped = nn.Linear(3, 3)
    if route == "attribute":
        replicas[0]["a"].model = swapped
    else:
        replicas[0]["a"]._modules["model"] = swapped

    replaced = [swapped.weight, swapped.bias, *weights(replicas[0])[2:]]
    torch.testing.assert_close(replicas[0](named_inputs={"x": X})["y"], reference(X, replaced))
    for other in (collection, replicas[1]):
        torch.testing.assert_close(other(named_inputs={"x": X})["y"], reference(X, weights(other)))


def test_a_brick_replaced_in_a_replica_runs_in_that_replica_only(replicate: Replicate) -> None:
    collection = chain("module")
    collection(named_inputs={"x": X})
    replica = replicate(collection, 1)[0]
    replica(named_inputs={"x": X})
    replica["b"] = BrickTrainable(nn.Identity(), ["h"], ["y"])

    first = replica["a"].model
    torch.testing.assert_close(replica(named_inputs={"x": X})["y"], F.linear(X, first.weight, first.bias))
    torch.testing.assert_close(collection(named_inputs={"x": X})["y"], reference(X, weights(collection)))


@pytest.mark.parametrize("kind", ["module", "bound_method"])
def test_a_compiled_original_runs_its_own_bricks_after_replication(kind: str, replicate: Replicate) -> None:
    collection = chain(kind)
    torch._dynamo.reset()
    compiled = torch.compile(collection, fullgraph=True, backend="eager")
    compiled(named_inputs={"x": X})
    replicas = replicate(collection, 2)
    shift(weights(collection), by=1.0)

    torch.testing.assert_close(compiled(named_inputs={"x": X})["y"], reference(X, weights(collection)))
    torch.testing.assert_close(replicas[0](named_inputs={"x": X})["y"], reference(X, weights(replicas[0])))


@pytest.mark.parametrize("kind", BRICK_KINDS)
def test_a_brick_run_on_its_own_replicates_with_its_own_modules(kind: str, replicate: Replicate) -> None:
    brick = BRICK_KINDS[kind](nn.Linear(3, 2), ["x"], ["y"])
    brick({"x": X})  # the brick keeps its own plan
    replica = replicate(brick, 2)[1]
    shift([replica.model.weight, replica.model.bias], by=1.0)

    torch.testing.assert_close(replica({"x": X})["y"], F.linear(X, replica.model.weight, replica.model.bias))
    torch.testing.assert_close(brick({"x": X})["y"], F.linear(X, brick.model.weight, brick.model.bias))


def test_the_original_keeps_no_replica_alive(replicate: Replicate) -> None:
    """The copies hold the weights on the other devices: the original's plans must not keep them after the call."""
    collection = chain("module")
    collection(named_inputs={"x": X})
    replicas = replicate(collection, 2)
    copies = [weakref.ref(brick) for replica in replicas for _, brick in replica.iter_bricks()]
    collection(named_inputs={"x": X})
    del replicas
    gc.collect()
    assert [copy() for copy in copies] == [None] * len(copies)


def test_replication_plans_each_copy_once_on_its_first_call(replicate: Replicate, monkeypatch: pytest.MonkeyPatch) -> None:
    """`nn.DataParallel` replicates on every call: planning the copy again after each brick torch puts in it took
    time quadratic in the bricks (150 ms for 50 bricks on two devices, against 4 ms for an `nn.Sequential` of them)."""
    bricks = 20
    collection = BrickCollection({f"linear{i}": BrickTrainable(nn.Linear(3, 3), [f"x{i}"], [f"x{i + 1}"]) for i in range(bricks)})
    collection(named_inputs={"x0": X})
    graph = importlib.import_module("torchbricks._graph")
    build_node = graph.build_node
    built: list[str] = []

    def counted(brick: Any, path: str, scope: tuple[str, ...]) -> Any:
        built.append(path)
        return build_node(brick, path, scope)

    monkeypatch.setattr(graph, "build_node", counted)
    replicas = replicate(collection, 2)
    for replica in replicas:
        replica(named_inputs={"x0": X})
        replica(named_inputs={"x0": X})
    assert len(built) == 2 * bricks
