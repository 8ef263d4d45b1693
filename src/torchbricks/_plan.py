"""The compiled plan: a `Plan` turned into a step table, and `run_steps`, the one interpreter of that table.

A step is one row of plain constants: the index of the brick's callable, how its inputs are read, its outputs,
its losses, the names released after it and the brick as messages name it. Everything that depends only on the
structure (resolved names, arity, keyword binding, which outputs are losses, which names can be freed) is decided
once, when the plan is compiled, so a call does nothing per step but dict lookups, the brick's own call and the
checks its row asks for.

Eager calls (`CompiledPlan.run`) and compiled calls (`torchbricks._compiled_call`, where the table is a
compile-time constant) run the same table through the same `run_steps`: output storing, the loss check and
`__all__` have one implementation, and a failing step gets the same note in both.

What a plan depends on is the collection's `Structure`: its bricks' nodes (paths, resolved names, tags) without the
bricks, and how messages name each brick. Structures are interned: collections built alike (a model per fold, the
stage views Lightning rebuilds) have the one `Structure` and its small int `key`, and share its step tables. The
callables are the collection's own, one per node, so a table runs any collection of its structure.

State: the intern table of structures (`_STRUCTURES`, `_BY_KEY`), a memo of a pure function of the nodes: nothing in
it is ever invalidated, a key is never reused, and it holds no brick (the interned nodes are stripped of theirs). It
grows by one entry per distinct structure the process builds. Everything else belongs to its owner: a collection
keeps its plans, nodes, structure and callables in a `PlanCache` it refreshes when its structure changes, and a brick
run on its own keeps its plan (`single_brick_plan`). Bricks know nothing of this module beyond that function, and
this module knows bricks only through the `GraphBrick` protocol of the graph.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from torch.compiler import is_compiling

from torchbricks._graph import ALL_NAMES, BrickNode, GraphBrick, Plan, build_node, plan, release_after, shadowed_input_error
from torchbricks.errors import BrickError, BrickOutputError, NamedInputsTypeError
from torchbricks.tags import TagsLike, normalize_tags

__all__ = [
    "CompiledPlan",
    "PlanCache",
    "PlanOwner",
    "PlannedSteps",
    "Selection",
    "StepTable",
    "Structure",
    "check_named_inputs",
    "normalize_selection",
    "provided_names",
    "run_steps",
    "single_brick_plan",
    "structure_of",
    "structure_with_key",
]

StepKind = Literal["one", "one_last_read", "positional", "keywords", "all"]
"""How a step passes its inputs: one positional value, one positional value that no later step reads (taken out of
the data as it is passed, the common link of a chain with `output_names`), several positional values, keyword
arguments, or with one of them the dict of every name (`ALL_NAMES`). `run_steps` compares literals, not module
constants, as a compiled call guards every module global it reads."""

Names = tuple[str, ...]
Step = tuple[int, StepKind, Names, "Names | None", Names, int, Names, Names, str, str]
"""One row of the step table, as plain constants: the index of its callable (its node's index), how its inputs are passed (a
`StepKind`), its input names, their keywords (or None), its output names and their count, its losses, the names released
after it, the brick as messages name it (`Brick 'head/classify' (Linear)`) and its path. Everything `run_steps`
would otherwise compute with a builtin or a module global is decided here, as each global a compiled call reads
costs a guard on every call."""


class StepTable(NamedTuple):
    """A plan as plain constants: its steps, the names they produce and the names a call asked for."""

    steps: tuple[Step, ...]
    produced: tuple[str, ...]
    wanted: tuple[str, ...] | None


class PlanOwner(Protocol):
    """Something that caches compiled plans over bricks (a collection); bricks tell it when they change."""

    def invalidate_plans(self) -> None: ...

    def wiring_changed(self, brick: object) -> None:
        """`brick` changed its names or tags: drops the cached plans and, when the owner holds `brick`, checks the
        wiring of every tree holding the owner (raising `BrickBuildError`)."""


Selection = tuple[frozenset[str] | None, tuple[str, ...] | None, frozenset[str] | None]
"""What a call selects, in hashable form: its tag set, its wanted output names and the input names a
`missing_targets="skip"` call plans with (None for each when not given)."""


class PlannedSteps(NamedTuple):
    """A plan and its step table: the part of a call's plan that depends on the structure only."""

    plan: Plan
    table: StepTable


