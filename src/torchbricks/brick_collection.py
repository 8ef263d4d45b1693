"""`BrickCollection`: an `nn.ModuleDict` of bricks that runs them as a DAG over a dict of named data."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from torch import nn
from torch.compiler import is_compiling

from torchbricks import _graph, _mermaid
from torchbricks._compiled_call import run_compiling
from torchbricks._graph import SEPARATOR, BrickNode, Plan
from torchbricks._plan import CompiledPlan, PlanCache, PlannedSteps, check_named_inputs, normalize_selection, provided_names
from torchbricks._watched_modules import WatchedModules
from torchbricks.bricks import BrickInterface, BrickMetrics
from torchbricks.errors import BrickBuildError, BrickError, BrickNameError, NotABrickError, UnknownBrickError, did_you_mean
from torchbricks.tags import TagsLike, normalize_tags

if TYPE_CHECKING:
    from pathlib import Path

    from torchbricks._checkpoint import FileFormat, MissingFiles

__all__ = ["BrickCollection", "merge_summaries"]

BrickTree = Mapping[str, "BrickInterface | BrickCollection | BrickTree"]
MissingTargets = Literal["error", "skip"]


class BrickCollection(nn.ModuleDict):
    """A (nestable) dict of bricks that runs them in dependency order over a dict of named data.

    The wiring is validated when the collection is built and after every change: cycles, two bricks producing
    one name, relative names that climb above the root and values that are not bricks are rejected. A call
    checks once, before any brick runs, that every input the selected bricks need is there.

    Each call runs a `CompiledPlan` cached per (tags, output_names) in the collection's `PlanCache`. The cache is
    dropped, here and in every collection holding this one, by each change that matters to it: adding, replacing or
    deleting a brick (also `del collection.name`), assigning, registering or deleting a module or metric attribute of
    a brick (`brick.model = ...`, `brick.add_module("model", ...)`, `brick.metrics = ...`), and assigning a brick's
    `input_names`, `output_names` or `tags`, which also validates the new wiring.

    Changes written straight into `collection._modules`, as model-surgery code writes them
    (`parent._modules[name] = new`, torch.ao.quantization's convert), and through the dict's `update`, `setdefault`,
    `pop`, `popitem`, `clear` and `|=`, are made as `collection[name] = new`, `del collection[name]`, `update` and
    `clear` make them: validated, a refused brick raising the same error and not kept, and the cached plans dropped.
    Writing back the brick a key already holds changes nothing. A brick's own `_modules` reports every change the
    same way (`brick._modules["model"] = quantized`). Nothing of this runs on a call, eager or compiled.

    Under `nn.DataParallel` (several GPUs), each copy torch makes of the collection on every call runs its own bricks,
    planned on its first call, and the collection itself keeps running its own (the weights the optimizer steps). The
    copies of its metric bricks update its own metrics, one at a time, each with its part of the batch, so
    `summarize` counts every sample once; a tensor cache's copies add their parts in the order of the batch.
    `nn.DataParallel(torch.compile(collection))` is refused (`BrickError`). DDP (one process per GPU, Lightning's
    `strategy="ddp"`) is the recommended way to train on several GPUs.

    Args:
        bricks: Brick name -> brick, nested `BrickCollection`, or nested dict of bricks.

    Example:
        >>> import torch
        >>> from torchbricks.bricks import BrickTrainable
        >>> collection = BrickCollection({
        ...     "scale": BrickTrainable(torch.nn.Identity(), input_names=["x"], output_names=["./y"]),
        ... })
        >>> sorted(collection(named_inputs={"x": torch.ones(1)}))
        ['x', 'y']
    """

    _is_replica = False
    """True in the copies `torch.nn.parallel.replicate` makes (`nn.DataParallel`), which torch marks so."""

    def __init__(self, bricks: BrickTree, *, _scope: tuple[str, ...] = (), _validate: bool = True) -> None:
        super().__init__()
        self.__dict__["_modules"] = _Bricks(self, {})
        self._plan_cache = PlanCache()
        self._plan_owners: weakref.WeakSet[BrickCollection] = weakref.WeakSet()
        self._scope = _scope
        if not isinstance(bricks, Mapping):
            raise NotABrickError(f"BrickCollection needs a dict of name -> brick, got {type(bricks).__name__}.")
        for key, value in bricks.items():
            self._insert(key, value)
        if _validate:
            self._validate()
        self._refresh_plans()

    # --- structure -------------------------------------------------------------------------------------------

    def _insert(self, key: str, value: Any) -> None:
        path = SEPARATOR.join([*self._scope, str(key)])
        if not isinstance(key, str) or not key or SEPARATOR in key or "." in key or key == _graph.ALL_NAMES:
            raise BrickNameError(f"Brick name {path!r} is invalid; use a non-empty str without '/' or '.'.")
        if key not in self._modules and hasattr(self, key):
            raise BrickNameError(f"Brick name {path!r} clashes with the BrickCollection attribute {key!r}; choose another name.")
        if isinstance(value, Mapping) and not isinstance(value, BrickCollection):
            value = BrickCollection(value, _scope=(*self._scope, key), _validate=False)
        if not isinstance(value, (BrickCollection, BrickInterface)):
            hint = (
                f" Wrap it in a brick, e.g. BrickTrainable({type(value).__name__}(...), input_names=[...], output_names=[...])."
                if isinstance(value, nn.Module)
                else ""
            )
            raise NotABrickError(
                f"The value at {path!r} is a {type(value).__name__}, not a brick, a BrickCollection or a dict of bricks.{hint}"
            )
        if isinstance(value, BrickCollection) and (value is self or any(held is self for _, _, held in value._walk_tree())):
            raise BrickBuildError(
                f"The collection put at {path!r} holds the collection it is put into (or is it): a tree cannot hold "
                "itself. Put a new collection of the same bricks there (BrickCollection(collection.to_dict()))."
            )
        with _admitting(self._modules):  # checked above: the dict stores it without asking the collection again
            nn.Module.add_module(self, key, value)
        value._plan_owners.add(self)

    def _owners(self) -> list[BrickCollection]:
        """The collections holding this one (several when it was put into several)."""
        return [owner for owner in self._plan_owners if any(value is self for value in owner._modules.values())]

    def _roots(self) -> list[BrickCollection]:
        roots: list[BrickCollection] = []
        pending = [self]
        while pending:
            node = pending.pop()
            owners = node._owners()
            if not owners and all(root is not node for root in roots):
                roots.append(node)
            pending += owners
        return roots

    def invalidate_plans(self) -> None:
        """Drops the cached plans of this collection and of every collection holding it, and derives the structure
        again (the key a compiled call guards must be the structure's before the next call, eager or compiled).

        Called by every change that matters to a plan; bricks call it when a module or metric attribute is assigned.
        """
        self._plan_cache.clear()
        self._refresh_plans()
        for owner in self._owners():
            owner.invalidate_plans()

    def _refresh_plans(self) -> None:
        """Builds the nodes, structure key and callables of the current structure, when they can be built.

        When they cannot (a nested collection whose relative names climb above it, a brick whose names do not
        resolve), the key stays -1 and the next call, eager or compiled, raises the error of `_nodes`.

        A copy `nn.DataParallel` makes is planned on its first call instead: replicate puts a copy in place of each
        brick and each brick's module in turn, and deriving the structure after each of them took time quadratic in
        the bricks, on every `nn.DataParallel` call.
        """
        if self._is_replica:
            return
        with contextlib.suppress(Exception):
            self._nodes()

    def wiring_changed(self, brick: object) -> None:
        """Called by `brick` when its names or tags are assigned: drops the cached plans and, when this collection
        holds `brick`, validates every tree holding this collection (raising `BrickBuildError`, the brick undoes)."""
        self.invalidate_plans()
        if any(value is brick for value in self._modules.values()):
            self._validate_roots()

    def _validate_roots(self) -> None:
        for root in self._roots():
            root._validate()

    def _changed(self, undo: Callable[[], None]) -> None:
        """Validates every tree holding this collection after a change; on failure undoes it and re-raises."""
        self.invalidate_plans()
        try:
            self._validate_roots()
        except BrickError:
            undo()
            self.invalidate_plans()
            raise

    def __setitem__(self, key: str, module: Any) -> None:
        if self._is_replica and getattr(module, "_is_replica", False):
            # replicate puts the copy of each brick where the brick was: the tree is the original's, validated there
            self._insert(key, module)
            self.invalidate_plans()
            return
        old = self._modules.get(key) if isinstance(key, str) else None
        self._insert(key, module)

        def undo() -> None:
            if old is None:
                dict.__delitem__(self._modules, key)
            else:
                dict.__setitem__(self._modules, key, old)

        self._changed(undo)

    def update(self, modules: Mapping[str, Any]) -> None:
        """Adds or replaces several bricks, validating once; on an error none of them is kept."""
        before = dict(self._modules)

        def undo() -> None:
            dict.clear(self._modules)
            dict.update(self._modules, before)

        try:
            for key, value in dict(modules).items():
                self._insert(key, value)
        except BrickError:
            undo()
            raise
        self._changed(undo)

    def add_module(self, name: str, module: Any) -> None:
        self[name] = module

    def register_module(self, name: str, module: Any) -> None:
        self[name] = module

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, nn.Module) and "_modules" in self.__dict__:
            self[name] = value
            return
        if name == "_modules" and isinstance(value, Mapping) and any(module is self for module in value.values()):
            raise _compiled_replica_error()
        super().__setattr__(name, value)

    def __getitem__(self, key: str) -> Any:
        try:
            return self._modules[key]
        except KeyError:
            raise self._unknown_key(key) from None

    def _unknown_key(self, key: str) -> UnknownBrickError:
        where = f"BrickCollection {SEPARATOR.join(self._scope)!r}" if self._scope else "The BrickCollection"
        keys = list(self._modules)
        paths = [path for path, _ in self.iter_bricks()]
        if isinstance(key, str) and key in paths:  # a nested brick's path: index level by level
            spelled = "".join(f"[{part!r}]" for part in key.split(SEPARATOR))
            return UnknownBrickError(f"{where} holds {key!r} nested: index it as collection{spelled}.")
        hint = did_you_mean(key, keys) or did_you_mean(key, paths) if isinstance(key, str) else ""
        return UnknownBrickError(f"{where} has no brick or collection {key!r}. Keys: {keys}.{hint}")

    def __delitem__(self, key: str) -> None:
        if key not in self._modules:
            raise self._unknown_key(key)
        dict.__delitem__(self._modules, key)
        self.invalidate_plans()

    def __delattr__(self, name: str) -> None:
        if name in self._modules:  # `del collection.head` removes the brick as `del collection["head"]` does
            del self[name]
        else:
            super().__delattr__(name)

    def clear(self) -> None:
        dict.clear(self._modules)
        self.invalidate_plans()

    def _validate(self) -> None:
        _graph.validate(self._nodes())
        self._check_metric_names()

    def _nodes(self) -> tuple[BrickNode, ...]:
        """The graph nodes of every brick, built (with the structure and the callables, `PlanCache.set_nodes`) once per
        change of structure."""
        cache = self._plan_cache
        nodes = cache.nodes
        if nodes is None:
            try:
                nodes = tuple(_graph.build_node(brick, path, scope) for path, scope, brick in self._walk())
            except BrickNameError as error:
                places = [key for owner in self._owners() for key, value in owner._modules.items() if value is self]
                if places:  # a nested collection run (or planned) on its own: its relative names resolve from it
                    error.add_note(
                        f"This collection is nested (under the key {places[0]!r}), and relative names resolve from the "
                        "collection that is run: run the outer collection instead, with output_names=[...] to run "
                        "only this part."
                    )
                raise
            cache.set_nodes(nodes)
        return nodes

    def _check_metric_names(self) -> None:
        """Two metric bricks in one collection must not report the same summarize() name."""
        seen: dict[str, str] = {}
        for path, scope, brick in self._walk():
            if isinstance(brick, BrickMetrics):
                for name in brick.value_names:
                    key = SEPARATOR.join((*scope, name))
                    if key in seen:
                        raise BrickBuildError(
                            f"Metric bricks {seen[key]!r} and {path!r} both report {key!r} in summarize(). "
                            "Give one a metric_name=... (BrickMetricSingle), or another key or a prefix=... in its "
                            "MetricCollection (a metric returning a dict, such as ClasswiseWrapper, takes prefix=... too)."
                        )
                    seen[key] = path

    def _walk_tree(self, scope: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str, BrickInterface | BrickCollection]]:
        """The package's one walk over a brick tree: (scope, key, value) for every nested collection and brick.

        In insertion order, a collection before what it holds. Every other view of the tree (`iter_bricks`,
        `map_bricks`, `to_dict`, the plan's nodes, `summarize`) reads this walk.
        """
        for key, value in self._modules.items():
            if isinstance(value, BrickCollection):
                yield scope, key, value
                yield from value._walk_tree((*scope, key))
            elif isinstance(value, BrickInterface):  # always, as `_insert` admits nothing else
                yield scope, key, value

    def _walk(self) -> Iterator[tuple[str, tuple[str, ...], BrickInterface]]:
        """(path, scope, brick) for every brick of the tree, nested ones included, in insertion order."""
        for scope, key, value in self._walk_tree():
            if isinstance(value, BrickInterface):
                yield SEPARATOR.join((*scope, key)), scope, value

    def iter_bricks(self) -> Iterator[tuple[str, BrickInterface]]:
        """Yields (path, brick) for every brick, nested ones included, in insertion order."""
        for path, _, brick in self._walk():
            yield path, brick

    # --- running ---------------------------------------------------------------------------------------------

    def forward(
        self,
        named_inputs: Mapping[str, Any],
        tags: TagsLike | None = None,
        return_inputs: bool = True,
        output_names: tuple[str, ...] | list[str] | None = None,
        missing_targets: MissingTargets = "error",
    ) -> dict[str, Any]:
        """Runs the bricks selected by `tags` in dependency order.

        Args:
            named_inputs: Name -> value of the data the bricks read.
            tags: Runs only bricks sharing a tag with these (a str, a collection of str, or a `Stage`);
                None runs every brick.
            return_inputs: Include `named_inputs` in the result.
            output_names: Compute only these names, running only the bricks they need; the result then holds
                exactly these names.
            missing_targets: `"error"` raises `MissingInputError` when an input is missing. `"skip"` runs the
                model and leaves out each brick that is not a `MODEL` brick and lacks an input (a loss, metric or
                visualization whose targets the batch does not carry), with the bricks downstream of it; a missing
                input of a `MODEL` brick still raises. Each set of input names gets its own cached plan.

        Returns:
            The inputs (unless `return_inputs=False`) followed by every output of the bricks that ran, in
            execution order.
        """
        if is_compiling():  # imported by name: one guard less per compiled call than torch.compiler.is_compiling
            return run_compiling(self, named_inputs, tags, return_inputs, output_names, missing_targets)
        if type(named_inputs) is not dict:
            check_named_inputs(named_inputs)
        if missing_targets != "error":
            return self.compiled_plan(tags, output_names, provided_names(named_inputs, missing_targets)).run(
                named_inputs, return_inputs
            )
        cached: CompiledPlan | None
        try:
            cached = self._plan_cache.plans[tags, output_names]
        except (KeyError, TypeError):
            cached = None  # planned outside the except block: a planning error is not chained to this KeyError
        if cached is None:
            cached = self.compiled_plan(tags, output_names)
        return cached.run(named_inputs, return_inputs)

    def compiled_plan(
        self,
        tags: TagsLike | None = None,
        output_names: tuple[str, ...] | list[str] | None = None,
        provided: frozenset[str] | None = None,
    ) -> CompiledPlan:
        """The `CompiledPlan` a call with these arguments runs (cached until the structure changes).

        `provided` (the input names of a `missing_targets="skip"` call) plans without the non-model bricks whose
        inputs are neither provided nor produced.
        """
        selection = normalize_selection(tags, output_names, provided)
        cache = self._plan_cache
        self._nodes()
        compiled = cache.compiled(selection)
        if provided is None:
            with contextlib.suppress(TypeError):  # an unhashable tags argument (a set) is normalized on every call
                cache.plans[tags, output_names] = compiled
        return compiled

    def planned_steps(
        self,
        tags: TagsLike | None = None,
        output_names: tuple[str, ...] | list[str] | None = None,
        provided: frozenset[str] | None = None,
    ) -> PlannedSteps:
        """The plan and step table of a call with these arguments, from the collection's structure (cached)."""
        self._nodes()
        structure = self._plan_cache.structure
        if structure is None:  # set by `_nodes`
            raise BrickError("The collection's structure was not derived from its nodes.")
        return structure.steps(normalize_selection(tags, output_names, provided))

    def plan(self, tags: TagsLike | None = None, output_names: list[str] | None = None) -> Plan:
        """The execution plan for `tags` and `output_names`: the bricks (`nodes`), their order, the required
        inputs and the produced names. Renderers and exporters read it; it never changes the collection."""
        tag_set, wanted, _ = normalize_selection(tags, output_names)
        return _graph.plan(self._nodes(), tag_set, wanted)

    def execution_order(self, tags: TagsLike | None = None, output_names: list[str] | None = None) -> list[str]:
        """The paths of the bricks a call with these arguments runs, in order."""
        return [node.path for node in self.plan(tags, output_names).bricks]

    def required_inputs(self, tags: TagsLike | None = None, output_names: list[str] | None = None) -> list[str]:
        """The names a call with these arguments needs in `named_inputs`."""
        return list(self.plan(tags, output_names).required_inputs)

    # --- losses, metrics, views ------------------------------------------------------------------------------

    def loss_names(self) -> list[str]:
        """The resolved names of every loss output."""
        return [name for node in self._nodes() for name in node.losses]

    def extract_losses(self, named_outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The losses among `named_outputs` (the outputs of loss bricks that ran).

        A brick written for torchbricks 0.4.2 that implements its own `extract_losses` (and has no
        `loss_output_names`) is asked, as 0.4.2 asked it, with its outputs under the names it spells.
        """
        losses = {name: named_outputs[name] for name in self.loss_names() if name in named_outputs}
        for node in self._nodes():
            brick = node.brick
            if isinstance(brick, BrickInterface) and type(brick).extract_losses is not BrickInterface.extract_losses:
                resolved = dict(zip(brick.output_names, node.outputs, strict=True))
                own = {name: named_outputs[full] for name, full in resolved.items() if full in named_outputs}
                for name, value in brick.extract_losses(own).items():
                    losses[resolved.get(name, name)] = value
        return losses

    def summarize(self, reset: bool) -> dict[str, Any]:
        """Computes every metric accumulated since the last reset.

        Metrics of nested collections carry their collection path (`head0/MulticlassAccuracy`); top-level
        metrics keep their bare name. A metric brick that has seen no batch since the last reset is left out:
        it has no value yet (see `BrickMetrics.summarize`).
        """
        summaries = []
        for path, _, brick in self._walk():
            summarize = getattr(brick, "summarize", None)  # a metric brick, or a 0.4.2 brick with its own summarize
            if callable(summarize):
                summaries.append((path, summarize(reset=reset)))
        return merge_summaries(summaries)

    def reset_metrics(self) -> None:
        for _, _, brick in self._walk():
            if isinstance(brick, BrickMetrics):
                brick.reset()

    def to_dict(self) -> dict[str, Any]:
        """The bricks as a nested dict (the same brick objects, not copies)."""
        return _nested_dict(
            (scope, key, {} if isinstance(value, BrickCollection) else value) for scope, key, value in self._walk_tree()
        )

    def sub_collection(self, tags: TagsLike | None = None) -> BrickCollection:
        """A new collection of the bricks that share a tag with `tags` (same brick objects, nesting kept).

        Without tags it holds every brick, as in torchbricks 0.4.2.
        """
        if tags is None:
            return self.map_bricks(lambda _, brick: brick)
        tag_set = normalize_tags(tags)
        return self.map_bricks(lambda _, brick: brick if brick.tags & tag_set else None)

    def map_bricks(self, function: Callable[[str, BrickInterface], BrickInterface | None]) -> BrickCollection:
        """A new collection with the same nesting, holding `function(path, brick)` for every brick.

        Bricks for which `function` returns None are left out, and so are nested collections left empty.

        Example:
            >>> import torch
            >>> from torchbricks.bricks import BrickTrainable
            >>> collection = BrickCollection({"head": {"a": BrickTrainable(torch.nn.Identity(), ["x"], ["y"])}})
            >>> [path for path, _ in collection.map_bricks(lambda path, brick: brick).iter_bricks()]
            ['head/a']
        """
        mapped = ((scope, path.rsplit(SEPARATOR, 1)[-1], function(path, brick)) for path, scope, brick in self._walk())
        return BrickCollection(_nested_dict((scope, key, value) for scope, key, value in mapped if value is not None))

    # --- copying and display ---------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plan_cache"] = PlanCache()  # plans hold this object's bricks, never a copy's
        state["_plan_owners"] = None  # a copy belongs to no collection until one takes it
        state["_modules"] = dict(self._modules)  # a plain dict: the watcher holds a weak reference to this collection
        return state

    def __copy__(self) -> BrickCollection:
        """A shallow copy holds the same bricks in a dict of its own, as `dict.copy` does: adding or deleting a brick
        in one leaves the other (and its cached plans) as it was."""
        state = self.__getstate__()
        clone = type(self).__new__(type(self))
        clone.__setstate__(state)
        return clone

    def _replicate_for_data_parallel(self) -> BrickCollection:
        """The copy of the collection `torch.nn.parallel.replicate` makes for each device on every `nn.DataParallel`
        call.

        torch copies the collection's `__dict__` shallowly, which would share its plan cache and its set of holders with
        the original: replicate's assignment of each brick copy (`setattr(copy, key, brick_copy)`) then planned the shared
        cache with the copies, and the original ran them after the call. The copy gets a plan cache, a set of holders
        and a watched `_modules` of its own, and is planned with its own bricks on its first call.
        """
        replica = super()._replicate_for_data_parallel()
        replica.__dict__["_plan_cache"] = PlanCache()
        replica.__dict__["_plan_owners"] = weakref.WeakSet()
        replica.__dict__["_modules"] = _Bricks(replica, replica.__dict__["_modules"])
        return replica

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__["_plan_owners"] = weakref.WeakSet()
        self.__dict__["_modules"] = _Bricks(self, self._modules)
        for value in self._modules.values():
            if isinstance(value, (BrickCollection, BrickInterface)):
                value._plan_owners.add(self)
        self._refresh_plans()

    def _repr_markdown_(self) -> str | None:
        """Jupyter shows a collection as its mermaid graph (JupyterLab and GitHub render it)."""
        if next(self.iter_bricks(), None) is None:
            return None
        return _mermaid.render_markdown(self.plan())

    # --- checkpoints -----------------------------------------------------------------------------------------

    def save_bricks(self, path_model_folder: Path | str, exist_ok: bool = False, file_format: FileFormat = "pt") -> list[Path]:
        """Saves one weights file per brick with a non-empty state dict, in folders mirroring the nesting.

        Args:
            path_model_folder: The folder; `backbone.pt` and `head0/classify.pt` are written inside it.
            exist_ok: Overwrite existing files. When False and any file exists, nothing is written.
            file_format: `"pt"` (`torch.save`) or `"safetensors"` (needs the safetensors extra).

        Returns:
            The files written.
        """
        from torchbricks import _checkpoint

        return _checkpoint.save_bricks(self.iter_bricks(), path_model_folder, exist_ok=exist_ok, file_format=file_format)

    def load_bricks(
        self, path_model_folder: Path | str, file_format: FileFormat | None = None, missing: MissingFiles = "warn"
    ) -> list[str]:
        """Loads the weights `save_bricks` wrote, onto the device each brick is on; returns the bricks loaded.

        Files are read without executing code (weights-only `torch.load`, or safetensors) and all of them are
        checked before any brick changes.

        Args:
            path_model_folder: The folder `save_bricks` wrote.
            file_format: Read only files of this format (`"pt"` or `"safetensors"`, as given to `save_bricks`);
                by default each file's format is read from its suffix.
            missing: What a brick with weights but no file does: `"warn"` keeps its weights, with a warning naming
                it; `"error"` raises `CheckpointError` naming every such brick, before any brick changes.

        Raises:
            CheckpointNotFoundError: The folder does not exist.
            CheckpointNotADirectoryError: The path is a file, not a folder (a `NotADirectoryError`).
            CheckpointError: A file does not match its brick, or `missing="error"` and a brick has no file.
        """
        from torchbricks import _checkpoint

        return _checkpoint.load_bricks(self.iter_bricks(), path_model_folder, file_format=file_format, missing=missing)


class _Bricks(WatchedModules[BrickCollection]):
    """A collection's `_modules`: a change written straight into it (model surgery's `parent._modules[name] = new`,
    or the dict's `update`, `setdefault`, `pop`, `popitem`, `clear`, `|=`) is made as the collection's own
    `collection[name] = new`, `del collection[name]`, `update` or `clear` make it: validated (a refused brick raises
    the same error and is not kept) and dropping the cached plans. Writing back the brick a key holds (as convert
    does for every child it leaves alone) changes nothing."""

    __slots__ = ("admitting",)

    def __init__(self, owner: BrickCollection, modules: dict[str, Any]) -> None:
        super().__init__(owner, modules)
        self.admitting = False
        """True while the collection itself stores a brick it has checked."""

    def __setitem__(self, key: str, value: Any) -> None:
        collection = self.owner()
        if self.admitting or collection is None:
            super().__setitem__(key, value)
        elif key not in self or dict.__getitem__(self, key) is not value:
            collection[key] = value

    def __delitem__(self, key: str) -> None:
        collection = self.owner()
        if collection is None:
            super().__delitem__(key)
        else:
            del collection[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        collection = self.owner()
        if collection is None:
            super().update(*args, **kwargs)
        else:  # validated once, all or nothing, as BrickCollection.update
            collection.update(dict(*args, **kwargs))

    def clear(self) -> None:
        collection = self.owner()
        if collection is None:
            super().clear()
        else:
            collection.clear()


@contextlib.contextmanager
def _admitting(modules: dict[str, Any]) -> Iterator[None]:
    """Lets the collection store a brick it checked in its `_modules`."""
    if not isinstance(modules, _Bricks):
        yield
        return
    modules.admitting = True
    try:
        yield
    finally:
        modules.admitting = False


def _compiled_replica_error() -> BrickError:
    """The error for `nn.DataParallel(torch.compile(collection))`.

    torch's replicate copies the compiled wrapper (`OptimizedModule`), whose `__setattr__` hands every attribute it
    does not own to the module it wraps: the copy's `_parameters`, `_buffers`, `_modules` (which hold the collection
    itself) and `_is_replica` were written into the collection, which then held itself (any module wrapped so loses
    its children: an `nn.Sequential` its layers). The collection refuses the dict before anything else of it changes.
    """
    return BrickError(
        "nn.DataParallel cannot copy a compiled BrickCollection (nn.DataParallel(torch.compile(collection))): torch's "
        "replicate writes the copy of the compiled wrapper's attributes into the collection itself, which would then "
        "hold itself. Train on several GPUs with DDP (torchbricks train trainer.devices=N trainer.strategy=ddp, or "
        "torch's DistributedDataParallel), which compiles each process's collection, or wrap the collection uncompiled: "
        "nn.DataParallel(collection)."
    )


def merge_summaries(summaries: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The values of several bricks' summaries, given as (brick path, its summary), each value named under its
    brick's collection path (`head0/MulticlassAccuracy`; a top-level brick's names stay bare).

    Raises `BrickError` when two bricks report one name, which would keep only the second's value (two metrics whose
    dict values flatten to the same keys, such as two `ClasswiseWrapper`s or two mAP metrics in one collection).
    """
    values: dict[str, Any] = {}
    reporter: dict[str, str] = {}
    for path, summary in summaries:
        scope = path.split(SEPARATOR)[:-1]
        for name, value in summary.items():
            key = SEPARATOR.join((*scope, name))
            if key in reporter and reporter[key] != path:
                raise BrickError(
                    f"Bricks {reporter[key]!r} and {path!r} both report {key!r} in summarize(), so only one value would "
                    "be kept. Give their metrics distinct names (a MetricCollection or ClasswiseWrapper prefix=..., "
                    "another key, or another collection for one of the bricks)."
                )
            values[key], reporter[key] = value, path
    return values


def _nested_dict(entries: Iterable[tuple[tuple[str, ...], str, Any]]) -> dict[str, Any]:
    """Nested dicts from (scope, key, value) entries in walk order; a value that is a dict is filled by later entries."""
    tree: dict[str, Any] = {}
    for scope, key, value in entries:
        branch = tree
        for part in scope:
            branch = branch.setdefault(part, {})
        branch[key] = value
    return tree
