"""What `torchbricks train --help` says about the packaged configs, read from the YAML files without importing torch.

The command line must answer `--help` in a fraction of a second, so nothing here imports torch, Hydra or YAML:
the config groups are the folders of the config directory, their options the `.yaml` files in them, a default
is a line `- group: option` of the primary config's `defaults:` list, and an option's description is the first
comment line of its file. The group `head` has no folder: its options are the packaged configs of the head kinds
(`torchbricks.heads`), read here from the kinds' source (`packaged_configs` of each `@register_head` class).
"""

from __future__ import annotations

import argparse
import ast
import re
import textwrap
from pathlib import Path

__all__ = [
    "COMMON_OVERRIDES",
    "CONFIG_DIR",
    "ConfigGroup",
    "HelpFormatter",
    "describe_config_groups",
    "read_config_groups",
]

CONFIG_DIR = Path(__file__).parent / "configs"
"""The configs shipped with torchbricks (the same folder as `torchbricks.configuration.CONFIG_DIR`)."""

HEADS_DIR = Path(__file__).parent / "heads"
"""The head kinds, whose packaged configs are the options of the group `head`."""

COMMON_OVERRIDES = (
    ("trainer.max_time=00:00:20:00", "a longer training time budget (DD:HH:MM:SS)"),
    ("early_stopping.patience=20", "epochs without improvement before stopping (null: never)"),
    ("early_stopping.start_fraction=0.8", "no early stop before this fraction of the budget (tasks: 0.5)"),
    (
        "early_stopping.finish_without_augmentations=false",
        "stop at the first plateau (classification: train on without augmentations first)",
    ),
    ("trainer.max_epochs=20", "an epoch cap"),
    ("model.weights=PATH", "backbone weights: a state dict file, an experiment's bricks/, or shapes (drawn forms)"),
    ("model.weights=null", "from scratch (every task starts from the shipped weights: auto)"),
    ("data.image_size=128", "input size (default: from the training images' median size)"),
    ("data.image_scale=2", "default size = this times the median (classification 1.5, the others 2; enlarging to 256 px)"),
    ("data.batch_size=32 optimizer.lr=0.001", "batch size and learning rate"),
    ("experiment.name=NAME", "the experiment folder (default: a timestamp)"),
    ("experiment.name=NAME resume=true", "continue NAME from its last checkpoint"),
    ("experiment.name=NAME experiment.overwrite=true", "replace an existing experiment"),
    ("checkpoint.monitor=validation/head/accuracy checkpoint.mode=max", "what best.ckpt keeps"),
    ("trainer.precision=bf16-mixed", "bfloat16 mixed precision"),
    ("compile=true", "compile each stage with torch.compile(fullgraph=True)"),
    ("ema_decay=0.99", "validate, test and keep a moving average of the weights (null: the trained weights)"),
    ("trainer.devices=2 trainer.strategy=ddp", "two processes on this machine"),
    ("trainer.num_nodes=2 trainer.strategy=ddp", "two machines (set MASTER_ADDR, MASTER_PORT, NODE_RANK)"),
    ("+head@model.bricks.head2=classification", "add a second head"),
    ("task=multitask data.sources=[{task: detection, root: A}, ...]", "a head per separately labelled data set"),
    ("loss_balancing=uncertainty", "how the heads' losses add up: fixed, uncertainty, dwa, pcgrad"),
    ("task=classification data.root=DIR loss.class_weights=auto", "weigh rare classes up (inverse training frequency)"),
    ("seed=1", "another seed"),
)

_DEFAULT_LINE = re.compile(r"^\s*-\s*(?:override\s+)?/?([\w/@.]+?)\s*:\s*([\w.\-]+)\s*(?:#.*)?$")


class ConfigGroup:
    """A config group: its name, its options (option -> the first comment line of its file) and its default."""

    def __init__(self, name: str, options: dict[str, str], default: str | None) -> None:
        self.name = name
        self.options = options
        self.default = default

    def __repr__(self) -> str:
        return f"ConfigGroup({self.name!r}, options={sorted(self.options)}, default={self.default!r})"


def read_config_groups(config_dir: Path = CONFIG_DIR, config_name: str = "train") -> list[ConfigGroup]:
    """The config groups under `config_dir` (nested folders give `group/subgroup`), sorted by name.

    Example:
        >>> [group.name for group in read_config_groups()][:2]
        ['data', 'head']
    """
    defaults = _read_defaults(config_dir / f"{config_name}.yaml")
    found: dict[str, dict[str, str]] = {"head": _head_options()} if config_dir == CONFIG_DIR else {}
    for folder in sorted(path for path in config_dir.rglob("*") if path.is_dir()):
        options = {path.stem: _first_comment(path) for path in sorted(folder.glob("*.yaml"))}
        if options:
            found.setdefault(folder.relative_to(config_dir).as_posix(), {}).update(options)
    return [ConfigGroup(name, dict(sorted(options.items())), defaults.get(name)) for name, options in sorted(found.items())]


