"""Data modules of image files in the layouts users bring: ImageFolder (classification), image and mask folders
(segmentation), and box data as COCO, YOLO or Pascal VOC files (detection, multitask). They share `FileDataModule`:
the root, the image size, the augmentations, tiling and padded batches; each builds the readers of
`torchbricks.datasets` for its splits in `setup`."""

from __future__ import annotations

import copy
import functools
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import ConcatDataset, DataLoader, Subset

from torchbricks._conventions import IGNORE_INDEX
from torchbricks._data_facts import data_facts_kept
from torchbricks._experiment import launched_as_global_zero
from torchbricks._image_files import FolderListings
from torchbricks._pictures import ImageFacts, ImageHeaders, check_image_file
from torchbricks.datasets._reading import (
    check_data_folder,
    each_file_read_once,
    image_notes,
    start_up_headers,
    start_up_listings,
)
from torchbricks.datasets.boxes import BoxDataset, BoxImage, image_size_problem
from torchbricks.datasets.class_frequencies import classes_in_masks, masks_of_split
from torchbricks.datasets.detection_layouts import (
    coco_category_ids,
    detect_detection_layout,
    detection_class_names,
    has_test_split,
    has_validation_split,
    read_detection_split,
)
from torchbricks.datasets.folder_splits import (
    FolderSplit,
    folder_splits,
    has_own_split,
    is_voc_layout,
    segmentation_folders,
    training_folder,
    whole_splits,
)
from torchbricks.datasets.image_cache import ResizedImageCache, check_megabytes
from torchbricks.datasets.image_sizes import check_image_scale, choose_image_size, record_sizes, typical_image_size
from torchbricks.datasets.mask_palettes import palette_disagreement
from torchbricks.datasets.readers import (
    DataError,
    ImageFolderDataset,
    SegmentationFolderDataset,
    background_line_notice,
    binary_masks_disagree,
    binary_masks_notice,
    mask_colours,
    masks_are_binary_255,
    numbered_class_list_notice,
    read_mask,
    reads_voc_classes,
    segmentation_class_names,
    training_class_names,
    voc_class_names_notice,
)
from torchbricks.datasets.segmentation_layouts import (
    OUTLINE_LAYOUTS,
    check_outlines,
    multitask_masks_notice,
    segmentation_layout,
    unoutlined_notice,
    unread_outlines_notice,
)
from torchbricks.datasets.tiled import TiledDataset
from torchbricks.datasets.transforms import AugmentationSwitch, collate_padded, create_transform, image_size_pair
from torchbricks.datasets.voc import SPLIT_SEED, VALIDATION_FRACTION, check_voc_origin
from torchbricks.datasets.voc_segmentation import read_voc_segmentation
from torchbricks.errors import BrickError, ConfigError, did_you_mean
from torchbricks.lightning.split_datamodule import SplitDataModule

__all__ = [
    "CocoDataModule",
    "DetectionDataModule",
    "FileDataModule",
    "ImageFolderDataModule",
    "OutlineSegmentationDataModule",
    "SegmentationFolderDataModule",
    "check_dataset_files",
]

DEFAULT_IMAGE_SIZE = 96
"""Side images are resized to when neither `image_size` nor `tile_size` is given."""
CACHE_MEGABYTES = 1024.0
"""Memory for the decoded images of each split read every epoch (training, validation), kept between epochs
(`ResizedImageCache`; `data.cache_megabytes`)."""
UNTRAINED_CLASSES_KEY = "classes_without_training_example"
"""The attribute of the box and mask data modules, and the key of `experiment.json`, naming the classes the training
split has no example of (no box, no mask pixel)."""
CACHED_SPLITS = ("train", "validation")
"""The splits read every epoch, whose images are kept (the test split and `all` are read once)."""
CLASSIFICATION_NOT_TILED = (
    "a class label belongs to the whole image, not to each of its tiles; tiling is for boxes and masks "
    "(task=detection, multitask, segmentation). Leave data.tile_size null and set data.image_size."
)


def _size_from_data(
    layout: str,
    root: str | Path,
    image_size: int | Sequence[int] | None,
    scale: float,
    tile_size: int | None = None,
    listings: FolderListings | None = None,
    headers: ImageHeaders | None = None,
) -> int | Sequence[int] | None:
    """`image_size`; when it and `tile_size` are None, the training images' median size times `scale`
    (`torchbricks.datasets.image_sizes.typical_image_size`) of the data at `root` in `layout`, its folders listed
    through `listings` and its headers read through `headers` when given (the module's start-up's)."""
    if image_size is None and tile_size is None and Path(root).is_dir():
        return typical_image_size(layout, root, scale=scale, listings=listings, headers=headers).size
    return image_size


