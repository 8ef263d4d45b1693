"""Trains a two-head model on 1 or 2 CPU processes with a loss balancer; run by test_distributed.py.

    python ddp_balancing_job.py OUT_FOLDER OPTIONS_JSON

OPTIONS_JSON: `devices` (1 or 2), `balancer` (a key of `BALANCERS`), `ema_decay` (null or a decay),
`accumulate` (`trainer.accumulate_grad_batches`), `epochs`, `lr` (SGD's), `batch_size` (of the whole step: each of
2 processes gets half), `eval_batch_size` (of each process's validation and test batches; its share of
`batch_size` by default), `class_weights` (of the shape head's 3 classes), `heads` (`classes`, the default: two
classification heads; `dense`: the packaged detection, segmentation and multi-label heads of task=multitask and a
points head, on images whose boxes, points, known labels and unignored pixels vary from image to image), `compile`
(`compile_stages`, false by default). The two processes' batches of a step are together the one process's batch of
that step.

Each process writes `rank<r>.pt`: the module's state_dict after training and the values logged at the end of the
fit (the balancer's among them) and of the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torchmetrics.classification import MulticlassAccuracy

from torchbricks import BrickCollection, BrickLoss, BrickMetricSingle, BrickTrainable
from torchbricks.bag_of_bricks.losses import ClassWeightedCrossEntropyLoss
from torchbricks.bag_of_bricks.multilabel_classification import create_multilabel_classification_head
from torchbricks.bag_of_bricks.object_detection import create_object_detection_head
from torchbricks.bag_of_bricks.point_detection import create_point_detection_head
from torchbricks.bag_of_bricks.segmentation import create_segmentation_head
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.callbacks import ExponentialMovingAverage
from torchbricks.lightning.datamodules import NamedTensorDataset
from torchbricks.loss_balancing import create_loss_balancer

NUM_SAMPLES = 32


def two_heads(class_weights: list[float] | None = None) -> BrickCollection:
    """A shared trunk and two classification heads, each with its own loss and accuracy; `class_weights` weigh the
    classes of the shape head's cross entropy."""

    def head(targets: str, num_classes: int, weights: list[float] | None = None) -> dict[str, Any]:
        loss = ClassWeightedCrossEntropyLoss(weights)
        return {
            "classify": BrickTrainable(nn.Linear(8, num_classes), input_names=["features"], output_names=["./logits"]),
            "loss": BrickLoss(loss, input_names=["./logits", targets], output_names=["./loss"]),
            "accuracy": BrickMetricSingle(
                MulticlassAccuracy(num_classes=num_classes, average="micro"), input_names=["./logits", targets]
            ),
        }

    return BrickCollection(
        {
            "trunk": BrickTrainable(nn.Sequential(nn.Linear(4, 8), nn.Tanh()), input_names=["raw"], output_names=["features"]),
            "shape": head("shape_targets", 3, class_weights),
            "colour": head("colour_targets", 2),
        }
    )


def dataset() -> NamedTensorDataset:
    generator = torch.Generator().manual_seed(3)
    raw = torch.randn(NUM_SAMPLES, 4, generator=generator)
    shape = (raw[:, 0] > 0).long() + (raw[:, 1] > 0.5).long()
    # The colour head is taught the opposite of what the shape head is, so that their gradients conflict.
    colour = (raw[:, 0] < 0.2).long()
    return NamedTensorDataset(raw=raw, shape_targets=shape, colour_targets=colour)


