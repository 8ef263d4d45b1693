"""Seconds per epoch of the training loader on phone-sized photographs, with and without the decoded-image cache.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_loading.py [--images 60] [--epochs 3] [--scratch DIR]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_loading.py --train-minutes 3     # also `torchbricks train`, both ways

Writes `--images` JPEG photographs of 4032 x 3024 pixels (12 megapixels, quality 90, as a phone saves them: scikit-learn's
two sample photographs enlarged, with sensor-like noise, about 3-4 MB each) as a folder of three class folders, then
iterates the training loader of `ImageFolderDataModule` as the packaged config builds it (`data.image_size` from the
data, the packaged augmentations, one loader process) for `--epochs` epochs, in three variants side by side in this
one process:

- `cache` (`data.cache_megabytes: 1024`, the packaged default): the first epoch decodes (a JPEG reduced by 2, 4 or 8
  where the input size allows: `torchbricks._pictures.reduce_jpeg_decoding`), later ones read memory;
- `cache, decoded in full`: the same with every JPEG decoded at its whole size, as before 2026-12-06;
- `no cache` (`data.cache_megabytes=0`): every image decoded (reduced) every epoch;
- `plain`: the loop a user writes by hand, torchvision's `ImageFolder` with `v2.Resize` and the same augmentations,
  one loader process.

Each epoch is timed from the loader's creation to its last batch (the loader process starts in the first epoch
only: it is persistent, as the job's). The ratio column is each variant's epoch time over the plain loop's. With
`--train-minutes M`, `torchbricks train task=classification` runs on the same folder for M minutes with each cache
setting and the epochs it completed are read from its `metrics.json`. A measurement, not a test.

Where a training step's time goes on the dense tasks, loader against model, as the benchmark suite trains them:

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_loading.py --dense multitask segmentation detection \
        [--sets lookalike_pairs small_clutter shapes] [--images 64] [--epochs 4]

writes `--images` training images of each set's kind (the suite's generator and knobs, `suite_data.py`, another seed:
timing only, nothing is chosen on them; `shapes` is `torchbricks make-dataset shapes`), builds the job of the packaged
config (`task=<task> data.root=...`: the data module, the model, the optimizer, as `torchbricks train` builds them)
and runs its training steps with the loader's work done in this process, each stage timed apart: the image (from the
decoded-image cache), the mask (segmentation: read; multitask: drawn from the COCO polygons, `rasterize_polygons`),
the outlines, each transform step, the collate, then the model's forward and loss, backward and optimizer step. The
suite pins a job to one core (`taskset -c 1`), where the loader process and the training take turns, so their times
add up as they do here. The first epoch (decoding, filling the cache) is left out; the table gives the median over the
later epochs of each stage's milliseconds per image and its share of the step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PHOTO_SIZE = (4032, 3024)
CLASSES = ("a", "b", "c")


def write_photos(folder: Path, count: int) -> Path:
    """`count` 12-megapixel JPEGs in `folder/train/<class>/` (and a third as many in `val/`), written once."""
    from sklearn.datasets import load_sample_images

    marker = folder / f".complete_{count}"
    if marker.exists():
        return folder
    rng = np.random.default_rng(0)
    sources = [Image.fromarray(image) for image in load_sample_images().images]
    for split, number in (("train", count), ("val", max(3, count // 3))):
        for index in range(number):
            source = sources[index % len(sources)].resize(PHOTO_SIZE, Image.Resampling.BICUBIC)
            pixels = np.asarray(source, dtype=np.int16) + rng.integers(-6, 7, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3))
            path = folder / split / CLASSES[index % len(CLASSES)] / f"IMG_{index:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    marker.touch()
    return folder


def _augmentations() -> list[Any]:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    import torchbricks

    config = OmegaConf.load(Path(torchbricks.__file__).parent / "configs" / "data" / "image_folder.yaml")
    return [instantiate(step) for step in config.augmentations]


def _epochs(loader: Any, epochs: int) -> list[float]:
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for _batch in loader:
            pass
        seconds.append(time.perf_counter() - started)
    return seconds


def time_variants(root: Path, epochs: int) -> tuple[tuple[int, int], dict[str, list[float]]]:
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    from torchbricks import _pictures
    from torchbricks.lightning.image_datamodules import ImageFolderDataModule

    results: dict[str, list[float]] = {}
    size: tuple[int, int] = (0, 0)
    reduce = _pictures.reduce_jpeg_decoding
    for name, megabytes, reduced in (("cache", 1024.0, True), ("cache, decoded in full", 1024.0, False), ("no cache", 0.0, True)):
        # the loader process is forked after this: it decodes as its parent was told
        _pictures.reduce_jpeg_decoding = reduce if reduced else (lambda image, at_least: 1)  # type: ignore[assignment]
        data = ImageFolderDataModule(
            root,
            image_size=None,
            batch_size=16,
            num_workers=1,
            augmentations=_augmentations(),
            image_scale=1.5,
            cache_megabytes=megabytes,
        )
        size = data.image_size
        data.setup("fit")
        results[name] = _epochs(data.train_dataloader(), epochs)
    _pictures.reduce_jpeg_decoding = reduce  # type: ignore[assignment]
    transform = v2.Compose([v2.ToImage(), v2.Resize(size, antialias=True), *_augmentations(), v2.ToDtype(_float(), scale=True)])
    plain = ImageFolder(str(root / "train"), transform=transform)
    loader = DataLoader(plain, batch_size=16, shuffle=True, drop_last=True, num_workers=1, persistent_workers=True)
    results["plain"] = _epochs(loader, epochs)
    return size, results


def _float() -> Any:
    import torch

    return torch.float32


def train_epochs(root: Path, scratch: Path, minutes: float) -> dict[str, dict[str, Any]]:
    """Epochs `torchbricks train` completes in `minutes` with the cache and without it."""
    found = {}
    for name, megabytes in (("cache", 1024), ("no cache", 0)):
        out = scratch / f"train_{megabytes}"
        command = [
            sys.executable, "-m", "torchbricks", "train", "task=classification", f"data.root={root}",
            f"data.cache_megabytes={megabytes}", f"trainer.max_time=00:00:{int(minutes):02d}:{int(minutes % 1 * 60):02d}",
            "early_stopping.patience=null", f"experiment.path_experiments={out}", "experiment.name=run",
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        metrics = json.loads((out / "run" / "metrics.json").read_text())
        found[name] = {"epochs": metrics.get("epochs"), "test_accuracy": metrics.get("test", {}).get("classification/accuracy")}
    return found


DENSE_LAYOUTS = {"segmentation": "segmentation", "detection": "detection", "multitask": "detection"}


def write_dense_set(scratch: Path, name: str, images: int) -> Path:
    """`images` training images (8 to validate) of set `name`'s kind in the segmentation and COCO layouts, written once."""
    root = scratch / "dense" / f"{name}_{images}"
    if root.exists():
        return root
    if name == "shapes":
        from torchbricks.datasets.shapes import write_shapes_dataset

        return write_shapes_dataset(root, num_train=images, num_val=8)
    import suite_data  # benchmarks/, beside this script

    spec = getattr(suite_data, name.upper())
    drawn = suite_data.ShapesSpec(**{**spec.__dict__, "num_train": images, "num_val": 8, "num_test": 8, "seed": spec.seed + 7})
    return suite_data.write_shapes_variant(root, drawn, ("segmentation", "detection"))


