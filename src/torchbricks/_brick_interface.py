"""`BrickInterface`, the base of every brick: the names it reads and writes, its tags, and the callable it runs.

A collection reads a brick through this contract only (`torchbricks._graph.GraphBrick`); the brick kinds are in
`torchbricks.bricks` (modules, losses) and `torchbricks._accumulating_bricks` (metrics, tensor caches).
"""

from __future__ import annotations

import inspect
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn
from torch.compiler import is_compiling

from torchbricks._plan import check_named_inputs, single_brick_plan
from torchbricks._watched_modules import WatchedModules
from torchbricks.errors import BrickBuildError, BrickError, BrickNameError, BrickOutputError, did_you_mean
from torchbricks.tags import MODEL, STAGE_TAG_NAMES, TagsLike, misspelled_tag_hint, normalize_tags

if TYPE_CHECKING:
    from types import FrameType

    from torchbricks._plan import PlanOwner

__all__ = ["BrickInterface", "InputNames", "LossOutputNames", "NamesCopy", "OutputNames", "check_call_fits", "names_list"]

InputNames = Sequence[str] | Mapping[str, str] | str
OutputNames = Sequence[str] | str
LossOutputNames = Sequence[str] | str
"""The outputs that are losses: a list of output names, `"all"` or `"none"`."""


def names_list(names: Sequence[str] | str | None, what: str, owner: str) -> list[str]:
    """`names` as a list of non-empty strings (a bare str is one name); `what` and `owner` name it in errors."""
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    if isinstance(names, Mapping) or not isinstance(names, Iterable):
        raise BrickNameError(f"{owner}: {what} must be a list of strings, got {type(names).__name__}.")
    result = list(names)
    wrong = [name for name in result if not isinstance(name, str) or not name]
    if wrong:
        raise BrickNameError(f"{owner}: {what} must be non-empty strings, got {wrong!r}.")
    return result


def check_call_fits(function: Callable[..., Any], brick: BrickInterface, what: str) -> None:
    """Raises `BrickBuildError` when `function` cannot be called with the brick's inputs (too many or too few
    positional values, an unknown keyword of a dict of `input_names`), naming the brick, its inputs and the
    signature; a callable whose signature Python cannot read, or that takes `*args`, is not checked."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    placeholders = [None] * len(brick._input_names)
    try:
        if brick._keywords is None:
            signature.bind(*placeholders)
        else:
            signature.bind(**dict(zip(brick._keywords, placeholders, strict=True)))
    except TypeError as error:
        raise BrickBuildError(
            f"{type(brick).__name__}({brick.describe()}): {what} takes {signature}, which cannot be called with "
            f"input_names {brick.input_names!r} ({error}). Give one input name per argument it needs (a dict maps "
            "argument names to input names)."
        ) from None


class _BrickModules(WatchedModules["BrickInterface"]):
    """A brick's `_modules`: every write reaches the brick, also those that bypass `__setattr__` and `add_module`
    (`torch.ao.quantization.quantize_dynamic(..., inplace=True)` swaps modules by `module._modules[key] = ...`, and
    `update`, `pop`, `clear` of the dict itself), so the cached plans of the collections holding the brick never call a
    module it no longer has."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed(key)

    def _changed(self, key: str) -> None:
        brick = self.owner()
        if brick is not None:
            brick._module_replaced(key)


def _caller_level() -> int:
    """The `stacklevel` of a warning pointing at the first frame outside torchbricks and `nn.Module`'s attribute
    setting (the user's brick construction, or assignment `brick.tags = ...`)."""
    package = __file__.rsplit("/", 1)[0]
    torch_module = nn.Module.__setattr__.__code__.co_filename
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and (frame.f_code.co_filename.startswith(package) or frame.f_code.co_filename == torch_module):
        frame, level = frame.f_back, level + 1
    return level


def _parse_input_names(input_names: InputNames, owner: str) -> tuple[tuple[str, ...] | None, list[str]]:
    """The keywords (None for a list) and the names of `input_names`, checked."""
    if isinstance(input_names, Mapping):
        keywords = tuple(input_names.keys())
        names = names_list(list(input_names.values()), "input_names", owner)
        if not all(isinstance(keyword, str) and keyword.isidentifier() for keyword in keywords):
            raise BrickNameError(f"{owner}: the keys of input_names must be argument names, got {list(keywords)}.")
        return keywords, names
    return None, names_list(input_names, "input_names", owner)


