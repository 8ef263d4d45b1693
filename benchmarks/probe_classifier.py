"""Probe: does a classifier learn a set's classes or memorise its training images? A plain loop, epoch by epoch.

Trains the library's `CompactCNN` (the packaged backbone) on an image folder (`ROOT/train/<class>/*`,
`ROOT/val/<class>/*`) for a wall-time budget and prints, after every epoch, the training loss, the training accuracy
(on the augmented images, in train mode) and the validation accuracy (eval mode). A training accuracy that climbs
while the validation one stays at chance is memorisation. One knob at a time is changed against the packaged
classification recipe (AdamW 1e-3, weight decay 1e-4, batch 16, warm-up then cosine over the budget, flip + turns
by up to 45 degrees + shift/zoom + colour jitter, average pooling of the coarsest features):

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/probe_classifier.py \\
        --root build/suite/data/polygons/classification \\
        [--seconds 150] [--pool avg|max|avgmax|multiscale] [--augmentations none|flip|default|any_angle|strong_colour] \\
        [--lr 1e-3] [--batch-size 16] [--weight-decay 1e-4] [--optimizer adamw|sgd]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from torchbricks.bag_of_bricks.compact_cnn import CompactCNN

WIDTHS = (16, 32, 64, 96, 128)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def augmentations(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    from torchvision.transforms import v2

    flip = v2.RandomHorizontalFlip()
    jitter = v2.ColorJitter(0.2, 0.2, 0.2)
    chosen: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
        "none": [],
        "flip": [flip],
        "default": [flip, v2.RandomAffine(45, (0.1, 0.1), (0.8, 1.2)), jitter],  # data/image_folder.yaml
        "any_angle": [flip, v2.RandomAffine(180, (0.1, 0.1), (0.8, 1.2)), jitter],
        "strong_colour": [
            flip,
            v2.RandomAffine(45, (0.1, 0.1), (0.8, 1.2)),
            v2.ColorJitter(0.4, 0.4, 0.4, 0.5),
            v2.RandomChannelPermutation(),
            v2.RandomGrayscale(0.2),
        ],
    }
    return v2.Compose(chosen[name]) if chosen[name] else None


class ProbedClassifier(nn.Module):
    """`CompactCNN`'s stem and stages, then a linear classifier on pooled features.

    `pool`: `avg` (the packaged head), `max`, `avgmax` (both, concatenated) or `multiscale` (average and max of
    the last three stages, strides 8 to 32).
    """

    def __init__(self, num_classes: int, pool: str = "avg") -> None:
        super().__init__()
        if pool not in ("avg", "max", "avgmax", "multiscale"):
            raise ValueError(f"pool must be avg, max, avgmax or multiscale, got {pool!r}")
        self.pool = pool
        self.network = CompactCNN(WIDTHS)
        features = {"avg": WIDTHS[-1], "max": WIDTHS[-1], "avgmax": 2 * WIDTHS[-1], "multiscale": 2 * sum(WIDTHS[-3:])}
        self.classifier = nn.Linear(features[pool], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        stages = []
        features = self.network.stem(images)
        for stage in self.network.stages:
            features = stage(features)
            stages.append(features)
        if self.pool == "multiscale":
            kept = stages[-3:]
            return self.classifier(torch.cat([f.mean(dim=(2, 3)) for f in kept] + [f.amax(dim=(2, 3)) for f in kept], 1))
        pooled = {
            "avg": lambda f: f.mean(dim=(2, 3)),
            "max": lambda f: f.amax(dim=(2, 3)),
            "avgmax": lambda f: torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], 1),
        }[self.pool]
        return self.classifier(pooled(features))


def read_split(root: Path, split: str, classes: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / split / name).iterdir()):
            images.append(torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def probe(
    root: Path,
    seconds: float,
    pool: str = "avg",
    augmentation: str = "default",
    lr: float = 1e-3,
    batch_size: int = 16,
    weight_decay: float = 1e-4,
    seed: int = 0,
    optimizer_name: str = "adamw",
    mixup: float = 0.0,
    report: Callable[[str], None] = print,
) -> list[dict[str, float]]:
    """Trains for `seconds` of wall time; returns (and reports) one record per epoch.

    `mixup` > 0: each batch is blended with itself in another order, `lam * a + (1 - lam) * b` with `lam` drawn
    from Beta(mixup, mixup), and the loss mixes the two labels by the same weights; the training accuracy then
    counts the label of the larger weight.
    """
    torch.manual_seed(seed)
    classes = sorted(path.name for path in (root / "train").iterdir() if path.is_dir())
    train_images, train_labels = read_split(root, "train", classes)
    val_images, val_labels = read_split(root, "val", classes)
    augment = augmentations(augmentation)
    model = ProbedClassifier(len(classes), pool)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)

    def normalized(images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - mean) / std

    optimizer: torch.optim.Optimizer
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    records: list[dict[str, float]] = []
    started = time.perf_counter()
    while not records or time.perf_counter() - started < seconds:
        model.train()
        order = torch.randperm(len(train_images))
        correct, total_loss = 0, 0.0
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = train_images[index]
            if augment is not None:
                batch = torch.stack([augment(image) for image in batch])
            progress = min((time.perf_counter() - started) / seconds, 1.0)
            for group in optimizer.param_groups:  # warm-up over 5 % of the budget, then cosine to zero
                group["lr"] = lr * min(1.0, progress / 0.05) * 0.5 * (1 + math.cos(math.pi * progress))
            labels = train_labels[index]
            if mixup > 0:
                weight = float(torch.distributions.Beta(mixup, mixup).sample())
                other = torch.randperm(len(index))
                inputs = normalized(batch)
                logits = model(weight * inputs + (1 - weight) * inputs[other])
                loss = weight * nn.functional.cross_entropy(logits, labels) + (1 - weight) * nn.functional.cross_entropy(
                    logits, labels[other]
                )
                labels = labels if weight >= 0.5 else labels[other]
            else:
                logits = model(normalized(batch))
                loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == labels).sum())
            total_loss += float(loss) * len(index)
        model.eval()
        with torch.no_grad():
            val_accuracy = float((model(normalized(val_images)).argmax(1) == val_labels).float().mean())
        record = {
            "epoch": len(records) + 1,
            "seconds": time.perf_counter() - started,
            "loss": total_loss / len(order),
            "train_accuracy": correct / len(order),
            "val_accuracy": val_accuracy,
        }
        records.append(record)
        report(
            f"epoch {record['epoch']} {record['seconds']:.0f} s loss {record['loss']:.3f} "
            f"train {record['train_accuracy']:.3f} val {record['val_accuracy']:.3f}"
        )
    return records


def main(argv: Sequence[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="an image folder with train/ and val/")
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--pool", default="avg", choices=["avg", "max", "avgmax", "multiscale"])
    parser.add_argument("--augmentations", default="default", choices=["none", "flip", "default", "any_angle", "strong_colour"])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"], help="sgd: Nesterov momentum 0.9")
    parser.add_argument("--mixup", type=float, default=0.0, help="Beta(a, a) of mixup's blending weight; 0: no mixup")
    arguments = parser.parse_args(argv)
    return probe(
        arguments.root,
        arguments.seconds,
        arguments.pool,
        arguments.augmentations,
        arguments.lr,
        arguments.batch_size,
        arguments.weight_decay,
        arguments.seed,
        arguments.optimizer,
        arguments.mixup,
    )


if __name__ == "__main__":
    main()
