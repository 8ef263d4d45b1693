"""Shipping a brick collection: ONNX export and `torch.export` of the bricks one stage runs; torchbricks 0.4.2's
helpers for per-stage metrics.

Both exports wrap the collection in a small `nn.Module` taking the tensors the selected bricks need and returning
the named outputs, so the exported graph is exactly what the collection runs for the tags: bricks of other tags
(losses, metrics) and named inputs nothing selected reads are left out.

`filter_brick_types`, `copy_metric_bricks` and `per_stage_brick_collections` are 0.4.2's, for code written against
it (a training loop keeping one set of metric states per stage); they live in `torchbricks.compat`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchbricks._extras import require
from torchbricks._files import write_with_side_files_atomically
from torchbricks.brick_collection import BrickCollection
from torchbricks.compat import copy_metric_bricks, filter_brick_types, per_stage_brick_collections
from torchbricks.errors import BrickError, did_you_mean
from torchbricks.tags import Stage, TagsLike, normalize_tags

if TYPE_CHECKING:
    from torch.export import ExportedProgram

__all__ = [
    "copy_metric_bricks",
    "export_bricks",
    "export_bricks_as_onnx",
    "filter_brick_types",
    "per_stage_brick_collections",
]


class _BricksAsModule(nn.Module):
    """Runs the bricks of one tag set on positional tensors and returns a tuple of their outputs."""

    def __init__(
        self,
        brick_collection: BrickCollection,
        input_names: Sequence[str],
        tags: frozenset[str] | None,
        output_names: Sequence[str],
    ) -> None:
        super().__init__()
        self.brick_collection = brick_collection
        self.input_names = tuple(input_names)
        self.tags = tags
        self.output_names = tuple(output_names)

    def forward(self, *tensors: torch.Tensor) -> tuple[Any, ...]:
        named_inputs = dict(zip(self.input_names, tensors, strict=True))
        named_outputs = self.brick_collection(named_inputs, tags=self.tags, return_inputs=False, output_names=self.output_names)
        return tuple(named_outputs[name] for name in self.output_names)


class _NamedBricksAsModule(nn.Module):
    """Runs the bricks of one tag set on a dict of tensors and returns a dict of their outputs."""

    def __init__(self, brick_collection: BrickCollection, tags: frozenset[str] | None, output_names: Sequence[str]) -> None:
        super().__init__()
        self.brick_collection = brick_collection
        self.tags = tags
        self.output_names = tuple(output_names)

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        return self.brick_collection(named_inputs, tags=self.tags, return_inputs=False, output_names=self.output_names)


def export_bricks_as_onnx(
    path_onnx: Path | str,
    brick_collection: BrickCollection,
    named_inputs: Mapping[str, Any],
    dynamic_batch_size: bool = True,
    tags: TagsLike | None = Stage.EXPORT,
    output_names: Sequence[str] | None = None,
    opset_version: int | None = None,
    **onnx_export_kwargs: Any,
) -> Path:
    """Exports the bricks `tags` selects as an ONNX file, with the torch.export-based (dynamo) exporter.

    The ONNX inputs are the named inputs the selected bricks read (others in `named_inputs` are left out) and
    the ONNX outputs are the names they produce; both keep their brick names (`raw`, `head0/probabilities`).
    The collection is exported in eval mode; its training modes are restored afterwards.

    Args:
        path_onnx: The file to write.
        brick_collection: The collection to export.
        named_inputs: Example inputs, used to trace the bricks.
        dynamic_batch_size: Make dimension 0 of every input (the batch) dynamic, shared by all inputs (on by
            default, as in `export_bricks`). An example batch of one is traced as two copies, since torch.export
            fixes sizes of one.
        tags: The bricks to export; the export stage's tags (MODEL) by default, so losses and metrics stay out;
            None exports every brick (as a call with `tags=None`, and 0.4.2's default).
        output_names: Export only these outputs (and only the bricks they need); every produced name by default.
        opset_version: The ONNX opset; the exporter's default when None.
        **onnx_export_kwargs: Passed on to `torch.onnx.export`. `dynamic_axes` ({name: {axis: axis name}}, the
            older exporter's form, as 0.4.2 passed it) is turned into the inputs' dynamic shapes and replaces
            `dynamic_batch_size`.

    Returns:
        The path of the ONNX file.

    Raises:
        MissingInputError: `named_inputs` lacks a name the selected bricks read.
        MissingExtraError: onnx or onnxscript is not installed (`pip install "torchbricks[onnx]"`).
    """
    require("onnxscript", "onnx")
    require("onnx", "onnx")
    tag_set, input_names, outputs = _signature(brick_collection, named_inputs, tags, output_names)
    module = _BricksAsModule(brick_collection, input_names, tag_set, outputs)
    args = tuple(named_inputs[name] for name in input_names)
    dynamic_shapes = None
    dynamic_axes = onnx_export_kwargs.pop("dynamic_axes", None)
    if dynamic_axes is not None:  # torch.onnx's older form (0.4.2 passed it): the dynamo exporter takes shapes
        dynamic_shapes = (_shapes_of_axes(dynamic_axes, args, input_names, outputs),)
        args = _batch_of_two_if_one(args)
    elif dynamic_batch_size:
        dynamic_shapes = (_dynamic_batch(args),)  # one entry: the *tensors tuple
        args = _batch_of_two_if_one(args)
    path_onnx = Path(path_onnx)
    onnx_export_kwargs.setdefault("verbose", False)
    onnx_export_kwargs.setdefault("external_data", False)  # one self-contained file (up to protobuf's 2 GB)
    path_onnx.parent.mkdir(parents=True, exist_ok=True)

    def export(file: Path) -> None:
        torch.onnx.export(
            module,
            args,
            str(file),
            input_names=list(input_names),
            output_names=list(outputs),
            opset_version=opset_version,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            **onnx_export_kwargs,
        )

    with _eval_mode(module), warnings.catch_warnings():
        # Inputs share one batch dimension on purpose; the exporter warns that it names the axis once.
        warnings.filterwarnings("ignore", message="# The axis name: batch will not be used", category=UserWarning)
        # A failed export (an operator ONNX lacks, a full disk) leaves the file an earlier export wrote.
        write_with_side_files_atomically(path_onnx, export)
    return path_onnx


def export_bricks(
    brick_collection: BrickCollection,
    named_inputs: Mapping[str, Any],
    tags: TagsLike | None = Stage.EXPORT,
    dynamic_batch_size: bool = True,
    output_names: Sequence[str] | None = None,
    strict: bool = False,
) -> ExportedProgram:
    """`torch.export.export` of the bricks `tags` selects.

    The program takes a dict of the named inputs the selected bricks read and returns a dict of the names they
    produce: `program.module()({"raw": images})["head0/probabilities"]`. It is traced in eval mode. Metric
    updates are not part of an exported program (metrics accumulate in eager and compiled runs only).

    Args:
        brick_collection: The collection to export.
        named_inputs: Example inputs, used to trace the bricks; names the selected bricks do not read are dropped.
        tags: The bricks to export; the export stage's tags (MODEL) by default; None exports every brick.
        dynamic_batch_size: Make dimension 0 of every input (the batch) dynamic, shared by all inputs. An
            example batch of one is traced as two copies, since torch.export fixes sizes of one.
        output_names: Export only these outputs (and only the bricks they need); every produced name by default.
        strict: Trace with TorchDynamo (`strict=True`) rather than the Python-level tracer.

    Returns:
        The exported program.

    Raises:
        MissingInputError: `named_inputs` lacks a name the selected bricks read.
    """
    tag_set, input_names, outputs = _signature(brick_collection, named_inputs, tags, output_names)
    module = _NamedBricksAsModule(brick_collection, tag_set, outputs)
    example = {name: named_inputs[name] for name in input_names}
    dynamic_shapes = None
    if dynamic_batch_size:
        dynamic_shapes = (dict(zip(input_names, _dynamic_batch(tuple(example.values())), strict=True)),)
        example = dict(zip(input_names, _batch_of_two_if_one(tuple(example.values())), strict=True))
    with _eval_mode(module):
        return torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes, strict=strict)


def _signature(
    brick_collection: BrickCollection, named_inputs: Mapping[str, Any], tags: TagsLike | None, output_names: Sequence[str] | None
) -> tuple[frozenset[str] | None, tuple[str, ...], tuple[str, ...]]:
    """The tags, the inputs the selected bricks read and the outputs to export, checked against `named_inputs`."""
    tag_set = None if tags is None else normalize_tags(tags)  # None: every brick, as a call with tags=None
    plan = brick_collection.plan(tags=tag_set, output_names=None if output_names is None else list(output_names))
    plan.check_inputs(named_inputs)
    for name in plan.required_inputs:
        if not isinstance(named_inputs[name], torch.Tensor):
            raise BrickError(
                f"Named input {name!r} is a {type(named_inputs[name]).__name__}; an exported collection takes tensors only."
            )
    outputs = plan.produced if output_names is None else tuple(output_names)
    return tag_set, plan.required_inputs, outputs


def _shapes_of_axes(
    dynamic_axes: Any, tensors: tuple[torch.Tensor, ...], input_names: Sequence[str], output_names: Sequence[str]
) -> tuple[dict[int, Any] | None, ...]:
    """`dynamic_axes` ({name: {axis: axis name} or [axis, ...]}, `torch.onnx.export`'s older form) as the dynamic
    shapes of the inputs; axes of one name share one dimension. The outputs' axes follow from the inputs'."""
    if not isinstance(dynamic_axes, Mapping):
        raise BrickError(f"dynamic_axes must be a dict of name -> {{axis: axis name}}, got {type(dynamic_axes).__name__}.")
    unknown = sorted(set(dynamic_axes) - set(input_names) - set(output_names))
    if unknown:
        known = [*input_names, *output_names]
        raise BrickError(
            f"dynamic_axes names {unknown}, which are neither inputs nor outputs of the export: {known}."
            f"{did_you_mean(unknown[0], known)}"
        )
    dims: dict[str, Any] = {}
    shapes: list[dict[int, Any] | None] = []
    for name, tensor in zip(input_names, tensors, strict=True):
        axes = dynamic_axes.get(name)
        if axes is None:
            shapes.append(None)
            continue
        named = axes if isinstance(axes, Mapping) else {axis: f"{name}_dim_{axis}" for axis in axes}
        for axis in named:
            if not isinstance(axis, int) or not -tensor.ndim <= axis < tensor.ndim:
                raise BrickError(f"dynamic_axes[{name!r}] names axis {axis!r}; input {name!r} has {tensor.ndim} axes.")
        key = {axis % tensor.ndim: str(label) for axis, label in named.items()}
        shapes.append({axis: dims.setdefault(label, torch.export.Dim(_identifier(label))) for axis, label in key.items()})
    return tuple(shapes)


def _identifier(label: str) -> str:
    """An axis name as torch.export's `Dim` takes it (an identifier)."""
    cleaned = "".join(character if character.isalnum() else "_" for character in label)
    return cleaned if cleaned.isidentifier() else f"dim_{cleaned}"


def _dynamic_batch(tensors: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any] | None, ...]:
    batch = torch.export.Dim("batch")
    return tuple({0: batch} if tensor.ndim > 0 else None for tensor in tensors)


def _batch_of_two_if_one(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """torch.export fixes a size of one to a constant, so an example batch of one is traced as two copies."""
    if any(tensor.ndim > 0 and tensor.shape[0] != 1 for tensor in tensors):
        return tensors
    return tuple(tensor.expand(2, *tensor.shape[1:]) if tensor.ndim > 0 else tensor for tensor in tensors)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Puts `module` in eval mode for an export, then restores the mode of each submodule."""
    modes = {submodule: submodule.training for submodule in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for submodule, training in modes.items():
            submodule.training = training
