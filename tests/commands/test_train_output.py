"""What `torchbricks train` prints, read as a batch job keeps it: stdout and stderr redirected to one file."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchbricks.__main__ import main

TORCHBRICKS = [sys.executable, "-m", "torchbricks"]
TIMEOUT = 300
SMALL = ["trainer.max_epochs=2", "data.image_size=32", "data.num_workers=0", "n_visualized=0", "export_onnx=false"]


def _train_to_file(output: Path, *arguments: str, python_path: Path | None = None, status: int = 0) -> list[str]:
    """Runs `torchbricks train ARGUMENTS` with stdout and stderr into one file (`> output 2>&1`); its lines, after
    checking its exit `status`."""
    environment = dict(os.environ)
    if python_path is not None:  # a module of the user's, beside the installed torchbricks
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(python_path), environment.get("PYTHONPATH")]))
    with open(output, "wb") as file:
        exited = subprocess.run(
            [*TORCHBRICKS, "train", *arguments],
            stdout=file,
            stderr=subprocess.STDOUT,
            env=environment,
            timeout=TIMEOUT,
            check=False,
        ).returncode
    text = output.read_text()
    assert exited == status, text[-3000:]
    return text.splitlines()


@pytest.fixture(scope="module")
def redirected_run(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A two-epoch classification run on the shapes, its output redirected to a file: its folder and output lines."""
    experiments = tmp_path_factory.mktemp("redirected")
    lines = _train_to_file(
        experiments / "output.txt",
        "task=classification",
        f"data.root={shapes_root / 'classification'}",
        f"experiment.path_experiments={experiments}",
        "experiment.name=run",
        *SMALL,
    )
    return experiments / "run", lines


@pytest.mark.slow
def test_a_redirected_run_prints_the_last_epochs_line_before_the_line_that_says_why_training_stopped(
    redirected_run: tuple[Path, list[str]],
) -> None:
    _, lines = redirected_run
    epochs = [index for index, line in enumerate(lines) if line.startswith("epoch ")]
    assert [lines[index].split()[1] for index in epochs] == ["1/2", "2/2"], lines
    stopped = lines.index("`Trainer.fit` stopped: `max_epochs=2` reached.")
    assert epochs[-1] < stopped < lines.index(f"Experiment folder: {redirected_run[0]}"), lines


@pytest.mark.slow
def test_a_run_cut_by_its_time_limit_prints_the_line_of_its_last_epoch_before_the_time_limits_line(
    shapes_root: Path, tmp_path: Path
) -> None:
    # Lightning's Timer says it after a batch, inside the epoch: the line read as if the limit was hit an epoch later.
    lines = _train_to_file(
        tmp_path / "output.txt",
        "task=classification",
        f"data.root={shapes_root / 'classification'}",
        f"experiment.path_experiments={tmp_path}",
        "experiment.name=run",
        *(argument for argument in SMALL if not argument.startswith("trainer.max_epochs=")),
        "trainer.max_epochs=100000",
        "trainer.max_time=00:00:00:01",
    )

    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["stop_reason"] == "max_time"
    limit = next(index for index, line in enumerate(lines) if line.startswith("Time limit reached. "))
    epochs = [index for index, line in enumerate(lines) if line.startswith("epoch ")]
    assert epochs, lines
    assert epochs[-1] < limit, lines


@pytest.mark.slow
def test_a_redirected_run_names_the_tested_checkpoint_on_one_line(redirected_run: tuple[Path, list[str]]) -> None:
    folder, lines = redirected_run
    best = str(folder.resolve() / "checkpoints" / "best.ckpt")
    assert json.loads((folder / "metrics.json").read_text())["tested_weights"] == "best"
    naming = [line for line in lines if best in line]
    assert naming == [f"Loaded model weights from the checkpoint at {best}"], lines


TWO_TEST_LOADERS = '''
from torchbricks.lightning.datamodules import ImageFolderDataModule


class TwoTestLoaders(ImageFolderDataModule):
    """Tests on the validation images (4) and on the training images (8), one loader each."""

    def test_dataloader(self):
        return [self.val_dataloader(), self._loader("train", shuffle=False)]
'''


def _write_two_test_loaders_config(tmp_path: Path) -> None:
    """`TwoTestLoaders` in `tmp_path` and a data config `two_test_loaders` under `tmp_path/configs` that uses it."""
    (tmp_path / "two_test_loaders.py").write_text(TWO_TEST_LOADERS)
    (tmp_path / "configs" / "data").mkdir(parents=True)
    packaged = Path(__file__).parents[2] / "src" / "torchbricks" / "configs" / "data" / "image_folder.yaml"
    config = packaged.read_text().replace(
        "torchbricks.lightning.datamodules.ImageFolderDataModule", "two_test_loaders.TwoTestLoaders"
    )
    (tmp_path / "configs" / "data" / "two_test_loaders.yaml").write_text(config)


