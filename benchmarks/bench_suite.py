"""The benchmark suite (issue 16): the packaged recipes on data sets nobody tuned on, beside a plain reference.

For every chosen task and data set (`suite_data.SETS`), this writes the data (cached under `--cache`), runs
`python -m torchbricks train task=<task> data.root=<set>/<layout> <overrides>` as a user does (a subprocess, the
packaged defaults, the progress bar as shipped, its output in `<out>/<run>.log`) with the training time capped at
the budget (`++trainer.max_time`), reads the test metric from the experiment's `metrics.json`, then trains the plain
reference (`suite_reference.py`: ResNet-18 from scratch in a plain loop) for the same budget on the same folders, and
prints a markdown table.

Targets (issue 16): our metric >= reference - 0.02; on held-out shapes variants also accuracy >= 0.95,
mIoU >= 0.75, mAP@0.5 >= 0.70; multitask within 0.05 of the single-task figures of the same run.

Run:
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_suite.py --tasks classification --sets lookalike \
        [--budget-minutes 8] [--overrides "" --overrides "model.backbone=resnet18"] [--json build/suite/result.json]
    python benchmarks/bench_suite.py --list     # the sets, what they are, which are held out
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite_data import ALL_TASKS, SETS, write_set

METRICS = {
    "classification": [("classification/accuracy", "accuracy")],
    "segmentation": [("segmentation/mean_iou", "mIoU")],
    "detection": [("detection/map_50", "mAP@0.5")],
    "multitask": [("detection/map_50", "mAP@0.5"), ("segmentation/mean_iou", "mIoU")],
}
"""Per task: the test metric keys of `metrics.json` the table reports, with their short names."""
HELD_OUT_FLOORS = {"accuracy": 0.95, "mIoU": 0.75, "mAP@0.5": 0.70}
REAL_SETS = {"digits", "faces", "photo_patches", "textures", "trees"}
MULTITASK_TOLERANCE, REFERENCE_TOLERANCE = 0.05, 0.02
REFERENCE_CONFIG = "reference only"
"""The configuration of the rows `--reference-only` writes."""


@dataclass
class Row:
    task: str
    set: str
    held_out: bool
    metric: str
    ours: float | None
    ours_seconds: float
    ours_epochs: int | None = None
    reference: float | None = None
    reference_seconds: float | None = None
    reference_epochs: float | None = None
    config: str = "defaults"
    target: float | None = None
    target_text: str = ""
    met: bool | None = None
    experiment: str = ""
    log: str = ""
    error: str = ""
    overrides: list[str] = field(default_factory=list)


def max_time(budget_minutes: float) -> str:
    """Lightning's `DD:HH:MM:SS` for a budget in minutes (at least one second)."""
    seconds = max(round(budget_minutes * 60), 1)
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run_ours(
    task: str, root: Path, out: Path, name: str, budget_minutes: float, overrides: list[str]
) -> tuple[dict, float, Path]:
    """Runs the packaged job as a user does; returns its metrics.json (empty on failure), wall time and log file."""
    command = [sys.executable, "-m", "torchbricks", "train", f"task={task}", f"data.root={root}"]
    command += [f"experiment.path_experiments={out}", f"experiment.name={name}", "experiment.overwrite=true"]
    command += [f"++trainer.max_time={max_time(budget_minutes)}", *overrides]
    log = out / f"{name}.log"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as stream:
        stream.write(shlex.join(command) + "\n")
        stream.flush()
        completed = subprocess.run(
            command, stdout=stream, stderr=subprocess.STDOUT, timeout=budget_minutes * 60 * 3 + 600, check=False
        )
    wall = time.perf_counter() - started
    metrics_file = out / name / "metrics.json"
    if completed.returncode != 0 or not metrics_file.exists():
        return {}, wall, log
    return json.loads(metrics_file.read_text()), wall, log


