"""`ResizedImageCache`: the samples are the same with and without it, each file is decoded once, the budget holds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from torchbricks.datasets import image_cache
from torchbricks.datasets.coco import CocoDataset
from torchbricks.datasets.image_cache import ResizedImageCache
from torchbricks.datasets.readers import ImageFolderDataset, SegmentationFolderDataset
from torchbricks.datasets.transforms import create_transform
from torchbricks.errors import ConfigError
from torchbricks.lightning.image_datamodules import (
    CACHE_MEGABYTES,
    DetectionDataModule,
    ImageFolderDataModule,
    SegmentationFolderDataModule,
)

SIZE = (24, 40)  # (height, width): neither the images' size nor their aspect


def _photo(path: Path, size: tuple[int, int] = (90, 50), seed: int = 0) -> Path:
    """A noisy RGB picture (noise makes any difference of resizing show)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _augmentations() -> list[Any]:
    from torchvision.transforms import v2

    return [v2.RandomHorizontalFlip(p=0.5), v2.RandomAffine(degrees=30, translate=(0.1, 0.1)), v2.ColorJitter(brightness=0.2)]


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name, value in first.items():
        assert torch.equal(value, second[name]), name


def _sample(dataset: Any, index: int, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return dataset[index]


def _folder_dataset(root: Path, cache: ResizedImageCache | None, augmentations: list[Any]) -> ImageFolderDataset:
    dataset = ImageFolderDataset(root, transform=create_transform(SIZE, augmentations))
    dataset.image_cache = cache
    return dataset


@pytest.mark.parametrize("augmented", [False, True])
def test_image_folder_samples_are_the_same_with_the_cache_pixel_for_pixel(tmp_path: Path, augmented: bool) -> None:
    for index, size in enumerate([(90, 50), (33, 71)]):
        _photo(tmp_path / "cat" / f"{index}.png", size, seed=index)
    augmentations = _augmentations() if augmented else []
    plain = _folder_dataset(tmp_path, None, augmentations)
    cached = _folder_dataset(tmp_path, ResizedImageCache(SIZE, megabytes=1), augmentations)

    for epoch in range(2):  # the first epoch decodes, the second reads what was kept
        for index in range(len(plain)):
            _same(_sample(plain, index, seed=epoch), _sample(cached, index, seed=epoch))
    assert cached.image_cache is not None
    assert cached.image_cache.cached_images == len(plain)


def test_segmentation_samples_are_the_same_with_the_cache_masks_included(tmp_path: Path) -> None:
    for index, size in enumerate([(90, 50), (33, 71)]):
        _photo(tmp_path / "images" / f"{index}.png", size, seed=index)
        mask = np.random.default_rng(index).integers(0, 3, (size[1], size[0]), dtype=np.uint8)
        mask[:8, :] = 255  # an ignored border, kept through the 8-bit copy
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(tmp_path / "masks" / f"{index}.png")
    datasets = [SegmentationFolderDataset(tmp_path, 3, create_transform(SIZE, _augmentations())) for _ in range(2)]
    datasets[1].image_cache = ResizedImageCache(SIZE, megabytes=1)

    for epoch in range(2):
        for index in range(2):
            plain, cached = (_sample(dataset, index, seed=epoch) for dataset in datasets)
            _same(plain, cached)
            assert cached["targets"].dtype == torch.int64
            assert int(cached["targets"].max()) == 255


def _coco_folder(root: Path) -> Path:
    images, annotations = [], []
    for index, size in enumerate([(90, 50), (33, 71)]):
        _photo(root / "images" / f"{index}.png", size, seed=index)
        images.append({"id": index + 1, "file_name": f"images/{index}.png", "width": size[0], "height": size[1]})
        polygon = [4.0, 5.0, 25.0, 5.0, 25.0, 30.0, 4.0, 30.0]
        annotations.append(
            {
                "id": index + 1,
                "image_id": index + 1,
                "category_id": 1,
                "bbox": [4.0, 5.0, 21.0, 25.0],
                "segmentation": [polygon],
                "area": 525.0,
                "iscrowd": 0,
            }
        )
    document = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}
    (root / "train.json").write_text(json.dumps(document))
    return root / "train.json"


