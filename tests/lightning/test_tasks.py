"""`torchbricks train task=... data.root=DIR` for each task, through the command line entry as shipped (progress bar on,
a loader process), briefly, on a tiny generated shapes data set."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from layouts import OUTLINE_CLASSES, expected_outline_mask, write_outline_data
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets.shapes import SHAPE_CLASSES, write_shapes_dataset

TINY = ["trainer.max_epochs=1", "data.image_size=32", "data.batch_size=4", "n_visualized=4"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 12 training images: at 48 px, 8 left the square class folder empty, which classification refuses (it trained on)
    return write_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", num_train=12, num_val=4, image_size=48)


def _train(task: str, root: Path, tmp_path: Path, *overrides: str) -> dict:
    status = main(
        [
            "train",
            f"task={task}",
            f"data.root={root}",
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            *TINY,
            *overrides,
        ]
    )
    assert status == 0
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


def _logged_names_before_training(task: str, root: Path) -> list[str]:
    from torchbricks.configuration import compose_config, create_brick_collection, read_job_settings
    from torchbricks.lightning.main_job import create_module
    from torchbricks.lightning.task_resolvers import register_resolvers
    from torchbricks.tags import Stage

    register_resolvers()
    config = compose_config([f"task={task}", f"data.root={root}", *TINY])
    collection = create_brick_collection(config)
    # Built as the job builds it: the task's loss balancing and what `checkpoint.monitor` averages.
    module = create_module(read_job_settings(config), collection, lambda parameters: torch.optim.SGD(parameters, lr=0.1))
    return module.logged_names(Stage.TRAIN) + module.logged_names(Stage.VALIDATION)


def _drawn_images(tmp_path: Path) -> Image.Image:
    return Image.open(tmp_path / "run" / "predictions.png")


def _test_predictions(folder: Path, prediction: str, target: str = "targets") -> tuple[torch.Tensor, torch.Tensor]:
    """The predictions of the trained experiment in `folder` (rebuilt from its files) on its test split, and the
    targets (the batches' `target`), read anew: what the test metrics must have been computed from."""
    from torchbricks.configuration import instantiate_config
    from torchbricks.tags import Stage
    from torchbricks.trained_experiment import load_experiment

    experiment = load_experiment(folder)
    data = instantiate_config(experiment.config, "data")
    data.setup("test")
    predictions, targets = [], []
    with torch.no_grad():
        for batch in data.test_dataloader():
            outputs = experiment.collection(named_inputs=batch, tags=Stage.INFERENCE, return_inputs=False)
            predictions.append(outputs[prediction])
            targets.append(batch[target])
    return torch.cat(predictions), torch.cat(targets)


@pytest.mark.slow
def test_classification_task_reports_the_accuracy_of_its_tested_weights_on_the_test_images(shapes: Path, tmp_path: Path) -> None:
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix

    metrics = _train("classification", shapes / "classification", tmp_path)

    test = metrics["test"]
    predicted, targets = _test_predictions(tmp_path / "run", "classification/class_prediction")
    num_classes = len(SHAPE_CLASSES)  # the classes came from the folders
    assert len(targets) == 4  # val is also the test split
    expected_matrix = multiclass_confusion_matrix(predicted, targets, num_classes)
    assert test["classification/confusion_matrix"] == expected_matrix.tolist()
    expected_accuracy = float(multiclass_accuracy(predicted, targets, num_classes, average="micro"))
    assert test["classification/accuracy"] == pytest.approx(expected_accuracy)
    assert test["classification/accuracy"] == pytest.approx(float((predicted == targets).float().mean()))
    assert metrics["onnx_max_abs_difference"] < 1e-4
    assert _drawn_images(tmp_path).size[0] >= 32


@pytest.mark.slow
def test_classification_with_image_scale_2_trains_and_exports_at_twice_the_median_size(shapes: Path, tmp_path: Path) -> None:
    arguments = ["train", "task=classification", f"data.root={shapes / 'classification'}"]
    arguments += [f"experiment.path_experiments={tmp_path}", "experiment.name=run", "trainer.max_epochs=1"]
    assert main([*arguments, "data.batch_size=4", "n_visualized=4", "data.image_scale=2"]) == 0

    described = json.loads((tmp_path / "run" / "experiment.json").read_text())
    assert described["image_size"] == [96, 96]  # the 48 px images enlarged twice (the median size alone: 64)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["onnx_max_abs_difference"] < 1e-4


@pytest.mark.slow
def test_segmentation_task_reports_the_mean_iou_of_its_tested_weights_on_the_test_masks(shapes: Path, tmp_path: Path) -> None:
    from torchmetrics.functional.classification import multiclass_jaccard_index

    metrics = _train("segmentation", shapes / "segmentation", tmp_path)

    predicted, targets = _test_predictions(tmp_path / "run", "segmentation/mask")
    num_classes = len(metrics["test"]["segmentation/confusion_matrix"])
    kept = targets != 255
    counts = np.bincount(targets[kept].numpy() * num_classes + predicted[kept].numpy(), minlength=num_classes**2)
    assert metrics["test"]["segmentation/confusion_matrix"] == counts.reshape(num_classes, num_classes).tolist()
    expected = float(multiclass_jaccard_index(predicted, targets, num_classes, ignore_index=255))
    assert metrics["test"]["segmentation/mean_iou"] == pytest.approx(expected, abs=1e-6)
    assert metrics["onnx_max_abs_difference"] < 1e-4


@pytest.mark.slow
def test_detection_task_trains_on_coco_files(shapes: Path, tmp_path: Path) -> None:
    metrics = _train("detection", shapes / "detection", tmp_path)

    assert sorted(name for name in metrics["test"] if not name.startswith("loss")) == [
        "detection/map",
        "detection/map_50",
        "detection/map_75",
        "detection/mar_100",
        "detection/per_class",
    ]
    assert list(metrics["test"]["detection/per_class"]) == list(SHAPE_CLASSES)
    assert metrics["onnx_max_abs_difference"] < 1e-4


@pytest.mark.slow
def test_multitask_trains_three_heads_on_one_backbone_from_the_coco_files(shapes: Path, tmp_path: Path) -> None:
    metrics = _train("multitask", shapes / "detection", tmp_path)

    test = metrics["test"]
    assert {"detection/map_50", "segmentation/mean_iou", "presence/f1", "presence/accuracy"} <= set(test)
    # What `checkpoint.monitor` is checked against before training is what the run logged.
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    known = _logged_names_before_training("multitask", shapes / "detection")
    assert set(history[-1]) - {"epoch"} == {name.removesuffix("_epoch") for name in known if not name.endswith("_step")}
    graph = (tmp_path / "run" / "brick_graph.md").read_text()
    assert graph.count("backbone") >= 1
    # One drawing per head and test image: 3 heads x 4 images, laid out in one grid.
    assert _drawn_images(tmp_path).size[0] * _drawn_images(tmp_path).size[1] >= 12 * 32 * 32


@pytest.mark.slow
def test_multitask_trains_on_coco_files_of_one_class_and_reports_its_presence(shapes: Path, tmp_path: Path) -> None:
    # torchmetrics' multilabel metrics refuse a single label: on a one-class data set (cars, tree crowns) the presence
    # head could not be built and the job stopped before training
    import shutil

    root = tmp_path / "circles"
    shutil.copytree(shapes / "detection", root)
    holding = {}
    for split in ("train", "val"):
        coco = json.loads((root / f"{split}.json").read_text())
        kept = [category["id"] for category in coco["categories"] if category["name"] == "circle"]
        coco["categories"] = [category for category in coco["categories"] if category["id"] in kept]
        coco["annotations"] = [annotation for annotation in coco["annotations"] if annotation["category_id"] in kept]
        (root / f"{split}.json").write_text(json.dumps(coco))
        holding[split] = len({annotation["image_id"] for annotation in coco["annotations"] if not annotation["iscrowd"]})

    test = _train("multitask", root, tmp_path)["test"]

    assert list(test["presence/per_class"]) == ["circle"]
    assert test["presence/per_class"]["circle"]["support"] == holding["val"] > 0  # the test images holding a circle
    assert 0 <= test["presence/f1"] <= 1
    assert list(test["detection/per_class"]) == ["circle"]
    assert len(test["segmentation/confusion_matrix"]) == 2  # the background and the circles


def test_a_missing_data_root_exits_with_an_error_naming_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "task=detection", f"experiment.path_experiments={tmp_path}"]) == 2
    assert "data.root" in capsys.readouterr().err


