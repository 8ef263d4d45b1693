"""`BrickBackend` on hand-made collections (results at the original size) and `resize_mask_nearest` against torch."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickNotTrainable
from torchbricks.errors import BrickError, ConfigError
from torchbricks.predict import BrickBackend, resize_mask_nearest
from torchbricks.trained_experiment import TrainedExperiment


class MeanColour(nn.Module):
    """Classification probabilities from the mean of each colour channel (softmax over R, G, B)."""

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = raw.mean(dim=(2, 3)).softmax(dim=1)
        return probabilities, probabilities.argmax(dim=1)


class RedHalf(nn.Module):
    """Segmentation: class 1 where the red channel is above one half."""

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        foreground = (raw[:, 0] > 0.5).float()
        probabilities = torch.stack([1 - foreground, foreground], dim=1)
        return probabilities, probabilities.argmax(dim=1)


def _experiment(folder: Path, bricks: dict, input_size: int | None = 16) -> TrainedExperiment:
    description = {"image_size": None if input_size is None else [input_size, input_size], "class_names": ["r", "g", "b"]}
    return TrainedExperiment(folder, None, description, BrickCollection(bricks).eval())


def _classifier(folder: Path, input_size: int | None = 16) -> TrainedExperiment:
    brick = BrickNotTrainable(MeanColour(), input_names=["raw"], output_names=["./probabilities", "./class_prediction"])
    return _experiment(folder, {"colour": {"classify": brick}}, input_size)


def test_classification_probabilities_are_the_models_on_the_resized_image(tmp_path: Path) -> None:
    image = np.zeros((40, 30, 3), dtype=np.uint8)
    image[..., 1] = 200
    (result,) = BrickBackend(_classifier(tmp_path)).predict([image])

    expected = torch.tensor([0.0, 200 / 255, 0.0]).softmax(dim=0).numpy()
    assert result["colour"]["kind"] == "classification"
    np.testing.assert_allclose(result["colour"]["probabilities"], expected, atol=1e-6)


def test_masks_come_back_at_each_images_own_size(tmp_path: Path) -> None:
    brick = BrickNotTrainable(RedHalf(), input_names=["raw"], output_names=["./probabilities", "./mask"])
    backend = BrickBackend(_experiment(tmp_path, {"seg": {"segment": brick}}), batch_size=1)
    left_red = np.zeros((20, 40, 3), dtype=np.uint8)
    left_red[:, :20, 0] = 255
    results = backend.predict([left_red, np.zeros((8, 8, 3), dtype=np.uint8)])

    assert results[0]["seg"]["mask"].shape == (20, 40)
    assert results[0]["seg"]["mask"][:, :19].all()
    assert not results[0]["seg"]["mask"][:, 21:].any()
    assert results[1]["seg"]["mask"].shape == (8, 8)


def test_tiled_classification_averages_the_tiles(tmp_path: Path) -> None:
    image = np.zeros((16, 32, 3), dtype=np.uint8)
    image[:, 16:, 2] = 255  # the right tile is blue
    (result,) = BrickBackend(_classifier(tmp_path), tile=16, overlap=0.0).predict([image])

    left = torch.zeros(3).softmax(dim=0)
    right = torch.tensor([0.0, 0.0, 1.0]).softmax(dim=0)
    np.testing.assert_allclose(result["colour"]["probabilities"], ((left + right) / 2).numpy(), atol=1e-6)


class ConvColour(nn.Module):
    """Classification from a convolution, to see the memory order its weights run in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, kernel_size=3, padding=1)

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = self.conv(raw).mean(dim=(2, 3)).softmax(dim=1)
        return probabilities, probabilities.argmax(dim=1)


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_convolutions_run_in_the_memory_order_the_job_trained_and_tested_with(tmp_path: Path, channels_last: bool) -> None:
    torch.manual_seed(0)
    model = ConvColour()
    expected_model = ConvColour()
    expected_model.load_state_dict(model.state_dict())
    brick = BrickNotTrainable(model, input_names=["raw"], output_names=["./probabilities", "./class_prediction"])
    description = {"image_size": [16, 16], "class_names": ["r", "g", "b"]}
    experiment = TrainedExperiment(
        tmp_path, {"channels_last": channels_last}, description, BrickCollection({"colour": {"classify": brick}}).eval()
    )
    image = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)

    (result,) = BrickBackend(experiment).predict([image])

    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    expected, _ = expected_model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0)
    np.testing.assert_allclose(result["colour"]["probabilities"], expected[0].detach().numpy(), atol=1e-6)


def test_the_backend_refuses_an_experiment_without_size_or_head_and_a_bad_batch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no image_size in experiment\.json"):
        BrickBackend(_classifier(tmp_path, input_size=None))
    with pytest.raises(BrickError, match="batch size must be 1 or more, got 0"):
        BrickBackend(_classifier(tmp_path), batch_size=0)
    no_head = {"features": BrickNotTrainable(nn.Identity(), input_names=["raw"], output_names=["features"])}
    with pytest.raises(ConfigError, match=r"has no task head .* its inference outputs are \['features'\]"):
        BrickBackend(_experiment(tmp_path, no_head))


def test_an_overlap_without_a_tile_is_refused_naming_both(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"BrickBackend: overlap=0\.5 needs tile=N .* the overlap would be ignored"):
        BrickBackend(_classifier(tmp_path), overlap=0.5)
    image = np.zeros((16, 32, 3), dtype=np.uint8)
    image[:, 16:, 2] = 255
    defaulted = BrickBackend(_classifier(tmp_path), tile=16).predict([image])[0]["colour"]["probabilities"]
    explicit = BrickBackend(_classifier(tmp_path), tile=16, overlap=0.2).predict([image])[0]["colour"]["probabilities"]
    np.testing.assert_array_equal(defaulted, explicit)


