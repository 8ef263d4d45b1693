"""Data as LightningDataModules: image data in the layouts users bring (ImageFolder, image/mask folders, COCO, YOLO,
Pascal VOC), scikit-learn's handwritten digits and generated images (no download)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from torchbricks._extras import require
from torchbricks.datasets.detection_layouts import (
    coco_category_ids,
    detect_detection_layout,
    detection_class_names,
    has_test_split,
    read_detection_split,
)
from torchbricks.datasets.readers import (
    BoxDataset,
    DataError,
    ImageFolderDataset,
    SegmentationFolderDataset,
    image_folder_class_names,
    segmentation_class_names,
)
from torchbricks.datasets.tiled import TiledDataset
from torchbricks.datasets.transforms import collate_padded, create_transform, image_size_pair
from torchbricks.datasets.voc import SPLIT_SEED, VALIDATION_FRACTION
from torchbricks.errors import BrickError, ConfigError, did_you_mean

require("pytorch_lightning", "lightning")
import pytorch_lightning as pl  # noqa: E402 (after `require`, so a missing extra names what to install)

__all__ = [
    "CocoDataModule",
    "DetectionDataModule",
    "DigitsDataModule",
    "GeneratedImageClassificationDataModule",
    "GeneratedImageDataset",
    "ImageFolderDataModule",
    "NamedTensorDataset",
    "SegmentationFolderDataModule",
    "cap_num_workers",
]


DEFAULT_IMAGE_SIZE = 96
"""Side images are resized to when neither `image_size` nor `tile_size` is given."""
CLASSIFICATION_NOT_TILED = (
    "a class label belongs to the whole image, not to each of its tiles; tiling is for boxes and masks "
    "(task=detection, multitask, segmentation). Leave data.tile_size null and set data.image_size."
)


def cap_num_workers(num_workers: int) -> int:
    """`num_workers` capped so loader processes leave one CPU core to the training process.

    Example:
        >>> cap_num_workers(0)
        0
    """
    return max(0, min(num_workers, (os.cpu_count() or 1) - 1))


class NamedTensorDataset(Dataset[dict[str, torch.Tensor]]):
    """Tensors of equal length served as named samples; the default collate turns them into named batches.

    Example:
        >>> dataset = NamedTensorDataset(raw=torch.zeros(3, 1, 8, 8), targets=torch.tensor([0, 1, 2]))
        >>> len(dataset), sorted(dataset[1]), int(dataset[1]["targets"])
        (3, ['raw', 'targets'], 1)
    """

    def __init__(self, **tensors: torch.Tensor) -> None:
        lengths = {name: len(tensor) for name, tensor in tensors.items()}
        if not tensors or len(set(lengths.values())) != 1:
            raise BrickError(f"NamedTensorDataset needs at least one tensor and equal lengths, got lengths {lengths}.")
        self.tensors = tensors
        self._length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: tensor[index] for name, tensor in self.tensors.items()}


class _SplitDataModule(pl.LightningDataModule):
    """Serves `self.datasets["train" | "validation" | "test"]`; prediction runs on the test split."""

    supports_tiling: ClassVar[bool] = False
    """Whether the module cuts large images into tiles (`tile_size`); the config checks read it before training."""
    why_not_tiled: ClassVar[str] = "it reads whole images."

    def __init__(self, batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = cap_num_workers(num_workers)
        self.datasets: dict[str, Any] = {}
        self.collate_fn: Callable[[list[Any]], Any] | None = None
        self.drop_last_train = False

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)

    def prepare_datasets(self) -> None:
        """Fills `self.datasets` if a subclass builds them lazily; the loaders call it first."""

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        self.prepare_datasets()
        dataset = self.datasets[split]
        # Tiles are shuffled a few images at a time, so each image is decoded once per epoch, not once per tile.
        sampler = dataset.train_sampler() if shuffle and isinstance(dataset, TiledDataset) else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn,
            drop_last=self.drop_last_train and split == "train" and len(self.datasets[split]) > self.batch_size,
        )


class DigitsDataModule(_SplitDataModule):
    """scikit-learn's 1797 handwritten digits (8x8, bundled with scikit-learn, no download), split in three.

    Batches are dicts: `raw`, images [B, 1, 8, 8] in [0, 1], and `targets`, the digits [B] (int64). The split is
    stratified and fixed by `seed`.

    Args:
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers` (the data is in memory; 0 is usually fastest).
        validation_fraction: Fraction of the samples held out for validation.
        test_fraction: Fraction of the samples held out for test.
        seed: Seed of the split.
    """

    num_classes = 10
    class_names: ClassVar[list[str]] = [str(digit) for digit in range(10)]
    image_size = (8, 8)

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        if not (validation_fraction > 0 and test_fraction > 0 and validation_fraction + test_fraction < 1):
            raise BrickError(
                "validation_fraction and test_fraction must be positive and sum to less than 1, "
                f"got {validation_fraction} and {test_fraction}."
            )
        self.validation_fraction = validation_fraction
        self.test_fraction = test_fraction
        self.seed = seed

    def setup(self, stage: str | None = None) -> None:
        self.prepare_datasets()

    def prepare_datasets(self) -> None:
        if self.datasets:
            return
        datasets = require("sklearn.datasets", "train")
        model_selection = require("sklearn.model_selection", "train")
        digits = datasets.load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        targets = torch.as_tensor(digits.target, dtype=torch.int64)
        indices = torch.arange(len(targets)).numpy()
        held_out = self.validation_fraction + self.test_fraction
        train, rest = model_selection.train_test_split(
            indices, test_size=held_out, stratify=digits.target, random_state=self.seed
        )
        validation, test = model_selection.train_test_split(
            rest, test_size=self.test_fraction / held_out, stratify=digits.target[rest], random_state=self.seed
        )
        for name, split in (("train", train), ("validation", validation), ("test", test)):
            index = torch.as_tensor(split)
            self.datasets[name] = NamedTensorDataset(raw=images[index], targets=targets[index])


class GeneratedImageDataset(Dataset[tuple[Any, int]]):
    """Random RGB images whose class sets their mean colour, served as (image, label) like torchvision's datasets.

    Images are PIL images passed through `transform` (so `torchvision.transforms.ToTensor()` works), or [3, H, W]
    float tensors in [0, 1] without one. The same `seed` gives the same images.

    Example:
        >>> image, label = GeneratedImageDataset(num_samples=4, image_size=(8, 8), num_classes=2)[0]
        >>> tuple(image.shape), label in (0, 1)
        ((3, 8, 8), True)
    """

    def __init__(
        self,
        num_samples: int,
        image_size: tuple[int, int] = (32, 32),
        num_classes: int = 10,
        transform: Callable[[Image.Image], Any] | None = None,
        seed: int = 0,
    ) -> None:
        generator = np.random.default_rng(seed)
        self.labels = generator.integers(0, num_classes, size=num_samples)
        class_colors = generator.uniform(0.2, 0.8, size=(num_classes, 1, 1, 3))
        noise = generator.normal(0.0, 0.1, size=(num_samples, *image_size, 3))
        self.images = (np.clip(class_colors[self.labels] + noise, 0.0, 1.0) * 255).astype(np.uint8)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        label = int(self.labels[index])
        if self.transform is None:
            return torch.from_numpy(self.images[index]).permute(2, 0, 1).float() / 255.0, label
        return self.transform(Image.fromarray(self.images[index])), label


class GeneratedImageClassificationDataModule(_SplitDataModule):
    """Generated RGB image classification data (`GeneratedImageDataset`) in train, validation and test splits.

    Batches are (images, labels) tuples, which `LightningBrickCollection` names `("raw", "targets")` by default.

    Args:
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        num_samples: Samples per split.
        image_size: (H, W) of the images.
        num_classes: Number of classes.
        train_transforms: Applied to the PIL images of the train split.
        test_transforms: Applied to the PIL images of the validation and test splits.
        seed: Seed of the generated data; each split gets its own images.
    """

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int = 0,
        num_samples: int = 64,
        image_size: tuple[int, int] = (32, 32),
        num_classes: int = 10,
        train_transforms: Callable[[Image.Image], Any] | None = None,
        test_transforms: Callable[[Image.Image], Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.num_classes = num_classes
        self.datasets = {
            split: GeneratedImageDataset(num_samples, image_size, num_classes, transform, seed=seed + offset)
            for offset, (split, transform) in enumerate(
                (("train", train_transforms), ("validation", test_transforms), ("test", test_transforms))
            )
        }


class _FileDataModule(_SplitDataModule):
    """Shared parts of the data modules reading files: the root, the transforms, padded batches and class names.

    Training batches drop their last incomplete batch (a batch of one breaks batch norm); the validation and test
    splits are read whole. With `tile_size`, each split's reader is wrapped in a `TiledDataset` (the transform then
    runs on each tile) and `image_size` defaults to the tile size.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int | Sequence[int] | None,
        batch_size: int,
        num_workers: int,
        augmentations: Sequence[Callable[..., Any]] | None,
        boxes: bool = False,
        tile_size: int | None = None,
        tile_overlap: float = 0.2,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"The data folder {str(self.root)!r} does not exist.")
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        if image_size is None:
            image_size = tile_size if tile_size is not None else DEFAULT_IMAGE_SIZE
        self.image_size = image_size_pair(image_size)
        self.train_transform = create_transform(self.image_size, list(augmentations or ()), boxes=boxes)
        self.test_transform = create_transform(self.image_size, boxes=boxes)
        self.collate_fn = collate_padded
        self.drop_last_train = True
        self.class_names: list[str] = []

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_datasets()

    def _fill_splits(self, train: str, validation: str, test: str, create: Callable[[Path, Any], Any]) -> None:
        """Fills `self.datasets` once with `create(path, transform)` for each split, from those names under `root`;
        without `test` there, the validation source is also the test split."""
        if self.datasets:
            return
        test = test if (self.root / test).exists() else validation
        for name, source, transform in (
            ("train", train, self.train_transform),
            ("validation", validation, self.test_transform),
            ("test", test, self.test_transform),
        ):
            self.datasets[name] = self._split_dataset(name, transform, functools.partial(create, self.root / source))

    def _split_dataset(self, split: str, transform: Any, read: Callable[[Any], Any]) -> Any:
        """`read(transform)`, the reader of `split`; with `tile_size`, `read(None)` (whole decoded images) in a
        `TiledDataset` that runs `transform` on each tile, with jittered windows for training."""
        if self.tile_size is None:
            return read(transform)
        return TiledDataset(read(None), self.tile_size, self.tile_overlap, transform, jitter=split == "train")

    def _prepare_tiles(self) -> None:
        """With tiling, reads the splits now (not at `setup`), so a tile size that cuts no training image is refused
        before the experiment starts."""
        if self.tile_size is None:
            return
        self.prepare_datasets()
        train = self.datasets["train"]
        if max(train.tile_counts) == 1:
            height, width = max(train.image_sizes, key=lambda size: size[0] * size[1])
            raise ConfigError(
                f"data.tile_size={self.tile_size} is at least as large as every training image under "
                f"{str(self.root)!r} (the largest is {width}x{height}, width x height): no image would be cut, only "
                "padded to the tile. Choose a smaller data.tile_size, or leave it null "
                "(no tiling) and set data.image_size."
            )


class ImageFolderDataModule(_FileDataModule):
    """Image classification from torchvision's ImageFolder layout: `root/train/<class>/*`, `root/val/<class>/*` and,
    if present, `root/test/<class>/*` (otherwise the validation split is also the test split).

    Batches are dicts: `raw`, images [B, 3, H, W] in [0, 1], and `targets`, class indices [B]. The classes are
    the train split's folders, sorted.

    Args:
        root: The data folder.
        image_size: Side (or [height, width]) the images are resized to.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        tile_size: Must stay None: a class label belongs to the whole image, not to each of its tiles.

    Raises:
        DataError: A split is missing or empty, or a split has a class the training split lacks.
        BrickError: `tile_size` is set.
    """

    why_not_tiled = CLASSIFICATION_NOT_TILED

    def __init__(
        self,
        root: str | Path,
        image_size: int | Sequence[int] = 96,
        batch_size: int = 32,
        num_workers: int = 1,
        augmentations: Sequence[Callable[..., Any]] | None = None,
        tile_size: None = None,
    ) -> None:
        if tile_size is not None:
            raise BrickError(f"ImageFolderDataModule cannot tile images (tile_size={tile_size!r}): {CLASSIFICATION_NOT_TILED}")
        super().__init__(root, image_size, batch_size, num_workers, augmentations)
        self.class_names = image_folder_class_names(self.root / "train")

    def prepare_datasets(self) -> None:
        self._fill_splits(
            "train", "val", "test", lambda folder, transform: ImageFolderDataset(folder, self.class_names, transform)
        )


class SegmentationFolderDataModule(_FileDataModule):
    """Semantic segmentation from `root/{train,val[,test]}/images/*` with `masks/<same stem>.png` (pixel = class
    index, 0 the background, 255 ignored); without `test` the validation split is also the test split.

    Batches are dicts: `raw`, images [B, 3, H, W] in [0, 1], and `targets`, masks [B, H, W] (int64). Class names
    come from `root/classes.txt` (line 0 the background) or, without it, from the largest mask value.

    Args:
        root: The data folder.
        image_size: Side (or [height, width]) images and masks are resized to (masks by nearest neighbour); None:
            the tile size with tiling, else 96.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        tile_size: Cut each image and its mask into tiles of this side (`torchbricks.datasets.tiled`); None: whole
            images.
        tile_overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).

    Raises:
        DataError: A split is missing or empty, an image lacks its mask or differs from it in size.
        ConfigError: `tile_size` is at least as large as every training image.
    """

    supports_tiling = True

    def __init__(
        self,
        root: str | Path,
        image_size: int | Sequence[int] | None = None,
        batch_size: int = 32,
        num_workers: int = 1,
        augmentations: Sequence[Callable[..., Any]] | None = None,
        tile_size: int | None = None,
        tile_overlap: float = 0.2,
    ) -> None:
        super().__init__(root, image_size, batch_size, num_workers, augmentations, tile_size=tile_size, tile_overlap=tile_overlap)
        self.class_names = segmentation_class_names(self.root)
        self._prepare_tiles()

    def prepare_datasets(self) -> None:
        self._fill_splits(
            "train", "val", "test", lambda folder, transform: SegmentationFolderDataset(folder, self.num_classes, transform)
        )


class DetectionDataModule(_FileDataModule):
    """Object detection (or the multitask targets) from box data in any of the layouts users have: COCO instances
    files, YOLO txt labels or Pascal VOC XML files (see `torchbricks.datasets.detection_layouts`), found from the
    folder (`layout="auto"`) or named.

    - `coco`: `root/train.json`, `root/val.json` and, if present, `root/test.json`; image `file_name`s relative to
      `root`; classes are the categories in id order (`category_ids` gives their ids).
    - `yolo`: `root/data.yaml` (`names`, optional `path`, `train`, `val`, `test`) with `images/<split>/*` and
      `labels/<split>/*.txt` (`class cx cy w h` normalised); classes are `names` (see `torchbricks.datasets.yolo`).
    - `voc`: `root/JPEGImages`, `root/Annotations/*.xml`, `root/ImageSets/Main/{train,val[,test]}.txt`, or images
      with their XML files beside them, split by `validation_fraction` and `split_seed`; classes are the train
      split's object names, sorted; `difficult` objects are ignored by the loss and the mAP (see
      `torchbricks.datasets.voc`).

    Without a test split, the validation split is also the test split. Batches are dicts: `raw`, images [B, 3, H, W]
    in [0, 1]; `target_boxes` [B, N, 4] (x_min, y_min, x_max, y_max in pixels of the resized image) and
    `target_labels` [B, N], padded with label -1 to the batch's largest N. With `task="multitask"` (COCO only: the
    masks are drawn from its outlines, which YOLO and VOC boxes lack) also `target_mask` [B, H, W] (class index + 1,
    0 the background) and `target_classes` [B, K] (1 for each class with a box).

    Args:
        root: The data folder.
        task: `detection` or `multitask`.
        layout: `auto`, `coco`, `yolo` or `voc`.
        image_size: Side (or [height, width]) images (tiles with `tile_size`), boxes and masks are resized to; None:
            the tile size with tiling, else 96.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        validation_fraction: VOC without split files: the fraction of the XML files held out for validation.
        split_seed: VOC without split files: the seed of that split (independent of the training seed).
        tile_size: Cut each image with its boxes (and mask) into tiles of this side (`torchbricks.datasets.tiled`:
            a box is kept in a tile when at least half of it lies inside; VOC difficult objects stay ignored);
            None: whole images.
        tile_overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).

    Raises:
        DataError: The folder holds no layout (the message lists what each expects), a file or image is missing, an
            annotation is out of its image or names an unknown class.
        ConfigError: An unknown task or layout, `multitask` on YOLO or VOC data, or `tile_size` at least as large as
            every training image.
    """

    tasks = ("detection", "multitask")
    supports_tiling = True

    def __init__(
        self,
        root: str | Path,
        task: str = "detection",
        layout: str = "auto",
        image_size: int | Sequence[int] | None = None,
        batch_size: int = 32,
        num_workers: int = 1,
        augmentations: Sequence[Callable[..., Any]] | None = None,
        validation_fraction: float = VALIDATION_FRACTION,
        split_seed: int = SPLIT_SEED,
        tile_size: int | None = None,
        tile_overlap: float = 0.2,
    ) -> None:
        if task not in self.tasks:
            raise BrickError(
                f"{type(self).__name__}: task must be one of {list(self.tasks)}, got {task!r}.{did_you_mean(task, self.tasks)}"
            )
        super().__init__(
            root, image_size, batch_size, num_workers, augmentations, boxes=True, tile_size=tile_size, tile_overlap=tile_overlap
        )
        self.task = task
        self.layout = detect_detection_layout(self.root, layout)
        if task == "multitask" and self.layout != "coco":
            raise ConfigError(
                f"Config key 'data.task' is multitask, which draws its segmentation masks from object outlines (COCO "
                f"polygons or RLE); the {self.layout} data in {str(self.root)!r} has boxes only. Train task=detection "
                "on it, or convert it to COCO with segmentations."
            )
        self.validation_fraction = validation_fraction
        self.split_seed = split_seed
        self.class_names = detection_class_names(self.root, self.layout)
        self.category_ids = coco_category_ids(self.root) if self.layout == "coco" else None
        self._prepare_tiles()

    def prepare_datasets(self) -> None:
        if self.datasets:
            return
        test = "test" if has_test_split(self.root, self.layout) else "validation"
        for name, source, transform in (
            ("train", "train", self.train_transform),
            ("validation", "validation", self.test_transform),
            ("test", test, self.test_transform),
        ):
            self.datasets[name] = self._split_dataset(name, transform, functools.partial(self._read_split, source))

    def _read_split(self, split: str, transform: Any) -> BoxDataset:
        return read_detection_split(
            self.root,
            self.layout,
            split,
            self.class_names,
            with_masks=self.task == "multitask",
            transform=transform,
            validation_fraction=self.validation_fraction,
            seed=self.split_seed,
        )


class CocoDataModule(DetectionDataModule):
    """`DetectionDataModule` with the COCO layout: instances files `root/train.json`, `root/val.json` and, if
    present, `root/test.json` (otherwise the validation file is also the test split); image `file_name`s are
    relative to `root`. Classes are the categories in id order, `category_ids` their ids.

    Args:
        root: The data folder.
        task: `detection` or `multitask`.
        image_size: Side (or [height, width]) images, boxes and masks are resized to; None: the tile size with
            tiling, else 96.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        tile_size: Cut each image with its boxes (and mask) into tiles of this side (`torchbricks.datasets.tiled`:
            a box is kept in a tile when at least half of it lies inside); None: whole images.
        tile_overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).

    Raises:
        DataError: A file or image is missing, an annotation is out of its image or names an unknown category.
        ConfigError: `tile_size` is at least as large as every training image.
    """

    def __init__(
        self,
        root: str | Path,
        task: str = "detection",
        image_size: int | Sequence[int] | None = None,
        batch_size: int = 32,
        num_workers: int = 1,
        augmentations: Sequence[Callable[..., Any]] | None = None,
        tile_size: int | None = None,
        tile_overlap: float = 0.2,
    ) -> None:
        super().__init__(
            root, task, "coco", image_size, batch_size, num_workers, augmentations, tile_size=tile_size, tile_overlap=tile_overlap
        )