def test_a_data_root_that_does_not_exist_exits_with_an_error_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"

    assert main(["train", "task=classification", f"data.root={missing}", f"experiment.path_experiments={tmp_path}"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_the_default_job_is_still_the_digits_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--show-config"]) == 0
    printed = capsys.readouterr().out
    assert "DigitsDataModule" in printed
    shown = yaml.safe_load(printed)
    assert shown["experiment"]["task"] is None  # no task= choice (experiment.json records it as such)
    assert "task" not in shown["data"]


README = Path(__file__).parents[2] / "README.md"


def _readme_commands(section: str) -> list[list[str]]:
    text = README.read_text()
    body = text[text.index(f"## {section}\n") :]
    block = body[body.index("```bash\n") + len("```bash\n") : body.index("```", body.index("```bash\n") + 1)]
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_train_on_your_own_data_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The section's commands as written, with overrides appended that make the data set and the runs tiny."""
    commands = _readme_commands("Train on your own data")
    assert [command[:2] for command in commands] == [["torchbricks", "make-dataset"]] + [["torchbricks", "train"]] * 4
    monkeypatch.chdir(tmp_path)
    tiny = {"make-dataset": ["--num-train", "12", "--num-val", "4", "--image-size", "48"], "train": [*TINY, "export_onnx=false"]}

    for index, command in enumerate(commands):
        extra = tiny[command[1]] + ([f"experiment.name=run{index}"] if command[1] == "train" else [])
        assert main(command[1:] + extra) == 0, command
        if command[1] == "train":
            assert (tmp_path / "build" / "experiments" / f"run{index}" / "metrics.json").is_file()


def test_the_readmes_turn_overrides_set_the_classification_turn() -> None:
    """The README tells users to give `data.augmentations.1.degrees=N` where the angle matters: index 1 must stay the
    packaged list's turn, or the override would change another transform (or fail)."""
    from torchbricks.configuration import compose_config

    overrides = sorted(set(re.findall(r"data\.augmentations\.1\.degrees=\d+", README.read_text())))
    assert overrides == ["data.augmentations.1.degrees=0", "data.augmentations.1.degrees=180"]

    for override in overrides:
        turn = compose_config(["task=classification", "data.root=unused", override]).data.augmentations[1]
        assert (turn["_target_"], turn["degrees"]) == ("torchvision.transforms.v2.RandomAffine", int(override.split("=")[1]))


@pytest.mark.parametrize("task", ["classification", "segmentation", "detection", "multitask"])
def test_a_patience_given_to_any_task_waits_for_half_the_budget_as_the_readme_says(task: str) -> None:
    """`multitask` trains its whole budget, and `early_stopping.patience=10` (the README's way to stop it sooner) must
    stop it as the other tasks stop: not before half the budget (a model may sit at chance for minutes)."""
    from torchbricks.configuration import compose_config, read_job_settings

    settings = read_job_settings(compose_config([f"task={task}", "data.root=unused", "early_stopping.patience=10"]))

    assert (settings.early_stopping.patience, settings.early_stopping.start_fraction) == (10, 0.5)


@pytest.mark.parametrize("task", ["classification", "segmentation", "detection", "multitask"])
def test_only_classification_trains_its_last_phase_without_augmentations(task: str) -> None:
    """The README: classification turns its augmentations off at the first plateau (chosen on the suite's tuning
    sets); the dense tasks, whose right-angle turns keep their labels, stop there."""
    from torchbricks.configuration import compose_config, read_job_settings

    settings = read_job_settings(compose_config([f"task={task}", "data.root=unused"]))

    assert settings.early_stopping.finish_without_augmentations is (task == "classification")


@pytest.mark.slow
def test_segmentation_task_trains_evaluates_and_predicts_from_yolo_segmentation_outlines(tmp_path: Path) -> None:
    root = write_outline_data(tmp_path / "yolo", "yolo")

    metrics = _train("segmentation", root, tmp_path, "data.batch_size=2")

    run = tmp_path / "run"
    assert json.loads((run / "experiment.json").read_text())["class_names"] == ["background", *OUTLINE_CLASSES]
    assert 0.0 <= metrics["test"]["segmentation/mean_iou"] <= 1.0
    predicted, targets = _test_predictions(run, "segmentation/mask")
    expected = torch.stack([torch.from_numpy(expected_outline_mask(index, crowd=False)) for index in range(4)])
    assert torch.equal(targets, expected)  # the test split (the validation images) as the data module drew it
    counts = np.bincount(3 * targets[targets != 255].numpy() + predicted[targets != 255].numpy(), minlength=9)
    assert metrics["test"]["segmentation/confusion_matrix"] == counts.reshape(3, 3).tolist()
    assert metrics["onnx_max_abs_difference"] < 1e-4
    assert (run / "predictions.png").is_file()
    assert (run / "bricks" / "segmentation").is_dir()
    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads((run / "evaluation.json").read_text())
    assert evaluated["class_names"] == ["background", *OUTLINE_CLASSES]
    assert main(["predict", str(run), str(root / "images" / "val"), "--out", str(tmp_path / "predicted")]) == 0
    masks = sorted((tmp_path / "predicted" / "masks").iterdir())
    assert len(masks) == 4
    assert set(np.unique(np.asarray(Image.open(masks[0])))) <= {0, 1, 2}


@pytest.mark.slow
def test_multitask_trains_evaluates_and_predicts_from_yolo_segmentation_outlines(tmp_path: Path) -> None:
    root = write_outline_data(tmp_path / "yolo", "yolo")

    metrics = _train("multitask", root, tmp_path, "data.batch_size=2")

    run = tmp_path / "run"
    assert {"detection/map_50", "segmentation/mean_iou", "presence/f1"} <= set(metrics["test"])
    predicted, targets = _test_predictions(run, "segmentation/mask", "target_mask")
    # the test split (the validation images) drawn as task=segmentation draws them: the box without outline ignored
    expected = torch.stack([torch.from_numpy(expected_outline_mask(index, crowd=False)) for index in range(4)])
    assert torch.equal(targets, expected)
    counts = np.bincount(3 * targets[targets != 255].numpy() + predicted[targets != 255].numpy(), minlength=9)
    assert metrics["test"]["segmentation/confusion_matrix"] == counts.reshape(3, 3).tolist()
    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads((run / "evaluation.json").read_text())
    assert evaluated["metrics"]["segmentation/confusion_matrix"] == counts.reshape(3, 3).tolist()
    assert main(["predict", str(run), str(root / "images" / "val"), "--out", str(tmp_path / "predicted")]) == 0
    masks = sorted((tmp_path / "predicted" / "segmentation_masks").iterdir())  # a folder per head
    assert len(masks) == 4
    assert (tmp_path / "predicted" / "detection_predictions.json").is_file()
    assert set(np.unique(np.asarray(Image.open(masks[0])))) <= {0, 1, 2}
