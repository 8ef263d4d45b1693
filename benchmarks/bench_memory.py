"""Peak memory of one inference call: a BrickCollection against a hand-written nn.Module doing the same work.

Each variant runs in its own process, so the peak resident set size (`ru_maxrss`) it reports belongs to that
call alone: a chain of `nn.Linear(1024, 1024)` on a batch of 2048 (8 MiB per activation), under no_grad.

- plain: the hand-written module, which drops each activation as soon as the next one exists.
- collection: `collection(named_inputs)`, which returns every intermediate, so all of them stay alive.
- collection, output_names: `collection(named_inputs, output_names=[last])`, which frees each intermediate
  once no later brick reads it.

Run: .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

BRICKS = 16
BATCH = 2048
WIDTH = 1024

_CHILD = """
import json, resource, torch
from torch import nn
from torchbricks import BrickCollection, BrickTrainable
torch.set_num_threads(1)
bricks, batch, width, variant = {bricks}, {batch}, {width}, {variant!r}
layers = [nn.Linear(width, width) for _ in range(bricks)]
x = torch.randn(batch, width)
plain = nn.Sequential(*layers)
collection = BrickCollection({{f"l{{i}}": BrickTrainable(layer, [f"x{{i}}"], [f"x{{i + 1}}"]) for i, layer in enumerate(layers)}})
with torch.no_grad():
    if variant == "plain":
        run = lambda: plain(x)
    elif variant == "collection":
        run = lambda: collection({{"x0": x}})
    else:
        run = lambda: collection({{"x0": x}}, output_names=[f"x{{bricks}}"])
    small = torch.randn(2, width)  # plans the call and warms the allocator without a large peak
    collection({{"x0": small}}); collection({{"x0": small}}, output_names=[f"x{{bricks}}"]); plain(small)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"variant": variant, "peak_increase_mib": (after - before) / 1024}}))
"""


def measure(variant: str, runs: int = 5) -> float:
    """The median over `runs` fresh processes: the allocator's thresholds make one run vary by an activation."""
    code = _CHILD.format(bricks=BRICKS, batch=BATCH, width=WIDTH, variant=variant)
    values = []
    for _ in range(runs):
        output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        values.append(float(json.loads(output.strip().splitlines()[-1])["peak_increase_mib"]))
    return statistics.median(values)


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # no options; --help answers
    activation_mib = BATCH * WIDTH * 4 / 2**20
    print(f"Peak memory of one call: {BRICKS} x nn.Linear({WIDTH}, {WIDTH}), batch {BATCH} ({activation_mib:.0f} MiB/activation)")
    plain = measure("plain")
    print(f"{'variant':<28} {'peak increase MiB':>18} {'ratio to plain':>15}")
    print(f"{'plain nn.Module':<28} {plain:>18.1f} {1.0:>15.2f}")
    for variant, label in (("collection", "collection, all outputs"), ("selected", "collection, output_names")):
        value = measure(variant)
        print(f"{label:<28} {value:>18.1f} {value / plain:>15.2f}")


if __name__ == "__main__":
    main()
