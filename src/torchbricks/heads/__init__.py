"""Task heads, one registered class per kind: its bricks, its packaged config and its report adapter.

A kind (`classification`, `multilabel`, `segmentation`, `detection`, `points`, `count`) is a `TaskHead` subclass
in its own module of this package, registered with `@register_head(kind)`. The `create_*_head` factories of
`torchbricks.bag_of_bricks` build its bricks (`create`), its packaged configs (`packaged_configs`) are the options
of the config group `head` (`+head@model.bricks.NAME=<name>`, stored in Hydra's ConfigStore when a config is
composed: there is no YAML file to keep in step), and `torchbricks.lightning.report` draws `predictions.png` with its
adapter (`predictions`). Adding a kind is adding a module here (and its test).
"""

from __future__ import annotations

from torchbricks.heads._registry import (
    Collected,
    TaskHead,
    find_heads,
    get_head,
    head_factory,
    list_heads,
    packaged_head_configs,
    register_head,
)

__all__ = [
    "Collected",
    "TaskHead",
    "find_heads",
    "get_head",
    "head_factory",
    "list_heads",
    "packaged_head_configs",
    "register_head",
]