def _parse_tags(tags: TagsLike, owner: str) -> frozenset[str]:
    """The tags as a frozenset, warning of a tag spelled like a stage tag when no stage runs the brick."""
    parsed = normalize_tags(tags, owner=f"{owner}: tags")
    if "" in parsed:
        raise BrickNameError(f"{owner}: tags must be non-empty strings, got {sorted(parsed)!r}.")
    if not parsed & STAGE_TAG_NAMES:
        # A custom tag is allowed, but one spelled like a stage tag (or no tag) leaves the brick out of every stage unseen.
        hint = misspelled_tag_hint(parsed) if parsed else " It has no tag, so it runs only in calls with tags=None."
        if hint:
            warnings.warn(f"{owner} with tags {sorted(parsed)} runs in no Stage.{hint}", UserWarning, stacklevel=_caller_level())
    return parsed


class NamesCopy(list[Any]):
    """A brick's names as read (`brick.output_names`): a copy that refuses in-place changes, which would not reach the
    brick (0.4.2 handed out its own list, so `brick.output_names[0] = "y"` rewired it there). `+=` assigns the
    extended list back, which rewires the brick."""

    __slots__ = ("_attribute",)

    def __init__(self, names: Iterable[Any], attribute: str) -> None:
        super().__init__(names)
        self._attribute = attribute

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise BrickNameError(
            f"brick.{self._attribute} is a copy of the brick's names, so changing it in place would change nothing; "
            f"assign the whole list instead: brick.{self._attribute} = {[*self]!r} (changed)."
        )

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __imul__ = _refuse

    def __iadd__(self, other: Iterable[Any]) -> list[Any]:  # type: ignore[override,misc]
        return [*self, *other]

    def __reduce__(self) -> tuple[Any, ...]:  # a copy or a pickle is a plain list
        return (list, (list(self),))


