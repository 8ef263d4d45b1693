"""The plain reference of the benchmark suite: ResNet-18 from scratch trained the obvious way, for a wall-time budget.

No Lightning, no Hydra, no packaged config: a plain PyTorch loop, AdamW (lr 1e-3, weight decay 0.05 on weights), a
linear warm-up over the first 5 % of the budget then a cosine decay to zero at the end of the budget (the schedule
follows the clock, so it always completes), batch norm in train mode while training, and a horizontal flip. Images
keep their native size. Training stops at the first step past the budget; the final weights are tested.

That recipe (`Recipe()`) was chosen on the tuning sets `shapes` and `variety` only, among five (`Recipe` fields):
AdamW 2e-3 with a random resized crop (scale 0.6-1, aspect kept) at the native size, the same at 64 px, AdamW 1e-3
flip only at the native size, AdamW 2e-3 flip only at 64 px, SGD (Nesterov, 0.05) flip only at 64 px; two minutes
each, one thread: mean test accuracy 0.43, 0.38, 0.49, 0.49, 0.32 (benchmarks/README.md).

- classification: `torchvision.models.resnet18(num_classes=K)` on torchvision's `ImageFolder`; test accuracy by
  torchmetrics `MulticlassAccuracy(average="micro")` (the packaged head's definition).
- segmentation: the library's ready collection `create_bricks_segmentation(backbone="resnet18")` (ResNet-18 features
  at strides 8-32, an upsampling FPN neck and head), driven by the plain loop; masks read by the library's
  `SegmentationFolderDataModule`; test mean IoU by torchmetrics `MulticlassJaccardIndex(ignore_index=255)`.
- detection: the library's ready collection `create_bricks_object_detection(backbone="resnet18")` in the plain loop,
  as the issue's reference did; boxes read by `CocoDataModule`; test mAP@0.5 by the library's
  `BoxMeanAveragePrecision` (torchmetrics' COCO mAP), the metric the job reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["Recipe", "ReferenceResult", "train_reference"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class ReferenceResult:
    metric: float
    wall_seconds: float
    train_seconds: float
    steps: int
    epochs: float


def _learning_rate(base: float, fraction: float, warmup: float = 0.05) -> float:
    if fraction < warmup:
        return base * max(fraction / warmup, 0.01)
    return base * 0.5 * (1 + math.cos(math.pi * min((fraction - warmup) / (1 - warmup), 1.0)))


def _image_size(root: Path, layout: str) -> tuple[int, int]:
    from PIL import Image

    pattern = {"classification": "train/*/*", "segmentation": "train/images/*", "detection": "images/train/*"}[layout]
    first = next(path for path in sorted(root.glob(pattern)) if path.is_file())
    width, height = Image.open(first).size
    return height, width


def _batch_size(root: Path, layout: str, largest: int = 16) -> int:
    """16, or half the training images of a tiny set (every epoch then has batches of at least two)."""
    pattern = {"segmentation": "train/images/*", "detection": "images/train/*"}[layout]
    return max(2, min(largest, len(list(root.glob(pattern))) // 2))


def _forever(loader: Any) -> Iterator[Any]:
    if len(loader) == 0:
        raise ValueError(f"The training loader yields no batch ({len(loader.dataset)} samples, batch size {loader.batch_size}).")
    while True:
        yield from loader


@dataclass(frozen=True)
class Recipe:
    """The reference's knobs (chosen on the tuning sets only; see benchmarks/README.md)."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    image_size: int | None = None
    """Square side the images are resized to; None keeps their native size."""
    crop_scale: float | None = None
    """Smallest area of the random resized crop; None trains on whole images (flip only)."""


def _train(model: nn.Module, loader: Any, loss_of: Any, budget_seconds: float, recipe: Recipe) -> tuple[float, int, float]:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
    lr = recipe.lr
    if recipe.optimizer == "sgd":
        groups[0]["weight_decay"] = 5e-4
        optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr)
    model.train()
    started, steps = time.perf_counter(), 0
    batches_per_epoch = max(len(loader), 1)
    for batch in _forever(loader):
        fraction = (time.perf_counter() - started) / budget_seconds
        if fraction >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(lr, fraction)
        loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    return time.perf_counter() - started, steps, steps / batches_per_epoch


def _augmentations(size: tuple[int, int], recipe: Recipe) -> list[Any]:
    from torchvision.transforms import v2

    crop = [] if recipe.crop_scale is None else [v2.RandomResizedCrop(size, scale=(recipe.crop_scale, 1.0), ratio=(1.0, 1.0))]
    return [*crop, v2.RandomHorizontalFlip()]


def _size(root: Path, layout: str, recipe: Recipe) -> tuple[int, int]:
    return _image_size(root, layout) if recipe.image_size is None else (recipe.image_size, recipe.image_size)