def _head_options() -> dict[str, str]:
    """Packaged head config -> `<kind> head`, from the source of the head kinds (no import: no torch)."""
    options = {}
    for path in sorted(HEADS_DIR.glob("[!_]*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            kind = _registered_kind(node)
            if kind is None or not isinstance(node, ast.ClassDef):
                continue
            for statement in node.body:
                if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.value, ast.Dict):
                    continue
                if isinstance(statement.target, ast.Name) and statement.target.id == "packaged_configs":
                    for key in statement.value.keys:
                        if isinstance(key, ast.Constant):
                            options[str(key.value)] = f"a {kind} head ({node.name}): add one with +head@model.bricks.NAME"
    return options


def _registered_kind(node: ast.stmt) -> str | None:
    """The kind of a class decorated with `@register_head("kind")`, or None."""
    for decorator in getattr(node, "decorator_list", []):
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "register_head" and decorator.args:
            argument = decorator.args[0]
            return str(argument.value) if isinstance(argument, ast.Constant) else None
    return None


def describe_config_groups(config_dir: Path = CONFIG_DIR, config_name: str = "train") -> str:
    """The groups and options of the packaged configs and the most used overrides, as `train --help` prints them."""
    lines = ["config groups (choose with GROUP=OPTION; * marks the default):"]
    for group in read_config_groups(config_dir, config_name):
        lines.append(f"  {group.name}:")
        for option, description in group.options.items():
            marker = "*" if option == group.default else " "
            lines.append(f"   {marker} {option:<22} {description}".rstrip())
    lines.append("")
    lines.append("most used overrides (Hydra syntax, any key of --show-config can be set):")
    width = max(len(override) for override, _ in COMMON_OVERRIDES)
    lines.extend(f"  {override:<{width}}  {description}" for override, description in COMMON_OVERRIDES)
    return "\n".join(lines)


def _read_defaults(path: Path) -> dict[str, str]:
    """The `- group: option` entries of a config's `defaults:` list."""
    defaults: dict[str, str] = {}
    if not path.is_file():
        return defaults
    in_defaults = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "-")):
            in_defaults = line.startswith("defaults:")
            continue
        match = _DEFAULT_LINE.match(line) if in_defaults else None
        if match:
            defaults[match.group(1).split("@")[0]] = match.group(2)
    return defaults


def _first_comment(path: Path) -> str:
    """The first sentence of the comment a config file opens with, over as many of its lines as it takes (the first
    line alone cut `coco`'s mid-sentence, "... otherwise val is also the test")."""
    comment: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# @"):  # a Hydra directive (`# @package _global_`), not a description
            continue
        if not line.startswith("#") or (comment and line.startswith("#  ")):  # code, or an indented list after it
            break
        comment.append(line.lstrip("# ").strip())
    return " ".join(comment).split(". ")[0].rstrip(".")


_COMMAND_LINE = re.compile(r"^\s*(?:examples?:\s*)?torchbricks\s")
_TABLE_ROW = re.compile(r"^(\s*\S.*?\s{2,})(\S.*)$")


class HelpFormatter(argparse.HelpFormatter):
    """The commands' `--help` at the terminal's width (argparse reads it, or `COLUMNS`), the description and epilog
    wrapped line by line: argparse's own formatter joins their lines into one paragraph, and its raw formatter left
    them as written, 370 characters on a line in a terminal of 60. A command line (`torchbricks ...`) is kept whole,
    to be copied; a table row (`name  description`) wraps its description under its column, or under its name,
    indented, when the column is past the middle of the terminal. Lines break at spaces only (argparse also cut
    `pytorch-lightning` at its hyphen and a key longer than the line within it)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(line for row in text.splitlines() for line in _wrapped(row, max(width, 20), indent))

    def _split_lines(self, text: str, width: int) -> list[str]:
        return _wrap(" ".join(text.split()), max(width, 20), "", "")


def _wrapped(row: str, width: int, indent: str) -> list[str]:
    if len(indent) + len(row) <= width or _COMMAND_LINE.match(row):
        return [indent + row]
    leading = indent + row[: len(row) - len(row.lstrip())]
    table = _TABLE_ROW.match(row)
    if table is None:
        return _wrap(row.strip(), width, leading, leading)
    cell, description = table.groups()
    column = indent + " " * len(cell)
    if len(column) <= width // 2:
        return _wrap(description, width, indent + cell, column)
    under = leading + "    "
    return [*_wrap(cell.strip(), width, leading, under), *_wrap(description, width, under, under)]


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """`text` wrapped at spaces only: a path or a key (`root/{train,val[,test]}/images/*`, `--show-config`) is not
    cut, even when longer than the line."""
    return textwrap.wrap(
        text, width, initial_indent=first, subsequent_indent=rest, break_long_words=False, break_on_hyphens=False
    )
