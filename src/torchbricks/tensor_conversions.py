"""Conversions between batched tensors and per-image data (numpy arrays, Pillow images) for drawing and saving.

Drawing libraries work on one image at a time and on numpy arrays or Pillow images; these functions unpack a
batch into such per-image values. They are meant for visualization (the visualization bricks and sinks use
them), never for the model's hot path.

Example:
    >>> import torch
    >>> [image.shape for image in unpack_batched_tensor_to_numpy_channel_last(torch.zeros(2, 3, 4, 5))]
    [(4, 5, 3), (4, 5, 3)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from torchbricks.errors import BrickError

__all__ = [
    "batched_tensor_to_batched_np_array_channel_last",
    "batched_tensor_to_channel_last",
    "channel_first_to_channel_last",
    "float2uint8",
    "function_composer",
    "numpy_to_pillow",
    "pillow_images_to_batched_tensor",
    "torch_to_numpy",
    "unpack_batched_array_to_arrays",
    "unpack_batched_tensor_to_numpy",
    "unpack_batched_tensor_to_numpy_channel_last",
    "unpack_batched_tensor_to_numpy_format",
    "unpack_batched_tensor_to_pillow_images",
    "unpack_batched_tensor_to_torchvision_format",
]

_PILLOW_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def float2uint8(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """Maps floats in [0, 1] to uint8 in [0, 255], clipping values outside the range; uint8 input is returned as is.

    Booleans and integers of 0 and 1 are read as [0, 1] too. Other integers raise `BrickError`: they are pixel
    values (0..255), which clipping to [0, 1] would turn white; convert them to uint8 first.

    Example:
        >>> float2uint8(np.array([0.0, 0.5, 1.0, 2.0])).tolist()
        [0, 128, 255, 255]
    """
    array = torch_to_numpy(values) if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer) and array.size and (array.min() < 0 or array.max() > 1):
        raise BrickError(
            f"float2uint8 maps values in [0, 1] to [0, 255], got {array.dtype} values from {array.min()} to "
            f"{array.max()}, which it would clip to black and white. Pixel values (0..255) go in as uint8: "
            "convert them first (tensor.to(torch.uint8), array.astype(np.uint8))."
        )
    return np.rint(np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def function_composer(*functions: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Chains single-argument functions left to right: `function_composer(f, g)(x) == g(f(x))`; no function is the identity.

    Example:
        >>> function_composer(torch_to_numpy, list)(torch.tensor([0, 1]))
        [np.int64(0), np.int64(1)]
    """
    not_callable = [function for function in functions if not callable(function)]
    if not_callable:
        raise BrickError(f"function_composer takes callables only, got {not_callable!r}.")

    def composed(value: Any) -> Any:
        for function in functions:
            value = function(value)
        return value

    names = [getattr(function, "__name__", type(function).__name__) for function in functions]
    composed.__name__ = "_then_".join(names) or "identity"
    return composed


