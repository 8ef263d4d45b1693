"""`torchbricks train [OVERRIDE ...]`: trains, tests, exports and visualizes the configured model."""

from __future__ import annotations

import argparse
from typing import Any

from torchbricks._cli_help import CONFIG_DIR, HelpFormatter, describe_config_groups
from torchbricks._experiment import expand_home

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a brick model with pytorch-lightning (scikit-learn digits by default, no download)",
        description="Trains, tests, exports (ONNX) and visualizes the model composed from the packaged Hydra configs.",
        epilog=describe_config_groups(CONFIG_DIR) + "\n\nexample: torchbricks train trainer.max_epochs=3 experiment.name=first",
        formatter_class=HelpFormatter,
    )
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.max_epochs=3")
    train.add_argument(
        "--config-dir", type=expand_home, default=None, help="a folder of your configs, added to the packaged ones"
    )
    train.add_argument("--config-name", default="train", help="the primary config (default: train)")
    train.add_argument(
        "--show-config", action="store_true", help="print the composed config the run would use (~ in paths expanded) and exit"
    )


def run(arguments: argparse.Namespace) -> int:
    from torchbricks._experiment import LOCATING_KEYS, resume_requested, resumed_config, with_home_expanded
    from torchbricks.configuration import compose_config

    extra_dirs = [arguments.config_dir] if arguments.config_dir else []
    overrides = list(arguments.overrides)
    if resume_requested(overrides):  # the other overrides apply to the experiment's saved config, not the defaults
        locating = [override for override in overrides if override.split("=", 1)[0] in LOCATING_KEYS]
        config = resumed_config(compose_config(locating, arguments.config_name, extra_config_dirs=extra_dirs), overrides)
    else:
        config = compose_config(overrides, arguments.config_name, extra_config_dirs=extra_dirs)
        if "experiment" in config and "command_overrides" in config.experiment:
            config.experiment.command_overrides = overrides  # kept in config.yaml: the same command resumes it
    if arguments.show_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(with_home_expanded(config)), end="")  # the paths the job reads: ~ from the home folder
        return 0
    from torchbricks.lightning.main_job import run_main_job

    result = run_main_job(config)
    if result.metrics:
        print(f"Experiment folder: {result.path_experiment}")
        for line in test_summary(result.metrics):
            print(line)
        print(f"  wall time: {result.metrics['wall_time_seconds']:.1f} s")
        for hint in _hints(result.path_experiment, classification_heads(result.metrics)):
            print(f"Hint: {hint}")
    return 0


def classification_heads(metrics: dict[str, Any]) -> list[str]:
    """The heads with a confusion matrix among the test values of `metrics` (`metrics.json`): the plain `test` entry's,
    or, with several test loaders, every loader's (`test/dataloader_idx_<i>`), each head once; the heads the hints
    judge (`torchbricks.lightning.fit_hints`).

    Example:
        >>> classification_heads({"test/dataloader_idx_0": {"digit/confusion_matrix": [[1]]},
        ...                       "test/dataloader_idx_1": {"digit/confusion_matrix": [[1]], "parity/accuracy": 1.0},
        ...                       "validation": {"shape/confusion_matrix": [[1]]}})
        ['digit']
    """
    from torchbricks.lightning.main_job import is_test_key

    suffix = "/confusion_matrix"
    tested = [name for key, values in metrics.items() if is_test_key(key) for name in values]
    return list(dict.fromkeys(name.removesuffix(suffix) for name in tested if name.endswith(suffix)))


def test_summary(metrics: dict[str, Any]) -> list[str]:
    """The summary's lines of the test values of `metrics` (`metrics.json`), at 4 decimals, named as Lightning logs
    them: each test metric, then the other values logged (`test_logged`: the losses, `monitored_mean`), in place of
    Lightning's test table. With several test loaders each loader's values follow a line that names it (its position
    in the list `test_dataloader` returned, its dataset and samples: `test_loaders`), and end in
    `/dataloader_idx_<i>`."""
    from torchbricks.lightning.main_job import LOADER_SUFFIX

    logged = metrics.get("test_logged", {})
    undefined = metrics.get("undefined_metrics", {})

    def said(name: str, value: float | None, key: str, suffix: str = "") -> str:  # a NaN or null says why, not `nan`
        reason = undefined.get(key, {}).get(name)
        if reason is not None or value is None:
            return f"test/{name}{suffix}: undefined ({reason or 'null in metrics.json'})"
        return f"test/{name}{suffix}: {value:.4f}"

    loaders = [key.removeprefix("test" + LOADER_SUFFIX) for key in metrics if key.startswith("test" + LOADER_SUFFIX)]
    lines = ["  " + said(name, value, "test") for name, value in metrics.get("test", {}).items() if isinstance(value, float)]
    lines += ["  " + said(name, value, "test") for name, value in logged.items() if LOADER_SUFFIX not in name]
    for loader in loaders:
        suffix = LOADER_SUFFIX + loader
        about = metrics.get("test_loaders", {}).get(suffix.strip("/"), {})
        described = f" ({about['dataset']}, {about['samples']} samples)" if about else ""
        lines.append(f"  test loader {loader}{described}:")
        tested = metrics.get("test" + suffix, {})
        lines += [
            "    " + said(name, value, "test" + suffix, suffix) for name, value in tested.items() if isinstance(value, float)
        ]
        lines += [
            "    " + said(name.removesuffix(suffix), value, "test" + suffix, suffix)
            for name, value in logged.items()
            if name.endswith(suffix)
        ]
    return lines


def _hints(path_experiment: Any, heads: list[str]) -> list[str]:
    """`torchbricks.lightning.fit_hints` of the run's history and classes (none without a history: a run whose
    validation never ran). The run description is read as every reader reads it (`read_experiment_description`)."""
    import json

    from torchbricks._experiment import read_experiment_description
    from torchbricks.lightning.callbacks import HISTORY_FILE
    from torchbricks.lightning.fit_hints import fit_hints

    class_names = read_experiment_description(path_experiment, required=["class_names"], reader="train's hints")["class_names"]
    try:
        history = json.loads((path_experiment / HISTORY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return fit_hints(history, class_names, heads)
