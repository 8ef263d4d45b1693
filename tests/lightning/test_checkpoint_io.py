"""Lightning's checkpoints are written atomically: a write that fails midway leaves the previous checkpoint whole."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from torchbricks.lightning.checkpoint_io import AtomicCheckpointIO, with_atomic_checkpoints


class _TmpOnAnotherDiskThatFills:
    """The system's temporary folder on another file system than the experiment (a tmpfs `/tmp`), and the
    experiment's disk full from the moment a checkpoint of `full_from_epoch` is written to `last.ckpt`: renames
    across folders fail as across file systems, and the write into `last.ckpt` (its copy, or its own temporary file)
    stops after 100 bytes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, full_from_epoch: int) -> None:
        self.full_from_epoch = full_from_epoch
        self.full = False
        self.rename, self.replace, self.sendfile, self.save = os.rename, os.replace, os.sendfile, torch.save
        monkeypatch.setattr(os, "rename", self._rename)
        monkeypatch.setattr(os, "replace", self._replace)
        monkeypatch.setattr(os, "sendfile", self._sendfile)
        monkeypatch.setattr(torch, "save", self._save)

    def _across(self, source: Any, target: Any) -> None:
        if Path(source).resolve().parent != Path(target).resolve().parent:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

    def _rename(self, source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        self._across(source, target)
        self.rename(source, target, *args, **kwargs)

    def _replace(self, source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        self._across(source, target)
        self.replace(source, target, *args, **kwargs)

    def _sendfile(self, out: int, source: int, offset: Any, count: int) -> int:  # shutil's copy across file systems
        if self.full and os.readlink(f"/proc/self/fd/{out}").endswith("last.ckpt"):
            os.write(out, b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.sendfile(out, source, offset, count)

    def _save(self, value: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        self.full = self.full or (isinstance(value, dict) and value.get("epoch", -1) >= self.full_from_epoch)
        if self.full and isinstance(file, (str, Path)) and ".last.ckpt." in Path(file).name:
            Path(file).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        self.save(value, file, *args, **kwargs)


@pytest.mark.slow
def test_a_run_whose_disk_fills_as_it_writes_a_checkpoint_resumes_from_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lightning's writer moved its file from /tmp: across file systems, a copy into last.ckpt itself, which the full
    # disk cut short at 100 bytes; resume=true then refused the experiment
    from torchbricks.__main__ import main

    tiny = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "export_onnx=false", "n_visualized=0"]
    locate = [f"experiment.path_experiments={tmp_path}", "experiment.name=run"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with monkeypatch.context() as patched:
        _TmpOnAnotherDiskThatFills(patched, full_from_epoch=1)
        with pytest.raises(OSError, match="No space left on device"):
            main(["train", *locate, "trainer.max_epochs=2", *tiny])
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the first epoch's checkpoint, whole
    assert not [path.name for path in last.parent.iterdir() if path.name.endswith(".tmp")]
    capsys.readouterr()

    assert main(["train", *locate, "resume=true", "trainer.max_epochs=2", *tiny]) == 0
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert main(["evaluate", str(tmp_path / "run")]) == 0


def test_the_trainer_keeps_a_checkpoint_writer_its_config_chose() -> None:
    from pytorch_lightning import Trainer
    from pytorch_lightning.plugins import TorchCheckpointIO

    class Chosen(TorchCheckpointIO):
        pass

    default = with_atomic_checkpoints(Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False))
    chosen = with_atomic_checkpoints(Trainer(logger=False, plugins=[Chosen()], enable_progress_bar=False))
    assert type(default.strategy.checkpoint_io) is AtomicCheckpointIO
    assert type(chosen.strategy.checkpoint_io) is Chosen
