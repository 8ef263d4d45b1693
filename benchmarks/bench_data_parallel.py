"""`torch.compile` around `nn.DataParallel`'s copying: graphs compiled per call, for a BrickCollection and for an
`nn.Sequential` of the same layers, in one process on the CPU.

`nn.DataParallel` runs its copies in threads on GPUs; here torch's own `replicate` runs with its broadcast replaced
by clones, and one compiled function copies the model to two devices and calls each copy with half of the batch (a
CPU stand-in for `torch.compile(nn.DataParallel(model))`). Reported per call: the graphs dynamo has compiled so far
and the call's time. The copies are new objects on every call, which is what the compiled code guards.

Run: .venv/bin/python benchmarks/bench_data_parallel.py [--calls 12] [--backend eager]
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch._dynamo.utils import counters

from torchbricks import BrickCollection, BrickTrainable


def clone_broadcast(tensors: Sequence[torch.Tensor], devices: Sequence[int], detach: bool = False) -> list[list[torch.Tensor]]:
    """replicate's broadcast to the devices (CUDA only), as copies on the CPU."""
    return [[tensor.detach().clone() if detach else tensor.clone() for tensor in tensors] for _ in devices]


def models() -> dict[str, tuple[nn.Module, Callable[[nn.Module, torch.Tensor], torch.Tensor]]]:
    first, second = nn.Linear(5, 5), nn.Linear(5, 3)
    collection = BrickCollection({"a": BrickTrainable(first, ["x"], ["h"]), "b": BrickTrainable(second, ["h"], ["y"])})
    return {
        "BrickCollection": (collection, lambda model, x: model(named_inputs={"x": x})["y"]),
        "nn.Sequential": (nn.Sequential(first, second), lambda model, x: model(x)),
    }


def measure(name: str, calls: int, backend: str) -> None:
    replicate_module = importlib.import_module("torch.nn.parallel.replicate")
    replicate_module._broadcast_coalesced_reshape = clone_broadcast  # type: ignore[attr-defined]
    model, call = models()[name]

    def data_parallel_step(x: torch.Tensor) -> torch.Tensor:
        copies = replicate_module.replicate(model, [0, 1])
        return torch.cat([call(copy, part) for copy, part in zip(copies, x.chunk(2), strict=True)])

    torch._dynamo.reset()
    counters.clear()
    step = torch.compile(data_parallel_step, backend=backend)
    x = torch.randn(8, 5)
    print(f"{name}:")
    for number in range(1, calls + 1):
        start = time.perf_counter()
        step(x)
        elapsed = time.perf_counter() - start
        print(f"  call {number:2d}: {counters['stats']['unique_graphs']:2d} graphs so far, {elapsed * 1e3:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--backend", default="eager", help="torch.compile backend (inductor compiles each graph slower)")
    arguments = parser.parse_args()
    for name in models():
        measure(name, arguments.calls, arguments.backend)


if __name__ == "__main__":
    main()
