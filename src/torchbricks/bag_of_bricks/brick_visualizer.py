"""`BrickPerImageVisualization`: runs a per-image drawing callable over batched data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from torchbricks.bricks import BrickInterface, InputNames, OutputNames
from torchbricks.errors import BrickError, BrickNameError, BrickOutputError, did_you_mean
from torchbricks.tags import VISUALIZATION, TagsLike
from torchbricks.tensor_conversions import (
    unpack_batched_array_to_arrays,
    unpack_batched_tensor_to_numpy,
    unpack_batched_tensor_to_numpy_format,
    unpack_batched_tensor_to_torchvision_format,
)

__all__ = [
    "DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE",
    "UNPACK_NO_CONVERSION",
    "UNPACK_TENSORS_TO_NDARRAYS",
    "BrickPerImageVisualization",
]

UnpackFunction = Callable[[Any], Sequence[Any]]

DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE: dict[type, UnpackFunction | None] = {
    torch.Tensor: unpack_batched_tensor_to_numpy,
    np.ndarray: unpack_batched_array_to_arrays,
    list: list,
    tuple: list,
}
"""Tensors become per-image numpy values ([B, C, H, W] images channel last); arrays are split along their first
axis; lists and tuples are already per image. Values of other types (a dict, a string, a number) are not split."""

UNPACK_TENSORS_TO_NDARRAYS: dict[type, UnpackFunction | None] = {
    torch.Tensor: unpack_batched_tensor_to_numpy_format,
    np.ndarray: unpack_batched_array_to_arrays,
}
"""torchbricks 0.4.2's default: tensors become channel-last numpy arrays item by item (any tensor of 3 or more
dimensions, see `unpack_batched_tensor_to_numpy_format`), arrays are split along their first axis."""

UNPACK_NO_CONVERSION: dict[type, UnpackFunction | None] = {
    torch.Tensor: unpack_batched_tensor_to_torchvision_format,
    np.ndarray: unpack_batched_array_to_arrays,
}
"""Tensors are split into per-image tensors and keep their type and layout ([B, C, H, W] gives [C, H, W])."""


class BrickPerImageVisualization(BrickInterface):
    """Unpacks batched inputs into per-image values and calls `callable` once per image.

    Each input is unpacked into a sequence with one item per image: by the function given for its input name
    in `unpack_functions_for_input_name`, otherwise by the function for its type (the most specific match in
    the type's MRO) in `unpack_functions_for_type`, which extends and overrides
    `DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE`. By default a batch of images [B, C, H, W] becomes channel-last numpy
    arrays [H, W, C], any other tensor [B, ...] becomes B numpy values, and lists or tuples are taken as
    already per image. `UNPACK_NO_CONVERSION` keeps tensors as tensors; `UNPACK_TENSORS_TO_NDARRAYS` is the
    default of torchbricks 0.4.2.

    An input that cannot be split per image is given whole to every per-image call: a value whose type has no
    unpack function (a dict such as `__all__`, a string, a number), a 0-d tensor or array, a value whose unpack
    function is None, and a
    value whose unpack function returns something other than a list or tuple. The number of images comes from the
    inputs that are split; they must agree, and at least one input must be split.

    Each output is a list with one item per image. With several output names the callable returns a tuple
    with one value per output name; with none it is a sink (for example one saving images) and returns nothing.

    The brick is tagged VISUALIZATION by default, so it runs in the test and inference stages and never in
    training, validation or export.

    Args:
        callable: Called per image with the unpacked inputs, positionally in the order of `input_names` (or by
            keyword when `input_names` is a dict).
        input_names: See `BrickInterface`.
        output_names: See `BrickInterface`.
        unpack_functions_for_type: Type -> function turning a batched value of that type into per-image items;
            None gives values of that type whole.
        unpack_functions_for_input_name: Input name (as written in `input_names`) -> unpack function; wins
            over the type's function. None gives that input whole.
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
        unpack_functions_for_type: Mapping[type, UnpackFunction | None] | None = None,
        unpack_functions_for_input_name: Mapping[str, UnpackFunction | None] | None = None,
        tags: TagsLike | None = None,
    ) -> None:
        super().__init__(input_names=input_names, output_names=output_names, tags=tags)
        owner = type(self).__name__
        if not _is_callable(callable):
            raise BrickError(f"{owner}: callable must be callable, got {type(callable).__name__}.")
        by_type = dict(DEFAULT_UNPACK_FUNCTIONS_FOR_TYPE)
        for key, function in (unpack_functions_for_type or {}).items():
            if not isinstance(key, type) or not (function is None or _is_callable(function)):
                raise BrickError(f"{owner}: unpack_functions_for_type maps types to functions, got {key!r}: {function!r}.")
            by_type[key] = function
        by_name = dict(unpack_functions_for_input_name or {})
        for name, function in by_name.items():
            if name not in self._input_names:
                raise BrickNameError(
                    f"{owner}: unpack_functions_for_input_name has {name!r}, which is not an input name. "
                    f"Available: {self._input_names}.{did_you_mean(str(name), self._input_names)}"
                )
            if not (function is None or _is_callable(function)):
                raise BrickError(f"{owner}: the unpack function for {name!r} must be callable or None, got {function!r}.")
        self.callable = callable
        self.unpack_functions_for_type = by_type
        self.unpack_functions_for_input_name = by_name

    def describe(self) -> str:
        function = self.callable
        name = getattr(function, "__qualname__", None) or type(function).__name__
        return name.replace("<locals>.", "").replace("<lambda>", "lambda")  # angle brackets would break graph labels

    def unpack(self, name: str, value: Any) -> list[Any] | None:
        """The per-image items of the input `name` (as written in `input_names`) holding the batched `value`, or None
        when the value cannot be split and is given whole to every image."""
        if name in self.unpack_functions_for_input_name:
            function = self.unpack_functions_for_input_name[name]
        elif isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
            return None  # a number held in a tensor has no batch axis
        else:
            by_type = self.unpack_functions_for_type
            function = next((by_type[t] for t in type(value).__mro__ if t in by_type), None)
        if function is None:
            return None
        try:
            items = function(value)
        except BrickError as error:  # the collection adds no context to a BrickError, so name brick and input here
            raise BrickError(f"{type(self).__name__}({self.describe()}): cannot unpack input {name!r}: {error}") from error
        return list(items) if isinstance(items, (list, tuple)) else None

    def step_function(self) -> Callable[..., Any]:
        names = self._input_names
        keywords = self._keywords
        n_outputs = len(self._output_names)

        def visualize_per_image(*args: Any, **kwargs: Any) -> Any:
            values = list(args) if keywords is None else [kwargs[keyword] for keyword in keywords]
            unpacked = [self.unpack(name, value) for name, value in zip(names, values, strict=True)]
            n_images = self._count_images(unpacked)
            per_input = [[value] * n_images if items is None else items for items, value in zip(unpacked, values, strict=True)]
            callable_ = self.callable
            if keywords is None:
                results = [callable_(*items) for items in zip(*per_input, strict=True)]
            else:
                results = [callable_(**dict(zip(keywords, items, strict=True))) for items in zip(*per_input, strict=True)]
            if n_outputs <= 1:
                return results if n_outputs == 1 else None
            return self._split_outputs(results)

        return visualize_per_image

    def _count_images(self, unpacked: list[list[Any] | None]) -> int:
        sizes = {name: len(items) for name, items in zip(self._input_names, unpacked, strict=True) if items is not None}
        if not sizes:
            raise BrickError(
                f"{type(self).__name__}({self.describe()}): no input can be split per image, so the number of images is "
                f"unknown; inputs {self._input_names}. Give a batched tensor, array or list, or an unpack function."
            )
        if len(set(sizes.values())) > 1:
            raise BrickError(
                f"{type(self).__name__}({self.describe()}): inputs unpack to different numbers of images {sizes}; "
                "each input needs one item per image."
            )
        return next(iter(sizes.values()))

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
