"""`torchbricks make-dataset shapes DIR`: writes the generated shapes in the classification, segmentation and COCO layouts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from torchbricks._cli_help import HelpFormatter
from torchbricks._experiment import expand_home

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    make = commands.add_parser(
        "make-dataset",
        help="write a generated data set (coloured shapes) in the classification, segmentation and COCO layouts",
        epilog="example: torchbricks make-dataset shapes data/shapes\n"
        "         torchbricks train task=detection data.root=data/shapes/detection",
        formatter_class=HelpFormatter,
    )
    make.add_argument("kind", choices=["shapes"], help="the generated data set")
    make.add_argument("root", type=expand_home, help="the folder to create")
    make.add_argument("--num-train", type=int, default=500, help="training images per layout (default: 500)")
    make.add_argument("--num-val", type=int, default=100, help="validation images per layout (default: 100)")
    make.add_argument("--image-size", type=int, default=96, help="side of the images in pixels (default: 96)")
    make.add_argument("--seed", type=int, default=0, help="seed of the drawing (default: 0)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing folder once the new one is complete")


def run(arguments: argparse.Namespace) -> int:
    from torchbricks.datasets.shapes import write_shapes_dataset

    root = write_shapes_dataset(
        arguments.root, arguments.num_train, arguments.num_val, arguments.image_size, arguments.seed, arguments.overwrite
    )
    print(f"Wrote {root}/classification, {root}/segmentation and {root}/detection")
    training = Path(root) / "classification" / "train"
    empty = sorted(folder.name for folder in training.iterdir() if folder.is_dir() and not any(folder.iterdir()))
    if empty:  # the shapes are drawn at random: a few images may miss a class, and training refuses its empty folder
        print(
            f"torchbricks: warning: no training image of the class{'es' if len(empty) > 1 else ''} {empty} was drawn in "
            f"{arguments.num_train}; task=classification refuses the empty folder{'s' if len(empty) > 1 else ''} "
            f"{training}/{{{','.join(empty)}}}: give more --num-train.",
            file=sys.stderr,
        )
    return 0
