"""`BrickCollection`: an `nn.ModuleDict` of bricks that runs them as a DAG over a dict of named data."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchbricks import _epoch, _graph
from torchbricks._graph import SEPARATOR, BrickNode, Plan
from torchbricks._runner import Step, check_named_inputs, make_step
from torchbricks.bricks import BrickInterface, BrickMetrics, BrickModule
from torchbricks.errors import BrickBuildError, BrickError, BrickNameError, NotABrickError
from torchbricks.tags import TagsLike, normalize_tags

if TYPE_CHECKING:
    from pathlib import Path

    from torchbricks._checkpoint import FileFormat

__all__ = ["BrickCollection"]

BrickTree = Mapping[str, "BrickInterface | BrickCollection | BrickTree"]
Runner = Callable[[Mapping[str, Any], bool], dict[str, Any]]


class BrickCollection(nn.ModuleDict):
    """A (nestable) dict of bricks that runs them in dependency order over a dict of named data.

    The wiring is validated when the collection is built and after every change: cycles, two bricks producing
    one name, relative names that climb above the root and values that are not bricks are rejected. A call
    checks once, before any brick runs, that every input the selected bricks need is there.

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

    def __init__(self, bricks: BrickTree, *, _scope: tuple[str, ...] = (), _validate: bool = True) -> None:
        super().__init__()
        self._runners: dict[Any, Runner] = {}
        self._runners_epoch = -1
        self._parent_ref: weakref.ref[BrickCollection] | None = None
        self._scope = _scope
        if not isinstance(bricks, Mapping):
            raise NotABrickError(f"BrickCollection needs a dict of name -> brick, got {type(bricks).__name__}.")
        for key, value in bricks.items():
            self._insert(key, value)
        if _validate:
            self._validate()

    # --- structure -------------------------------------------------------------------------------------------

    def _insert(self, key: str, value: Any) -> None:
        path = SEPARATOR.join([*self._scope, str(key)])
        if not isinstance(key, str) or not key or SEPARATOR in key or "." in key or key == _graph.ALL_NAMES:
            raise BrickNameError(f"Brick name {path!r} is invalid; use a non-empty str without '/' or '.'.")
        if key not in self._modules and hasattr(self, key):
            raise BrickNameError(f"Brick name {path!r} clashes with the BrickCollection attribute {key!r}; choose another name.")
        if isinstance(value, Mapping) and not isinstance(value, BrickCollection):
            value = BrickCollection(value, _scope=(*self._scope, key), _validate=False)
        if isinstance(value, BrickCollection):
            value._parent_ref = weakref.ref(self)
        elif not isinstance(value, BrickInterface):
            hint = (
                f" Wrap it in a brick, e.g. BrickTrainable({type(value).__name__}(...), input_names=[...], output_names=[...])."
                if isinstance(value, nn.Module)
                else ""
            )
            raise NotABrickError(
                f"The value at {path!r} is a {type(value).__name__}, not a brick, a BrickCollection or a dict of bricks.{hint}"
            )
        nn.Module.add_module(self, key, value)

    def _root(self) -> BrickCollection:
        node = self
        while node._parent_ref is not None and (parent := node._parent_ref()) is not None and node in parent.values():
            node = parent
        return node

    def _changed(self, undo: Callable[[], None]) -> None:
        """Validates the whole tree after a change; on failure undoes the change and re-raises."""
        _epoch.bump()
        try:
            self._root()._validate()
        except BrickError:
            undo()
            _epoch.bump()
            raise

    def __setitem__(self, key: str, module: Any) -> None:
        old = self._modules.get(key) if isinstance(key, str) else None
        self._insert(key, module)

        def undo() -> None:
            if old is None:
                del self._modules[key]
            else:
                self._modules[key] = old

        self._changed(undo)

    def update(self, modules: Mapping[str, Any]) -> None:
        """Adds or replaces several bricks, validating once; on an error none of them is kept."""
        before = dict(self._modules)

        def undo() -> None:
            self._modules.clear()
            self._modules.update(before)

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
        else:
            super().__setattr__(name, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        _epoch.bump()

    def clear(self) -> None:
        super().clear()
        _epoch.bump()

    def _validate(self, nodes: list[BrickNode] | None = None) -> None:
        nodes = self._nodes() if nodes is None else nodes
        _graph.validate(nodes)
        _check_metric_names(nodes)

    def _nodes(self) -> list[BrickNode]:
        return [brick.node(path, scope) for path, scope, brick in self._walk(())]

    def _walk(self, scope: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...], BrickInterface]]:
        for key, value in self._modules.items():
            if isinstance(value, BrickCollection):
                yield from value._walk((*scope, key))
            elif isinstance(value, BrickInterface):
                yield SEPARATOR.join((*scope, key)), scope, value

    def iter_bricks(self) -> Iterator[tuple[str, BrickInterface]]:
        """Yields (path, brick) for every brick, nested ones included, in insertion order."""
        for path, _, brick in self._walk(()):
            yield path, brick

    # --- running ---------------------------------------------------------------------------------------------

    def forward(
        self,
        named_inputs: Mapping[str, Any],
        tags: TagsLike | None = None,
        return_inputs: bool = True,
        output_names: tuple[str, ...] | list[str] | None = None,
    ) -> dict[str, Any]:
        """Runs the bricks selected by `tags` in dependency order.

        Args:
            named_inputs: Name -> value of the data the bricks read.
            tags: Runs only bricks sharing a tag with these (a str, a collection of str, or a `Stage`);
                None runs every brick.
            return_inputs: Include `named_inputs` in the result.
            output_names: Compute only these names, running only the bricks they need; the result then holds
                exactly these names.

        Returns:
            The inputs (unless `return_inputs=False`) followed by every output of the bricks that ran, in
            execution order.
        """
        if type(named_inputs) is not dict:
            check_named_inputs(named_inputs)
        if self._runners_epoch != _epoch.StructureEpoch.value:
            self._runners.clear()
            self._runners_epoch = _epoch.StructureEpoch.value
        try:
            runner = self._runners[tags, output_names]
        except (KeyError, TypeError):
            runner = self._runner_for(tags, output_names)
        return runner(named_inputs, return_inputs)

    def _runner_for(self, tags: TagsLike | None, output_names: tuple[str, ...] | list[str] | None) -> Runner:
        tag_set, wanted = _normalize_selection(tags, output_names)
        key = (tag_set, wanted)
        runner = self._runners.get(key)
        if runner is None:
            nodes = self._nodes()
            self._validate(nodes)  # a safety net: sub-collections shared by two roots are validated from one only
            runner = _make_runner(nodes, _graph.plan(nodes, tag_set, wanted), tag_set, wanted)
            if torch.compiler.is_compiling():
                return runner  # planned while tracing: the compiled graph caches it, not this dict
            self._runners[key] = runner
        with contextlib.suppress(TypeError):  # an unhashable tags argument (a set) is normalized on every call
            self._runners[tags, output_names] = runner
        return runner

    def plan(self, tags: TagsLike | None = None, output_names: list[str] | None = None) -> Plan:
        """The execution plan for `tags` and `output_names`: order, required inputs and produced names."""
        return self._nodes_and_plan(tags, output_names)[1]

    def execution_order(self, tags: TagsLike | None = None, output_names: list[str] | None = None) -> list[str]:
        """The paths of the bricks a call with these arguments runs, in order."""
        nodes, plan = self._nodes_and_plan(tags, output_names)
        return [nodes[i].path for i in plan.order]

    def _nodes_and_plan(self, tags: TagsLike | None, output_names: list[str] | None) -> tuple[list[BrickNode], Plan]:
        nodes = self._nodes()
        return nodes, _graph.plan(nodes, *_normalize_selection(tags, output_names))

    def required_inputs(self, tags: TagsLike | None = None, output_names: list[str] | None = None) -> list[str]:
        """The names a call with these arguments needs in `named_inputs`."""
        return list(self.plan(tags, output_names).required_inputs)

    # --- losses, metrics, views ------------------------------------------------------------------------------

    def loss_names(self) -> list[str]:
        """The resolved names of every loss output."""
        names: list[str] = []
        for path, scope, brick in self._walk(()):
            if isinstance(brick, BrickModule) and brick.loss_output_names:
                names.extend(_graph.resolve_name(name, scope, path) for name in brick.loss_output_names)
        return names

    def extract_losses(self, named_outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The losses among `named_outputs` (the outputs of loss bricks that ran)."""
        return {name: named_outputs[name] for name in self.loss_names() if name in named_outputs}

    def summarize(self, reset: bool) -> dict[str, Any]:
        """Computes every metric accumulated since the last reset.

        Metrics of nested collections carry their collection path (`head0/MulticlassAccuracy`); top-level
        metrics keep their bare name.
        """
        values: dict[str, Any] = {}
        for _, scope, brick in self._walk(()):
            if isinstance(brick, BrickMetrics):
                for name, value in brick.summarize(reset=reset).items():
                    values[SEPARATOR.join((*scope, name))] = value
        return values

    def reset_metrics(self) -> None:
        for _, _, brick in self._walk(()):
            if isinstance(brick, BrickMetrics):
                brick.reset()

    def to_dict(self) -> dict[str, Any]:
        """The bricks as a nested dict (the same brick objects, not copies)."""
        return {key: value.to_dict() if isinstance(value, BrickCollection) else value for key, value in self._modules.items()}

    def sub_collection(self, tags: TagsLike) -> BrickCollection:
        """A new collection of the bricks that share a tag with `tags` (same brick objects, nesting kept)."""
        tag_set = normalize_tags(tags)

        def select(tree: dict[str, Any]) -> dict[str, Any]:
            kept: dict[str, Any] = {}
            for key, value in tree.items():
                if isinstance(value, dict):
                    if sub := select(value):
                        kept[key] = sub
                elif value.tags & tag_set:
                    kept[key] = value
            return kept

        return BrickCollection(select(self.to_dict()))

    # --- copying and display ---------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runners"] = {}  # runners close over this object's bricks, never a copy's
        state["_runners_epoch"] = -1
        state["_parent_ref"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for value in self._modules.values():
            if isinstance(value, BrickCollection):
                value._parent_ref = weakref.ref(self)

    def _repr_markdown_(self) -> str | None:
        """Jupyter shows a collection as its mermaid graph (JupyterLab and GitHub render it)."""
        from torchbricks.graph_plotter import create_mermaid_markdown

        if next(self.iter_bricks(), None) is None:
            return None
        return create_mermaid_markdown(self)

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

    def load_bricks(self, path_model_folder: Path | str) -> list[str]:
        """Loads the weights `save_bricks` wrote, onto the device each brick is on; returns the bricks loaded.

        Files are read without executing code (weights-only `torch.load`, or safetensors) and all of them are
        checked before any brick changes. A brick with weights but no file keeps its weights, with a warning.
        """
        from torchbricks import _checkpoint

        return _checkpoint.load_bricks(self.iter_bricks(), path_model_folder)


def _normalize_selection(
    tags: TagsLike | None, output_names: tuple[str, ...] | list[str] | str | None
) -> tuple[frozenset[str] | None, tuple[str, ...] | None]:
    """The hashable form of a call's `tags` and `output_names` (a bare str is one name)."""
    tag_set = None if tags is None else normalize_tags(tags)
    if output_names is None:
        return tag_set, None
    return tag_set, (output_names,) if isinstance(output_names, str) else tuple(output_names)


def _make_runner(nodes: list[BrickNode], plan: Plan, tags: frozenset[str] | None, wanted: tuple[str, ...] | None) -> Runner:
    # With `output_names` only the wanted names are returned, so each other name is freed once nothing reads it.
    releases = [()] * len(plan.order) if wanted is None else _graph.release_after(nodes, plan, wanted)
    steps: list[Step] = [
        make_step(nodes[i], nodes[i].payload.step_function(), released) for i, released in zip(plan.order, releases, strict=True)
    ]
    required = plan.required_inputs
    produced = plan.produced

    def run(named_inputs: Mapping[str, Any], return_inputs: bool) -> dict[str, Any]:
        for name in required:
            if name not in named_inputs:
                raise _graph.missing_input_error(plan, name, named_inputs.keys(), tags)
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


def _check_metric_names(nodes: list[BrickNode]) -> None:
    """Two metric bricks in one collection must not report the same summarize() name."""
    seen: dict[str, str] = {}
    for node in nodes:
        if isinstance(node.payload, BrickMetrics):
            for name in node.payload.metric_names:
                key = SEPARATOR.join((*node.scope, name))
                if key in seen:
                    raise BrickBuildError(
                        f"Metric bricks {seen[key]!r} and {node.path!r} both report {key!r} in summarize(). "
                        "Give one a metric_name=... (BrickMetricSingle) or another key in its MetricCollection."
                    )
                seen[key] = node.path
