"""The `torchbricks` command (also `python -m torchbricks`).

    torchbricks train [OVERRIDE ...]        trains, tests, exports and visualizes the configured model
    torchbricks train --show-config [...]   prints the composed config and exits
    torchbricks predict EXPERIMENT SOURCE...  predicts images, folders, globs or videos with a trained experiment
                                            and writes the drawn pictures, predictions.json / .csv, points.json
                                            and masks
    torchbricks evaluate EXPERIMENT data.root=DIR [split=val|test]
                                            the experiment's metrics on another labelled data set
                                            (evaluation.json, per-class precision and recall)
    torchbricks make-dataset shapes DIR     writes a generated data set in the classification, segmentation
                                            and COCO layouts (see torchbricks.datasets.shapes)
    torchbricks check-data DIR [task=...]   lists every problem of a data folder (image folders, segmentation
                                            folders, COCO, YOLO, Pascal VOC) and counts images and instances
                                            per class and split; exit status 1 when anything is wrong
    torchbricks export EXPERIMENT [--quantize int8] [--image-size N] [--out FILE]
                                            writes one ONNX file taking uint8 images [B, 3, H, W] and giving
                                            each head's final results (boxes after NMS, masks, probabilities,
                                            points, counts),
                                            with FILE.json beside it; `predict --onnx` and
                                            torchbricks.deploy.OnnxPredictor run it without torch
    torchbricks --version

`--help`, `train --help` and `--version` answer without importing torch (the package imports lazily).

Overrides use Hydra's syntax: `trainer.max_epochs=3`, `data.batch_size=32`,
`+head@model.bricks.head2=classification` (adds a second head).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torchbricks
from torchbricks._cli_help import HelpFormatter
from torchbricks._commands import COMMANDS
from torchbricks.errors import LOADER_TERMINATED, BrickError, RunStoppedError, Terminated

__all__ = ["main"]


def _command_module(name: str) -> Any:
    return importlib.import_module(f"torchbricks._commands.{name}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchbricks", description="Build, train and export brick models.", formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"torchbricks {torchbricks.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        _command_module(name).add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 for a bad command or config)."""
    parser = _parser()
    arguments, extra = parser.parse_known_args(argv)
    if extra:  # overrides after an option (`train trainer.max_epochs=2 --show-config seed=1`) are overrides too
        if not hasattr(arguments, "overrides") or any(item.startswith("-") or "=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        arguments.overrides = [*arguments.overrides, *extra]
    try:
        with _sigterm_raises():
            return int(_command_module(arguments.command.replace("-", "_")).run(arguments))
    except (Terminated, BrickError, ModuleNotFoundError, KeyboardInterrupt, RuntimeError) as error:
        failure = _failure(error, arguments.command)
        if failure is None:
            raise
        message, status = failure
        if not _said_by_the_machines_first_process(error):
            print(f"torchbricks: error: {message}", file=sys.stderr)
        return status


def _failure(error: BaseException, command: str) -> tuple[str, int] | None:
    """The one line and the exit status a command's `error` ends with, or None for an error that keeps its traceback
    (a bug, not a bad input): 2 for a bad command, config or data (and a missing torch), 130 / 143 for Ctrl-C /
    SIGTERM, 1 for a distributed process left by another."""
    if isinstance(error, Terminated) or (isinstance(error, RuntimeError) and LOADER_TERMINATED in str(error)):
        return f"{command} was stopped by SIGTERM before it finished.", 143  # a loader process may have met it first
    if isinstance(error, BrickError):
        return _user_message(error), int(getattr(error, "exit_status", 2))  # RunStoppedError: 130 / 143
    if isinstance(error, KeyboardInterrupt):  # a training run says more (RunStoppedError)
        return f"{command} was interrupted (Ctrl-C) before it finished.", 130
    if isinstance(error, ModuleNotFoundError):
        return _missing_torch(error, command)
    if isinstance(error, RuntimeError):
        return _left_by_a_peer(error)
    return None


def _said_by_the_machines_first_process(error: BaseException) -> bool:
    """Whether `error` stopped a process that a launcher started beside the machine's first one (`LOCAL_RANK` 1 or
    more: Lightning's DDP launcher, torchrun), and the first says it. Ctrl-C reaches every process of the terminal's
    foreground group, a scheduler's SIGTERM every task, so each process of a two-process run printed the same line
    on how to continue (when the second reached it before the first ended it)."""
    stopped = isinstance(error, (RunStoppedError, KeyboardInterrupt, Terminated))
    return stopped and os.environ.get("LOCAL_RANK", "0") != "0"


def _missing_torch(error: ModuleNotFoundError, command: str) -> tuple[str, int] | None:
    if error.name not in ("torch", "torchvision", "torchmetrics"):
        return None
    return (
        f"{command} needs {error.name}, which is not installed: pip install torch torchvision, then pip install "
        "torchbricks with the extras it needs (README, Install). Without torch, an exported model predicts with "
        "`torchbricks predict EXPERIMENT SOURCE --onnx [FILE]` or from Python with torchbricks.deploy.OnnxPredictor "
        "(numpy, pillow, onnxruntime).",
        2,
    )


def _left_by_a_peer(error: RuntimeError) -> tuple[str, int] | None:
    rank = _rank_left_by_a_peer(error)
    if rank is None:
        return None
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"process {rank} of this distributed run stopped because another process left it (that process's error is "
        f"printed above): {first_line}",
        1,
    )


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `Terminated` (a `SystemExit`) for the block, so that the commands' cleanup runs (temporary
    folders removed, nothing half-written) as on Ctrl-C; Python's default ends the process without it. Lightning
    installs its own handler while it trains and gives this one back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_PEER_LEFT = ("Connection closed by peer", "Connection reset by peer", "remote worker crashing", "Broken pipe")


def _rank_left_by_a_peer(error: RuntimeError) -> int | None:
    """This process's rank if `error` is the collective call of a distributed run failing because another process
    ended (with an error of its own, printed by that process); else None. Without it, each surviving process printed
    about 70 lines of traceback ending in gloo's "Connection closed by peer" after the one line that said why."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is None or not distributed.is_available() or not distributed.is_initialized():
        return None
    if distributed.get_world_size() < 2 or not any(text in str(error) for text in _PEER_LEFT):
        return None
    return int(distributed.get_rank())


def _user_message(error: BrickError) -> str:
    """The error's message; for one raised in a DataLoader worker process, which torch raises again in the main
    process with the worker's traceback in front of the message, the message alone."""
    message = str(error)
    marker = f"{type(error).__module__}.{type(error).__name__}: "
    if message.startswith("Caught ") and "\nOriginal Traceback" in message and marker in message:
        return message.rsplit(marker, 1)[1].strip()
    return message


if __name__ == "__main__":
    sys.exit(main())
