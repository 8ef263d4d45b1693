"""`BrickPerImageVisualization`: runs a per-image drawing callable over batched data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch

from torchbricks.bricks import BrickInterface, InputNames, OutputNames
from torchbricks.errors import BrickError, BrickNameError, BrickOutputError, did_you_mean
from torchbricks.tags import VISUALIZATION, TagsLike
from torchbricks.tensor_conversions import unpack_batched_tensor_to_numpy

__all__ = ["DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE", "BrickPerImageVisualization"]

UnpackFunction = Callable[[Any], Sequence[Any]]

DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE: dict[type, UnpackFunction] = {
    torch.Tensor: unpack_batched_tensor_to_numpy,
    list: list,
    tuple: list,
}
"""Tensors become per-image numpy values ([B, C, H, W] images channel last); lists and tuples are already per image."""


class BrickPerImageVisualization(BrickInterface):
    """Unpacks batched inputs into per-image values and calls `callable` once per image.

    Each input is unpacked into a sequence with one item per image: by the function given for its input name
    in `unpack_functions_for_input_name`, otherwise by the function for its type (the most specific match in
    the type's MRO) in `unpack_functions_for_type`, which extends and overrides
    `DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE`. By default a batch of images [B, C, H, W] becomes channel-last numpy
    arrays [H, W, C], any other tensor [B, ...] becomes B numpy values, and lists or tuples are taken as
    already per image.

    Each output is a list with one item per image. With several output names the callable returns a tuple
    with one value per output name; with none it is a sink (for example one saving images) and returns nothing.

    The brick is tagged VISUALIZATION by default, so it runs in the test and inference stages and never in
    training, validation or export.

    Args:
        callable: Called per image with the unpacked inputs, positionally in the order of `input_names` (or by
            keyword when `input_names` is a dict).
        input_names: See `BrickInterface`.
        output_names: See `BrickInterface`.
        unpack_functions_for_type: Type -> function turning a batched value of that type into per-image items.
        unpack_functions_for_input_name: Input name (as written in `input_names`) -> unpack function; wins
            over the type's function.
        tags: VISUALIZATION by default.

    Example:
        >>> brick = BrickPerImageVisualization(lambda image, label: f"{image.shape} {label}", ["images", "labels"], ["texts"])
        >>> brick({"images": torch.zeros(2, 3, 4, 5), "labels": torch.tensor([7, 8])})
        {'texts': ['(4, 5, 3) [7]', '(4, 5, 3) [8]']}
    """

    default_tags: ClassVar[frozenset[str]] = frozenset({VISUALIZATION})

    def __init__(
        self,
        callable: Callable[..., Any],
        input_names: InputNames,
        output_names: OutputNames | None,
        unpack_functions_for_type: Mapping[type, UnpackFunction] | None = None,
        unpack_functions_for_input_name: Mapping[str, UnpackFunction] | None = None,
        tags: TagsLike | None = None,
    ) -> None:
        super().__init__(input_names=input_names, output_names=output_names, tags=tags)
        owner = type(self).__name__
        if not _is_callable(callable):
            raise BrickError(f"{owner}: callable must be callable, got {type(callable).__name__}.")
        by_type = dict(DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE)
        for key, function in (unpack_functions_for_type or {}).items():
            if not isinstance(key, type) or not _is_callable(function):
                raise BrickError(f"{owner}: unpack_functions_for_type maps types to functions, got {key!r}: {function!r}.")
            by_type[key] = function
        by_name = dict(unpack_functions_for_input_name or {})
        for name, function in by_name.items():
            if name not in self._input_names:
                raise BrickNameError(
                    f"{owner}: unpack_functions_for_input_name has {name!r}, which is not an input name. "
                    f"Available: {self._input_names}.{did_you_mean(str(name), self._input_names)}"
                )
            if not _is_callable(function):
                raise BrickError(f"{owner}: the unpack function for {name!r} must be callable, got {function!r}.")
        self.callable = callable
        self.unpack_functions_for_type = by_type
        self.unpack_functions_for_input_name = by_name

    def describe(self) -> str:
        function = self.callable
        name = getattr(function, "__qualname__", None) or type(function).__name__
        return name.replace("<locals>.", "").replace("<lambda>", "lambda")  # angle brackets would break graph labels

    def unpack(self, name: str, value: Any) -> list[Any]:
        """The per-image items of the input `name` (as written in `input_names`) holding the batched `value`."""
        function = self.unpack_functions_for_input_name.get(name)
        if function is None:
            function = next(
                (self.unpack_functions_for_type[t] for t in type(value).__mro__ if t in self.unpack_functions_for_type), None
            )
        if function is None:
            raise BrickError(
                f"{type(self).__name__}({self.describe()}): no unpack function for input {name!r} of type "
                f"{type(value).__name__}; types with one: {[t.__name__ for t in self.unpack_functions_for_type]}. "
                f"Pass unpack_functions_for_type={{{type(value).__name__}: ...}} or "
                f"unpack_functions_for_input_name={{{name!r}: ...}}."
            )
        try:
            return list(function(value))
        except BrickError as error:  # the collection adds no context to a BrickError, so name brick and input here
            raise BrickError(f"{type(self).__name__}({self.describe()}): cannot unpack input {name!r}: {error}") from error

    def step_function(self) -> Callable[..., Any]:
        names = self._input_names
        keywords = self._keywords
        n_outputs = len(self._output_names)

        def visualize_per_image(*args: Any, **kwargs: Any) -> Any:
            values = list(args) if keywords is None else [kwargs[keyword] for keyword in keywords]
            per_input = [self.unpack(name, value) for name, value in zip(names, values, strict=True)]
            self._check_batch_sizes(per_input)
            callable_ = self.callable
            if keywords is None:
                results = [callable_(*items) for items in zip(*per_input, strict=True)]
            else:
                results = [callable_(**dict(zip(keywords, items, strict=True))) for items in zip(*per_input, strict=True)]
            if n_outputs <= 1:
                return results if n_outputs == 1 else None
            return self._split_outputs(results)

        return visualize_per_image

    def _check_batch_sizes(self, per_input: list[list[Any]]) -> None:
        sizes = {name: len(items) for name, items in zip(self._input_names, per_input, strict=True)}
        if len(set(sizes.values())) > 1:
            raise BrickError(
                f"{type(self).__name__}({self.describe()}): inputs unpack to different numbers of images {sizes}; "
                "each input needs one item per image."
            )

    def _split_outputs(self, results: list[Any]) -> tuple[list[Any], ...]:
        count = len(self._output_names)
        wrong = next((result for result in results if not isinstance(result, (tuple, list)) or len(result) != count), None)
        if results and wrong is not None:
            got = f"{len(wrong)} values" if isinstance(wrong, (tuple, list)) else f"a {type(wrong).__name__}"
            raise BrickOutputError(
                f"{type(self).__name__}({self.describe()}): the callable returned {got} for an image, but the brick has "
                f"{count} output_names {self._output_names}; return a tuple with one value per output name."
            )
        return tuple([result[index] for result in results] for index in range(count))


def _is_callable(value: object) -> bool:
    return callable(value)