def planned_steps(nodes: Sequence[BrickNode], whos: Sequence[str], selection: Selection) -> PlannedSteps:
    """Plans a selection over `nodes` and turns the plan into a step table; `whos` names each node's brick."""
    tags, wanted, provided = selection
    plan_ = plan(nodes, tags, wanted, provided)
    # With `output_names` only the wanted names are returned, so each other name is freed once nothing reads it.
    releases = [()] * len(plan_.order) if wanted is None else release_after(nodes, plan_, wanted)
    steps = tuple(_step(i, nodes[i], whos[i], released) for i, released in zip(plan_.order, releases, strict=True))
    return PlannedSteps(plan_, StepTable(steps, plan_.produced, wanted))


class Structure:
    """What the plans of a collection depend on, as plain data: its bricks' nodes without the bricks, and how messages
    name each brick (`Brick 'head/classify' (Linear)`).

    Interned (`structure_of`): equal structures are one object, numbered by a small int `key` that is never reused,
    which a compiled call guards instead of the collection. Its step tables are cached per selection.
    """

    __slots__ = ("_steps", "key", "nodes", "whos")

    def __init__(self, key: int, nodes: tuple[BrickNode, ...], whos: tuple[str, ...]) -> None:
        self.key = key
        self.nodes = nodes
        self.whos = whos
        self._steps: dict[Selection, PlannedSteps] = {}

    def steps(self, selection: Selection) -> PlannedSteps:
        """The plan and step table of `selection` (cached; raises the planner's errors)."""
        steps = self._steps.get(selection)
        if steps is None:
            steps = self._steps[selection] = planned_steps(self.nodes, self.whos, selection)
        return steps


_STRUCTURES: dict[tuple[tuple[BrickNode, ...], tuple[str, ...]], Structure] = {}
_BY_KEY: dict[int, Structure] = {}
_KEYS = itertools.count()


def structure_of(nodes: Sequence[BrickNode]) -> Structure:
    """The interned `Structure` of `nodes` (the nodes of a collection, with their bricks)."""
    whos = tuple(f"Brick {node.path!r} ({node.description()})" for node in nodes)
    stripped = tuple(dataclasses.replace(node, brick=None) for node in nodes)
    signature = (stripped, whos)
    structure = _STRUCTURES.get(signature)
    if structure is None:
        candidate = Structure(next(_KEYS), stripped, whos)
        structure = _STRUCTURES.setdefault(signature, candidate)
        if structure is candidate:
            _BY_KEY[candidate.key] = candidate
    return structure


def structure_with_key(key: int) -> Structure:
    """The interned `Structure` numbered `key`."""
    return _BY_KEY[key]


class _Unrunnable:
    """The callable of a brick whose `step_function` raised: a call that plans the brick raises its error."""

    __slots__ = ("brick",)

    def __init__(self, brick: GraphBrick) -> None:
        self.brick = brick

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.brick.step_function()(*args, **kwargs)


def step_functions(nodes: Sequence[BrickNode]) -> tuple[Callable[..., Any], ...]:
    """The callable of each node's brick, in node order.

    A brick that cannot give one gets an `_Unrunnable`, so that a collection holding it still runs the calls that
    leave it out; a call that plans it raises the brick's error (`CompiledPlan`).
    """
    functions: list[Callable[..., Any]] = []
    for node in nodes:
        brick = _brick_of(node)
        try:
            functions.append(brick.step_function())
        except Exception:  # raised again, with the brick's own message, by the call that plans the brick
            functions.append(_Unrunnable(brick))
    return tuple(functions)


