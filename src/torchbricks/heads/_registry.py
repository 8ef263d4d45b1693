"""The registry of task head kinds and the base class every kind derives from.

A head kind is one class: `describe(...)` gives its bricks as plain nodes (`{"_target_": dotted path, ...}`, the form
of a Hydra config), so the same description is instantiated by the `create_*_head` factories (`create`, without
Hydra) and served as the packaged head config (`packaged_configs`, with `${...}` interpolations as arguments, stored
in Hydra's ConfigStore as the group `head` by `torchbricks.configuration.compose_config`); its
report adapter (`predictions`) turns a test run's collected values into the cells of `predictions.png`.

A kind's arguments are a frozen dataclass (`arguments`, starting with the common `HeadInputs` or `DenseHeadInputs`)
that `bricks` turns into nodes, so the parameters every kind shares are declared and documented once; `head_factory`
gives the `create_*_head` factory the dataclass's parameters. A kind may instead override `describe` itself.

Kinds register themselves with `@register_head("name")`; every public module of `torchbricks.heads` is imported on
the first lookup, so adding a kind is adding one module.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, ParamSpec, Protocol, TypeVar

import numpy as np

from torchbricks._conventions import LOSS_PARTS
from torchbricks.bricks import BrickInterface
from torchbricks.errors import BrickError, did_you_mean

__all__ = [
    "Collected",
    "DenseHeadInputs",
    "HeadInputs",
    "HeadPredictionsLike",
    "TaskHead",
    "brick",
    "create_from_description",
    "find_heads",
    "get_head",
    "head_factory",
    "list_heads",
    "loss_with_parts",
    "metrics",
    "node",
    "node_of",
    "packaged_head_configs",
    "register_head",
    "visualization",
]

Description = dict[str, dict[str, Any]]
"""Brick name -> node: `{"_target_": "package.module.Class", argument: value, ...}`, nested like a Hydra config."""


class HeadPredictionsLike(Protocol):
    """What `predictions.png` needs of a head's collected test predictions (see `torchbricks.lightning.report`)."""

    head: str
    kind: str
    images: np.ndarray

    def errors(self) -> np.ndarray: ...

    def order(self) -> np.ndarray: ...


@dataclass(frozen=True)
class HeadInputs:
    """The first arguments of the heads that predict classes from one feature map (`classification`, `multilabel`,
    `detection`, `points`); each kind's arguments dataclass adds its own after them.

    Attributes:
        num_classes: Number of classes.
        in_channels: Channels of the features.
        features_name: Name of the features [B, C, h, w] (or [B, C] for the classifiers).
    """

    num_classes: int
    in_channels: int
    features_name: str


@dataclass(frozen=True)
class DenseHeadInputs(HeadInputs):
    """`HeadInputs` of a head predicting on the feature map's cells (`detection`, `points`).

    Attributes:
        stride: Stride of the features relative to the image.
    """

    stride: int


class TaskHead:
    """A kind of task head: its bricks, its packaged config and its report adapter.

    Class attributes:
        kind: The registered name (`classification`, `detection`, ...), also the `kind` of its predictions.
        outputs: The outputs (relative to the head) by which a head of this kind is recognised in a collection; the
            first is the prediction.
        packaged_configs: Packaged config name (the option `<name>` of the config group `head`) -> the arguments of
            `describe` it uses.
        cells_per_sample: Images drawn per sample in `predictions.png` (2: truth beside prediction).
        example: The arguments of a small head of this kind (reading `features` [B, 8, h, w]), for the contract
            tests every kind passes.
        drawing: The visualization brick (a dotted path) that draws the head's predictions on the images.
        drawn: What the drawing reads of the head's outputs: its argument -> a relative output name.
    """

    kind: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ()
    packaged_configs: ClassVar[dict[str, dict[str, Any]]] = {}
    cells_per_sample: ClassVar[int] = 1
    example: ClassVar[dict[str, Any]] = {}
    drawing: ClassVar[str] = ""
    drawn: ClassVar[dict[str, str]] = {}

    arguments: ClassVar[type[Any] | None] = None
    """The dataclass of the kind's arguments (a `HeadInputs` subclass), when `bricks` reads one."""

    @classmethod
    def describe(cls, *args: Any, **kwargs: Any) -> Description:
        """The head's bricks as nodes; the arguments (those of `arguments`) may be values or `${...}` interpolations."""
        if cls.arguments is None:
            raise NotImplementedError(f"{cls.__qualname__} declares neither `arguments` nor its own `describe`.")
        return cls.bricks(cls.arguments(*args, **kwargs))

    @classmethod
    def bricks(cls, arguments: Any) -> Description:
        """The head's bricks as nodes, from an instance of `arguments`."""
        raise NotImplementedError

    @classmethod
    def with_drawing(cls, bricks: Description, image_name: str | None, **options: Any) -> Description:
        """`bricks` and, when `image_name` is given, `visualize`: the kind's `drawing` of its `drawn` outputs on the
        images `image_name` (with `options`, those that are None left out), writing `./visualization`."""
        return {**bricks, **visualization(cls.drawing, image_name, **cls.drawn, **options)}

    @classmethod
    def create(cls, **arguments: Any) -> dict[str, BrickInterface]:
        """The head's bricks, built from `describe(**arguments)`."""
        return {name: create_from_description(description) for name, description in cls.describe(**arguments).items()}

    @classmethod
    def config(cls, name: str) -> Description:
        """The packaged head config `name` (the option `head=<name>`) as a dict."""
        return cls.describe(**cls.packaged_configs[name])

    @classmethod
    def predictions(cls, collected: Collected) -> Any:
        """The report adapter: a head's test predictions (a `HeadPredictionsLike`) from what the report collected of
        its metric's inputs, or None when they are not of this kind."""
        return None