def _read_once(read: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """`read(source, transform)` of a data module's splits, a source read for two names (without a test split, the
    validation split is also the test split) read once: each name gets its own copy (the validation split's image
    cache is not the test's)."""
    readers: dict[tuple[Any, int], Any] = {}

    def once(source: Any, transform: Any) -> Any:
        key = (source, id(transform))
        if key not in readers:
            readers[key] = read(source, transform)
        return copy.copy(readers[key])

    return once


def _each_image_once(parts: list[Any]) -> list[Any]:
    """`parts` with the samples of an image an earlier part already holds left out (a YOLO `data.yaml` may name the
    same folder for train, val and test, as coco128 does); a part whose images cannot be told is kept whole."""
    seen: set[Path] = set()
    kept = []
    for part in parts:
        paths = _sample_image_paths(part)
        if paths is None:
            kept.append(part)
            continue
        fresh = {path for path in paths if path not in seen}
        indices = [index for index, path in enumerate(paths) if path in fresh]
        seen |= fresh
        if len(indices) == len(paths):
            kept.append(part)
        elif indices:
            kept.append(Subset(part, indices))
    return kept


def _sample_image_paths(dataset: Any) -> list[Path] | None:
    """The image file of each sample of a torchbricks reader (of each tile, for a `TiledDataset`), resolved; None
    for another dataset."""
    if isinstance(dataset, TiledDataset):
        images = _sample_image_paths(dataset.dataset)
        return None if images is None else [images[index] for index, _ in dataset.tiles]
    if isinstance(dataset, BoxDataset):
        return [record.path.resolve() for record in dataset.records]
    if isinstance(dataset, (ImageFolderDataset, SegmentationFolderDataset)):
        return [Path(sample[0]).resolve() for sample in dataset.samples]
    return None


def _files_of(dataset: Any) -> list[tuple[Path, BoxImage | None, bool]]:
    """The files the reader of a split decodes, each with the box record whose annotations state the image's size
    and whether it is an image (a segmentation split's masks are not), through the datasets that wrap readers (tiles,
    `all`'s concatenation and subsets, renamed sources: a subset's whole reader); none for another dataset."""
    if isinstance(dataset, ConcatDataset):
        return [file for part in dataset.datasets for file in _files_of(part)]
    if isinstance(dataset, BoxDataset):
        return [(record.path, record, True) for record in dataset.records]
    if isinstance(dataset, ImageFolderDataset):
        return [(Path(path), None, True) for path, _ in dataset.samples]
    if isinstance(dataset, SegmentationFolderDataset):
        return [file for image, mask in dataset.samples for file in ((image, None, True), (mask, None, False))]
    inner = getattr(dataset, "dataset", None)  # TiledDataset, Subset, a source's renamed dataset
    return [] if inner is None else _files_of(inner)


def check_dataset_files(
    root: Path, datasets: Sequence[Any], job: str = "training", headers: ImageHeaders | None = None
) -> list[str]:
    """Looks at every image (and mask) the `datasets` read (`_files_of`) before `job` starts, and says (on the first
    process) what is read otherwise than the stored pixels suggest: the images an EXIF orientation turns, those
    transparent everywhere and those converted to sRGB from another colour profile (`image_notes`, as check-data
    says them). Training and evaluation both look here, so both say the same. With `headers`, the files' headers come
    from there (a data module's start-up opens each file once, `ImageHeaders`).

    Returns:
        Those notes.

    Raises:
        DataError: Naming each file that is no image Pillow reads, is cut short
            (`torchbricks._pictures.check_image_file`: the file's header and end, no decoding but of an image with an
            alpha channel) or differs in size from its annotations (the first five), and their count.
    """
    checked: dict[Path, ImageFacts | None] = {}
    images: dict[Path, ImageFacts] = {}  # in the order read
    problems: list[str] = []
    for dataset in datasets:
        for path, record, is_image in _files_of(dataset):
            if path not in checked:
                try:
                    checked[path] = check_image_file(path, alpha=is_image, headers=headers)
                except DataError as error:
                    checked[path] = None
                    problems.append(str(error))
            header = checked[path]
            if header is None:
                continue
            if is_image:
                images[path] = header
            problem = None if record is None else image_size_problem(record, header.size)
            if problem is not None and problem not in problems:
                problems.append(problem)
    if problems:
        raise DataError(_unreadable_files_message(root, problems, job))
    notes = image_notes(
        [path for path, facts in images.items() if facts.orientation != 1],
        [path for path, facts in images.items() if facts.transparent],
        {path: facts.profile for path, facts in images.items() if facts.profile is not None},
    )
    if notes and launched_as_global_zero():
        for note in notes:
            print(f"torchbricks: note: {note}", file=sys.stderr, flush=True)
    return notes


def _unreadable_files_message(root: Path, problems: list[str], job: str = "training") -> str:
    many = len(problems) > 1
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    late = ", at a test image only after training" if job == "training" else ""
    return (
        f"{len(problems)} file{'s' if many else ''} of {str(root)!r} cannot be read as {job} reads "
        f"{'them' if many else 'it'} (found before {job}, which would stop at the first one it reaches{late}): "
        f"{shown}. Replace or remove {'them' if many else 'it'}; `torchbricks check-data {root}` decodes every image "
        "and lists every problem."
    )


def _warn_classes_without_training_example(root: Path, missing: list[str], found_in: str, detail: str = "") -> None:
    """Says once, at the start of the run (on the first process), which classes the training split has no example of:
    the model gets an output for each that is never trained. Not an error: data sets often list classes they do not
    use (COCO files keep every category of a project); `experiment.json` records them."""
    if not missing or not launched_as_global_zero():
        return
    many = len(missing) > 1
    print(
        f"torchbricks: warning: the class{'es' if many else ''} {missing} of {str(root)!r} ha{'ve' if many else 's'} no "
        f"{found_in} in the 'train' split{detail}: the model gets an output for {'each' if many else 'it'} that is never "
        f"trained, and {'their' if many else 'its'} validation and test figures measure a class it never saw. Add "
        f"training examples, or leave {'them' if many else 'it'} out of the classes (experiment.json lists "
        f"{'them' if many else 'it'} under {UNTRAINED_CLASSES_KEY!r}; `torchbricks check-data` counts every class).",
        file=sys.stderr,
        flush=True,
    )


class FileDataModule(SplitDataModule):
    """Shared parts of the data modules reading files: the root, the transforms, padded batches and class names.

    Training batches drop their last incomplete batch (a batch of one breaks batch norm); the validation and test
    splits are read whole. With `tile_size`, each split's reader is wrapped in a `TiledDataset` (the transform then
    runs on each tile) and `image_size` defaults to the tile size.
    """

    validation_fraction: float = VALIDATION_FRACTION
    """Without a validation split of its own, the fraction of the training images drawn for it (set per instance)."""
    split_seed: int = SPLIT_SEED
    """The seed of that draw."""
    evaluation_only: bool = False
    """Read every split, training included, as evaluation reads it: no augmentation, tiles not jittered
    (`read_for_evaluation` sets it; `all_dataloader` calls that)."""
    folder_layout: ClassVar[str | None] = None
    """The folder layout (`torchbricks.datasets.folder_splits`) of the folder modules, whose datasets
    `create_datasets` builds here; None for the box modules, which build their own and have their own
    `split_sources` and `validation_drawn`."""

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
        cache_megabytes: float = CACHE_MEGABYTES,
        last_phase_augmentations: Sequence[Callable[..., Any]] | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.cache_megabytes = check_megabytes(cache_megabytes)  # a bad value is refused now, by its key
        self.root = Path(root)
        check_data_folder(self.root)
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        if image_size is None:
            image_size = tile_size if tile_size is not None else DEFAULT_IMAGE_SIZE
        self.image_size = image_size_pair(image_size)
        self.augmentation_switch = AugmentationSwitch()  # off: early stopping's last phase (last_phase_augmentations, or none)
        self.train_transform = create_transform(
            self.image_size,
            list(augmentations or ()),
            boxes=boxes,
            switch=self.augmentation_switch,
            last_phase_augmentations=list(last_phase_augmentations or ()),
        )
        self.test_transform = create_transform(self.image_size, boxes=boxes, evaluation=True)  # every true box counts
        self.collate_fn = collate_padded
        self.drop_last_train = True
        self.class_names: list[str] = []
        self.classes_without_training_example: list[str] = []
        """The classes the training split has no example of (box and mask data; `UNTRAINED_CLASSES_KEY`)."""
        self._listings: FolderListings | None = start_up_listings()
        """The folders listed at start-up, each once (the checks of the constructor, then the splits' readers);
        dropped once the datasets are built."""
        self._headers: ImageHeaders | None = start_up_headers()
        """The file headers read at start-up, each file opened once (the palette check, the readers' sizes, then
        `check_files`); dropped once `check_files` has looked at them."""
        self._drawn_splits: tuple[tuple[float, int], dict[str, FolderSplit]] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split_sources(self) -> dict[str, str]:
        """Split -> the split it reads: `{"test": "validation"}` where the data has no test split of its own."""
        test = "test" if has_own_split(self.root, self._layout_of_folders(), "test") else "validation"
        return {"train": "train", "validation": "validation", "test": test}

    def validation_drawn(self) -> bool:
        """Whether the data has no validation split of its own (it is drawn from the training images)."""
        return not has_own_split(self.root, self._layout_of_folders(), "validation")

    def _layout_of_folders(self) -> str:
        if self.folder_layout is None:
            raise NotImplementedError(f"{type(self).__name__} reads no folder layout; it says where its splits are itself.")
        return self.folder_layout

    def _read_folder_split(self, split: FolderSplit, transform: Any) -> Any:
        """The dataset of one `FolderSplit` (the folder modules' reader)."""
        raise NotImplementedError(f"{type(self).__name__} reads no folder layout.")

    def _all_datasets(self) -> list[Any]:
        """The datasets `all_dataloader` concatenates: each split that is not another one again; a folder layout
        whose validation split is drawn is read whole from its training folder instead (nothing is drawn, so a pool
        too small to split is still evaluated)."""
        sources = self.split_sources()
        if self.folder_layout is not None and self.validation_drawn():
            splits = whole_splits(self.root, self.folder_layout)
            return [
                self._split_dataset("validation", self.test_transform, functools.partial(self._read_folder_split, split))
                for split in splits
            ]
        self.prepare_datasets()
        return _each_image_once([self.datasets[split] for split in ("train", "validation", "test") if sources[split] == split])

    def create_datasets(self) -> dict[str, Any]:
        """`_read_folder_split` of each `FolderSplit` of the folder layout under `root`
        (`torchbricks.datasets.folder_splits`: `train`, `val` or `valid` or `validation`, `test`, or drawn at random by
        `validation_fraction` and `split_seed`); without a test split, the validation split is also the test split."""
        read = _read_once(self._read_folder_split)
        datasets = {
            name: self._split_dataset(name, self._transform(name), functools.partial(read, split))
            for name, split in self._folder_splits().items()
        }
        self._listings = None
        return datasets

    def _folder_splits(self) -> dict[str, FolderSplit]:
        """`folder_splits` of the folder layout, drawn once for the module's `validation_fraction` and `split_seed`."""
        key = (self.validation_fraction, self.split_seed)
        if self._drawn_splits is None or self._drawn_splits[0] != key:
            splits = folder_splits(self.root, self._layout_of_folders(), *key, listings=self._listings)
            self._drawn_splits = (key, splits)
        return self._drawn_splits[1]

    def all_dataloader(self) -> DataLoader[Any]:
        """Every labelled sample once: the training and validation splits and the test split when it is not the
        validation split again (`split_sources`), read as evaluation reads them (`read_for_evaluation`)."""
        self.read_for_evaluation()
        if "all" not in self.datasets:
            self.datasets["all"] = ConcatDataset(self._all_datasets())
        return self._loader("all", shuffle=False)

    def prepare_datasets(self) -> None:
        """Fills `self.datasets` with `create_datasets()` once (beside `all`, which `all_dataloader` may have built
        alone, drawing nothing)."""
        if "train" not in self.datasets:
            self.datasets.update(self.create_datasets())

    def read_for_evaluation(self) -> None:
        """From now on every split, training included, is read as evaluation reads it (`evaluation_only`); datasets
        built before (tiling builds them at construction) are built again."""
        if not self.evaluation_only:
            self.evaluation_only = True
            self.datasets = {}

    def check_files(self) -> None:
        """Looks at every image (and mask) of the splits before training: raises `DataError` naming each one that is
        no image Pillow reads, is cut short (`torchbricks._pictures.check_image_file`: the file's header and end, no
        decoding) or differs in size from its annotations, and says what is read otherwise than stored
        (`check_dataset_files`). Without it the loaders stop at the first such file they reach: in the first epoch for
        a training image, at the end of it for a validation image, and for a test image only after the whole training.

        Raises:
            DataError: Listing every such file (the first five named).
        """
        self.prepare_datasets()
        check_dataset_files(
            self.root, [self.datasets.get(split) for split in ("train", "validation", "test")], headers=self._headers
        )
        self._headers = None

    def _transform(self, split: str) -> Any:
        return self.train_transform if split == "train" and not self.evaluation_only else self.test_transform

    def _split_dataset(self, split: str, transform: Any, read: Callable[[Any], Any]) -> Any:
        """`read(transform)`, the reader of `split`, reading its images through a `ResizedImageCache`: of
        `cache_megabytes` for the training and validation images (read every epoch), keeping nothing for the test
        split and `evaluate` (read once). Every split decodes a large JPEG reduced as the cache does, as `predict` and
        `torchbricks.deploy` do too (`torchbricks._pictures.rgb_for_input`): a model is given in every stage the
        pixels it trained on. With `tile_size`, `read(None)` (whole decoded images, as tiles are predicted) in a
        `TiledDataset` that runs `transform` on each tile, with jittered windows for training."""
        if self.tile_size is None:
            dataset = read(transform)
            kept = self.cache_megabytes if split in CACHED_SPLITS and not self.evaluation_only else 0.0
            dataset.image_cache = ResizedImageCache(self.image_size, kept)
            return dataset
        jitter = split == "train" and not self.evaluation_only
        return TiledDataset(read(None), self.tile_size, self.tile_overlap, transform, jitter=jitter)

    def _prepare_tiles(self) -> None:
        """With tiling, builds the datasets at construction rather than in `setup`, so a tile size that cuts no
        training image is refused (by key) before the experiment starts."""
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


class ImageFolderDataModule(FileDataModule):
    """Image classification from torchvision's ImageFolder layout: `root/train/<class>/*`, `root/val/<class>/*` (or
    `valid/`, `validation/`) and, if present, `root/test/<class>/*` (otherwise the validation split is also the test
    split). Without a validation folder, `validation_fraction` of each class's training images are drawn for it; a
    folder of class folders without splits (`root/<class>/*`) is split so too (`torchbricks.datasets.folder_splits`).

    Batches are dicts: `raw`, images [B, 3, H, W] in [0, 1], and `targets`, class indices [B]. The classes are
    the train split's folders, sorted.

    Args:
        root: The data folder.
        image_size: Side (or [height, width]) the images are resized to; None: from the data (`image_scale`).
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        last_phase_augmentations: The transforms applied instead of `augmentations` once early stopping's last phase
            has turned them off (`early_stopping.finish_without_augmentations`); None: none.
        tile_size: Must stay None: a class label belongs to the whole image, not to each of its tiles.
        image_scale: With `image_size` None, the images are resized to this many times the training images' median
            size (`torchbricks.datasets.image_sizes.typical_image_size`); the packaged config (`data.image_scale`)
            applies it through its default `image_size`, so the resolved config holds the number.
        validation_fraction: Without a validation folder: the fraction of each class's training images held out.
        split_seed: The seed of that draw (independent of the training seed).
        cache_megabytes: Memory for the training and validation images, decoded once at the input size and kept
            between epochs (`torchbricks.datasets.image_cache`); 0 decodes every image whenever it is read.

    Raises:
        DataError: A split is missing or empty, or a split has a class the training split lacks.
        BrickError: `tile_size` is set.
        ConfigError: `image_scale` is not a number > 0.
    """

    why_not_tiled = CLASSIFICATION_NOT_TILED
    folder_layout = "image_folder"

    def __init__(
        self,
        root: str | Path,
        image_size: int | Sequence[int] | None = 96,
        batch_size: int = 32,
        num_workers: int = 1,
        augmentations: Sequence[Callable[..., Any]] | None = None,
        tile_size: None = None,
        image_scale: float = 1.0,
        validation_fraction: float = VALIDATION_FRACTION,
        split_seed: int = SPLIT_SEED,
        cache_megabytes: float = CACHE_MEGABYTES,
        last_phase_augmentations: Sequence[Callable[..., Any]] | None = None,
    ) -> None:
        if tile_size is not None:
            raise BrickError(f"ImageFolderDataModule cannot tile images (tile_size={tile_size!r}): {CLASSIFICATION_NOT_TILED}")
        self.image_scale = check_image_scale(image_scale)
        listings, headers = start_up_listings(), start_up_headers()  # the size from the data lists and opens too
        image_size = _size_from_data("image_folder", root, image_size, self.image_scale, None, listings, headers)
        super().__init__(
            root,
            image_size,
            batch_size,
            num_workers,
            augmentations,
            cache_megabytes=cache_megabytes,
            last_phase_augmentations=last_phase_augmentations,
        )
        self._listings, self._headers = listings, headers
        self.validation_fraction = validation_fraction
        self.split_seed = split_seed
        training = training_folder(self.root, "image_folder")
        self.class_names = training_class_names(training)
        empty = [str(training / name) for name in self.class_names if not listings.files(training / name, recursive=True)]
        if empty:  # its output would never be trained, and the metrics would average over a class with no sample
            raise DataError(
                f"The class folder{'s' if len(empty) > 1 else ''} {', '.join(repr(folder) for folder in empty)} of the "
                f"training images hold{'' if len(empty) > 1 else 's'} no image: the classifier would have an output for "
                "a class it never sees. Add the images, or remove the folder (`torchbricks check-data` lists every problem)."
            )

    def use_class_names(self, class_names: Sequence[str]) -> list[str]:
        """Numbers the classes as `class_names` (a trained experiment's) do, for data whose class folders are some of
        them (`torchbricks evaluate` on new images that lack a class); returns the classes without a folder here.
        Call it before `setup`.

        Raises:
            ConfigError: A class folder here is not one of `class_names` (named, with the closest class).
        """
        trained = {unicodedata.normalize("NFC", name) for name in class_names}
        unknown = [name for name in self.class_names if unicodedata.normalize("NFC", name) not in trained]
        if unknown:
            raise ConfigError(
                f"The data in {str(self.root)!r} has class folders {unknown} that the experiment was not trained on "
                f"(its classes: {list(class_names)}).{did_you_mean(unknown[0], list(class_names))} Evaluate on folders "
                "of the experiment's classes (some of them will do)."
            )
        present = {unicodedata.normalize("NFC", name) for name in self.class_names}
        self.class_names = list(class_names)
        return [name for name in class_names if unicodedata.normalize("NFC", name) not in present]

    def _read_folder_split(self, split: FolderSplit, transform: Any) -> Any:
        return ImageFolderDataset(split.folder, self.class_names, transform, only=split.only, listings=self._listings)


class SegmentationFolderDataModule(FileDataModule):
    """Semantic segmentation from `root/{train,val[,test]}/images/*` with `masks/<same stem>.png` (pixel = class
    index, 0 the background, 255 ignored); without `test` the validation split is also the test split. The validation
    folder may be `val`, `valid` or `validation`; without one, `validation_fraction` of the training images are drawn
    for it, and `root/images/` with `root/masks/` (no split folders) is split so too
    (`torchbricks.datasets.folder_splits`). Pascal VOC's layout, as VOC and CVAT's exports write it, is read where it
    lies: `JPEGImages/*`, `SegmentationClass/<stem>.png`, the splits listed in `ImageSets/Segmentation/*.txt`
    (`torchbricks.datasets.voc_segmentation`).

    Batches are dicts: `raw`, images [B, 3, H, W] in [0, 1], and `targets`, masks [B, H, W] (int64). Class names
    come from `root/classes.txt` (line 0 the background) or, without it, from the largest mask value.

    Args:
        root: The data folder.
        image_size: Side (or [height, width]) images and masks are resized to (masks by nearest neighbour); None:
            the tile size with tiling, else the training images' median size times `image_scale`.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        last_phase_augmentations: The transforms applied instead of `augmentations` once early stopping's last phase
            has turned them off (`early_stopping.finish_without_augmentations`); None: none.
        tile_size: Cut each image and its mask into tiles of this side (`torchbricks.datasets.tiled`); None: whole
            images.
        tile_overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).
        image_scale: With `image_size` and `tile_size` None, the images are resized to this many times the training
            images' median size (`torchbricks.datasets.image_sizes.typical_image_size`); the packaged config
            (`data.image_scale`, 2) applies it through its default `image_size`, so the resolved config holds the
            number.
        validation_fraction: Without a validation folder: the fraction of the training images held out.
        split_seed: The seed of that draw (independent of the training seed).
        cache_megabytes: Memory for the training and validation images, decoded once at the input size and kept
            between epochs (`torchbricks.datasets.image_cache`); 0 decodes every image whenever it is read.
        layout: `segmentation_folder` or `auto` (`data.layout` of `task=segmentation`, which reads outlines with
            `OutlineSegmentationDataModule`; `torchbricks.datasets.segmentation_layouts`).

    Raises:
        DataError: A split is missing or empty, an image lacks its mask or differs from it in size.
        ConfigError: `tile_size` is at least as large as every training image, `image_scale` is not a number > 0,
            or `layout` is another.
    """

    supports_tiling = True
    folder_layout = "segmentation_folder"

    @data_facts_kept()  # the classes, the kinds' agreement, the binary decision and its notice each ask the masks' kind
    def __init__(
        self,
        root: str | Path,
        image_size: int | Sequence[int] | None = None,
        batch_size: int = 32,
        num_workers: int = 1,
        augmentations: Sequence[Callable[..., Any]] | None = None,
        tile_size: int | None = None,
        tile_overlap: float = 0.2,
        image_scale: float = 1.0,
        validation_fraction: float = VALIDATION_FRACTION,
        split_seed: int = SPLIT_SEED,
        cache_megabytes: float = CACHE_MEGABYTES,
        last_phase_augmentations: Sequence[Callable[..., Any]] | None = None,
        layout: str = "segmentation_folder",
    ) -> None:
        if layout not in ("auto", "segmentation_folder"):
            raise ConfigError(
                f"Config key 'data.layout' is {layout!r}, but {type(self).__name__} reads mask folders "
                "(segmentation_folder); OutlineSegmentationDataModule reads the outlines of COCO and YOLO data "
                "(task=segmentation picks it from data.layout)."
            )
        self.image_scale = check_image_scale(image_scale)
        listings, headers = start_up_listings(), start_up_headers()  # the size from the data lists and opens too
        image_size = _size_from_data("segmentation_folder", root, image_size, self.image_scale, tile_size, listings, headers)
        super().__init__(
            root,
            image_size,
            batch_size,
            num_workers,
            augmentations,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            cache_megabytes=cache_megabytes,
            last_phase_augmentations=last_phase_augmentations,
        )
        self._listings, self._headers = listings, headers
        self.validation_fraction = validation_fraction
        self.split_seed = split_seed
        self.class_names = segmentation_class_names(self.root)
        self._data_class_names: list[str] | None = None
        """The masks' own classes once `use_class_names` numbers them as an experiment's (`class_names`)."""
        self._class_numbers: np.ndarray | None = None
        self.colours = mask_colours(self.root)
        masks = segmentation_folders(self.root)[1]
        listings = self._listings if self._listings is not None else FolderListings()
        first = listings.files(masks, (".png",), recursive=is_voc_layout(self.root, self.folder_layout))[:1]
        if first:  # a colour mask without labelmap.txt, a colour it lacks, a file that is no mask: before the job starts
            read_mask(first[0], colours=self.colours)
        disagree = binary_masks_disagree(self.root, self.num_classes)
        if disagree is not None:
            raise DataError(disagree)
        self.foreground_255 = self.colours is None and masks_are_binary_255(masks, self.num_classes)
        if self.colours is None and not self.foreground_255:  # palettes renumbered by an editor: before the job starts
            problem = palette_disagreement(self._every_mask(), self.num_classes, self.root, self._headers)
            if problem is not None:
                raise DataError(problem)
        notices = [binary_masks_notice(masks, self.class_names)] if self.foreground_255 else []
        unread = unread_outlines_notice(self.root, self.folder_layout) if layout == "auto" else None
        notices += [unread] if unread is not None else []
        if is_voc_layout(self.root, self.folder_layout):
            notices += [voc_class_names_notice(self.root)] if reads_voc_classes(self.root) else []
            unlabelled = read_voc_segmentation(self.root).unlabelled_notice()
            notices += [unlabelled] if unlabelled is not None else []
        if notices and launched_as_global_zero():
            print("\n".join(notices), flush=True)
        self._find_classes_without_training_example()
        self._prepare_tiles()

    def _every_mask(self) -> list[Path]:
        """The masks of every split, the training split's first, each once."""
        splits = self._folder_splits()
        parts = dict.fromkeys(splits[name] for name in ("train", "validation", "test"))  # test is often validation again
        return list(dict.fromkeys(path for split in parts for path in masks_of_split(split, self._listings)))

    def _find_classes_without_training_example(self) -> None:
        """Reads the training masks until every class but the background is found (`classes_in_masks`: a few masks
        when all are there; every mask once when one is missing) and warns naming those that are not."""
        masks = masks_of_split(self._folder_splits()["train"], self._listings)
        if not masks:
            return  # the split's own error comes when it is read
        found = classes_in_masks(masks, self.num_classes, self.foreground_255, self.colours)
        self.classes_without_training_example = [
            name for index, name in enumerate(self.class_names) if index > 0 and index not in found
        ]
        _warn_classes_without_training_example(self.root, self.classes_without_training_example, "mask pixel")
        shifted = None if self.colours is not None else background_line_notice(self.root, self.class_names, found)
        numbered = None if self.colours is not None else numbered_class_list_notice(self.root)
        for note in (numbered, shifted):
            if note is not None and launched_as_global_zero():
                print(f"torchbricks: note: {note}", file=sys.stderr, flush=True)

    def use_class_names(self, class_names: Sequence[str]) -> list[str]:
        """Numbers the classes as `class_names` (a trained experiment's, the background first) do, by name, for masks
        whose class list (`classes.txt`, `labelmap.txt`) holds some of them in any order (`torchbricks evaluate` on new
        images without a class): each mask value is read as the experiment's index of its class. Returns the
        experiment's classes this data does not list. Call it before `setup`.

        Raises:
            ConfigError: A class of this data is not one of `class_names` (named, with the closest class).
        """
        if list(class_names) == list(self.class_names):
            return []
        trained = {unicodedata.normalize("NFC", name): index for index, name in enumerate(class_names)}
        unknown = [name for name in self.class_names if unicodedata.normalize("NFC", name) not in trained]
        if unknown:
            raise ConfigError(
                f"The masks in {str(self.root)!r} have classes {unknown} that the experiment was not trained on (its "
                f"classes: {list(class_names)}).{did_you_mean(unknown[0], list(class_names))} Evaluate on masks of the "
                "experiment's classes (some of them will do), listed in classes.txt."
            )
        numbers = np.arange(IGNORE_INDEX + 1, dtype=np.int64)  # 255 stays ignored
        numbers[: len(self.class_names)] = [trained[unicodedata.normalize("NFC", name)] for name in self.class_names]
        present = set(self.class_names)
        self._data_class_names, self._class_numbers = list(self.class_names), numbers
        self.class_names = list(class_names)
        for dataset in self.datasets.values():  # built already with tiling
            for masks in _mask_datasets_of(dataset):
                masks.class_numbers = numbers
        return [name for name in class_names if name not in present]

    def _read_folder_split(self, split: FolderSplit, transform: Any) -> Any:
        classes = self._data_class_names or self.class_names  # the masks' values: checked against the data's classes
        dataset = SegmentationFolderDataset(
            split.folder,
            len(classes),
            transform,
            only=split.only,
            foreground_255=self.foreground_255,
            colours=self.colours,
            images=split.images,
            masks=split.masks,
            stems=split.stems,
            listed=split.listed,
            class_names=classes,
            listings=self._listings,
            headers=self._headers,
        )
        dataset.class_numbers = self._class_numbers
        return dataset


class DetectionDataModule(FileDataModule):
    """Object detection (or the multitask targets) from box data in any of the layouts users have: COCO instances
    files, YOLO txt labels or Pascal VOC XML files (see `torchbricks.datasets.detection_layouts`), found from the
    folder (`layout="auto"`) or named.

    - `coco`: `root/train.json`, `root/val.json` and, if present, `root/test.json`; image `file_name`s relative to
      `root`; or as Roboflow, CVAT, COCO itself and Label Studio lay COCO out (`torchbricks.datasets.coco`); without a
      validation file, one is drawn from the training images by `validation_fraction` and `split_seed`; classes are
      the categories in id order (`category_ids` gives their ids).
    - `yolo`: `root/data.yaml` (or `dataset.yaml`; `names`, optional `path`, `train`, `val`, `test`) with `images/<split>/*` and
      `labels/<split>/*.txt` (`class cx cy w h` normalised); classes are `names` (see `torchbricks.datasets.yolo`).
      Or Darknet's `obj.data` and `obj.names` (CVAT's YOLO 1.1), or `root/classes.txt` with `images/*` and
      `labels/*.txt` (Label Studio) or with images and their .txt files side by side (labelImg); without a
      validation split of its own, one is drawn from the training images by `validation_fraction` and `split_seed`.
    - `voc`: `root/JPEGImages`, `root/Annotations/*.xml`, `root/ImageSets/Main/{train,val[,test]}.txt`, or images
      with their XML files beside them, split by `validation_fraction` and `split_seed`; classes are the train
      split's object names, sorted; `difficult` objects are ignored by the loss and the mAP (see
      `torchbricks.datasets.voc`).

    Without a test split, the validation split is also the test split. Batches are dicts: `raw`, images [B, 3, H, W]
    in [0, 1]; `target_boxes` [B, N, 4] (x_min, y_min, x_max, y_max in pixels of the resized image) and
    `target_labels` [B, N], padded with label -1 to the batch's largest N. With `task="multitask"` (COCO and YOLO:
    the masks are drawn from the outlines, COCO polygons or RLE and YOLO segmentation lines, which VOC lacks) also
    `target_mask` [B, H, W] (class index + 1, 0 the background, 255 ignored: crowd regions and, among outlined
    objects, the box of an object without outline; in a split without any outline the boxes are drawn as the
    classes, and the job says so) and `target_classes` [B, K] (1 for each class with a box). With `task="segmentation"`
    (COCO and YOLO: `OutlineSegmentationDataModule`) the batches are `raw` and `targets`, the masks drawn from the
    outlines, and `class_names` begin with `background`.

    Args:
        root: The data folder.
        task: `detection`, `multitask` or `segmentation`.
        layout: `auto`, `coco`, `yolo` or `voc`.
        image_size: Side (or [height, width]) images (tiles with `tile_size`), boxes and masks are resized to; None:
            the tile size with tiling, else the training images' median size times `image_scale`.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        last_phase_augmentations: The transforms applied instead of `augmentations` once early stopping's last phase
            has turned them off (`early_stopping.finish_without_augmentations`); None: none.
        validation_fraction: Data without a validation split of its own (VOC or YOLO without splits, COCO without a
            validation file): the fraction of the labelled images held out for validation.
        split_seed: The seed of that split (independent of the training seed).
        tile_size: Cut each image with its boxes (and mask) into tiles of this side (`torchbricks.datasets.tiled`:
            a box is kept in a tile when at least half of it lies inside, a box cut below that is an ignored region
            there; VOC difficult objects and COCO crowds stay ignored); None: whole images.
        tile_overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).
        image_scale: With `image_size` and `tile_size` None, the images are resized to this many times the training
            images' median size (`torchbricks.datasets.image_sizes.typical_image_size`); the packaged configs
            (`data.image_scale`, 2) apply it through their default `image_size`.
        cache_megabytes: Memory for the training and validation images, decoded once at the input size and kept
            between epochs (`torchbricks.datasets.image_cache`); 0 decodes every image whenever it is read.
        voc_origin: VOC data: what the `bndbox` numbers count from, `auto` (found from the XML files), 1 (VOC's
            devkit) or 0 (pixel edges, as CVAT, Label Studio and labelImg write them; `torchbricks.datasets.voc`).

    Raises:
        DataError: The folder holds no layout (the message lists what each expects), a file or image is missing, an
            annotation is out of its image or names an unknown class.
        ConfigError: An unknown task or layout, `multitask` on VOC data, `tile_size` at least as large as
            every training image, `image_scale` not a number > 0, or another `voc_origin`.
    """

    tasks: tuple[str, ...] = ("detection", "multitask")
    supports_tiling = True
    fixed_layout: ClassVar[str | None] = None
    """The layout a subclass reads whatever the folder holds (`CocoDataModule`: `coco`)."""

    @each_file_read_once()  # the class names, the layout's checks and each split's reader read the same files
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
        image_scale: float = 1.0,
        cache_megabytes: float = CACHE_MEGABYTES,
        last_phase_augmentations: Sequence[Callable[..., Any]] | None = None,
        voc_origin: int | str = "auto",
    ) -> None:
        check_voc_origin(voc_origin)  # refused by its key before the data is read
        if task not in self.tasks:
            raise BrickError(
                f"{type(self).__name__}: task must be one of {list(self.tasks)}, got {task!r}.{did_you_mean(task, self.tasks)}"
            )
        self.image_scale = check_image_scale(image_scale)
        if Path(root).is_dir():  # else FileDataModule says the folder does not exist
            layout = self._layout_of(Path(root), layout)
        self._read_first: BoxDataset | None = None
        """The training split, read for the size from the data (YOLO and VOC: the sizes are its records'), then used
        as the module's training split rather than read again."""
        class_names = None
        if image_size is None and tile_size is None and layout in ("yolo", "voc") and Path(root).is_dir():
            class_names = detection_class_names(Path(root), layout)
            self._read_first = read_detection_split(
                root,
                layout,
                "train",
                class_names,
                validation_fraction=validation_fraction,
                seed=split_seed,
                voc_origin=voc_origin,
            )
            sizes, total = record_sizes(self._read_first.records, root, layout)
            image_size = choose_image_size(sizes, total=total, scale=self.image_scale).size
        else:
            image_size = _size_from_data(layout, root, image_size, self.image_scale, tile_size)
        super().__init__(
            root,
            image_size,
            batch_size,
            num_workers,
            augmentations,
            boxes=task != "segmentation",  # masks only: the boxes are not targets
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            cache_megabytes=cache_megabytes,
            last_phase_augmentations=last_phase_augmentations,
        )
        self.task = task
        self.layout = layout
        self.voc_origin = voc_origin
        if task == "multitask" and self.layout not in OUTLINE_LAYOUTS:
            raise ConfigError(
                f"Config key 'data.task' is multitask, which draws its segmentation masks from object outlines (COCO "
                f"polygons or RLE, YOLO segmentation lines); the {self.layout} data in {str(self.root)!r} has boxes "
                "only. Train task=detection on it, or convert it to COCO with segmentations or YOLO segmentation."
            )
        if task == "segmentation" and self.layout not in OUTLINE_LAYOUTS:
            raise ConfigError(
                f"Config key 'data.task' is segmentation, which draws its masks from object outlines (COCO polygons or "
                f"RLE, YOLO segmentation lines); the {self.layout} data in {str(self.root)!r} has boxes only. Train "
                "task=detection on it."
            )
        self.validation_fraction = validation_fraction
        self.split_seed = split_seed
        self.box_class_names = class_names if class_names is not None else detection_class_names(self.root, self.layout)
        """The classes of the objects, in index order (`class_names` without segmentation's background)."""
        self.class_names = ["background", *self.box_class_names] if task == "segmentation" else self.box_class_names
        self._data_class_names: list[str] | None = None
        """The data's own object classes once `use_class_names` numbers them as an experiment's; None before."""
        self.category_ids = coco_category_ids(self.root) if self.layout == "coco" else None
        self._notices_said: set[str] = set()
        self.prepare_datasets()  # here, not in setup: the training objects say which classes have none, at the start
        self._find_classes_without_training_example()
        self._prepare_tiles()

    def use_class_names(self, class_names: Sequence[str]) -> list[str]:
        """Numbers the classes as `class_names` (a trained experiment's) do, by name, for box data labelled with some
        of them (`torchbricks evaluate` on new images without a class: a VOC folder's object names, a COCO file's
        categories or a YOLO `names` list that is a subset of the experiment's, in any order); returns the
        experiment's classes this data does not name. The metrics are then over the experiment's classes, those
        absent here without a true box (their per-class values undefined).

        Raises:
            ConfigError: A class of this data is not one of `class_names` (named, with the closest class).
        """
        trained = {unicodedata.normalize("NFC", name): name for name in class_names}
        unknown = [name for name in self.class_names if unicodedata.normalize("NFC", name) not in trained]
        if unknown:
            raise ConfigError(
                f"The {self.layout} data in {str(self.root)!r} has classes {unknown} that the experiment was not trained "
                f"on (its classes: {list(class_names)}).{did_you_mean(unknown[0], list(class_names))} Evaluate on data "
                "labelled with the experiment's classes (some of them will do)."
            )
        present = {unicodedata.normalize("NFC", name) for name in self.class_names}
        if self._data_class_names is None:
            self._data_class_names = list(self.box_class_names)
        self.class_names = list(class_names)
        # the objects' classes: task=segmentation's classes but the background its masks are drawn with
        self.box_class_names = self.class_names[1:] if self.task == "segmentation" else self.class_names
        for dataset in self.datasets.values():
            for boxes in _box_datasets_of(dataset):
                boxes.use_class_names(self._experiment_names_of(self.box_class_names))
        return [name for name in class_names if unicodedata.normalize("NFC", name) not in present]

    def _experiment_names_of(self, class_names: list[str]) -> list[str]:
        """`class_names` (the experiment's) with each spelt as this data spells it (Unicode normalisation aside), so
        that a data set numbers its classes by name."""
        spelt = {unicodedata.normalize("NFC", name): name for name in self._data_class_names or []}
        return [spelt.get(unicodedata.normalize("NFC", name), name) for name in class_names]

    def _find_classes_without_training_example(self) -> None:
        """Counts the objects per class of the training split's records (no image decoded) and warns naming the
        classes it has none of (only ignored ones: crowd regions, difficult objects)."""
        train = self.datasets["train"]
        reader = train.dataset if isinstance(train, TiledDataset) else train
        trained, ignored = reader.object_counts(outlined=self.task == "segmentation")
        missing = [index for index, count in enumerate(trained) if count == 0]
        self.classes_without_training_example = [self.box_class_names[index] for index in missing]
        only_ignored = {self.box_class_names[index]: ignored[index] for index in missing if ignored[index]}
        words = {"coco": "crowd regions", "voc": "difficult objects"}.get(self.layout, "ignored objects")
        if self.task == "segmentation":
            words = "crowd regions or objects without outline"
        detail = f" (only {words}, which training ignores: {only_ignored})" if only_ignored else ""
        found_in = {"multitask": "box nor mask pixel", "segmentation": "outlined object"}.get(self.task, "box")
        _warn_classes_without_training_example(self.root, self.classes_without_training_example, found_in, detail)

    def _layout_of(self, root: Path, layout: str) -> str:
        """The layout the data at `root` is read in: `layout`, or the one the folder holds for `auto`."""
        if self.fixed_layout is not None:
            if layout not in ("auto", self.fixed_layout):
                raise ConfigError(
                    f"Config key 'data.layout' is {layout!r}, but {type(self).__name__} reads {self.fixed_layout} data; "
                    "use DetectionDataModule (data=detection) for other layouts."
                )
            layout = self.fixed_layout
        return detect_detection_layout(root, layout)

    def split_sources(self) -> dict[str, str]:
        test = "test" if has_test_split(self.root, self.layout) else "validation"
        return {"train": "train", "validation": "validation", "test": test}

    def validation_drawn(self) -> bool:
        """Whether the data has no validation split of its own (it is drawn from the training images)."""
        return not has_validation_split(self.root, self.layout)

    def create_datasets(self) -> dict[str, Any]:
        read = _read_once(self._read_split)
        return {
            name: self._split_dataset(name, self._transform(name), functools.partial(read, source))
            for name, source in self.split_sources().items()
        }

    def _read_split(self, split: str, transform: Any) -> BoxDataset:
        """The dataset of one split; the objects it dropped as exact repeats are said once per split, as the
        segmentation module says its notices (the splits are read again for evaluation)."""
        dataset, self._read_first = (self._read_first, None) if split == "train" else (None, self._read_first)
        segmentation = self.task == "segmentation"
        if dataset is not None:
            dataset.transform = transform
            if segmentation or self.task == "multitask":
                dataset.draw_masks(segmentation=segmentation)
        else:
            dataset = read_detection_split(
                self.root,
                self.layout,
                split,
                self._data_class_names or self.box_class_names,
                with_masks=self.task == "multitask",
                transform=transform,
                validation_fraction=self.validation_fraction,
                seed=self.split_seed,
                voc_origin=self.voc_origin,
                segmentation=segmentation,
            )
        if self._data_class_names is not None:  # numbered as an experiment's classes (`use_class_names`)
            dataset.use_class_names(self._experiment_names_of(self.box_class_names))
        notices = [dataset.reading_notice, dataset.duplicates_notice(split)]
        if segmentation:
            check_outlines(dataset, self.root, split)
            notices.append(unoutlined_notice(dataset, split))
        elif self.task == "multitask":
            notices.append(multitask_masks_notice(dataset, split))
        for notice in notices:
            if notice is not None and notice not in self._notices_said:
                self._notices_said.add(notice)
                if launched_as_global_zero():
                    print(notice, flush=True)
        return dataset


