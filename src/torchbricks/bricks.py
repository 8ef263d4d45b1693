"""Bricks: a module, loss, metric or callable wrapped with the names it reads and writes and the tags it runs in."""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from torchbricks import _stateful_update
from torchbricks._plan import run_single_brick
from torchbricks.errors import BrickError, BrickNameError, did_you_mean
from torchbricks.tags import LOSS, METRIC, MODEL, STAGE_TAGS, VISUALIZATION, Stage, TagsLike, normalize_tags

if TYPE_CHECKING:
    from torchbricks._plan import PlanOwner

__all__ = [
    "LOSS",
    "METRIC",
    "MODEL",
    "STAGE_TAGS",
    "VISUALIZATION",
    "BrickAccumulator",
    "BrickInterface",
    "BrickLoss",
    "BrickMetricSingle",
    "BrickMetrics",
    "BrickModule",
    "BrickNotTrainable",
    "BrickTensorCache",
    "BrickTrainable",
    "Stage",
]

InputNames = Sequence[str] | Mapping[str, str] | str
OutputNames = Sequence[str] | str
LossOutputNames = Sequence[str] | str
"""The outputs that are losses: a list of output names, `"all"` or `"none"`."""


def _names_list(names: Sequence[str] | str | None, what: str, owner: str) -> list[str]:
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
        owner = type(self).__name__
        self._keywords: tuple[str, ...] | None
        if isinstance(input_names, Mapping):
            self._keywords = tuple(input_names.keys())
            self._input_names = _names_list(list(input_names.values()), "input_names", owner)
            if not all(isinstance(keyword, str) and keyword.isidentifier() for keyword in self._keywords):
                raise BrickNameError(f"{owner}: the keys of input_names must be argument names, got {list(self._keywords)}.")
        else:
            self._keywords = None
            self._input_names = _names_list(input_names, "input_names", owner)
        self._output_names = _names_list(output_names, "output_names", owner)
        self._tags = self.default_tags if tags is None else normalize_tags(tags, owner=f"{owner}: tags")

    @property
    def input_names(self) -> list[str] | dict[str, str]:
        """The input names as given: a list, or a dict from keyword argument to name."""
        if self._keywords is None:
            return list(self._input_names)
        return dict(zip(self._keywords, self._input_names, strict=True))

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    @property
    def tags(self) -> frozenset[str]:
        return self._tags

    @property
    def loss_output_names(self) -> list[str]:
        """The outputs that are losses (none unless the brick says so)."""
        return []

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        owners = self.__dict__.get("_plan_owners")
        if owners and (isinstance(value, nn.Module) or name in self.plan_attributes):
            for owner in list(owners):  # collections holding this brick: their cached plans hold the old value
                owner.invalidate_plans()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plan_owners"] = None  # a copy belongs to no collection until one takes it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__["_plan_owners"] = weakref.WeakSet()

    def step_function(self) -> Callable[..., Any]:
        """The callable a collection calls with this brick's input values."""
        raise NotImplementedError(f"{type(self).__name__} must implement step_function().")

    def describe(self) -> str:
        """What the brick wraps, as shown in its repr (a module's class name by default)."""
        return type(self).__name__

    def graph_label(self) -> str:
        """What the brick wraps, as drawn in a mermaid graph."""
        return self.describe()

    def forward(self, named_inputs: dict[str, Any]) -> dict[str, Any]:
        """Runs the brick on its own: reads its inputs from `named_inputs` and returns its outputs by name."""
        return run_single_brick(self, named_inputs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.describe()}, input_names={self.input_names!r}, "
            f"output_names={self.output_names!r}, tags={_format_tags(self._tags)})"
        )


