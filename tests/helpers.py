"""Small modules and references shared by the tests."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn


class AddConstant(nn.Module):
    """Adds a constant to the sum of its inputs and counts its calls."""

    def __init__(self, constant: float = 1.0) -> None:
        super().__init__()
        self.constant = constant
        self.calls = 0

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.stack(tensors).sum(0) + self.constant


class Split(nn.Module):
    """Returns two values: the input and its negation."""

    def forward(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tensor, -tensor


def class_index_mask(index: int) -> np.ndarray:
    """A 10 x 20 mask of class indices: class 1 and class 2 in every mask (class 1 narrower as `index` grows), a
    strip of 255 (ignored; VOC's border) in odd ones."""
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[1:4, 2 + index : 8] = 1
    mask[6:9, 10:18] = 2
    if index % 2:
        mask[5, :] = 255
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE of a 0/1 mask [H, W]: run lengths of 0s then 1s, alternating, in column-major order."""
    flat = np.asarray(mask).flatten(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [len(flat)]])
    counts = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": [0, *counts] if flat[0] else counts}


def coco_semantic_mask(path: Path, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The semantic mask and classes present that pycocotools' own COCO API gives for one image of an instances file.

    Each crowd annotation's `annToMask` drawn first as 255 (ignored), then each other annotation's drawn as its
    contiguous class index (category ids in id order) + 1 in annotation order, a later object covering an earlier
    one; and 1 for each class with a non-crowd annotation, -1 for a class with crowd annotations only (its presence
    is unknown: the multi-label loss and metrics leave it out).
    """
    from pycocotools.coco import COCO

    coco_api = COCO(str(path))
    index_of = {category_id: index for index, category_id in enumerate(sorted(coco_api.getCatIds()))}
    info = coco_api.loadImgs(image_id)[0]
    mask = np.zeros((info["height"], info["width"]), dtype=np.int64)
    present = np.zeros(len(index_of), dtype=np.int64)
    annotations = coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id))
    for annotation in sorted(annotations, key=lambda annotation: not annotation.get("iscrowd", 0)):
        with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so
            warnings.simplefilter("ignore", DeprecationWarning)
            drawn = coco_api.annToMask(annotation).astype(bool)
        if annotation.get("iscrowd", 0):
            mask[drawn] = 255
            present[index_of[annotation["category_id"]]] = -1  # crowds come first: an object of the class sets it to 1
            continue
        mask[drawn] = index_of[annotation["category_id"]] + 1
        present[index_of[annotation["category_id"]]] = 1
    return mask, present


def experiment_trained_in(folder: Path, working_directory: Path) -> Path:
    """A trained experiment whose training ran in `working_directory` with the relative `data.root=data/shapes`."""
    from omegaconf import OmegaConf

    from torchbricks.configuration import create_brick_collection

    brick = {
        "_target_": "torchbricks.bricks.BrickTrainable",
        "model": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 2},
        "input_names": ["raw"],
        "output_names": ["features"],
    }
    config = OmegaConf.create({"model": {"bricks": {"backbone": brick}}, "data": {"root": "data/shapes"}})
    folder.mkdir(parents=True)
    create_brick_collection(config, "model.bricks").save_bricks(folder / "bricks")
    OmegaConf.save(config, folder / "resolved_config.yaml")
    (folder / "experiment.json").write_text(json.dumps({"working_directory": str(working_directory)}))
    return folder


def tensorboard_values_in_files(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files under `folder` (or of the one file `folder`) in file order, nothing
    purged or merged, as TensorBoard's Rust data server (`--load_fast=true`) reads them; pictures with the value 0."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2

    values: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.rglob("*tfevents*")) if folder.is_dir() else [folder]:
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    values.setdefault(value.tag, []).append((event.step, value.simple_value))
    return values


