"""Real photographs for classification: two sets from the images scikit-image ships inside its wheel.

The `scikit-image` wheel on PyPI (BSD-3 license; each image's source and license in `skimage/data/README.txt` and the
package's documentation) carries, inside the package under `skimage/data/`, images that need no download. This
script reads them from the wheel (`pip download scikit-image --no-deps`, never installed) and writes image folders
for `torchbricks train task=classification data.root=OUT/classification`:

- `faces`: `lfw_subset.npy`, 200 grey 25 x 25 crops from Labeled Faces in the Wild: 100 faces and 100 crops of the
  same photographs that are not faces. A real task on real photographs: face or not. Upscaled to 32 px RGB, split
  60/20/20 per class (120 train, 40 val, 40 test) by a seeded shuffle.
- `textures`: `brick.png`, `grass.png`, `gravel.png` (512 x 512 grey photographs): which texture a 32 px crop shows.
  Each photograph's columns are cut 60/20/20 into train, val and test, so no pixel is in two splits; 60 / 15 / 30
  crops per class.

Everything is written into a temporary folder renamed into place, so an interrupted run leaves nothing.

Run: .venv/bin/python benchmarks/data_skimage.py build/data/skimage [--wheel scikit_image-0.26.0-...whl]
     .venv/bin/torchbricks train task=classification data.root=build/data/skimage/faces/classification
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

VERSION = "0.26.0"
SPLITS = ("train", "val", "test")
TEXTURES = ("brick", "grass", "gravel")
FACES = 100
"""`lfw_subset.npy` holds the faces first, then as many crops that are not faces (scikit-image's documentation)."""


def download_wheel(folder: Path) -> Path:
    """`pip download scikit-image==VERSION --no-deps` into `folder` (the package is not installed)."""
    command = [sys.executable, "-m", "pip", "download", f"scikit-image=={VERSION}", "--no-deps", "--only-binary", ":all:"]
    subprocess.run([*command, "-d", str(folder)], check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = folder.glob("scikit_image-*.whl")
    return wheel


def read_faces(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 200 grey crops as uint8 [200, 25, 25] and their labels (1: a face, 0: not a face)."""
    with zipfile.ZipFile(wheel) as archive:
        crops = np.load(io.BytesIO(archive.read("skimage/data/lfw_subset.npy")))
    if crops.ndim != 3 or len(crops) != 2 * FACES:
        raise ValueError(f"lfw_subset.npy in {wheel.name} has shape {crops.shape}; expected [{2 * FACES}, H, W].")
    labels = (np.arange(len(crops)) < FACES).astype(np.int64)
    return np.clip(np.rint(crops * 255), 0, 255).astype(np.uint8), labels


def read_texture(wheel: Path, name: str) -> np.ndarray:
    """The grey photograph `skimage/data/<name>.png` as uint8 [H, W]."""
    with zipfile.ZipFile(wheel) as archive:
        return np.asarray(Image.open(io.BytesIO(archive.read(f"skimage/data/{name}.png"))).convert("L"))


def _save_rgb(grey: np.ndarray, path: Path, size: int | None = None) -> None:
    image = Image.fromarray(grey).convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    image.save(path)


def write_faces(root: Path, wheel: Path, image_size: int = 32, seed: int = 0) -> Path:
    """`root/{train,val,test}/{face,not_face}/*.png`: 60/20/20 of each class, shuffled by `seed`."""
    crops, labels = read_faces(wheel)
    rng = np.random.default_rng(seed)
    for label, class_name in ((1, "face"), (0, "not_face")):
        indices = rng.permutation(np.flatnonzero(labels == label))
        cuts = (int(len(indices) * 0.6), int(len(indices) * 0.8))
        for split, chosen in zip(SPLITS, np.split(indices, cuts), strict=True):
            folder = root / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for index in chosen:
                _save_rgb(crops[index], folder / f"{index:03d}.png", image_size)
    return root


def write_textures(
    root: Path, wheel: Path, patch: int = 32, per_class: tuple[int, int, int] = (60, 15, 30), seed: int = 0
) -> Path:
    """`root/{train,val,test}/<texture>/*.png`: crops from disjoint column bands (60/20/20) of each photograph."""
    rng = np.random.default_rng(seed)
    for name in TEXTURES:
        photo = read_texture(wheel, name)
        height, width = photo.shape
        bands = {"train": (0, int(width * 0.6)), "val": (int(width * 0.6), int(width * 0.8)), "test": (int(width * 0.8), width)}
        for split, count in zip(SPLITS, per_class, strict=True):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                y = int(rng.integers(0, height - patch))
                x = int(rng.integers(bands[split][0], bands[split][1] - patch))
                _save_rgb(photo[y : y + patch, x : x + patch], folder / f"{index:05d}.png")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="writes OUT/faces/classification and OUT/textures/classification")
    parser.add_argument("--wheel", type=Path, default=None, help="the scikit-image wheel (default: pip download it)")
    args = parser.parse_args(argv)
    import tempfile

    from suite_data import _atomic_folder  # benchmarks/ is on the path: this script's folder

    with tempfile.TemporaryDirectory() as folder:
        wheel = args.wheel or download_wheel(Path(folder))
        for name, write in (("faces", write_faces), ("textures", write_textures)):
            with _atomic_folder(args.out / name) as temporary:
                write(temporary / "classification", wheel)
            print(f"wrote {args.out / name / 'classification'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
