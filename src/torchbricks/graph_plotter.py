"""Draws a brick collection as a mermaid flowchart.

The drawing follows the graphs of the specification line for line; the rules are listed in
`torchbricks._mermaid`, which renders the collection's public `plan()`. Plain Python: no tensor is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchbricks import _mermaid
from torchbricks.tags import TagsLike

if TYPE_CHECKING:
    from torchbricks.brick_collection import BrickCollection

__all__ = ["create_mermaid_dag_graph", "create_mermaid_markdown"]


def create_mermaid_dag_graph(brick_collection: BrickCollection, tags: TagsLike | None = None) -> str:
    """The mermaid flowchart of the bricks selected by `tags` (all bricks when None).

    Args:
        brick_collection: The collection to draw.
        tags: Draw only what runs for these tags (a str, a collection of str or a `Stage`).

    Returns:
        The flowchart source, starting with `flowchart LR`; put it in a ```mermaid block to render it.

    Example:
        >>> import torch
        >>> from torchbricks.brick_collection import BrickCollection
        >>> from torchbricks.bricks import BrickTrainable
        >>> collection = BrickCollection({"scale": BrickTrainable(torch.nn.Identity(), input_names=["x"], output_names=["y"])})
        >>> print(create_mermaid_dag_graph(collection).splitlines()[2])
            scale(<strong>'scale': Identity</strong><br><i>BrickTrainable</i>):::BrickTrainable
    """
    return _mermaid.render(brick_collection.plan(tags=tags))


def create_mermaid_markdown(brick_collection: BrickCollection, tags: TagsLike | None = None) -> str:
    """The graph of `create_mermaid_dag_graph` in a ```mermaid block, as Jupyter and GitHub render it."""
    return _mermaid.render_markdown(brick_collection.plan(tags=tags))