@dataclass
class Collected:
    """What the report collects of a head over the test batches, for its kind's `predictions` adapter.

    Attributes:
        head: The head's name.
        images: The test images, [N, H, W, 3] in [0, 1].
        values: Per input of the head's metric brick (predictions first, then targets), the batches collected.
        companions: The other outputs of the brick making the first input, concatenated (scores may be there).
        metric: The head's metric object (a matching distance may be read from it).
    """

    head: str
    images: np.ndarray
    values: list[list[np.ndarray]]
    companions: list[np.ndarray] = field(default_factory=list)
    metric: Any = None

    def pair(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(prediction, truth), each concatenated over the batches, of a metric reading two inputs; else None."""
        if len(self.values) != 2:
            return None
        return np.concatenate(self.values[0]), np.concatenate(self.values[1])


_HEADS: dict[str, type[TaskHead]] = {}
_LOADED: set[str] = set()

HeadType = TypeVar("HeadType", bound=type[TaskHead])


def register_head(kind: str) -> Callable[[HeadType], HeadType]:
    """Registers a `TaskHead` subclass under `kind` (a class decorator, as timm's `register_model`).

    Example (each kind's module does this):
        >>> get_head("classification").__name__, get_head("classification").kind
        ('ClassificationTaskHead', 'classification')
    """

    def register(head: HeadType) -> HeadType:
        if kind in _HEADS and _HEADS[kind] is not head:
            raise BrickError(f"Head kind {kind!r} is registered twice: {_HEADS[kind].__qualname__} and {head.__qualname__}.")
        head.kind = kind
        _HEADS[kind] = head
        return head

    return register


def _load_kinds() -> None:
    """Imports every public module of this package once, so each registers its kind."""
    if _LOADED:
        return
    _LOADED.add(__name__)
    package = importlib.import_module(__name__.rpartition(".")[0])
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")


def list_heads() -> list[str]:
    """The registered head kinds, sorted.

    Example:
        >>> [kind for kind in list_heads() if kind in ("classification", "detection")]
        ['classification', 'detection']
    """
    _load_kinds()
    return sorted(_HEADS)


def get_head(kind: str) -> type[TaskHead]:
    """The head class registered as `kind`.

    Raises:
        BrickError: No head kind has that name; the message lists the kinds and the close match.
    """
    _load_kinds()
    if kind not in _HEADS:
        raise BrickError(f"No task head kind {kind!r}. Available: {sorted(_HEADS)}.{did_you_mean(kind, sorted(_HEADS))}")
    return _HEADS[kind]


def packaged_head_configs() -> dict[str, type[TaskHead]]:
    """Packaged head config name (an option of the config group `head`) -> the kind declaring it.

    Example:
        >>> packaged_head_configs()["image_classification"].kind
        'classification'
    """
    _load_kinds()
    return {name: head for head in _HEADS.values() for name in head.packaged_configs}


def find_heads(output_names: Sequence[str], kinds: Sequence[str] | None = None) -> dict[str, str]:
    """The task heads among a collection's output names: head path -> kind.

    A head is a nested collection whose outputs include every name of a kind's `outputs`; `kinds` limits the kinds
    looked for (all registered ones by default).

    Example:
        >>> find_heads(["features", "det/boxes", "det/scores", "det/labels", "cls/class_prediction", "cls/probabilities"])
        {'cls': 'classification', 'det': 'detection'}
    """
    _load_kinds()
    by_head: dict[str, set[str]] = {}
    for name in output_names:
        head, _, leaf = name.rpartition("/")
        if head:
            by_head.setdefault(head, set()).add(leaf)
    wanted = [_HEADS[kind] for kind in (kinds if kinds is not None else sorted(_HEADS))]
    heads = {}
    for head, leaves in sorted(by_head.items()):
        for head_class in wanted:
            if head_class.outputs and set(head_class.outputs) <= leaves:
                heads[head] = head_class.kind
                break
    return heads


def node(target: str, /, **arguments: Any) -> dict[str, Any]:
    """A described object: `{"_target_": target, **arguments}` (arguments that are None are left out).

    Example:
        >>> node("torch.nn.Linear", in_features=2, out_features=3, bias=None)
        {'_target_': 'torch.nn.Linear', 'in_features': 2, 'out_features': 3}
    """
    return {"_target_": target, **{key: value for key, value in arguments.items() if value is not None}}


def node_of(target: str, given: Any, *names: str, **arguments: Any) -> dict[str, Any]:
    """`node(target, ...)` of the fields `names` of `given` (a kind's arguments dataclass) and `arguments`.

    Example:
        >>> node_of("torch.nn.Linear", HeadInputs(num_classes=3, in_channels=2, features_name="x"), "in_channels", out_features=3)
        {'_target_': 'torch.nn.Linear', 'in_channels': 2, 'out_features': 3}
    """
    return node(target, **{name: getattr(given, name) for name in names}, **arguments)


Arguments = ParamSpec("Arguments")


def head_factory(
    arguments: Callable[Arguments, Any], head: type[TaskHead], name: str
) -> Callable[Arguments, dict[str, BrickInterface]]:
    """A `create_*_head` factory of a kind: the parameters of `arguments` (the kind's arguments dataclass, or its own
    `describe`), the documentation of its bricks and arguments, the bricks of `head.describe` built.

    Example:
        >>> from torchbricks.heads.count import CountTaskHead
        >>> create_count_head = head_factory(CountTaskHead.describe, CountTaskHead, "create_count_head")
        >>> sorted(create_count_head(in_channels=8, features_name="features", target_labels_name="labels"))
        ['loss', 'metrics', 'regress']
    """

    def create(*args: Arguments.args, **kwargs: Arguments.kwargs) -> dict[str, BrickInterface]:
        return {brick_name: create_from_description(node) for brick_name, node in head.describe(*args, **kwargs).items()}

    create.__name__ = create.__qualname__ = name
    documented = [head.bricks, arguments] if head.arguments is not None else [arguments]
    create.__doc__ = "\n\n".join(inspect.getdoc(part) or "" for part in documented)
    signature = inspect.signature(arguments).replace(return_annotation="dict[str, BrickInterface]")
    create.__signature__ = signature  # type: ignore[attr-defined]  # help() and IDEs show the arguments
    return create


def brick(brick_type: str, model: dict[str, Any], input_names: Any, output_names: list[str]) -> dict[str, Any]:
    """A `torchbricks.bricks.<brick_type>` (`BrickTrainable`, `BrickNotTrainable`, `BrickLoss`) node around `model`."""
    return node(f"torchbricks.bricks.{brick_type}", model=model, input_names=input_names, output_names=output_names)


def loss_with_parts(model: dict[str, Any], input_names: list[Any], loss_names: list[str]) -> dict[str, Any]:
    """A `torchbricks.bricks.BrickLoss` node around the loss `model` (built with `return_parts=True`) writing the
    losses `loss_names` and, beside them, each one's numerator and denominator (`./loss_parts`, see
    `torchbricks._conventions.LOSS_PARTS`), so that a validation epoch's loss is the whole split's."""
    return node(
        "torchbricks.bricks.BrickLoss",
        model={**model, "return_parts": True},
        input_names=input_names,
        output_names=[*loss_names, f"./{LOSS_PARTS}"],
        loss_output_names=list(loss_names),
    )


def metrics(metric_collection: dict[str, Any], input_names: list[Any]) -> dict[str, Any]:
    """A `torchbricks.bricks.BrickMetrics` node of named metric nodes."""
    return node("torchbricks.bricks.BrickMetrics", metric_collection=metric_collection, input_names=input_names)


def visualization(drawing: str, image_name: str | None, **inputs: Any) -> Description:
    """`{"visualize": node}`: the drawing brick `drawing` over the images `image_name`, writing `./visualization`;
    nothing when `image_name` is None."""
    if image_name is None:
        return {}
    return {"visualize": node(drawing, input_image=image_name, **inputs, output_name="./visualization")}


def create_from_description(value: Any) -> Any:
    """Builds what a description describes: each `_target_` node called with its built arguments (Hydra's
    `instantiate`, without Hydra).

    Example:
        >>> create_from_description(node("torch.nn.Linear", in_features=2, out_features=3)).weight.shape
        torch.Size([3, 2])
    """
    if isinstance(value, Mapping):
        built = {str(key): create_from_description(item) for key, item in value.items() if key != "_target_"}
        return _locate(str(value["_target_"]))(**built) if "_target_" in value else built
    if isinstance(value, list):
        return [create_from_description(item) for item in value]
    return value


def _locate(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise BrickError(f"A head description names {path!r}, which cannot be imported: {error}") from error
