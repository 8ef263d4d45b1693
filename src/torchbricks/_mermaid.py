"""Renders a `Plan` as a mermaid flowchart; `torchbricks.graph_plotter` is the public entry point.

The drawing rules, which reproduce the graphs of the specification line for line:

- Every selected brick is defined once, in insertion order, with its name, what it wraps and its brick type.
- Each input the selected bricks need from the caller gets an edge to every brick reading it.
- Each brick then gets an edge to every brick reading one of its outputs (labelled with the name), and an
  edge to each of its outputs no selected brick reads by name: those are the collection's outputs.
- Edges of a brick inside a nested collection are drawn inside a `subgraph` block named after the collection.
- A brick reading `"__all__"` receives a dict of everything computed before it: it gets an edge labelled
  `__all__` from every required input and from every brick that runs before it. Reading a name through
  `__all__` does not consume it, so such names are still drawn as outputs.
- Every brick type gets a colour (`classDef`), in order of first appearance.

The module is plain Python: it reads the collection's graph nodes and plan, never a tensor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from torchbricks._graph import ALL_NAMES, SEPARATOR, BrickNode, Plan

__all__ = ["render", "render_markdown"]

_INDENT = "    "
_SPEC_COLORS = {
    "BrickNotTrainable": "#B56576",
    "BrickTrainable": "#6D597A",
    "BrickLoss": "#5C677D",
    "BrickMetricSingle": "#1450A3",
}
"""The colours the spec's graphs print (public output, kept as printed); every other fill keeps black text readable
(a contrast of 7:1 or more)."""
_BRICK_COLORS = {
    **_SPEC_COLORS,
    "BrickModule": "#B79FC6",
    "BrickMetrics": "#8FB8ED",
    "BrickPerImageVisualization": "#EAAC8B",
}
_EXTRA_COLORS = ("#9DB4D3", "#E9C46A", "#86B0DC", "#C9B7D6", "#6FC2B6", "#F2B8A0")
"""Colours for brick types without one of their own, handed out in order of first appearance."""

_STYLES = (
    "classDef arrow stroke-width:0px,fill-opacity:0.0 ",
    "classDef input stroke-width:0px,fill-opacity:0.3,fill:#22A699 ",
    "classDef output stroke-width:0px,fill-opacity:0.3,fill:#F2BE22 ",
)
_LEGEND = ("subgraph Legends", f"{_INDENT}input(input):::input", f"{_INDENT}output(output):::output", "end")
_LEGEND_IDS = frozenset({"Legends", "input", "output"})
"""Ids the legend defines; a brick, name or collection spelled so gets a generated id, or it would join the legend."""

_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_/\-]*")
_MERMAID_KEYWORDS = frozenset({"end", "graph", "flowchart", "subgraph", "class", "classDef", "click", "style", "linkStyle"})
_SAFE_LABEL = re.compile(r"[A-Za-z0-9_/\-. ]*")
_ESCAPES = {char: f"#{ord(char)};" for char in '"#&()<>[]{}|'}


def render(plan: Plan) -> str:
    """The mermaid flowchart of the bricks `plan` runs, starting with `flowchart LR`."""
    return _render(plan.nodes, plan.order, plan.required_inputs)


def render_markdown(plan: Plan) -> str:
    """The flowchart of `render` in a ```mermaid block, as Jupyter and GitHub render it."""
    return f"```mermaid\n{render(plan)}\n```"


def _render(nodes: Sequence[BrickNode], execution_order: Sequence[int], required_inputs: Sequence[str]) -> str:
    """Writes the flowchart of the bricks in `execution_order`; they are drawn in insertion order."""
    selected = sorted(execution_order)
    ids = _Ids(nodes[i].path for i in selected)
    position = {i: step for step, i in enumerate(execution_order)}
    reads_all = [i for i in selected if ALL_NAMES in nodes[i].inputs]
    readers: dict[str, list[int]] = {}
    for i in selected:
        for name in dict.fromkeys(nodes[i].inputs):
            readers.setdefault(name, []).append(i)

    lines = ["flowchart LR", "%% Brick definitions"]
    lines += [_definition(nodes[i], ids) for i in selected]
    lines += ["", "%% Draw input and outputs"]
    for name in required_inputs:
        lines += [f"{ids.data(name)}:::input --> {ids.brick(nodes[i].path)}" for i in readers.get(name, [])]
        lines += [f"{ids.data(name)}:::input --> |{_label(ALL_NAMES)}| {ids.brick(nodes[i].path)}" for i in reads_all]

    edges_by_scope: dict[tuple[str, ...], list[str]] = {}
    for source in selected:
        node = nodes[source]
        edges = edges_by_scope.setdefault(node.scope, [])
        seeing_all = {i for i in reads_all if position[source] < position[i]}
        for target in sorted({i for name in node.outputs for i in readers.get(name, [])} | seeing_all):
            names = [name for name in dict.fromkeys(nodes[target].inputs) if name in node.outputs]
            edges += [f"{ids.brick(node.path)} --> |{_label(name)}| {ids.brick(nodes[target].path)}" for name in names]
            if target in seeing_all:
                edges.append(f"{ids.brick(node.path)} --> |{_label(ALL_NAMES)}| {ids.brick(nodes[target].path)}")
        edges += [f"{ids.brick(node.path)} --> {ids.data(name)}:::output" for name in node.outputs if name not in readers]
    lines += ["", "%% Draw nodes and edges"]
    lines += _scope_block((), edges_by_scope, ids)

    lines += ["", "%% Add styling", *_STYLES]
    lines += [f"classDef {kind} stroke-width:0px,fill:{color} " for kind, color in _kind_colors(nodes[i].kind for i in selected)]
    lines += ["", "%% Add legends", *_LEGEND]
    return "\n".join([lines[0], *(_INDENT + line for line in lines[1:])])


def _scope_block(scope: tuple[str, ...], edges_by_scope: dict[tuple[str, ...], list[str]], ids: _Ids) -> list[str]:
    """The edges drawn directly in `scope`, then one `subgraph` block per nested collection below it."""
    lines = list(edges_by_scope.get(scope, []))
    children = dict.fromkeys(
        key[: len(scope) + 1] for key in edges_by_scope if len(key) > len(scope) and key[: len(scope)] == scope
    )
    for child in children:
        inner = _scope_block(child, edges_by_scope, ids)
        if inner:
            lines += [f"subgraph {ids.scope(SEPARATOR.join(child))}", *(_INDENT + line for line in inner), "end"]
    return lines


def _definition(node: BrickNode, ids: _Ids) -> str:
    label = f"<strong>{_escape(repr(node.path))}: {_escape(node.label())}</strong><br><i>{_escape(node.kind)}</i>"
    return f"{ids.brick(node.path)}({label}):::{_class_name(node.kind)}"


def _kind_colors(kinds: Iterable[str]) -> list[tuple[str, str]]:
    colors: dict[str, str] = {}
    extra = 0
    for kind in kinds:
        if kind in colors:
            continue
        if kind in _BRICK_COLORS:
            colors[kind] = _BRICK_COLORS[kind]
        else:
            colors[kind] = _EXTRA_COLORS[extra % len(_EXTRA_COLORS)]
            extra += 1
    return [(_class_name(kind), color) for kind, color in colors.items()]


def _class_name(kind: str) -> str:
    return re.sub(r"\W", "_", kind)


def _escape(text: str) -> str:
    """Replaces the characters mermaid reads as syntax inside a node label by entity codes."""
    return "".join(_ESCAPES.get(char, char) for char in text)


def _label(name: str) -> str:
    """An edge label: the name as it is when mermaid can read it, quoted otherwise."""
    return name if _SAFE_LABEL.fullmatch(name) and name not in _MERMAID_KEYWORDS else f'"{_escape(name)}"'


class _Ids:
    """Mermaid node ids: the brick path or data name itself when mermaid can read it and it is unambiguous.

    A name equal to a brick path, a mermaid keyword or a legend id, or holding other characters, gets a generated id and
    keeps its text as the label, so every name is still shown as it is.
    """

    def __init__(self, brick_paths: Iterable[str]) -> None:
        self._counters: dict[str, int] = {}
        paths = list(brick_paths)
        self._taken = {path for path in paths if _plain(path)}
        self._bricks = {path: path if path in self._taken else self._generate("brick") for path in paths}
        self._data: dict[str, str] = {}
        self._scopes: dict[str, str] = {}

    def _generate(self, prefix: str) -> str:
        number = self._counters.get(prefix, 0)
        while f"{prefix}_{number}" in self._taken:
            number += 1
        self._counters[prefix] = number + 1
        self._taken.add(f"{prefix}_{number}")
        return f"{prefix}_{number}"

    def brick(self, path: str) -> str:
        return self._bricks[path]

    def data(self, name: str) -> str:
        return self._labelled(self._data, name, "data")

    def scope(self, path: str) -> str:
        return self._labelled(self._scopes, path, "scope")

    def _labelled(self, ids: dict[str, str], text: str, prefix: str) -> str:
        """The id of `text` in `ids`: the text itself when free, else a generated id labelled with the text."""
        if text not in ids:
            if _plain(text) and text not in self._taken:
                self._taken.add(text)
                ids[text] = text
            else:
                ids[text] = f'{self._generate(prefix)}["{_escape(text)}"]'
        return ids[text]


def _plain(text: str) -> bool:
    return bool(_SAFE_ID.fullmatch(text)) and text not in _MERMAID_KEYWORDS and text not in _LEGEND_IDS