def dense_heads() -> BrickCollection:
    """A small convolutional trunk (features at stride 2) under the packaged detection, segmentation, multi-label
    (presence) and points heads."""
    trunk = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Tanh())
    features = ("features", 2)
    collection = BrickCollection(
        {
            "trunk": BrickTrainable(trunk, input_names=["raw"], output_names=["features"]),
            "detection": create_object_detection_head(2, 8, *features, "target_boxes", "target_labels", hidden_channels=8),
            "points": create_point_detection_head(2, 8, *features, "target_points", "target_point_labels", hidden_channels=8),
            "presence": create_multilabel_classification_head(2, 8, "features", "target_presence"),
            "segmentation": create_segmentation_head(3, [8], ["features"], "target_mask", output_stride=2, hidden_channels=8),
        }
    )
    # BatchNorm normalizes each process's half batch by its own statistics under DDP (SyncBatchNorm is Lightning's
    # sync_batchnorm=True), which trains other weights whatever the losses do: left out of this comparison
    for module in list(collection.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    return collection


def dense_dataset() -> NamedTensorDataset:
    """16 x 16 images with 0 to 3 boxes, 1 to 4 points, a class present, absent or unknown (-1), and masks partly
    ignored (255), all varying from image to image."""
    generator = torch.Generator().manual_seed(3)
    corners = torch.rand(NUM_SAMPLES, 3, 2, generator=generator) * 10
    boxes = torch.cat((corners, corners + 2 + torch.rand(NUM_SAMPLES, 3, 2, generator=generator) * 4), dim=-1)
    labels = torch.randint(0, 2, (NUM_SAMPLES, 3), generator=generator)
    labels[torch.arange(3) >= torch.randint(0, 4, (NUM_SAMPLES, 1), generator=generator)] = -1
    points = torch.rand(NUM_SAMPLES, 4, 2, generator=generator) * 16
    point_labels = torch.randint(0, 2, (NUM_SAMPLES, 4), generator=generator)
    point_labels[torch.arange(4) > torch.randint(0, 4, (NUM_SAMPLES, 1), generator=generator)] = -1
    presence = torch.randint(-1, 2, (NUM_SAMPLES, 2), generator=generator)
    mask = torch.randint(0, 3, (NUM_SAMPLES, 16, 16), generator=generator)
    mask[(torch.arange(16)[:, None] < torch.randint(0, 16, (NUM_SAMPLES, 1, 1), generator=generator)).expand(-1, -1, 16)] = 255
    raw = torch.rand(NUM_SAMPLES, 3, 16, 16, generator=generator)
    return NamedTensorDataset(
        raw=raw,
        target_boxes=boxes,
        target_labels=labels,
        target_points=points,
        target_point_labels=point_labels,
        target_presence=presence,
        target_mask=mask,
    )


def main(out: Path, options: dict[str, Any]) -> None:
    devices = int(options.get("devices", 1))
    dense = options.get("heads", "classes") == "dense"
    torch.manual_seed(0)
    collection = dense_heads() if dense else two_heads(options.get("class_weights"))
    balancer = create_loss_balancer(options.get("balancer", "fixed"), collection.loss_names())
    module = LightningBrickCollection(
        out,
        "run",
        collection,
        lambda params: torch.optim.SGD(params, lr=float(options.get("lr", 0.5))),
        loss_balancer=balancer,
        write_files=False,
        compile_stages=bool(options.get("compile", False)),
    )
    batch_size = int(options.get("batch_size", 8)) // devices
    data = dense_dataset() if dense else dataset()
    callbacks = [] if options.get("ema_decay") is None else [ExponentialMovingAverage(float(options["ema_decay"]))]
    trainer = pl.Trainer(
        max_epochs=int(options.get("epochs", 2)),
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        accelerator="cpu",
        accumulate_grad_batches=int(options.get("accumulate", 1)),
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    # Under DDP Lightning shuffles the training samples with DistributedSampler (seed 0, reseeded per epoch) and deals
    # them out in turn; on one process the same sampler for one replica gives each step the union of their batches.
    sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0) if devices == 1 else None
    train_loader = DataLoader(data, batch_size=batch_size, sampler=sampler)
    eval_batch_size = int(options.get("eval_batch_size", batch_size))
    trainer.fit(module, train_loader, DataLoader(data, batch_size=eval_batch_size))
    fitted = {name: float(value) for name, value in trainer.callback_metrics.items()}
    state = {name: value.detach().clone() for name, value in module.state_dict().items()}
    tested = trainer.test(module, DataLoader(data, batch_size=eval_batch_size), verbose=False)[0]
    result = {"state_dict": state, "fitted": fitted, "tested": tested, "world_size": trainer.world_size}
    torch.save(result, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
