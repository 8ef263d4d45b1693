"""Cutting an interrupted run's TensorBoard event files back to a step, so a resumed run's values are the only ones.

A resumed run logs again from its checkpoint's step. TensorBoard's purge marker (a `SessionLog.START` at that step)
should hide the earlier values from there on, but neither server honours it: the Rust data server
(`--load_fast=true`, the default where it is installed) keeps a value unless the same tag is logged again at a step
not above it, and the Python one (`--load_fast=false`) takes the first marker of a run for the run's start. Both
showed an interrupted run's values beside the resumed run's. The files themselves are therefore rewritten without
them, before the resumed run writes anything.

Records are copied byte for byte, their checksums included; only the events are parsed, to read their step.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from torchbricks._extras import require
from torchbricks._files import write_atomically

__all__ = ["EVENT_FILE_MARK", "drop_events_from_step"]

EVENT_FILE_MARK = "tfevents"  # TensorBoard reads every file whose name holds it
_LENGTH = struct.Struct("<Q")  # a record: length, its masked CRC-32C, the event, the event's masked CRC-32C
_CHECKSUM = struct.Struct("<I")
_COPY_CHUNK = 1 << 20


def drop_events_from_step(folder: Path, step: int) -> list[Path]:
    """Rewrites the TensorBoard event files under `folder` without the values logged at `step` or later.

    Dropped are the events that carry values at such a step: scalars, pictures, histograms, text (hyperparameters,
    TensorBoard's `hparams` summaries, are kept whatever their step), and run metadata. Kept are all other events:
    the file version, purge markers, graphs, log messages. A file is rewritten atomically (a temporary file in its
    folder, synced, renamed over it) and only when it holds a value to drop; an error leaves it as it was. A crash
    between two files leaves each either as it was or cut, which loses nothing a resumed run shows either way.
    Bytes a reader cannot frame as records (the torn last record of a killed writer) are kept as they are.

    Args:
        folder: The run's TensorBoard folder (`tensorboard/` of an experiment); every event file under it is cut.
        step: The first step whose values are dropped: the step the resumed run logs from.

    Returns:
        The files that were rewritten.

    Raises:
        MissingExtraError: tensorboard is not installed.
    """
    checksum = require("tensorboard.compat.tensorflow_stub.pywrap_tensorflow", "tensorboard").masked_crc32c
    event_type = require("tensorboard.compat.proto.event_pb2", "tensorboard").Event
    rewritten = []
    for path in sorted(folder.rglob(f"*{EVENT_FILE_MARK}*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        kept, dropped = _kept_spans(path, step, checksum, event_type)
        if dropped:
            write_atomically(path, partial(_copy_spans, path, kept), temporary_stem="cut")
            rewritten.append(path)
    return rewritten


def _kept_spans(path: Path, step: int, checksum: Any, event_type: Any) -> tuple[list[tuple[int, int]], bool]:
    """The byte ranges of `path` to keep, adjacent ones merged, and whether any record is dropped."""
    kept: list[tuple[int, int]] = []
    dropped = False
    for start, end, event in _records(path, checksum, event_type):
        if event is not None and _logs_from(event, step):
            dropped = True
        elif kept and kept[-1][1] == start:
            kept[-1] = (kept[-1][0], end)
        else:
            kept.append((start, end))
    return kept, dropped


def _records(path: Path, checksum: Any, event_type: Any) -> Iterator[tuple[int, int, Any]]:
    """(start, end, event) of each record of `path`; the bytes from the first that does not frame (a torn record) on
    come last with the event None."""
    decode_error = require("google.protobuf.message", "tensorboard").DecodeError
    size = path.stat().st_size
    with open(path, "rb") as file:
        position = 0
        while position < size:
            header = file.read(_LENGTH.size + _CHECKSUM.size)
            if len(header) < _LENGTH.size + _CHECKSUM.size:
                break
            (length,) = _LENGTH.unpack_from(header)
            end = position + len(header) + length + _CHECKSUM.size
            if end > size:
                break
            if checksum(header[: _LENGTH.size]) != _CHECKSUM.unpack_from(header, _LENGTH.size)[0]:
                break
            try:  # the event's own checksum is copied, not checked: tensorboard's CRC-32C reads 4 MB/s
                event = event_type.FromString(file.read(length))
            except decode_error:
                break
            file.seek(_CHECKSUM.size, os.SEEK_CUR)
            yield position, end, event
            position = end
        if position < size:
            yield position, size, None


def _logs_from(event: Any, step: int) -> bool:
    """Whether `event` carries values (hyperparameters aside) logged at `step` or later."""
    if event.step < step:
        return False
    if event.HasField("tagged_run_metadata"):
        return True
    values = event.summary.value if event.HasField("summary") else []
    return any(value.metadata.plugin_data.plugin_name != "hparams" for value in values)


def _copy_spans(source: Path, spans: list[tuple[int, int]], target: Path) -> None:
    with open(source, "rb") as reading, open(target, "wb") as writing:
        for start, end in spans:
            reading.seek(start)
            remaining = end - start
            while remaining:
                chunk = reading.read(min(remaining, _COPY_CHUNK))
                if not chunk:
                    raise OSError(f"TensorBoard event file {str(source)!r} ended at byte {end - remaining}, before {end}")
                writing.write(chunk)
                remaining -= len(chunk)
    shutil.copymode(source, target)
