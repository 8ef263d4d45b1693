"""Training throughput (images per second) of the main job's model with bf16 mixed precision and compiled stages.

    .venv/bin/python benchmarks/bench_training.py [--sizes 8 64] [--batches 20] [--epochs 3]

The packaged model (`torchbricks train`'s CNN and classification head, built from the packaged configs) trains
under a Lightning `Trainer` on random images of each size, in five variants side by side in this one process:
eager float32, `trainer.precision=bf16-mixed`, `compile=true` (each stage compiled with `fullgraph=True`), both,
and eager float32 with `ema_decay=0.99` (a moving average of the weights updated after every step). An epoch is
timed from its first to its last batch; the first epoch (compilation) is left out and the fastest later epoch is
reported, with its ratio to eager float32. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from torchbricks.configuration import compose_config, create_brick_collection, instantiate_config
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.callbacks import ExponentialMovingAverage
from torchbricks.lightning.datamodules import NamedTensorDataset

VARIANTS = (  # name, precision, compiled stages, ema_decay
    ("eager float32", "32-true", False, None),
    ("bf16-mixed", "bf16-mixed", False, None),
    ("compiled", "32-true", True, None),
    ("compiled + bf16", "bf16-mixed", True, None),
    ("eager + ema_decay=0.99", "32-true", False, 0.99),
)
BATCH_SIZE = 64


class EpochTimer(pl.Callback):
    """Seconds per training epoch, from the first batch's start to the last batch's end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0:
            self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def images_per_second(
    size: int, precision: str, compile_stages: bool, ema_decay: float | None, batches: int, epochs: int
) -> float:
    config = compose_config()
    torch.manual_seed(0)
    module = LightningBrickCollection(
        "build/benchmarks",
        "training",
        create_brick_collection(config),
        instantiate_config(config, "optimizer"),
        compile_stages=compile_stages,
    )
    generator = torch.Generator().manual_seed(0)
    count = batches * BATCH_SIZE
    data = NamedTensorDataset(
        raw=torch.rand(count, 1, size, size, generator=generator), targets=torch.randint(0, 10, (count,), generator=generator)
    )
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer] if ema_decay is None else [timer, ExponentialMovingAverage(ema_decay)],
    )
    trainer.fit(module, DataLoader(data, batch_size=BATCH_SIZE, shuffle=True, drop_last=True))
    return count / min(timer.seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 64], help="image sizes (square, one channel)")
    parser.add_argument("--batches", type=int, default=20, help="batches of 64 per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant; the first is left out")
    arguments = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH_SIZE}, {arguments.batches} batches per epoch"
    )
    print("| image size | " + " | ".join(name for name, *_ in VARIANTS) + " |")
    print("| ---: |" + " ---: |" * len(VARIANTS))
    for size in arguments.sizes:
        rates = [
            images_per_second(size, precision, compiled, ema_decay, arguments.batches, arguments.epochs)
            for _, precision, compiled, ema_decay in VARIANTS
        ]
        cells = [f"{rate:,.0f} ({rate / rates[0]:.2f}x)" for rate in rates]
        print(f"| {size}x{size} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