def spawn_two_gloo_processes(function: Any, folder: Path, timeout: float, waiting: str) -> None:
    """Runs `function(rank, port, str(folder))` in two processes (torch.multiprocessing), given a free local port for
    their gloo group; kills both and fails the test, saying what they were `waiting` for, after `timeout` seconds."""
    import socket
    import time

    import pytest

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    context = torch.multiprocessing.spawn(function, args=(port, str(folder)), nprocs=2, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the two processes did not finish {waiting} in {timeout} s")


def hand_built_experiment(
    folder: Path,
    heads: dict[str, dict[str, Any]],
    class_names: list[str],
    image_size: int = 16,
    prepare: Any = None,
) -> Path:
    """An experiment folder as `torchbricks train` leaves it (`resolved_config.yaml`, `experiment.json`, `bricks/`) of
    a one-convolution backbone (`features` [B, 8, image_size / 4, image_size / 4] from `raw`) and `heads`, each a
    head path -> the nodes of a registered kind's `describe(...)`, as a packaged config nests them; `prepare` is
    called with the collection before its weights are saved (to set them)."""
    from omegaconf import OmegaConf

    from torchbricks.configuration import create_brick_collection

    backbone = {
        "_target_": "torchbricks.bricks.BrickTrainable",
        "model": {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 4, "stride": 4},
        "input_names": ["raw"],
        "output_names": ["features"],
    }
    config = OmegaConf.create({"model": {"bricks": {"backbone": backbone, **heads}}})
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    collection = create_brick_collection(config, "model.bricks")
    if prepare is not None:
        with torch.no_grad():
            prepare(collection)
    collection.save_bricks(folder / "bricks")
    OmegaConf.save(config, folder / "resolved_config.yaml")
    description = {"image_size": [image_size, image_size], "class_names": class_names}
    (folder / "experiment.json").write_text(json.dumps(description))
    return folder


def run_under_an_ascii_locale(code: str, *arguments: str) -> None:
    """Runs `python -c code arguments` with the source tree under an ASCII locale (`LC_ALL=C`, neither UTF-8 mode nor
    locale coercion: the locale's encoding is ASCII, as cp1252 is not UTF-8 on Windows), failing with its stderr."""
    import subprocess
    import sys

    src = Path(__file__).parents[1] / "src"
    environment = {"PYTHONPATH": str(src), "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    completed = subprocess.run(
        [sys.executable, "-c", code, *arguments], capture_output=True, text=True, timeout=120, env=environment, check=False
    )
    assert completed.returncode == 0, completed.stderr


class PointsDataModule:
    """A data module of 10 random 16 x 16 images (`raw`) with 0 to 3 points each (`target_points` [B, 3, 2],
    `target_labels` [B, 3], -1 for padding) of the classes `dot` and `cross`, the second never in the truth: what a
    hand-built points experiment (`hand_built_experiment`) is evaluated on, as `data._target_: helpers.PointsDataModule`."""

    class_names = ("dot", "cross")

    def __init__(self, batch_size: int = 4) -> None:
        from torchbricks.datasets.in_memory import NamedTensorDataset

        generator = torch.Generator().manual_seed(5)
        labels = torch.zeros(10, 3, dtype=torch.int64)
        labels[torch.arange(3) >= torch.randint(0, 4, (10, 1), generator=generator)] = -1
        labels[0] = -1  # an image without points
        self.dataset = NamedTensorDataset(
            raw=torch.rand(10, 3, 16, 16, generator=generator),
            target_points=torch.rand(10, 3, 2, generator=generator) * 16,
            target_labels=labels,
        )
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        """Nothing to prepare."""

    def _loader(self) -> Any:
        from torch.utils.data import DataLoader

        return DataLoader(self.dataset, batch_size=self.batch_size)

    def val_dataloader(self) -> Any:
        return self._loader()

    def test_dataloader(self) -> Any:
        return self._loader()


def run_in_terminal(
    arguments: list[str], timeout: float, columns: int = 120, interrupt_when: Any = None, environment: Any = None
) -> tuple[int, str]:
    """Runs a command with standard input, output and error on a pseudo-terminal of `columns` columns, as in a user's
    shell (so Lightning draws its bar, argparse wraps at the width); returns its exit status and everything it wrote.

    The command runs in a process group of its own (DDP's other processes and the loader workers too). When
    `interrupt_when()` becomes true, the group gets SIGINT, as a terminal sends Ctrl-C to its foreground group. A
    command that outlives `timeout` seconds fails the test; the group is killed in any case.
    """
    import contextlib
    import fcntl
    import os
    import pty
    import signal
    import struct
    import subprocess
    import termios
    import threading
    import time

    import pytest

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))  # without a size tqdm draws nothing
    chunks: list[bytes] = []

    def drain() -> None:  # the command blocks once the terminal's buffer is full, so read it as it comes
        with contextlib.suppress(OSError):  # EIO once every writer has closed the terminal
            while chunk := os.read(controller, 65536):
                chunks.append(chunk)

    # A shell without job control starts a background job with SIGINT ignored, which a child would inherit and
    # keep; a handler, unlike an ignored signal, is reset to the default in the child, so Ctrl-C reaches it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            arguments, stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True, env=environment
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    os.close(terminal)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if interrupt_when is not None and interrupt_when():
                os.killpg(process.pid, signal.SIGINT)
                interrupt_when = None
            time.sleep(0.01)
        timed_out = process.poll() is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the group's every process, whatever happened
        process.wait()
        reader.join(timeout=30)
        os.close(controller)
    output = b"".join(chunks).decode(errors="replace")
    if timed_out:
        pytest.fail(f"{' '.join(arguments)} did not finish in {timeout} s (a hang?). output:\n{output[-3000:]}")
    return process.returncode, output