@pytest.mark.parametrize("with_masks", [False, True])
def test_box_samples_are_the_same_with_the_cache_boxes_in_the_input_size(tmp_path: Path, with_masks: bool) -> None:
    annotations = _coco_folder(tmp_path)
    transform = create_transform(SIZE, _augmentations(), boxes=True)
    datasets = [CocoDataset(annotations, tmp_path, with_masks=with_masks, transform=transform) for _ in range(2)]
    datasets[1].image_cache = ResizedImageCache(SIZE, megabytes=1)

    for epoch in range(2):
        for index in range(2):
            _same(_sample(datasets[0], index, seed=epoch), _sample(datasets[1], index, seed=epoch))
    datasets[0].transform = datasets[1].transform = create_transform(SIZE, boxes=True)
    boxes = datasets[1][0]["target_boxes"]  # the 90 x 50 image at 40 x 24: the box scales with it
    assert torch.allclose(boxes, torch.tensor([[4 * 40 / 90, 5 * 24 / 50, 25 * 40 / 90, 30 * 24 / 50]]))


def test_each_file_is_decoded_once_over_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(3):
        _photo(tmp_path / "cat" / f"{index}.png", seed=index)
    decoded: list[Path] = []
    read = image_cache.read_rgb_for_input
    monkeypatch.setattr(image_cache, "read_rgb_for_input", lambda path, size: decoded.append(path) or read(path, size))
    dataset = _folder_dataset(tmp_path, ResizedImageCache(SIZE, megabytes=1), _augmentations())

    for _ in range(3):
        for index in range(len(dataset)):
            dataset[index]

    assert sorted(path.name for path in decoded) == ["0.png", "1.png", "2.png"]


def test_a_full_budget_keeps_no_more_and_the_images_still_come_at_the_size(tmp_path: Path) -> None:
    paths = [_photo(tmp_path / f"{index}.png", seed=index) for index in range(3)]
    one_image = 3 * SIZE[0] * SIZE[1]
    cache = ResizedImageCache(SIZE, megabytes=1.5 * one_image / 2**20)

    shapes = [tuple(cache.image(path)[0].shape) for path in paths]

    assert shapes == [(3, *SIZE)] * 3
    assert cache.cached_images == 1


def test_each_loader_process_keeps_its_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [_photo(tmp_path / f"{index}.png", seed=index) for index in range(4)]
    one_image = 3 * SIZE[0] * SIZE[1]

    class Worker:
        num_workers = 2

    monkeypatch.setattr(torch.utils.data, "get_worker_info", Worker)
    cache = ResizedImageCache(SIZE, megabytes=4 * one_image / 2**20)  # four images in all: two per process
    for path in paths:
        cache.image(path)

    assert cache.cached_images == 2


def test_changing_a_read_image_changes_nothing_kept(tmp_path: Path) -> None:
    path = _photo(tmp_path / "a.png")
    cache = ResizedImageCache(SIZE, megabytes=1)
    first = cache.image(path)[0]
    kept = first.clone()
    first.zero_()  # as an in-place augmentation would
    assert torch.equal(cache.image(path)[0], kept)


def test_loader_processes_start_with_an_empty_cache(tmp_path: Path) -> None:
    for index in range(4):
        _photo(tmp_path / "cat" / f"{index}.png", seed=index)
    dataset = _folder_dataset(tmp_path, ResizedImageCache(SIZE, megabytes=1), [])
    dataset[0]
    assert dataset.image_cache is not None
    assert dataset.image_cache.cached_images == 1

    loader = DataLoader(dataset, batch_size=2, num_workers=1, multiprocessing_context="spawn")
    batches = [batch["raw"] for batch in loader]

    assert torch.cat(batches).shape == (4, 3, *SIZE)
    assert torch.equal(batches[0][0], dataset[0]["raw"])


@pytest.mark.parametrize("megabytes", [-1, "lots", True, float("nan")])
def test_a_bad_budget_is_refused_by_its_key(megabytes: Any) -> None:
    with pytest.raises(ConfigError, match=r"'data.cache_megabytes' must be .* a number >= 0"):
        ResizedImageCache(SIZE, megabytes)


def _folders(root: Path) -> Path:
    for split in ("train", "val", "test"):
        for name in ("cat", "dog"):
            for index in range(2):
                _photo(root / split / name / f"{index}.png", seed=index)
    return root


