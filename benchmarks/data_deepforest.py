"""Real large images for tiled detection: DeepForest's sample aerial photographs of tree crowns, as COCO files.

The `deepforest` wheel on PyPI (MIT license, weecology/DeepForest) ships, inside the package under
`deepforest/data/`, NEON aerial photographs (10 cm per pixel) with human-drawn crown boxes in Pascal VOC XML files.
This script reads them from the wheel (downloaded with `pip download deepforest --no-deps`, never installed) and
writes a COCO layout for `torchbricks train task=detection data.root=OUT data.tile_size=400`:

- `train.json`: the top 70 % (2299 x 1730 px) of `2019_YELL_2_528000_4978000_image_crop2.png` (Yellowstone,
  2299 x 2472 px, 574 crowns);
- `val.json`: the bottom 30 % of the same photograph (2299 x 742 px). The photograph is split by rows, not by
  tiles, so no pixel is in both splits; a crown is in the part that holds its centre, clipped to it;
- `test.json`: `2019_YELL_2_541000_4977000_image_crop.png`, another photograph of the same site (1249 x 1035 px,
  279 crowns).

One class, `tree`. The package's 400 x 400 samples from other sites (OSBS_029, SOAP_061 with alive and dead trees)
are left out. The wheel's license is copied beside the data. Everything is written into a temporary folder renamed
into place, so an interrupted run leaves nothing.

Run: .venv/bin/python benchmarks/data_deepforest.py build/data/deepforest [--wheel deepforest-2.1.0-py3-none-any.whl]
     .venv/bin/torchbricks train task=detection data.root=build/data/deepforest data.tile_size=400
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from PIL import Image

VERSION = "2.1.0"
TRAIN_VAL = "2019_YELL_2_528000_4978000_image_crop2"
TEST = "2019_YELL_2_541000_4977000_image_crop"
TRAIN_FRACTION = 0.7


def download_wheel(folder: Path) -> Path:
    """`pip download deepforest==VERSION --no-deps` into `folder` (the package is not installed)."""
    command = [sys.executable, "-m", "pip", "download", f"deepforest=={VERSION}", "--no-deps", "-d", str(folder)]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = folder.glob("deepforest-*.whl")
    return wheel


def read_boxes(wheel: zipfile.ZipFile, stem: str) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """The photograph `stem` and its crown boxes (x_min, y_min, x_max, y_max) from the wheel."""
    image = Image.open(io.BytesIO(wheel.read(f"deepforest/data/{stem}.png"))).convert("RGB")
    root = ElementTree.fromstring(wheel.read(f"deepforest/data/{stem}.xml"))
    size = (int(root.findtext("size/width", "0")), int(root.findtext("size/height", "0")))
    if size != image.size:
        raise ValueError(f"{stem}.xml says {size[0]}x{size[1]}; the image is {image.size[0]}x{image.size[1]}.")
    boxes = []
    for found in root.iter("object"):
        box = tuple(float(found.findtext(f"bndbox/{side}", "nan")) for side in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((box[0], box[1], box[2], box[3]))
    return image, boxes


def coco_file(file_name: str, image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> dict[str, object]:
    annotations = [
        {
            "id": index + 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": (x1 - x0) * (y1 - y0),
            "iscrowd": 0,
        }
        for index, (x0, y0, x1, y1) in enumerate(boxes)
    ]
    return {
        "images": [{"id": 1, "file_name": file_name, "width": image.width, "height": image.height}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "tree"}],
    }


def split_rows(
    image: Image.Image, boxes: list[tuple[float, float, float, float]], row: int
) -> list[tuple[Image.Image, list[tuple[float, float, float, float]]]]:
    """The image above and below `row`, each with the boxes whose centre it holds, clipped to it."""
    parts = []
    for top, bottom in ((0, row), (row, image.height)):
        kept = [
            (x0, max(y0, top) - top, x1, min(y1, bottom) - top)
            for x0, y0, x1, y1 in boxes
            if top <= (y0 + y1) / 2 < bottom and min(y1, bottom) - max(y0, top) >= 1
        ]
        parts.append((image.crop((0, top, image.width, bottom)), kept))
    return parts


def write_dataset(out: Path, wheel_path: Path) -> dict[str, tuple[int, int, int]]:
    """Writes the COCO layout into `out`; returns split -> (width, height, boxes)."""
    if out.exists():
        raise FileExistsError(f"{str(out)!r} already exists; remove it first.")
    temporary = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    temporary.mkdir(parents=True)
    written = {}
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            image, boxes = read_boxes(wheel, TRAIN_VAL)
            test = read_boxes(wheel, TEST)
            license_name = next(name for name in wheel.namelist() if name.endswith(".dist-info/licenses/LICENSE"))
            (temporary / "LICENSE-deepforest.txt").write_bytes(wheel.read(license_name))
        (train, val) = split_rows(image, boxes, round(image.height * TRAIN_FRACTION))
        for split, (part, part_boxes) in (("train", train), ("val", val), ("test", test)):
            file_name = f"{split}.png"
            part.save(temporary / file_name)
            (temporary / f"{split}.json").write_text(json.dumps(coco_file(file_name, part, part_boxes)))
            written[split] = (part.width, part.height, len(part_boxes))
        temporary.rename(out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (must not exist)")
    parser.add_argument(
        "--wheel", type=Path, help=f"a downloaded deepforest wheel; without it, deepforest=={VERSION} is downloaded"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        wheel = arguments.wheel or download_wheel(Path(folder))
        written = write_dataset(arguments.out, wheel)
    for split, (width, height, count) in written.items():
        print(f"{split}: {width}x{height} px, {count} crowns")


if __name__ == "__main__":
    main()
