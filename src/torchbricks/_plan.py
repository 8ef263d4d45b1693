"""The compiled plan: a `Plan` turned into steps, the hot path of every call.

A step is a small closure that reads a brick's inputs from the data dict, calls the brick's callable and writes
its outputs. Everything that depends only on the structure (resolved names, arity, keyword binding, which
outputs are losses, which names can be freed) is decided once, when the plan is compiled, so a step does
nothing per call but dict lookups, the brick's own call and the checks its node asks for.

A collection keeps its compiled plans until it is told that its structure changed (`PlanOwner.invalidate_plans`);
there is no global state. Bricks know nothing of this module beyond `run_single_brick`, and this module knows
bricks only through the `GraphBrick` protocol of the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from torchbricks._graph import ALL_NAMES, BrickNode, GraphBrick, Plan, build_node, plan, release_after
from torchbricks.errors import BrickOutputError, NamedInputsTypeError

__all__ = ["CompiledPlan", "Layout", "PlanOwner", "Step", "check_named_inputs", "make_step", "run_layout", "run_single_brick"]

Step = Callable[[dict[str, Any]], None]
Runner = Callable[[Mapping[str, Any], bool], dict[str, Any]]
StepLayout = tuple[
    int, tuple[str, ...], bool, "tuple[tuple[str, str], ...] | None", tuple[str, ...], int, tuple[str, ...], tuple[str, ...], str
]
"""One step as plain constants: the index of its callable, its inputs, whether one of them is every name
(`ALL_NAMES`), its (keyword, input) pairs or None, its outputs and their count, its losses, the names released
after it, and the brick as error messages name it (`Brick 'head/classify' (Linear)`). Everything `run_layout`
would otherwise compute with a builtin or a module global is decided here, as each global a compiled call reads
costs a guard on every call."""
Layout = tuple[tuple[StepLayout, ...], tuple[str, ...], "tuple[str, ...] | None"]
"""A plan as plain constants: its steps, produced names and wanted names."""


class PlanOwner(Protocol):
    """Something that caches compiled plans over bricks (a collection); bricks tell it when they change."""

    def invalidate_plans(self) -> None: ...


class CompiledPlan:
    """A plan with its steps and its input check: what one call with given tags and output names runs.

    Args:
        plan_: The plan (order, required inputs, produced names, nodes).
        wanted: The output names a call asked for, or None for every name.
        version: The version of the owning collection's structure the plan was compiled from.
    """

    __slots__ = ("functions", "layout", "plan", "run", "steps", "version", "wanted")

    def __init__(self, plan_: Plan, wanted: tuple[str, ...] | None, version: int = 0) -> None:
        nodes = plan_.nodes
        # With `output_names` only the wanted names are returned, so each other name is freed once nothing reads it.
        releases = [()] * len(plan_.order) if wanted is None else release_after(nodes, plan_, wanted)
        self.plan = plan_
        self.wanted = wanted
        self.version = version
        self.functions: tuple[Callable[..., Any], ...] = tuple(_brick_of(nodes[i]).step_function() for i in plan_.order)
        """The callable of each planned brick, in execution order."""
        self.steps: tuple[Step, ...] = tuple(
            make_step(nodes[i], fn, released) for i, fn, released in zip(plan_.order, self.functions, releases, strict=True)
        )
        self.run: Runner = self._make_runner()
        self.layout: Layout = (
            tuple(
                _step_layout(index, nodes[i], released)
                for index, (i, released) in enumerate(zip(plan_.order, releases, strict=True))
            ),
            plan_.produced,
            wanted,
        )
        """The plan as plain constants (names and indices only), for `run_layout` inside a compiled region."""

    def check_inputs(self, named_inputs: Mapping[str, Any]) -> None:
        """Raises `MissingInputError` when `named_inputs` lacks a name the planned bricks need."""
        self.plan.check_inputs(named_inputs)

    def _make_runner(self) -> Runner:
        steps = self.steps
        required = self.plan.required_inputs
        produced = self.plan.produced
        wanted = self.wanted
        check = self.plan.check_inputs

        def run(named_inputs: Mapping[str, Any], return_inputs: bool) -> dict[str, Any]:
            for name in required:
                if name not in named_inputs:
                    check(named_inputs)
            data = dict(named_inputs)
            step = None
            try:
                for step in steps:
                    step(data)
            except Exception as error:
                if step is not None and hasattr(error, "add_note"):  # add_note: Python 3.11+
                    error.add_note(f"while running brick {step.brick_path!r} of a BrickCollection")  # type: ignore[attr-defined]
                raise
            if wanted is not None:
                return {name: data[name] for name in wanted}
            if return_inputs:
                return data
            return {name: data[name] for name in produced}

        return run


def _step_layout(index: int, node: BrickNode, released: tuple[str, ...]) -> StepLayout:
    pairs = None if node.keywords is None else tuple(zip(node.keywords, node.inputs, strict=True))
    reads_all = ALL_NAMES in node.inputs
    return (index, node.inputs, reads_all, pairs, node.outputs, len(node.outputs), node.losses, released, _who(node))


def run_layout(
    layout: Layout, functions: tuple[Callable[..., Any], ...], named_inputs: Mapping[str, Any], return_inputs: bool
) -> dict[str, Any]:
    """Runs a plan given as constants (`CompiledPlan.layout`) with its callables (`CompiledPlan.functions`).

    The same semantics as `CompiledPlan.run`, written as one loop over constants rather than as closures: under
    `torch.compile` the layout is a compile-time constant, so dynamo guards the callables it calls and nothing of
    the plan's structure (the owning collection's version stands for that). The common path reads no module
    global and calls no builtin (dynamo would guard each on every call); the layout holds what they would compute.
    The caller has checked the inputs (`CompiledPlan.check_inputs`), as its message needs the plan.
    """
    steps, produced, wanted = layout
    data = {**named_inputs}
    for index, ins, reads_all, pairs, outs, count, losses, released, who in steps:
        fn = functions[index]
        if reads_all:
            result = _call_reading_all(fn, ins, pairs, data)
        elif pairs is None:
            result = fn(*[data[name] for name in ins])
        else:
            result = fn(**{keyword: data[name] for keyword, name in pairs})
        if count == 1:
            data[outs[0]] = result
        else:
            _store_other(data, outs, result, who)
        for name in losses:
            value = data[name]
            if getattr(value, "ndim", 0) > 0 and value.numel() != 1:
                raise _loss_shape_error(who, name, value)
        for name in released:
            del data[name]
    if wanted is not None:
        return {name: data[name] for name in wanted}
    if return_inputs:
        return data
    return {name: data[name] for name in produced}


def _call_reading_all(
    fn: Callable[..., Any], ins: tuple[str, ...], pairs: tuple[tuple[str, str], ...] | None, data: dict[str, Any]
) -> Any:
    """Calls a brick one of whose inputs is every name (`ALL_NAMES`): that input gets a copy of the data dict."""
    values = [dict(data) if name == ALL_NAMES else data[name] for name in ins]
    if pairs is None:
        return fn(*values)
    return fn(**{keyword: value for (keyword, _), value in zip(pairs, values, strict=True)})


def _store_other(data: dict[str, Any], outs: tuple[str, ...], result: Any, who: str) -> None:
    """Stores the result of a brick with no or several output names, checking that it fits them."""
    if not outs:
        if result is not None:
            raise _unexpected_output_error(who)
        return
    if not isinstance(result, (tuple, list)) or len(result) != len(outs):
        raise _output_count_error(who, outs, result)
    for name, value in zip(outs, result, strict=True):
        data[name] = value


def _brick_of(node: BrickNode) -> GraphBrick:
    if node.brick is None:
        raise ValueError(f"The node {node.path!r} has no brick to run.")
    return node.brick


def make_step(node: BrickNode, fn: Callable[..., Any], released: tuple[str, ...] = ()) -> Step:
    """A closure running `fn` on the node's inputs and storing its outputs under the node's output names.

    Afterwards it checks that the node's loss outputs are single values, then drops the `released` names from
    the data dict, so their tensors can be freed.
    """
    ins = node.inputs
    outs = node.outputs
    read = _make_reader(node)
    simple = len(outs) == 1 and node.keywords is None and len(ins) == 1 and ins[0] != ALL_NAMES

    if simple and released == ins:  # the common link of a chain whose input nothing reads later
        (name_in,) = ins
        (name_out,) = outs

        def step(data: dict[str, Any]) -> None:
            data[name_out] = fn(data.pop(name_in))

        released = ()

    elif simple:
        (name_in,) = ins
        (name_out,) = outs

        def step(data: dict[str, Any]) -> None:
            data[name_out] = fn(data[name_in])

    elif len(outs) == 0:

        def step(data: dict[str, Any]) -> None:
            args, kwargs = read(data)
            if fn(*args, **kwargs) is not None:
                raise _unexpected_output_error(_who(node))

    elif len(outs) == 1:
        (name_out,) = outs

        def step(data: dict[str, Any]) -> None:
            args, kwargs = read(data)
            data[name_out] = fn(*args, **kwargs)

    else:
        count = len(outs)

        def step(data: dict[str, Any]) -> None:
            args, kwargs = read(data)
            values = fn(*args, **kwargs)
            if not isinstance(values, (tuple, list)) or len(values) != count:
                raise _output_count_error(_who(node), outs, values)
            for name, value in zip(outs, values, strict=True):
                data[name] = value

    if node.losses:
        run_brick = step
        losses = node.losses

        def step(data: dict[str, Any]) -> None:
            run_brick(data)
            for name in losses:
                value = data[name]
                if getattr(value, "ndim", 0) > 0 and value.numel() != 1:
                    raise _loss_shape_error(_who(node), name, value)

    if released:
        run_and_check = step

        def step(data: dict[str, Any]) -> None:
            run_and_check(data)
            for name in released:
                del data[name]

    step.brick_path = node.path  # type: ignore[attr-defined]
    return step


def _make_reader(node: BrickNode) -> Callable[[dict[str, Any]], tuple[list[Any], dict[str, Any]]]:
    ins = node.inputs
    keywords = node.keywords
    if ALL_NAMES in ins:

        def read_with_all(data: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
            values = [dict(data) if name == ALL_NAMES else data[name] for name in ins]
            if keywords is None:
                return values, {}
            return [], dict(zip(keywords, values, strict=True))

        return read_with_all
    if keywords is None:
        return lambda data: ([data[name] for name in ins], {})
    pairs = tuple(zip(keywords, ins, strict=True))
    return lambda data: ([], {keyword: data[name] for keyword, name in pairs})


def _who(node: BrickNode) -> str:
    return f"Brick {node.path!r} ({node.description()})"


def _output_count_error(who: str, outs: tuple[str, ...], values: object) -> BrickOutputError:
    got = f"{len(values)} values" if isinstance(values, (tuple, list)) else f"a {type(values).__name__}"
    return BrickOutputError(
        f"{who} returned {got}, but has {len(outs)} output_names {list(outs)}; return a tuple with one value per "
        "output name or change output_names."
    )


def _unexpected_output_error(who: str) -> BrickOutputError:
    return BrickOutputError(
        f"{who} returned a value, but has no output_names, so the value would be lost; give the brick output_names "
        "to keep it, or make its callable return None."
    )


def _loss_shape_error(who: str, name: str, value: Any) -> BrickOutputError:
    return BrickOutputError(
        f"{who} returned the loss {name!r} with shape {list(value.shape)}; a loss "
        "must be a single value (shape [] or [1]). Reduce it (e.g. reduction='mean'), or leave it out of "
        "loss_output_names."
    )


def check_named_inputs(named_inputs: object) -> None:
    """Raises `NamedInputsTypeError` unless `named_inputs` is a mapping."""
    if not isinstance(named_inputs, Mapping):
        raise NamedInputsTypeError(
            f"named_inputs must be a dict of name -> value, got {type(named_inputs).__name__}. "
            "Call the collection as collection(named_inputs={'raw': tensor})."
        )


def run_single_brick(brick: GraphBrick, named_inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Runs one brick outside a collection; relative names resolve as at the root. Returns its outputs."""
    check_named_inputs(named_inputs)
    node = build_node(brick, path=type(brick).__name__, scope=())
    return CompiledPlan(plan([node], None, None), None).run(named_inputs, False)
