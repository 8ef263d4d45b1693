"""`torchbricks check-data DIR [task=...] [layout=...]`: lists every problem of a data folder and counts its classes."""

from __future__ import annotations

import argparse
from typing import Any

from torchbricks._cli_help import HelpFormatter
from torchbricks._experiment import expand_home

__all__ = ["add_parser", "run"]

KEYS = ("task", "layout", "validation_fraction", "split_seed", "voc_origin")
"""The options, `KEY=VALUE`; the last three also as training spells them (`data.validation_fraction=0.1`)."""


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
        "         torchbricks check-data data/pool validation_fraction=0.1 split_seed=3\n"
        "         torchbricks check-data data/voc layout=voc",
        formatter_class=HelpFormatter,
    )
    check.add_argument("root", help="the data folder (or data.root=DIR, as train takes it)")
    check.add_argument(
        "options",
        nargs="*",
        metavar="KEY=VALUE",
        help="task=classification|segmentation|detection|multitask (found from the folder by default), "
        "layout=auto|coco|yolo|voc (detection), validation_fraction=0.2 and split_seed=0 (data without a validation "
        "split of its own: the split drawn for it, as training's data.validation_fraction and data.split_seed draw it), "
        "voc_origin=auto|1|0 (what VOC boxes count from, as training's data.voc_origin)",
    )


def run(arguments: argparse.Namespace) -> int:
    from torchbricks.datasets._reading import SPLIT_SEED, VALIDATION_FRACTION
    from torchbricks.datasets.checking import check_data
    from torchbricks.errors import ConfigError, did_you_mean

    root = expand_home(arguments.root.removeprefix("data.root="))  # as `train` takes it
    if root.partition("=")[0] in KEYS:
        raise ConfigError(f"check-data takes the data folder first, then {[f'{key}=...' for key in KEYS]}; got {root!r} first.")
    options: dict[str, str] = {}
    for option in arguments.options:
        key, equals, value = option.removeprefix("data.").partition("=")
        if not equals or key not in KEYS:
            raise ConfigError(f"check-data takes {[f'{key}=...' for key in KEYS]}, got {option!r}.{did_you_mean(key, KEYS)}")
        options[key] = value
    report = check_data(
        root,
        task=options.get("task"),
        layout=options.get("layout", "auto"),
        validation_fraction=_number(options, "validation_fraction", float, VALIDATION_FRACTION),
        seed=_number(options, "split_seed", int, SPLIT_SEED),
        voc_origin=options.get("voc_origin", "auto"),
    )
    print(report.render())
    return 0 if report.ok else 1


def _number(options: dict[str, str], key: str, kind: type[float] | type[int], default: float) -> Any:
    """The option `key` read as `kind`, `default` when not given.

    Raises:
        ConfigError: It is not a number of that kind (a fraction outside (0, 1) is the reader's error, naming the data).
    """
    from torchbricks.errors import ConfigError

    if key not in options:
        return default
    try:
        return kind(options[key])
    except ValueError as error:
        expected = "a number between 0 and 1" if kind is float else "a whole number"
        raise ConfigError(f"check-data takes {key}= as {expected}, got {options[key]!r}.") from error