def test_the_data_modules_keep_the_training_and_validation_images_only(tmp_path: Path) -> None:
    # every split reads through a cache (a large JPEG decoded reduced alike); the test split and evaluate keep nothing
    data = ImageFolderDataModule(_folders(tmp_path), image_size=list(SIZE), batch_size=2)
    data.setup("fit")
    data.setup("test")

    caches = {split: dataset.image_cache for split, dataset in data.datasets.items()}
    assert caches["train"].megabytes == caches["validation"].megabytes == CACHE_MEGABYTES
    assert caches["test"].megabytes == 0
    assert caches["train"] is not caches["validation"]
    assert caches["train"].size == caches["test"].size == SIZE
    assert all(dataset.image_cache.megabytes == 0 for dataset in data.all_dataloader().dataset.datasets)


def test_a_budget_of_zero_reads_every_image_from_its_file(tmp_path: Path) -> None:
    data = ImageFolderDataModule(_folders(tmp_path), image_size=list(SIZE), batch_size=2, cache_megabytes=0)
    data.setup("fit")
    dataset = data.datasets["train"]
    for index in range(len(dataset)):
        dataset[index]
    assert dataset.image_cache.cached_images == 0  # read through the cache (JPEGs reduced alike), nothing kept


def _jpeg(path: Path, size: tuple[int, int], orientation: int = 1) -> Path:
    """A smooth picture with fine noise, as a camera JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, size[0])[None, :, None] + np.linspace(0, 50, size[1])[:, None, None]
    pixels = (ramp + rng.normal(0, 6, (size[1], size[0], 3))).clip(0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path


def test_a_large_jpeg_is_decoded_reduced_at_nearly_the_same_pixels_and_its_whole_size_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.transforms.v2 import functional

    from torchbricks import _pictures
    from torchbricks.datasets._reading import load_rgb, to_image

    path = _jpeg(tmp_path / "photo.jpg", (1024, 768))
    reductions: list[int] = []
    reduce = _pictures.reduce_jpeg_decoding
    monkeypatch.setattr(_pictures, "reduce_jpeg_decoding", lambda image, size: reductions.append(reduce(image, size)))

    image, shown = ResizedImageCache(SIZE, megabytes=0).image(path)

    full = functional.resize(to_image(load_rgb(path)), list(SIZE), antialias=True)  # decoded whole
    assert reductions == [8]  # 128 x 96 still covers 40 x 24
    assert shown == (1024, 768)  # boxes refer to the whole image
    assert tuple(image.shape) == (3, *SIZE)
    assert (image.float() - full.float()).abs().mean() < 2.0


def test_a_jpeg_turned_by_exif_is_reduced_by_its_sides_as_shown(tmp_path: Path) -> None:
    from torchbricks._pictures import reduce_jpeg_decoding

    path = _jpeg(tmp_path / "turned.jpg", (1600, 800), orientation=6)  # stored 1600 x 800, shown 800 x 1600
    with Image.open(path) as stored:
        assert reduce_jpeg_decoding(stored, (300, 700)) == 2  # 800 x 400 stored is 400 x 800 shown
    with Image.open(path) as stored:
        assert reduce_jpeg_decoding(stored, (700, 300)) == 1  # shown 700 wide needs the stored height in full
    cache = ResizedImageCache((700, 300), megabytes=0)
    image, shown = cache.image(path)
    assert (tuple(image.shape), shown) == ((3, 700, 300), (800, 1600))


def test_a_jpeg_whose_sides_the_reduction_does_not_divide_is_decoded_in_full(tmp_path: Path) -> None:
    from torchbricks._pictures import reduce_jpeg_decoding

    path = _jpeg(tmp_path / "odd.jpg", (1001, 800))
    with Image.open(path) as image:
        assert reduce_jpeg_decoding(image, (40, 24)) == 1
        assert image.size == (1001, 800)


def test_tiles_are_not_cached(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _coco_folder(root)
    (root / "val.json").write_text((root / "train.json").read_text())
    data = DetectionDataModule(root, layout="coco", tile_size=32, batch_size=2)
    assert all(getattr(dataset, "image_cache", None) is None for dataset in data.datasets.values())


@pytest.mark.parametrize("module", [ImageFolderDataModule, SegmentationFolderDataModule])
def test_the_data_modules_refuse_a_bad_budget_before_reading(tmp_path: Path, module: Any) -> None:
    with pytest.raises(ConfigError, match=r"data\.cache_megabytes"):
        module(_folders(tmp_path), image_size=32, cache_megabytes=-5)


def _random_polygons_folder(root: Path, count: int = 4, seed: int = 0) -> Path:
    """COCO files of noisy images with random objects: polygons of one or several parts (some reaching out of the
    image, some overlapping), a box without outline and a crowd region, in random order."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for index in range(count):
        width, height = int(rng.integers(30, 70)), int(rng.integers(30, 70))
        _photo(root / "images" / f"{index}.png", (width, height), seed=index)
        images.append({"id": index + 1, "file_name": f"images/{index}.png", "width": width, "height": height})
        for number in range(int(rng.integers(2, 6))):
            box = [0.0, 0.0, 0.0, 0.0]
            while min(box[2:]) < 1:  # a box with something inside the image
                parts = []
                for _ in range(int(rng.integers(1, 4))):
                    centre = rng.uniform(0.1, 0.9, 2) * (width, height)
                    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
                    radii = rng.uniform(2, 0.4 * min(width, height), len(angles))
                    points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
                    parts.append([round(float(value), 3) for value in points.reshape(-1)])
                xs, ys = np.concatenate([part[0::2] for part in parts]), np.concatenate([part[1::2] for part in parts])
                x, y = max(float(xs.min()), 0.0), max(float(ys.min()), 0.0)
                box = [x, y, min(float(xs.max()), width) - x, min(float(ys.max()), height) - y]
            kind = number % 4
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": int(rng.integers(1, 4)),
                    "bbox": box,
                    "segmentation": [] if kind == 2 else parts,  # no outline: the box stands in for it
                    "area": 1.0,
                    "iscrowd": int(kind == 3),
                }
            )
    categories = [{"id": number, "name": name} for number, name in enumerate(["cat", "dog", "bird"], start=1)]
    (root / "train.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root / "train.json"


def _rotations() -> list[Any]:
    from torchvision.transforms import v2

    from torchbricks.datasets.augmentations import RandomRotationTightBoxes

    return [v2.RandomHorizontalFlip(p=0.5), RandomRotationTightBoxes(degrees=180), v2.ColorJitter(brightness=0.2)]


@pytest.mark.parametrize("augmented", [False, True])
def test_masks_drawn_from_random_polygons_are_the_same_with_the_cache_pixel_for_pixel(tmp_path: Path, augmented: bool) -> None:
    annotations = _random_polygons_folder(tmp_path)
    transform = create_transform(SIZE, _rotations() if augmented else [], boxes=True)
    plain, cached = (CocoDataset(annotations, tmp_path, with_masks=True, transform=transform) for _ in range(2))
    cached.image_cache = ResizedImageCache(SIZE, megabytes=1)

    for epoch in range(3):  # the first epoch draws, the later ones read what was kept
        for index in range(len(plain)):
            _same(_sample(plain, index, seed=epoch), _sample(cached, index, seed=epoch))
    assert cached.image_cache.cached_images == 2 * len(plain)  # an image and a mask each
    assert any(len(set(map(str, record.objects))) > 1 for record in cached.records)


def test_masks_of_the_shapes_generators_files_are_the_same_with_the_cache(tmp_path: Path) -> None:
    from torchbricks.datasets.shapes import write_shapes_dataset

    root = write_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=1, image_size=48) / "detection"
    transform = create_transform(SIZE, _rotations(), boxes=True)
    plain, cached = (CocoDataset(root / "train.json", root, with_masks=True, transform=transform) for _ in range(2))
    cached.image_cache = ResizedImageCache(SIZE, megabytes=1)

    for epoch in range(2):
        for index in range(len(plain)):
            _same(_sample(plain, index, seed=epoch), _sample(cached, index, seed=epoch))