class CompiledPlan:
    """A plan with its step table and the callables of a collection: what one call with given tags and output names
    runs, eagerly.

    Args:
        steps: The plan and its step table (from the collection's `Structure`).
        functions: The callable of every node of the collection, in node order (the table indexes them).
    """

    __slots__ = ("functions", "n_required", "plan", "produced", "table")

    def __init__(self, steps: PlannedSteps, functions: tuple[Callable[..., Any], ...]) -> None:
        self.plan, self.table = steps
        self.produced = frozenset(self.plan.produced)
        self.n_required = len(self.plan.required_inputs)
        for step in self.table.steps:
            function = functions[step[0]]
            if isinstance(function, _Unrunnable):  # the brick could not give its callable: its error, now it is planned
                function.brick.step_function()
        self.functions = functions
        """The callable of every node, in node order."""

    def check_inputs(self, named_inputs: Mapping[str, Any]) -> None:
        """Raises `MissingInputError` when `named_inputs` lacks a name the planned bricks need."""
        self.plan.check_inputs(named_inputs)

    def check_not_produced(self, named_inputs: Mapping[str, Any]) -> None:
        """Raises `ShadowedInputError` when `named_inputs` gives a name a planned brick produces: the brick would
        replace the given value, and the bricks reading the name would never see it."""
        for name in named_inputs:
            if name in self.produced:
                raise shadowed_input_error(self.plan, name)

    def run(self, named_inputs: Mapping[str, Any], return_inputs: bool) -> dict[str, Any]:
        """An eager call: checks the inputs, runs the step table, and notes on an error which brick raised it."""
        for name in self.plan.required_inputs:
            if name not in named_inputs:
                self.plan.check_inputs(named_inputs)
        if len(named_inputs) > self.n_required:  # names beyond the required ones: none may be a brick's output
            self.check_not_produced(named_inputs)
        try:
            return run_steps(self.table, self.functions, named_inputs, return_inputs)
        except Exception as error:
            path = _failing_path(error)
            if path is not None:
                error.add_note(brick_note(path))
            raise


class PlanCache:
    """What a collection derives from its structure, a value its owner refreshes (`clear`, then `set_nodes`) whenever
    the structure changes: its nodes, its interned `Structure`, its callables and its compiled plans.

    `key` is the structure's key (-1 while the nodes cannot be built, e.g. in a nested collection whose relative
    names climb above it); a compiled call passes it to dynamo, which guards it, so collections of one structure
    share compiled code and a change of structure recompiles. `functions` holds the callable of each node, which a
    compiled call reads by int index (see `torchbricks._compiled_call`). `plans` maps a call's selection to its plan.
    """

    __slots__ = ("functions", "key", "nodes", "plans", "structure")

    def __init__(self) -> None:
        self.key = -1
        self.plans: dict[Any, CompiledPlan] = {}
        self.nodes: tuple[BrickNode, ...] | None = None
        """The graph nodes of every brick, built once per structure."""
        self.structure: Structure | None = None
        self.functions: tuple[Callable[..., Any], ...] = ()

    def clear(self) -> None:
        self.key = -1
        self.plans.clear()
        self.nodes = None
        self.structure = None
        self.functions = ()

    def set_nodes(self, nodes: tuple[BrickNode, ...]) -> None:
        """Derives the structure, its key and the callables from freshly built `nodes`."""
        self.structure = structure_of(nodes)
        self.functions = step_functions(nodes)
        self.nodes = nodes
        self.key = self.structure.key

    def compiled(self, selection: Selection) -> CompiledPlan:
        """The plan of `selection` with this collection's callables (cached); `set_nodes` must have run."""
        compiled = self.plans.get(selection)
        if compiled is None:
            if self.structure is None:
                raise ValueError("PlanCache.compiled needs the nodes; call set_nodes first.")
            compiled = self.plans[selection] = CompiledPlan(self.structure.steps(selection), self.functions)
        return compiled