class OutlineSegmentationDataModule(DetectionDataModule):
    """Semantic segmentation from the object outlines labelling tools export, the masks drawn from them: COCO
    instances files with polygons or RLE (CVAT, Roboflow, Label Studio, labelme2coco) or Ultralytics' YOLO
    segmentation labels (`class x1 y1 x2 y2 ...`, normalised), in any layout `DetectionDataModule` reads them
    (`torchbricks.datasets.detection_layouts`; Pascal VOC XML holds boxes only and is refused).

    Batches are dicts: `raw`, images [B, 3, H, W] in [0, 1], and `targets`, masks [B, H, W] (int64) as
    `BoxDataset` draws them with `segmentation`: class index + 1 in annotation order, a later object over an earlier
    one, 0 the background; 255 (ignored by the loss and the mean IoU) for crowd regions and for the box of an object
    without outline (a YOLO box line, a COCO annotation with an empty segmentation), under the outlined objects.
    `class_names` are `background` and the data's classes (as multitask's segmentation head names them). A split whose
    objects have no outline at all is box data, an error; the job says how many objects lack one
    (`torchbricks.datasets.segmentation_layouts`).

    Args:
        root: The data folder.
        layout: `auto` (the COCO or YOLO data the folder holds), `coco` or `yolo`.
        image_size: Side (or [height, width]) images and masks are resized to; None: the tile size with tiling, else
            the training images' median size times `image_scale`.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        tile_size: Cut each image and its mask into tiles of this side (`torchbricks.datasets.tiled`); None: whole
            images.
        tile_overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).
        image_scale: With `image_size` and `tile_size` None, the images are resized to this many times the training
            images' median size.
        validation_fraction: Data without a validation split of its own: the fraction of the images held out for it.
        split_seed: The seed of that split (independent of the training seed).
        cache_megabytes: Memory for the training and validation images and their drawn masks, kept between epochs;
            0 decodes every image and draws every mask whenever it is read.
        last_phase_augmentations: The transforms applied instead of `augmentations` once early stopping's last phase
            has turned them off; None: none.

    Raises:
        DataError: The folder holds no COCO or YOLO data, a split has objects without any outline (box data: train
            task=detection), or a file or annotation is bad (see the layout's reader).
        ConfigError: Another `layout`, or a `tile_size` at least as large as every training image.
    """

    tasks = ("segmentation",)

    def __init__(
        self,
        root: str | Path,
        layout: str = "auto",
        image_size: int | Sequence[int] | None = None,
        batch_size: int = 32,
        num_workers: int = 1,
        augmentations: Sequence[Callable[..., Any]] | None = None,
        tile_size: int | None = None,
        tile_overlap: float = 0.2,
        image_scale: float = 1.0,
        validation_fraction: float = VALIDATION_FRACTION,
        split_seed: int = SPLIT_SEED,
        cache_megabytes: float = CACHE_MEGABYTES,
        last_phase_augmentations: Sequence[Callable[..., Any]] | None = None,
    ) -> None:
        super().__init__(
            root,
            task="segmentation",
            layout=layout,
            image_size=image_size,
            batch_size=batch_size,
            num_workers=num_workers,
            augmentations=augmentations,
            validation_fraction=validation_fraction,
            split_seed=split_seed,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            image_scale=image_scale,
            cache_megabytes=cache_megabytes,
            last_phase_augmentations=last_phase_augmentations,
        )

    def _layout_of(self, root: Path, layout: str) -> str:
        read = segmentation_layout(root, layout)
        if read not in OUTLINE_LAYOUTS:
            raise ConfigError(
                f"{type(self).__name__} reads the outlines of COCO or YOLO data, but {str(root)!r} holds segmentation "
                "masks in folders: read them with SegmentationFolderDataModule (task=segmentation with data.layout=auto "
                "picks it), or set data.layout=coco or yolo to read the outlines beside them."
            )
        return read


