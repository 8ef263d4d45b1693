"""Compiled overhead of a BrickCollection against a hand-written nn.Module, side by side in one process.

Two workloads, both under `torch.compile(fullgraph=True)` (inductor) and in eager mode:

- `chain`: ten `nn.Linear(8, 8)` bricks against hand-written modules calling the same layers (batch 4,
  no_grad). The collection is measured with `output_names=[last]` and returning every name (the spec's
  `named_outputs`); each is compared with the like-for-like hand-written module taking the same dict and
  returning the same dict, and with the plain module taking a tensor and returning the last one. Two
  instances of one hand-written module are compared too: their ratio shows how far two identical modules
  differ on this machine, the floor below which a ratio says nothing.
- `resnet`: a ResNet-18 training step with two classification heads, two losses and two accuracy metrics
  (batch 8, 3x64x64): compiled forward over `Stage.TRAIN`, loss sum, backward, SGD step. The hand-written
  module computes the same logits and losses in its compiled forward and updates the same metrics eagerly after
  it (torchmetrics' update cannot be traced), so both steps do the same work.

All variants share the very same modules. Times are the CPU time of this thread per call (`time.thread_time`),
so time spent waiting for a core that another process holds is not counted (time slowed by a neighbour sharing
the core's caches still is). Rounds are short and many, the variants' order rotates every round, and each
ratio is the median over rounds of the ratio measured within a round, with its quartiles; the ratio of the
fastest rounds (10th percentile) is printed beside it, as other work can only slow a round down.

Run: .venv/bin/python benchmarks/bench_compiled.py [--quick] [--only chain|resnet] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from bench_overhead import PlainChain, make_collection, make_layers
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from torchbricks import BrickCollection, BrickLoss, BrickMetricSingle, BrickNotTrainable, BrickTrainable, Stage
from torchbricks.bag_of_bricks.backbones import BackboneResnet
from torchbricks.bag_of_bricks.image_classification import ImageClassifier
from torchbricks.bag_of_bricks.preprocessors import Preprocessor

NUM_CLASSES = 10


def cpu_seconds_per_call(fn: Callable[[], Any], number: int) -> float:
    start = time.thread_time()
    for _ in range(number):
        fn()
    return (time.thread_time() - start) / number


def compare(
    variants: dict[str, Callable[[], Any]], comparisons: list[tuple[str, str]], number: int, rounds: int
) -> list[dict[str, Any]]:
    """Times every variant `rounds` times (`number` calls each, the order rotated every round) and compares pairs.

    For each (variant, reference) pair: the median over rounds of the variant's time divided by the reference's
    time in the same round, with the quartiles of that ratio, and the ratio of the two variants' fastest rounds
    (10th percentile of the per-call times), which other work on the machine can only make slower.
    """
    for fn in variants.values():
        for _ in range(3):
            fn()
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(cpu_seconds_per_call(variants[name], number))
    rows = []
    for name, reference in comparisons:
        ratios = [seconds / reference_seconds for seconds, reference_seconds in zip(times[name], times[reference], strict=True)]
        q1, median, q3 = statistics.quantiles(ratios, n=4)
        rows.append(
            {
                "variant": name,
                "reference": reference,
                "ms": statistics.median(times[name]) * 1e3,
                "ratio": median,
                "q1": q1,
                "q3": q3,
                "fastest_ratio": _fastest(times[name]) / _fastest(times[reference]),
            }
        )
    return rows


def _fastest(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=10)[0]


class PlainChainLastOutput(PlainChain):
    """The hand-written chain taking and returning what the collection does with `output_names=[last]`."""

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {"x10": super().forward(named_inputs["x0"])}


class PlainChainAllOutputs(PlainChain):
    """The hand-written chain returning what the collection returns: a dict of the input and every intermediate."""

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        outputs = dict(named_inputs)
        x = named_inputs["x0"]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            outputs[f"x{i + 1}"] = x
        return outputs


PLAIN = "plain module (tensor in, last tensor out)"
PLAIN_LAST = "plain module, dict in, dict of the last output"
PLAIN_LAST_AGAIN = "the same plain module, a second instance"
PLAIN_ALL = "plain module, dict in, dict of every output"
COLLECTION_LAST = "collection, output_names=[last]"
COLLECTION_ALL = "collection, every output (the spec's named_outputs)"
CHAIN_COMPARISONS = [
    (PLAIN_LAST_AGAIN, PLAIN_LAST),  # two identical modules: the noise floor of a ratio
    (COLLECTION_LAST, PLAIN_LAST),
    (COLLECTION_ALL, PLAIN_ALL),
    (COLLECTION_LAST, PLAIN),
    (COLLECTION_ALL, PLAIN),
    (PLAIN_LAST, PLAIN),
    (PLAIN_ALL, PLAIN),
]


def chain_variants(compiled: bool) -> dict[str, Callable[[], Any]]:
    """The chain variants over one set of layers; each variant is its own module, compiled on its own and called
    one way. (Dynamo keeps its entries per code object: the two hand-written instances share one entry, the two
    collections hold one each on `BrickCollection.forward`; see the README.)"""
    layers = make_layers(10)
    modules: dict[str, Callable[..., Any]] = {
        PLAIN: PlainChain(layers),
        PLAIN_LAST: PlainChainLastOutput(layers),
        PLAIN_LAST_AGAIN: PlainChainLastOutput(layers),
        PLAIN_ALL: PlainChainAllOutputs(layers),
        COLLECTION_LAST: make_collection(layers),
        COLLECTION_ALL: make_collection(layers),
    }
    if compiled:
        modules = {name: torch.compile(module, fullgraph=True) for name, module in modules.items()}
    x = torch.randn(4, 8)
    inputs = {"x0": x}
    last = ("x10",)
    plain, plain_last, plain_last_again, plain_all, collection_last, collection_all = modules.values()
    with torch.no_grad():
        torch.testing.assert_close(collection_all(inputs), plain_all(inputs))
        torch.testing.assert_close(collection_last(inputs, output_names=last), plain_last(inputs))
        torch.testing.assert_close(plain_last_again(inputs)["x10"], plain(x))
    return {
        PLAIN: lambda: plain(x),
        PLAIN_LAST: lambda: plain_last(inputs),
        PLAIN_LAST_AGAIN: lambda: plain_last_again(inputs),
        PLAIN_ALL: lambda: plain_all(inputs),
        COLLECTION_LAST: lambda: collection_last(inputs, output_names=last),
        COLLECTION_ALL: lambda: collection_all(inputs),
    }


class TwoHeadsPlain(nn.Module):
    """The hand-written two-head ResNet-18 classifier with its losses, over the collection's own modules."""

    def __init__(self, collection: BrickCollection) -> None:
        super().__init__()
        self.preprocessor = collection["preprocessor"].model
        self.backbone = collection["backbone"].model
        self.classify0 = collection["head0"]["classify"].model
        self.classify1 = collection["head1"]["classify"].model
        self.loss = nn.CrossEntropyLoss()

    def forward(self, raw: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.backbone(self.preprocessor(raw))
        logits0, _, prediction0 = self.classify0(features)
        logits1, _, prediction1 = self.classify1(features)
        return self.loss(logits0, targets) + self.loss(logits1, targets), prediction0, prediction1


def two_heads_collection() -> BrickCollection:
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None, num_classes=NUM_CLASSES)
    backbone = BackboneResnet(resnet)

    def head() -> dict[str, Any]:
        return {
            "classify": BrickTrainable(
                ImageClassifier(num_classes=NUM_CLASSES, n_features=backbone.n_backbone_features),
                input_names=["../features"],
                output_names=["./logits", "./probabilities", "./prediction"],
            ),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "../targets"], output_names=["./loss_ce"]),
            "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=NUM_CLASSES), ["./prediction", "../targets"]),
        }

    return BrickCollection(
        {
            "preprocessor": BrickNotTrainable(Preprocessor(), input_names=["raw"], output_names=["normalized"]),
            "backbone": BrickTrainable(backbone, input_names=["normalized"], output_names=["features"]),
            "head0": head(),
            "head1": head(),
        }
    )


