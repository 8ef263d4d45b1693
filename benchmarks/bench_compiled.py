"""Compiled overhead of a BrickCollection against a hand-written nn.Module, side by side in one process.

Two workloads, both under `torch.compile(fullgraph=True)` (inductor) and in eager mode:

- `chain`: ten `nn.Linear(8, 8)` bricks against hand-written modules calling the same layers (batch 4,
  no_grad). The collection is measured with `output_names=[last]` and returning every name (the spec's
  `named_outputs`); each is compared with the like-for-like hand-written module taking the same dict and
  returning the same dict, and with the plain module taking a tensor and returning the last one. A twin of the
  hand-written module (the same code, compiled on its own) is compared with it too: their ratio shows how far
  two modules doing the same work differ here, the floor below which a ratio says nothing. Compiled, the chain
  runs in 12 fresh processes, each compiling the variants in another order (see `chain_all_orders`).
- `resnet`: a ResNet-18 training step with two classification heads, two losses and two accuracy metrics
  (batch 8, 3x64x64): compiled forward over `Stage.TRAIN`, loss sum, backward, SGD step. The hand-written
  module computes the same logits and losses in its compiled forward and updates the same metrics eagerly after
  it (torchmetrics' update cannot be traced), so both steps do the same work.

All variants share the very same modules. Times are the CPU time of this thread per call (`time.thread_time`),
so time spent waiting for a core that another process holds is not counted (time slowed by a neighbour sharing
the core's caches still is). Rounds are short and many, the variants' order rotates every round, and each
ratio is the median over rounds of the ratio measured within a round, with its quartiles; the ratio of the
fastest rounds (10th percentile) is printed beside it, as other work can only slow a round down.

Run: .venv/bin/python benchmarks/bench_compiled.py [--quick] [--only chain|resnet] [--rounds N] [--processes N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
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


class PlainChainLastOutputTwin(PlainChain):
    """`PlainChainLastOutput` written out again: the same code, but its own code object, so dynamo compiles it on
    its own (its own cache entry), as it does each collection. The control: its ratio to `PlainChainLastOutput`
    is what compiling one module before the other does to a ratio when the two do exactly the same work."""

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
PLAIN_TWIN = "a twin of that plain module, compiled on its own"
PLAIN_ALL = "plain module, dict in, dict of every output"
COLLECTION_LAST = "collection, output_names=[last]"
COLLECTION_ALL = "collection, every output (the spec's named_outputs)"
CHAIN_COMPARISONS = [
    (PLAIN_TWIN, PLAIN_LAST),  # two modules doing the same work, compiled apart: the noise floor of a ratio
    (COLLECTION_LAST, PLAIN_LAST),
    (COLLECTION_ALL, PLAIN_ALL),
    (COLLECTION_LAST, PLAIN),
    (COLLECTION_ALL, PLAIN),
    (PLAIN_LAST, PLAIN),
    (PLAIN_ALL, PLAIN),
]


COMPILE_ORDER = (COLLECTION_ALL, PLAIN_ALL, COLLECTION_LAST, PLAIN_TWIN, PLAIN_LAST, PLAIN)
"""The order in which `chain_variants` compiles (first calls) the compiled variants, unless told otherwise."""


def compile_orders() -> list[tuple[str, ...]]:
    """Every rotation of `COMPILE_ORDER`, each followed by its reverse.

    Over all of them each variant is compiled in each position twice, and of any two variants each is compiled
    first equally often (a Latin square and its mirror), so neither side of a comparison gets the better places.
    """
    rotations = [COMPILE_ORDER[i:] + COMPILE_ORDER[:i] for i in range(len(COMPILE_ORDER))]
    return [order for rotation in rotations for order in (rotation, rotation[::-1])]


def chain_variants(compiled: bool, order: tuple[str, ...] = COMPILE_ORDER) -> dict[str, Callable[[], Any]]:
    """The chain variants over one set of layers; each variant is its own module, compiled on its own and called
    one way. (Dynamo keeps its entries per code object: the twin has its own, the two collections hold one each
    on `BrickCollection.forward`; see the README.)

    Compiled, the variants are first called (which compiles them) in `order`; see `chain_all_orders` for why
    that matters."""
    layers = make_layers(10)
    modules: dict[str, Callable[..., Any]] = {
        PLAIN: PlainChain(layers),
        PLAIN_LAST: PlainChainLastOutput(layers),
        PLAIN_TWIN: PlainChainLastOutputTwin(layers),
        PLAIN_ALL: PlainChainAllOutputs(layers),
        COLLECTION_LAST: make_collection(layers),
        COLLECTION_ALL: make_collection(layers),
    }
    if compiled:
        modules = {name: torch.compile(module, fullgraph=True) for name, module in modules.items()}
    x = torch.randn(4, 8)
    inputs = {"x0": x}
    last = ("x10",)
    plain, plain_last, plain_twin, plain_all, collection_last, collection_all = modules.values()
    calls: dict[str, Callable[[], Any]] = {
        PLAIN: lambda: plain(x),
        PLAIN_LAST: lambda: plain_last(inputs),
        PLAIN_TWIN: lambda: plain_twin(inputs),
        PLAIN_ALL: lambda: plain_all(inputs),
        COLLECTION_LAST: lambda: collection_last(inputs, output_names=last),
        COLLECTION_ALL: lambda: collection_all(inputs),
    }
    if sorted(order) != sorted(calls):
        raise ValueError(f"order must name every variant once: {sorted(calls)}, got {order}")
    with torch.no_grad():
        for name in order:
            calls[name]()
        torch.testing.assert_close(collection_all(inputs), plain_all(inputs))
        torch.testing.assert_close(collection_last(inputs, output_names=last), plain_last(inputs))
        torch.testing.assert_close(plain_twin(inputs)["x10"], plain(x))
    return calls


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


def chain_all_orders(rounds: int, processes: int, timeout: float = 1800) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The compiled chain measured in `processes` fresh processes, each compiling the variants in another order.

    Where a module comes in the order of compilation changes its speed for the rest of the process, by several
    percent: the hand-written module compiled first of three measured 1.05 against an identical twin compiled
    last, 1.02 when compiled second; a collection 1.10-1.14 when compiled first, about 1.00 when compiled last.
    (The compiled graphs, called directly, time alike, and no single step of the call accounts for it; see the
    README.) One fixed order hands that to one side, so the processes take the orders of `compile_orders` in
    turn: with all of them (12) each variant is compiled in each place twice and each of two variants first
    equally often. Each process times its variants against each other with rotated rounds, as everywhere else.
    A combined figure is the geometric mean over the processes of their medians (likewise the quartiles and
    fastest-round ratios); `ratio_per_process` keeps each process's median.

    Returns the combined rows and, per process, its compile order and rows.
    """
    orders = compile_orders()
    runs: list[dict[str, Any]] = []
    for index in range(processes):
        order_index = index % len(orders)
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "rows.json")
            command = [sys.executable, os.path.abspath(__file__), "--only", "chain", "--compile-order", str(order_index)]
            command += ["--rounds", str(rounds), "--json", out]
            subprocess.run(command, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
            with open(out, encoding="utf-8") as handle:
                rows = json.load(handle)[f"chain, {COMPILED} (compile order {order_index})"]
        runs.append({"compile_order": orders[order_index], "rows": rows})
    combined = []
    for index, rows in enumerate(zip(*(run["rows"] for run in runs), strict=True)):
        row = dict(rows[0])
        for key in ("ms", "ratio", "q1", "q3", "fastest_ratio"):
            row[key] = statistics.geometric_mean(r[key] for r in rows)
        row["ratio_per_process"] = [run["rows"][index]["ratio"] for run in runs]
        combined.append(row)
    return combined, runs


COMPILED = "torch.compile(fullgraph=True)"
PLAIN_STEP = "plain module (metrics updated eagerly after it)"
COLLECTION_STEP = "collection, Stage.TRAIN"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for a smoke run)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", choices=["chain", "resnet"], help="measure one workload")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default: 401 for the chain, 61 for ResNet)")
    parser.add_argument(
        "--processes",
        type=int,
        default=len(compile_orders()),
        help=f"processes for the compiled chain, each compiling in another order (default: {len(compile_orders())}, all orders)",
    )
    parser.add_argument(
        "--compile-order",
        type=int,
        help="measure only the compiled chain, in this process, compiled in this order (an index into compile_orders())",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {"torch": torch.__version__, "load_average_at_start": os.getloadavg()}
    order = COMPILE_ORDER if args.compile_order is None else compile_orders()[args.compile_order]
    workloads: tuple[tuple[str, Callable[[bool], dict[str, Callable[[], Any]]], list[tuple[str, str]], int, int], ...] = (
        ("chain", lambda compiled: chain_variants(compiled, order), CHAIN_COMPARISONS, 20, 401),
        ("resnet", resnet_variants, [(COLLECTION_STEP, PLAIN_STEP)], 1, 61),
    )
    for workload, make, comparisons, number, default_rounds in workloads:
        if args.only not in (None, workload) or (args.compile_order is not None and workload != "chain"):
            continue
        rounds = 21 if args.quick else args.rounds or default_rounds
        for compiled in (True, False) if args.compile_order is None else (True,):
            mode = COMPILED if compiled else "eager"
            if workload == "chain" and compiled and args.compile_order is None:
                processes = 2 if args.quick else args.processes
                rows, runs = chain_all_orders(rounds, processes)
                results[f"{workload}, {mode}, per process"] = runs
                mode += f", {processes} processes each compiling in another order, combined (geometric mean)"
            else:
                with torch.no_grad() if workload == "chain" else torch.enable_grad():
                    rows = compare(make(compiled), comparisons, number=number, rounds=rounds)
                if args.compile_order is not None:
                    mode += f" (compile order {args.compile_order})"
            results[f"{workload}, {mode}"] = rows
            _print_rows(f"{workload}, {mode}, {rounds} rounds of {number} calls", rows)
    results["load_average_at_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


def _print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}", flush=True)
    for row in rows:
        per_process = row.get("ratio_per_process")
        each = "" if per_process is None else f"; per process {min(per_process):.3f} to {max(per_process):.3f}"
        print(
            f"  {row['variant']:<52} {row['ms']:>8.3f} ms  vs {row['reference']:<46} "
            f"ratio {row['ratio']:.3f} (quartiles {row['q1']:.3f}-{row['q3']:.3f}, "
            f"fastest rounds {row['fastest_ratio']:.3f}){each}",
            flush=True,
        )


if __name__ == "__main__":
    main()
