from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from torchbricks.lightning import _tensorboard_events
from torchbricks.lightning._tensorboard_events import drop_events_from_step


def _write(folder: Path, events: list[Any]) -> Path:
    writer = EventFileWriter(str(folder))
    for event in events:
        writer.add_event(event)
    writer.close()
    return Path(writer.get_logdir()) / Path(writer._file_name).name


def _scalar(tag: str, step: int, value: float = 1.0) -> Any:
    return event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]))


def _hparams(step: int) -> Any:
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams"))
    value = summary_pb2.Summary.Value(tag="_hparams_/experiment", metadata=metadata)
    return event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value]))


def _read(path: Path) -> list[tuple[int, str]]:
    """(step, what) of each event: the tags of a summary, else the kind of event."""
    read = []
    for record in RawEventFileLoader(str(path)).Load():
        event = event_pb2.Event.FromString(record)
        kind = event.WhichOneof("what")
        read.append((event.step, ",".join(value.tag for value in event.summary.value) if kind == "summary" else kind))
    return read


def test_the_values_from_the_step_on_are_dropped_and_every_other_event_kept(tmp_path: Path) -> None:
    interrupted = _write(
        tmp_path,
        [
            _hparams(0),
            event_pb2.Event(step=0, graph_def=b"graph"),
            *(_scalar("loss", step) for step in range(6)),
            _hparams(7),  # hyperparameters are no value of a step
            event_pb2.Event(step=5, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)),
            _scalar("test/loss", 5),
            event_pb2.Event(step=5, tagged_run_metadata=event_pb2.TaggedRunMetadata(tag="memory", run_metadata=b"x")),
        ],
    )
    before = _read(interrupted)

    assert drop_events_from_step(tmp_path, 3) == [interrupted]

    assert _read(interrupted) == [
        (0, "file_version"),
        (0, "_hparams_/experiment"),
        (0, "graph_def"),
        (0, "loss"),
        (1, "loss"),
        (2, "loss"),
        (7, "_hparams_/experiment"),
        (5, "session_log"),
    ]
    assert len(before) == 13
    assert sorted(path.name for path in tmp_path.iterdir()) == [interrupted.name]  # no temporary file left


def test_every_event_file_under_the_folder_is_cut_and_one_with_nothing_to_drop_is_left_as_it_was(tmp_path: Path) -> None:
    early = _write(tmp_path, [_scalar("loss", 0), _scalar("loss", 1)])
    late = _write(tmp_path / "sub", [_scalar("loss", 2), _scalar("accuracy", 9)])
    early_bytes, early_time = early.read_bytes(), early.stat().st_mtime_ns

    assert drop_events_from_step(tmp_path, 2) == [late]

    assert (early.read_bytes(), early.stat().st_mtime_ns) == (early_bytes, early_time)
    assert _read(late) == [(0, "file_version")]


def test_a_torn_last_record_is_kept_as_it_was_after_the_kept_records(tmp_path: Path) -> None:
    path = _write(tmp_path, [_scalar("loss", 0), _scalar("loss", 5)])
    whole = path.read_bytes()
    torn = _scalar("loss", 6).SerializeToString()[:3]
    path.write_bytes(whole + b"\x20\x00\x00\x00\x00\x00\x00\x00" + torn)  # a killed writer's half record

    drop_events_from_step(tmp_path, 5)

    assert _read(path) == [(0, "file_version"), (0, "loss")]
    assert path.read_bytes().endswith(b"\x20\x00\x00\x00\x00\x00\x00\x00" + torn)


def test_a_failed_rewrite_leaves_the_file_untouched_and_no_file_tensorboard_would_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, [_scalar("loss", step) for step in range(4)])
    original = path.read_bytes()
    copy = _tensorboard_events._copy_spans

    def fail_half_way(source: Path, spans: list[tuple[int, int]], target: Path) -> None:
        copy(source, spans[:1], target)
        assert _tensorboard_events.EVENT_FILE_MARK not in target.name  # a file a crash leaves is not read as events
        raise OSError("No space left on device")

    monkeypatch.setattr(_tensorboard_events, "_copy_spans", fail_half_way)

    with pytest.raises(OSError, match="No space left"):
        drop_events_from_step(tmp_path, 2)
    assert path.read_bytes() == original
    assert [item.name for item in tmp_path.iterdir()] == [path.name]
