"""Per-call overhead of a BrickCollection against a hand-written nn.Module doing the same work, in one process.

Both run the same `nn.Linear(8, 8)` modules in sequence (single thread, CPU, no_grad). Reported: the ratio of
the collection's time to the plain module's, the overhead per brick in microseconds, how that overhead scales
from 100 to 3000 bricks, how build time scales, and the Python memory each brick adds.

Run: .venv/bin/python benchmarks/bench_overhead.py
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from torchbricks import BrickCollection, BrickTrainable


class PlainChain(nn.Module):
    """The hand-written reference: calls the same modules one after another."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def make_layers(count: int) -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Linear(8, 8) for _ in range(count)]


def make_collection(layers: list[nn.Module]) -> BrickCollection:
    bricks = {
        f"linear{i}": BrickTrainable(layer, input_names=[f"x{i}"], output_names=[f"x{i + 1}"]) for i, layer in enumerate(layers)
    }
    return BrickCollection(bricks)


def best_seconds(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Median of the per-call times of `repeat` runs of `number` calls; the median resists noise from other work."""
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number


def compare(count: int, number: int, repeat: int) -> dict[str, float]:
    layers = make_layers(count)
    plain = PlainChain(layers)
    collection = make_collection(layers)
    x = torch.randn(4, 8)
    inputs = {"x0": x}
    last = (f"x{count}",)
    with torch.no_grad():
        torch.testing.assert_close(collection(inputs)[last[0]], plain(x))
        torch.testing.assert_close(collection(inputs, output_names=last)[last[0]], plain(x))
        # interleave the variants to share any drift of the machine
        plain_times, collection_times, selected_times = [], [], []
        for _ in range(repeat):
            plain_times.append(best_seconds(lambda: plain(x), number, 1))
            collection_times.append(best_seconds(lambda: collection(inputs), number, 1))
            selected_times.append(best_seconds(lambda: collection(inputs, output_names=last), number, 1))
    plain_s, collection_s, selected_s = (statistics.median(times) for times in (plain_times, collection_times, selected_times))
    return {
        "bricks": count,
        "plain_us": plain_s * 1e6,
        "collection_us": collection_s * 1e6,
        "ratio": collection_s / plain_s,
        "overhead_us_per_brick": (collection_s - plain_s) * 1e6 / count,
        "output_names_ratio": selected_s / plain_s,
        "output_names_overhead_us_per_brick": (selected_s - plain_s) * 1e6 / count,
    }


def build_time(count: int) -> dict[str, float]:
    layers = make_layers(count)
    gc.collect()
    start = time.perf_counter()
    collection = make_collection(layers)
    built = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        collection({"x0": torch.randn(4, 8)})
    first_call = time.perf_counter() - start
    return {
        "bricks": count,
        "build_ms": built * 1e3,
        "first_call_ms": first_call * 1e3,
        "build_us_per_brick": built * 1e6 / count,
    }


def python_memory_per_brick(count: int) -> dict[str, float]:
    """Bytes of Python objects a collection (with its plan cached) adds on top of the same plain module."""
    layers = make_layers(count)
    gc.collect()
    tracemalloc.start()
    plain = PlainChain(layers)
    plain_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gc.collect()
    tracemalloc.start()
    collection = make_collection(layers)
    with torch.no_grad():
        collection({"x0": torch.randn(4, 8)})
    collection_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del plain, collection
    return {"bricks": count, "plain_bytes_per_brick": plain_bytes / count, "collection_bytes_per_brick": collection_bytes / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (for a smoke run)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeat = 3 if args.quick else 15
    results: dict[str, Any] = {"torch": torch.__version__}

    print("Overhead against a hand-written nn.Module (chain of nn.Linear(8, 8), batch 4, no_grad, 1 thread)")
    header = f"{'bricks':>7} {'plain us':>10} {'bricks us':>10} {'ratio':>7} {'overhead us/brick':>18}"
    print(f"{header}   with output_names: ratio, us/brick")
    results["overhead"] = []
    for count in (1, 10, 50, 100, 1000, 3000):
        number = max(5, 20000 // count) if not args.quick else max(2, 2000 // count)
        row = compare(count, number, repeat)
        results["overhead"].append(row)
        times = f"{row['plain_us']:>10.1f} {row['collection_us']:>10.1f}"
        selected = f"{row['output_names_ratio']:>7.3f} {row['output_names_overhead_us_per_brick']:>9.3f}"
        print(f"{count:>7} {times} {row['ratio']:>7.3f} {row['overhead_us_per_brick']:>18.3f}   {selected}")

    print("\nBuild time (construction + validation) and first call (planning)")
    print(f"{'bricks':>7} {'build ms':>9} {'us/brick':>9} {'first call ms':>14}")
    results["build"] = []
    for count in (100, 1000, 3000):
        row = build_time(count)
        results["build"].append(row)
        print(f"{count:>7} {row['build_ms']:>9.1f} {row['build_us_per_brick']:>9.1f} {row['first_call_ms']:>14.1f}")

    print("\nPython memory per brick (tracemalloc; tensors excluded, they are shared)")
    row = python_memory_per_brick(1000)
    results["memory"] = row
    print(f"plain module {row['plain_bytes_per_brick']:.0f} B/brick, collection {row['collection_bytes_per_brick']:.0f} B/brick")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
