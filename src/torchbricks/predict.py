"""Prediction with a trained experiment on new images: a backend predicts, writers save what it predicted.

`predict_images` (the `torchbricks predict` command) runs a backend over image sources with a progress display
and writes everything into a temporary folder renamed into place at the end. The pieces, each in its module and
all importable from here:

- backends: `BrickBackend` in `torchbricks._predict_backend`, the `PredictionBackend` protocol and `ImageResult` in
  `torchbricks._predict_results`;
- the files per image and for all images (`PredictionWriter`): `torchbricks._prediction_writer`;
- the drawn pictures: `torchbricks._prediction_pictures`.

Importing this module imports no torch: `BrickBackend` and `PREDICTED_TAGS` are imported on first use, so
`predict_images` with another backend (`torchbricks predict --onnx`) runs where torch is not installed.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from torchbricks._lazy import lazy_attributes
from torchbricks._predict_results import ImageResult, PredictionBackend
from torchbricks._prediction_pictures import DRAWN_MIN_SCORE, MULTILABEL_THRESHOLD
from torchbricks._prediction_writer import PICTURE_FORMATS, TOP_K, PredictionWriter
from torchbricks.deploy import resize_mask_nearest
from torchbricks.errors import BrickError

if TYPE_CHECKING:  # imported on first use (torch), see __getattr__
    from torchbricks._image_sources import ImageSource, ReadImage
    from torchbricks._predict_backend import PREDICTED_TAGS, BrickBackend

__all__ = [
    "DRAWN_MIN_SCORE",
    "MULTILABEL_THRESHOLD",
    "PICTURE_FORMATS",
    "PREDICTED_TAGS",
    "TOP_K",
    "BrickBackend",
    "ImageResult",
    "PredictionBackend",
    "PredictionSummary",
    "PredictionWriter",
    "predict_images",
    "resize_mask_nearest",
]

__getattr__, __dir__ = lazy_attributes(
    __name__, {"BrickBackend": "torchbricks._predict_backend", "PREDICTED_TAGS": "torchbricks._predict_backend"}, globals()
)


# --- running --------------------------------------------------------------------------------------------------------


@dataclass
class PredictionSummary:
    """What `predict_images` did: the output folder, the images predicted, the sources skipped and the time."""

    folder: Path
    num_images: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason) of each image that could not be read."""
    seconds: float = 0.0


