"""Peak memory of writing one Lightning checkpoint: Lightning's writer against torchbricks' atomic one.

Lightning's `TorchCheckpointIO` saves the checkpoint into memory first, then writes those bytes; `AtomicCheckpointIO`
(`torchbricks.lightning.checkpoint_io`) saves straight into a temporary file beside the target. Each variant runs in
its own process and reports how much its peak resident set size (`ru_maxrss`) grew while saving a checkpoint of
400 MB of weights.

Run: .venv/bin/python benchmarks/bench_checkpoint_memory.py
"""

from __future__ import annotations

import subprocess
import sys

_CHILD = """
import resource, shutil, tempfile, torch
from pathlib import Path
from pytorch_lightning.plugins import TorchCheckpointIO
from torchbricks.lightning.checkpoint_io import AtomicCheckpointIO
state = {{"state_dict": {{"weight": torch.randn(100_000_000)}}}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
folder = Path(tempfile.mkdtemp())
{writer}().save_checkpoint(state, folder / "last.ckpt")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
shutil.rmtree(folder)
"""


def main() -> None:
    for writer in ("TorchCheckpointIO", "AtomicCheckpointIO"):
        grown = subprocess.run([sys.executable, "-c", _CHILD.format(writer=writer)], capture_output=True, text=True, check=True)
        print(f"{writer}: peak RSS grew {grown.stdout.strip()} MB saving a 400 MB checkpoint")


if __name__ == "__main__":
    main()
