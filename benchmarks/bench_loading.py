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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=60, help="training photographs (a third as many for validation)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=Path("build/bench_loading"))
    parser.add_argument("--train-minutes", type=float, default=0.0, help="also run `torchbricks train` this long, both ways")
    arguments = parser.parse_args()
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