def _classification(root: Path, budget_seconds: float, num_workers: int, recipe: Recipe) -> tuple[float, float, int, float]:
    from torchmetrics.classification import MulticlassAccuracy
    from torchvision import models
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    size = _size(root, "classification", recipe)
    normalize = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train_transform = v2.Compose([v2.ToImage(), v2.Resize(size), *_augmentations(size, recipe), *normalize])
    test_transform = v2.Compose([v2.ToImage(), v2.Resize(size), *normalize])
    train = ImageFolder(str(root / "train"), train_transform)
    test = ImageFolder(str(root / ("test" if (root / "test").is_dir() else "val")), test_transform)
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=min(32, len(train) // 2),
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    model = models.resnet18(num_classes=len(train.classes))
    criterion = nn.CrossEntropyLoss()
    train_seconds, steps, epochs = _train(
        model, loader, lambda batch: criterion(model(batch[0]), batch[1]), budget_seconds, recipe
    )
    metric = MulticlassAccuracy(num_classes=len(train.classes), average="micro")
    model.eval()
    with torch.no_grad():
        for images, labels in torch.utils.data.DataLoader(test, batch_size=64):
            metric.update(model(images).argmax(1), labels)
    return float(metric.compute()), train_seconds, steps, epochs


def _dense(
    task: str, root: Path, budget_seconds: float, num_workers: int, recipe: Recipe, tile_size: int | None = None
) -> tuple[float, float, int, float]:
    from torchbricks.tags import Stage

    layout = "segmentation" if task == "segmentation" else "detection"
    size = (tile_size, tile_size) if tile_size else _size(root, layout, recipe)
    augmentations = _augmentations(size, recipe)
    if task == "segmentation":
        from torchmetrics.classification import MulticlassJaccardIndex

        from torchbricks.bag_of_bricks.segmentation import create_bricks_segmentation
        from torchbricks.lightning.datamodules import SegmentationFolderDataModule

        data: Any = SegmentationFolderDataModule(
            root, size, batch_size=_batch_size(root, layout), num_workers=num_workers, augmentations=augmentations
        )
        model = create_bricks_segmentation(data.num_classes, backbone="resnet18", num_scales=3, visualize=False)
        metric: Any = MulticlassJaccardIndex(num_classes=data.num_classes, ignore_index=255)
        outputs, targets, key = ["head/mask"], ["targets"], "mean_iou"
    else:
        from torchbricks.bag_of_bricks.object_detection import BoxMeanAveragePrecision, create_bricks_object_detection
        from torchbricks.lightning.datamodules import CocoDataModule

        batch_size = 16 if tile_size else _batch_size(root, layout)
        data = CocoDataModule(
            root,
            "detection",
            size,
            batch_size=batch_size,
            num_workers=num_workers,
            augmentations=augmentations,
            tile_size=tile_size,
        )
        model = create_bricks_object_detection(data.num_classes, backbone="resnet18", num_scales=3, visualize=False)
        metric = BoxMeanAveragePrecision()
        outputs, targets, key = ["head/boxes", "head/scores", "head/labels"], ["target_boxes", "target_labels"], "map_50"
    data.setup("fit")
    losses = model.loss_names()

    def loss_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        named = model(batch, tags=Stage.TRAIN, output_names=losses)
        return sum(named[name] for name in losses)  # type: ignore[return-value]

    train_seconds, steps, epochs = _train(model, data.train_dataloader(), loss_of, budget_seconds, recipe)
    model.eval()
    with torch.no_grad():
        for batch in data.test_dataloader():
            named = model({"raw": batch["raw"]}, tags=Stage.INFERENCE, output_names=outputs)
            metric.update(*(named[name] for name in outputs), *(batch[name] for name in targets))
    value = metric.compute()
    return float(value[key] if isinstance(value, dict) else value), train_seconds, steps, epochs


def train_reference(
    task: str,
    root: Path | str,
    budget_seconds: float,
    num_workers: int = 1,
    seed: int = 0,
    recipe: Recipe | None = None,
    tile_size: int | None = None,
) -> ReferenceResult:
    """Trains the plain reference for `task` on the data folder `root` for `budget_seconds`; returns its test metric.

    The test split is `test` when the folder has one, otherwise `val` (as the job does). With `tile_size`
    (detection), the images are cut into tiles as the job's `data.tile_size` cuts them.
    """
    torch.manual_seed(seed)
    started = time.perf_counter()
    root = Path(root)
    recipe = recipe or Recipe()
    if task == "classification":
        metric, train_seconds, steps, epochs = _classification(root, budget_seconds, num_workers, recipe)
    elif task in ("segmentation", "detection"):
        metric, train_seconds, steps, epochs = _dense(task, root, budget_seconds, num_workers, recipe, tile_size)
    else:
        raise ValueError(f"No plain reference for task {task!r}; references exist for classification, segmentation, detection.")
    return ReferenceResult(metric, time.perf_counter() - started, train_seconds, steps, epochs)
