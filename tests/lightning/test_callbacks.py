from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from torchbricks import BrickCollection, BrickLoss, BrickTrainable
from torchbricks.errors import ConfigError
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.callbacks import EpochSeed, LineProgressBar, MetricHistory
from torchbricks.lightning.datamodules import NamedTensorDataset


class _RecordBatches(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: dict, batch_idx: int) -> None:
        self.seen.append(batch["index"].tolist())


def _fit(
    tmp_path: Path,
    callbacks: list[pl.Callback],
    max_epochs: int = 3,
    enable_progress_bar: bool = False,
    checkpoints: bool = False,
) -> None:
    collection = BrickCollection(
        {
            "model": BrickTrainable(nn.Linear(1, 2), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce"]),
        }
    )
    data = NamedTensorDataset(raw=torch.randn(16, 1), targets=torch.randint(0, 2, (16,)), index=torch.arange(16))
    module = LightningBrickCollection(tmp_path, "run", collection, partial(torch.optim.SGD, lr=0.1))
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=checkpoints,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        callbacks=callbacks + ([ModelCheckpoint(tmp_path / "checkpoints", save_on_train_epoch_end=True)] if checkpoints else []),
    )
    trainer.fit(module, DataLoader(data, batch_size=4, shuffle=True), DataLoader(data, batch_size=8))


def test_epoch_seed_makes_each_epochs_order_depend_only_on_seed_and_epoch(tmp_path: Path) -> None:
    first, second, other_seed = _RecordBatches(), _RecordBatches(), _RecordBatches()

    torch.manual_seed(1)
    _fit(tmp_path, [EpochSeed(7), first])
    torch.manual_seed(2)  # whatever ran before does not matter
    _fit(tmp_path, [EpochSeed(7), second])
    _fit(tmp_path, [EpochSeed(8), other_seed])

    assert first.seen == second.seen
    assert first.seen != other_seed.seen
    epochs = [[index for batch in first.seen[epoch * 4 : epoch * 4 + 4] for index in batch] for epoch in range(3)]
    assert all(sorted(order) == list(range(16)) for order in epochs)
    assert epochs[0] != epochs[1]  # shuffled again every epoch


def test_metric_history_records_each_epoch_and_travels_in_checkpoints(tmp_path: Path) -> None:
    history = MetricHistory(tmp_path / "run", draw=False)

    _fit(tmp_path, [history], max_epochs=2)

    written = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [record["epoch"] for record in written] == [0, 1]
    assert {"train/loss", "validation/loss"} <= set(written[0])
    assert not any(name.endswith("_step") for name in written[0])
    restored = MetricHistory(tmp_path / "other")
    restored.load_state_dict(history.state_dict())
    assert restored.history == written


class _WatchedHistory(MetricHistory):
    """Notes, after each write, the epochs of `history.json` whenever `curves.png` was drawn anew."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drawn: list[list[int]] = []

    def write(self, draw: bool | None = None) -> None:
        curves = self.path_experiment / "curves.png"
        before = self._version(curves)
        super().write(draw)
        if self._version(curves) != before:  # written anew (atomically: a new file)
            self.drawn.append([record["epoch"] for record in self.history])

    @staticmethod
    def _version(path: Path) -> tuple[int, int] | None:
        return (path.stat().st_ino, path.stat().st_mtime_ns) if path.exists() else None


@pytest.mark.slow
@pytest.mark.parametrize("checkpoints", [False, True])  # a checkpoint records the epoch before the callback's hooks
def test_metric_history_draws_the_curves_every_n_epochs_and_at_the_end(tmp_path: Path, checkpoints: bool) -> None:
    history = _WatchedHistory(tmp_path / "run", draw_every_n_epochs=2)

    _fit(tmp_path, [history], max_epochs=5, checkpoints=checkpoints)

    assert history.drawn == [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0


def test_metric_history_refuses_a_drawing_interval_below_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="draw_every_n_epochs must be 1 or more, got 0"):
        MetricHistory(tmp_path, draw_every_n_epochs=0)


def test_line_progress_bar_prints_one_plain_line_per_epoch(tmp_path: Path) -> None:
    stream = io.StringIO()

    _fit(tmp_path, [LineProgressBar(stream)], max_epochs=3, enable_progress_bar=True)

    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    assert all("train/loss " in line and "validation/loss " in line for line in lines)