def test_each_mask_is_drawn_once_over_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchbricks.datasets import boxes

    annotations = _random_polygons_folder(tmp_path, count=3)
    dataset = CocoDataset(annotations, tmp_path, with_masks=True, transform=create_transform(SIZE, _rotations(), boxes=True))
    dataset.image_cache = ResizedImageCache(SIZE, megabytes=1)
    drawn: list[Path] = []
    draw = boxes.BoxDataset._semantic_mask
    monkeypatch.setattr(boxes.BoxDataset, "_semantic_mask", lambda self, record: drawn.append(record.path) or draw(self, record))

    for _ in range(3):
        for index in range(len(dataset)):
            dataset[index]

    assert sorted(path.name for path in drawn) == ["0.png", "1.png", "2.png"]


def test_a_kept_mask_is_never_served_for_another_image(tmp_path: Path) -> None:
    annotations = _random_polygons_folder(tmp_path, count=4)
    cache = ResizedImageCache(SIZE, megabytes=1)
    plain = CocoDataset(annotations, tmp_path, with_masks=True, transform=create_transform(SIZE, boxes=True))
    # two datasets reading through one cache, one of them with its images in another order
    first = CocoDataset(annotations, tmp_path, with_masks=True, transform=create_transform(SIZE, boxes=True))
    second = CocoDataset(annotations, tmp_path, with_masks=True, transform=create_transform(SIZE, boxes=True))
    second.records.reverse()
    first.image_cache = second.image_cache = cache
    expected = [plain[index]["target_mask"] for index in range(len(plain))]
    assert len({tuple(mask.flatten().tolist()) for mask in expected}) == len(expected)  # no two alike

    for _ in range(2):
        for index in range(len(plain)):
            assert torch.equal(first[index]["target_mask"], expected[index])
            assert torch.equal(second[index]["target_mask"], expected[len(plain) - 1 - index])

    record = first.records[0]  # an outline changed after it was drawn: drawn again
    record.objects[0].segmentation = [[0.0, 0.0, 9.0, 0.0, 9.0, 9.0, 0.0, 9.0]]
    record.objects[0].crowd = False
    plain.records[0] = record
    assert torch.equal(first[0]["target_mask"], plain[0]["target_mask"])
    assert not torch.equal(first[0]["target_mask"], expected[0])


