"""The packaged vision tasks on the generated shapes: quality and wall time per task, and training speed against a
plain LightningModule running the same modules, in one process.

- `quality`: writes the shapes data set (96x96, 500 training and 100 validation images per layout) unless it exists,
  then runs `torchbricks train task=<task> data.root=...` for each task as a user does (a subprocess, packaged
  defaults, progress bar off so the log stays small) and reports the test metrics of `metrics.json` and the wall
  time from the command to its last file.
- `speed`: images per second of a training epoch (the second of two, validation off) for a task's collection in
  `LightningBrickCollection` and for a hand-written LightningModule calling the very same modules, losses and
  metrics, on the same data module, alternated in one process; reported as a ratio.

Run: .venv/bin/python benchmarks/bench_tasks.py quality
     .venv/bin/python benchmarks/bench_tasks.py speed --task detection
     .venv/bin/python benchmarks/bench_tasks.py speed --task segmentation --overrides data.image_size=192
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from torchbricks.configuration import compose_config, create_brick_collection, instantiate_config
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.lightning.module import LightningBrickCollection
from torchbricks.lightning.task_resolvers import register_resolvers

TASKS = {
    "classification": ("classification", ["classification/accuracy"]),
    "segmentation": ("segmentation", ["segmentation/mean_iou"]),
    "detection": ("detection", ["detection/map_50", "detection/map"]),
    "multitask": ("detection", ["detection/map_50", "segmentation/mean_iou", "presence/f1"]),
}
TARGETS = {"classification/accuracy": 0.95, "segmentation/mean_iou": 0.75, "detection/map_50": 0.70}


def quality(root: Path, experiments: Path, tasks: list[str]) -> None:
    if not root.exists():
        write_shapes_dataset(root, num_train=500, num_val=100, image_size=96)
    console = Path(sys.executable).parent / "torchbricks"
    print("| task | metric | test value | target | wall time (s) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for task in tasks:
        layout, names = TASKS[task]
        started = time.perf_counter()
        command = [str(console), "train", f"task={task}", f"data.root={root / layout}"]
        command += [f"experiment.path_experiments={experiments}", f"experiment.name={task}", "trainer.enable_progress_bar=false"]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
        wall = time.perf_counter() - started
        if completed.returncode != 0:
            print(f"| {task} | failed: {completed.stderr.strip().splitlines()[-1:]} | | | {wall:.0f} |")
            continue
        test = json.loads((experiments / task / "metrics.json").read_text())["test"]
        for name in names:
            target = TARGETS.get(name)
            print(f"| {task} | {name} | {test[name]:.3f} | {'' if target is None else f'>= {target}'} | {wall:.0f} |")


class _PlainTask(pl.LightningModule):
    """A task written by hand around the modules of `collection`'s head `name`: the same modules, loss and metrics
    the collection runs, called in order by the subclass's `training_step`."""

    def __init__(self, collection: Any, lr: float, name: str) -> None:
        super().__init__()
        self.preprocessor, self.backbone = collection["preprocessor"].model, collection["backbone"].model
        self.loss, self.metrics = collection[name]["loss"].model, collection[name]["metrics"].metrics
        self.lr = lr

    def log_loss(self, loss: torch.Tensor, batch_size: int) -> torch.Tensor:
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch_size)
        return loss

    def on_train_epoch_end(self) -> None:
        self.metrics.compute()
        self.metrics.reset()

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


class PlainClassification(_PlainTask):
    """The classification task written by hand."""

    def __init__(self, collection: Any, lr: float) -> None:
        super().__init__(collection, lr, "classification")
        self.classify = collection["classification"]["classify"].model

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, _, prediction = self.classify(self.backbone(self.preprocessor(batch["raw"])))
        self.metrics.update(prediction, batch["targets"])
        return self.log_loss(self.loss(logits, batch["targets"]), len(logits))


