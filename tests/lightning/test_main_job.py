from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from torchbricks import BrickCollection, Stage
from torchbricks.configuration import compose_config, create_brick_collection
from torchbricks.errors import ConfigError
from torchbricks.lightning.main_job import MainJobResult, run_main_job


@pytest.mark.slow
def test_main_job_reaches_97_percent_on_digits_and_writes_every_artifact(tmp_path: Path) -> None:
    config = compose_config(
        [f"experiment.path_experiments={tmp_path}", "experiment.name=digits", "trainer.enable_progress_bar=false"]
    )

    result = run_main_job(config)

    folder = tmp_path / "digits"
    assert result.path_experiment == folder
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["head/accuracy"] >= 0.97
    assert np.array(metrics["test"]["head/confusion_matrix"]).sum() == 360  # the 20 % test split of 1797 digits
    assert metrics["onnx_max_abs_difference"] < 1e-4
    assert (folder / "brick_graph.md").read_text().startswith("```mermaid\nflowchart LR")
    assert (folder / "logs" / "metrics.csv").is_file()
    assert Image.open(folder / "predictions.png").size[0] > 0

    # The per-brick checkpoints restore the trained model, and the ONNX file computes what it computes.
    restored = create_brick_collection(config)
    restored.load_bricks(folder / "bricks")
    restored.eval()
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = restored({"raw": images}, tags=Stage.EXPORT)["head/probabilities"]
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["head/probabilities"], {"raw": images.numpy()})
    np.testing.assert_allclose(probabilities, expected.numpy(), atol=1e-4)
    assert isinstance(result.module.brick_collection, BrickCollection)