def resnet_variants(compiled: bool) -> dict[str, Callable[[], Any]]:
    collection = two_heads_collection()
    plain = TwoHeadsPlain(collection)
    metrics0, metrics1 = MulticlassAccuracy(num_classes=NUM_CLASSES), MulticlassAccuracy(num_classes=NUM_CLASSES)
    run_plain: Callable[..., Any] = torch.compile(plain, fullgraph=True) if compiled else plain
    run_collection: Callable[..., Any] = torch.compile(collection, fullgraph=True) if compiled else collection
    optimizer = torch.optim.SGD(collection.parameters(), lr=1e-3)
    raw = torch.rand(8, 3, 64, 64)
    targets = torch.randint(0, NUM_CLASSES, (8,))
    inputs = {"raw": raw, "targets": targets}

    def plain_step() -> None:
        loss, prediction0, prediction1 = run_plain(raw, targets)
        metrics0.update(prediction0, targets)
        metrics1.update(prediction1, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def collection_step() -> None:
        outputs = run_collection(inputs, tags=Stage.TRAIN)
        loss = sum(collection.extract_losses(outputs).values())
        optimizer.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()

    return {PLAIN_STEP: plain_step, COLLECTION_STEP: collection_step}


PLAIN_STEP = "plain module (metrics updated eagerly after it)"
COLLECTION_STEP = "collection, Stage.TRAIN"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for a smoke run)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", choices=["chain", "resnet"], help="measure one workload")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default: 401 for the chain, 61 for ResNet)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {"torch": torch.__version__, "load_average_at_start": os.getloadavg()}
    workloads = (
        ("chain", chain_variants, CHAIN_COMPARISONS, 20, 401),
        ("resnet", resnet_variants, [(COLLECTION_STEP, PLAIN_STEP)], 1, 61),
    )
    for workload, make, comparisons, number, default_rounds in workloads:
        if args.only not in (None, workload):
            continue
        rounds = 21 if args.quick else args.rounds or default_rounds
        for compiled in (True, False):
            mode = "torch.compile(fullgraph=True)" if compiled else "eager"
            with torch.no_grad() if workload == "chain" else torch.enable_grad():
                rows = compare(make(compiled), comparisons, number=number, rounds=rounds)
            results[f"{workload}, {mode}"] = rows
            print(f"\n{workload}, {mode}, {rounds} rounds of {number} calls")
            for row in rows:
                print(
                    f"  {row['variant']:<52} {row['ms']:>8.3f} ms  vs {row['reference']:<46} "
                    f"ratio {row['ratio']:.3f} (quartiles {row['q1']:.3f}-{row['q3']:.3f}, "
                    f"fastest rounds {row['fastest_ratio']:.3f})"
                )
    results["load_average_at_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