class _Stages:
    """Seconds per stage of the current epoch, and the methods and transform steps that add to them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, function: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - started)

        return run


def time_dense_steps(task: str, root: Path, epochs: int) -> tuple[tuple[int, int], int, list[dict[str, float]]]:
    """The input size, the training images and, per epoch, the seconds of each stage of `task`'s training steps."""
    from torchbricks._experiment import with_home_expanded
    from torchbricks.configuration import compose_config, create_job
    from torchbricks.lightning.main_job import create_module
    from torchbricks.lightning.multi_source_config import expand_sources
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    overrides = [f"task={task}", f"data.root={root / DENSE_LAYOUTS[task]}", "data.num_workers=0"]
    settings, parts = create_job(expand_sources(with_home_expanded(compose_config(overrides))))
    module = create_module(settings, parts.brick_collection, parts.create_optimizer)
    data = parts.data_module
    data.setup("fit")
    loader = data.train_dataloader()
    stages = _Stages()
    originals = _time_the_stages(loader.dataset, stages)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    optimizer = optimizer[0] if isinstance(optimizer, list | tuple) else optimizer
    module.train()
    per_epoch = []
    try:
        for _ in range(epochs):
            stages.seconds = {}
            for indices in loader.batch_sampler:
                started = time.perf_counter()
                samples = [loader.dataset[index] for index in indices]
                stages.add("loader: sample (all of its stages)", time.perf_counter() - started)
                batch = stages.timed("collate", loader.collate_fn)(samples)
                outputs = stages.timed("model: forward and losses", module.training_step)(batch, 0)
                started = time.perf_counter()
                if module.loss_balancer.uses_gradients:
                    module.backward(outputs["loss"])
                else:
                    outputs["loss"].backward()
                stages.add("model: backward", time.perf_counter() - started)
                started = time.perf_counter()
                optimizer.step()
                optimizer.zero_grad()
                stages.add("model: optimizer step", time.perf_counter() - started)
            per_epoch.append(dict(stages.seconds))
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    return data.image_size, len(loader.dataset), per_epoch


