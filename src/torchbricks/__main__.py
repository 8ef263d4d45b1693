"""The `torchbricks` command (also `python -m torchbricks`).

    torchbricks train [OVERRIDE ...]        trains, tests, exports and visualizes the configured model
    torchbricks train --show-config [...]   prints the composed config and exits
    torchbricks --version

`--help`, `train --help` and `--version` answer without importing torch (the package imports lazily).

Overrides use Hydra's syntax: `trainer.max_epochs=3`, `data.batch_size=32`,
`+head@model.bricks.head2=classification` (adds a second head).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    train.add_argument("--config-dir", default=None, help="a folder of configs to use instead of the packaged ones")
    train.add_argument("--config-name", default="train", help="the primary config (default: train)")
    train.add_argument("--show-config", action="store_true", help="print the composed config and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 for a bad command or config)."""
    arguments = _parser().parse_args(argv)
    from torchbricks._experiment import resumed_config
    from torchbricks.configuration import compose_config

    try:
        config = compose_config(arguments.overrides, arguments.config_name, arguments.config_dir or CONFIG_DIR)
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
