"""Bricks that accumulate state over batches: metrics (`BrickMetrics`, `BrickMetricSingle`) and `BrickTensorCache`.

Their public path is `torchbricks.bricks`.
"""

from __future__ import annotations

import copy
import inspect
import threading
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, cast

import torch
from torchmetrics import Metric, MetricCollection

from torchbricks import _stateful_update
from torchbricks._brick_interface import BrickInterface, InputNames, OutputNames, check_call_fits, names_list
from torchbricks.errors import BrickBuildError, BrickError, BrickNameError, BrickOutputError, did_you_mean
from torchbricks.tags import METRIC, TagsLike

__all__ = ["BrickAccumulator", "BrickMetricSingle", "BrickMetrics", "BrickTensorCache"]


class BrickAccumulator(BrickInterface):
    """Base of bricks that accumulate state over batches through `update` (metrics, tensor caches).

    The collection calls `update` with the input values of every batch. Under `torch.compile` the call goes
    through the opaque custom op `torchbricks::stateful_update`, which runs `update` eagerly, so accumulating
    bricks never break a graph. Subclasses implement `update` and `reset` and call `_init_accumulator()`.
    """

    _update_token: torch.Tensor
    """A buffer the op `torchbricks::stateful_update` declares it mutates; on the brick's device."""

    def _init_accumulator(self) -> None:
        self.register_buffer("_update_token", torch.zeros(1), persistent=False)
        self._handle = _stateful_update.register(self.update)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._handle = _stateful_update.register(self.update)  # a copy gets its own handle

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("_replica_lock", "_replica_of", "_replica_number"):  # a lock cannot be copied or pickled
            state.pop(name, None)
        return state

    def _replicate_for_data_parallel(self) -> BrickAccumulator:
        """The copy of the brick `torch.nn.parallel.replicate` makes for each device on every `nn.DataParallel` call:
        it accumulates into this brick (`_update_original`), one copy at a time (a lock kept here, made by the first
        copy; a copy or pickle of the brick makes its own).

        replicate copies the brick's `__dict__` shallowly: the copies shared this brick's state (a tensor cache's
        batches, a metric's states) and updated it from every device's thread at once.
        """
        replica = cast("BrickAccumulator", super()._replicate_for_data_parallel())
        lock = self.__dict__.setdefault("_replica_lock", threading.Lock())
        number = self.__dict__["_replicas_made"] = self.__dict__.get("_replicas_made", 0) + 1
        replica.__dict__.update(_replica_of=self, _replica_lock=lock, _replica_number=number)
        replica.__dict__["_handle"] = _stateful_update.register(replica._update_original)
        return replica

    def _update_original(self, *args: Any, **kwargs: Any) -> None:
        """A copy's update (see `_replicate_for_data_parallel`): the original brick's, one copy at a time."""
        with self.__dict__["_replica_lock"]:
            self.__dict__["_replica_of"].update(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Accumulates one batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement update().")

    def reset(self) -> None:
        """Forgets everything accumulated."""
        raise NotImplementedError(f"{type(self).__name__} must implement reset().")

    def _update_step(self) -> Callable[..., None]:
        if "_replica_of" in self.__dict__:  # a copy nn.DataParallel made: planned on its first call, once per copy
            return self._stateful_step(self._update_original, self._handle)
        return self._stateful_step(self.update, self._handle)

    def _stateful_step(self, update: Callable[..., None], handle: torch.Tensor) -> Callable[..., None]:
        """The step calling `update` eagerly, and inside a compiled region through the op with `handle` (registered
        for `update` with `_stateful_update.register`)."""
        if self._keywords is not None:
            return update  # keyword inputs are not expressible in the op schema; eager only
        token = self._update_token

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
    (the metric's `forward`), one output per value as torchmetrics names them: a member of a `MetricCollection`
    whose value is a dict gives one value per key, named as the collection flattens it (`map`, `map_50`, ...; the
    keys prefixed by the member's name where two members give the same key); any other member gives one value under
    its name, a tuple (a curve) as a list. `output_names` name them in that order (by default the value names,
    relative to the brick's collection). The value of a `BrickMetricSingle` is one output, whole (a dict as it is,
    a tuple as a list). Updates are traced by `torch.compile(fullgraph=True)` as an opaque op; batch values are not.

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
        value_names = _value_names(metrics, metric_names, type(self).__name__, return_metrics)
        if return_metrics and output_names is None:
            output_names = _default_output_names(value_names)
        super().__init__(input_names=input_names, output_names=output_names, tags=tags)
        self.metrics = metrics
        self.metric_names = metric_names
        self.value_names = value_names
        """The names of the values `summarize` reports and, with `return_metrics=True`, a call returns (in the order of
        `output_names`): the metric names, a dict-valued member's keys flattened in as torchmetrics names them."""
        self.return_metrics = return_metrics
        self._check_wiring()
        self._init_accumulator()
        self.__dict__.setdefault("_metric_name_given", None)
        self.__dict__["_metrics_built"] = True  # from here on, assigning the metrics re-derives what follows from them

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "_metrics_built" not in self.__dict__:  # pickled before assignments re-derived the names
            metrics, names = self.metrics, self.metric_names
            given = names[0] if isinstance(metrics, Metric) and names[0] != type(metrics).__name__ else None
            self.__dict__.update(_metric_name_given=given, _metrics_built=True)

    def _update_original(self, *args: Any, **kwargs: Any) -> None:
        """A copy's update: the original brick's, with the part of the batch on the original's device.

        torchmetrics keeps its states as plain attributes, which replicate copies shallowly, and a metric's `update`
        and `compute` are closures over the metric they were made for: a copy's update ran the original metric's (in
        each device's thread at once, with that device's tensors), and its batch value (`return_metrics=True`) was the
        original's accumulated value, not its part's. The original's metrics count each part once, as DDP's processes
        together count their batches.
        """
        original: BrickMetrics = self.__dict__["_replica_of"]
        device = original._update_token.device
        with self.__dict__["_replica_lock"]:
            original.update(*_on_device(args, device), **_on_device(kwargs, device))

    def _batch_values_of_original(self) -> Callable[..., Any]:
        """A replica's step with `return_metrics=True`: the original brick's (its metrics' forward), with the part
        of the batch on the original's device and its values back on the replica's."""
        original: BrickMetrics = self.__dict__["_replica_of"]
        batch_values = original.step_function()
        lock = self.__dict__["_replica_lock"]
        there, here = original._update_token.device, self._update_token.device

        def batch_values_of_original(*args: Any, **kwargs: Any) -> Any:
            if torch.compiler.is_compiling():  # refused by the original's step, naming the brick, before the lock
                return batch_values(*args, **kwargs)
            with lock:
                values = batch_values(*_on_device(args, there), **_on_device(kwargs, there))
            return _on_device(values, here)

        return batch_values_of_original

    _METRIC_ATTRIBUTES: ClassVar[frozenset[str]] = frozenset({"metrics", "metric_names", "return_metrics"})

    def __setattr__(self, name: str, value: Any) -> None:
        """Assigning `metrics`, `metric_names` or `return_metrics` (as torchbricks 0.4.2 code does) re-derives what
        follows from them at once: the metric names (of a `BrickMetricSingle` without its own `metric_name`, the
        new metric's class name), `value_names`, the default output names with `return_metrics=True`; then checks
        the brick and every collection holding it (two bricks reporting one name), as assigning `input_names` does.
        On an error (naming the brick) nothing changed."""
        if name in self._METRIC_ATTRIBUTES and self.__dict__.get("_metrics_built") and not self.__dict__.get("_is_replica"):
            self._rewire(self._metric_changes(name, value))
        else:  # a copy nn.DataParallel makes gets the metrics' copy from replicate, checked in the original (checked
            # again in the copy, before replicate had copied the metrics' members, it rebound the original's states)
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._METRIC_ATTRIBUTES and self.__dict__.get("_metrics_built"):
            raise BrickError(
                f"{type(self).__name__}({self.describe()}): {name} cannot be deleted, as the brick runs and reports them; "
                f"assign new ones instead (brick.{name} = ...)."
            )
        super().__delattr__(name)

    def _metric_changes(self, name: str, value: Any) -> dict[str, Any]:
        """The attributes an assignment of `name` sets, all checked before any of them is set."""
        metrics, metric_names, return_metrics = self.metrics, self.metric_names, self.return_metrics
        given = self.__dict__.get("_metric_name_given")
        if name == "metrics":
            metrics = self._checked_metrics(value)
            metric_names = self._metric_names_of(metrics, given)
        elif name == "metric_names":
            metric_names, given = self._checked_metric_names(value)
        else:
            return_metrics = bool(value)
        value_names = _value_names(metrics, metric_names, type(self).__name__, return_metrics)
        outputs = self._output_names
        if not return_metrics:
            outputs = []
        elif not outputs or outputs == _default_output_names(self.value_names):  # the defaults follow the values
            outputs = _default_output_names(value_names)
        return {
            "metrics": metrics,
            "metric_names": metric_names,
            "_metric_name_given": given,
            "value_names": value_names,
            "return_metrics": return_metrics,
            "_output_names": outputs,
        }

    def _checked_metrics(self, value: Any) -> Metric | MetricCollection:
        """`value` assigned to `metrics`, as the brick keeps it: a `MetricCollection` (a dict of metrics becomes one)."""
        if isinstance(value, Mapping) and not isinstance(value, MetricCollection):
            value = MetricCollection(dict(value))
        if not isinstance(value, MetricCollection):
            raise BrickError(
                f"{type(self).__name__}({self.describe()}): metrics must be a torchmetrics MetricCollection (or a dict of "
                f"name -> Metric), got {type(value).__name__}; a single Metric belongs in a BrickMetricSingle."
            )
        return value

    def _metric_names_of(self, metrics: Metric | MetricCollection, given: str | None) -> list[str]:
        """The metric names of `metrics`: the keys of the collection."""
        return [str(key) for key in metrics] if isinstance(metrics, MetricCollection) else [given or type(metrics).__name__]

    def _checked_metric_names(self, value: Any) -> tuple[list[str], str | None]:
        """`value` assigned to `metric_names`: a collection's metrics are named by its keys, so only those are taken."""
        names = names_list(value, "metric_names", f"{type(self).__name__}({self.describe()})")
        keys = self._metric_names_of(self.metrics, None)
        if names != keys:
            raise BrickNameError(
                f"{type(self).__name__}({self.describe()}): the metric names of a BrickMetrics are the keys of its "
                f"MetricCollection {keys}, got metric_names {names}; to rename a metric assign brick.metrics = "
                "MetricCollection({...}) under the new keys."
            )
        return names, None

    def _check_wiring(self) -> None:
        metrics, metric_names, value_names = self.metrics, self.metric_names, self.value_names
        if self.return_metrics and len(self._output_names) != len(value_names):
            what = f"metrics {metric_names}" if value_names == metric_names else f"values {value_names} of metrics {metric_names}"
            raise BrickNameError(
                f"{type(self).__name__}: the {len(value_names)} {what} need as many output_names, got {self._output_names}."
            )
        if not self.return_metrics and self._output_names:
            raise BrickNameError(
                f"{type(self).__name__}({self.describe()}): output_names are only used with return_metrics=True, got "
                f"{self._output_names}."
            )
        for name, metric in metrics.items() if isinstance(metrics, MetricCollection) else [(metric_names[0], metrics)]:
            check_call_fits(metric.update, self, f"the update of metric {name!r}")

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
        if self.return_metrics and "_replica_of" in self.__dict__:  # a copy nn.DataParallel made (see _update_step)
            return self._batch_values_of_original()
        if self.return_metrics:
            metrics = self.metrics
            names = self.metric_names
            value_names = self.value_names
            by_name = isinstance(metrics, MetricCollection)
            brick = f"{type(self).__name__}({self.describe()})"

            def batch_values(*args: Any, **kwargs: Any) -> Any:
                if torch.compiler.is_compiling():  # torchmetrics' forward (update, compute, merge) is not traceable
                    raise BrickError(
                        f"A metric brick with return_metrics=True ({names}) computes its metrics on every batch, which "
                        "torch.compile cannot trace. Compile with return_metrics=False (the metrics are updated in "
                        "the graph and summarized at the epoch's end), or leave this stage eager."
                    )
                values = metrics(*args, **kwargs)
                if not by_name:  # a single Metric's value is one output, whole: a tuple (a curve) is kept as a list
                    return list(values) if isinstance(values, tuple) else values
                try:
                    batch = tuple(values[name] for name in value_names)
                except KeyError:
                    raise _missing_value_error(brick, value_names, values) from None
                batch = tuple(list(value) if isinstance(value, tuple) else value for value in batch)
                return batch[0] if len(batch) == 1 else batch

            return batch_values
        return self._update_step()


def _value_names(metrics: Metric | MetricCollection, metric_names: list[str], owner: str, return_metrics: bool) -> list[str]:
    """The names torchmetrics gives the values of `metrics`: the metric names, except that a collection flattens the
    dict a member returns into its keys.

    The keys are read from what the collection's `compute` returns before any batch, on a copy, so that they are
    torchmetrics' own (prefix, postfix, the keys of two members that clash); the metric itself is not touched. That
    is done for a member annotated as returning a dict, and with `return_metrics` (whose outputs need the names) for
    every collection. Where the keys stay unknown, `return_metrics` is refused.
    """
    if not isinstance(metrics, MetricCollection):
        return metric_names
    members = dict(metrics.items(keep_base=False, copy_state=False))
    dict_valued = [name for name, metric in members.items() if _returns_dict(metric)]
    if not dict_valued and not return_metrics:
        return metric_names
    probe = copy.deepcopy(metrics)
    for module in probe.modules():
        if isinstance(module, Metric):
            module._to_sync = False  # no collective with the other processes while a brick is built
    try:
        with warnings.catch_warnings():  # torchmetrics warns of a compute before any update
            warnings.simplefilter("ignore")
            computed = probe.compute()
    except Exception:  # any metric's compute may fail without data: its keys are then unknown here
        computed = None
    if computed is not None:
        return [str(name) for name in computed]
    if dict_valued and return_metrics:
        raise BrickBuildError(
            f"{owner}({metric_names}) with return_metrics=True: the metric {dict_valued[0]!r} returns a dict, whose keys "
            "torchmetrics names only once it computes, and its compute fails before any batch. Give it a "
            "BrickMetricSingle of its own, whose batch value is the whole dict."
        )
    return metric_names


def _on_device(value: Any, device: torch.device) -> Any:
    """`value` with its tensors on `device`, also those in lists, tuples and dicts (a detection metric's targets)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {key: _on_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        moved = [_on_device(item, device) for item in value]
        return moved if isinstance(value, list) else tuple(moved)
    return value


def _default_output_names(value_names: list[str]) -> list[str]:
    """The output names of a metric brick with `return_metrics=True` and no `output_names`: its value names,
    relative to its collection."""
    return [f"./{name}" for name in value_names]


def _returns_dict(metric: Metric) -> bool:
    annotation = inspect.signature(type(metric).compute).return_annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return text.lower().startswith(("dict", "mapping", "typing.dict", "typing.mapping"))


def _missing_value_error(brick: str, value_names: list[str], values: Mapping[str, Any]) -> BrickOutputError:
    missing = next(name for name in value_names if name not in values)
    available = [str(name) for name in values]
    return BrickOutputError(
        f"{brick} with return_metrics=True: torchmetrics returned no value {missing!r} this batch (values: "
        f"{available}), though it named its values {value_names} before any batch.{did_you_mean(missing, available)} "
        "Give the metric whose keys change with the data a BrickMetricSingle of its own (its value is one output)."
    )


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
        self.__dict__["_metric_name_given"] = metric_name or None
        self._init_metrics(metric.clone(), [name], input_names, tags, return_metrics, output_names)

    def compute(self) -> dict[str, Any]:
        return {self.metric_names[0]: self.metrics.compute()}

    def _checked_metrics(self, value: Any) -> Metric | MetricCollection:
        """`value` assigned to `metrics`: one `Metric`. Without a `metric_name` of its own the brick reports it under
        its class name, so a metric of another class is reported under its own name, never the old one's."""
        if not isinstance(value, Metric):
            raise BrickError(
                f"{type(self).__name__}({self.describe()}): metrics must be one torchmetrics Metric, got "
                f"{type(value).__name__}; a MetricCollection belongs in a BrickMetrics."
            )
        return value

    def _checked_metric_names(self, value: Any) -> tuple[list[str], str | None]:
        """`value` assigned to `metric_names`: the one name the metric is reported under."""
        names = names_list(value, "metric_names", f"{type(self).__name__}({self.describe()})")
        if len(names) != 1:
            raise BrickNameError(
                f"{type(self).__name__}({self.describe()}): metric_names holds the one name of its metric, got {names}."
            )
        return names, names[0]


class BrickTensorCache(BrickAccumulator):
    """A brick that keeps named tensors over batches, for analysis after an epoch (embeddings, predictions).

    Each batch's inputs are detached and moved to `device`; `cached()` concatenates them along dim 0. Tags
    default to METRIC, so it runs wherever metrics run (train, validation and test). Under `nn.DataParallel` each
    copy's part of a batch counts as a batch (for `max_batches`), in the order of the batch.

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
        self._ordered_batches().append(tuple(value.detach().to(self.device) for value in values))

    def _update_original(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> None:
        """A copy's update: its part of the batch, numbered by the copy, for the original's batches.

        The copies run at once in threads: appended as each finished, the parts of a batch landed in any order, and two
        caches (embeddings in one, labels in another) could hold their rows in different orders. The parts join the
        original's batches by the number of their copy (replicate makes a call's copies in the order of the devices,
        which is the order of the batch's parts, and a later call's copies after them) when the cache is next read or
        updated.
        """
        original: BrickTensorCache = self.__dict__["_replica_of"]
        values = tuple(value.detach().to(original.device) for value in (*args, *kwargs.values()))
        with self.__dict__["_replica_lock"]:
            original.__dict__.setdefault("_replica_parts", []).append((self.__dict__["_replica_number"], values))

    def _ordered_batches(self) -> deque[tuple[torch.Tensor, ...]]:
        """The cached batches, with the parts the copies added since (see `_update_original`) joined in order."""
        parts = self.__dict__.get("_replica_parts")
        if parts:
            with self.__dict__["_replica_lock"]:
                self._batches.extend(values for _, values in sorted(parts, key=lambda part: part[0]))
                parts.clear()
        return self._batches

    def __getstate__(self) -> dict[str, Any]:
        self._ordered_batches()
        state = super().__getstate__()
        state.pop("_replica_parts", None)
        return state

    def reset(self) -> None:
        self._ordered_batches().clear()

    def cached(self, reset: bool = False) -> dict[str, torch.Tensor]:
        """The cached tensors by name, each the concatenation of its batches along dim 0."""
        batches = self._ordered_batches()
        if not batches:
            raise BrickError(f"BrickTensorCache {self.cached_names}: nothing is cached yet; run the collection first.")
        values = {name: torch.cat([batch[k] for batch in batches]) for k, name in enumerate(self.cached_names)}
        if reset:
            self.reset()
        return values

    def step_function(self) -> Callable[..., Any]:
        return self._update_step()

    def describe(self) -> str:
        return f"max_batches={self._batches.maxlen}"

    def graph_label(self) -> str:
        return "tensor cache"
