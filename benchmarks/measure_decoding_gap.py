"""How far the pixels each stage gives a model are from those training gave it, for a large JPEG photograph.

A crop of scikit-learn's sample photograph `china.jpg` is enlarged to 4032 x 3024 (a 12-megapixel phone photograph)
and saved as JPEG quality 90 with the EXIF orientations 1, 3, 6 and 8 (6 and 8 stored 3024 x 4032). Training reads it
through `ResizedImageCache` at the input size (a JPEG at least twice the input size decoded reduced,
`torchbricks._pictures.rgb_for_input`). Compared with it, per orientation:

- decoded whole, then resized with torchvision (what `predict`, the test split and `evaluate` gave the model until
  2026-12-07) and with `torchbricks.deploy.resize_image` (what `OnnxPredictor` gave it);
- what `predict` gives it now (`ImageSourceDataset.read` at the backend's `decoding_size`, then `BrickBackend`'s
  resize), what `OnnxPredictor.predict` of the file gives it (`read_model_image`, then `resize_image`), and what the
  test split gives it (the data module's test dataset).

    PYTHONPATH=src python benchmarks/measure_decoding_gap.py [--size 384 512]

Needs scikit-learn (for the photograph) and torchvision.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional

from torchbricks._image_sources import ImageSource, ImageSourceDataset
from torchbricks.datasets._reading import load_rgb
from torchbricks.datasets.image_cache import ResizedImageCache
from torchbricks.deploy import read_model_image, resize_image
from torchbricks.lightning.image_datamodules import ImageFolderDataModule

ORIENTATIONS = (1, 3, 6, 8)
_STORED = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def write_photographs(folder: Path) -> list[Path]:
    """The 4032 x 3024 photograph (as shown) in each orientation, as `folder/<class>/o<orientation>.jpg`."""
    from sklearn.datasets import load_sample_images

    china = load_sample_images().images[0]  # 427 x 640
    shown = Image.fromarray(china[20:320, 40:440]).resize((4032, 3024), Image.Resampling.BICUBIC)
    paths = []
    for orientation in ORIENTATIONS:
        path = folder / "photo" / f"o{orientation}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = shown if _STORED[orientation] is None else shown.transpose(_STORED[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored.save(path, "JPEG", quality=90, exif=exif.tobytes())
        paths.append(path)
    (folder / "other").mkdir(exist_ok=True)
    Image.new("RGB", (64, 48), "grey").save(folder / "other" / "grey.png")  # a second class for the data module
    return paths


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("HEIGHT", "WIDTH"))
    size = tuple(parser.parse_args().size)
    root = Path(tempfile.mkdtemp(prefix="decoding-gap-"))
    paths = write_photographs(root / "train")
    (root / "test").symlink_to(root / "train")
    data = ImageFolderDataModule(root, image_size=list(size), batch_size=2)
    data.setup("test")
    tested = {(path.parent.name, path.name): index for index, (path, _) in enumerate(data.datasets["test"].samples)}
    print(f"input size {size[0]} x {size[1]} (height x width); mean and max |difference| to training's pixels, in grey levels")
    for path in paths:
        trained = _hwc(ResizedImageCache(size, 0).image(path)[0]).astype(int)
        whole = torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1)
        _, read, _ = ImageSourceDataset([ImageSource(path)]).read(0, size, picture=False)
        assert read is not None
        predicted = functional.resize(torch.from_numpy(read.pixels).permute(2, 0, 1), list(size), antialias=True)
        test_sample = data.datasets["test"][tested[(path.parent.name, path.name)]]["raw"]
        stages = {
            "decoded whole, torchvision resize (predict before)": _hwc(functional.resize(whole, list(size), antialias=True)),
            "decoded whole, deploy.resize_image (OnnxPredictor before)": resize_image(whole.permute(1, 2, 0).numpy(), size),
            "predict now (ImageSourceDataset.read, BrickBackend resize)": _hwc(predicted),
            "OnnxPredictor now (read_model_image, resize_image)": resize_image(read_model_image(path, size)[0], size),
            "test split / evaluate now": _hwc((test_sample * 255).round().to(torch.uint8)),
        }
        for name, pixels in stages.items():
            difference = np.abs(pixels.astype(int) - trained)
            print(
                f"orientation {path.stem[1:]}: {name:60s} mean {difference.mean():.3f}  max {difference.max():3d}  "
                f"differing {100 * (difference > 0).mean():5.1f} %"
            )


if __name__ == "__main__":
    main()
