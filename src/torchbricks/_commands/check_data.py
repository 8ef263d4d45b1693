"""`torchbricks check-data DIR [task=...] [layout=...]`: lists every problem of a data folder and counts its classes."""

from __future__ import annotations

import argparse
from typing import Any

from torchbricks._experiment import expand_home

__all__ = ["add_parser", "run"]

KEYS = ("task", "layout")


def add_parser(commands: Any) -> None:
    check = commands.add_parser(
        "check-data",
        help="check a data folder (image folders, segmentation folders, COCO, YOLO, VOC) and list every problem",
        description="Reads the data as training would, decodes every image and lists every problem at once (missing "
        "files, boxes outside images, unknown classes, empty splits, masks of the wrong size, images that fail to "
        "decode, duplicates), then the images and instances per class and split. Exit status 1 when anything is "
        "wrong, 0 when the data is clean, 2 when the folder is in no layout.",
        epilog="example: torchbricks check-data data/shapes/detection\n"
        "         torchbricks check-data data/mine task=segmentation\n"
        "         torchbricks check-data data/voc layout=voc",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("root", help="the data folder (or data.root=DIR, as train takes it)")
    check.add_argument(
        "options",
        nargs="*",
        metavar="KEY=VALUE",
        help="task=classification|segmentation|detection|multitask (found from the folder by default), "
        "layout=auto|coco|yolo|voc (detection)",
    )


def run(arguments: argparse.Namespace) -> int:
    from torchbricks.datasets.checking import check_data
    from torchbricks.errors import ConfigError, did_you_mean

    root = expand_home(arguments.root.removeprefix("data.root="))  # as `train` takes it
    if root.partition("=")[0] in KEYS:
        raise ConfigError(f"check-data takes the data folder first, then {[f'{key}=...' for key in KEYS]}; got {root!r} first.")
    options: dict[str, str] = {}
    for option in arguments.options:
        key, equals, value = option.partition("=")
        if not equals or key not in KEYS:
            raise ConfigError(f"check-data takes {[f'{key}=...' for key in KEYS]}, got {option!r}.{did_you_mean(key, KEYS)}")
        options[key] = value
    report = check_data(root, task=options.get("task"), layout=options.get("layout", "auto"))
    print(report.render())
    return 0 if report.ok else 1
