"""Turns a plan into steps: small closures that read a brick's inputs from the data dict and write its outputs.

This is the hot path. Everything that depends only on the structure (resolved names, arity, keyword binding)
is decided here once, so a step does nothing per call but dict lookups and the brick's own call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from torchbricks._graph import ALL_NAMES, BrickNode
from torchbricks.errors import BrickOutputError, NamedInputsTypeError

if TYPE_CHECKING:
    from torchbricks.bricks import BrickInterface

Step = Callable[[dict[str, Any]], None]


def make_step(node: BrickNode, fn: Callable[..., Any], released: tuple[str, ...] = ()) -> Step:
    """A closure running `fn` on the node's inputs and storing its outputs under the node's output names.

    Afterwards it drops the `released` names from the data dict, so their tensors can be freed.
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
            fn(*args, **kwargs)

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
                raise _output_count_error(node, values)
            for name, value in zip(outs, values, strict=True):
                data[name] = value

    if released:
        run_brick = step

        def step(data: dict[str, Any]) -> None:
            run_brick(data)
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


def _output_count_error(node: BrickNode, values: object) -> BrickOutputError:
    brick = node.payload
    got = f"{len(values)} values" if isinstance(values, (tuple, list)) else f"a {type(values).__name__}"
    return BrickOutputError(
        f"Brick {node.path!r} ({brick.describe() if brick is not None else node.kind}) returned {got}, but has "
        f"{len(node.outputs)} output_names {list(node.outputs)}; return a tuple with one value per output name "
        "or change output_names."
    )


def check_named_inputs(named_inputs: object) -> None:
    if not isinstance(named_inputs, Mapping):
        raise NamedInputsTypeError(
            f"named_inputs must be a dict of name -> value, got {type(named_inputs).__name__}. "
            "Call the collection as collection(named_inputs={'raw': tensor})."
        )


def run_single_brick(brick: BrickInterface, named_inputs: dict[str, Any]) -> dict[str, Any]:
    """Runs one brick outside a collection; relative names resolve as at the root."""
    from torchbricks._graph import missing_input_error, plan

    check_named_inputs(named_inputs)
    node = brick.node(path=type(brick).__name__, scope=())
    single = plan([node], None, None)
    for name in single.required_inputs:
        if name not in named_inputs:
            raise missing_input_error(single, name, named_inputs.keys(), None)
    data = dict(named_inputs)
    make_step(node, brick.step_function())(data)
    return {name: data[name] for name in node.outputs}