def _mask_datasets_of(dataset: Any) -> list[SegmentationFolderDataset]:
    """The `SegmentationFolderDataset`s a split's data set reads (itself, the one a `TiledDataset` or `Subset` wraps,
    or those of a `ConcatDataset`)."""
    if isinstance(dataset, SegmentationFolderDataset):
        return [dataset]
    if isinstance(dataset, ConcatDataset):
        return [masks for part in dataset.datasets for masks in _mask_datasets_of(part)]
    return _mask_datasets_of(dataset.dataset)


def _box_datasets_of(dataset: Any) -> list[BoxDataset]:
    """The `BoxDataset`s a split's data set reads (itself, the one a `TiledDataset` or `Subset` wraps, or those of a
    `ConcatDataset`)."""
    if isinstance(dataset, BoxDataset):
        return [dataset]
    if isinstance(dataset, ConcatDataset):
        return [box for part in dataset.datasets for box in _box_datasets_of(part)]
    return _box_datasets_of(dataset.dataset)


_COCO_POSITIONAL = ("batch_size", "num_workers", "augmentations", "tile_size", "tile_overlap")
"""`CocoDataModule`'s positional arguments after `image_size`, in the order it always had."""


class CocoDataModule(DetectionDataModule):
    """`DetectionDataModule` with the COCO layout: instances files `root/train.json`, `root/val.json` and, if
    present, `root/test.json` (otherwise the validation file is also the test split); image `file_name`s are
    relative to `root`; or as tools export COCO (`torchbricks.datasets.coco.read_coco_layout`). Classes are the
    categories in id order, `category_ids` their ids.

    Args:
        root: The data folder.
        task: `detection` or `multitask`.
        image_size: Side (or [height, width]) images, boxes and masks are resized to; None: the tile size with
            tiling, else 96.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        augmentations: `torchvision.transforms.v2` transforms applied to training samples after the resize.
        last_phase_augmentations: The transforms applied instead of `augmentations` once early stopping's last phase
            has turned them off (`early_stopping.finish_without_augmentations`); None: none.
        tile_size: Cut each image with its boxes (and mask) into tiles of this side (`torchbricks.datasets.tiled`:
            a box is kept in a tile when at least half of it lies inside, a box cut below that is an ignored region there); None:
            whole images.
        tile_overlap: Fraction of a tile shared by neighbouring tiles, in [0, 1).
        layout: `coco` (or `auto`, which means `coco` here); by keyword, as `DetectionDataModule`'s
            `validation_fraction` and `split_seed`: the positional order is the one this class always had
            (`CocoDataModule(root, "detection", 96, 16)`).

    Raises:
        DataError: A file or image is missing, an annotation is out of its image or names an unknown category.
        ConfigError: `tile_size` is at least as large as every training image.
    """

    fixed_layout = "coco"

    def __init__(
        self, root: str | Path, task: str = "detection", image_size: int | Sequence[int] | None = None, *args: Any, **kwargs: Any
    ) -> None:
        if len(args) > len(_COCO_POSITIONAL):
            raise TypeError(f"CocoDataModule takes at most {3 + len(_COCO_POSITIONAL)} positional arguments.")
        super().__init__(root, task, image_size=image_size, **dict(zip(_COCO_POSITIONAL, args, strict=False)), **kwargs)