class BrickModule(BrickInterface):
    """A brick around an `nn.Module` (or any callable).

    Args:
        model: The module to run.
        input_names: See `BrickInterface`.
        output_names: See `BrickInterface`.
        tags: See `BrickInterface`; MODEL by default.
        loss_output_names: The outputs that are losses (returned by `BrickCollection.extract_losses`): a list of
            output names, `"all"` or `"none"`. A loss must be a single value; a call raises `BrickOutputError`
            naming the brick and the shape otherwise (e.g. for `nn.MSELoss(reduction="none")`).
        calculate_gradients: When False the module runs under `torch.no_grad()`.
        trainable: When False the module's parameters are frozen (`requires_grad=False`) and the module
            stays in eval mode, so batch-norm statistics do not drift either.
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        input_names: InputNames,
        output_names: OutputNames | None,
        tags: TagsLike | None = None,
        loss_output_names: LossOutputNames = "none",
        calculate_gradients: bool = True,
        trainable: bool = True,
    ) -> None:
        super().__init__(input_names=input_names, output_names=output_names, tags=tags)
        if not callable(model):
            raise BrickError(f"{type(self).__name__}: model must be callable (an nn.Module), got {type(model).__name__}.")
        self.model = model
        self.calculate_gradients = calculate_gradients
        self.trainable = trainable
        if loss_output_names == "all":
            loss_output_names = self._output_names
        elif loss_output_names == "none":
            loss_output_names = []
        losses = _names_list(loss_output_names, "loss_output_names", type(self).__name__)
        unknown = [name for name in losses if name not in self._output_names]
        if unknown:
            raise BrickNameError(
                f"{type(self).__name__}({self.describe()}): loss_output_names {unknown} are not among "
                f"output_names {self._output_names}.{did_you_mean(unknown[0], self._output_names)}"
            )
        self._loss_output_names = losses
        if not trainable and isinstance(model, nn.Module):
            model.requires_grad_(False)
            model.eval()

    plan_attributes: ClassVar[frozenset[str]] = frozenset({"model", "calculate_gradients"})

    @property
    def loss_output_names(self) -> list[str]:
        return list(self._loss_output_names)

    def train(self, mode: bool = True) -> BrickModule:
        super().train(mode)
        if not self.trainable and isinstance(self.model, nn.Module):
            self.model.eval()
        return self

    def describe(self) -> str:
        return type(self.model).__name__

    def step_function(self) -> Callable[..., Any]:
        model = self.model
        if self.calculate_gradients:
            return model

        def run_without_gradients(*args: Any, **kwargs: Any) -> Any:
            with torch.no_grad():
                return model(*args, **kwargs)

        return run_without_gradients


class BrickTrainable(BrickModule):
    """A brick whose module is trained. Tags default to MODEL.

    The positional order is torchbricks 0.4.2's: `BrickTrainable(model, input_names, output_names,
    loss_output_names, tags)`. See `BrickModule` for the arguments.
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        input_names: InputNames,
        output_names: OutputNames | None,
        loss_output_names: LossOutputNames = "none",
        tags: TagsLike | None = None,
        calculate_gradients: bool = True,
    ) -> None:
        super().__init__(model, input_names, output_names, tags, loss_output_names, calculate_gradients, trainable=True)


class BrickNotTrainable(BrickModule):
    """A brick whose module is frozen: parameters never change and the module stays in eval mode.

    Gradients still flow through it to trainable bricks before it, unless `calculate_gradients=False`.
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        input_names: InputNames,
        output_names: OutputNames | None,
        tags: TagsLike | None = None,
        calculate_gradients: bool = True,
    ) -> None:
        super().__init__(model, input_names, output_names, tags, (), calculate_gradients, trainable=False)


class BrickLoss(BrickModule):
    """A brick computing losses. Tags default to LOSS; every output is a loss unless `loss_output_names` says.

    The positional order is torchbricks 0.4.2's: `BrickLoss(model, input_names, output_names, loss_output_names,
    tags)`. See `BrickModule` for the arguments.
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({LOSS})

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        input_names: InputNames,
        output_names: OutputNames,
        loss_output_names: LossOutputNames = "all",
        tags: TagsLike | None = None,
    ) -> None:
        super().__init__(model, input_names, output_names, tags, loss_output_names, calculate_gradients=True, trainable=True)


class BrickAccumulator(BrickInterface):
    """Base of bricks that accumulate state over batches through `update` (metrics, tensor caches).

    The collection calls `update` with the input values of every batch. Under `torch.compile` the call goes
    through the opaque custom op `torchbricks::stateful_update`, which runs `update` eagerly, so accumulating
    bricks never break a graph. Subclasses implement `update` and `reset` and call `_init_accumulator()`.
    """

    def _init_accumulator(self) -> None:
        self.register_buffer("_update_token", torch.zeros(1), persistent=False)
        self._handle = _stateful_update.register(self.update)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._handle = _stateful_update.register(self.update)  # a copy gets its own handle

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Accumulates one batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement update().")

    def reset(self) -> None:
        """Forgets everything accumulated."""
        raise NotImplementedError(f"{type(self).__name__} must implement reset().")

    def _update_step(self) -> Callable[..., None]:
        update = self.update
        if self._keywords is not None:
            return update  # keyword inputs are not expressible in the op schema; eager only
        token = self._update_token
        handle = self._handle

        def update_state(*args: torch.Tensor) -> None:
            if torch.compiler.is_compiling():
                _stateful_update.stateful_update(token, handle, [arg.detach() for arg in args])
            else:
                update(*args)

        return update_state


class BrickMetrics(BrickAccumulator):
    """A brick updating a torchmetrics `MetricCollection` with every batch.

    The brick owns its metric state: it keeps a clone of the metrics it is given (as torchbricks 0.4.2 did), so
    one metric object passed to several bricks gives each its own state, and the object passed in is never
    updated. Read the values through `summarize` (or the brick's `metrics` attribute).

    Metrics accumulate inside the brick; `BrickCollection.summarize` computes (and optionally resets) them. A
    metric that has seen no batch since the last reset is left out of `summarize`, since it has no value yet.
    The brick returns nothing unless `return_metrics=True`, in which case it also returns the batch values
    (the metric's `forward`), named by `output_names` (by default the metric names, relative to the brick's
    collection). Updates are traced by `torch.compile(fullgraph=True)` as an opaque op; batch values are not.

    Args:
        metric_collection: A `MetricCollection` or a dict of name -> `Metric`.
        input_names: See `BrickInterface`.
        tags: METRIC by default.
        return_metrics: Also output the batch values.
        output_names: Names of the batch values when `return_metrics=True`.
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({METRIC})
    plan_attributes: ClassVar[frozenset[str]] = frozenset({"metrics", "return_metrics", "metric_names"})

    def __init__(
        self,
        metric_collection: MetricCollection | Mapping[str, Metric],
        input_names: InputNames,
        tags: TagsLike | None = None,
        return_metrics: bool = False,
        output_names: OutputNames | None = None,
    ) -> None:
        if isinstance(metric_collection, Mapping):
            metric_collection = MetricCollection(dict(metric_collection))
        if not isinstance(metric_collection, MetricCollection):
            raise BrickError(
                f"BrickMetrics needs a torchmetrics MetricCollection, got {type(metric_collection).__name__}; "
                "use BrickMetricSingle for a single Metric."
            )
        self._init_metrics(
            metric_collection.clone(), [str(key) for key in metric_collection], input_names, tags, return_metrics, output_names
        )

    def _init_metrics(
        self,
        metrics: Metric | MetricCollection,
        metric_names: list[str],
        input_names: InputNames,
        tags: TagsLike | None,
        return_metrics: bool,
        output_names: OutputNames | None,
    ) -> None:
        if return_metrics and output_names is None:
            output_names = [f"./{name}" for name in metric_names]
        if not return_metrics and output_names:
            raise BrickNameError(f"{type(self).__name__}: output_names are only used with return_metrics=True.")
        super().__init__(input_names=input_names, output_names=output_names, tags=tags)
        if return_metrics and len(self._output_names) != len(metric_names):
            raise BrickNameError(
                f"{type(self).__name__}: {len(metric_names)} metrics {metric_names} need as many output_names, "
                f"got {self._output_names}."
            )
        self.metrics = metrics
        self.metric_names = metric_names
        self.return_metrics = return_metrics
        self._init_accumulator()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Updates the metric states with one batch."""
        self.metrics.update(*args, **kwargs)

    def compute(self) -> dict[str, Any]:
        """The accumulated metric values by metric name."""
        return dict(self.metrics.compute())

    def reset(self) -> None:
        self.metrics.reset()

    def updated(self) -> bool:
        """Whether the metrics have seen a batch since the last reset."""
        metrics = self.metrics
        if isinstance(metrics, MetricCollection):
            return any(metric.update_count > 0 for metric in metrics.values(copy_state=False))
        return metrics.update_count > 0

    def summarize(self, reset: bool) -> dict[str, Any]:
        """The accumulated values by metric name; empty when no batch was seen since the last reset.

        A metric that never saw a batch has no value, so it is left out rather than reported as a number
        (torchmetrics would return a zero and warn).
        """
        values = self.compute() if self.updated() else {}
        if reset:
            self.reset()
        return values

    def describe(self) -> str:
        return repr(self.metric_names)

    def graph_label(self) -> str:
        return ", ".join(repr(name) for name in self.metric_names)

    def step_function(self) -> Callable[..., Any]:
        if self.return_metrics:
            metrics = self.metrics
            names = self.metric_names

            def batch_values(*args: Any, **kwargs: Any) -> Any:
                values = metrics(*args, **kwargs)
                if isinstance(values, Mapping):
                    values = tuple(values[name] for name in names)
                return values[0] if len(names) == 1 and isinstance(values, tuple) else values

            return batch_values
        return self._update_step()


class BrickMetricSingle(BrickMetrics):
    """A brick updating a single torchmetrics `Metric`; see `BrickMetrics`.

    The brick keeps a clone of `metric`, so it owns its state (see `BrickMetrics`). The positional order is
    torchbricks 0.4.2's: `BrickMetricSingle(metric, input_names, metric_name, tags, return_metrics)`.

    Args:
        metric: The metric.
        input_names: See `BrickInterface`.
        metric_name: The name `summarize` reports; the metric's class name by default.
        tags: METRIC by default.
        return_metrics: Also output the batch value.
        output_names: Name of the batch value when `return_metrics=True`.
    """

    def __init__(
        self,
        metric: Metric,
        input_names: InputNames,
        metric_name: str | None = None,
        tags: TagsLike | None = None,
        return_metrics: bool = False,
        output_names: OutputNames | None = None,
    ) -> None:
        if not isinstance(metric, Metric):
            raise BrickError(
                f"BrickMetricSingle needs a torchmetrics Metric, got {type(metric).__name__}; "
                "use BrickMetrics for a MetricCollection."
            )
        name = metric_name or type(metric).__name__
        self._init_metrics(metric.clone(), [name], input_names, tags, return_metrics, output_names)

    def compute(self) -> dict[str, Any]:
        return {self.metric_names[0]: self.metrics.compute()}


class BrickTensorCache(BrickAccumulator):
    """A brick that keeps named tensors over batches, for analysis after an epoch (embeddings, predictions).

    Each batch's inputs are detached and moved to `device`; `cached()` concatenates them along dim 0. Tags
    default to METRIC, so it runs wherever metrics run (train, validation and test).

    Args:
        input_names: The names to keep (a list, or a dict whose keys name the cached tensors).
        tags: METRIC by default.
        max_batches: Keep only the most recent batches (None keeps all).
        device: Where cached tensors are stored; the CPU by default, so GPU memory does not grow.

    Example:
        >>> cache = BrickTensorCache(input_names=["embedding"])
        >>> _ = cache({"embedding": torch.ones(2, 3)}), cache({"embedding": torch.zeros(1, 3)})
        >>> cache.cached()["embedding"].shape
        torch.Size([3, 3])
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({METRIC})

    def __init__(
        self,
        input_names: InputNames,
        tags: TagsLike | None = None,
        max_batches: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(input_names=input_names, output_names=None, tags=tags)
        if max_batches is not None and max_batches < 1:
            raise BrickError(f"BrickTensorCache: max_batches must be at least 1 or None, got {max_batches}.")
        self.device = torch.device(device)
        self._batches: deque[tuple[torch.Tensor, ...]] = deque(maxlen=max_batches)
        self._init_accumulator()

    @property
    def cached_names(self) -> list[str]:
        """The keys of `cached()`: the keyword names of dict input_names, otherwise the input names."""
        return list(self._keywords) if self._keywords is not None else list(self._input_names)

    def update(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> None:
        values = (*args, *kwargs.values())
        self._batches.append(tuple(value.detach().to(self.device) for value in values))

    def reset(self) -> None:
        self._batches.clear()

    def cached(self, reset: bool = False) -> dict[str, torch.Tensor]:
        """The cached tensors by name, each the concatenation of its batches along dim 0."""
        if not self._batches:
            raise BrickError(f"BrickTensorCache {self.cached_names}: nothing is cached yet; run the collection first.")
        values = {name: torch.cat([batch[k] for batch in self._batches]) for k, name in enumerate(self.cached_names)}
        if reset:
            self.reset()
        return values

    def step_function(self) -> Callable[..., Any]:
        return self._update_step()

    def describe(self) -> str:
        return f"max_batches={self._batches.maxlen}"

    def graph_label(self) -> str:
        return "tensor cache"
