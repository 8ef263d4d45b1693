"""Trains two heads from two separately labelled sources on N CPU processes; run by test_multi_source.py.

    python ddp_multi_source_job.py OUT_FOLDER DEVICES MODE

Each process writes `rank<r>.json`: the source of each of its training steps, the balancer's weights after
training and the validation metrics it logged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from test_multi_source import sources, two_heads

from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.multi_source import MultiSourceDataModule
from torchbricks.loss_balancing import DynamicWeightAverage


class RecordSources(pl.Callback):
    def __init__(self) -> None:
        self.steps: list[list[str]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.steps.append(sorted(batch))


def main(out: Path, devices: int, mode: str) -> None:
    torch.manual_seed(0)
    balancer = DynamicWeightAverage(["shape/loss", "colour/loss"])
    module = LightningBrickCollection(
        out, "run", two_heads(), lambda params: torch.optim.SGD(params, lr=0.1), loss_balancer=balancer, missing_targets="skip"
    )
    record = RecordSources()
    trainer = pl.Trainer(
        max_epochs=3,
        devices=devices,
        strategy="ddp_find_unused_parameters_true" if devices > 1 else "auto",
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=[record],
    )
    trainer.fit(module, datamodule=MultiSourceDataModule(sources(32, 16), mode=mode, temperature=1.0, seed=5))
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("validation/")}
    result = {"steps": record.steps, "weights": balancer.weights.tolist(), "metrics": metrics, "world_size": trainer.world_size}
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