class _Progress:
    """tqdm's bar on a terminal; otherwise a plain line at every tenth of the work (a log keeps every line). Without
    tqdm (not a dependency: training's extras bring it, a machine predicting with `--onnx` may lack it) the lines
    go to the terminal too."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.done = 0
        self.started = time.perf_counter()
        self.next_line = 1
        self.enabled = enabled
        self.bar = None
        if enabled and self.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit="img", desc="predict", file=self.stream)

    def set_total(self, total: int) -> None:
        """The images to predict, once an animation reached has its frames counted."""
        if total != self.total:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
                self.bar.refresh()

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        tenth = 10 * self.done // self.total if self.total else 10
        if self.enabled and tenth >= self.next_line:  # one line per update at most, however many tenths it crossed
            seconds = time.perf_counter() - self.started
            rate = self.done / seconds if seconds > 0 else 0.0
            print(
                f"predict {self.done}/{self.total} images ({100 * self.done // self.total} %)  {rate:.1f} images/s",
                file=self.stream,
                flush=True,
            )
            self.next_line = tenth + 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def predict_images(
    backend: PredictionBackend,
    sources: Sequence[str | Path],
    out: Path | str,
    class_names: Sequence[str] | Mapping[str, Sequence[str] | None] | None = None,
    category_ids: Sequence[int] | Mapping[str, Sequence[int] | None] | None = None,
    batch_size: int = 32,
    overwrite: bool = False,
    workers: int = 2,
    pictures: str | None = "jpg",
    overlays: bool = False,
    labels: str | None = None,
    min_score: float = DRAWN_MIN_SCORE,
    concurrent_writes: bool | None = None,
    lanes: int | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> PredictionSummary:
    """Predicts every image of `sources` with `backend` and writes the files of `PredictionWriter` into `out`.

    Sources are image files, folders (searched recursively), glob patterns and videos (each frame an image; see
    `torchbricks._image_sources`). Images are read by `workers` threads. With several `lanes` (the default when the
    backend can share two or more CPU threads) each lane predicts a batch and draws and writes its files while the
    other lanes predict. With one lane the per-image files are drawn and written by `workers` other threads while
    the backend predicts the next batch when the backend leaves a core free (`concurrent_writes`); otherwise this
    thread writes them between batches, so as not to stall the backend's own threads.
    Everything is written into a temporary folder beside `out`, renamed to `out` once complete, so a failed run
    leaves nothing behind. An image that cannot be read is skipped, reported (`on_skip(source, reason)`), listed in
    `skipped.txt` and in the summary; the others are predicted. Files a folder or glob finds inside `out` are not
    sources: `--out photos/predictions --overwrite` run twice does not predict the first run's pictures.

    Args:
        backend: What predicts (`BrickBackend`, or any `PredictionBackend`).
        sources: Images, folders, globs or videos.
        out: The output folder; an existing non-empty one is refused unless `overwrite`.
        class_names: Names of the classes, for the files and pictures; or head path -> its names (heads trained on
            data sets of their own, `TrainedExperiment.head_class_names`).
        category_ids: COCO category id of each class, for `predictions.json` (or head path -> its ids).
        batch_size: Images given to the backend at once.
        overwrite: Replace an existing non-empty `out` once the new predictions are complete.
        workers: Threads reading images, and as many writing files; 0 reads and writes in this thread, between batches.
        concurrent_writes: With one lane, write the files on threads while the backend predicts. None: when the
            backend's `threads` (torch's intra-op threads for `BrickBackend`) leave a core of `os.cpu_count()` free;
            with two torch threads on two cores, writing beside the model made predict 10-20 % slower than writing
            between batches.
        lanes: Batches predicted at once, each on a thread of its own that predicts its batch and writes its files
            (the backend's `shared_threads(lanes)` gives each an equal share of torch's threads). None: 2 when the
            backend can share its threads (`BrickBackend` on a CPU) and has 2 or more and `workers` is not 0,
            else 1. On this project's 2-core CPU two lanes of one torch thread each kept 0.80-1.09x the images per
            second of a plain loop with two torch threads, one lane of two threads 0.73-0.83x (benchmarks/README.md,
            "Prediction").
        pictures: Format of the drawn pictures (`jpg`, `png`), or None for none.
        overlays: Also write each segmentation mask in colours as a palette PNG (`overlays/`).
        labels: Also write the predictions as labels to correct rather than label from scratch (`PredictionWriter`):
            each detection head's boxes as `yolo` (`labels/<name>.txt` and `classes.txt`) or `voc`
            (`Annotations/<name>.xml`), boxes and each segmentation head's mask outlines as `coco`
            (`annotations/instances_default.json`), or the image files sorted by each classification head's class,
            `folders` (`classified/<class>/`; a video or animation of several frames is refused when reached, nothing
            written).
        min_score: The lowest score of a box or point drawn and written as a label (`predictions.json` keeps all).
        progress: Show progress (a bar on a terminal, a line per tenth of the images otherwise).
        stream: Where progress goes; standard output by default.
        on_skip: Called with (source, reason) for each image that cannot be read.

    Raises:
        BrickError: No image matches a source, no image can be read, `out` exists and is not empty without
            `overwrite`, or `labels` without a head of its kind; nothing is written.
    """
    import shutil

    from torchbricks._files import recover_folder, replace_folder
    from torchbricks._image_sources import collect_image_sources

    if batch_size < 1 or workers < 0 or (lanes is not None and lanes < 1):
        raise BrickError(
            f"batch_size and lanes must be 1 or more and workers 0 or more, got {batch_size}, {lanes} and {workers}."
        )
    out = Path(out)
    recover_folder(out)  # the predictions of a run killed as it replaced them are put back, so --overwrite guards them
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise BrickError(f"The output folder {str(out)!r} exists and is not empty; pass --overwrite to replace it.")
    new_writer = functools.partial(
        PredictionWriter,
        heads=backend.heads,
        class_names=class_names,
        category_ids=category_ids,
        pictures=pictures,
        overlays=overlays,
        labels=labels,
        min_score=min_score,
    )
    new_writer(out)  # refuses bad options before anything is read or written
    # Not the pictures of an earlier run into a source folder. An animation is opened once, when the run reaches it.
    files = collect_image_sources(sources, exclude=out, count_frames=False)
    if concurrent_writes is None:
        concurrent_writes = _spare_core(backend)
    if lanes is None:
        lanes = _default_lanes(backend, workers)
    started = time.perf_counter()
    temporary = _new_temporary_folder(out)
    writer = new_writer(temporary)
    bar = _Progress(len(files), stream, enabled=progress)  # an animation's further frames are added once counted
    skipped: list[tuple[str, str]] = []
    images = _Images(files, bar, frames_refused=labels == "folders")
    labels_of = images.labels

    def skip(index: int, reason: str) -> None:
        skipped.append((labels_of[index], reason))
        if on_skip is not None:
            on_skip(labels_of[index], reason)

    decoding_size = _decoding_size(backend)  # what training decoded its images for (None: whole)

    def read(index: int) -> _Read:
        return images.dataset.read(index, decoding_size, picture=pictures is not None)

    try:
        run = _Run(backend, read, images.reaches, labels_of, images.names, images.sources, writer, bar, skip)
        if lanes > 1:
            _predict_in_lanes(run, batch_size, _pool("read", workers), lanes)
        else:
            _predict_in_one_lane(run, batch_size, workers, concurrent_writes)
        if writer.count == 0:
            raise BrickError(f"None of the {len(labels_of)} images could be read; first reasons: {skipped[:3]}")
        writer.finish()
        if skipped:
            (temporary / "skipped.txt").write_text(
                "".join(f"{source}\t{reason}\n" for source, reason in skipped), encoding="utf-8", errors="surrogateescape"
            )
        replace_folder(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    finally:
        images.dataset.close()
        bar.close()
    return PredictionSummary(out, writer.count, skipped, time.perf_counter() - started)


class _Images:
    """The images of a run, listed as it reaches them (`reaches`): an animation's frames once it is opened, its one
    opening, and their labels and output names (as `output_names` of every frame listed at once would name them)."""

    def __init__(self, files: list[ImageSource], bar: _Progress, frames_refused: bool = False) -> None:
        from torchbricks._image_sources import ImageSourceDataset, OutputNamer

        self.dataset = ImageSourceDataset(files)
        self.namer = OutputNamer(files)
        self.labels: list[str] = []
        self.names: list[str] = []
        self.sources: list[Path | None] = []  # each image's own file, for the labels; None for a frame
        self.bar = bar
        self.frames_refused = frames_refused  # labels="folders": image files only

    def reaches(self, index: int) -> bool:
        """Whether there is an image `index`, the images up to it listed."""
        if not self.dataset.reaches(index):
            return False
        for item in self.dataset.items[len(self.labels) :]:
            if self.frames_refused and item.frame is not None:
                raise BrickError(
                    f"labels='folders' sorts image files into class folders; {str(item.path)!r} is a video or animation, "
                    "whose frames have no file of their own: extract them as images first, or predict it without --labels."
                )
            self.labels.append(item.label)
            self.names.append(self.namer.name(item))
            self.sources.append(item.path if item.frame is None else None)
        self.bar.set_total(len(self.labels) + self.dataset.sources_left)
        return True


def _pool(role: str, size: int) -> Any:
    """`size` threads named torchbricks-`role`, or `_InThread` for 0."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"torchbricks-{role}") if size else _InThread()