def run_steps(
    table: StepTable, functions: tuple[Callable[..., Any], ...], named_inputs: Mapping[str, Any], return_inputs: bool
) -> dict[str, Any]:
    """Runs a step table with its callables: the one interpreter of a plan, eager and compiled.

    The caller has checked the inputs (`CompiledPlan.check_inputs`), as its message needs the plan. The common
    path reads no module global and calls no builtin (under `torch.compile` dynamo would guard each on every
    call); the table holds what they would compute.
    """
    steps, produced, wanted = table
    data = {**named_inputs}
    for index, kind, ins, keywords, outs, count, losses, released, who, path in steps:
        fn = functions[index]
        if kind == "one":
            result = fn(data[ins[0]])
        elif kind == "one_last_read":
            result = fn(data.pop(ins[0]))
        elif kind == "positional":
            result = fn(*[data[name] for name in ins])
        elif kind == "keywords":
            result = fn(**{keyword: data[name] for keyword, name in zip(keywords, ins, strict=True)})  # type: ignore[arg-type]
        else:
            result = _call_reading_all(fn, ins, keywords, data)
        if count == 1 and type(result) is not tuple and result is not None:
            data[outs[0]] = result
        else:
            _store_outputs(data, outs, result, who, path)
        if losses:
            _check_losses(data, losses, who, path)
        for name in released:
            del data[name]
    if wanted is not None:
        return {name: data[name] for name in wanted}
    if return_inputs:
        return data
    return {name: data[name] for name in produced}


def brick_note(path: str) -> str:
    """The note an error raised while a brick runs carries."""
    return f"while running brick {path!r} of a BrickCollection"


def _in_brick(error: BrickOutputError, path: str) -> BrickOutputError:
    """A check's error as `run_steps` raises it.

    Eagerly `CompiledPlan.run` adds the brick's note. Dynamo cannot trace `add_note`, and under
    `torch.compile(fullgraph=True)` an error met while tracing reaches the user only as its repr inside dynamo's
    error, so there the note is carried as the error's second argument: the user reads the same message and note.
    """
    if is_compiling():
        return type(error)(*error.args, brick_note(path))
    return error


def _failing_path(error: BaseException) -> str | None:
    """The path of the brick whose step raised `error`, read from the `run_steps` frame in its traceback.

    Reading it after the fact keeps the hot loop free of bookkeeping (and of a try block, inside which dynamo
    cannot break a graph).
    """
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code is run_steps.__code__:
            return trace.tb_frame.f_locals.get("path")
        trace = trace.tb_next
    return None


def _step(index: int, node: BrickNode, who: str, released: tuple[str, ...]) -> Step:
    kind: StepKind
    if ALL_NAMES in node.inputs:
        kind = "all"
    elif node.keywords is not None:
        kind = "keywords"
    elif len(node.inputs) != 1:
        kind = "positional"
    elif node.inputs == released and node.outputs != node.inputs:
        kind, released = "one_last_read", ()
    else:
        kind = "one"
    return (index, kind, node.inputs, node.keywords, node.outputs, len(node.outputs), node.losses, released, who, node.path)


def _call_reading_all(
    fn: Callable[..., Any], ins: tuple[str, ...], keywords: tuple[str, ...] | None, data: dict[str, Any]
) -> Any:
    """Calls a brick one of whose inputs is every name (`ALL_NAMES`): that input gets a copy of the data dict."""
    values = [dict(data) if name == ALL_NAMES else data[name] for name in ins]
    if keywords is None:
        return fn(*values)
    return fn(**dict(zip(keywords, values, strict=True)))


