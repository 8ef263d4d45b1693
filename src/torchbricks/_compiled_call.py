"""The one dynamo-specific part of running a collection: a call as `torch.compile` (or strict `torch.export`) traces it.

The compiled call runs the same step table through the same interpreter as an eager call (`_plan.run_steps`); what
differs is only how it gets the table. The table is made eagerly, outside the trace, by `_table_of`, which dynamo
calls while tracing and bakes into the graph as a constant (`torch._dynamo.assume_constant_result`).

What dynamo guards is the collection's structure key (`PlanCache.key`, one int), not the collection: `_table_of`
takes the key, not the collection, and finds the interned `Structure` by it, so collections built alike (a model
per fold, the stage views Lightning rebuilds at every `fit`, `validate` and `test`) share one compiled code, as
instances of a hand-written module do, while a change of structure (which changes the key) recompiles and never
runs another structure's table. The callables are read from the collection itself, by an int path
(`collection._plan_cache.functions[i]`), and dynamo guards them as it guards a hand-written module's submodules (their
type, not their identity); the sources it records hold no frozenset of tags, which inductor's cache key cannot
pickle. So a compiled collection pays about what a hand-written module pays for its guards.

As with a hand-written module, compiled code is counted per code object: every collection runs
`BrickCollection.forward`, so the structures and selections (tags, output names, input names) compiled in one process
share dynamo's `recompile_limit` (8), as a hand-written class compiled with that many shapes of itself would;
`torch.compile(..., isolate_recompiles=True)` (in the torch versions that have it) gives one compiled collection a
count of its own. (Guarding the collection's identity, as before, gave each live collection its own count, but every
collection built anew compiled anew, and the code of collections no longer alive still counted.)

A collection whose nodes cannot be built (key -1: a nested collection whose relative names climb above it) is
planned by `_table_of_collection`, which takes the collection, so its eager error is raised.

State: this module keeps none. The input check runs in `_table_of` too, on the names of `named_inputs` (which dynamo
guards anyway), so a missing input gets the eager call's message, naming the brick, what is available and the close
match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch

from torchbricks._graph import shadowed_input_error
from torchbricks._plan import (
    PlanCache,
    PlannedSteps,
    StepTable,
    normalize_selection,
    provided_names,
    run_steps,
    structure_with_key,
)
from torchbricks.errors import MissingInputError, ShadowedInputError

__all__ = ["PlannedCollection", "run_compiling"]


class PlannedCollection(Protocol):
    """What a compiled call needs of a collection: its plan cache and the planner behind it."""

    _plan_cache: PlanCache

    def planned_steps(
        self, tags: Any = None, output_names: Any = None, provided: frozenset[str] | None = None
    ) -> PlannedSteps: ...


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
    key = cache.key
    if key < 0:
        table, missing, shadowed = _table_of_collection(collection, tags, output_names, (*named_inputs,), missing_targets)
    else:
        table, missing, shadowed = _table_of(key, tags, output_names, (*named_inputs,), missing_targets)
    if missing is not None:
        raise MissingInputError(missing)
    if shadowed is not None:
        raise ShadowedInputError(shadowed)
    return run_steps(table, cache.functions, named_inputs, return_inputs)


@torch._dynamo.assume_constant_result
def _table_of(
    key: int,
    tags: Any,
    output_names: tuple[str, ...] | list[str] | None,
    available: tuple[str, ...],
    missing_targets: str,
) -> tuple[StepTable, str | None, str | None]:
    """A compiled call's step table as constants, computed eagerly while dynamo traces and baked into the graph.

    Returns the step table of the structure numbered `key` for the call's selection, and the messages of the
    `MissingInputError` and the `ShadowedInputError` a call with the input names `available` raises (None when
    nothing is missing, or no input has a produced name). Every argument is guarded by dynamo, the key included, so
    the table is reused only by calls of the same structure and selection.
    """
    provided = None if missing_targets == "error" else provided_names(available, missing_targets)
    return _checked(structure_with_key(key).steps(normalize_selection(tags, output_names, provided)), available)


@torch._dynamo.assume_constant_result
def _table_of_collection(
    collection: PlannedCollection,
    tags: Any,
    output_names: tuple[str, ...] | list[str] | None,
    available: tuple[str, ...],
    missing_targets: str,
) -> tuple[StepTable, str | None, str | None]:
    """`_table_of` for a collection without a structure key, planned by the collection itself (raising its error);
    dynamo guards the collection's identity here."""
    provided = None if missing_targets == "error" else provided_names(available, missing_targets)
    return _checked(collection.planned_steps(tags, output_names, provided), available)


def _checked(steps: PlannedSteps, available: tuple[str, ...]) -> tuple[StepTable, str | None, str | None]:
    names = dict.fromkeys(available)
    try:
        steps.plan.check_inputs(names)
    except MissingInputError as error:
        return steps.table, str(error), None
    produced = set(steps.plan.produced)
    shadowing = next((name for name in available if name in produced), None)
    if shadowing is not None:
        return steps.table, None, str(shadowed_input_error(steps.plan, shadowing))
    return steps.table, None, None
