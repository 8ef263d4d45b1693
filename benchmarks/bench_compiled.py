"""Compiled overhead of a BrickCollection against a hand-written nn.Module, side by side in one process.

Two workloads, both under `torch.compile(fullgraph=True)` (inductor) and in eager mode:

- `chain`: ten `nn.Linear(8, 8)` bricks against `PlainChain` calling the same modules (batch 4, no_grad). The
  collection is measured with `output_names=[last]` (one tensor back, like `PlainChain`) and returning every
  name (the spec's `named_outputs`), beside a hand-written module returning the same dict of every intermediate.
- `resnet`: a ResNet-18 training step with two classification heads, two losses and two accuracy metrics
  (batch 8, 3x64x64): compiled forward over `Stage.TRAIN`, loss sum, backward, SGD step. The hand-written
  module computes the same logits and losses in its compiled forward and updates the same metrics eagerly after
  it (torchmetrics' update cannot be traced), so both steps do the same work.

Both variants share the very same modules. Times are the CPU time of this thread per call
(`time.thread_time`), so time spent waiting for a core that another process holds is not counted; variants
are interleaved and each figure is the median over rounds of the ratio measured within a round.

Run: .venv/bin/python benchmarks/bench_compiled.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
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


def compare(variants: dict[str, Callable[[], Any]], number: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median (and quartiles) over `rounds` of each variant's time divided by the first variant's, same round."""
    for fn in variants.values():
        fn()
        fn()
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    times: dict[str, list[float]] = {name: [] for name in variants}
    reference = next(iter(variants))
    for _ in range(rounds):
        seconds = {name: cpu_seconds_per_call(fn, number) for name, fn in variants.items()}
        for name in variants:
            ratios[name].append(seconds[name] / seconds[reference])
            times[name].append(seconds[name])
    summary = {}
    for name in variants:
        quartiles = statistics.quantiles(ratios[name], n=4) if rounds > 1 else [ratios[name][0]] * 3
        summary[name] = {
            "ms": statistics.median(times[name]) * 1e3,
            "ratio": statistics.median(ratios[name]),
            "q1": quartiles[0],
            "q3": quartiles[2],
        }
    return summary


class PlainChainAllOutputs(PlainChain):
    """The hand-written chain returning what the collection returns: a dict of the input and every intermediate."""

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        outputs = dict(named_inputs)
        x = named_inputs["x0"]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            outputs[f"x{i + 1}"] = x
        return outputs


def chain_variants(compiled: bool) -> dict[str, Callable[[], Any]]:
    layers = make_layers(10)
    plain: Callable[..., Any] = PlainChain(layers)
    plain_all: Callable[..., Any] = PlainChainAllOutputs(layers)
    collection: Callable[..., Any] = make_collection(layers)
    if compiled:
        plain = torch.compile(plain, fullgraph=True)
        plain_all = torch.compile(plain_all, fullgraph=True)
        collection = torch.compile(collection, fullgraph=True)
    x = torch.randn(4, 8)
    inputs = {"x0": x}
    last = ("x10",)
    with torch.no_grad():
        torch.testing.assert_close(collection(inputs)["x10"], plain(x))
    return {
        "plain module": lambda: plain(x),
        "collection, output_names=[last]": lambda: collection(inputs, output_names=last),
        "plain module, dict of every output": lambda: plain_all(inputs),
        "collection, every output": lambda: collection(inputs),
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

    return {"plain module": plain_step, "collection": collection_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for a smoke run)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", choices=["chain", "resnet"], help="measure one workload")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds = 5 if args.quick else 31
    results: dict[str, Any] = {"torch": torch.__version__}
    for workload, make, number in (("chain", chain_variants, 200), ("resnet", resnet_variants, 2)):
        if args.only not in (None, workload):
            continue
        for compiled in (True, False):
            mode = "torch.compile(fullgraph=True)" if compiled else "eager"
            with torch.no_grad() if workload == "chain" else torch.enable_grad():
                rows = compare(make(compiled), number=number if not args.quick else max(1, number // 4), rounds=rounds)
            results[f"{workload}, {mode}"] = rows
            print(f"\n{workload}, {mode}")
            for name, row in rows.items():
                spread = f"(quartiles {row['q1']:.3f}-{row['q3']:.3f})"
                print(f"  {name:<36} {row['ms']:>9.3f} ms   ratio {row['ratio']:.3f}  {spread}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
