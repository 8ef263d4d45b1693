"""Lightning's checkpoints written as torchbricks writes every file: `AtomicCheckpointIO`.

Lightning's own writer (`TorchCheckpointIO`) saves a checkpoint into memory, writes it to a temporary file in the
system's temporary folder and moves that over the target. Where that folder is on another file system than the
experiment (a tmpfs `/tmp`, an experiment on a mounted disk), the move copies into the target in place: a full disk or
a kill during the copy left `checkpoints/last.ckpt` cut short, and the run could not resume. `AtomicCheckpointIO`
writes the checkpoint to a temporary file beside the target and renames it over the target once it is complete
(`torchbricks._files.write_atomically`): the target is the old checkpoint or the new one, never part of one.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from torchbricks._extras import require
from torchbricks._files import write_atomically

require("pytorch_lightning", "lightning")
from pytorch_lightning.plugins import TorchCheckpointIO  # noqa: E402 (after `require`, so a missing extra names what to install)

__all__ = ["AtomicCheckpointIO", "with_atomic_checkpoints"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose local files are written atomically; remote paths (`s3://...`) keep fsspec's writer."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, partial(_save, checkpoint))


def _save(checkpoint: dict[str, Any], file: Path) -> None:
    torch.save(checkpoint, file)  # into the file, not first into memory as Lightning's writer does


def with_atomic_checkpoints(trainer: Any) -> Any:
    """`trainer`, writing its checkpoints with an `AtomicCheckpointIO` in place of Lightning's default writer; a
    checkpoint writer the config chose (`trainer.plugins`) is kept."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return trainer