class _KeywordNamesCopy(dict[str, str]):
    """A brick's dict of input names as read: a copy that refuses in-place changes (see `NamesCopy`)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise BrickNameError(
            "brick.input_names is a copy of the brick's names, so changing it in place would change nothing; assign "
            f"the whole dict instead: brick.input_names = {dict(self)!r} (changed)."
        )

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse
    __ior__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:  # a copy or a pickle is a plain dict
        return (dict, (dict(self),))


def _format_tags(tags: frozenset[str]) -> str:
    return "{" + ", ".join(repr(tag) for tag in sorted(tags)) + "}" if tags else "set()"


class BrickInterface(nn.Module):
    """Base of every brick: input names, output names and tags around something callable.

    Subclasses implement `step_function`, the callable a collection calls with the input values in order
    (positionally, or by keyword when `input_names` is a dict). It returns one value per output name (a
    tuple when there are several), or nothing when the brick has no outputs.

    Args:
        input_names: Names of the values passed to the callable: a list (positional arguments), a dict
            (keyword argument -> name), or `["__all__"]` for a dict of every value computed so far.
            Names starting with `./` or `../` are relative to the brick's place in a nested collection.
        output_names: Names given to the returned values.
        tags: The tags the brick runs under; a str, a collection of str or a `Stage`.
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({MODEL})
    plan_attributes: ClassVar[frozenset[str]] = frozenset()
    """Attributes besides modules whose value a collection's cached plan depends on; assigning one invalidates it."""

    def __init__(self, input_names: InputNames, output_names: OutputNames | None, tags: TagsLike | None = None) -> None:
        super().__init__()
        self._plan_owners: weakref.WeakSet[PlanOwner] = weakref.WeakSet()
        self.__dict__["_modules"] = _BrickModules(self, self._modules)
        owner = type(self).__name__
        self._keywords: tuple[str, ...] | None
        self._keywords, self._input_names = _parse_input_names(input_names, owner)
        self._output_names = names_list(output_names, "output_names", owner)
        self._tags = self.default_tags if tags is None else _parse_tags(tags, owner)

    @property
    def input_names(self) -> list[str] | dict[str, str]:
        """The input names as given: a list, or a dict from keyword argument to name.

        Assigning them (as torchbricks 0.4.2 code does) rewires the brick at once: every collection holding it checks
        its wiring again and drops its cached plans; on an error (naming the brick) the brick keeps its old names.
        """
        if self._keywords is None:
            return NamesCopy(self._input_names, "input_names")
        return _KeywordNamesCopy(zip(self._keywords, self._input_names, strict=True))

    @input_names.setter
    def input_names(self, input_names: InputNames) -> None:
        keywords, names = _parse_input_names(input_names, type(self).__name__)
        self._rewire({"_keywords": keywords, "_input_names": names})

    @property
    def output_names(self) -> list[str]:
        """The output names; assigning them rewires the brick as assigning `input_names` does.

        A loss output keeps its name when the new names hold it; otherwise (outputs renamed) it keeps its position,
        as torchbricks 0.4.2 kept losses by index.
        """
        return NamesCopy(self._output_names, "output_names")

    @output_names.setter
    def output_names(self, output_names: OutputNames | None) -> None:
        self._rewire({"_output_names": names_list(output_names, "output_names", type(self).__name__)})

    @property
    def tags(self) -> frozenset[str]:
        """The tags; assigning them (a str, a collection of str or a `Stage`) rewires the brick as assigning
        `input_names` does."""
        return self._tags

    @tags.setter
    def tags(self, tags: TagsLike) -> None:
        self._rewire({"_tags": _parse_tags(tags, type(self).__name__)})

    def _rewire(self, changes: Mapping[str, Any]) -> None:
        """Sets the brick's parsed wiring attributes (`_input_names`, `_keywords`, `_output_names`, `_tags`, and what a
        brick kind derives from its names, such as a metric brick's `metrics` and `value_names`) and checks
        the result where it is used, at once: the brick's own checks (`_check_wiring`: its callable takes the inputs, its
        losses are among its outputs) and the wiring of every collection holding it, whose cached plans are dropped, so
        the next call (eager or compiled) runs the new wiring. On an error (a `BrickError` naming the brick) nothing
        changed: the brick keeps its old wiring.
        """
        if "_tags" not in self.__dict__:  # assigned before BrickInterface.__init__ (a 0.4.2 subclass): nothing to check
            self.__dict__.update(changes)
            return
        changes = self._derived_wiring(dict(changes))
        before = {name: self._modules[name] if name in self._modules else self.__dict__[name] for name in changes}
        self._store_wiring(changes)
        try:
            self._check_wiring()
            for owner in list(self._plan_owners):
                owner.wiring_changed(self)
        except BrickError:
            self._store_wiring(before)
            self._invalidate_owners()
            raise
        self._invalidate_owners()  # also the collections that validate nothing of it (no longer holding it)

    def _store_wiring(self, values: Mapping[str, Any]) -> None:
        """Sets attributes for `_rewire`: a module in `_modules` (a metric brick's `metrics`), the rest in `__dict__`."""
        for name, value in values.items():
            if name in self._modules:
                self._modules[name] = value
            else:
                self.__dict__[name] = value

    def _derived_wiring(self, changes: dict[str, Any]) -> dict[str, Any]:
        """`changes` of `_rewire` with the brick's attributes that follow from them; raises before anything changes."""
        return changes

    def _check_wiring(self) -> None:
        """Raises `BrickBuildError` when the brick's own wiring does not fit (its callable, its losses, ...)."""

    @property
    def loss_output_names(self) -> list[str]:
        """The outputs that are losses (none unless the brick says so)."""
        return []

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)  # a module goes into `_modules`, which reports it (`_module_replaced`)
        if name in self.plan_attributes and not isinstance(value, nn.Module):
            self._invalidate_owners()

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name in self.plan_attributes:
            self._invalidate_owners()

    def _module_replaced(self, name: str) -> None:
        """Called by `_modules` when the module `name` is set, replaced or deleted, by any route."""
        self._invalidate_owners()

    def _invalidate_owners(self) -> None:
        """Drops the brick's own plan and the cached plans of the collections holding it, which hold its old modules
        and attributes."""
        self.__dict__.pop("_own_plan", None)
        for owner in list(self.__dict__.get("_plan_owners") or ()):
            owner.invalidate_plans()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plan_owners"] = None  # a copy belongs to no collection until one takes it
        state.pop("_own_plan", None)  # it holds this object's callables, never a copy's
        state["_modules"] = dict(self._modules)  # a plain dict: the watcher holds a weak reference to this brick
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__["_plan_owners"] = weakref.WeakSet()
        self.__dict__["_modules"] = _BrickModules(self, self._modules)

    def _replicate_for_data_parallel(self) -> BrickInterface:
        """The copy of the brick `torch.nn.parallel.replicate` makes for each device on every `nn.DataParallel` call.

        torch copies the brick's `__dict__` shallowly, which would share the brick's own plan and its set of collections
        with the original, and gives the copy a plain dict of the original's modules, which replicate then replaces by
        their copies. The copy gets a watched `_modules`, no plan and an empty set of collections (the collection copy
        holding it joins it): it runs its own modules, and a module swapped in it reaches the collections holding it only.
        """
        replica = super()._replicate_for_data_parallel()
        replica.__dict__.pop("_own_plan", None)
        replica.__dict__["_plan_owners"] = weakref.WeakSet()
        replica.__dict__["_modules"] = _BrickModules(replica, replica.__dict__["_modules"])
        return replica

    def __copy__(self) -> BrickInterface:
        """A shallow copy shares the modules but not the slots holding them: `copy.model = ...` replaces the copy's
        module only, so the collections holding the original never run a module it no longer has."""
        state = self.__getstate__()
        clone = type(self).__new__(type(self))
        clone.__setstate__(state)
        return clone

    def step_function(self) -> Callable[..., Any]:
        """The callable a collection calls with this brick's input values.

        A brick written for torchbricks 0.4.2, which implements `forward(named_inputs) -> named outputs` instead,
        runs through its `forward`: the callable names the values by the brick's own input names and returns the
        values of its output names.
        """
        if type(self).forward is not BrickInterface.forward:
            return self._forward_by_names
        raise NotImplementedError(
            f"{type(self).__name__} must implement step_function() (the callable a collection calls with the input "
            "values), or forward(named_inputs) returning a dict of its outputs (torchbricks 0.4.2's contract)."
        )

    def _forward_by_names(self, *values: Any) -> Any:
        """A 0.4.2 brick's `forward(named_inputs)` called with positional input values (see `step_function`)."""
        named_outputs = self.forward(dict(zip(self._input_names, values, strict=True)))
        try:
            outputs = [named_outputs[name] for name in self._output_names]
        except (KeyError, TypeError, IndexError):
            raise self._forward_outputs_error(named_outputs) from None
        if not outputs:
            return None
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _forward_outputs_error(self, named_outputs: Any) -> BrickOutputError:
        """The error for a 0.4.2 brick whose `forward` did not return a dict holding each of its output names."""
        who = f"{type(self).__name__}({self.describe()})"
        if not isinstance(named_outputs, Mapping):
            return BrickOutputError(
                f"{who}: forward(named_inputs) returned a {type(named_outputs).__name__}, not a dict of its outputs "
                f"{self._output_names} (torchbricks 0.4.2's contract)."
            )
        returned = [str(name) for name in named_outputs]
        missing = next(name for name in self._output_names if name not in named_outputs)
        return BrickOutputError(
            f"{who}: forward(named_inputs) returned no value for its output {missing!r}; it returned {returned}."
            f"{did_you_mean(missing, returned)} Return a dict holding every name of output_names {self._output_names}."
        )

    # --- torchbricks 0.4.2's brick methods ----------------------------------------------------------------------

    def run_now(self, tags: TagsLike | None) -> bool:
        """Whether the brick runs for `tags` (None: always), as a collection selects it (0.4.2's method)."""
        return tags is None or bool(self._tags & normalize_tags(tags))

    def input_names_as_list(self) -> list[str]:
        """The input names as a list (the values of a dict of keyword -> name) (0.4.2's method)."""
        return list(self._input_names)

    def output_names_as_list(self) -> list[str]:
        """The output names (0.4.2's method)."""
        return list(self._output_names)

    def get_module_name(self) -> str:
        """What the brick wraps (`describe`) (0.4.2's method)."""
        return self.describe()

    def get_brick_type(self) -> str:
        """The brick's class name (0.4.2's method)."""
        return type(self).__name__

    def extract_losses(self, named_outputs: Mapping[str, Any]) -> dict[str, Any]:
        """This brick's losses among `named_outputs` (0.4.2's method; collections use `loss_output_names`)."""
        return {name: named_outputs[name] for name in self.loss_output_names if name in named_outputs}

    def describe(self) -> str:
        """What the brick wraps, as shown in its repr: a 0.4.2 brick's own `get_module_name()`, else its class name."""
        if type(self).get_module_name is not BrickInterface.get_module_name:
            return self.get_module_name()
        return type(self).__name__

    def graph_label(self) -> str:
        """What the brick wraps, as drawn in a mermaid graph."""
        return self.describe()

    def forward(self, named_inputs: dict[str, Any]) -> dict[str, Any]:
        """Runs the brick on its own: reads its inputs from `named_inputs` and returns its outputs by name.

        Relative names resolve as at the root. The brick keeps its plan, as a collection does, until its names, tags,
        modules or plan attributes change.
        """
        check_named_inputs(named_inputs)
        if is_compiling():  # planned inside the trace, as the brick's attributes are guarded there anyway
            return single_brick_plan(self).run(named_inputs, False)
        compiled = self.__dict__.get("_own_plan")
        if compiled is None:
            compiled = self.__dict__["_own_plan"] = single_brick_plan(self)
        return compiled.run(named_inputs, False)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.describe()}, input_names={self.input_names!r}, "
            f"output_names={self.output_names!r}, tags={_format_tags(self._tags)})"
        )