@pytest.mark.slow
def test_each_of_several_test_loaders_is_summarised_under_a_line_naming_its_data(shapes_root: Path, tmp_path: Path) -> None:
    # A data module of the user's whose test_dataloader returns two loaders: Lightning logs each one's values with
    # `/dataloader_idx_<i>`, and the module keeps them as `test/dataloader_idx_<i>` in place of `test`.
    _write_two_test_loaders_config(tmp_path)
    lines = _train_to_file(
        tmp_path / "output.txt",
        "--config-dir",
        str(tmp_path / "configs"),
        "task=classification",
        "data=two_test_loaders",
        f"data.root={shapes_root / 'classification'}",
        f"experiment.path_experiments={tmp_path}",
        "experiment.name=run",
        *SMALL,
        python_path=tmp_path,
    )

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_loaders"] == {
        "dataloader_idx_0": {"dataset": "ImageFolderDataset", "samples": 4},
        "dataloader_idx_1": {"dataset": "ImageFolderDataset", "samples": 8},
    }
    assert set(metrics["metric_epochs"]) == {"train", "validation"}
    # every test value of Lightning's CSV log, under its loader's line, as logged, at 4 decimals
    log = list(csv.DictReader((tmp_path / "run" / "logs" / "metrics.csv").open()))
    logged = {name: float(value) for row in log for name, value in row.items() if name.startswith("test/") and value}
    summary = lines[lines.index(f"Experiment folder: {tmp_path / 'run'}") + 1 :]
    summary = summary[: next(index for index, line in enumerate(summary) if line.startswith("  wall time: "))]
    for loader, samples in ((0, 4), (1, 8)):
        heading = summary.index(f"  test loader {loader} (ImageFolderDataset, {samples} samples):")
        values = dict(line.strip().split(": ") for line in summary[heading + 1 :] if line.startswith("    "))
        expected = {name: value for name, value in logged.items() if name.endswith(f"/dataloader_idx_{loader}")}
        assert {"test/classification/accuracy", "test/loss"} <= {name.rpartition("/")[0] for name in expected}, logged
        own = {name: value for name, value in values.items() if name.endswith(f"/dataloader_idx_{loader}")}
        assert own == {name: f"{value:.4f}" for name, value in expected.items()}, summary
    assert len(summary) == 2 + len(logged), summary  # two loader lines and each value once: none duplicated