def terminal_lines(output: str) -> list[str]:
    """The lines of `output` as a terminal leaves them on the screen, blank ones left out: a carriage return writes
    its line again from the first column (a bar redrawn, or cleared with spaces), `ESC [ A` moves up a line (tqdm's
    bars below the first); a line longer than the terminal is kept as one line."""
    import re

    screen: list[list[str]] = [[]]
    row = column = 0
    for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\n":
            row, column = row + 1, 0
            screen.extend([] for _ in range(row + 1 - len(screen)))
        elif token == "\r":
            column = 0
        elif token.startswith("\x1b"):
            row -= (int(token[2:-1] or 1) if token.endswith("A") else 0) if row > 0 else 0
        else:
            line = screen[row]
            line.extend(" " * (column - len(line)))
            line[column : column + len(token)] = token
            column += len(token)
    return ["".join(line).rstrip() for line in screen if "".join(line).strip()]


def channel_means_onnx_file(folder: Path, size: tuple[int, int]) -> Path:
    """An ONNX file (with its `torchbricks.deploy` metadata) taking uint8 images [B, 3, *size] and giving their
    channel means as the classification `head/probabilities`: what it returns shows the pixels it was given."""
    import onnx
    from onnx import TensorProto, helper

    from torchbricks.deploy import METADATA_FORMAT, metadata_path

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["images"], ["floats"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["floats", "axes"], ["head/probabilities"], keepdims=0),
        ],
        "means",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 3, *size])],
        [helper.make_tensor_value_info("head/probabilities", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = folder / "means.onnx"
    onnx.save(model, str(path))
    metadata = {
        "format": METADATA_FORMAT,
        "image_size": list(size),
        "heads": {"head": {"kind": "classification", "class_names": None}},
    }
    metadata_path(path).write_text(json.dumps(metadata))
    return path


def count_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Counters of the files opened with `open()` and of the folders listed, by path, from now on."""
    import builtins
    import io
    import os
    from collections import Counter

    opened: Counter[str] = Counter()
    listed = count_listings(monkeypatch)
    real_open = builtins.open

    def open_file(file: Any, *arguments: Any, **keywords: Any) -> Any:
        if isinstance(file, str | os.PathLike):
            opened[str(file)] += 1
        return real_open(file, *arguments, **keywords)

    monkeypatch.setattr(builtins, "open", open_file)
    monkeypatch.setattr(io, "open", open_file)
    return opened, listed


def count_listings(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A counter of the folders listed (os.scandir, os.listdir), by path, from now on."""
    import os
    from collections import Counter

    listed: Counter[str] = Counter()
    real_scandir, real_listdir = os.scandir, os.listdir

    def scandir(path: Any = ".") -> Any:
        listed[str(path)] += 1
        return real_scandir(path)

    def listdir(path: Any = ".") -> Any:
        listed[str(path)] += 1
        return real_listdir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    return listed


def iou_per_class(truth: Any, guess: Any, labels: range) -> np.ndarray:
    """scikit-learn's IoU of each class of `labels` (`jaccard_score`, which has no `zero_division=np.nan`), NaN for a
    class neither true nor predicted: an empty union, no IoU (as precision and recall with `zero_division=np.nan`)."""
    from sklearn.metrics import jaccard_score

    iou = jaccard_score(truth, guess, labels=labels, average=None, zero_division=0)
    present = set(np.asarray(truth).tolist()) | set(np.asarray(guess).tolist())
    return np.array([value if label in present else np.nan for label, value in zip(labels, iou, strict=True)])


def null_as_nan(value: float | None) -> float:
    """A per-class value read back from a JSON file: `null` (undefined) as NaN, to compare with a reference's NaN."""
    return float("nan") if value is None else float(value)
