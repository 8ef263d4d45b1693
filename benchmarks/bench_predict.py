"""`torchbricks predict` against the same bricks called in a plain loop, in one process, reported as a ratio.

For each task: a folder of 200 generated shapes images at 96x96 and an experiment trained for it (one tiny epoch
by default, or `--experiments DIR` holding `<task>/` experiments trained at 96x96). Then, alternated `--repeats`
times, the median of:

- `predict`: `torchbricks.predict.predict_images` on the folder as the command runs it: reading the PNG files,
  the inference stage in batches, the results at the original size and every file written (drawn pictures,
  masks, predictions.json / .csv, and the overlays with `--overlays`), progress lines on (into a buffer);
- `plain`: the collection's inference outputs (`output_names` of the heads) computed batch by batch from the
  same images preloaded as one float tensor; nothing decoded, converted or written;
- `plain, reading the files`: the loop a user writes over the folder: each file read with Pillow and made into the
  model's input as training's test transform does, then the same outputs; nothing written.

Target: predict at >= 0.8x the images/second of the plain loop. The last column divides images by the process's CPU
time (every thread) instead of the wall time: what each side costs in computation, whatever other processes on the
core and the disk's waits do to the wall time (on the shared project machine both moved single figures by 2-5x).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_predict.py [--tasks detection segmentation] [--workers 1]
[--labels yolo|voc|coco|folders] (predict also writes its labels, on the tasks whose heads have them)
[--threads 2] (torch threads of both sides; the whole 2-core CPU: no `taskset`) [--lanes N] (predict's lanes;
default: the library's, two when torch has two or more threads)
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.predict import PREDICTED_TAGS, BrickBackend, predict_images
from torchbricks.trained_experiment import load_experiment

LAYOUTS = {"classification": "classification", "segmentation": "segmentation", "detection": "detection", "multitask": "detection"}
NUM_IMAGES = 200
SIZE = 96


def train(task: str, root: Path, experiments: Path) -> Path:
    status = main(
        [
            "train",
            f"task={task}",
            f"data.root={root / LAYOUTS[task]}",
            f"experiment.path_experiments={experiments}",
            f"experiment.name={task}",
            "trainer.max_epochs=1",
            f"data.image_size={SIZE}",
            "data.num_workers=0",
            "n_visualized=0",
            "export_onnx=false",
            "trainer.enable_progress_bar=false",
        ]
    )
    if status != 0:
        raise SystemExit(f"training {task} failed")
    return experiments / task


def images_folder(root: Path, task: str) -> Path:
    layout = root / LAYOUTS[task]
    return (
        layout / "val"
        if task == "classification"
        else (layout / "images" / "val" if task != "segmentation" else layout / "val" / "images")
    )


def bench(
    task: str,
    experiment_folder: Path,
    folder: Path,
    batch_size: int,
    workers: int,
    repeats: int,
    scratch: Path,
    pictures: str | None,
    overlays: bool = False,
    lanes: int | None = None,
    labels: str | None = None,
) -> None:
    experiment = load_experiment(experiment_folder)
    backend = BrickBackend(experiment, batch_size=batch_size)
    files = sorted(path for path in folder.rglob("*.png"))
    preloaded = torch.stack([torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1) for path in files])
    preloaded = preloaded.float() / 255.0

    def plain() -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for start in range(0, len(preloaded), batch_size):
                outputs = experiment.collection(
                    named_inputs={"raw": preloaded[start : start + batch_size]},
                    tags=PREDICTED_TAGS,
                    return_inputs=False,
                    output_names=backend.output_names,
                )
                _ = [value.cpu().numpy() for value in outputs.values()]
        return len(preloaded) / (time.perf_counter() - started), len(preloaded) / (time.process_time() - cpu)

    from torchvision.transforms.v2 import functional

    size = experiment.image_size or (SIZE, SIZE)

    def plain_from_files() -> tuple[float, float]:
        # The loop a user writes over a folder: read each file, make the model's input as training's test transform
        # does (resize, float), call the bricks; nothing written.
        started, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for start in range(0, len(files), batch_size):
                images = [
                    torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)
                    for path in files[start : start + batch_size]
                ]
                batch = torch.stack([functional.resize(image, list(size), antialias=True) for image in images]).float() / 255.0
                outputs = experiment.collection(
                    named_inputs={"raw": batch}, tags=PREDICTED_TAGS, return_inputs=False, output_names=backend.output_names
                )
                _ = [value.cpu().numpy() for value in outputs.values()]
        return len(files) / (time.perf_counter() - started), len(files) / (time.process_time() - cpu)

    def predict(index: int) -> tuple[float, float]:
        out = scratch / f"{task}_{index}"
        started, cpu = time.perf_counter(), time.process_time()
        predict_images(
            backend,
            [folder],
            out,
            experiment.class_names,
            experiment.category_ids,
            batch_size=batch_size,
            workers=workers,
            pictures=pictures,
            overlays=overlays,
            lanes=lanes,
            labels=labels if task in LABELLED_TASKS.get(labels or "", ()) else None,
            stream=io.StringIO(),
        )
        rates = len(files) / (time.perf_counter() - started), len(files) / (time.process_time() - cpu)
        shutil.rmtree(out)
        return rates

    plain()  # warm-up: the first call builds the plan and touches the weights
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "files": [], "predict": []}
    for index in range(repeats):
        runs["predict"].append(predict(index))
        runs["plain"].append(plain())
        runs["files"].append(plain_from_files())
    wall = {name: statistics.median(rate for rate, _ in values) for name, values in runs.items()}
    cpu = {name: statistics.median(rate for _, rate in values) for name, values in runs.items()}
    print(
        f"| {task} | {len(files)} | {wall['plain']:.0f} | {wall['files']:.0f} | {wall['predict']:.0f} "
        f"| {wall['predict'] / wall['plain']:.2f} | {wall['predict'] / wall['files']:.2f} "
        f"| {cpu['predict'] / cpu['files']:.2f} |",
        flush=True,
    )


LABELLED_TASKS = {
    "yolo": ("detection", "multitask"),
    "voc": ("detection", "multitask"),
    "coco": ("detection", "segmentation", "multitask"),
    "folders": ("classification",),
}
"""The tasks whose heads `predict --labels <layout>` writes labels of."""


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--experiments", type=Path, default=None, help="trained <task>/ experiments at 96x96")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--pictures", default="jpg", choices=["jpg", "png", "none"], help="drawn pictures (none: only the results)"
    )
    parser.add_argument("--overlays", action="store_true", help="also write the colour overlays, as `predict --overlays`")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads, the same for both sides (the reading/writing threads are extra)"
    )
    parser.add_argument(
        "--lanes", type=int, default=None, help="batches predict runs at once (default: the library's, 2 with 2+ torch threads)"
    )
    parser.add_argument(
        "--labels",
        default=None,
        choices=list(LABELLED_TASKS),
        help="also write the predictions as labels, as `predict --labels` (on the tasks whose heads have them)",
    )
    parser.add_argument("--scratch", type=Path, default=Path("build/bench_predict"), help="where the outputs are written")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    arguments.scratch.mkdir(parents=True, exist_ok=True)
    pictures = None if arguments.pictures == "none" else arguments.pictures
    # Under build/ by default: creating files in /tmp was 10x slower than in the work tree on the project machine.
    with tempfile.TemporaryDirectory(dir=arguments.scratch) as temporary:
        scratch = Path(temporary)
        root = write_shapes_dataset(scratch / "shapes", num_train=8, num_val=NUM_IMAGES, image_size=SIZE)
        print(
            f"batch size {arguments.batch_size}, {arguments.threads} torch threads, {arguments.workers} reading/writing threads, "
            f"pictures {arguments.pictures}, lanes {arguments.lanes or 'default'}, "
            f"overlays {'on' if arguments.overlays else 'off'}, labels {arguments.labels or 'none'}, "
            f"median of {arguments.repeats}"
        )
        print(
            "| task | images | plain loop, preloaded (images/s) | plain loop, reading the files (images/s) | predict (images/s) "
            "| ratio to preloaded | ratio to reading the files | ratio to reading the files, CPU time |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for task in arguments.tasks:
            experiment = (arguments.experiments / task) if arguments.experiments else train(task, root, scratch / "experiments")
            bench(
                task,
                experiment,
                images_folder(root, task),
                arguments.batch_size,
                arguments.workers,
                arguments.repeats,
                scratch,
                pictures,
                arguments.overlays,
                arguments.lanes,
                arguments.labels,
            )


if __name__ == "__main__":
    run()
