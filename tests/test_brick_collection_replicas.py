"""Collections and bricks under `nn.DataParallel`: each copy `torch.nn.parallel.replicate` makes runs its own bricks,
and the original keeps running its own.

`replicate` is torch's own, run on the CPU: only its broadcast of the parameters and buffers to the devices, which
needs CUDA, is replaced by copies that carry the gradient back to the originals, as the broadcast's do.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import pickle
import threading
import weakref
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.detection import MeanAveragePrecision
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_precision,
    multiclass_recall,
)

from torchbricks import BrickCollection, BrickTrainable
from torchbricks.bag_of_bricks.object_detection import BoxMeanAveragePrecision
from torchbricks.bricks import BrickAccumulator, BrickInterface, BrickMetrics, BrickMetricSingle, BrickTensorCache
from torchbricks.errors import BrickError

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


def test_replicating_a_compiled_collection_is_refused_and_leaves_it_intact(replicate: Replicate) -> None:
    """nn.DataParallel(torch.compile(collection)): torch's replicate wrote the compiled wrapper's copy's children (the
    collection itself) into the collection, which then held itself."""
    collection = chain("module")
    compiled = torch.compile(collection, fullgraph=True, backend="eager")
    with pytest.raises(BrickError, match=r"nn.DataParallel\(torch.compile\(collection\)\).*trainer.strategy=ddp"):
        replicate(compiled, 2)
    assert list(collection) == ["a", "b"]
    assert not collection._is_replica
    torch.testing.assert_close(collection(named_inputs={"x": X})["y"], reference(X, weights(collection)))


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


# --- metric bricks --------------------------------------------------------------------------------------------------
# torchmetrics keeps its states as plain attributes and a metric's `update` is a closure over the metric it was made
# for: replicate's shallow copies shared them with the original. The original's metrics must count every replica's
# part of the batch once, as the metric computed on the whole batch without DataParallel counts it.

CLASSES = 4


def run_in_threads(replicas: Sequence[nn.Module], parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each replica called with its part of the batch in a thread of its own, as `nn.DataParallel`'s `parallel_apply`
    calls them (it needs a GPU for itself)."""
    results: list[Any] = [None] * len(replicas)

    def work(index: int) -> None:
        try:
            results[index] = replicas[index](named_inputs=parts[index])
        except BaseException as error:  # re-raised below, in the test's thread
            results[index] = error

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a replica's call did not return"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def split(named_inputs: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    """The batch split along its first dimension as `nn.DataParallel` scatters it (torch.chunk)."""
    chunks = {name: value.chunk(parts) for name, value in named_inputs.items()}
    return [{name: chunk[index] for name, chunk in chunks.items()} for index in range(parts)]


