"""Conversions between batched tensors and per-image data (numpy arrays, Pillow images) for drawing and saving.

The public path of the helpers the visualization bricks use; they live beside them, in
`torchbricks.bag_of_bricks._tensor_conversions`.

Example:
    >>> import torch
    >>> [image.shape for image in unpack_batched_tensor_to_numpy_channel_last(torch.zeros(2, 3, 4, 5))]
    [(4, 5, 3), (4, 5, 3)]
"""

from __future__ import annotations

from torchbricks.bag_of_bricks._tensor_conversions import (
    batched_tensor_to_batched_np_array_channel_last,
    batched_tensor_to_channel_last,
    channel_first_to_channel_last,
    float2uint8,
    function_composer,
    numpy_to_pillow,
    pillow_images_to_batched_tensor,
    torch_to_numpy,
    unpack_batched_array_to_arrays,
    unpack_batched_tensor_to_numpy,
    unpack_batched_tensor_to_numpy_channel_last,
    unpack_batched_tensor_to_numpy_format,
    unpack_batched_tensor_to_pillow_images,
    unpack_batched_tensor_to_torchvision_format,
)

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