def torch_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A detached CPU numpy copy of `tensor`; half precision types become float32, which numpy lacks or handles badly.

    Example:
        >>> torch_to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype
        dtype('float32')
    """
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return tensor.numpy()


def channel_first_to_channel_last(array: np.ndarray) -> np.ndarray:
    """Moves the channel axis of [..., C, H, W] to the end: [..., H, W, C].

    Example:
        >>> channel_first_to_channel_last(np.zeros((3, 4, 5))).shape
        (4, 5, 3)
    """
    return np.moveaxis(array, -3, -1)


def _check_batched_images(tensor: torch.Tensor, function: str) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise BrickError(f"{function} needs a batch of images [B, C, H, W], got {shape}.")


def unpack_batched_tensor_to_numpy_channel_last(tensor: torch.Tensor) -> list[np.ndarray]:
    """Unpacks images [B, C, H, W] into B channel-last numpy arrays [H, W, C].

    Example:
        >>> [image.shape for image in unpack_batched_tensor_to_numpy_channel_last(torch.zeros(2, 3, 4, 5))]
        [(4, 5, 3), (4, 5, 3)]
    """
    _check_batched_images(tensor, "unpack_batched_tensor_to_numpy_channel_last")
    return list(channel_first_to_channel_last(torch_to_numpy(tensor)))


def unpack_batched_tensor_to_numpy(tensor: torch.Tensor) -> list[Any]:
    """Unpacks a batched tensor item by item: images [B, C, H, W] become channel-last arrays [H, W, C], any other
    tensor [B, ...] becomes B numpy arrays of at least one dimension (a [B] tensor gives arrays of shape [1]).

    This is how `BrickPerImageVisualization` unpacks tensors unless told otherwise.

    Example:
        >>> unpack_batched_tensor_to_numpy(torch.zeros(2, 3, 4, 5))[0].shape
        (4, 5, 3)
        >>> unpack_batched_tensor_to_numpy(torch.tensor([3, 4]))
        [array([3]), array([4])]
    """
    if tensor.ndim == 0:
        raise BrickError("unpack_batched_tensor_to_numpy needs a batched tensor [B, ...], got a 0-d tensor.")
    if tensor.ndim == 4:
        return unpack_batched_tensor_to_numpy_channel_last(tensor)
    return [np.atleast_1d(item) for item in torch_to_numpy(tensor)]


def numpy_to_pillow(image: np.ndarray) -> Image.Image:
    """A Pillow image from a channel-last array [H, W, C] or a gray array [H, W]; floats are read as [0, 1].

    Example:
        >>> numpy_to_pillow(np.ones((2, 3, 3))).getpixel((0, 0))
        (255, 255, 255)
    """
    array = float2uint8(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return Image.fromarray(array)
    if array.ndim != 3 or array.shape[-1] not in _PILLOW_MODES:
        raise BrickError(f"numpy_to_pillow needs [H, W] or [H, W, C] with C in {sorted(_PILLOW_MODES)}, got {array.shape}.")
    return Image.fromarray(array)


def unpack_batched_tensor_to_pillow_images(tensor: torch.Tensor) -> list[Image.Image]:
    """Unpacks images [B, C, H, W] (floats in [0, 1], or uint8) into B Pillow images: 1 channel gives mode "L",
    3 channels "RGB" and 4 channels "RGBA".

    Example:
        >>> images = unpack_batched_tensor_to_pillow_images(torch.ones(2, 3, 4, 5))
        >>> len(images), images[0].size, images[0].mode
        (2, (5, 4), 'RGB')
    """
    _check_batched_images(tensor, "unpack_batched_tensor_to_pillow_images")
    if tensor.shape[1] not in _PILLOW_MODES:
        raise BrickError(
            f"unpack_batched_tensor_to_pillow_images needs 1, 3 or 4 channels, got images of shape {tuple(tensor.shape)}."
        )
    return [numpy_to_pillow(image) for image in unpack_batched_tensor_to_numpy_channel_last(tensor)]


def pillow_images_to_batched_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """Stacks same-sized Pillow images into a float tensor [B, C, H, W] in [0, 1]; the inverse of
    `unpack_batched_tensor_to_pillow_images`.

    Example:
        >>> pillow_images_to_batched_tensor([Image.new("RGB", (5, 4))] * 2).shape
        torch.Size([2, 3, 4, 5])
    """
    if not images:
        raise BrickError("pillow_images_to_batched_tensor needs at least one image.")
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise BrickError(f"pillow_images_to_batched_tensor needs images of one size, got sizes {sorted(sizes)}.")
    arrays = [np.asarray(image, dtype=np.uint8) for image in images]
    batch = np.stack([array[..., None] if array.ndim == 2 else array for array in arrays])
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0


# --- the unpack functions of torchbricks 0.4.2, with its meaning ----------------------------------------------------


def batched_tensor_to_channel_last(tensor: torch.Tensor) -> torch.Tensor:
    """Moves axis 1 (the channels) of a batched tensor with 3 or more dimensions to the end; smaller ones are returned
    as they are: [B, C, H, W] -> [B, H, W, C], [B, C, H] -> [B, H, C].

    Example:
        >>> batched_tensor_to_channel_last(torch.zeros(2, 3, 4, 5)).shape
        torch.Size([2, 4, 5, 3])
    """
    if tensor.ndim < 3:
        return tensor
    return tensor.permute(0, *range(2, tensor.ndim), 1)


def batched_tensor_to_batched_np_array_channel_last(tensor: torch.Tensor) -> np.ndarray:
    """`batched_tensor_to_channel_last` as a numpy array (`torch_to_numpy`).

    Example:
        >>> batched_tensor_to_batched_np_array_channel_last(torch.zeros(2, 3, 4)).shape
        (2, 4, 3)
    """
    return torch_to_numpy(batched_tensor_to_channel_last(tensor))


def unpack_batched_array_to_arrays(array: np.ndarray) -> list[np.ndarray]:
    """Splits a batched array along its first axis; a [B] array gives B arrays of shape [1].

    Example:
        >>> unpack_batched_array_to_arrays(np.array([3, 4]))
        [array([3]), array([4])]
    """
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    return list(array)


def unpack_batched_tensor_to_numpy_format(tensor: torch.Tensor) -> list[np.ndarray]:
    """Splits a batched tensor into channel-last numpy arrays, item by item: [B, C, H, W] gives B arrays [H, W, C],
    [B, C, H] gives [H, C], [B, C] gives [C] and [B] gives [1].

    Unlike `unpack_batched_tensor_to_numpy` (the default of `BrickPerImageVisualization`), 3-dimensional tensors
    are made channel last too, as torchbricks 0.4.2 did: a batch of masks [B, H, W] gives [W, H].

    Example:
        >>> [item.shape for item in unpack_batched_tensor_to_numpy_format(torch.zeros(2, 3, 4, 5))]
        [(4, 5, 3), (4, 5, 3)]
    """
    return unpack_batched_array_to_arrays(batched_tensor_to_batched_np_array_channel_last(tensor))


def unpack_batched_tensor_to_torchvision_format(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Splits a batched tensor into its items, kept as tensors: [B, C, H, W] gives B tensors [C, H, W].

    Example:
        >>> [item.shape for item in unpack_batched_tensor_to_torchvision_format(torch.zeros(2, 3, 4))]
        [torch.Size([3, 4]), torch.Size([3, 4])]
    """
    return list(tensor)
