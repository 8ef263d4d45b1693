"""The job's CSV logger: Lightning's `CSVLogger`, whose `logs/metrics.csv` and `hparams.yaml` are written atomically.

Lightning's writer appends each flush of rows to `metrics.csv` in place (and rewrites it in place when a new column
appears) and writes `hparams.yaml` in place: a full disk, or a kill during the write, left a file cut in the middle of
a row (or empty), which `csv` readers and pandas read wrongly or refuse. Here every write goes through a temporary file
renamed over the file (`torchbricks._files.write_atomically`): a failed write leaves the previous complete file, and
the rows not written are kept and written by the next flush.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from torchbricks._files import write_atomically

__all__ = ["AtomicCSVLogger", "AtomicExperimentWriter"]


class AtomicExperimentWriter(ExperimentWriter):
    """Lightning's `ExperimentWriter` (local folders), writing `metrics.csv` and `hparams.yaml` atomically."""

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        write_atomically(
            Path(self.log_dir) / self.NAME_HPARAMS_FILE, lambda temporary: save_hparams_to_yaml(temporary, self.hparams)
        )

    def save(self) -> None:
        """Writes the recorded rows after the file's, under the header of every column logged so far."""
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        keys = sorted(set(self.metrics_keys).union(*self.metrics))
        exists = path.is_file()
        same_header = exists and keys == self.metrics_keys

        def write(temporary: Path) -> None:
            with open(temporary, "w", newline="", encoding="utf-8") as file:
                if same_header:
                    with open(path, newline="", encoding="utf-8") as previous:
                        shutil.copyfileobj(previous, file)  # the rows already written, as they are
                writer = csv.DictWriter(file, fieldnames=keys)
                if not same_header:
                    writer.writeheader()
                    if exists:  # a new column: Lightning's rewrite, the earlier rows under the new header
                        with open(path, newline="", encoding="utf-8") as previous:
                            writer.writerows(csv.DictReader(previous))
                writer.writerows(self.metrics)

        write_atomically(path, write)
        # only once written: a failed write keeps the rows and the columns the file has, for the next flush
        self.metrics_keys = keys
        self.metrics = []


class AtomicCSVLogger(CSVLogger):
    """Lightning's `CSVLogger` with `AtomicExperimentWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AtomicExperimentWriter:
        if not isinstance(self._experiment, AtomicExperimentWriter):
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AtomicExperimentWriter(log_dir=self.log_dir)
        return self._experiment