class PlainDetection(_PlainTask):
    """The detection task written by hand."""

    def __init__(self, collection: Any, lr: float) -> None:
        super().__init__(collection, lr, "detection")
        head = collection["detection"]
        self.neck, self.detect, self.decode = head["neck"].model, head["detect"].model, head["decode"].model

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        heatmap, distances = self.detect(self.neck(*self.backbone(self.preprocessor(batch["raw"]))))
        boxes, scores, labels = self.decode(heatmap, distances)
        loss_heatmap, loss_box = self.loss(heatmap, distances, batch["target_boxes"], batch["target_labels"])
        self.metrics.update(boxes, scores, labels, batch["target_boxes"], batch["target_labels"])
        return self.log_loss(loss_heatmap + loss_box, len(heatmap))


class PlainSegmentation(_PlainTask):
    """The segmentation task written by hand."""

    def __init__(self, collection: Any, lr: float) -> None:
        super().__init__(collection, lr, "segmentation")
        head = collection["segmentation"]
        self.neck, self.classify = head["neck"].model, head["classify"].model

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, _, mask = self.classify(self.neck(*self.backbone(self.preprocessor(batch["raw"]))))
        self.metrics.update(mask, batch["targets"])
        return self.log_loss(self.loss(logits, batch["targets"]), len(logits))


class _EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._started)


def _epoch_seconds(module: pl.LightningModule, data: Any, limit_batches: int | None) -> float:
    timer = _EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=limit_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=data)
    return timer.times[-1]


def speed(root: Path, task: str, repeats: int, limit_batches: int | None, overrides: list[str]) -> None:
    if not root.exists():
        write_shapes_dataset(root, num_train=500, num_val=100, image_size=96)
    register_resolvers()
    layout, _ = TASKS[task]
    config = compose_config([f"task={task}", f"data.root={root / layout}", *overrides])
    data = instantiate_config(config, "data")
    data.setup()
    images = min(len(data.train_dataloader()), limit_batches or len(data.train_dataloader())) * data.batch_size
    plain_class = {"classification": PlainClassification, "detection": PlainDetection, "segmentation": PlainSegmentation}[task]
    lr = float(config.optimizer.lr)
    timings: dict[str, list[float]] = {"bricks": [], "plain": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeats):
            torch.manual_seed(0)
            collection = create_brick_collection(config)
            bricks = LightningBrickCollection(
                folder, "speed", collection, lambda parameters: torch.optim.AdamW(parameters, lr=lr)
            )
            timings["bricks"].append(_epoch_seconds(bricks, data, limit_batches))
            torch.manual_seed(0)
            timings["plain"].append(_epoch_seconds(plain_class(create_brick_collection(config), lr), data, limit_batches))
    bricks_rate = images / statistics.median(timings["bricks"])
    plain_rate = images / statistics.median(timings["plain"])
    print(f"task={task} {' '.join(overrides)}: {images} training images per epoch, median of {repeats} alternated runs")
    print(f"  LightningBrickCollection: {bricks_rate:.1f} images/s   plain LightningModule: {plain_rate:.1f} images/s")
    print(f"  ratio (bricks / plain): {bricks_rate / plain_rate:.3f}   epoch seconds: {json.dumps(timings)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["quality", "speed"])
    parser.add_argument("--root", type=Path, default=Path("build/bench_shapes"), help="the generated data set")
    parser.add_argument("--experiments", type=Path, default=Path("build/bench_experiments"))
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="tasks of the quality mode")
    parser.add_argument(
        "--task", default="detection", choices=["classification", "detection", "segmentation"], help="task of the speed mode"
    )
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides of the speed mode: data.image_size=192")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch in the speed mode")
    arguments = parser.parse_args()
    if arguments.mode == "quality":
        quality(arguments.root, arguments.experiments, arguments.tasks)
    else:
        speed(arguments.root, arguments.task, arguments.repeats, arguments.limit_batches, arguments.overrides)


if __name__ == "__main__":
    main()
