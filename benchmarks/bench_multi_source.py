"""One model from three separately labelled data sets against the three single-task models (issue 19).

Writes three shapes data sets of different images (seeds 11, 12, 13), takes boxes from the first, masks from the
second and class labels from the third, then runs, as a user does (subprocesses, packaged defaults):

- the three single tasks, `torchbricks train task=<task> data.root=<its set>`;
- `torchbricks train task=multitask data.sources=[...]` once per loss balancing strategy, with the training time
  the three single tasks took together as its `trainer.max_time`.

It prints each head's test metric alone and in each multi-source run (the target: within 0.05 of alone), and the
wall times (the target: a multi-source run in at most 1.3x the sum of the single tasks).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_multi_source.py --root build/bench_multi_source
     (--strategies fixed dwa --extra trainer.max_epochs=2 for a quick look)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from torchbricks.datasets.shapes import write_shapes_dataset

HEADS = {  # head -> (the task, the set it comes from, its folder in the set, the metric compared)
    "detection": ("detection", 0, "detection", "detection/map_50"),
    "segmentation": ("segmentation", 1, "segmentation", "segmentation/mean_iou"),
    "classification": ("classification", 2, "classification", "classification/accuracy"),
}
STRATEGIES = ("fixed", "uncertainty", "dwa", "pcgrad")


def run(arguments: list[str], experiments: Path, name: str) -> tuple[dict[str, Any], float]:
    """Runs `torchbricks train ARGUMENTS` into `experiments/name`; returns its metrics.json and wall time."""
    console = Path(sys.executable).parent / "torchbricks"
    command = [str(console), "train", *arguments, f"experiment.path_experiments={experiments}", f"experiment.name={name}"]
    command += ["experiment.overwrite=true", "trainer.enable_progress_bar=false"]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=7200, check=False)
    wall = time.perf_counter() - started
    (experiments / f"{name}.log").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        raise SystemExit(f"{name} failed: {completed.stderr.strip().splitlines()[-1:]}")
    return json.loads((experiments / name / "metrics.json").read_text()), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("build/bench_multi_source"))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--mode", default="max_size_cycle", help="data.mode of the multi-source runs")
    parser.add_argument(
        "--extra",
        nargs="*",
        default=[],
        help="overrides for every run, e.g. trainer.max_epochs=2; a trainer.max_time applies to the single tasks only",
    )
    parser.add_argument("--num-train", type=int, default=500, help="training images per set (fewer for a smoke run)")
    arguments = parser.parse_args()
    sets = []
    for seed in (11, 12, 13):
        folder = arguments.root / f"set{seed}"
        if not folder.exists():
            write_shapes_dataset(
                folder, num_train=arguments.num_train, num_val=max(4, arguments.num_train // 5), image_size=96, seed=seed
            )
        sets.append(folder)
    experiments = arguments.root / "experiments"
    experiments.mkdir(parents=True, exist_ok=True)

    alone: dict[str, float] = {}
    single_wall = 0.0
    single_training = 0.0
    for head, (task, index, folder, metric) in HEADS.items():
        metrics, wall = run([f"task={task}", f"data.root={sets[index] / folder}", *arguments.extra], experiments, f"alone_{head}")
        alone[head] = metrics["test"][metric]
        single_wall += wall
        single_training += float(metrics.get("training_seconds", 0.0))
    # The multi-source run gets the training time the three single tasks took together (as the README advises).
    budget = int(single_training)
    together_extra = [extra for extra in arguments.extra if not extra.startswith("trainer.max_time=")]
    if budget:
        together_extra.append(f"trainer.max_time=00:{budget // 3600:02d}:{budget % 3600 // 60:02d}:{budget % 60:02d}")
    sources = ", ".join(f"{{task: {task}, root: {sets[index] / folder}}}" for task, index, folder, _ in HEADS.values())
    rows = []
    for strategy in arguments.strategies:
        together = ["task=multitask", f"data.sources=[{sources}]", f"data.mode={arguments.mode}", f"loss_balancing={strategy}"]
        metrics, wall = run([*together, *together_extra], experiments, f"together_{strategy}")
        rows.append((strategy, {head: metrics["test"][metric] for head, (_, _, _, metric) in HEADS.items()}, wall))

    print(f"| run | {' | '.join(HEADS)} | wall time (s) | / summed single tasks |")
    print(f"| --- | {' | '.join('---:' for _ in HEADS)} | ---: | ---: |")
    print(f"| each head alone | {' | '.join(f'{alone[head]:.3f}' for head in HEADS)} | {single_wall:.0f} | 1.00 |")
    for strategy, values, wall in rows:
        cells = " | ".join(f"{values[head]:.3f} ({values[head] - alone[head]:+.3f})" for head in HEADS)
        print(f"| together, {strategy} | {cells} | {wall:.0f} | {wall / single_wall:.2f} |")


if __name__ == "__main__":
    main()
