from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from torchbricks.__main__ import main
from torchbricks._files import json_ready
from torchbricks.bag_of_bricks.custom_metrics import UNDEFINED_SCORE_REASONS
from torchbricks.datasets.folder_splits import folder_splits
from torchbricks.errors import BrickError, ConfigError
from torchbricks.evaluate import EvaluationResult, evaluate_experiment, format_evaluation, per_class_values

SRC = Path(__file__).parents[1] / "src"


def test_per_class_values_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=200)
    predicted = np.where(rng.random(200) < 0.6, truth, rng.integers(0, 4, size=200))
    matrix = confusion_matrix(truth, predicted, labels=range(4)).tolist()

    values = per_class_values({"head/accuracy": 0.5, "head/confusion_matrix": matrix}, ["a", "b", "c", "d"])["head"]

    precision = precision_score(truth, predicted, average=None, labels=range(4))
    recall = recall_score(truth, predicted, average=None, labels=range(4))
    assert [values[name]["precision"] for name in "abcd"] == pytest.approx(precision.tolist())
    assert [values[name]["recall"] for name in "abcd"] == pytest.approx(recall.tolist())
    assert [values[name]["support"] for name in "abcd"] == np.bincount(truth, minlength=4).tolist()


def test_a_class_never_predicted_has_an_undefined_precision_and_a_measured_recall_of_zero() -> None:
    values = per_class_values({"confusion_matrix": [[2, 0], [1, 0]]})["confusion_matrix"]
    assert values["1"] == pytest.approx({"precision": math.nan, "recall": 0.0, "support": 1}, nan_ok=True)


def test_evaluate_refuses_a_folder_that_is_not_an_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path), "data.root=x"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("torchbricks: error: ")
    assert "is not a trained experiment folder" in error


@pytest.mark.parametrize("split", ["validation", "Valid"])
def test_evaluate_given_split_validation_suggests_val(tmp_path: Path, split: str, capsys: pytest.CaptureFixture[str]) -> None:
    # the data folders are named valid/ or validation/ as often as val/; the error suggested nothing for them
    assert main(["evaluate", str(tmp_path), "data.root=x", f"split={split}"]) == 2
    assert f"split must be one of ['val', 'test', 'all'], got {split!r}. Did you mean 'val'?" in capsys.readouterr().err