def last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def set_targets(rows: list[Row]) -> None:
    """Fills each row's target: reference - 0.02, the held-out floor, or the single task's figure - 0.05."""
    single = {(row.set, row.metric, row.config): row.ours for row in rows if row.task != "multitask" and row.ours is not None}
    for row in rows:
        bounds: list[tuple[float, str]] = []
        if row.task == "multitask":
            value = single.get((row.set, row.metric, row.config))
            if value is not None:
                bounds.append((value - MULTITASK_TOLERANCE, f"single task - {MULTITASK_TOLERANCE}"))
        elif row.reference is not None:
            bounds.append((row.reference - REFERENCE_TOLERANCE, f"ref - {REFERENCE_TOLERANCE}"))
        if row.held_out and row.set not in REAL_SETS and row.metric in HELD_OUT_FLOORS:
            bounds.append((HELD_OUT_FLOORS[row.metric], f"{HELD_OUT_FLOORS[row.metric]}"))
        if bounds:
            row.target = max(value for value, _ in bounds)
            row.target_text = ">= " + ", ".join(text for _, text in bounds) + f" = {row.target:.3f}"
            row.met = None if row.ours is None else row.ours >= row.target


def _number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[Row]) -> str:
    lines = [
        "| task | data set | config | metric | ours | ours time (s) | ours epochs | reference | ref. time (s) | ref. epochs "
        "| ours - ref. | target | met |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        difference = None if row.ours is None or row.reference is None else row.ours - row.reference
        ours = _number(row.ours) if row.error == "" else f"failed: {row.error}"
        met = "" if row.met is None else "yes" if row.met else "no"
        lines.append(
            f"| {row.task} | {row.set}{' (held out)' if row.held_out else ''} | {row.config} | {row.metric} | {ours} | "
            f"{row.ours_seconds:.0f} | {'' if row.ours_epochs is None else row.ours_epochs} | {_number(row.reference)} | "
            f"{_number(row.reference_seconds, 0)} | {_number(row.reference_epochs, 1)} | "
            f"{'' if difference is None else f'{difference:+.3f}'} | {row.target_text} | {met} |"
        )
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(ALL_TASKS), choices=ALL_TASKS)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=sorted(SETS), metavar="SET")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=8.0,
        help="training time of each run, ours and the reference (default: the packaged trainer.max_time, 8 minutes)",
    )
    parser.add_argument(
        "--overrides",
        action="append",
        help='job overrides, e.g. "model.backbone=resnet18 data.image_size=96"; give it several times to compare '
        'configurations on the same data and reference ("" is the packaged defaults; default: the defaults only)',
    )
    parser.add_argument(
        "--label", action="append", default=[], help="a name for each --overrides in the table (default: the overrides)"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the plain reference (e.g. when comparing overrides)")
    parser.add_argument(
        "--reference-seed", type=int, default=0, help="the reference's seed (ours: --overrides seed=N), to measure its spread"
    )
    parser.add_argument(
        "--reference-only", action="store_true", help="train only the plain reference (its rows have no figure of ours)"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print one table from earlier --json files (runs of ours and --reference-only runs, e.g. on two cores); "
        "a row of ours gets the reference of its task and set, and the targets are computed again",
    )
    parser.add_argument("--micro", action="store_true", help="tiny sets (32 px, a few dozen images): the smoke test's size")
    parser.add_argument("--cache", type=Path, default=Path("build/suite/data"), help="where the data sets are written once")
    parser.add_argument("--out", type=Path, default=Path("build/suite/runs"), help="experiments and logs of the job")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--list", action="store_true", help="list the data sets and exit")
    return parser.parse_args(argv)


def configurations(arguments: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, overrides) of each job configuration to run: `--overrides` may be given several times."""
    result = []
    for index, text in enumerate(arguments.overrides or [""]):
        overrides = shlex.split(text)
        given = arguments.label[index] if index < len(arguments.label) else ""
        label = given or ("defaults" if not overrides else "_".join(overrides))
        result.append((re.sub(r"[^A-Za-z0-9._-]+", "-", label)[:80], overrides))
    return result


def merge(documents: list[dict]) -> list[Row]:
    """The rows of several `--json` files as one table: each row of ours gets the reference of its task and set.

    A later file's row replaces an earlier one of the same task, set, metric and configuration.
    """
    ours: dict[tuple[str, str, str, str], Row] = {}
    references: dict[tuple[str, str], Row] = {}
    for document in documents:
        for values in document["rows"]:
            row = Row(**values)
            if row.config == REFERENCE_CONFIG:
                references[(row.task, row.set)] = row
            else:
                ours[(row.task, row.set, row.metric, row.config)] = row
    for (task, set_name, _, _), row in ours.items():
        reference = references.get((task, set_name))
        if reference is not None:
            row.reference, row.reference_seconds = reference.reference, reference.reference_seconds
            row.reference_epochs = reference.reference_epochs
    rows = list(ours.values())
    set_targets(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.merge:
        print(markdown(merge([json.loads(path.read_text()) for path in arguments.merge])))
        return 0
    if arguments.list:
        for suite_set in SETS.values():
            kind = "held out" if suite_set.held_out else "tuning"
            print(f"{suite_set.name:15s} {kind:9s} {','.join(suite_set.tasks):45s} {suite_set.description}")
        return 0
    rows: list[Row] = []
    for set_name in arguments.sets:
        suite_set = SETS[set_name]
        for task in arguments.tasks:
            if task not in suite_set.tasks:
                continue
            data_root = write_set(arguments.cache, set_name, micro=arguments.micro) / suite_set.layout(task)
            reference = None
            if not arguments.no_reference and task != "multitask":
                from suite_reference import train_reference

                print(f"[suite] {task} on {set_name}: plain ResNet-18 reference, {arguments.budget_minutes} min", flush=True)
                reference = train_reference(
                    task, data_root, arguments.budget_minutes * 60, seed=arguments.reference_seed, tile_size=suite_set.tile_size
                )
                # Printed as it comes, so a later run's failure does not lose it (the table comes at the end).
                print(f"[suite]   reference: {reference.metric:.3f} in {reference.wall_seconds:.0f} s", flush=True)
            if arguments.reference_only:
                if reference is not None:
                    rows.append(
                        Row(
                            task=task,
                            set=set_name,
                            held_out=suite_set.held_out,
                            metric=METRICS[task][0][1],
                            ours=None,
                            ours_seconds=0.0,
                            reference=reference.metric,
                            reference_seconds=reference.wall_seconds,
                            reference_epochs=reference.epochs,
                            config=REFERENCE_CONFIG,
                        )
                    )
                continue
            for label, overrides in configurations(arguments):
                name = f"{set_name}{'-micro' if arguments.micro else ''}-{task}-{label}"
                print(f"[suite] {task} on {set_name}: torchbricks train ({label}), {arguments.budget_minutes} min", flush=True)
                tiling = [] if suite_set.tile_size is None else [f"data.tile_size={suite_set.tile_size}"]
                metrics, wall, log = run_ours(task, data_root, arguments.out, name, arguments.budget_minutes, tiling + overrides)
                print(f"[suite]   ours: {metrics.get('test', {})} in {wall:.0f} s", flush=True)
                for key, short in METRICS[task]:
                    value = metrics.get("test", {}).get(key)
                    rows.append(
                        Row(
                            task=task,
                            set=set_name,
                            held_out=suite_set.held_out,
                            metric=short,
                            ours=None if value is None else float(value),
                            ours_seconds=wall,
                            ours_epochs=metrics.get("epochs"),
                            reference=None if reference is None else reference.metric,
                            reference_seconds=None if reference is None else reference.wall_seconds,
                            reference_epochs=None if reference is None else reference.epochs,
                            config=label,
                            experiment=str(arguments.out / name),
                            log=str(log),
                            error="" if metrics else last_line(log),
                            overrides=overrides,
                        )
                    )
    set_targets(rows)
    table = markdown(rows)
    print(table)
    if arguments.json is not None:
        from torchbricks._files import write_json

        document = {"budget_minutes": arguments.budget_minutes, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
        write_json(arguments.json, {**document, "rows": [asdict(row) for row in rows], "table": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
