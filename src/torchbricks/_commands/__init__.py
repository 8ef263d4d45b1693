"""The subcommands of the `torchbricks` command line, one module each.

A command module defines `add_parser(commands)` (adds its subparser to argparse's subparsers action) and
`run(arguments) -> int` (the exit status). `COMMANDS` lists the modules in the order `--help` shows them; a new
command is one new module here plus its name in that list. Command modules import torch and the extras inside
`run`, so `--help` stays fast.
"""

from __future__ import annotations

COMMANDS = ("train", "predict", "evaluate", "export", "check_data", "make_dataset")
"""Module names under `torchbricks._commands`, in `--help` order."""
