"""The one dynamo-specific part of running a collection: a call as `torch.compile` (or strict `torch.export`) traces it.

The compiled call runs the same step table through the same interpreter as an eager call (`_plan.run_steps`); what
differs is only how it gets the table. The plan is made eagerly, outside the trace, by `_table_of`, which dynamo
calls while tracing and bakes into the graph as a constant (`torch._dynamo.assume_constant_result`). Dynamo then
guards the collection's identity and its `PlanCache.version` (one int) instead of every name the planner read, so a
compiled collection pays about what a hand-written module pays for its guards, and a change of structure (which
bumps the version) recompiles.

State: this module keeps none. The plans live in the collection's own `PlanCache`; the traced graph holds the step
table (names and ints only) and reads the callables as `collection._plan_cache.ordered[i].functions[j]`, an int
path, so the sources dynamo records hold no frozenset of tags, which inductor's cache key cannot pickle.

The input check runs in `_table_of` too, on the names of `named_inputs` (which dynamo guards anyway), so a missing
input gets the eager call's message, naming the brick, what is available and the close match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch

from torchbricks._plan import CompiledPlan, PlanCache, StepTable, provided_names, run_steps
from torchbricks.errors import MissingInputError, ShadowedInputError

__all__ = ["PlannedCollection", "run_compiling"]


class PlannedCollection(Protocol):
    """What a compiled call needs of a collection: its plan cache and the planner behind it."""

    _plan_cache: PlanCache

    def compiled_plan(
        self, tags: Any = None, output_names: Any = None, provided: frozenset[str] | None = None
    ) -> CompiledPlan: ...


def run_compiling(
    collection: PlannedCollection,
    named_inputs: Mapping[str, Any],
    tags: Any,
    return_inputs: bool,
    output_names: tuple[str, ...] | list[str] | None,
    missing_targets: str,
) -> dict[str, Any]:
    """`BrickCollection.forward` while dynamo traces it.

    Args:
        collection: The collection being traced.
        named_inputs: The call's inputs.
        tags: The call's tags, as given.
        return_inputs: The call's `return_inputs`.
        output_names: The call's `output_names`, as given.
        missing_targets: The call's `missing_targets`.
    """
    cache = collection._plan_cache
    index, table, missing, shadowed = _table_of(collection, cache.version, tags, output_names, (*named_inputs,), missing_targets)
    if missing is not None:
        raise MissingInputError(missing)
    if shadowed is not None:
        raise ShadowedInputError(shadowed)
    return run_steps(table, cache.ordered[index].functions, named_inputs, return_inputs)


@torch._dynamo.assume_constant_result
def _table_of(
    collection: PlannedCollection,
    version: int,
    tags: Any,
    output_names: tuple[str, ...] | list[str] | None,
    available: tuple[str, ...],
    missing_targets: str,
) -> tuple[int, StepTable, str | None, str | None]:
    """A compiled call's plan as constants, computed eagerly while dynamo traces and baked into the graph.

    Returns the plan's index in the collection's `PlanCache.ordered`, its step table, and the messages of the
    `MissingInputError` and the `ShadowedInputError` a call with the input names `available` raises (None when
    nothing is missing, or no input has a produced name).
    `version` is not read here: passing it makes dynamo guard the structure version, so a change recompiles.
    """
    provided = None if missing_targets == "error" else provided_names(available, missing_targets)
    compiled = collection.compiled_plan(tags, output_names, provided)
    index = collection._plan_cache.index(compiled)
    try:
        compiled.check_inputs(dict.fromkeys(available))
    except MissingInputError as error:
        return index, compiled.table, str(error), None
    try:
        compiled.check_not_produced(dict.fromkeys(available))
    except ShadowedInputError as error:
        return index, compiled.table, None, str(error)
    return index, compiled.table, None, None
