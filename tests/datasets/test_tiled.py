"""Tiles of large images with their boxes and masks, checked against pixel masks drawn independently of the cut."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors

from torchbricks.datasets.readers import CocoDataset, SegmentationFolderDataset
from torchbricks.datasets.tiled import TiledDataset, TileGroupSampler, crop_sample
from torchbricks.datasets.tiling import tile_windows
from torchbricks.datasets.transforms import collate_padded
from torchbricks.errors import BrickError

HEIGHT, WIDTH = 250, 300
# Whole-pixel boxes (x_min, y_min, x_max, y_max) across the borders of 100-pixel tiles: inside one tile, split
# evenly, split 30/70, over a corner, and one larger than a tile.
BOXES = [(10, 10, 40, 40), (80, 20, 120, 60), (90, 120, 190, 140), (170, 170, 230, 230), (20, 100, 260, 240)]
LABELS = [0, 1, 2, 0, 1]


def _reference_tile_boxes(window: tuple[int, int, int, int], min_visibility: float = 0.5) -> tuple[list[list[float]], list[int]]:
    """Each box as a pixel mask, as the bounds of its pixels in the window: with its label when enough of them are
    there, as an ignored region (-2 - label) when fewer are, left out when none is."""
    x_min, y_min, x_max, y_max = window
    boxes, labels = [], []
    for (bx0, by0, bx1, by1), label in zip(BOXES, LABELS, strict=True):
        pixels = np.zeros((HEIGHT, WIDTH), dtype=bool)
        pixels[by0:by1, bx0:bx1] = True
        inside = pixels[y_min:y_max, x_min:x_max]
        # the most pixels of the object a window can show: its columns and rows, each at most the window's
        showable = min(pixels.any(axis=0).sum(), x_max - x_min) * min(pixels.any(axis=1).sum(), y_max - y_min)
        if not inside.any():
            continue
        rows, columns = np.nonzero(inside)
        boxes.append([float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1)])
        enough = inside.sum() >= min_visibility * showable
        labels.append(label if enough or label < 0 else -2 - label)
    return boxes, labels


def _sample(mask: np.ndarray | None = None) -> dict[str, Any]:
    image = torch.arange(3 * HEIGHT * WIDTH, dtype=torch.int64).remainder(251).to(torch.uint8).view(3, HEIGHT, WIDTH)
    sample = {
        "image": tv_tensors.Image(image),
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(BOXES, dtype=torch.float32), format="XYXY", canvas_size=(HEIGHT, WIDTH)),
        "labels": torch.tensor(LABELS),
    }
    if mask is not None:
        sample["mask"] = tv_tensors.Mask(torch.from_numpy(mask))
    return sample


@pytest.mark.parametrize("overlap", [0.0, 0.2])
def test_boxes_land_in_their_tiles_clipped_to_tile_coordinates(overlap: float) -> None:
    sample = _sample()

    for window in tile_windows(HEIGHT, WIDTH, 100, overlap):
        tile = crop_sample(sample, window, tile_size=100)
        expected_boxes, expected_labels = _reference_tile_boxes(window)

        assert tile["boxes"].tolist() == expected_boxes, window
        assert tile["labels"].tolist() == expected_labels, window
        assert tuple(tile["boxes"].canvas_size) == (100, 100)
        x_min, y_min, x_max, y_max = window
        assert torch.equal(tile["image"], sample["image"][:, y_min:y_max, x_min:x_max])


def crowd_tiles(sample: dict[str, Any]) -> tuple[list[int], list[int]]:
    """The labels of the left and the right tile of a 200 px wide sample."""
    left, right = (crop_sample(sample, window, tile_size=100) for window in ((0, 0, 100, 100), (100, 0, 200, 100)))
    return left["labels"].tolist(), right["labels"].tolist()


def test_a_box_mostly_outside_a_tile_is_ignored_there_and_kept_in_the_tile_holding_most_of_it() -> None:
    box = {"image": tv_tensors.Image(torch.zeros(3, 100, 200, dtype=torch.uint8)), "labels": torch.tensor([4])}
    box["boxes"] = tv_tensors.BoundingBoxes([[70.0, 10.0, 170.0, 30.0]], format="XYXY", canvas_size=(100, 200))

    left = crop_sample(box, (0, 0, 100, 100), tile_size=100)  # 30 % of the box
    right = crop_sample(box, (100, 0, 200, 100), tile_size=100)  # 70 % of it

    assert left["labels"].tolist() == [-2 - 4]  # a detection of the cut object is not a false positive there
    crowd = {**box, "labels": torch.tensor([-2 - 4])}  # an ignored region (a crowd) stays ignored wherever it shows
    assert crowd_tiles(crowd) == ([-2 - 4], [-2 - 4])
    assert left["boxes"].tolist() == [[70.0, 10.0, 100.0, 30.0]]
    assert right["boxes"].tolist() == [[0.0, 10.0, 70.0, 30.0]]
    assert right["labels"].tolist() == [4]


def test_an_object_larger_than_the_tile_is_kept_as_the_tile() -> None:
    sample = _sample()

    tile = crop_sample(sample, (100, 150, 200, 250), tile_size=100)

    assert [0.0, 0.0, 100.0, 90.0] in tile["boxes"].tolist()  # BOXES[4] covers 90 % of this tile


def test_an_object_longer_than_the_tile_on_one_side_is_kept_where_it_crosses_the_tile() -> None:
    # A pole 12 px wide and 230 px tall and a rail 180 x 8 px, in 64-px tiles: they cover less than half of any tile
    # and at most 64/230 of themselves, so a rule of half the box or half the tile ignored them in every tile, and
    # they were never learned nor counted.
    objects = [(120, 20, 132, 250), (20, 150, 200, 158)]  # each inside its tiles across: never cut across its width
    sample = {
        "image": tv_tensors.Image(torch.zeros(3, 300, 300, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(objects, dtype=torch.float32), format="XYXY", canvas_size=(300, 300)),
        "labels": torch.tensor([0, 1]),
    }
    kept = {0: 0, 1: 0}

    for window in tile_windows(300, 300, 64, 0.2):
        tile = crop_sample(sample, window, tile_size=64)
        x_min, y_min, x_max, y_max = window
        for (bx0, by0, bx1, by1), label in zip(objects, (0, 1), strict=True):
            columns = max(0, min(bx1, x_max) - max(bx0, x_min))
            rows = max(0, min(by1, y_max) - max(by0, y_min))
            if columns * rows == 0:
                continue
            crosses = (columns == bx1 - bx0 and rows >= 32) or (rows == by1 - by0 and columns >= 32)  # half the tile's side
            assert (label in tile["labels"].tolist()) == crosses, (window, label)
            kept[label] += crosses

    assert kept[0] > 0  # both are learned somewhere
    assert kept[1] > 0


def test_a_side_shorter_than_the_tile_is_padded_and_its_mask_padding_ignored() -> None:
    mask = np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 7
    sample = _sample(mask)

    tile = crop_sample(sample, (200, 0, 300, 250), tile_size=400)

    assert tile["image"].shape == (3, 400, 400)
    assert torch.equal(tile["image"][:, :250, :100], sample["image"][:, :, 200:])
    assert int(tile["image"][:, 250:, :].max()) == 0
    assert int(tile["image"][:, :, 100:].max()) == 0
    assert np.array_equal(tile["mask"][:250, :100].numpy(), mask[:, 200:])
    assert set(tile["mask"][250:].unique().tolist()) == {255}
    assert tuple(tile["boxes"].canvas_size) == (400, 400)


def test_a_sample_key_that_cannot_be_cut_is_refused() -> None:
    with pytest.raises(BrickError, match=r"Cannot cut sample keys \['keypoints'\]"):
        crop_sample({**_sample(), "keypoints": torch.zeros(2, 2)}, (0, 0, 100, 100), tile_size=100)


# --- TiledDataset over readers of files ---------------------------------------------------------------------------


def _write_coco(root: Path, sizes: list[tuple[int, int]], name: str = "train.json") -> Path:
    """Images of (height, width) with the boxes of BOXES that fit, as a COCO file; pixels encode their position."""
    root.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (height, width) in enumerate(sizes):
        rows, columns = np.mgrid[0:height, 0:width]
        pixels = np.stack([rows % 256, columns % 256, (rows // 256 + columns // 256 + image_id) % 256], axis=-1)
        Image.fromarray(pixels.astype(np.uint8)).save(root / f"image{image_id}.png")
        images.append({"id": image_id, "file_name": f"image{image_id}.png", "height": height, "width": width})
        for x0, y0, x1, y1 in BOXES:
            if x1 <= width and y1 <= height:
                annotations.append(
                    {
                        "id": len(annotations),
                        "image_id": image_id,
                        "category_id": 1 + len(annotations) % 2,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                    }
                )
    categories = [{"id": 1, "name": "tree"}, {"id": 2, "name": "dead tree"}]
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_tiled_coco_serves_every_tile_of_every_image_with_the_reader_names(tmp_path: Path) -> None:
    sizes = [(HEIGHT, WIDTH), (120, 90), (250, 260)]
    reader = CocoDataset(_write_coco(tmp_path, sizes), with_masks=True)

    tiled = TiledDataset(reader, tile_size=100, overlap=0.2)
    tiles = [tiled[index] for index in range(len(tiled))]

    assert len(tiled) == sum(len(tile_windows(height, width, 100, 0.2)) for height, width in sizes)
    assert {tuple(tile["raw"].shape) for tile in tiles} == {(3, 100, 100)}
    assert sorted(tiles[0]) == ["image_extent", "raw", "target_boxes", "target_classes", "target_labels", "target_mask"]
    cut_somewhere = False
    for tile in tiles:  # the classes present are those of the tile's boxes; a class only cut here is unknown (-1)
        labels = {label for label in tile["target_labels"].tolist() if label >= 0}
        cut = {-2 - label for label in tile["target_labels"].tolist() if label <= -2} - labels
        assert (tile["target_classes"] == 1).nonzero().flatten().tolist() == sorted(labels)
        assert (tile["target_classes"] == -1).nonzero().flatten().tolist() == sorted(cut)
        cut_somewhere = cut_somewhere or bool(cut)
    assert cut_somewhere  # some tile cuts an object of a class it has no whole object of
    # The first tile's pixels are the image's: row and column indices in the red and green channels.
    assert torch.equal(tiles[0]["raw"][0, :, 0] * 255, torch.arange(100, dtype=torch.float32))
    assert torch.equal(tiles[0]["raw"][1, 0, :] * 255, torch.arange(100, dtype=torch.float32))


def test_a_tile_padded_past_a_short_side_gives_the_extent_of_its_picture_at_the_input_scale(tmp_path: Path) -> None:
    """An image 90 px wide cut into 100-px tiles: the tiles' real part is 90 px wide, the rest black padding; the
    extent is checked against the padded pixels (the image has no black pixel but its corner), and read at an input
    of half the tile it is half as large."""
    from torchbricks.datasets.transforms import create_transform

    reader = CocoDataset(_write_coco(tmp_path, [(120, 90)]))
    tiled = TiledDataset(reader, tile_size=100, overlap=0.2, transform=create_transform(100, evaluation=True))
    halved = TiledDataset(reader, tile_size=100, overlap=0.2, transform=create_transform(50, evaluation=True))

    assert len(tiled) == 2  # 90 x 100 and 90 x 100 windows (the second from y = 20)
    for index in range(len(tiled)):
        tile = tiled[index]
        picture = (tile["raw"] > 0).any(dim=0)
        picture[0, 0] = True
        rows, columns = picture.any(dim=1).nonzero().flatten(), picture.any(dim=0).nonzero().flatten()
        assert tile["image_extent"].tolist() == [float(rows.max() + 1), float(columns.max() + 1)] == [100.0, 90.0]
        assert (halved[index]["image_extent"] * 2).tolist() == tile["image_extent"].tolist()


def test_a_jittered_training_tile_gives_its_whole_input_as_extent(tmp_path: Path) -> None:
    """Training tiles may be flipped or turned by the augmentations, the padding with them: their extent is the input."""
    tiled = TiledDataset(CocoDataset(_write_coco(tmp_path, [(120, 90)])), tile_size=100, overlap=0.2, jitter=True)

    assert {tuple(tiled[index]["image_extent"].tolist()) for index in range(len(tiled))} == {(100.0, 100.0)}


def test_tiled_segmentation_cuts_the_mask_with_the_image(tmp_path: Path) -> None:
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    mask = (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) // 97 % 3).astype(np.uint8)
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    tiled = TiledDataset(SegmentationFolderDataset(tmp_path, num_classes=3), tile_size=100, overlap=0.2)

    for index, (_, (x_min, y_min, x_max, y_max)) in enumerate(tiled.tiles):
        assert np.array_equal(tiled[index]["targets"].numpy(), mask[y_min:y_max, x_min:x_max])


class _CountingCoco(CocoDataset):
    decoded: int = 0

    def load_sample(self, index: int) -> dict[str, Any]:
        type(self).decoded += 1
        return super().load_sample(index)


@pytest.mark.parametrize("jitter", [False, True])
def test_an_epoch_decodes_each_image_once_not_once_per_tile(tmp_path: Path, jitter: bool) -> None:
    sizes = [(HEIGHT, WIDTH)] * 6
    tiled = TiledDataset(_CountingCoco(_write_coco(tmp_path, sizes)), tile_size=64, overlap=0.2, jitter=jitter)
    _CountingCoco.decoded = 0
    loader = DataLoader(tiled, batch_size=8, sampler=tiled.train_sampler(), collate_fn=collate_padded)

    decoded = []
    for _ in range(2):
        before = _CountingCoco.decoded
        served = sum(len(batch["raw"]) for batch in loader)
        decoded.append(_CountingCoco.decoded - before)
        assert served == len(tiled) == 6 * len(tile_windows(HEIGHT, WIDTH, 64, 0.2))  # 6 x 30 tiles

    assert decoded[0] == 6
    assert 6 - tiled.images_per_group <= decoded[1] <= 6  # images still kept from the last epoch are not decoded again


def test_jittered_training_windows_stay_in_the_image_and_move_between_epochs(tmp_path: Path) -> None:
    tiled = TiledDataset(CocoDataset(_write_coco(tmp_path, [(HEIGHT, WIDTH)])), tile_size=64, overlap=0.2, jitter=True)
    fixed = TiledDataset(CocoDataset(_write_coco(tmp_path, [(HEIGHT, WIDTH)])), tile_size=64, overlap=0.2)
    torch.manual_seed(0)

    def origins(dataset: TiledDataset) -> list[tuple[int, int]]:  # the pixels encode their row and column
        return [(int(tile[1, 0, 0] * 255), int(tile[0, 0, 0] * 255)) for tile in (dataset[i]["raw"] for i in range(len(dataset)))]

    first, second = origins(tiled), origins(tiled)

    for x, y in first + second:  # each 64 x 64 tile lies whole in the image
        assert 0 <= x <= WIDTH - 64
        assert 0 <= y <= HEIGHT - 64
    assert first != second
    assert first != origins(fixed)


def test_the_sampler_gives_every_tile_once_a_few_images_at_a_time() -> None:
    counts = [3, 5, 2, 4, 1, 6, 2]
    starts = np.cumsum([0, *counts])
    torch.manual_seed(0)

    order = list(TileGroupSampler(counts, images_per_group=2))
    images = [int(np.searchsorted(starts, index, side="right") - 1) for index in order]

    assert sorted(order) == list(range(sum(counts)))
    # Images whose tiles interleave form a group; a group holds at most two images.
    positions = [[i for i, image in enumerate(images) if image == k] for k in range(len(counts))]
    spans = sorted((min(where), max(where)) for where in positions)
    groups: list[list[tuple[int, int]]] = []
    for span in spans:
        if groups and span[0] <= max(end for _, end in groups[-1]):
            groups[-1].append(span)
        else:
            groups.append([span])
    assert max(len(group) for group in groups) <= 2
    assert len(groups) >= len(counts) // 2
    torch.manual_seed(0)
    assert list(TileGroupSampler(counts, images_per_group=2)) == order  # a seeded run repeats the order


def test_a_reader_without_untransformed_samples_cannot_be_tiled() -> None:
    with pytest.raises(BrickError, match=r"list cannot be tiled: .* lacks \['image_size_at', 'load_sample', 'named_sample'\]"):
        TiledDataset([1, 2, 3], tile_size=64)