@pytest.mark.slow
def test_evaluate_of_a_data_module_with_several_test_loaders_reports_the_split_they_make_together(
    shapes_root: Path, tmp_path: Path
) -> None:
    # evaluate kept the values of the plain `test` entry alone, which several loaders do not fill (each had its own,
    # test/dataloader_idx_<i>): it printed nothing and wrote no metric, though it counted every loader's samples.
    _write_two_test_loaders_config(tmp_path)
    arguments = [f"experiment.path_experiments={tmp_path}", "experiment.name=run", *SMALL]
    _train_to_file(
        tmp_path / "output.txt",
        *["--config-dir", str(tmp_path / "configs"), "task=classification", "data=two_test_loaders"],
        f"data.root={shapes_root / 'classification'}",
        *(argument for argument in arguments if argument != "trainer.max_epochs=2"),
        "trainer.max_epochs=1",
        python_path=tmp_path,
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}

    evaluated = subprocess.run(
        [*TORCHBRICKS, "evaluate", str(tmp_path / "run"), "split=test", "--out", str(tmp_path / "evaluation.json")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=TIMEOUT,
        check=False,
    )

    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["samples"] == 12  # the validation images (4) and the training images (8)
    matrix = np.asarray(evaluation["metrics"]["classification/confusion_matrix"])
    assert matrix.sum() == 12
    assert evaluation["metrics"]["classification/accuracy"] == pytest.approx(np.trace(matrix) / 12)
    assert "classification/accuracy" in evaluated.stdout


def _segmentation_with_unlabelled(shapes_root: Path, root: Path, split: str) -> Path:
    """The shapes' segmentation folder with a split whose every mask pixel is 255: `val` made so, or a `test` split
    of the validation images with such masks."""
    shutil.copytree(shapes_root / "segmentation", root)
    if split == "test":
        shutil.copytree(root / "val", root / "test")
    for path in (root / split / "masks").glob("*.png"):
        Image.fromarray(np.full_like(np.asarray(Image.open(path)), 255)).save(path)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("sources", [False, True], ids=["segmentation", "multitask sources"])
def test_a_validation_split_whose_every_mask_pixel_is_255_stops_the_run_after_its_first_epoch_naming_split_and_head(
    shapes_root: Path, tmp_path: Path, sources: bool
) -> None:
    # Its mean IoU was NaN (null) and its loss 0, without a word: early stopping ended the run after that epoch
    # ("Monitored metric ... = nan is not finite", in metrics.json only) and the first epoch's weights were tested.
    root = _segmentation_with_unlabelled(shapes_root, tmp_path / "masks", "val")
    data = (
        [
            "task=multitask",
            f"data.sources=[{{task: classification, root: {shapes_root / 'classification'}}}, "
            f"{{task: segmentation, root: {root}, name: masks}}]",
        ]
        if sources
        else ["task=segmentation", f"data.root={root}"]
    )
    lines = _train_to_file(
        tmp_path / "output.txt", *data, f"experiment.path_experiments={tmp_path}", "experiment.name=run", *SMALL, status=2
    )

    head = "masks" if sources else "segmentation"
    error = lines[-1]
    assert error.startswith(f"torchbricks: error: The validation split gave head(s) [{head!r}] no pixel to score in epoch 1"), (
        lines
    )
    assert f"validation/{head}/mean_iou" in error
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == [], lines  # stopped before its line
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.fixture(scope="module")
def unlabelled_test_split(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A segmentation run whose test split's every mask pixel is 255: its data, its folder and its output lines."""
    folder = tmp_path_factory.mktemp("unlabelled_test")
    root = _segmentation_with_unlabelled(shapes_root, folder / "masks", "test")
    lines = _train_to_file(
        folder / "output.txt",
        "task=segmentation",
        f"data.root={root}",
        f"experiment.path_experiments={folder}",
        "experiment.name=run",
        *SMALL,
    )
    return root, folder / "run", lines


UNSCORED = "no target of the split was scored: every one is the ignored index (every mask pixel 255)"


@pytest.mark.slow
def test_a_test_split_whose_every_mask_pixel_is_255_has_its_mean_iou_and_losses_said_undefined_with_the_reason(
    unlabelled_test_split: tuple[Path, Path, list[str]],
) -> None:
    _, folder, lines = unlabelled_test_split
    summary = [line for line in lines if line.startswith("  test/")]
    assert summary == [
        f"  test/segmentation/mean_iou: undefined ({UNSCORED})",
        f"  test/loss: undefined ({UNSCORED})",
        f"  test/losses/segmentation/loss_ce: undefined ({UNSCORED})",
    ], lines
    assert sum("are undefined, NaN in the CSV and TensorBoard logs and null in the JSON files" in line for line in lines) == 1, (
        lines
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["segmentation/mean_iou"] is None
    assert metrics["test_logged"] == {"loss": None, "losses/segmentation/loss_ce": None}
    classes = list(metrics["test"]["segmentation/per_class"])
    assert metrics["test"]["segmentation/per_class"] == {  # no pixel scored: no per-class value either, not 0
        name: {"precision": None, "recall": None, "iou": None, "support": 0} for name in classes
    }
    assert metrics["undefined_metrics"]["test"] == {
        "segmentation/mean_iou": UNSCORED,
        "losses/segmentation/loss_ce": UNSCORED,
        "loss": UNSCORED,
        **{f"segmentation/per_class/{name}/{score}": UNSCORED for name in classes for score in ("precision", "recall", "iou")},
    }
    # the validation split is labelled: at most a class the two-epoch model never predicts has no precision
    assert all("/per_class/" in name for name in metrics["undefined_metrics"].get("validation", {}))
    assert metrics["validation"]["segmentation/mean_iou"] is not None  # the validation split is labelled


@pytest.mark.slow
def test_a_test_split_whose_every_mask_pixel_is_255_has_its_losses_logged_as_nan_as_its_mean_iou(
    unlabelled_test_split: tuple[Path, Path, list[str]],
) -> None:
    # They were logged as 0 (a sum over no pixel), a perfect loss beside the NaN mean IoU, while metrics.json said null.
    _, folder, _ = unlabelled_test_split
    undefined = ["test/segmentation/mean_iou", "test/loss", "test/losses/segmentation/loss_ce"]
    log = list(csv.DictReader((folder / "logs" / "metrics.csv").open()))
    logged = {name: value for row in log for name, value in row.items() if name.startswith("test/") and value}
    assert logged == dict.fromkeys(undefined, "nan"), logged
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    tensorboard = {name: [event.value for event in events.Scalars(name)] for name in undefined}
    assert all(len(values) == 1 and np.isnan(values[0]) for values in tensorboard.values()), tensorboard


@pytest.mark.slow
def test_evaluate_on_a_split_whose_every_mask_pixel_is_255_says_its_mean_iou_is_undefined_and_why(
    unlabelled_test_split: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, folder, _ = unlabelled_test_split
    out = tmp_path / "evaluation.json"

    assert main(["evaluate", str(folder), f"data.root={root}", "split=test", "--out", str(out)]) == 0

    table = capsys.readouterr().out.splitlines()
    assert f"segmentation/mean_iou  undefined ({UNSCORED})" in table, table
    evaluation = json.loads(out.read_text())
    assert evaluation["metrics"]["segmentation/mean_iou"] is None
    classes = list(evaluation["per_class"]["segmentation"])
    assert evaluation["undefined_metrics"] == {
        "segmentation/mean_iou": UNSCORED,
        **{f"segmentation/per_class/{name}/{score}": UNSCORED for name in classes for score in ("precision", "recall", "iou")},
    }
    assert f"n/a (undefined) for {classes[0]!r}: precision, recall, iou: {UNSCORED}" in table, table


def _detection_without_true_boxes(shapes_root: Path, root: Path, split: str) -> Path:
    """The shapes' COCO detection folder with a split without any object: `val` made so, or a `test` split of the
    validation images without annotations."""
    shutil.copytree(shapes_root / "detection", root)
    coco = json.loads((root / "val.json").read_text())
    (root / f"{split}.json").write_text(json.dumps({**coco, "annotations": []}))
    return root


NO_TRUE_BOX = (
    "no true box in the split (no object, or only ignored ones: VOC difficult, COCO crowd): "
    "the mean average precision and recall have no true box to find"
)


@pytest.fixture(scope="module")
def boxless_test_split(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A detection run whose test split has no object: its data, its folder and its output lines."""
    folder = tmp_path_factory.mktemp("boxless_test")
    root = _detection_without_true_boxes(shapes_root, folder / "boxes", "test")
    lines = _train_to_file(
        folder / "output.txt",
        "task=detection",
        f"data.root={root}",
        f"experiment.path_experiments={folder}",
        "experiment.name=run",
        *SMALL,
    )
    return root, folder / "run", lines


@pytest.mark.slow
def test_a_test_split_without_a_true_box_has_its_map_and_recall_null_with_the_reason_not_minus_one(
    boxless_test_split: tuple[Path, Path, list[str]],
) -> None:
    # pycocotools' -1 was written to metrics.json and printed as `test/detection/map: -1.0000`, read as a score.
    _, folder, lines = boxless_test_split
    scalars = ["detection/map", "detection/map_50", "detection/map_75", "detection/mar_100"]
    summary = [line for line in lines if line.startswith("  test/detection/")]
    assert summary == [f"  test/{name}: undefined ({NO_TRUE_BOX})" for name in scalars], lines
    for file in ("metrics.json", "metrics_test.json"):
        metrics = json.loads((folder / file).read_text())
        test = metrics.get("test", metrics)
        assert {name: test[name] for name in scalars} == dict.fromkeys(scalars, None), file
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {name: metrics["undefined_metrics"]["test"][name] for name in scalars} == dict.fromkeys(scalars, NO_TRUE_BOX)
    assert all(value is not None for value in metrics["validation"].values())  # the validation split has objects
    log = list(csv.DictReader((folder / "logs" / "metrics.csv").open()))
    logged = {name: value for row in log for name, value in row.items() if name.startswith("test/detection/") and value}
    assert logged == {f"test/{name}": "nan" for name in scalars}, logged


@pytest.mark.slow
def test_evaluate_on_a_split_without_a_true_box_says_its_map_is_undefined_and_why(
    boxless_test_split: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, folder, _ = boxless_test_split
    out = tmp_path / "evaluation.json"

    assert main(["evaluate", str(folder), f"data.root={root}", "split=test", "--out", str(out)]) == 0

    table = capsys.readouterr().out.splitlines()
    assert f"detection/map_50   undefined ({NO_TRUE_BOX})" in table, table
    evaluation = json.loads(out.read_text())
    assert evaluation["metrics"]["detection/map_50"] is None
    assert evaluation["undefined_metrics"]["detection/map"] == NO_TRUE_BOX


@pytest.mark.slow
def test_a_validation_split_without_a_true_box_stops_the_run_after_its_first_epoch_naming_split_and_head(
    shapes_root: Path, tmp_path: Path
) -> None:
    # Its map_50, the monitor, was -1 every epoch: the best checkpoint stayed on the first epoch and early stopping
    # stopped after `patience` epochs, without a word.
    root = _detection_without_true_boxes(shapes_root, tmp_path / "boxes", "val")
    lines = _train_to_file(
        tmp_path / "output.txt",
        "task=detection",
        f"data.root={root}",
        f"experiment.path_experiments={tmp_path}",
        "experiment.name=run",
        *SMALL,
        status=2,
    )

    error = lines[-1]
    assert error.startswith("torchbricks: error: The validation split has no true box for head(s) ['detection'] in epoch 1"), (
        lines
    )
    assert "validation/detection/map_50" in error
    assert [line for line in lines if line.startswith("epoch ")] == [], lines
    assert not (tmp_path / "run" / "metrics.json").exists()
