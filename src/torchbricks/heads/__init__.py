"""Task heads, one registered class per kind: its bricks, its packaged config and its report adapter.

A kind (`classification`, `multilabel`, `segmentation`, `detection`, `points`, `count`) is a `TaskHead` subclass
in its own module of this package, registered with `@register_head(kind)`. The `create_*_head` factories of
`torchbricks.bag_of_bricks` build its bricks (`create`), the packaged `configs/head/<name>.yaml` are its
description written out (`write_head_configs`), and `torchbricks.lightning.report` draws `predictions.png` with its
adapter (`predictions`). Adding a kind is adding a module here (and its test).
"""

from __future__ import annotations

from torchbricks.heads._configs import HEAD_CONFIG_FOLDER, head_config_text, packaged_head_configs, write_head_configs
from torchbricks.heads._registry import (
    Collected,
    TaskHead,
    brick,
    create_from_description,
    find_heads,
    get_head,
    head_factory,
    list_heads,
    metrics,
    node,
    register_head,
)

__all__ = [
    "HEAD_CONFIG_FOLDER",
    "Collected",
    "TaskHead",
    "brick",
    "create_from_description",
    "find_heads",
    "get_head",
    "head_config_text",
    "head_factory",
    "list_heads",
    "metrics",
    "node",
    "packaged_head_configs",
    "register_head",
    "write_head_configs",
]