@pytest.mark.slow
def test_tensorboard_receives_the_scalars_and_the_prediction_pictures_every_n_epochs_and_at_the_end(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from torchbricks.lightning.report import normalized_confusion_matrices

    config = compose_config(
        [
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=tb",
            "trainer.max_epochs=3",
            "+trainer.limit_train_batches=4",
            "pictures_every_n_epochs=2",
        ]
    )

    result = run_main_job(config)

    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/loss_epoch",
        "validation/loss",
        "validation/head/accuracy",
        "train/head/accuracy",
        "test/head/accuracy",
    } <= scalars
    assert len(events.Scalars("validation/head/accuracy")) == 3
    pictures = events.Images("predictions")
    validated = [value.step for value in events.Scalars("validation/head/accuracy")]
    assert [picture.step for picture in pictures] == validated[1:]  # after the second epoch, and the last, at their steps
    assert all(picture.width > 100 and picture.height > 100 for picture in pictures)
    # The pictures of the run, drawn from what metrics.json holds.
    folder = tmp_path / "tb"
    assert {"curves.png", "confusion_matrix.png", "predictions.png", "history.json"} <= {path.name for path in folder.iterdir()}
    matrix = np.array(result.metrics["test"]["head/confusion_matrix"], dtype=float)
    (normalized,) = normalized_confusion_matrices(result.metrics["test"]).values()
    np.testing.assert_allclose(normalized.sum(axis=1), np.ones(10))
    np.testing.assert_allclose(normalized * matrix.sum(axis=1, keepdims=True), matrix)
    history = json.loads((folder / "history.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1, 2]
    assert history[-1]["validation/head/accuracy"] == pytest.approx(result.metrics["validation"]["head/accuracy"])


@pytest.mark.slow
def test_the_last_epochs_predictions_picture_is_drawn_when_the_run_ends_before_max_epochs(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = compose_config(
        [
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=tb",
            "trainer.max_epochs=5",
            "+trainer.max_steps=8",  # 4 batches an epoch: ends after epoch 1, as max_time or early stopping end runs
            "+trainer.limit_train_batches=4",
            "pictures_every_n_epochs=3",
            "export_onnx=false",
        ]
    )

    run_main_job(config)

    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    validated = [value.step for value in events.Scalars("validation/loss")]
    assert [picture.step for picture in events.Images("predictions")] == validated[1:] == [7]  # epoch 1's last batch


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torchbricks.datasets.shapes import write_shapes_dataset

    return (
        write_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", num_train=8, num_val=4, image_size=32) / "classification"
    )


def _classification(root: Path, tmp_path: Path, *overrides: str) -> dict:
    return _run_classification(root, tmp_path, *overrides).metrics


def _run_classification(root: Path, tmp_path: Path, *overrides: str) -> MainJobResult:
    config = compose_config(
        [
            "task=classification",
            f"data.root={root}",
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            "data.batch_size=4",
            "data.image_size=32",  # the images' own size: these runs test the job's mechanics, not the recipe's size
            "n_visualized=2",
            *overrides,
        ]
    )
    return run_main_job(config)


@pytest.mark.slow
def test_the_best_epochs_weights_are_tested_and_saved_in_bricks_not_the_last(tiny_shapes: Path, tmp_path: Path) -> None:
    # From scratch, a learning rate ten times the task's makes the (seeded) training loss rise after the first epoch,
    # and the training loss, monitored here, then rates that epoch best: the weights tested are not the last ones.
    overrides = ["trainer.max_epochs=3", "checkpoint.monitor=train/loss", "checkpoint.mode=min", "optimizer.lr=0.01"]
    metrics = _classification(tiny_shapes, tmp_path, *overrides, "model.weights=null")

    folder = tmp_path / "run"
    history = json.loads((folder / "history.json").read_text())
    losses = [record["train/loss"] for record in history]
    assert metrics["best_epoch"] == 1 + int(np.argmin(losses)) < 3
    assert (metrics["stop_reason"], metrics["epochs"], metrics["tested_weights"]) == ("max_epochs", 3, "best")
    assert metrics["best_score"] == pytest.approx(min(losses))
    bricks = torch.load(folder / "bricks" / "backbone.pt", weights_only=True)
    best = torch.load(folder / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    last_checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    assert last_checkpoint["epoch"] == 2  # last.ckpt follows every epoch, not only those that improve best.ckpt
    last = last_checkpoint["state_dict"]
    for key, value in bricks.items():
        torch.testing.assert_close(value, best[f"brick_collection.backbone.{key}"])
    assert not all(torch.equal(value, last[f"brick_collection.backbone.{key}"]) for key, value in bricks.items())


def test_metrics_json_says_which_epoch_its_train_and_validation_values_are_of(tiny_shapes: Path, tmp_path: Path) -> None:
    # Validated every second epoch, the last of three trained epochs was not validated: metrics.json's validation
    # values are epoch 2's, beside epoch 3's training values, and it says so.
    overrides = ["trainer.max_epochs=3", "+trainer.check_val_every_n_epoch=2", "early_stopping.patience=null"]
    metrics = _classification(tiny_shapes, tmp_path, *overrides, "model.weights=null")

    history = json.loads((tmp_path / "run" / "history.json").read_text())
    validated = [record["epoch"] + 1 for record in history if "validation/loss" in record]
    assert metrics["metric_epochs"] == {"train": 3, "validation": validated[-1]} == {"train": 3, "validation": 2}
    assert metrics["validation"]["classification/accuracy"] == pytest.approx(
        next(record for record in history if record["epoch"] == 1)["validation/classification/accuracy"]
    )


@pytest.mark.slow
def test_a_list_of_monitored_values_keeps_the_epoch_best_by_their_mean(tiny_shapes: Path, tmp_path: Path) -> None:
    # The classification task logs one validation metric; the list of several is the multi-source test's.
    metrics = _classification(
        tiny_shapes, tmp_path, "trainer.max_epochs=3", "checkpoint.monitor=[validation/classification/accuracy]"
    )

    history = json.loads((tmp_path / "run" / "history.json").read_text())
    accuracies = [record["validation/classification/accuracy"] for record in history]
    assert [record["validation/monitored_mean"] for record in history] == pytest.approx(accuracies)
    assert metrics["best_score"] == pytest.approx(max(accuracies))
    # among epochs of the best accuracy, the one of the lowest validation loss (the checkpoint's tie breaker)
    tied = [index for index, accuracy in enumerate(accuracies) if accuracy == max(accuracies)]
    assert metrics["best_epoch"] == 1 + min(tied, key=lambda index: history[index]["validation/loss"])


_NO_IMPROVEMENT = ("trainer.max_epochs=6", "early_stopping.patience=1", "early_stopping.min_delta=2.0", "export_onnx=false")
"""Early stopping after one epoch without an improvement of 2.0, which no accuracy or loss here makes."""


@pytest.mark.slow
@pytest.mark.parametrize(("start_fraction", "epochs"), [(0.0, 2), (0.5, 3), (0.8, 5)])
def test_early_stopping_ends_the_run_after_patience_epochs_without_improvement_once_its_start_has_passed(
    tiny_shapes: Path, tmp_path: Path, start_fraction: float, epochs: int
) -> None:
    # Nothing improves by 2.0 on the first epoch (early stopping's reference); with patience 1 the run stops at the first check
    # from which on stopping is allowed: 2 epochs of 6 steps' worth of budget each, or the first epoch that ends at
    # or past start_fraction of the 6 planned epochs (the step budget; the time budget of 8 minutes is far).
    metrics = _classification(
        tiny_shapes,
        tmp_path,
        *_NO_IMPROVEMENT,
        f"early_stopping.start_fraction={start_fraction}",
        "early_stopping.finish_without_augmentations=false",  # the classification task's last phase: the test below
    )

    assert (metrics["stop_reason"], metrics["epochs"]) == ("early_stopping", epochs)
    assert f"did not improve in the last {epochs - 1} records" in metrics["early_stopping_message"]
    # The best checkpoint has no min_delta: it keeps the best accuracy of the epochs run, ties by the lowest loss
    # (which epoch that is moves with the numerics, e.g. the thread count).
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    accuracies = [record["validation/classification/accuracy"] for record in history]
    tied = [index for index, accuracy in enumerate(accuracies) if accuracy == max(accuracies)]
    assert metrics["best_epoch"] == 1 + min(tied, key=lambda index: history[index]["validation/loss"])


@pytest.mark.slow
@pytest.mark.parametrize("last_phase", ["[]", "[{_target_:torchvision.transforms.v2.RandomHorizontalFlip,p:0.5}]"])
def test_finish_without_augmentations_trains_on_without_them_before_early_stopping_ends_the_run(
    tiny_shapes: Path, tmp_path: Path, last_phase: str
) -> None:
    # Nothing improves by 2.0: the plateau after epoch 2 turns the augmentations off, the next one ends the run.
    result = _run_classification(
        tiny_shapes,
        tmp_path,
        *_NO_IMPROVEMENT,
        "early_stopping.start_fraction=0",
        "early_stopping.finish_without_augmentations=true",
        f"data.last_phase_augmentations={last_phase}",
    )

    metrics = result.metrics
    assert (metrics["stop_reason"], metrics["epochs"], metrics["augmentations_off_epoch"]) == ("early_stopping", 3, 2)
    pipeline = result.module.trainer.datamodule.train_transform
    assert not pipeline.switch.on
    assert [type(step).__name__ for step in pipeline.transforms[1:-1]] == (["RandomHorizontalFlip"] if last_phase != "[]" else [])


@pytest.mark.slow
def test_the_time_budget_ends_a_run_with_a_huge_epoch_cap(tiny_shapes: Path, tmp_path: Path) -> None:
    # Early stopping off: on an idle machine 10 epochs without progress fit in 2 seconds.
    result = _run_classification(
        tiny_shapes, tmp_path, "trainer.max_time=00:00:00:02", "early_stopping.patience=null", "export_onnx=false"
    )

    metrics = result.metrics
    assert metrics["stop_reason"] == "max_time"
    # The learning rate followed the trainer's budgets: 1000 epochs of 2 batches, and 2 seconds.
    scheduler = result.module.trainer.lr_scheduler_configs[0].scheduler
    assert (scheduler.total_steps, scheduler.max_seconds) == (2000.0, pytest.approx(2.0))
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)  # the floor: the time budget ended first
    assert 1 <= metrics["epochs"] < 1000
    assert metrics["training_seconds"] >= 2.0


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ("shapes", "the packaged weights 'shapes' are for 'compact_cnn', not 'resnet18'; use model.backbone=compact_cnn"),
        ("DEFALT", "torchvision has no weights 'DEFALT' for 'resnet18'; it has ['DEFAULT', 'IMAGENET1K_V1']"),
    ],
)
def test_weights_a_resnet_does_not_have_are_one_line_naming_model_weights(
    tiny_shapes: Path, tmp_path: Path, weights: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchbricks.__main__ import main

    experiments = tmp_path / "experiments"
    arguments = [f"data.root={tiny_shapes}", f"experiment.path_experiments={experiments}"]
    status = main(["train", "task=classification", *arguments, "model.backbone=resnet18", f"model.weights={weights}"])

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert line.startswith(f"torchbricks: error: Config key 'model.weights': {expected}")
    assert not experiments.exists()


@pytest.mark.parametrize("kind", ["another architecture", "a missing file", "an unknown packaged name"])
def test_unusable_weights_are_one_config_error_naming_model_weights_before_anything_is_written(
    tiny_shapes: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision

    from torchbricks.__main__ import main

    weights: Path | str = "shape" if kind == "an unknown packaged name" else tmp_path / "resnet18.pt"
    if kind == "another architecture":
        assert isinstance(weights, Path)
        torch.save(torchvision.models.resnet18().state_dict(), weights)
    experiments = tmp_path / "experiments"

    status = main(
        [
            "train",
            "task=classification",
            f"data.root={tiny_shapes}",
            f"experiment.path_experiments={experiments}",
            f"model.weights={weights}",
        ]
    )

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    if kind == "an unknown packaged name":
        assert line.startswith("torchbricks: error: Config key 'model.weights': compact_cnn has no packaged")
        assert "packaged weights 'shape' (packaged: ['shapes'])" in line
        assert line.endswith("Did you mean 'shapes'?")
        assert not experiments.exists()
        return
    assert line.startswith("torchbricks: error: Config key 'model.weights': the weights")
    if kind == "another architecture":
        assert "do not fit backbone 'compact_cnn': 78 of its 78 weights are missing (stem.0.weight" in line
        assert "122 are unexpected (conv1.weight" in line
    else:
        assert f"{str(weights)!r} does not exist" in line
    assert not experiments.exists()


@pytest.mark.parametrize(
    ("task", "backbone", "shipped"),
    [
        ("segmentation", "compact_cnn", True),
        ("detection", "compact_cnn", True),
        ("multitask", "compact_cnn", True),
        ("classification", "compact_cnn", True),
        ("detection", "resnet18", False),  # auto: a backbone without shipped weights starts from scratch, no error
        ("classification", "resnet18", False),
    ],
)
def test_every_task_starts_the_compact_cnn_from_the_shipped_weights(task: str, backbone: str, shipped: bool) -> None:
    from hydra.utils import instantiate

    from torchbricks.bag_of_bricks.backbone_weights import read_state_dict
    from torchbricks.bag_of_bricks.compact_cnn import packaged_weights
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    config = compose_config([f"task={task}", "data.root=unused", f"model.backbone={backbone}"])

    built = instantiate(config.model.bricks.backbone.model).state_dict()

    assert config.model.weights == "auto"
    stem = next(value for name, value in built.items() if name.endswith(("stem.0.weight", "conv1.weight")))
    saved = next(value for name, value in read_state_dict(packaged_weights("shapes")).items() if name.endswith("stem.0.weight"))
    assert (stem.shape == saved.shape and torch.equal(stem, saved.float())) is shipped


@pytest.mark.parametrize(
    ("backbone", "expected"),
    [
        ("compact_cnn", "model.weights: auto, the weights shipped for compact_cnn ('shapes'); model.weights=null starts"),
        ("resnet18", "model.weights: auto, from scratch: torchbricks ships no weights for resnet18; model.weights=DEFAULT"),
    ],
)
def test_the_job_says_which_weights_auto_gave_the_backbone(
    tiny_shapes: Path, backbone: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchbricks.configuration import create_model_bricks
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    overrides = ["task=classification", f"data.root={tiny_shapes}", f"model.backbone={backbone}"]
    create_model_bricks(compose_config([*overrides, "model.weights=auto"]))
    printed = capsys.readouterr().out
    create_model_bricks(compose_config([*overrides, "model.weights=null"]))

    (line,) = [line for line in printed.splitlines() if line.startswith("model.weights")]
    assert line.startswith(expected)
    assert "model.weights" not in capsys.readouterr().out  # said for auto only


@pytest.mark.parametrize(
    ("task", "overrides", "any_angle"),
    [
        ("detection", [], True),
        ("multitask", [], True),
        (
            "multitask",
            ["data.augmentations=[{_target_:torchbricks.datasets.augmentations.RandomRightAngleRotation}]"],
            False,
        ),
    ],
)
def test_detection_and_multitask_turn_by_any_angle_with_tight_boxes_unless_given_right_angles(
    task: str, overrides: list[str], any_angle: bool, shapes_root: Path
) -> None:
    from torchbricks.configuration.instantiate import instantiate_config
    from torchbricks.datasets.augmentations import RandomRightAngleRotation, RandomRotationTightBoxes
    from torchbricks.lightning.multi_source_config import expand_sources
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    config = expand_sources(compose_config([f"task={task}", f"data.root={shapes_root / 'detection'}", *overrides]))
    data = instantiate_config(config, "data")
    data.setup("fit")
    train = data.datasets["train"]

    turns = [type(step) for step in data.train_transform.transforms]
    assert (RandomRotationTightBoxes in turns) is any_angle
    assert (RandomRightAngleRotation in turns) is not any_angle
    assert data.train_transform.uses_outlines is any_angle
    assert ("outlines" in train.load_sample(0)) is any_angle  # the shapes' COCO polygons
    assert "outlines" not in train[0]
    assert data.test_transform.uses_outlines is False


def test_a_run_stopped_before_its_first_checkpoint_says_to_start_again_not_to_resume(tmp_path: Path) -> None:
    from torchbricks.errors import RunStoppedError
    from torchbricks.lightning.main_job import stops_named

    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(RunStoppedError, match="nothing was saved") as stopped, stops_named(folder):
        raise KeyboardInterrupt  # Ctrl-C in the first epoch: resume=true would find no checkpoints/last.ckpt
    assert "resume=true" not in str(stopped.value)
    assert "start it again with the same command and experiment.overwrite=true" in str(stopped.value)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(RunStoppedError, match=r"and resume=true experiment\.name=run\.$"), stops_named(folder):
        raise KeyboardInterrupt


@pytest.mark.slow
def test_a_failed_onnx_check_still_writes_the_runs_metrics_and_pictures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchbricks.errors import BrickError
    from torchbricks.lightning import main_job

    def failing_check(path: Path, *_: object) -> float:
        path.write_bytes(b"onnx")
        raise BrickError(f"The ONNX model in {str(path)!r} differs from PyTorch by 1 > 0.0001.")

    monkeypatch.setattr(main_job, "export_and_check_onnx", failing_check)
    config = compose_config(
        [
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
        ]
    )

    with pytest.raises(BrickError, match=r"differs from PyTorch by 1 > 0\.0001\. The run's bricks, metrics\.json and pictures"):
        run_main_job(config)

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["head/accuracy"] > 0.1
    assert "onnx_max_abs_difference" not in metrics
    assert (tmp_path / "run" / "predictions.png").is_file()


@pytest.mark.slow
def test_with_ema_decay_the_averaged_weights_are_validated_tested_and_kept(tiny_shapes: Path, tmp_path: Path) -> None:
    from torchbricks.evaluate import evaluate_experiment

    metrics = _classification(tiny_shapes, tmp_path, "trainer.max_epochs=3", "ema_decay=0.9", "export_onnx=false")

    folder = tmp_path / "run"
    best = torch.load(folder / "checkpoints" / "best.ckpt", weights_only=True)
    averaged, trained = best["state_dict"], best["current_model_state"]  # both travel in every checkpoint
    bricks = torch.load(folder / "bricks" / "backbone.pt", weights_only=True)
    for key, value in bricks.items():
        torch.testing.assert_close(value, averaged[f"brick_collection.backbone.{key}"])
    assert not all(torch.equal(value, trained[f"brick_collection.backbone.{key}"]) for key, value in bricks.items())
    # The test's figure is the kept weights' own: evaluating the experiment's bricks on the test split gives it again.
    evaluation = evaluate_experiment(folder, split="test")
    assert evaluation.metrics["classification/confusion_matrix"] == metrics["test"]["classification/confusion_matrix"]
    assert evaluation.metrics["classification/accuracy"] == pytest.approx(metrics["test"]["classification/accuracy"])


def test_a_checkpoint_monitor_a_metric_names_only_once_it_computes_misses_is_a_config_error_with_the_close_match(
    tmp_path: Path,
) -> None:
    # `validation/head/*` (a metric collection with a prefix) lets the misspelt name through the check before training
    from functools import partial

    import pytorch_lightning as pl
    from torchmetrics import MetricCollection
    from torchmetrics.classification import MulticlassAccuracy

    from torchbricks import BrickLoss, BrickMetrics, BrickTrainable
    from torchbricks.errors import ConfigError
    from torchbricks.lightning import LightningBrickCollection
    from torchbricks.lightning.callbacks import BestCheckpoint
    from torchbricks.lightning.datamodules import NamedTensorDataset
    from torchbricks.lightning.main_job import check_checkpoint_monitor, fit_and_test_best

    metrics = MetricCollection({"accuracy": MulticlassAccuracy(num_classes=2)}, prefix="top1_")
    collection = BrickCollection(
        {
            "model": BrickTrainable(torch.nn.Linear(1, 2), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(torch.nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce"]),
            "head": {"metrics": BrickMetrics(metrics, input_names=["logits", "targets"])},
        }
    )
    module = LightningBrickCollection(tmp_path, "run", collection, partial(torch.optim.SGD, lr=0.1), write_files=False)
    check_checkpoint_monitor("validation/head/acc", module)  # passes: `validation/head/*`
    data = NamedTensorDataset(raw=torch.randn(8, 1), targets=torch.randint(0, 2, (8,)))
    data_module = pl.LightningDataModule.from_datasets(data, data, data, batch_size=4)
    checkpoint = BestCheckpoint(
        dirpath=tmp_path / "checkpoints", filename="best", monitor="validation/head/acc", mode="max", tie_breaker=None
    )
    trainer = pl.Trainer(
        max_epochs=1, logger=False, callbacks=[checkpoint], enable_progress_bar=False, enable_model_summary=False
    )

    with pytest.raises(
        ConfigError,
        match=r"Config key 'checkpoint.monitor' names a metric that is not logged: .*"
        r"Did you mean 'validation/head/top1_accuracy'\?",
    ):
        fit_and_test_best(trainer, module, data_module, checkpoint=None, checkpointing=True)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "there is no such file"),
        ('{"class_names": ["a", ', "it is not JSON"),
        ('{"image_size": [8, 8]}', r"has no key 'class_names'"),
    ],
    ids=["missing", "truncated", "key missing"],
)
def test_resume_checks_the_classes_against_experiment_json_and_refuses_one_it_cannot_read(
    tmp_path: Path, text: str | None, match: str
) -> None:
    # check_same_classes returned without a word when experiment.json was missing (and failed with json's own error
    # when it was cut short): the resumed run trained each output on as whichever class the new data put there.
    from types import SimpleNamespace

    from torchbricks.errors import ConfigError
    from torchbricks.lightning.main_job import check_same_classes

    data = SimpleNamespace(class_names=["circle", "square"])
    if text is not None:
        (tmp_path / "experiment.json").write_text(text)

    with pytest.raises(ConfigError, match=match):
        check_same_classes(tmp_path, data)
    (tmp_path / "experiment.json").write_text(json.dumps({"class_names": ["square", "circle"]}))
    with pytest.raises(ConfigError, match=r"the data has the classes \['circle', 'square'\]"):
        check_same_classes(tmp_path, data)
    (tmp_path / "experiment.json").write_text(json.dumps({"class_names": ["circle", "square"]}))
    check_same_classes(tmp_path, data)


@pytest.mark.parametrize(
    ("overrides", "cause"),
    [
        (["+trainer.limit_val_batches=0"], "trainer.limit_val_batches=0 validates no batch"),
        (["+trainer.check_val_every_n_epoch=3"], "check_val_every_n_epoch=3 validates no epoch of trainer.max_epochs=2"),
    ],
)
def test_a_validation_monitor_without_validation_is_refused_before_training_naming_the_keys(
    tiny_shapes: Path, tmp_path: Path, overrides: list[str], cause: str
) -> None:
    with pytest.raises(ConfigError, match=r"\['checkpoint.monitor', 'early_stopping.patience'\]") as raised:
        _run_classification(tiny_shapes, tmp_path, "trainer.max_epochs=2", "early_stopping.patience=2", *overrides)
    assert cause in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_a_run_that_validated_no_epoch_tests_the_last_weights_and_says_so(tiny_shapes: Path, tmp_path: Path) -> None:
    # max_steps ends the run in its first epoch, before the third that would have validated: the keys alone cannot tell.
    overrides = ["trainer.max_epochs=-1", "+trainer.max_steps=2", "+trainer.check_val_every_n_epoch=3", "export_onnx=false"]
    with pytest.warns(UserWarning, match="No epoch was validated") as warned:
        result = _run_classification(tiny_shapes, tmp_path, *overrides, "early_stopping.patience=2")

    metrics = result.metrics
    assert (metrics["epochs"], metrics["tested_weights"], metrics["best_epoch"]) == (1, "last", None)
    assert "validation" not in metrics["metric_epochs"]
    note = metrics["tested_weights_note"]
    assert "best checkpoint and early stopping" in note
    assert "the last weights are tested" in note
    assert any(str(warning.message) == note for warning in warned)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["tested_weights_note"] == note


def test_training_on_several_processes_with_batch_norm_says_each_process_normalises_with_its_own_batch() -> None:
    import pytorch_lightning as pl

    from torchbricks.lightning.main_job import batch_norm_note

    with_batch_norm = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.BatchNorm1d(4))
    two = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)  # built, not launched

    note = batch_norm_note(two, with_batch_norm)
    assert note is not None
    assert note.startswith("torchbricks: note: training on 2 processes, the model's 2 BatchNorm layers normalise each")
    assert "trainer.sync_batchnorm=true (synchronised BatchNorm, on GPUs only)" in note
    assert batch_norm_note(pl.Trainer(accelerator="cpu", devices=1, logger=False), with_batch_norm) is None
    assert batch_norm_note(two, torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3))) is None


