"""Training on large images: a split's images cut into overlapping tiles, with their boxes and masks.

`TiledDataset` wraps a reader of boxes or masks (`CocoDataset`, `SegmentationFolderDataset`) and serves one sample
per tile of `torchbricks.datasets.tiling.tile_windows`; the transform (resize to the model's input, augmentations,
float image) runs on each tile, after the cut. The rules:

- Boxes: a box is kept in a tile when at least `min_box_visibility` (half) of it lies inside the tile, or, for an
  object longer than the tile on a side, of the most of it the tile can show (the tile's side there: a pole longer
  than the tile that crosses it whole is kept); a kept box is clipped to the tile.
  With the default overlap of 0.2, an object smaller than a fifth of a tile lies whole in some tile. An object the
  tile's border cuts below that share stays in the tile as an ignored region (label `-2 - class`, as a VOC difficult
  object or a COCO crowd): the loss neither learns it as background nor as an object, and a detection of it is
  not a false positive; ignored objects stay ignored wherever any of them shows.
- Masks are cut like the image.
- A side of the image shorter than the tile gives a window of the whole side, padded (image 0, mask 255, ignored
  by the losses and metrics) to the tile, so every tile keeps the image's scale. Each tile says which part of it
  shows the image (`image_extent`: its (height, width) at the input's scale), and the packaged detection heads cut
  their predicted boxes to it for the mAP, as `predict` cuts them to the image: a box wholly in the padding, which
  `predict` never writes, is not scored. Training tiles (`jitter`) give the whole input, as their augmentations
  may have moved the padding.
- Training (`jitter=True`) takes every tile once per epoch, each window shifted at random by up to half the
  spacing of its neighbours: the epoch's length stays the same and the whole image is seen, but objects are cut
  differently each epoch. Validation and test take the fixed windows.
- Each image is decoded once for all its tiles: the last `images_per_group` decoded images are kept, and
  `train_sampler()` shuffles the tiles a few images at a time, so an image is decoded once per epoch (once per
  loader process that serves its tiles).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._extras import require
from torchbricks.datasets.tiling import tile_windows
from torchbricks.errors import BrickError

__all__ = ["IMAGE_EXTENT", "MIN_BOX_VISIBILITY", "TileGroupSampler", "TiledDataset", "crop_sample"]

IMAGE_EXTENT = "image_extent"
"""The name under which a tile's sample gives the (height, width) of the part of its input that shows the image
(float32 [2]): less than the input where the tile is padded past a short side of the image."""

MIN_BOX_VISIBILITY = 0.5
"""Fraction of a box (of the most of it a tile can show, for a box longer than the tile on a side) that must lie inside
a tile for the box to be kept."""
IMAGES_PER_GROUP = 4
"""Images whose tiles a training epoch mixes at a time, and the decoded images kept per loader process."""
_TILEABLE = ("image_size_at", "load_sample", "named_sample")


def crop_sample(
    sample: dict[str, Any], window: tuple[int, int, int, int], tile_size: int, min_box_visibility: float = MIN_BOX_VISIBILITY
) -> dict[str, Any]:
    """The tile `window` (x_min, y_min, x_max, y_max) of a decoded sample, padded to `tile_size` on a short side.

    Args:
        sample: `{"image": Image [C, H, W]}` with optional `"boxes"` (BoundingBoxes, XYXY) and `"labels"` [N], and
            `"mask"` (Mask [H, W]), as the readers' `load_sample` gives.
        window: The tile's pixels in the image.
        tile_size: Side of the tile; the cut is padded to it at its right and bottom.
        min_box_visibility: A box keeps its label when this fraction of it lies inside the window (of the most of it
            the window can show, the window's side on a side longer than the window); a box with less inside is kept
            as an ignored region (`-2 - label`).

    Raises:
        BrickError: The sample has a key that cannot be cut.

    Example:
        >>> from torchvision import tv_tensors
        >>> boxes = tv_tensors.BoundingBoxes([[10, 10, 30, 30], [50, 10, 70, 30]], format="XYXY", canvas_size=(100, 100))
        >>> sample = {"image": tv_tensors.Image(torch.zeros(3, 100, 100)), "boxes": boxes, "labels": torch.tensor([1, 2])}
        >>> tile = crop_sample(sample, (15, 0, 55, 40), tile_size=40)  # 3/4 of the first box inside, 1/4 of the second
        >>> tile["boxes"].tolist(), tile["labels"].tolist()  # the second, cut, is ignored there: -2 - 2
        ([[0.0, 10.0, 15.0, 30.0], [35.0, 10.0, 40.0, 30.0]], [1, -4])
    """
    tv_tensors = require("torchvision.tv_tensors", "vision")
    unknown = sorted(set(sample) - {"image", "boxes", "labels", "mask"})
    if unknown:
        raise BrickError(f"Cannot cut sample keys {unknown} into tiles; a tile has 'image', 'boxes', 'labels' and 'mask'.")
    x_min, y_min, x_max, y_max = window
    padding = (0, tile_size - (x_max - x_min), 0, tile_size - (y_max - y_min))  # (left, right, top, bottom)
    tile: dict[str, Any] = {}
    image = sample["image"].as_subclass(torch.Tensor)[..., y_min:y_max, x_min:x_max]
    tile["image"] = tv_tensors.Image(torch.nn.functional.pad(image, padding, value=0))
    if "mask" in sample:
        mask = sample["mask"].as_subclass(torch.Tensor)[..., y_min:y_max, x_min:x_max]
        tile["mask"] = tv_tensors.Mask(torch.nn.functional.pad(mask, padding, value=IGNORE_INDEX))
    if "boxes" in sample:
        boxes = sample["boxes"].as_subclass(torch.Tensor).float()
        clipped = torch.stack(
            [
                boxes[:, 0].clamp(x_min, x_max) - x_min,
                boxes[:, 1].clamp(y_min, y_max) - y_min,
                boxes[:, 2].clamp(x_min, x_max) - x_min,
                boxes[:, 3].clamp(y_min, y_max) - y_min,
            ],
            dim=1,
        )
        # the most of a box the window can show: its sides, each at most the window's (an object longer than the
        # window on one side only, a pole or a road, shows at most its width times the window's height)
        showable = (boxes[:, 2] - boxes[:, 0]).clamp(max=x_max - x_min) * (boxes[:, 3] - boxes[:, 1]).clamp(max=y_max - y_min)
        visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        whole_enough = (visible > 0) & (visible >= min_box_visibility * showable)
        keep = visible > 0 if "labels" in sample else whole_enough
        tile["boxes"] = tv_tensors.BoundingBoxes(clipped[keep], format="XYXY", canvas_size=(tile_size, tile_size))
        if "labels" in sample:
            labels = sample["labels"]
            ignored = torch.where(labels >= 0, -2 - labels, labels)  # cut objects: regions evaluation ignores
            tile["labels"] = torch.where(whole_enough, labels, ignored)[keep]
    elif "labels" in sample:
        tile["labels"] = sample["labels"]
    return tile


class TiledDataset(Dataset[dict[str, Any]]):
    """The tiles of every image of a reader of boxes or masks, as the reader's named samples with `IMAGE_EXTENT`, the
    part of the tile that shows the image (see the module).

    Args:
        dataset: A reader with `image_size_at(index)` ((height, width) without decoding), `load_sample(index)` (the
            decoded sample before any transform) and `named_sample(sample)`: `CocoDataset` or
            `SegmentationFolderDataset`. Its own transform is not used.
        tile_size: Side of a tile in pixels.
        overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).
        transform: Applied to each tile (`torchbricks.datasets.transforms.create_transform`: the resize to the
            model's input, augmentations, float image).
        jitter: Shift each window at random by up to half the spacing of its neighbours (training).
        min_box_visibility: See `crop_sample`.
        images_per_group: Decoded images kept (per loader process), and images mixed by `train_sampler`.

    Raises:
        BrickError: The reader cannot give untransformed samples, or the tile size or overlap is out of range.
    """

    def __init__(
        self,
        dataset: Any,
        tile_size: int,
        overlap: float = 0.2,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        jitter: bool = False,
        min_box_visibility: float = MIN_BOX_VISIBILITY,
        images_per_group: int = IMAGES_PER_GROUP,
    ) -> None:
        missing = [name for name in _TILEABLE if not callable(getattr(dataset, name, None))]
        if missing:
            raise BrickError(
                f"{type(dataset).__name__} cannot be tiled: a tiled reader needs the methods {list(_TILEABLE)}, "
                f"and it lacks {missing}."
            )
        self.dataset = dataset
        self.tile_size = tile_size
        self.overlap = overlap
        self.transform = transform
        self.jitter = jitter
        self.min_box_visibility = min_box_visibility
        self.images_per_group = max(1, images_per_group)
        self.tiles: list[tuple[int, tuple[int, int, int, int]]] = []
        self.tile_counts: list[int] = []
        self.image_sizes: list[tuple[int, int]] = []
        self._spreads: list[tuple[int, int]] = []
        for index in range(len(dataset)):
            height, width = dataset.image_size_at(index)
            windows = tile_windows(height, width, tile_size, overlap)
            self.tiles.extend((index, window) for window in windows)
            self.tile_counts.append(len(windows))
            self.image_sizes.append((height, width))
            self._spreads.append((_half_spacing(sorted({w[0] for w in windows})), _half_spacing(sorted({w[1] for w in windows}))))
        self._decoded: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_index, window = self.tiles[index]
        if self.jitter:
            window = self._jittered(image_index, window)
        tile = crop_sample(self._load(image_index), window, self.tile_size, self.min_box_visibility)
        if self.transform is not None:
            tile = self.transform(tile)
        extent = torch.tensor(tile["image"].shape[-2:], dtype=torch.float32)  # (height, width) of the input
        if not self.jitter:
            # the window's share of the tile, at the input's scale; jittered (training) tiles keep the whole input,
            # as their augmentations may have flipped or turned the padding to another side
            x_min, y_min, x_max, y_max = window
            extent = extent * torch.tensor([y_max - y_min, x_max - x_min]) / self.tile_size
        return {**self.dataset.named_sample(tile), IMAGE_EXTENT: extent}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_decoded"] = OrderedDict()  # loader processes decode their own images
        return state

    def train_sampler(self) -> TileGroupSampler:
        """Every tile once per epoch in random order, `images_per_group` images at a time (see `TileGroupSampler`)."""
        return TileGroupSampler(self.tile_counts, self.images_per_group)

    def _load(self, image_index: int) -> dict[str, Any]:
        sample = self._decoded.get(image_index)
        if sample is None:
            sample = self.dataset.load_sample(image_index)
            self._decoded[image_index] = sample
            while len(self._decoded) > self.images_per_group:
                self._decoded.popitem(last=False)
        else:
            self._decoded.move_to_end(image_index)
        return sample

    def _jittered(self, image_index: int, window: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        height, width = self.image_sizes[image_index]
        spread_x, spread_y = self._spreads[image_index]
        x_min, y_min, x_max, y_max = window
        shift = torch.randint(-spread_x, spread_x + 1, ()).item() if spread_x else 0
        x = min(max(x_min + int(shift), 0), width - (x_max - x_min))
        shift = torch.randint(-spread_y, spread_y + 1, ()).item() if spread_y else 0
        y = min(max(y_min + int(shift), 0), height - (y_max - y_min))
        return (x, y, x + x_max - x_min, y + y_max - y_min)


def _half_spacing(starts: Sequence[int]) -> int:
    return (starts[1] - starts[0]) // 2 if len(starts) > 1 else 0


class TileGroupSampler(Sampler[int]):
    """Every tile index once per epoch: the images in random order, `images_per_group` at a time, the tiles of a
    group shuffled together, so a loader that keeps the group's decoded images decodes each image once.

    The order is drawn from torch's random state when iteration starts (as `RandomSampler` does), so a seeded run
    repeats it.

    Args:
        tile_counts: Tiles of each image; image `i`'s tiles are the indices after those of images `0..i-1`.
        images_per_group: Images whose tiles are mixed together.

    Example:
        >>> sampler = TileGroupSampler([2, 3, 1], images_per_group=2)
        >>> sorted(sampler), len(sampler)
        ([0, 1, 2, 3, 4, 5], 6)
    """

    def __init__(self, tile_counts: Sequence[int], images_per_group: int = IMAGES_PER_GROUP) -> None:
        self.tile_counts = list(tile_counts)
        self.images_per_group = max(1, images_per_group)
        self._starts = [0, *itertools.accumulate(self.tile_counts)][:-1]

    def __len__(self) -> int:
        return sum(self.tile_counts)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        images = torch.randperm(len(self.tile_counts), generator=generator).tolist()
        for first in range(0, len(images), self.images_per_group):
            group = images[first : first + self.images_per_group]
            indices = torch.cat(
                [torch.arange(self._starts[image], self._starts[image] + self.tile_counts[image]) for image in group]
            )
            yield from indices[torch.randperm(len(indices), generator=generator)].tolist()
