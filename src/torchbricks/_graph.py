"""Graph logic of a brick collection: name resolution, validation and execution planning.

Plain Python with no torch in it. The graph knows a brick only through the `GraphBrick` protocol; `build_node`
(the one place nodes are built) turns a brick at a path into a `BrickNode` with resolved names. `validate`
checks the wiring and `plan` turns a tag selection into an ordered `Plan`, which also checks a call's named
inputs. The torch side (`torchbricks._plan`) only walks the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torchbricks.errors import (
    BrickCycleError,
    BrickNameError,
    DuplicateOutputError,
    MissingInputError,
    NoBricksSelectedError,
    ShadowedInputError,
    did_you_mean,
)
from torchbricks.tags import MODEL, stage_hint

ALL_NAMES = "__all__"
"""The input name that passes a dict of every value computed so far."""

SEPARATOR = "/"


class GraphBrick(Protocol):
    """What the graph and the runner know of a brick: its names, its tags, its labels and its callable."""

    @property
    def input_names(self) -> list[str] | dict[str, str]: ...

    @property
    def output_names(self) -> list[str]: ...

    @property
    def loss_output_names(self) -> list[str]: ...

    @property
    def tags(self) -> frozenset[str]: ...

    def describe(self) -> str: ...

    def graph_label(self) -> str: ...

    def step_function(self) -> Callable[..., Any]: ...


@dataclass(frozen=True)
class BrickNode:
    """One brick as the graph sees it: its place, its resolved names and its tags."""

    path: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    tags: frozenset[str]
    keywords: tuple[str, ...] | None = None
    """Keyword argument names aligned with `inputs`, or None when inputs are passed positionally."""
    losses: tuple[str, ...] = ()
    """The resolved names of the outputs that are losses."""
    brick: GraphBrick | None = field(default=None, compare=False, repr=False)
    """The brick, for the runner (its callable) and renderers (its label); the graph logic never reads it."""

    def label(self) -> str:
        """What the brick wraps, as a renderer draws it (the brick kind for a bare node)."""
        return self.brick.graph_label() if self.brick is not None else self.kind

    def description(self) -> str:
        """What the brick wraps, as error messages name it."""
        return self.brick.describe() if self.brick is not None else self.kind

    @property
    def scope(self) -> tuple[str, ...]:
        return tuple(self.path.split(SEPARATOR)[:-1])


def build_node(brick: GraphBrick, path: str, scope: Sequence[str]) -> BrickNode:
    """The node of `brick` placed at `path`, its relative names resolved against the collection path `scope`."""
    input_names = brick.input_names
    keywords = tuple(input_names) if isinstance(input_names, Mapping) else None
    names = list(input_names.values()) if isinstance(input_names, Mapping) else input_names
    return BrickNode(
        path=path,
        kind=type(brick).__name__,
        inputs=tuple(resolve_name(name, scope, path) for name in names),
        outputs=tuple(resolve_name(name, scope, path) for name in brick.output_names),
        tags=brick.tags,
        keywords=keywords,
        losses=tuple(resolve_name(name, scope, path) for name in brick.loss_output_names),
        brick=brick,
    )


@dataclass(frozen=True)
class Plan:
    """What one call runs: the bricks in execution order and the names it needs from the caller."""

    order: tuple[int, ...]
    """Indices into the node list, in execution order."""
    required_inputs: tuple[str, ...]
    """Names the caller must provide, in the order they are first needed."""
    first_consumer: dict[str, str]
    """For each required input, the first brick (or 'output_names') that needs it."""
    produced: tuple[str, ...]
    """Names the planned bricks produce, in execution order."""
    excluded_producers: dict[str, BrickNode]
    """Names that bricks left out by the tags would have produced."""
    nodes: tuple[BrickNode, ...] = ()
    """Every brick of the collection (selected or not), in insertion order; `order` indexes into it."""
    tags: frozenset[str] | None = None
    """The tags the plan was made for (None: every brick)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Path -> why, for each brick selected by the tags but left out by `missing_targets="skip"`."""

    @property
    def bricks(self) -> tuple[BrickNode, ...]:
        """The planned bricks, in execution order."""
        return tuple(self.nodes[i] for i in self.order)

    def check_inputs(self, named_inputs: Mapping[str, Any]) -> None:
        """Raises `MissingInputError` for the first required input `named_inputs` lacks.

        The one check of a call's inputs: the collection, a brick run on its own and the exporters all use it.
        """
        for name in self.required_inputs:
            if name not in named_inputs:
                raise missing_input_error(self, name, named_inputs.keys(), self.tags)


def resolve_name(name: str, scope: Sequence[str], brick_path: str) -> str:
    """Resolves a relative name (`./x`, `../x`) against the collection path `scope` of a brick.

    Example:
        >>> resolve_name("./logits", ("head0",), "head0/classify")
        'head0/logits'
        >>> resolve_name("../features", ("head0",), "head0/classify")
        'features'
        >>> resolve_name("targets", ("head0",), "head0/classify")
        'targets'
    """
    if not isinstance(name, str) or not name:
        raise BrickNameError(f"Brick {brick_path!r} has the name {name!r}; names must be non-empty strings.")
    if name == ALL_NAMES or not name.startswith(("./", "../")):
        return name
    parts = name.split(SEPARATOR)
    base = list(scope)
    index = 0
    while index < len(parts) and parts[index] in (".", ".."):
        if parts[index] == "..":
            if not base:
                raise BrickNameError(
                    f"Brick {brick_path!r} uses the relative name {name!r}, which climbs above the root collection. "
                    f"The brick sits at depth {len(scope)}; use at most {len(scope)} '../'."
                )
            base.pop()
        index += 1
    rest = parts[index:]
    if not rest or any(part in ("", ".", "..") for part in rest):
        raise BrickNameError(f"Brick {brick_path!r} uses the malformed relative name {name!r}; expected e.g. './logits'.")
    return SEPARATOR.join([*base, *rest])


def validate(nodes: Sequence[BrickNode]) -> None:
    """Rejects duplicate producers and cycles, naming the bricks involved."""
    producer: dict[str, str] = {}
    for node in nodes:
        for name in node.outputs:
            if name == ALL_NAMES:
                raise BrickNameError(f"Brick {node.path!r} outputs {ALL_NAMES!r}, which is reserved for inputs.")
            if name in producer:
                first = producer[name]
                who = f"Brick {first!r} lists" if first == node.path else f"Bricks {first!r} and {node.path!r} both produce"
                raise DuplicateOutputError(
                    f"{who} the output {name!r} {'twice' if first == node.path else ''}".rstrip()
                    + ". Each name must have exactly one producer; rename one of the outputs."
                )
            producer[name] = node.path
    index_of = {node.path: i for i, node in enumerate(nodes)}
    producer_index = {name: index_of[path] for name, path in producer.items()}
    children = _explicit_children(nodes, range(len(nodes)), producer_index)
    order = _topological_order(range(len(nodes)), children)
    if len(order) != len(nodes):
        cycle = _find_cycle(set(range(len(nodes))) - set(order), children)
        names = " -> ".join(repr(nodes[i].path) for i in [*cycle, cycle[0]])
        raise BrickCycleError(f"Bricks depend on each other in a cycle: {names}. Break it by renaming an input or output.")


def plan(
    nodes: Sequence[BrickNode],
    tags: frozenset[str] | None,
    wanted: tuple[str, ...] | None,
    provided: frozenset[str] | None = None,
) -> Plan:
    """Plans a call: selects bricks by `tags` (None selects all), keeps those `wanted` outputs need, orders them.

    Ties in the topological order keep insertion order, so the order is deterministic.

    With `provided` (the names the caller gives), a brick that is not a `MODEL` brick and needs a name neither
    provided nor produced is left out, with every brick downstream of it that is not a `MODEL` brick: a batch
    without a head's targets runs the model and skips that head's losses and metrics. A `MODEL` brick is never
    left out, so a missing model input still fails the input check.
    """
    selected = [i for i, node in enumerate(nodes) if tags is None or node.tags & tags]
    if not selected and not nodes:
        raise NoBricksSelectedError(
            "The collection holds no brick, so a call has nothing to run: add bricks (`collection[name] = brick`) "
            "before calling it."
        )
    if not selected:
        in_use = sorted(set().union(*(node.tags for node in nodes)))
        shown = sorted(tags) if tags is not None else None
        hint = stage_hint(tags) if tags is not None else ""
        if tags is not None and not hint:
            hint = next((match for match in (did_you_mean(tag, in_use) for tag in sorted(tags)) if match), "")
        raise NoBricksSelectedError(f"Tags {shown} select no brick. Tags in use: {in_use}.{hint}")
    producer = {name: i for i in selected for name in nodes[i].outputs}
    skipped: dict[int, str] = {}
    if provided is not None:
        # Only named edges carry the lack downstream: a brick reading `__all__` reads whatever did run.
        skipped = _lacking_inputs(nodes, selected, producer, _explicit_children(nodes, selected, producer), provided)
        if skipped:
            selected = [i for i in selected if i not in skipped]
            producer = {name: i for i in selected for name in nodes[i].outputs}
    children = _explicit_children(nodes, selected, producer)
    _add_all_names_edges(nodes, selected, children)

    first_consumer: dict[str, str] = {}
    if wanted is not None:
        keep = _ancestors([producer[name] for name in wanted if name in producer], children)
        selected = [i for i in selected if i in keep]
        children = {i: [j for j in children[i] if j in keep] for i in selected}
        for name in wanted:
            if name not in producer:
                first_consumer.setdefault(name, "output_names")

    order = tuple(_topological_order(selected, children))
    for i in order:
        for name in nodes[i].inputs:
            if name != ALL_NAMES and name not in producer:
                first_consumer.setdefault(name, nodes[i].path)
    selected_set = set(order)
    excluded = {
        name: node for i, node in enumerate(nodes) if i not in selected_set for name in node.outputs if name not in producer
    }
    produced = tuple(name for i in order for name in nodes[i].outputs)
    why_skipped = {nodes[i].path: why for i, why in skipped.items()}
    return Plan(order, tuple(first_consumer), first_consumer, produced, excluded, tuple(nodes), tags, why_skipped)


def release_after(nodes: Sequence[BrickNode], plan_: Plan, keep: Iterable[str]) -> list[tuple[str, ...]]:
    """For each planned brick, the names no later brick reads and the caller does not keep.

    Dropping them right after that brick runs frees intermediate tensors as a hand-written module would.
    A brick reading `__all__` needs everything before it, so nothing is released before it runs.
    """
    kept = set(keep)
    last_use: dict[str, int] = {}
    barrier = -1
    for position, i in enumerate(plan_.order):
        if ALL_NAMES in nodes[i].inputs:
            barrier = position
        for name in nodes[i].inputs:
            last_use[name] = position
        for name in nodes[i].outputs:
            last_use.setdefault(name, position)
    released: list[list[str]] = [[] for _ in plan_.order]
    for name, position in last_use.items():
        if name not in kept and name != ALL_NAMES:
            released[max(position, barrier)].append(name)
    return [tuple(names) for names in released]


def missing_input_error(plan_: Plan, name: str, available: Iterable[str], tags: frozenset[str] | None) -> MissingInputError:
    """The error for a required input the caller did not provide."""
    consumer = plan_.first_consumer[name]
    names = sorted(set(available) | set(plan_.produced))
    if consumer == "output_names":  # the names the selected bricks can produce, not only those the request kept
        names = sorted(
            set(names).union(
                *(node.outputs for node in plan_.nodes if (tags is None or node.tags & tags) and node.path not in plan_.skipped)
            )
        )
    who = "The requested output_names include" if consumer == "output_names" else f"Brick {consumer!r} needs input"
    excluded = plan_.excluded_producers.get(name)
    if excluded is not None and excluded.path in plan_.skipped:
        why = (
            f"which brick {excluded.path!r} would produce, but it is skipped (missing_targets='skip'): "
            f"{plan_.skipped[excluded.path]}"
        )
    elif excluded is not None:
        why = (
            f"which brick {excluded.path!r} would produce, but its tags {sorted(excluded.tags)} "
            f"are not selected by tags {sorted(tags) if tags is not None else None}"
        )
    else:
        why = "which no brick produces and named_inputs lacks"
    return MissingInputError(f"{who} {name!r}, {why}. Available: {names}.{did_you_mean(name, names)}")


def shadowed_input_error(plan_: Plan, name: str) -> ShadowedInputError:
    """The error for a named input a planned brick produces."""
    producer = next(node for node in plan_.bricks if name in node.outputs)
    readers = [node.path for node in plan_.bricks if name in node.inputs]
    return ShadowedInputError(
        f"named_inputs gives {name!r}, which brick {producer.path!r} produces: the brick would replace the given value"
        + (f", and {readers} would read the brick's" if readers else "")
        + ". To feed it yourself, leave the brick out of the call (tags, output_names) or give the input another name; "
        "to run again on a dict a call returned, pass only its inputs."
    )


def _lacking_inputs(
    nodes: Sequence[BrickNode],
    selected: list[int],
    producer: dict[str, int],
    children: dict[int, list[int]],
    provided: frozenset[str],
) -> dict[int, str]:
    """The non-`MODEL` bricks that need a name neither `provided` nor produced, and the non-`MODEL` bricks downstream,
    each with why it is left out."""
    why: dict[int, str] = {}
    for i in selected:
        lacking = [name for name in nodes[i].inputs if name != ALL_NAMES and name not in producer and name not in provided]
        if lacking and MODEL not in nodes[i].tags:
            why[i] = f"named_inputs lacks its input {lacking[0]!r}"
    for start in list(why):
        for i in _reachable([start], children):
            if MODEL not in nodes[i].tags:
                why.setdefault(i, f"it depends on brick {nodes[start].path!r}, which is skipped")
    return why


def _explicit_children(nodes: Sequence[BrickNode], selected: Iterable[int], producer: dict[str, int]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {i: [] for i in selected}
    for i in children:
        for name in dict.fromkeys(nodes[i].inputs):
            source = producer.get(name)
            if source is not None and source in children:
                children[source].append(i)
    return children


def _add_all_names_edges(nodes: Sequence[BrickNode], selected: list[int], children: dict[int, list[int]]) -> None:
    """A brick taking `__all__` runs after every selected brick that does not depend on it.

    Of two `__all__` bricks the one inserted later runs later and sees the earlier one's outputs (unless it feeds
    the earlier one by name): an `__all__` brick is not made to wait for a later `__all__` brick, nor for the
    bricks downstream of one.
    """
    reading_all = [i for i in selected if ALL_NAMES in nodes[i].inputs]
    for position, i in enumerate(reading_all):
        descendants = _descendants(i, children)
        after_later = _reachable(reading_all[position + 1 :], children)
        for j in selected:
            if j != i and j not in descendants and j not in after_later and i not in children[j]:
                children[j].append(i)


def _descendants(start: int, children: dict[int, list[int]]) -> set[int]:
    return _reachable([start], children)


def _ancestors(starts: list[int], children: dict[int, list[int]]) -> set[int]:
    parents: dict[int, list[int]] = {i: [] for i in children}
    for parent, kids in children.items():
        for kid in kids:
            parents[kid].append(parent)
    return _reachable(starts, parents)


def _reachable(starts: list[int], edges: dict[int, list[int]]) -> set[int]:
    """The bricks reachable from `starts` along `edges`, the starts included."""
    seen = set(starts)
    stack = list(starts)
    while stack:
        for neighbour in edges[stack.pop()]:
            if neighbour not in seen:
                seen.add(neighbour)
                stack.append(neighbour)
    return seen


def _topological_order(selected: Iterable[int], children: dict[int, list[int]]) -> list[int]:
    """Kahn's algorithm; among ready bricks the one inserted first runs first.

    The ready set is a sorted list rather than a heap: it keeps the planner plain Python that
    `torch.compile` can trace when it plans a call inside a compiled region.
    """
    in_degree = dict.fromkeys(selected, 0)
    for i in in_degree:
        for child in children[i]:
            in_degree[child] += 1
    ready = sorted(i for i, degree in in_degree.items() if degree == 0)
    ready.reverse()  # popped from the end, so smallest last
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        newly_ready = [child for child in children[i] if _decrement(in_degree, child) == 0]
        if newly_ready:
            ready = sorted([*ready, *newly_ready], reverse=True)
    return order


def _decrement(counts: dict[int, int], key: int) -> int:
    counts[key] -= 1
    return counts[key]


def _find_cycle(remaining: set[int], children: dict[int, list[int]]) -> list[int]:
    """Walks backwards from a brick left over by Kahn's algorithm until a brick repeats.

    Every leftover brick has a leftover parent, so the walk always closes a cycle.
    """
    parents: dict[int, list[int]] = {i: [] for i in remaining}
    for parent in sorted(remaining):
        for child in children[parent]:
            if child in remaining:
                parents[child].append(parent)
    path: list[int] = []
    position: dict[int, int] = {}
    current = min(remaining)
    while current not in position:
        position[current] = len(path)
        path.append(current)
        current = parents[current][0]
    cycle = path[position[current] :][::-1]
    first = cycle.index(min(cycle))
    return cycle[first:] + cycle[:first]