def test_a_jobs_start_up_reads_the_masks_for_its_data_facts_once_and_the_next_job_reads_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The class count, the binary-mask decision and the automatic class weights are asked for many times while a job
    # starts (each class interpolation of the config, the data module's checks); kept for the whole process by folder
    # path, a second job of the same process (a notebook, after fixing the masks) got the first job's, unread.
    from collections import Counter
    from typing import Any

    from torchbricks.datasets import class_frequencies, readers
    from torchbricks.lightning import main_job

    root = tmp_path / "data"
    for split, count in (("train", 3), ("val", 2)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir()
        for index in range(count):
            Image.new("RGB", (16, 16)).save(root / split / "images" / f"{index}.png")
            mask = np.arange(256, dtype=np.uint8).reshape(16, 16) % 3  # classes 0, 1, 2; no classes.txt
            Image.fromarray(mask).save(root / split / "masks" / f"{index}.png")
    training_masks = len(list((root / "train" / "masks").iterdir()))
    decoded: Counter[str] = Counter()  # masks decoded, by the function reading them
    real_read_mask = readers.read_mask

    def read_mask(path: Path, *arguments: Any, **keywords: Any) -> Any:
        decoded[sys._getframe(1).f_code.co_name] += 1
        return real_read_mask(path, *arguments, **keywords)

    class StartedError(Exception):
        pass

    def started(*arguments: Any) -> None:
        raise StartedError  # the data is read and checked: what follows writes the experiment and trains

    for module in (readers, class_frequencies):
        monkeypatch.setattr(module, "read_mask", read_mask)
    monkeypatch.setattr(main_job, "prepare_experiment_folder", started)
    config = compose_config(
        [
            "task=segmentation",
            f"data.root={root}",
            "loss.class_weights=auto",
            "data.image_size=16",
            f"experiment.path_experiments={tmp_path / 'experiments'}",
        ]
    )

    for _ in range(2):
        decoded.clear()
        with pytest.raises(StartedError):
            run_main_job(config)
        facts = ("_scanned_class_count", "_sampled_mask_counts", "segmentation_pixel_counts")
        assert {name: decoded[name] for name in facts} == dict.fromkeys(facts, training_masks)


@pytest.mark.parametrize("layout", ["image_folder", "coco", "yolo", "voc"])
def test_a_jobs_start_up_opens_each_file_of_the_data_once_and_lists_each_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    # The config's resolvers (every class interpolation, the image size), the data module, its checks and the
    # resolved config written to the run each read the data: the image folder's train/ was listed 20 to 34 times,
    # COCO's train.json parsed 17 times, YOLO's data.yaml read 27 times, a VOC training XML file 16 times and each
    # image opened 2 to 4 times (its size for the config, for the reader, then check_files' header and end).
    from collections import Counter
    from typing import Any

    from helpers import count_reads
    from layouts import coco_to_voc, coco_to_yolo

    from torchbricks.datasets.shapes import write_shapes_dataset
    from torchbricks.lightning import main_job

    shapes = write_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=3, image_size=32)
    root = {"image_folder": shapes / "classification", "coco": shapes / "detection"}.get(layout)
    if root is None:
        root = (coco_to_yolo if layout == "yolo" else coco_to_voc)(shapes / "detection", tmp_path / layout)
    texts = {str(path): path.read_text() for path in root.glob("*.json")}
    files = [str(path) for path in root.rglob("*") if path.is_file()]
    parsed: Counter[str] = Counter()  # JSON texts of the data parsed
    real_loads = json.loads

    def loads(text: Any, *arguments: Any, **keywords: Any) -> Any:
        parsed.update(path for path, whole in texts.items() if text == whole)
        return real_loads(text, *arguments, **keywords)

    class StartedError(Exception):
        pass

    def started(*arguments: Any) -> None:
        raise StartedError  # the run's files are written: what follows trains

    config = compose_config(
        [
            f"task={'classification' if layout == 'image_folder' else 'detection'}",
            f"data.root={root}",
            f"experiment.path_experiments={tmp_path / 'experiments'}",
        ]
    )
    opened, listed = count_reads(monkeypatch)
    monkeypatch.setattr(json, "loads", loads)
    monkeypatch.setattr(main_job, "fit_and_test_best", started)
    with pytest.raises(StartedError):
        run_main_job(config)

    assert len(files) >= 9
    assert {path: opened[path] for path in files} == dict.fromkeys(files, 1)  # every image, label file, list and JSON
    assert {path: count for path, count in listed.items() if path.startswith(str(root)) and count > 1} == {}
    assert parsed == Counter(dict.fromkeys(texts, 1))
