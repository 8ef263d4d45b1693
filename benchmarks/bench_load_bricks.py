"""Time and peak memory of `load_bricks` on a 98 MB checkpoint (ResNet-50's weights as one backbone brick and a head).

    nice -n 10 .venv/bin/python benchmarks/bench_load_bricks.py [--repeats 15] [--compare OLD_SRC]

Writes the bricks once (`save_bricks`, `.pt` and `.safetensors`), then loads them in fresh processes, one per variant
and format, the variants taking turns:

- `load_bricks`: the code on `sys.path` (or `--compare`'s source folder, `git archive COMMIT src | tar -x -C DIR`,
  for the code before a change: run both in one call so they meet the same load);
- `plain`: the loop a user writes by hand, `torch.load(file, weights_only=True)` (or safetensors' `load_file`) and
  `load_state_dict` per brick, no check of any kind: the floor.

Each process builds the collection, loads once to measure how much its peak resident set size (`ru_maxrss`) grew
(the files are in the page cache: they were just written and read), then times `--repeats` loads and prints the
median. The ratio column is each variant's median over the plain loop's in the same format. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, statistics, sys, time
import torch, torchvision
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickTrainable
folder, variant, file_format, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(1)
resnet = torchvision.models.resnet50(weights=None)
head = resnet.fc
resnet.fc = torch.nn.Identity()
collection = BrickCollection({
    "backbone": BrickTrainable(resnet, input_names=["raw"], output_names=["features"]),
    "head": BrickTrainable(head, input_names=["features"], output_names=["logits"]),
})
def plain():
    for name, brick in (("backbone", collection["backbone"]), ("head", collection["head"])):
        path = f"{folder}/{name}.{file_format}"
        if file_format == "pt":
            state = torch.load(path, weights_only=True)
        else:
            import safetensors.torch
            state = safetensors.torch.load_file(path)
        brick.load_state_dict(state)
load = plain if variant == "plain" else lambda: collection.load_bricks(folder, file_format=file_format)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
load()
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
seconds = []
for _ in range(repeats):
    started = time.perf_counter()
    load()
    seconds.append(time.perf_counter() - started)
print(json.dumps({"median": statistics.median(seconds), "grown_mb": grown}))
"""


def _write_bricks(folder: Path) -> float:
    """The ResNet-50 bricks in both formats; returns their size in MB."""
    import torch
    import torchvision

    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import BrickTrainable

    resnet = torchvision.models.resnet50(weights=None)
    head = resnet.fc
    resnet.fc = torch.nn.Identity()
    collection = BrickCollection(
        {
            "backbone": BrickTrainable(resnet, input_names=["raw"], output_names=["features"]),
            "head": BrickTrainable(head, input_names=["features"], output_names=["logits"]),
        }
    )
    for file_format in ("pt", "safetensors"):
        collection.save_bricks(folder / file_format, file_format=file_format)  # type: ignore[arg-type]
    return sum(file.stat().st_size for file in (folder / "pt").glob("*.pt")) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2, help="times each variant runs, taking turns")
    parser.add_argument("--compare", type=Path, default=None, help="another source folder to load with (older code)")
    arguments = parser.parse_args()
    variants: dict[str, str | None] = {"plain": None, "load_bricks": None}
    if arguments.compare is not None:
        variants["load_bricks (--compare)"] = str(arguments.compare.resolve())
    with tempfile.TemporaryDirectory() as scratch:
        megabytes = _write_bricks(Path(scratch))
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(arguments.rounds):
            for file_format in ("pt", "safetensors"):
                for variant, source in variants.items():
                    environment = dict(os.environ, OMP_NUM_THREADS="1")
                    if source is not None:
                        environment["PYTHONPATH"] = source
                    code = [sys.executable, "-c", _CHILD, f"{scratch}/{file_format}", variant.split()[0], file_format]
                    done = subprocess.run(
                        [*code, str(arguments.repeats)], capture_output=True, text=True, check=True, env=environment
                    )
                    results.setdefault((file_format, variant), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{megabytes:.0f} MB of weights, median of {arguments.repeats} loads per process, {arguments.rounds} processes each")
    print("| format | variant | seconds per load | ratio to plain | peak RSS grew (MB) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (file_format, variant), runs in results.items():
        median = statistics.median(run["median"] for run in runs)
        plain = statistics.median(run["median"] for run in results[(file_format, "plain")])
        grown = " / ".join(f"{run['grown_mb']:.0f}" for run in runs)
        print(f"| {file_format} | {variant} | {median:.3f} | {median / plain:.2f} | {grown} |")


if __name__ == "__main__":
    main()
