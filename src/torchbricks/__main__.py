"""The `torchbricks` command (also `python -m torchbricks`).

    torchbricks train [OVERRIDE ...]        trains, tests, exports and visualizes the configured model
    torchbricks train --show-config [...]   prints the composed config and exits

Overrides use Hydra's syntax: `trainer.max_epochs=3`, `data.batch_size=32`,
`+head@model.bricks.head2=classification` (adds a second head).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torchbricks.errors import BrickError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchbricks", description="Build, train and export brick models.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a brick model with pytorch-lightning (scikit-learn digits by default, no download)",
        description="Trains, tests, exports (ONNX) and visualizes the model composed from the packaged Hydra configs.",
        epilog="example: torchbricks train trainer.max_epochs=3 +head@model.bricks.head2=classification",
    )
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.max_epochs=3")
    train.add_argument("--config-dir", default=None, help="a folder of your configs, added to the packaged ones")
    train.add_argument("--config-name", default="train", help="the primary config (default: train)")
    train.add_argument("--show-config", action="store_true", help="print the composed config and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 for a bad command or config)."""
    arguments = _parser().parse_args(argv)
    from torchbricks.configuration import compose_config

    try:
        extra_dirs = [arguments.config_dir] if arguments.config_dir else []
        config = compose_config(arguments.overrides, arguments.config_name, extra_config_dirs=extra_dirs)
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
