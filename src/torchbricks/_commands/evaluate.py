"""`torchbricks evaluate EXPERIMENT [OVERRIDE ...]`: a trained experiment's metrics on another labelled data set."""

from __future__ import annotations

import argparse
from typing import Any

from torchbricks._cli_help import HelpFormatter
from torchbricks._experiment import expand_home

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="a trained experiment's metrics on another labelled data set (data.root=DIR)",
        description="Reads the data with the experiment's data config (any layout `torchbricks train` reads), with "
        "the overrides applied, runs the experiment's test stage on it and writes the metrics to "
        "EXPERIMENT/evaluation.json (or --out), with each head's values per class (precision, recall, IoU and support; "
        "AP and AP50 per class for detection; F1 for multilabel; n/a, null in the file, where a value has nothing to divide "
        "by, as for a class absent from the split).",
        epilog="example: torchbricks evaluate build/experiments/run data.root=data/other split=val",
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument("experiment", type=expand_home, help="a trained experiment folder (made by `torchbricks train`)")
    evaluate.add_argument(
        "overrides",
        nargs="*",
        help="changes of the experiment's config, e.g. data.root=DIR; split=val|test|all (default: test; all, every "
        "labelled image, for another data set without a validation split of its own)",
    )
    evaluate.add_argument(
        "--out", type=expand_home, default=None, help="the JSON file written (default: EXPERIMENT/evaluation.json)"
    )
    evaluate.add_argument(
        "--images",
        nargs="?",
        type=expand_home,
        const="",
        default=None,
        metavar="CSV",
        help="also write how wrong the model is on each image, a row per image (default file: "
        "evaluation_images.csv beside the JSON file), and print the worst; the split is predicted a second time for it",
    )


def run(arguments: argparse.Namespace) -> int:
    from torchbricks.errors import ConfigError, did_you_mean
    from torchbricks.evaluate import EVALUATED_KEYS, SPLITS, evaluate_experiment, format_evaluation

    split = None
    overrides = []
    for override in arguments.overrides:
        key = override.partition("=")[0]
        if key == "split":
            split = override.partition("=")[2]
            continue
        # a top-level key evaluate takes no override of, close to the command's own `split`: refused before the
        # experiment is loaded, with the match the config's keys (which lack `split`) cannot give
        hint = did_you_mean(key, ["split"]) if "." not in key and key not in EVALUATED_KEYS else ""
        if hint:
            raise ConfigError(
                f"evaluate takes split={'|'.join(SPLITS)} and overrides of the experiment's config under "
                f"{list(EVALUATED_KEYS)}; got {override!r}.{hint}"
            )
        overrides.append(override)
    images = arguments.images
    if images == "":  # --images without a file: beside the JSON file
        from pathlib import Path

        from torchbricks.evaluate import EVALUATION_FILE

        json_file = Path(arguments.out) if arguments.out else Path(arguments.experiment) / EVALUATION_FILE
        images = json_file.with_name(f"{json_file.stem}_images.csv")
    result = evaluate_experiment(arguments.experiment, overrides, split=split, out=arguments.out, images=images)
    if result.metrics:
        print(format_evaluation(result))
    return 0