@pytest.mark.parametrize("size", [(3, 5), (6, 4), (7, 7), (16, 9)])
def test_resize_mask_nearest_is_torch_nearest(size: tuple[int, int]) -> None:
    mask = torch.randint(0, 5, (6, 4), generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long().numpy()
    np.testing.assert_array_equal(resize_mask_nearest(mask.numpy(), *size), expected)


class CentreSquare(nn.Module):
    """Detection: one 8 x 8 box (in input pixels) around the centre of the bright pixels, as a detector trained on
    unstretched tiles reports an object of the size it learned."""

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bright = raw.mean(dim=1) > 0.5  # [B, H, W]
        rows = torch.arange(raw.shape[2], dtype=torch.float32)[None, :, None]
        columns = torch.arange(raw.shape[3], dtype=torch.float32)[None, None, :]
        count = bright.sum(dim=(1, 2)).clamp(min=1)
        y, x = (bright * rows).sum(dim=(1, 2)) / count + 0.5, (bright * columns).sum(dim=(1, 2)) / count + 0.5
        boxes = torch.stack([x - 4, y - 4, x + 4, y + 4], dim=1)[:, None]
        found = bright.flatten(1).any(dim=1)
        return boxes, found.float()[:, None], torch.where(found, 0, -1).long()[:, None]


def test_a_tile_of_an_image_side_shorter_than_the_tile_is_padded_not_stretched(tmp_path: Path) -> None:
    brick = BrickNotTrainable(CentreSquare(), input_names=["raw"], output_names=["./boxes", "./scores", "./labels"])
    backend = BrickBackend(_experiment(tmp_path, {"det": {"find": brick}}, input_size=32), tile=32, overlap=0.0)
    strip = np.zeros((20, 64, 3), dtype=np.uint8)  # 20 px tall, tiles of 32: as training pads such a tile
    strip[6:14, 40:48] = 255

    (result,) = backend.predict([strip])

    np.testing.assert_allclose(result["det"]["boxes"], [[40.0, 6.0, 48.0, 14.0]], atol=1e-4)  # stretched: 5 px tall


def test_a_tiled_mask_of_a_short_image_leaves_the_padding_out_and_keeps_the_image_size(tmp_path: Path) -> None:
    brick = BrickNotTrainable(RedHalf(), input_names=["raw"], output_names=["./probabilities", "./mask"])
    backend = BrickBackend(_experiment(tmp_path, {"seg": {"segment": brick}}, input_size=32), tile=32, overlap=0.0)
    strip = np.zeros((20, 64, 3), dtype=np.uint8)
    strip[:, 10:50, 0] = 255

    (result,) = backend.predict([strip])

    expected = np.zeros((20, 64), dtype=np.int64)
    expected[:, 10:50] = 1
    np.testing.assert_array_equal(result["seg"]["mask"], expected)


@pytest.mark.parametrize(
    ("image", "found"),
    [
        (np.full((16, 16, 3), 0.8, np.float32), r"float32 array \(16, 16, 3\)"),  # read as 0.8 / 255: black
        (np.zeros((16, 16), np.uint8), r"uint8 array \(16, 16\)"),
        (np.zeros((16, 16, 4), np.uint8), r"uint8 array \(16, 16, 4\)"),
    ],
)
def test_predict_refuses_an_image_that_is_not_uint8_rgb_naming_it(tmp_path: Path, image: np.ndarray, found: str) -> None:
    backend = BrickBackend(_classifier(tmp_path))

    with pytest.raises(BrickError, match=rf"BrickBackend\.predict: image 1 must be a uint8 RGB array \[H, W, 3\], got a {found}"):
        backend.predict([np.zeros((8, 8, 3), np.uint8), image])


class AliveOutputs(nn.Module):
    """RedHalf's segmentation, noting at each call how many of its earlier calls' probabilities are still alive."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[weakref.ref[np.ndarray]] = []
        self.alive: list[int] = []

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.alive.append(sum(output() is not None for output in self.outputs))
        foreground = (raw[:, 0] > 0.5).float().numpy()
        memory = np.stack([1 - foreground, foreground], axis=1)  # its memory, which the tensor returned holds
        self.outputs.append(weakref.ref(memory))
        probabilities = torch.from_numpy(memory)
        return probabilities, probabilities.argmax(dim=1)


def test_a_tiled_mask_is_merged_batch_by_batch_without_keeping_every_windows_probabilities(tmp_path: Path) -> None:
    # 20 tiles in batches of 2: each batch's probabilities are added into the image's sums and let go, so while a batch
    # is predicted at most the one before it is still held (by the last window merged), not all of them.
    module = AliveOutputs()
    brick = BrickNotTrainable(module, input_names=["raw"], output_names=["./probabilities", "./mask"])
    backend = BrickBackend(_experiment(tmp_path, {"seg": {"segment": brick}}), batch_size=2, tile=16, overlap=0.0)
    image = np.zeros((16, 16 * 20, 3), dtype=np.uint8)
    image[:, ::3, 0] = 255

    (result,) = backend.predict([image])

    expected = np.zeros((16, 16 * 20), dtype=np.int64)
    expected[:, ::3] = 1
    np.testing.assert_array_equal(result["seg"]["mask"], expected)
    assert len(module.alive) == 1 + 10  # the check of the experiment at the start, then 10 batches
    assert max(module.alive) <= 1
