"""The callbacks writing what `LightningBrickCollection` leaves in its experiment folder.

The module computes and logs; these callbacks write, from the global-zero process only:

- `BrickGraphWriter`: `brick_graph.md`, the mermaid graph of the collection, when fitting or testing starts;
- `EpochMetricsWriter`: `metrics_<stage>.json`, every value of a stage's last epoch (`module.epoch_metrics`,
  confusion matrices included), once the module has computed them;
- `BrickWeightsWriter`: `bricks/`, one checkpoint per brick (`BrickCollection.save_bricks`), when fitting ends.

`LightningBrickCollection.configure_callbacks` adds the three to any Trainer (unless `write_files=False`, or the
Trainer holds one of the same kind already, which is then kept), so a plain `pl.Trainer` gets the files.
They work with any LightningModule that has a `path_experiment`, a `brick_collection` and an `epoch_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from torchbricks._experiment import BRICKS_FOLDER
from torchbricks._extras import require
from torchbricks._files import write_json, write_text
from torchbricks.brick_collection import BrickCollection

require("pytorch_lightning", "lightning")
import pytorch_lightning as pl  # noqa: E402 (after `require`, so a missing extra names what to install)

__all__ = [
    "BRICKS_FOLDER",
    "GRAPH_FILE",
    "METRICS_FILE",
    "BrickGraphWriter",
    "BrickWeightsWriter",
    "EpochMetricsWriter",
    "create_experiment_file_callbacks",
    "to_json",
]

METRICS_FILE = "metrics_{stage}.json"
GRAPH_FILE = "brick_graph.md"


class ExperimentModule(Protocol):
    """What the writers read from the LightningModule."""

    path_experiment: Path
    brick_collection: BrickCollection
    epoch_metrics: dict[str, dict[str, Any]]


def to_json(value: Any) -> Any:
    """Metric values as JSON-ready Python: tensors become numbers or nested lists, containers are walked.

    Example:
        >>> to_json({"accuracy": torch.tensor(0.5), "curve": (torch.tensor([1, 2]), 3)})
        {'accuracy': 0.5, 'curve': [[1, 2], 3]}
    """
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value


class BrickGraphWriter(pl.Callback):
    """Writes `<experiment>/brick_graph.md`, the mermaid graph of the module's collection, when fitting or testing
    starts."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module)

    def _write(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        from torchbricks.graph_plotter import create_mermaid_markdown

        module: ExperimentModule = pl_module
        write_text(module.path_experiment / GRAPH_FILE, create_mermaid_markdown(module.brick_collection) + "\n")


class EpochMetricsWriter(pl.Callback):
    """Writes `<experiment>/metrics_<stage>.json` with the module's `epoch_metrics` of each stage's last epoch.

    Lightning calls a callback's epoch-end hooks before the module's, which computes the values, so each stage is
    written at the next hook where they are complete: validation and test when their loop ends, training when the
    next epoch starts or training ends. Sanity-check validation is not written.
    """

    def __init__(self) -> None:
        self._train_epoch_done = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "validation")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_epoch_done = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_train(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_train(trainer, pl_module)

    def _write_train(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._train_epoch_done:
            self._train_epoch_done = False
            self._write(trainer, pl_module, "train")

    def _write(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        module: ExperimentModule = pl_module
        values = module.epoch_metrics.get(stage)
        if values and trainer.is_global_zero:  # no metric brick ran in the stage: no file
            write_json(module.path_experiment / METRICS_FILE.format(stage=stage), to_json(values))


class BrickWeightsWriter(pl.Callback):
    """Saves the collection's bricks into `<experiment>/bricks/` (`BrickCollection.save_bricks`) when fitting ends."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        module: Any = pl_module
        if trainer.is_global_zero:
            module.brick_collection.save_bricks(module.path_experiment / BRICKS_FOLDER, exist_ok=True)


def create_experiment_file_callbacks() -> list[pl.Callback]:
    """The writers of `brick_graph.md`, `metrics_<stage>.json` and `bricks/`."""
    return [BrickGraphWriter(), EpochMetricsWriter(), BrickWeightsWriter()]
