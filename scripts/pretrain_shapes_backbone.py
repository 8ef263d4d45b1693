"""Trains the compact CNN weights the package ships (`model.weights=shapes`): a multitask run on generated shapes.

Maintainers run it to make `src/torchbricks/bag_of_bricks/weights/compact_cnn_shapes.pt` again; users never need
to. The data are the benchmark suite's generator (`benchmarks/suite_data.py`) with the tuning set `variety`'s forms
and knobs only (circle, square, triangle, star, cross; up to two distractors, 20 % occlusion), more images and a
seed no suite set uses, so no held-out set of the suite is seen. The job is the packaged multitask job (boxes and
masks on one backbone), as a user runs it; its best backbone is saved in half precision.

Run (one core, about 9 minutes):

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python scripts/pretrain_shapes_backbone.py [--work build/pretrain]

`--radius LOW HIGH`, `--textured`, `--max-objects N` and `--upright` draw other data to try candidates (benchmarks/README.md,
*Shipped weights that have seen small forms*: smaller forms on textures were tried and not adopted); without them the
script makes the shipped file again.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "torchbricks" / "bag_of_bricks" / "weights" / "compact_cnn_shapes.pt"
PRETRAINING_SEED = 1650
NUM_TRAIN = 1600
UPRIGHT_AUGMENTATIONS = (
    "data.augmentations=[{_target_: torchvision.transforms.v2.RandomHorizontalFlip, p: 0.5}, "
    "{_target_: torchvision.transforms.v2.ColorJitter, brightness: 0.2, contrast: 0.2, saturation: 0.2}]"
)
"""`--upright`: the packaged detection augmentations without their turns."""


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pretrain", help="data and the experiment")
    parser.add_argument("--minutes", type=int, default=8, help="training budget")
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--num-train", type=int, default=NUM_TRAIN, help="training images (tests: a few)")
    parser.add_argument("--max-epochs", type=int, default=None, help="stop after this many epochs (tests: 1)")
    parser.add_argument("--radius", type=float, nargs=2, default=None, help="object radius range, fraction of the side")
    parser.add_argument("--textured", action="store_true", help="textured backgrounds")
    parser.add_argument("--max-objects", type=int, default=None, help="objects per image, at most")
    parser.add_argument(
        "--upright", action="store_true", help="squares, triangles and crosses upright, and no turns among the augmentations"
    )
    arguments = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from suite_data import VARIETY, ShapesSpec, write_shapes_variant

    from torchbricks.__main__ import main as torchbricks_main
    from torchbricks._files import write_atomically

    small = arguments.num_train < NUM_TRAIN
    counts = {"num_train": arguments.num_train, "num_val": 4 if small else 200, "num_test": 4 if small else 200}
    knobs: dict[str, object] = {}
    if arguments.radius is not None:
        knobs["multi_radius_range"] = tuple(arguments.radius)
    if arguments.textured:
        knobs["textured_background"] = True
    if arguments.max_objects is not None:
        knobs["max_objects"] = arguments.max_objects
    if arguments.upright:
        knobs["upright"] = True
    spec = ShapesSpec(**{**VARIETY.__dict__, **counts, **knobs, "seed": PRETRAINING_SEED})
    # a folder name a Hydra override can carry: letters, digits, '.', '-' and '_'
    suffix = re.sub(r"[^\w.-]+", "-", "".join(f"_{key}-{value}" for key, value in sorted(knobs.items())))
    data = arguments.work / f"data_{arguments.num_train}{suffix}"  # written once per size and knobs, reused
    if not data.exists():
        write_shapes_variant(data, spec, layouts=("detection",))
    status = torchbricks_main(
        [
            "train",
            "task=multitask",
            "model.weights=null",  # from scratch: the task's default (auto) would start from the file this makes
            f"data.root={data / 'detection'}",
            f"experiment.path_experiments={arguments.work}",
            "experiment.name=shapes_backbone",
            "experiment.overwrite=true",
            f"++trainer.max_time=00:00:{arguments.minutes:02d}:00",
            "trainer.enable_progress_bar=false",
            "export_onnx=false",
            *([f"trainer.max_epochs={arguments.max_epochs}", "n_visualized=0"] if arguments.max_epochs else []),
            *([UPRIGHT_AUGMENTATIONS] if arguments.upright else []),
        ]
    )
    if status != 0:
        raise SystemExit(f"the pretraining run failed (exit status {status})")
    state = torch.load(arguments.work / "shapes_backbone" / "bricks" / "backbone.pt", map_location="cpu", weights_only=True)
    half = {name: value.half() if value.is_floating_point() else value for name, value in state.items()}
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(arguments.out, lambda path: torch.save(half, path))
    print(f"wrote {arguments.out} ({arguments.out.stat().st_size / 1e6:.1f} MB)")
    return arguments.out


if __name__ == "__main__":
    main()