def test_a_kept_mask_is_still_augmented_anew_at_every_epoch(tmp_path: Path) -> None:
    from torchbricks.datasets.shapes import write_shapes_dataset

    root = write_shapes_dataset(tmp_path / "shapes", num_train=1, num_val=1, image_size=48) / "detection"
    transform = create_transform(SIZE, _rotations(), boxes=True)  # any angle: every object has its outline
    dataset = CocoDataset(root / "train.json", root, with_masks=True, transform=transform)
    dataset.image_cache = ResizedImageCache(SIZE, megabytes=1)

    masks = [_sample(dataset, 0, seed=epoch)["target_mask"] for epoch in range(4)]

    assert dataset.image_cache.cached_images == 2
    assert len({tuple(mask.flatten().tolist()) for mask in masks}) == 4


def _rewritten(path: Path, seed: int) -> None:
    """The file written again with other pixels of the same size, its modification time a second later."""
    before = path.stat().st_mtime_ns
    with Image.open(path) as image:
        size, mode = image.size, image.mode
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3) if mode == "RGB" else size[::-1], dtype=np.uint8)
    Image.fromarray(pixels % 3 if mode != "RGB" else pixels).save(path)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_an_image_file_changed_since_it_was_kept_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _photo(tmp_path / "a.png")
    one_image = 3 * SIZE[0] * SIZE[1]
    cache = ResizedImageCache(SIZE, megabytes=1.5 * one_image / 2**20)  # room for one image
    first = cache.image(path)[0]
    decoded: list[Path] = []
    read = image_cache.read_rgb_for_input
    monkeypatch.setattr(image_cache, "read_rgb_for_input", lambda path, size: decoded.append(path) or read(path, size))

    _rewritten(path, seed=7)
    again = cache.image(path)[0]

    assert torch.equal(again, ResizedImageCache(SIZE, megabytes=0).image(path)[0])
    assert not torch.equal(again, first)
    decoded.clear()
    assert torch.equal(cache.image(path)[0], again)
    assert decoded == []  # the new pixels are kept in the old ones' place, within the budget
    assert cache.cached_images == 1


def test_a_mask_file_changed_since_it_was_kept_is_read_again(tmp_path: Path) -> None:
    for index, size in enumerate([(90, 50), (33, 71)]):
        _photo(tmp_path / "images" / f"{index}.png", size, seed=index)
        (tmp_path / "masks").mkdir(exist_ok=True)
        mask = np.random.default_rng(index).integers(0, 3, (size[1], size[0]), dtype=np.uint8)
        Image.fromarray(mask).save(tmp_path / "masks" / f"{index}.png")
    plain, cached = (SegmentationFolderDataset(tmp_path, 3, create_transform(SIZE)) for _ in range(2))
    cached.image_cache = ResizedImageCache(SIZE, megabytes=1)
    before = cached[0]["targets"]

    _rewritten(tmp_path / "masks" / "0.png", seed=9)

    assert torch.equal(cached[0]["targets"], plain[0]["targets"])
    assert not torch.equal(cached[0]["targets"], before)
