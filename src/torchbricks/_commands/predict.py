"""`torchbricks predict EXPERIMENT SOURCE...`: predicts new images with a trained experiment and writes the results."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torchbricks._cli_help import HelpFormatter
from torchbricks._experiment import expand_home

__all__ = ["add_parser", "claim_output_folder", "run"]


def add_parser(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="predict images, folders, globs or videos with a trained experiment",
        description="Predicts every image of the sources with a trained experiment and writes, per image, the drawn "
        "picture (drawn/*.jpg), and per head kind: predictions.json (detection, COCO results), masks/ "
        "(segmentation; overlays/ with --overlays), points.json (points), predictions.csv (classification, multilabel, "
        "count); with --labels, boxes and masks as labels a labelling tool opens (YOLO, Pascal VOC or COCO) or the images "
        "sorted into class folders. Unreadable images are skipped and listed in skipped.txt.",
        epilog="examples:\n  torchbricks predict build/experiments/run photos/ 'more/*.jpg' --out predictions\n"
        "  torchbricks predict build/experiments/run ortho.tif --onnx --tile 192   # windows of 192 px in onnxruntime, "
        "no torch needed\n"
        "  torchbricks predict build/experiments/run new_photos/ --labels yolo --min-score 0.5   # labels to correct in "
        "a labelling tool",
        formatter_class=HelpFormatter,
    )
    predict.add_argument("experiment", type=expand_home, help="a trained experiment folder (made by `torchbricks train`)")
    predict.add_argument(
        "sources", nargs="+", type=expand_home, metavar="SOURCE", help="an image, a folder (recursive), a glob or a video"
    )
    predict.add_argument(
        "--out",
        type=expand_home,
        default=None,
        help="output folder (default: EXPERIMENT/predictions/<time>, with _2, _3... added when a run of the same second has it)",
    )
    predict.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    predict.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="images per model call, or with --tile tiles per call, the images then read one at a time (default: 32)",
    )
    predict.add_argument(
        "--onnx",
        nargs="?",
        type=expand_home,
        const="",
        default=None,
        metavar="FILE",
        help="run the file `torchbricks export` wrote (default: EXPERIMENT/deploy.onnx) in onnxruntime, not the bricks",
    )
    predict.add_argument(
        "--tile",
        type=_one_or_more,
        default=None,
        metavar="N",
        help="predict windows of N x N pixels and merge them, with the bricks or --onnx alike (padded, resized and "
        "merged the same way); images beyond Pillow's pixel limit are read; count heads are left out (a warning says so)",
    )
    predict.add_argument(
        "--overlap",
        type=_fraction,
        default=None,
        metavar="F",
        help="with --tile, the fraction of a tile its neighbours share, in [0, 1) (default: 0.2)",
    )
    predict.add_argument(
        "--workers",
        type=int,
        default=2,
        help="threads reading images, and as many writing files while the model predicts when its torch threads leave "
        "a core free (else the files are written between batches), 0: none (default: 2)",
    )
    predict.add_argument(
        "--lanes",
        type=_one_or_more,
        default=None,
        help="batches predicted at once, each on its own thread with a share of torch's threads (default: 2 on a CPU "
        "when torch has 2 or more threads and --workers is not 0, else 1)",
    )
    predict.add_argument(
        "--pictures", choices=["jpg", "png", "none"], default="jpg", help="format of the drawn pictures, or none (default: jpg)"
    )
    predict.add_argument(
        "--overlays",
        action="store_true",
        help="also write each segmentation mask in colours, a palette PNG with the background transparent (overlays/)",
    )

    predict.add_argument(
        "--labels",
        choices=["yolo", "voc", "coco", "folders"],
        default=None,
        help="also write the predictions as labels to correct rather than label from scratch, in a labelling tool: "
        "a detection head's boxes as yolo (labels/<name>.txt, class cx cy w h normalised, and classes.txt) or voc "
        "(Annotations/<name>.xml, whole pixels from 0); boxes and a segmentation head's masks as polygons, coco "
        "(annotations/instances_default.json); put the images beside them (images/ or JPEGImages/) to train on the "
        "folder. folders: each image file linked (or copied) into classified/<predicted class>/, a classification "
        "head's, to move the ones sorted wrong and train on",
    )
    predict.add_argument(
        "--min-score",
        type=_score,
        default=None,
        metavar="F",
        help="the lowest score of a box or point drawn and written as a label, in [0, 1] (default: 0.3); "
        "predictions.json keeps every box",
    )


def claim_output_folder(parent: Path, now: datetime.datetime) -> Path:
    """Creates and returns a new empty folder in `parent` named from `now` to the second (`2026-12-06_20-53-01`),
    with `_2`, `_3`... added when that name is taken (another run in the same second), so that a default output
    folder never holds or replaces another run's predictions. Creating it claims the name, also against a run in
    another process."""
    parent.mkdir(parents=True, exist_ok=True)
    stem = f"{now:%Y-%m-%d_%H-%M-%S}"
    number = 1
    while True:
        folder = parent / (stem if number == 1 else f"{stem}_{number}")
        try:
            folder.mkdir()
        except FileExistsError:
            number += 1
            continue
        return folder


def _one_or_more(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _count(number: int, noun: str) -> str:
    """The number and the noun, plural unless the number is 1.

    Example:
        >>> _count(1, "image"), _count(3, "unreadable image")
        ('1 image', '3 unreadable images')
    """
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _score(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a score in [0, 1], got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {value}")
    return value


def run(arguments: argparse.Namespace) -> int:
    """Predicts with the experiment's bricks, or with `--onnx` with the exported file and no torch imported (numpy,
    Pillow and onnxruntime only), so that the file predicts where torch is not installed; `--tile` with either."""
    from torchbricks.errors import BrickError
    from torchbricks.predict import DRAWN_MIN_SCORE, predict_images

    if arguments.overlap is not None and arguments.tile is None:  # else the whole image is predicted, overlap unused
        raise BrickError(f"--overlap {arguments.overlap} needs --tile N: without it each image is predicted whole.")
    if arguments.tile is not None:  # windows are for large images: orthomosaics beyond Pillow's default limit too
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
    backend: Any
    if arguments.onnx is not None:  # the file's own classes: it may come from another experiment
        folder = Path(arguments.experiment)
        with _warnings_as_lines():
            backend = _onnx_backend(folder, arguments)
        class_names, category_ids = backend.predictor.class_names, backend.predictor.category_ids
        exported_from = backend.predictor.metadata.get("experiment")
        if exported_from and Path(exported_from) != folder.resolve():
            print(
                f"torchbricks: warning: {str(backend.predictor.path)!r} was exported from {exported_from!r}, not from "
                f"{str(folder)!r}; its own classes name the results.",
                file=sys.stderr,
            )
    else:
        from torchbricks.predict import BrickBackend
        from torchbricks.trained_experiment import load_experiment

        experiment = load_experiment(arguments.experiment)
        folder = experiment.folder
        with _warnings_as_lines():
            backend = BrickBackend(experiment, batch_size=arguments.batch_size, tile=arguments.tile, overlap=arguments.overlap)
        class_names = {head: experiment.head_class_names(head) for head in backend.heads}
        category_ids = {head: experiment.head_category_ids(head) for head in backend.heads}
    out = Path(arguments.out) if arguments.out else claim_output_folder(folder / "predictions", datetime.datetime.now())

    def warn(source: str, reason: str) -> None:
        print(f"torchbricks: warning: skipped {source!r}: {reason}", file=sys.stderr)

    try:
        summary = predict_images(
            backend,
            arguments.sources,
            out,
            class_names=class_names,
            category_ids=category_ids,
            # with --tile, the batch is of tiles: a batch of 32 orthomosaics held at once would not fit in memory
            batch_size=1 if arguments.tile is not None else arguments.batch_size,
            overwrite=arguments.overwrite,
            workers=arguments.workers,
            lanes=arguments.lanes,
            pictures=None if arguments.pictures == "none" else arguments.pictures,
            overlays=arguments.overlays,
            labels=arguments.labels,
            min_score=DRAWN_MIN_SCORE if arguments.min_score is None else arguments.min_score,
            on_skip=warn,
        )
    except BaseException:
        if not arguments.out:  # the claimed default folder, still empty: a failed run leaves nothing behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    print(f"Predicted {_count(summary.num_images, 'image')} in {summary.seconds:.1f} s: {summary.folder}")
    if summary.skipped:
        print(f"Skipped {_count(len(summary.skipped), 'unreadable image')}, listed in {summary.folder / 'skipped.txt'}")
    return 0


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """The warnings of the block (a head tiles leave out) printed as `torchbricks: warning: ...` lines."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield
    for warning in caught:
        print(f"torchbricks: warning: {warning.message}", file=sys.stderr)


