"""The `torchbricks` command (also `python -m torchbricks`).

    torchbricks train [OVERRIDE ...]        trains, tests, exports and visualizes the configured model
    torchbricks train --show-config [...]   prints the composed config and exits
    torchbricks make-dataset shapes DIR     writes a generated data set in the classification, segmentation
                                            and COCO layouts (see torchbricks.datasets.shapes)
    torchbricks --version

`--help`, `train --help` and `--version` answer without importing torch (the package imports lazily).

Overrides use Hydra's syntax: `trainer.max_epochs=3`, `data.batch_size=32`,
`+head@model.bricks.head2=classification` (adds a second head).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import torchbricks
from torchbricks._cli_help import CONFIG_DIR, describe_config_groups
from torchbricks.errors import BrickError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchbricks", description="Build, train and export brick models.")
    parser.add_argument("--version", action="version", version=f"torchbricks {torchbricks.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a brick model with pytorch-lightning (scikit-learn digits by default, no download)",
        description="Trains, tests, exports (ONNX) and visualizes the model composed from the packaged Hydra configs.",
        epilog=describe_config_groups(CONFIG_DIR) + "\n\nexample: torchbricks train trainer.max_epochs=3 experiment.name=first",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.max_epochs=3")
    train.add_argument("--config-dir", default=None, help="a folder of your configs, added to the packaged ones")
    train.add_argument("--config-name", default="train", help="the primary config (default: train)")
    train.add_argument("--show-config", action="store_true", help="print the composed config and exit")
    _add_make_dataset(commands)
    return parser


def _add_make_dataset(commands: Any) -> None:
    make = commands.add_parser(
        "make-dataset",
        help="write a generated data set (coloured shapes) in the classification, segmentation and COCO layouts",
        epilog="example: torchbricks make-dataset shapes data/shapes\n"
        "         torchbricks train task=detection data.root=data/shapes/detection",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make.add_argument("kind", choices=["shapes"], help="the generated data set")
    make.add_argument("root", help="the folder to create")
    make.add_argument("--num-train", type=int, default=500, help="training images per layout (default: 500)")
    make.add_argument("--num-val", type=int, default=100, help="validation images per layout (default: 100)")
    make.add_argument("--image-size", type=int, default=96, help="side of the images in pixels (default: 96)")
    make.add_argument("--seed", type=int, default=0, help="seed of the drawing (default: 0)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing folder once the new one is complete")


def _make_dataset(arguments: argparse.Namespace) -> int:
    from torchbricks.datasets.shapes import write_shapes_dataset

    root = write_shapes_dataset(
        arguments.root, arguments.num_train, arguments.num_val, arguments.image_size, arguments.seed, arguments.overwrite
    )
    print(f"Wrote {root}/classification, {root}/segmentation and {root}/detection")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 for a bad command or config)."""
    arguments = _parser().parse_args(argv)
    if arguments.command == "make-dataset":
        try:
            return _make_dataset(arguments)
        except BrickError as error:
            print(f"torchbricks: error: {error}", file=sys.stderr)
            return 2
    from torchbricks._experiment import resumed_config
    from torchbricks.configuration import compose_config

    try:
        extra_dirs = [arguments.config_dir] if arguments.config_dir else []
        config = compose_config(arguments.overrides, arguments.config_name, extra_config_dirs=extra_dirs)
        config = resumed_config(config, arguments.overrides)
        if arguments.show_config:
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(config), end="")
            return 0
        from torchbricks.lightning.main_job import run_main_job

        result = run_main_job(config)
    except BrickError as error:
        print(f"torchbricks: error: {error}", file=sys.stderr)
        return 2
    if result.metrics:
        print(f"Experiment folder: {result.path_experiment}")
        for name, value in result.metrics.get("test", {}).items():
            if isinstance(value, float):
                print(f"  test/{name}: {value:.4f}")
        print(f"  wall time: {result.metrics['wall_time_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