def classification_batches(steps: int, size: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    return [
        {"x": torch.randn(size, 5, generator=generator), "y": torch.randint(0, CLASSES, (size,), generator=generator)}
        for _ in range(steps)
    ]


def box_batches(steps: int, size: int) -> list[dict[str, torch.Tensor]]:
    """Padded detections and targets (label -1: padding), half of the detections near a target box."""
    generator = torch.Generator().manual_seed(5)

    def boxes(count: int) -> torch.Tensor:
        corner = torch.rand(size, count, 2, generator=generator) * 50
        return torch.cat([corner, corner + 5 + torch.rand(size, count, 2, generator=generator) * 30], dim=-1)

    batches = []
    for _ in range(steps):
        target_boxes = boxes(3)
        target_labels = torch.randint(0, 2, (size, 3), generator=generator)
        target_labels[:, 2] = -1
        jitter = torch.randn(size, 3, 4, generator=generator) * 3
        detections = torch.cat([target_boxes + jitter, boxes(3)], dim=1)
        labels = torch.cat([target_labels.clamp(min=0), torch.randint(0, 2, (size, 3), generator=generator)], dim=1)
        labels[:, -1] = -1
        scores = torch.rand(size, 6, generator=generator)
        targets = {"target_boxes": target_boxes, "target_labels": target_labels}
        batches.append({"boxes": detections, "scores": scores, "labels": labels, **targets})
    return batches


def classifier(metric_brick: BrickInterface) -> BrickCollection:
    return BrickCollection({"model": BrickTrainable(nn.Linear(5, CLASSES), ["x"], ["logits"]), "metric": metric_brick})


def whole_logits(collection: BrickCollection, batches: Sequence[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = torch.cat([collection["model"].model(batch["x"]) for batch in batches])
    return logits, torch.cat([batch["y"] for batch in batches])


def accuracy_case() -> tuple[BrickCollection, list[dict[str, torch.Tensor]], Callable[..., dict[str, Any]]]:
    collection = classifier(BrickMetricSingle(MulticlassAccuracy(num_classes=CLASSES), ["logits", "y"], metric_name="accuracy"))

    def expected(batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        return {"accuracy": multiclass_accuracy(*whole_logits(collection, batches), num_classes=CLASSES)}

    return collection, classification_batches(3, 10), expected


def confusion_case() -> tuple[BrickCollection, list[dict[str, torch.Tensor]], Callable[..., dict[str, Any]]]:
    collection = classifier(BrickMetrics({"confusion": MulticlassConfusionMatrix(num_classes=CLASSES)}, ["logits", "y"]))

    def expected(batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        return {"confusion": multiclass_confusion_matrix(*whole_logits(collection, batches), num_classes=CLASSES)}

    return collection, classification_batches(3, 10), expected


def compute_group_case() -> tuple[BrickCollection, list[dict[str, torch.Tensor]], Callable[..., dict[str, Any]]]:
    """Accuracy, precision and recall share their states in one torchmetrics compute group."""
    metrics = {
        "accuracy": MulticlassAccuracy(num_classes=CLASSES),
        "precision": MulticlassPrecision(num_classes=CLASSES),
        "recall": MulticlassRecall(num_classes=CLASSES),
    }
    collection = classifier(BrickMetrics(metrics, ["logits", "y"]))

    def expected(batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        logits, y = whole_logits(collection, batches)
        return {
            "accuracy": multiclass_accuracy(logits, y, num_classes=CLASSES),
            "precision": multiclass_precision(logits, y, num_classes=CLASSES),
            "recall": multiclass_recall(logits, y, num_classes=CLASSES),
        }

    return collection, classification_batches(3, 10), expected


def box_map_case() -> tuple[BrickCollection, list[dict[str, torch.Tensor]], Callable[..., dict[str, Any]]]:
    """The detection head's mAP: list states, one entry per image."""
    names = ["boxes", "scores", "labels", "target_boxes", "target_labels"]
    collection = BrickCollection({"metric": BrickMetricSingle(BoxMeanAveragePrecision(), names, metric_name="map")})

    def expected(batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        reference = BoxMeanAveragePrecision()  # updated once with every image, without DataParallel
        reference.update(*(torch.cat([batch[name] for batch in batches]) for name in names))
        return {"map": {key: reference.compute()[key] for key in ("map", "map_50", "map_75")}}

    return collection, box_batches(3, 6), expected


METRIC_CASES = {
    "accuracy": accuracy_case,
    "confusion": confusion_case,
    "compute_group": compute_group_case,
    "box_map": box_map_case,
}


def summary_of(collection: BrickCollection) -> dict[str, Any]:
    summary = collection.summarize(reset=False)
    if "map" in summary:
        summary["map"] = {key: summary["map"][key] for key in ("map", "map_50", "map_75")}
    return summary


@pytest.mark.parametrize("case", METRIC_CASES)
def test_metric_bricks_count_each_replicas_part_once(case: str, replicate: Replicate) -> None:
    collection, batches, expected = METRIC_CASES[case]()
    for batch in batches:  # one nn.DataParallel call per batch, over three copies (parts of 4, 4 and 2 images)
        run_in_threads(replicate(collection, 3), split(batch, 3))
    torch.testing.assert_close(summary_of(collection), expected(batches))


@pytest.mark.parametrize("case", ["accuracy", "compute_group"])
def test_metric_bricks_of_compiled_replicas_count_each_part_once(case: str, replicate: Replicate) -> None:
    """Each copy's plan traced by torch.compile: the update runs through the stateful op, at the copy's handle."""
    collection, batches, expected = METRIC_CASES[case]()
    torch._dynamo.reset()
    for batch in batches[:2]:
        for replica, part in zip(replicate(collection, 2), split(batch, 2), strict=True):
            torch.compile(replica, fullgraph=True, backend="eager")(named_inputs=part)
    torch.testing.assert_close(summary_of(collection), expected(batches[:2]))


def test_a_metric_brick_returns_each_replicas_batch_value(replicate: Replicate) -> None:
    """With return_metrics=True a copy returns the value of its part of the batch (the metric's forward), not the
    original's accumulated value."""
    metric = MulticlassAccuracy(num_classes=CLASSES, average="micro")
    collection = classifier(BrickMetricSingle(metric, ["logits", "y"], return_metrics=True, output_names=["batch_accuracy"]))
    batches = classification_batches(2, 10)
    for batch in batches:
        parts = split(batch, 2)
        outputs = run_in_threads(replicate(collection, 2), parts)
        for output, part in zip(outputs, parts, strict=True):
            expected = multiclass_accuracy(output["logits"], part["y"], num_classes=CLASSES, average="micro")
            torch.testing.assert_close(output["batch_accuracy"], expected)
    logits, y = whole_logits(collection, batches)
    expected_summary = {"MulticlassAccuracy": multiclass_accuracy(logits, y, num_classes=CLASSES, average="micro")}
    torch.testing.assert_close(collection.summarize(reset=False), expected_summary)


def test_replicas_update_the_original_metrics_on_their_device(replicate: Replicate) -> None:
    """On several GPUs a copy's part of the batch is on its own device: it reaches the original's metrics on theirs
    (here the meta device stands for the original's), also the tensors nested in lists of dicts."""
    collection = BrickCollection({"metric": BrickMetricSingle(MeanAveragePrecision(), ["preds", "target"])})
    original = collection["metric"]
    replica = replicate(collection, 2)[1]
    devices: list[torch.device] = []
    original.update = lambda preds, target: devices.extend(value.device for item in (*preds, *target) for value in item.values())
    original._update_token = torch.zeros(1, device="meta")
    box = {"boxes": torch.tensor([[0.0, 0, 4, 4]]), "labels": torch.tensor([1])}
    replica(named_inputs={"preds": [{**box, "scores": torch.tensor([0.5])}], "target": [box]})
    assert devices == [torch.device("meta")] * 5


def test_replicas_update_the_original_metrics_one_at_a_time(replicate: Replicate) -> None:
    """The copies run in threads at once: each update of the original's metrics waits for the one in progress."""
    collection = classifier(BrickMetricSingle(MulticlassAccuracy(num_classes=CLASSES), ["logits", "y"]))
    update = collection["metric"].update
    counting, inside, seen = threading.Lock(), [0], []
    both_inside = threading.Barrier(2, timeout=0.3)

    def slow_update(*args: torch.Tensor) -> None:
        with counting:
            inside[0] += 1
            seen.append(inside[0])
        with contextlib.suppress(threading.BrokenBarrierError):
            both_inside.wait()  # without the lock, the other copy comes in meanwhile
        with counting:
            inside[0] -= 1
        update(*args)

    collection["metric"].update = slow_update
    batch = classification_batches(1, 10)[0]
    run_in_threads(replicate(collection, 2), split(batch, 2))
    assert seen == [1, 1]
    torch.testing.assert_close(
        collection.summarize(reset=False)["MulticlassAccuracy"],
        multiclass_accuracy(*whole_logits(collection, [batch]), num_classes=CLASSES),
    )


def test_a_replicated_metric_brick_is_still_copied_and_pickled(replicate: Replicate) -> None:
    collection, batches, expected = accuracy_case()
    run_in_threads(replicate(collection, 2), split(batches[0], 2))
    for copied in (deepcopy(collection), pickle.loads(pickle.dumps(collection))):
        torch.testing.assert_close(copied.summarize(reset=False), expected(batches[:1]))


def cached_features(collection: BrickCollection) -> dict[str, torch.Tensor]:
    return {**collection["features"].cached(), **collection["labels"].cached()}


def test_tensor_caches_keep_the_batchs_order_whichever_copy_finishes_first(replicate: Replicate) -> None:
    """The copies run in threads and finish in any order (here the last first): each cache joins their parts in the
    order of the batch, so two caches keep their rows together."""
    collection = BrickCollection(
        {
            "model": BrickTrainable(nn.Linear(5, 3), ["x"], ["embedding"]),
            "features": BrickTensorCache(["embedding"]),
            "labels": BrickTensorCache({"label": "y"}),
        }
    )
    batches = classification_batches(3, 10)
    for batch in batches:
        replicas, parts = replicate(collection, 3), split(batch, 3)
        for replica, part in reversed(list(zip(replicas, parts, strict=True))):
            replica(named_inputs=part)
    with torch.no_grad():
        expected = {
            "embedding": torch.cat([collection["model"].model(batch["x"]) for batch in batches]),
            "label": torch.cat([batch["y"] for batch in batches]),
        }
    for copied in (deepcopy(collection), collection):  # a copy of the collection takes the parts with it
        torch.testing.assert_close(cached_features(copied), expected)
    collection(named_inputs=batches[0])  # without DataParallel, after the parts
    torch.testing.assert_close(collection["labels"].cached()["label"], torch.cat([expected["label"], batches[0]["y"]]))


class _RunningSum(BrickAccumulator):
    """An accumulator of one's own, whose state a copy would rebind on itself (`self.total = ...`) and lose."""

    def __init__(self, input_names: list[str]) -> None:
        super().__init__(input_names=input_names, output_names=None)
        self.total = torch.zeros(())
        self._init_accumulator()

    def update(self, x: torch.Tensor) -> None:
        self.total = self.total + x.sum()

    def reset(self) -> None:
        self.total = torch.zeros(())

    def step_function(self) -> Callable[..., Any]:
        return self._update_step()


def test_an_accumulator_of_ones_own_counts_each_replicas_part(replicate: Replicate) -> None:
    collection = BrickCollection({"sum": _RunningSum(["x"])})
    batches = classification_batches(2, 10)
    for batch in batches:
        run_in_threads(replicate(collection, 3), split({"x": batch["x"]}, 3))
    torch.testing.assert_close(collection["sum"].total, torch.cat([batch["x"] for batch in batches]).sum())


def test_compiling_a_replica_returning_batch_values_names_the_metric_brick(replicate: Replicate) -> None:
    metric = MulticlassAccuracy(num_classes=CLASSES)
    brick = BrickMetricSingle(metric, ["logits", "y"], return_metrics=True, output_names=["value"])
    replica = replicate(classifier(brick), 2)[0]
    torch._dynamo.reset()
    compiled = torch.compile(replica, fullgraph=True, backend="eager")
    with pytest.raises(Exception, match=r"return_metrics=True \(\['MulticlassAccuracy'\]\).*torch.compile cannot trace"):
        compiled(named_inputs=classification_batches(1, 4)[0])
