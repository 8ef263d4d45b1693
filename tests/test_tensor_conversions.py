"""The tensor conversions, imported from their public path `torchbricks.tensor_conversions` as users do."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from torchbricks.errors import BrickError
from torchbricks.tensor_conversions import (
    channel_first_to_channel_last,
    float2uint8,
    function_composer,
    numpy_to_pillow,
    pillow_images_to_batched_tensor,
    torch_to_numpy,
    unpack_batched_tensor_to_numpy,
    unpack_batched_tensor_to_numpy_channel_last,
    unpack_batched_tensor_to_pillow_images,
)


def test_float2uint8_scales_rounds_and_clips() -> None:
    result = float2uint8(np.array([-1.0, 0.0, 0.2, 0.5, 1.0, 3.0], dtype=np.float32))
    assert result.dtype == np.uint8
    assert result.tolist() == [0, 0, 51, 128, 255, 255]


def test_float2uint8_accepts_tensors_and_passes_uint8_through() -> None:
    assert float2uint8(torch.tensor([0.0, 1.0])).tolist() == [0, 255]
    uint8 = np.array([3, 200], dtype=np.uint8)
    assert float2uint8(uint8) is uint8


def test_function_composer_applies_functions_left_to_right() -> None:
    composed = function_composer(lambda x: x + 1, lambda x: x * 10)
    assert composed(1) == 20


def test_function_composer_of_torch_to_numpy_and_list_gives_one_int64_per_image() -> None:
    values = function_composer(torch_to_numpy, list)(torch.tensor([0, 1], dtype=torch.int64))
    assert values == [0, 1]
    assert all(isinstance(value, np.int64) for value in values)


def test_function_composer_rejects_non_callables() -> None:
    with pytest.raises(BrickError, match="callables only"):
        function_composer(torch_to_numpy, 3)  # type: ignore[arg-type]


def test_function_composer_of_no_function_is_the_identity_as_in_042() -> None:
    value = object()
    assert function_composer()(value) is value


def test_torch_to_numpy_detaches_and_widens_half_precision() -> None:
    tensor = torch.ones(2, requires_grad=True, dtype=torch.float16)
    array = torch_to_numpy(tensor)
    assert array.dtype == np.float32
    assert array.tolist() == [1.0, 1.0]


def test_unpack_images_to_channel_last_keeps_pixel_values() -> None:
    batch = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    images = unpack_batched_tensor_to_numpy_channel_last(batch)
    assert len(images) == 2
    assert images[1].shape == (4, 5, 3)
    assert images[1][2, 3, 1] == batch[1, 1, 2, 3].item()
    np.testing.assert_array_equal(channel_first_to_channel_last(batch[0].numpy()), images[0])


def test_unpack_batched_tensor_to_numpy_gives_per_item_arrays_of_at_least_one_dimension() -> None:
    assert [item.tolist() for item in unpack_batched_tensor_to_numpy(torch.tensor([4, 5]))] == [[4], [5]]
    points = unpack_batched_tensor_to_numpy(torch.zeros(3, 7, 2))
    assert [item.shape for item in points] == [(7, 2)] * 3
    with pytest.raises(BrickError, match="batched tensor"):
        unpack_batched_tensor_to_numpy(torch.tensor(1.0))


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_unpack_to_pillow_images_picks_the_mode_from_the_channels(channels: int, mode: str) -> None:
    batch = torch.zeros(2, channels, 4, 6)
    batch[1, 0, 1, 2] = 1.0
    images = unpack_batched_tensor_to_pillow_images(batch)
    assert [image.mode for image in images] == [mode, mode]
    assert images[0].size == (6, 4)
    first = images[1].getpixel((2, 1))
    assert (first if isinstance(first, int) else first[0]) == 255


def test_unpack_to_pillow_images_rejects_wrong_shapes() -> None:
    with pytest.raises(BrickError, match=r"\[B, C, H, W\], got \(3, 4, 5\)"):
        unpack_batched_tensor_to_pillow_images(torch.zeros(3, 4, 5))
    with pytest.raises(BrickError, match="1, 3 or 4 channels"):
        unpack_batched_tensor_to_pillow_images(torch.zeros(1, 2, 4, 5))


def test_pillow_images_round_trip_through_a_batched_tensor() -> None:
    batch = torch.rand(2, 3, 5, 7)
    restored = pillow_images_to_batched_tensor(unpack_batched_tensor_to_pillow_images(batch))
    assert restored.shape == batch.shape
    assert torch.allclose(restored, batch, atol=1 / 255)


def test_pillow_images_to_batched_tensor_rejects_mixed_sizes() -> None:
    with pytest.raises(BrickError, match="one size"):
        pillow_images_to_batched_tensor([Image.new("RGB", (2, 2)), Image.new("RGB", (3, 2))])


def test_numpy_to_pillow_reads_gray_and_rejects_two_channels() -> None:
    assert numpy_to_pillow(np.ones((2, 3, 1))).mode == "L"
    with pytest.raises(BrickError, match="C in"):
        numpy_to_pillow(np.ones((2, 3, 2)))


def test_the_042_unpack_functions_split_items_channel_last_as_numpy_does() -> None:
    from torchbricks.tensor_conversions import (
        batched_tensor_to_batched_np_array_channel_last,
        batched_tensor_to_channel_last,
        unpack_batched_array_to_arrays,
        unpack_batched_tensor_to_numpy_format,
        unpack_batched_tensor_to_torchvision_format,
    )

    images = torch.rand(2, 3, 4, 5)
    reference = np.transpose(images.numpy(), (0, 2, 3, 1))  # numpy's own axes reorder
    np.testing.assert_array_equal(batched_tensor_to_channel_last(images).numpy(), reference)
    np.testing.assert_array_equal(batched_tensor_to_batched_np_array_channel_last(images), reference)
    unpacked = unpack_batched_tensor_to_numpy_format(images)
    assert len(unpacked) == 2
    np.testing.assert_array_equal(unpacked[1], reference[1])
    sequences = torch.rand(2, 3, 4)  # [B, C, H] -> [H, C], as 0.4.2 did
    np.testing.assert_array_equal(unpack_batched_tensor_to_numpy_format(sequences)[0], sequences.numpy()[0].T)
    assert [item.shape for item in unpack_batched_tensor_to_numpy_format(torch.rand(2, 3))] == [(3,), (3,)]
    assert [item.tolist() for item in unpack_batched_tensor_to_numpy_format(torch.tensor([7, 8]))] == [[7], [8]]
    assert batched_tensor_to_channel_last(torch.zeros(2, 3)).shape == (2, 3)
    assert [item.tolist() for item in unpack_batched_array_to_arrays(np.array([1, 2]))] == [[1], [2]]
    items = unpack_batched_tensor_to_torchvision_format(images)
    assert len(items) == 2
    assert all(isinstance(item, torch.Tensor) for item in items)
    torch.testing.assert_close(items[1], images[1])


@pytest.mark.slow
def test_importing_the_public_path_imports_none_of_the_other_bricks() -> None:
    heavy = ("torchbricks.bricks", "torchbricks.bag_of_bricks", "torchbricks.brick_collection", "torchmetrics", "lightning")
    code = f"import sys, torchbricks.tensor_conversions; print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert ast.literal_eval(result.stdout.strip()) == []


def test_float2uint8_reads_integers_of_0_and_1_and_booleans_as_the_range() -> None:
    assert float2uint8(np.array([0, 1])).tolist() == [0, 255]
    assert float2uint8(torch.tensor([False, True])).tolist() == [0, 255]


@pytest.mark.parametrize("values", [torch.tensor([0, 81, 240]), np.array([0, 128, 255], dtype=np.int32), np.array([-1, 0])])
def test_float2uint8_refuses_integer_pixel_values_it_would_clip_to_white(values: Any) -> None:
    with pytest.raises(BrickError, match=r"float2uint8 maps values in \[0, 1\].*convert them first"):
        float2uint8(values)


def test_integer_images_are_refused_rather_than_drawn_white() -> None:
    with pytest.raises(BrickError, match="int64 values from 0 to 200"):
        unpack_batched_tensor_to_pillow_images(
            torch.full((1, 3, 2, 2), 200, dtype=torch.int64).index_fill_(3, torch.tensor([0]), 0)
        )