def _time_the_stages(dataset: Any, stages: _Stages) -> list[tuple[Any, str, Any]]:
    """Times the reading methods (those this checkout has) and each transform step of `dataset`; returns the methods
    replaced, to put back."""
    from torchbricks.datasets import boxes, image_cache

    patched = [
        (image_cache.ResizedImageCache, "image", "image (decoded-image cache)"),
        (image_cache.ResizedImageCache, "mask", "mask read (segmentation)"),
        (image_cache.ResizedImageCache, "drawn_mask", "mask (multitask, kept)"),
        (boxes.BoxDataset, "_semantic_mask", "mask drawn from the polygons"),
        (boxes, "outline_points", "outlines"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched if hasattr(owner, name)]
    for owner, name, stage in patched:
        if hasattr(owner, name):
            setattr(owner, name, stages.timed(stage, getattr(owner, name)))
    pipeline = dataset.transform
    steps_name = "on_steps" if hasattr(pipeline, "on_steps") else "transforms"  # an AugmentationSwitch's or v2.Compose's
    steps = getattr(pipeline, steps_name)
    setattr(pipeline, steps_name, [_TimedStep(stages, f"transform: {type(step).__name__}", step) for step in steps])
    return originals


class _TimedStep:
    """A transform step whose calls add to a stage (the pipeline's own attributes read through)."""

    def __init__(self, stages: _Stages, stage: str, step: Any) -> None:
        self.stages, self.stage, self.step = stages, stage, step

    def __call__(self, *args: Any) -> Any:
        return self.stages.timed(self.stage, self.step)(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.step, name)


def print_dense(task: str, name: str, size: tuple[int, int], images: int, per_epoch: list[dict[str, float]]) -> None:
    later = per_epoch[1:] or per_epoch
    stages = list(dict.fromkeys(stage for epoch in later for stage in epoch))
    median = {stage: float(np.median([epoch.get(stage, 0.0) for epoch in later])) * 1000 / images for stage in stages}
    step = sum(value for stage, value in median.items() if stage.startswith(("loader:", "collate", "model:")))
    loader = median.get("loader: sample (all of its stages)", 0.0) + median.get("collate", 0.0)
    print(f"\n{task}, {name}: {images} training images read at {size[1]} x {size[0]}, median of {len(later)} later epochs")
    print(f"loader {loader:.2f} ms per image, {100 * loader / step:.0f} % of the step ({step:.1f} ms per image)\n")
    print("| stage | ms per image | share of the step |")
    print("| --- | ---: | ---: |")
    for stage in sorted(stages, key=lambda stage: (not stage.startswith(("loader:", "collate", "model:")), -median[stage])):
        inside = "" if stage.startswith(("loader:", "collate", "model:")) else "  (within the sample)"
        print(f"| {stage}{inside} | {median[stage]:.3f} | {100 * median[stage] / step:.1f} % |")


def print_mask_calls(name: str, root: Path, size: tuple[int, int], repeats: int = 5) -> None:
    """Per image of the COCO training split, the best of `repeats` calls: drawing the multitask mask from the polygons
    and resizing it to `size` (every epoch before the masks were kept), reading the kept mask, and Pillow's polygon
    fill for scale (which fills other pixels: not COCO's rule)."""
    import timeit

    import torch
    from PIL import ImageDraw

    from torchbricks.datasets import boxes
    from torchbricks.datasets.augmentations import resize_mask_centred
    from torchbricks.datasets.coco import CocoDataset
    from torchbricks.datasets.image_cache import ResizedImageCache

    dataset = CocoDataset(root / "detection" / "train.json", root / "detection", with_masks=True)
    records = dataset.records

    def best(function: Any) -> float:
        calls = [lambda record=record: function(record) for record in records]
        return float(np.median([min(timeit.repeat(call, number=1, repeat=repeats)) for call in calls]))

    def pillow(record: Any) -> np.ndarray:
        canvas = Image.new("L", (record.width, record.height))
        draw = ImageDraw.Draw(canvas)
        for item in record.objects:
            for polygon in item.segmentation or []:
                draw.polygon(polygon, fill=item.label + 1)
        return np.asarray(canvas)

    def drawn_and_resized(record: Any) -> Any:
        return resize_mask_centred(torch.from_numpy(dataset._semantic_mask(record)), size)

    drawn = best(dataset._semantic_mask)
    found = {
        "drawn (rasterize_polygons, per object)": drawn,
        f"resized to {size[1]} x {size[0]}": best(drawn_and_resized) - drawn,
    }
    if hasattr(ResizedImageCache, "drawn_mask"):
        cache = ResizedImageCache(size, megabytes=1024)
        for record in records:
            cache.drawn_mask(boxes._drawing_source(record), lambda record=record: dataset._semantic_mask(record))
        found["kept mask read (its key included)"] = best(lambda record: cache.drawn_mask(boxes._drawing_source(record), None))
    found["Pillow's polygon fill, for scale"] = best(pillow)
    objects = np.mean([len(record.objects) for record in records])
    parts = np.mean([sum(len(item.segmentation or []) for item in record.objects) for record in records])
    print(f"\nmultitask masks, {name}: {objects:.1f} objects, {parts:.1f} polygons per image (median image, best of {repeats})\n")
    print("| per image | ms |")
    print("| --- | ---: |")
    for what, seconds in found.items():
        print(f"| {what} | {seconds * 1000:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=60, help="training photographs (a third as many for validation)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=Path("build/bench_loading"))
    parser.add_argument("--train-minutes", type=float, default=0.0, help="also run `torchbricks train` this long, both ways")
    parser.add_argument("--dense", nargs="+", choices=sorted(DENSE_LAYOUTS), help="time the steps of these tasks instead")
    parser.add_argument("--sets", nargs="+", default=["lookalike_pairs", "small_clutter"], help="with --dense")
    arguments = parser.parse_args()
    if arguments.dense:
        for name in arguments.sets:
            root = write_dense_set(arguments.scratch, name, arguments.images)
            for task in arguments.dense:
                size, images, per_epoch = time_dense_steps(task, root, arguments.epochs)
                print_dense(task, name, size, images, per_epoch)
                if task == "multitask":
                    print_mask_calls(name, root, size)
        return
    root = write_photos(arguments.scratch / "photos", arguments.images)
    size, results = time_variants(root, arguments.epochs)
    print(
        f"{arguments.images} photographs of {PHOTO_SIZE[0]} x {PHOTO_SIZE[1]} read at {size[1]} x {size[0]}, one loader process\n"
    )
    print(
        "| variant | " + " | ".join(f"epoch {index + 1} (s)" for index in range(arguments.epochs)) + " | later epochs / plain |"
    )
    print("| --- | " + " | ".join("---:" for _ in range(arguments.epochs)) + " | ---: |")
    plain_later = float(np.mean(results["plain"][1:] or results["plain"]))
    for name, seconds in results.items():
        later = float(np.mean(seconds[1:] or seconds))
        print(f"| {name} | " + " | ".join(f"{value:.1f}" for value in seconds) + f" | {later / plain_later:.2f} |")
    if arguments.train_minutes:
        print()
        for name, found in train_epochs(root, arguments.scratch, arguments.train_minutes).items():
            run = f"torchbricks train, {arguments.train_minutes:g} min, {name}"
            print(f"{run}: {found['epochs']} epochs, test accuracy {found['test_accuracy']}")


if __name__ == "__main__":
    main()