def _store_outputs(data: dict[str, Any], outs: tuple[str, ...], result: Any, who: str, path: str) -> None:
    """Stores the result of a brick with no or several output names (or that returned None), checking that it fits them."""
    if result is None and outs:  # a callable that forgot its `return`: None would reach the readers as the value
        raise _in_brick(
            BrickOutputError(
                f"{who} returned None, but has output_names {list(outs)}; return the value (or a tuple with one value "
                "per output name), or give the brick no output_names."
            ),
            path,
        )
    if not outs:
        if result is not None:
            raise _in_brick(
                BrickOutputError(
                    f"{who} returned a value, but has no output_names, so the value would be lost; give the brick "
                    "output_names to keep it, or make its callable return None."
                ),
                path,
            )
        return
    if len(outs) == 1:  # a tuple for one name: a model returning (logits, features) read as one value would fail
        raise _in_brick(  # later, in whichever brick read it, under another brick's name
            BrickOutputError(
                f"{who} returned a tuple of {len(result)} values, but has one output name {list(outs)}; give one "
                f"output name per value (output_names=[{', '.join(repr(f'{outs[0]}_{i}') for i in range(len(result)))}]), "
                "or return one value (a list or a dict is kept as one value)."
            ),
            path,
        )
    if not isinstance(result, tuple) or len(result) != len(outs):
        # A list is one value, as for one output name: read as several, a detection model's list of per-image results
        # was split over the output names whenever the batch held as many images as there are names.
        if isinstance(result, tuple):
            got = f"{len(result)} values"
        elif isinstance(result, list):
            got = f"a list of {len(result)} values (a list is one value; several values are a tuple)"
        else:
            got = f"a {type(result).__name__}"
        raise _in_brick(
            BrickOutputError(
                f"{who} returned {got}, but has {len(outs)} output_names {list(outs)}; return a tuple with one value "
                "per output name or change output_names."
            ),
            path,
        )
    for name, value in zip(outs, result, strict=True):
        data[name] = value


def _check_losses(data: dict[str, Any], losses: tuple[str, ...], who: str, path: str) -> None:
    """The loss check: a loss must be a single value."""
    for name in losses:
        value = data[name]
        if getattr(value, "ndim", 0) > 0 and value.numel() != 1:
            raise _in_brick(
                BrickOutputError(
                    f"{who} returned the loss {name!r} with shape {list(value.shape)}; a loss must be a single value "
                    "(shape [] or [1]). Reduce it (e.g. reduction='mean'), or leave it out of loss_output_names."
                ),
                path,
            )


def _brick_of(node: BrickNode) -> GraphBrick:
    if node.brick is None:
        raise ValueError(f"The node {node.path!r} has no brick to run.")
    return node.brick


def check_named_inputs(named_inputs: object) -> None:
    """Raises `NamedInputsTypeError` unless `named_inputs` is a mapping."""
    if not isinstance(named_inputs, Mapping):
        raise NamedInputsTypeError(
            f"named_inputs must be a dict of name -> value, got {type(named_inputs).__name__}. "
            "Call the collection as collection(named_inputs={'raw': tensor})."
        )


def provided_names(named_inputs: Iterable[str], missing_targets: str) -> frozenset[str]:
    """The input names a `missing_targets="skip"` call plans with (and the check of the argument)."""
    if missing_targets != "skip":
        raise BrickError(f"missing_targets must be 'error' or 'skip', got {missing_targets!r}.")
    return frozenset(named_inputs)


def normalize_selection(
    tags: TagsLike | None, output_names: tuple[str, ...] | list[str] | str | None, provided: frozenset[str] | None = None
) -> Selection:
    """The hashable form of a call's `tags` and `output_names` (a bare str is one name), with `provided`."""
    tag_set = None if tags is None else normalize_tags(tags)
    if output_names is None:
        return tag_set, None, provided
    return tag_set, (output_names,) if isinstance(output_names, str) else tuple(output_names), provided


def single_brick_plan(brick: GraphBrick) -> CompiledPlan:
    """The plan of one brick run outside a collection (relative names resolve as at the root); the brick keeps it
    until its wiring, modules or plan attributes change."""
    node = build_node(brick, path=type(brick).__name__, scope=())
    nodes = (node,)
    return CompiledPlan(
        planned_steps(nodes, (f"Brick {node.path!r} ({node.description()})",), (None, None, None)), step_functions(nodes)
    )