class _OnnxBackend:
    """`predict`'s backend interface over `torchbricks.deploy.OnnxPredictor` (the same per-image results)."""

    def __init__(self, predictor: Any, batch_size: int, tile: int | None, overlap: float | None) -> None:
        self.predictor = predictor
        self.batch_size = batch_size
        self.tile = tile
        self.overlap = overlap
        from torchbricks._tiled_predictions import tiled_heads

        self.heads: dict[str, str] = dict(predictor.heads)
        if tile is not None:
            predictor.check_tile(tile, overlap)  # before the first image: a file too old to merge masks is one line
            self.heads = tiled_heads(self.heads)[0]

    @property
    def decoding_size(self) -> tuple[int, int] | None:
        """The file's input size (images decoded for it as training decoded them), None with tiles (decoded whole)."""
        return self.predictor.image_size if self.tile is None else None

    def predict(self, images: Any, sizes: Any = None) -> list[Any]:
        return self.predictor.predict(list(images), batch_size=self.batch_size, tile=self.tile, overlap=self.overlap, sizes=sizes)


def _onnx_backend(folder: Any, arguments: argparse.Namespace) -> _OnnxBackend:
    """The exported file of `--onnx` (the experiment's `deploy.onnx` when no file is named), run by onnxruntime.

    The experiment folder is checked for the files training writes but not loaded: its bricks need torch.

    Raises:
        BrickError: A folder that is not a trained experiment, no exported file (the message says how to export
            one), or with `--tile` a file that cannot merge tiles (exported before the segmentation probabilities
            were an output).
    """
    from pathlib import Path

    from torchbricks._experiment import check_trained_experiment_folder
    from torchbricks.deploy import DEFAULT_FILE, OnnxPredictor
    from torchbricks.errors import BrickError

    check_trained_experiment_folder(Path(folder))
    path = Path(arguments.onnx) if arguments.onnx else Path(folder) / DEFAULT_FILE
    if not path.is_file():
        raise BrickError(f"--onnx: no exported model {str(path)!r}; write it with `torchbricks export {folder}` first.")
    predictor = OnnxPredictor(path)
    _check_exported_from_the_current_weights(Path(folder), path, predictor.metadata)
    return _OnnxBackend(predictor, arguments.batch_size, arguments.tile, arguments.overlap)


def _check_exported_from_the_current_weights(folder: Any, path: Any, metadata: dict[str, Any]) -> None:
    """A file exported from this experiment must come from its trained weights as they are now: after `resume=true`
    trained on, its predictions would silently be those of the earlier weights. (A file of another experiment is
    named in a warning instead; a file exported before the digest was recorded is not checked.)

    Raises:
        BrickError: The file's recorded weights differ from the experiment's; the message says how to export again.
    """
    from pathlib import Path

    from torchbricks._experiment import trained_weights_digest
    from torchbricks.errors import BrickError

    recorded = metadata.get("trained_weights")
    if recorded is None or Path(metadata.get("experiment", "")) != folder.resolve():
        return
    if recorded != trained_weights_digest(folder):
        raise BrickError(
            f"--onnx: {str(path)!r} was exported from other weights than the experiment's trained weights now (it trained "
            f"on since, e.g. with resume=true); export it again: `torchbricks export {folder} --overwrite`."
        )