def _metrics_equal(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        if isinstance(value, float):
            assert actual[name] == pytest.approx(value, abs=1e-6), name
        else:
            assert actual[name] == value, name  # confusion matrices: counts


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "multitask"])
def test_evaluate_on_the_training_test_split_equals_the_trained_metrics(
    task: str, trained_experiment: Any, shapes_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = trained_experiment(task)
    root = shapes_root / ("classification" if task == "classification" else "detection")

    assert main(["evaluate", str(folder), f"data.root={root}", "split=test"]) == 0

    evaluation = json.loads((folder / "evaluation.json").read_text())
    trained = json.loads((folder / "metrics.json").read_text())["test"]
    _metrics_equal(evaluation["metrics"], trained)
    assert evaluation["split"] == "test"
    assert evaluation["data_root"] == str(root)
    kinds = {"detection": "detection", "segmentation": "segmentation", "presence": "multilabel"}
    assert evaluation["heads"] == ({"classification": "classification"} if task == "classification" else kinds)
    printed = capsys.readouterr().out
    for name, value in trained.items():
        if isinstance(value, float):
            assert re.search(rf"^{re.escape(name)} +{value:.4f}$", printed, re.MULTILINE), name
    heads = ["classification"] if task == "classification" else ["detection", "segmentation", "presence"]
    for head in heads:  # every head's per-class values, as its metrics computed them in training
        assert evaluation["per_class"][head] == trained[f"{head}/per_class"]
        assert f"{head}: per class" in printed
    assert set(evaluation["per_class"]["classification" if task == "classification" else "detection"]) == {
        "circle",
        "square",
        "triangle",
    }


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segmentation", "multitask"])
def test_evaluate_gives_the_trained_test_values_at_any_batch_size(
    task: str, trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    """The experiment tested its 4 test images in one batch of 4; evaluated one at a time, in a batch of 3 and a
    partial one, or in one of 64, every value (the confusion matrices' counts, each class's values) is the same."""
    folder = trained_experiment(task)
    root = shapes_root / ("segmentation" if task == "segmentation" else "detection")
    trained = json.loads((folder / "metrics.json").read_text())["test"]

    for batch_size in (1, 3, 64):
        out = tmp_path / f"batch_{batch_size}.json"
        result = evaluate_experiment(folder, [f"data.root={root}", f"data.batch_size={batch_size}"], split="test", out=out)

        assert result.description["samples"] == 4
        evaluated = json.loads(out.read_text())["metrics"]
        _metrics_equal(evaluated, trained)  # the scalars within 1e-6, the matrices and per-class values exactly


@pytest.mark.slow
def test_evaluate_reads_another_root_with_the_experiment_data_config(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    folder = trained_experiment("segmentation")
    other = tmp_path / "other"
    shutil.copytree(shapes_root / "segmentation", other)
    shutil.rmtree(other / "val")
    shutil.copytree(shapes_root / "segmentation" / "train", other / "val")  # a different labelled set

    result = evaluate_experiment(folder, [f"data.root={other}"], split="val", out=tmp_path / "evaluation.json")

    written = json.loads((tmp_path / "evaluation.json").read_text())
    assert written["metrics"] == json_ready(result.metrics)  # a value with nothing to divide by: NaN, null in the file
    assert {"segmentation/mean_iou", "segmentation/per_class"} <= set(result.metrics)
    assert result.metrics != json.loads((folder / "metrics.json").read_text())["validation"]
    assert "segmentation/mean_iou" in format_evaluation(result)
    assert not (folder / "evaluation.json").exists()


@pytest.mark.slow
def test_evaluate_refuses_data_with_other_classes(trained_experiment: Any, shapes_root: Path, tmp_path: Path) -> None:
    folder = trained_experiment("classification")
    other = tmp_path / "other"
    shutil.copytree(shapes_root / "classification", other)
    for split in ("train", "val"):
        (other / split / "square").rename(other / split / "rectangle")

    with pytest.raises(
        ConfigError, match=r"has class folders \['rectangle'\] that the experiment was not trained on \(its classes: \['circle'"
    ):
        evaluate_experiment(folder, [f"data.root={other}"])
    (other / "train" / "rectangle").rename(other / "train" / "squares")
    (other / "val" / "rectangle").rename(other / "val" / "squares")
    with pytest.raises(ConfigError, match=r"\['squares'\] .* Did you mean 'square'\?"):
        evaluate_experiment(folder, [f"data.root={other}"])


@pytest.mark.slow
def test_evaluate_numbers_folders_of_some_of_the_classes_by_name(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = trained_experiment("classification")
    whole, some = tmp_path / "whole", tmp_path / "some"
    for target in (whole, some):
        shutil.copytree(shapes_root / "classification" / "val", target)
    shutil.rmtree(some / "circle")  # new images without the first class: the others would shift down by one

    every = evaluate_experiment(folder, [f"data.root={whole}"], split="all", out=tmp_path / "whole.json")
    assert main(["evaluate", str(folder), f"data.root={some}", "split=all", "--out", str(tmp_path / "some.json")]) == 0

    written = json.loads((tmp_path / "some.json").read_text())
    rows = every.metrics["classification/confusion_matrix"]  # rows: true classes circle, square, triangle
    assert written["metrics"]["classification/confusion_matrix"] == [[0, 0, 0], rows[1], rows[2]]
    assert written["classes_without_folder"] == ["circle"]
    supports = {name: values["support"] for name, values in written["per_class"]["classification"].items()}
    assert supports == {"circle": 0, **{name: len(list((some / name).iterdir())) for name in ("square", "triangle")}}
    assert "(no folder of 'circle': the other classes' images evaluated, numbered as in training)" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_numbers_a_sources_class_folders_by_its_heads_classes_and_refuses_masks_of_other_classes(
    shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # With data.sources the experiment has no class_names of its own (each head has its source's): new photographs
    # lacking a class were numbered from the folders they have, squares read as circles, and no class list was checked
    sources = (
        f"data.sources=[{{task: segmentation, root: {shapes_root / 'segmentation'}}}, "
        f"{{task: classification, root: {shapes_root / 'classification'}}}]"
    )
    arguments = ["train", "task=multitask", sources, "trainer.max_epochs=1", "data.image_size=32", "data.batch_size=4"]
    assert (
        main(
            [*arguments, "n_visualized=0", "export_onnx=false", f"experiment.path_experiments={tmp_path}", "experiment.name=run"]
        )
        == 0
    )
    folder = tmp_path / "run"
    whole, some = tmp_path / "whole", tmp_path / "some"
    for target in (whole, some):
        shutil.copytree(shapes_root / "classification", target)
    for split in ("train", "val"):
        shutil.rmtree(some / split / "circle")
    key = "data.sources.classification.data_module.root"

    every = evaluate_experiment(folder, [f"{key}={whole}"], split="test", out=tmp_path / "whole.json")
    assert main(["evaluate", str(folder), f"{key}={some}", "split=test", "--out", str(tmp_path / "some.json")]) == 0

    written = json.loads((tmp_path / "some.json").read_text())
    rows = every.metrics["classification/confusion_matrix"]  # rows: true classes circle, square, triangle
    assert written["metrics"]["classification/confusion_matrix"] == [[0, 0, 0], rows[1], rows[2]]
    assert written["head_classes_without_folder"] == {"classification": ["circle"]}
    supports = {name: values["support"] for name, values in written["per_class"]["classification"].items()}
    assert supports == {"circle": 0, **{name: len(list((some / "val" / name).iterdir())) for name in ("square", "triangle")}}
    assert "(no folder of 'circle' for head 'classification': the other classes' images evaluated" in capsys.readouterr().out
    other = tmp_path / "other_masks"
    shutil.copytree(shapes_root / "segmentation", other)
    (other / "classes.txt").write_text("background\ncar\nroad\ntree\n")
    with pytest.raises(
        ConfigError,
        match=r"Source 'segmentation' \(head 'segmentation' .*\): The masks in .* have classes \['car', 'road', 'tree'\] "
        r"that the experiment was not trained on \(its classes: \['background', 'circle', 'square', 'triangle'\]\)",
    ):
        evaluate_experiment(folder, [f"data.sources.segmentation.data_module.root={other}"], out=tmp_path / "other.json")


@pytest.mark.slow
def test_evaluate_refuses_unknown_keys_and_splits(trained_experiment: Any, shapes_root: Path) -> None:
    folder = trained_experiment("classification")
    with pytest.raises(ConfigError, match=r"no key 'data.rot'; data has \[.*'root'.*\]\. Did you mean 'root'\?"):
        evaluate_experiment(folder, ["data.rot=x"])
    with pytest.raises(BrickError, match=r"split must be one of \['val', 'test', 'all'\], got 'tset'"):
        evaluate_experiment(folder, [], split="tset")


@pytest.mark.slow
@pytest.mark.parametrize("override", ["model.num_classes=5", "model.bricks.classification.classify.model.pooling=max", "seed=3"])
def test_evaluate_refuses_an_override_that_would_change_nothing(trained_experiment: Any, tmp_path: Path, override: str) -> None:
    # The model is the experiment's saved bricks: a model key was accepted, written into evaluation.json's overrides and
    # ignored, so the numbers looked like those of the changed model.
    folder = trained_experiment("classification")
    with pytest.raises(ConfigError, match=rf"Override '{re.escape(override)}' would change nothing: .* overrides of data\.\*"):
        evaluate_experiment(folder, [override], out=tmp_path / "evaluation.json")
    assert not (tmp_path / "evaluation.json").exists()


@pytest.mark.slow
def test_evaluate_command_as_a_user_runs_it(trained_experiment: Any, shapes_root: Path, tmp_path: Path) -> None:
    folder = trained_experiment("classification")
    out = tmp_path / "eval.json"
    command = [
        sys.executable,
        "-m",
        "torchbricks",
        "evaluate",
        str(folder),
        f"data.root={shapes_root / 'classification'}",
        "--out",
        str(out),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}, check=False
    )

    assert completed.returncode == 0, completed.stderr
    assert "classification/accuracy" in completed.stdout
    assert json.loads(out.read_text())["metrics"]["classification/accuracy"] == pytest.approx(
        json.loads((folder / "metrics.json").read_text())["test"]["classification/accuracy"]
    )


def _pool_of(split_root: Path, out: Path) -> Path:
    """The class folders of every split of an image-folder data set, in one folder of class folders (no splits)."""
    for image in sorted(split_root.glob("*/*/*.png")):
        (out / image.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, out / image.parent.name / f"{image.parents[1].name}_{image.name}")
    return out


@pytest.mark.slow
def test_evaluate_on_new_labelled_photos_without_splits_reads_every_one_of_them(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = trained_experiment("classification")
    pool = _pool_of(shapes_root / "classification", tmp_path / "new_photos")
    count = len(list(pool.glob("*/*.png")))

    assert main(["evaluate", str(folder), f"data.root={pool}", "--out", str(tmp_path / "every.json")]) == 0
    every = json.loads((tmp_path / "every.json").read_text())
    assert (every["split"], every["samples"]) == ("all", count)
    assert every["split_chosen"].startswith("not the experiment's training data, and without a validation split")
    assert np.sum(every["metrics"]["classification/confusion_matrix"]) == count
    assert f"{pool}: every labelled image (training, validation and test splits, without augmentation), {count} samples" in (
        capsys.readouterr().out
    )
    test = evaluate_experiment(folder, [f"data.root={pool}"], split="test", out=tmp_path / "test.json")
    drawn = folder_splits(pool, "image_folder")["validation"].only or ()
    assert 0 < test.description["samples"] == len(drawn) < count  # the drawn fifth of each class
    assert np.sum(test.metrics["classification/confusion_matrix"]) == test.description["samples"]


@pytest.mark.slow
def test_evaluate_all_reads_training_and_validation_once_each_and_the_default_stays_test(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    folder = trained_experiment("classification")
    root = shapes_root / "classification"
    counts = {split: len(list((root / split).glob("*/*.png"))) for split in ("train", "val")}

    every = evaluate_experiment(folder, [f"data.root={root}"], split="all", out=tmp_path / "every.json")
    default = evaluate_experiment(folder, [f"data.root={root}"], out=tmp_path / "default.json")

    assert every.description["samples"] == counts["train"] + counts["val"]  # no test folder: val is not read twice
    assert (default.description["split"], default.description["samples"]) == ("test", counts["val"])
    copy = tmp_path / "copy"  # other data with a validation folder of its own: still its test split
    shutil.copytree(root, copy)
    assert evaluate_experiment(folder, [f"data.root={copy}"], out=tmp_path / "copy.json").description["split"] == "test"


@pytest.mark.slow
def test_evaluate_reads_the_digits_of_the_default_job_and_refuses_split_all_there(tmp_path: Path) -> None:
    assert main(["train", f"experiment.path_experiments={tmp_path}", "experiment.name=digits", "trainer.max_epochs=1"]) == 0
    trained = json.loads((tmp_path / "digits" / "metrics.json").read_text())["test"]

    result = evaluate_experiment(tmp_path / "digits", out=tmp_path / "evaluation.json")

    assert result.description["split"] == "test"
    assert result.description["samples"] == np.sum(trained["head/confusion_matrix"])  # the default job names its head "head"
    _metrics_equal(result.metrics, trained)
    with pytest.raises(BrickError, match=r"split=all reads every split of a torchbricks data module; DigitsDataModule"):
        evaluate_experiment(tmp_path / "digits", split="all", out=tmp_path / "all.json")


def test_an_experiment_trained_on_several_processes_is_evaluated_in_one(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    import shutil

    folder = Path(shutil.copytree(trained_experiment("classification"), tmp_path / "ddp"))
    from omegaconf import OmegaConf

    resolved = OmegaConf.load(folder / "resolved_config.yaml")
    resolved.trainer.devices, resolved.trainer.strategy = 2, "ddp"  # as a run on two processes wrote it
    OmegaConf.save(resolved, folder / "resolved_config.yaml")

    assert main(["evaluate", str(folder), f"data.root={shapes_root / 'classification'}", "split=test"]) == 0

    evaluation = json.loads((folder / "evaluation.json").read_text())
    _metrics_equal(evaluation["metrics"], json.loads((folder / "metrics.json").read_text())["test"])


def test_the_table_writes_n_a_with_the_reason_for_each_per_class_value_that_has_nothing_to_divide_by() -> None:
    """A class without a sample in the split has no recall (0/0), a class never predicted no precision, a class
    without a true box no AP, and a split without any true box a mAP of -1: the table must not let any of them pass
    for a measured value, and a measured 0 stays 0."""
    nan = math.nan
    per_class = {
        "head": {
            "cat": {"precision": 1.0, "recall": 0.5, "support": 4},
            "dog": {"precision": 0.0, "recall": nan, "support": 0},  # predicted, never true: precision a measured 0
            "eel": {"precision": nan, "recall": 0.0, "support": 2},  # true, never predicted
        },
        "boxes": {"cat": {"ap": 0.5, "ap_50": 0.7}, "dog": {"ap": nan, "ap_50": nan}},
    }
    reasons = {"head/per_class/dog/recall": "no true dog", "boxes/per_class/dog/ap": "no dog box"}
    result = EvaluationResult({"head/accuracy": 1.0}, per_class, {"undefined_metrics": reasons})

    printed = format_evaluation(result).splitlines()

    assert [line.split()[1:] for line in printed if line.startswith("dog ")] == [["0.0000", "n/a", "0"], ["n/a", "n/a"]]
    assert [line.split()[1:] for line in printed if line.startswith("eel ")] == [["n/a", "0.0000", "2"]]
    assert "n/a (undefined) for 'dog': recall: no true dog" in printed
    assert "n/a (undefined) for 'dog': ap: no dog box; ap_50: " + UNDEFINED_SCORE_REASONS["ap_50"] in printed
    assert "n/a (undefined) for 'eel': precision: " + UNDEFINED_SCORE_REASONS["precision"] in printed
    assert not any("'cat'" in line for line in printed)
    nothing_to_find = format_evaluation(EvaluationResult({"boxes/map": -1.0, "boxes/map_50": -1.0, "head/accuracy": -1.0}))
    assert "boxes/map_50   -1.0000  (undefined: no true box in this split)" in nothing_to_find
    assert "head/accuracy  -1.0000\n" in nothing_to_find + "\n"


def test_the_table_of_a_tiled_evaluation_says_its_samples_are_tiles_and_its_metrics_per_tile() -> None:
    description = {"split": "test", "data_root": "data", "samples": 36, "tiled_images": 4}

    header = format_evaluation(EvaluationResult({"boxes/map": 0.5}, {}, description)).splitlines()[0]

    assert header.startswith("data: ")
    assert header.endswith(
        ", 36 tiles of 4 images (the metrics are per tile: an object or pixel where tiles overlap counts in each)"
    )
    assert "samples" not in header


def _points_experiment(folder: Path, saved_metric: str) -> Path:
    """A hand-built experiment of a points head `spots` evaluated on `helpers.PointsDataModule`; `saved_metric` `f1`
    saves the head's metric as experiments saved it before precision, recall and the per-class values (a
    `PointDetectionF1` alone)."""
    from helpers import hand_built_experiment
    from omegaconf import OmegaConf

    from torchbricks.heads.points import PointsTaskHead

    head = PointsTaskHead.describe(
        num_classes=2, in_channels=8, features_name="features", stride=4, target_points_name="target_points",
        target_labels_name="target_labels", max_points=4, threshold=0.0, class_names=["dot", "cross"],
    )  # fmt: skip
    if saved_metric == "f1":
        head["metrics"]["metric_collection"] = {"f1": {"_target_": "torchbricks.bag_of_bricks.point_detection.PointDetectionF1",
                                                       "distance": 4}}  # fmt: skip
    hand_built_experiment(folder, {"spots": head}, ["dot", "cross"])
    config = OmegaConf.load(folder / "resolved_config.yaml")
    config.data = {"_target_": "helpers.PointsDataModule"}
    config.trainer = {"_target_": "pytorch_lightning.Trainer", "accelerator": "cpu", "enable_progress_bar": False}
    config.loss_weights = {}
    OmegaConf.save(config, folder / "resolved_config.yaml")
    return folder


def _points_outputs(folder: Path) -> list[tuple[torch.Tensor, ...]]:
    """Each test batch's predicted points and labels and true points and labels, of the experiment's collection."""
    from helpers import PointsDataModule

    from torchbricks.tags import Stage
    from torchbricks.trained_experiment import load_experiment

    collection = load_experiment(folder).collection
    batches = []
    with torch.no_grad():
        for batch in PointsDataModule().test_dataloader():
            outputs = collection(named_inputs=batch, tags=Stage.TEST)
            batches.append((outputs["spots/points"], outputs["spots/labels"], batch["target_points"], batch["target_labels"]))
    return batches


@pytest.mark.slow
def test_evaluate_writes_a_points_head_precision_recall_and_per_class_values_beside_its_f1(tmp_path: Path) -> None:
    from torchbricks.bag_of_bricks.point_detection import PointDetectionScores

    folder = _points_experiment(tmp_path / "run", saved_metric="scores")
    expected = PointDetectionScores(num_classes=2, distance=4, class_names=["dot", "cross"])
    for batch in _points_outputs(folder):
        expected.update(*batch)
    values = expected.compute()

    result = evaluate_experiment(folder, out=tmp_path / "evaluation.json")

    written = json.loads((tmp_path / "evaluation.json").read_text())
    assert sorted(written["metrics"]) == ["spots/f1", "spots/per_class", "spots/precision", "spots/recall"]
    for key in ("f1", "precision", "recall"):
        assert written["metrics"][f"spots/{key}"] == pytest.approx(values[key].item()), key
    per_class = {name: {key: value.item() for key, value in entry.items()} for name, entry in values["per_class"].items()}
    assert list(result.per_class) == ["spots"]
    assert {name: pytest.approx(entry, nan_ok=True) for name, entry in per_class.items()} == result.per_class["spots"]
    assert written["per_class"] == {"spots": json_ready(per_class)}
    assert (per_class["cross"]["support"], per_class["dot"]["support"] > 0) == (0, True)  # cross is never a true point
    # its recall has nothing to divide by: null, with the reason, not 0; its precision (every prediction false) is 0
    assert written["per_class"]["spots"]["cross"]["recall"] is None
    assert written["undefined_metrics"] == {"spots/per_class/cross/recall": UNDEFINED_SCORE_REASONS["recall"]}
    printed = format_evaluation(result)
    assert re.search(r"^class\s+precision\s+recall\s+f1\s+support$", printed, re.MULTILINE)
    assert re.search(r"^cross\s+0.0000\s+n/a\s+0.0000\s+0$", printed, re.MULTILINE), printed
    assert f"n/a (undefined) for 'cross': recall: {UNDEFINED_SCORE_REASONS['recall']}" in printed


@pytest.mark.slow
def test_a_points_experiment_saved_with_its_f1_alone_still_evaluates_and_writes_its_f1(tmp_path: Path) -> None:
    from torchbricks.bag_of_bricks.point_detection import PointDetectionF1

    folder = _points_experiment(tmp_path / "run", saved_metric="f1")
    expected = PointDetectionF1(distance=4)
    for batch in _points_outputs(folder):
        expected.update(*batch)

    result = evaluate_experiment(folder, out=tmp_path / "evaluation.json")

    written = json.loads((tmp_path / "evaluation.json").read_text())
    assert written["metrics"] == {"spots/f1": pytest.approx(expected.compute().item())}
    assert written["per_class"] == {} == result.per_class
    assert "spots/f1" in format_evaluation(result)


def _coco_without(coco_root: Path, out: Path, left_out: str, keep_category: bool) -> Path:
    """The shapes' COCO detection folder without the objects of class `left_out`, its category kept (the experiment's
    list) or left out too, the others then renumbered with ids of their own in reverse order (a subset of the
    classes, listed otherwise)."""
    shutil.copytree(coco_root, out)
    for split in ("train", "val"):
        document = json.loads((out / f"{split}.json").read_text())
        gone = {category["id"] for category in document["categories"] if category["name"] == left_out}
        document["annotations"] = [item for item in document["annotations"] if item["category_id"] not in gone]
        if not keep_category:
            kept = [category for category in document["categories"] if category["id"] not in gone]
            new_id = {category["id"]: 20 - index for index, category in enumerate(kept)}  # the later, the smaller id
            document["categories"] = [{**category, "id": new_id[category["id"]]} for category in kept]
            document["annotations"] = [{**item, "category_id": new_id[item["category_id"]]} for item in document["annotations"]]
        (out / f"{split}.json").write_text(json.dumps(document))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["coco", "yolo", "voc"])
def test_evaluate_numbers_box_data_of_some_of_the_classes_by_name(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Box data labelled with some of the experiment's classes was refused ("Evaluate on data with the same classes"),
    # where class folders were numbered by name.
    from layouts import coco_to_voc, coco_to_yolo

    folder = trained_experiment("detection")
    whole = _coco_without(shapes_root / "detection", tmp_path / "whole", "circle", keep_category=True)
    some = _coco_without(shapes_root / "detection", tmp_path / "some", "circle", keep_category=False)
    some = {"coco": some, "yolo": coco_to_yolo(some, tmp_path / "yolo"), "voc": coco_to_voc(some, tmp_path / "voc")}[layout]

    every = evaluate_experiment(folder, [f"data.root={whole}"], split="val", out=tmp_path / "whole.json")
    assert main(["evaluate", str(folder), f"data.root={some}", "split=val", "--out", str(tmp_path / "some.json")]) == 0

    written = json.loads((tmp_path / "some.json").read_text())
    for name in ("detection/map", "detection/map_50", "detection/map_75", "detection/mar_100"):
        assert written["metrics"][name] == pytest.approx(every.metrics[name], abs=1e-6), name
    assert written["per_class"]["detection"]["circle"] == {"ap": None, "ap_50": None}  # no true circle: undefined
    for name in ("square", "triangle"):
        expected = every.per_class["detection"][name]
        assert written["per_class"]["detection"][name] == pytest.approx(expected, abs=1e-6), name
    assert written["classes_not_in_data"] == ["circle"]
    assert "(the data has no class 'circle': its classes evaluated, numbered as in training)" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_refuses_box_data_of_a_class_the_experiment_does_not_know_naming_it_and_the_close_class(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path
) -> None:
    folder = trained_experiment("detection")
    other = _coco_without(shapes_root / "detection", tmp_path / "other", "circle", keep_category=False)
    for split in ("train", "val"):
        document = json.loads((other / f"{split}.json").read_text())
        document["categories"] = [
            {**category, "name": category["name"].replace("square", "squares")} for category in document["categories"]
        ]
        (other / f"{split}.json").write_text(json.dumps(document))

    with pytest.raises(
        ConfigError,
        match=r"classes \['squares'\] that the experiment was not trained on \(its classes: \['circle', 'square', "
        r"'triangle'\]\)\. Did you mean 'square'\?",
    ):
        evaluate_experiment(folder, [f"data.root={other}"], split="val")


def _masks_without_circles(segmentation_root: Path, out: Path, listed: list[str]) -> Path:
    """The shapes' segmentation folder with its circles' pixels made 255 (ignored), its classes listed as `listed`
    (the background first) and the masks' values numbered so."""
    from PIL import Image

    shutil.copytree(segmentation_root, out)
    names = (segmentation_root / "classes.txt").read_text().split()
    value_of = {index: 255 if name == "circle" else listed.index(name) for index, name in enumerate(names)}
    (out / "classes.txt").write_text("\n".join(listed) + "\n")
    for mask in out.glob("*/masks/*.png"):
        values = np.asarray(Image.open(mask))
        Image.fromarray(np.vectorize(lambda value: value_of.get(int(value), 255))(values).astype(np.uint8)).save(mask)
    return out


@pytest.mark.slow
def test_evaluate_numbers_masks_of_some_of_the_classes_listed_otherwise_by_name(
    trained_experiment: Any, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Masks whose classes.txt lists some of the experiment's classes were refused ("Evaluate on data with the same
    # classes"); read by their values, a triangle (1 here) would have been scored as a circle.
    folder = trained_experiment("segmentation")
    trained = (shapes_root / "segmentation" / "classes.txt").read_text().split()  # background, circle, square, triangle
    whole = _masks_without_circles(shapes_root / "segmentation", tmp_path / "whole", trained)
    some = _masks_without_circles(shapes_root / "segmentation", tmp_path / "some", ["background", "triangle", "square"])

    every = evaluate_experiment(folder, [f"data.root={whole}"], split="val", out=tmp_path / "whole.json")
    assert main(["evaluate", str(folder), f"data.root={some}", "split=val", "--out", str(tmp_path / "some.json")]) == 0

    written = json.loads((tmp_path / "some.json").read_text())
    assert written["metrics"]["segmentation/confusion_matrix"] == every.metrics["segmentation/confusion_matrix"]
    assert written["metrics"]["segmentation/mean_iou"] == pytest.approx(every.metrics["segmentation/mean_iou"])
    assert written["per_class"]["segmentation"]["circle"]["support"] == 0
    assert written["classes_not_in_data"] == ["circle"]
    assert "(the data has no class 'circle': its classes evaluated, numbered as in training)" in capsys.readouterr().out
    (some / "classes.txt").write_text("background\ntriangle\nsquares\n")
    with pytest.raises(
        ConfigError, match=r"classes \['squares'\] that the experiment was not trained on .* Did you mean 'square'\?"
    ):
        evaluate_experiment(folder, [f"data.root={some}"], split="val")