def _spare_core(backend: PredictionBackend) -> bool:
    """Whether a core is left beside the backend's own threads (`threads`; unknown: it takes them all)."""
    import os

    threads = getattr(backend, "threads", None)
    return threads is not None and threads < (os.cpu_count() or 1)


def _default_lanes(backend: PredictionBackend, workers: int) -> int:
    """Two lanes when the backend can share its two or more threads between them (`shared_threads`), else one."""
    threads = getattr(backend, "threads", None)
    return 2 if workers > 0 and hasattr(backend, "shared_threads") and threads is not None and threads >= 2 else 1


class _InThread:
    """An executor running each call at once, in this thread (`workers=0`)."""

    def __enter__(self) -> _InThread:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, function: Callable[..., Any], *arguments: Any) -> Any:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        try:
            future.set_result(function(*arguments))
        except Exception as error:
            future.set_exception(error)
        return future


_Read = tuple[int, "ReadImage | None", str]
"""A read image: its index, the image (None when it cannot be read) and the reason it cannot."""


def _decoding_size(backend: PredictionBackend) -> tuple[int, int] | None:
    """The (height, width) `backend`'s images are decoded for (its `decoding_size`) when its `predict` takes the
    `sizes` they were reduced from. A `predict(images)` written before `sizes` (a subclass of `BrickBackend`
    post-processing `super().predict(images)` inherits `decoding_size`) is given whole images, as before, and a
    warning says so: called with `sizes`, it stopped the run with a TypeError."""
    size: tuple[int, int] | None = getattr(backend, "decoding_size", None)
    if size is None:
        return None
    import inspect

    try:
        parameters = inspect.signature(backend.predict).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature Python can read: taken at its word
        return size
    if any(parameter.name == "sizes" or parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return size
    import warnings

    warnings.warn(
        f"{type(backend).__name__}.predict takes no 'sizes': its images are decoded whole and resized, not decoded "
        f"as training decoded them for {tuple(size)} (a large JPEG reduced; up to 7 grey levels apart). To be given "
        "training's pixels, define predict(self, images, sizes=None) and pass sizes on (BrickBackend.predict gives "
        "the results at those sizes).",
        stacklevel=3,
    )
    return None


def _predicted(backend: PredictionBackend, images: list[ReadImage]) -> list[ImageResult]:
    """The backend's results for `images`, at their sizes as shown: when an image was decoded reduced for the
    backend's input size (`decoding_size`), the backend is told the size of each (`sizes`)."""
    pixels = [image.pixels for image in images]
    if all(image.pixels.shape[:2] == image.size for image in images):
        return backend.predict(pixels)
    return backend.predict(pixels, sizes=[image.size for image in images])  # type: ignore[call-arg]


def _picture(image: ReadImage) -> np.ndarray:
    """What the files of an image are drawn on: the whole picture (the pixels when no picture is drawn)."""
    return image.pixels if image.picture is None else image.picture


@dataclass(frozen=True)
class _Run:
    """What one `predict_images` call predicts and where each result goes."""

    backend: PredictionBackend
    read: Callable[[int], _Read]  # index -> (index, the read image or None, reason it could not be read)
    reaches: Callable[[int], bool]  # whether there is an image `index`: the images before it listed (`labels`, `names`)
    labels: list[str]  # each image's source, as recorded; grows as `reaches` lists the frames of an animation
    names: list[str]  # each image's file name in the output folders, as `labels`
    sources: list[Path | None]  # each image's own file (None for a frame of a video), as `labels`
    writer: PredictionWriter
    bar: _Progress
    skip: Callable[[int, str], None]


def _new_temporary_folder(out: Path) -> Path:
    """A new empty folder beside `out`, where a run writes before it is renamed to `out` (`.<out>.<hex>.tmp`)."""
    import uuid

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    temporary.mkdir()
    return temporary


def _write_images(run: _Run, index: int, image: ReadImage, result: ImageResult) -> None:
    """The files of image `index`: drawn on its picture, labels at its size and under its own file name."""
    run.writer.write_images(run.names[index], _picture(image), result, image.size, run.sources[index])


def _image_file(run: _Run, index: int) -> str:
    """Image `index`'s path in the COCO labels, as its output name's folders and its own file name (a frame: its
    output name as a `.jpg`, which `predict` does not write)."""
    name, source = run.names[index], run.sources[index]
    return f"{name}.jpg" if source is None else str(PurePosixPath(name).with_name(source.name))


def _predict_in_one_lane(run: _Run, batch_size: int, workers: int, concurrent_writes: bool) -> None:
    """Reads on `workers` threads, and writes on as many others (`concurrent_writes`) or here between batches.

    With `concurrent_writes`, reading the next batches and writing the files of the last ones run while the backend
    predicts (a pool each, so reads never wait behind files). Without it (the backend's threads take every core),
    the backend predicts alone; then this thread writes the batch's files while the pool reads the next batch:
    Pillow decodes without the GIL, while the files are mostly Python and gain nothing from threads.
    """
    from collections import deque
    from concurrent.futures import Future

    backend, labels, names, writer = run.backend, run.labels, run.names, run.writer
    with _pool("read", workers) as reader, _pool("write", workers if concurrent_writes else 0) as writer_pool:
        reads: deque[Future[_Read]] = deque()
        writes: deque[Future[None]] = deque()
        next_item = 0

        def read_ahead(count: int) -> None:
            nonlocal next_item
            while len(reads) < count and run.reaches(next_item):
                reads.append(reader.submit(run.read, next_item))
                next_item += 1

        ahead, behind = (2 * batch_size, 2 * batch_size) if concurrent_writes else (batch_size, 0)
        read_ahead(ahead)
        while reads:
            batch = [reads.popleft().result() for _ in range(min(batch_size, len(reads)))]
            readable: list[tuple[int, ReadImage]] = []
            for index, image, reason in batch:
                if image is None:
                    run.skip(index, reason)
                else:
                    readable.append((index, image))
            results = _predicted(backend, [image for _, image in readable]) if readable else []
            read_ahead(ahead)
            for (index, image), result in zip(readable, results, strict=True):
                writer.record(labels[index], result, image.size, _image_file(run, index), names[index])
                writes.append(writer_pool.submit(_write_images, run, index, image, result))
            while len(writes) > behind:  # bounded: decoded images wait in memory only this long
                writes.popleft().result()
            run.bar.update(len(batch))
        for future in writes:
            future.result()  # a failed write raises here


def _predict_in_lanes(run: _Run, batch_size: int, reader: Any, lanes: int) -> None:
    """Predicts `lanes` batches at once, each lane predicting its batch and writing its files; `reader` reads ahead.

    This thread hands out the batches (at most two per lane waiting or running, so decoded images stay bounded) and
    takes their results in order: skipped images are reported and results recorded in the order of the sources,
    whichever lane finishes first. The first error of a lane is raised here once the running lanes have stopped.
    """
    from collections import deque
    from concurrent.futures import Future

    backend, labels, names, writer = run.backend, run.labels, run.names, run.writer

    def lane(reads: list[Future[_Read]]) -> tuple[list[_Read], list[int], list[ImageResult]]:
        batch = [future.result() for future in reads]
        readable = [index for index, image, _ in batch if image is not None]
        images = [image for _, image, _ in batch if image is not None]
        results = _predicted(backend, images) if images else []
        for index, image, result in zip(readable, images, results, strict=True):
            _write_images(run, index, image, result)
        return batch, readable, results

    shared = getattr(backend, "shared_threads", None)
    jobs: deque[Future[tuple[list[_Read], list[int], list[ImageResult]]]] = deque()
    next_item = 0
    # Threads are shared before the lanes start and restored after they stop.
    with shared(lanes) if shared is not None else contextlib.nullcontext(), reader, _pool("lane", lanes) as lane_pool:
        try:
            while jobs or run.reaches(next_item):
                while len(jobs) < 2 * lanes and run.reaches(next_item):
                    stop = next_item + 1
                    while stop < next_item + batch_size and run.reaches(stop):
                        stop += 1
                    jobs.append(lane_pool.submit(lane, [reader.submit(run.read, i) for i in range(next_item, stop)]))
                    next_item = stop
                batch, readable, results = jobs.popleft().result()
                sizes = {}
                for index, image, reason in batch:
                    if image is None:
                        run.skip(index, reason)
                    else:
                        sizes[index] = image.size
                for index, result in zip(readable, results, strict=True):
                    writer.record(labels[index], result, sizes[index], _image_file(run, index), names[index])
                run.bar.update(len(batch))
        finally:
            for job in jobs:
                job.cancel()  # queued batches do not start; running ones finish before the pools close
