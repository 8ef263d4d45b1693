from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassROC
from torchmetrics.functional.classification import multiclass_accuracy

from torchbricks import (
    BrickCollection,
    BrickError,
    BrickLoss,
    BrickMetrics,
    BrickMetricSingle,
    BrickNotTrainable,
    BrickTrainable,
    Stage,
)
from torchbricks.bricks import BrickInterface
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.datamodules import NamedTensorDataset

NUM_CLASSES = 3


def create_collection(with_metrics: bool = True) -> BrickCollection:
    bricks: dict[str, Any] = {
        "scale": BrickNotTrainable(nn.Linear(4, 4), input_names=["raw"], output_names=["scaled"]),
        "classify": BrickTrainable(nn.Linear(4, NUM_CLASSES), input_names=["scaled"], output_names=["logits"]),
        "ce": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"]),
        "nll": BrickLoss(nn.NLLLoss(), input_names=["logits", "targets"], output_names=["loss_nll"]),
    }
    if with_metrics:
        metrics = {
            "accuracy": MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro"),
            "confusion_matrix": MulticlassConfusionMatrix(num_classes=NUM_CLASSES),
        }
        bricks["metrics"] = BrickMetrics(metrics, input_names=["logits", "targets"])
    return BrickCollection(bricks)


def create_module(
    tmp_path: Path, collection: BrickCollection | None = None, lr: float = 0.1, **kwargs: Any
) -> LightningBrickCollection:
    return LightningBrickCollection(
        path_experiments=tmp_path / "experiments",
        experiment_name=kwargs.pop("experiment_name", "test"),
        brick_collection=collection or create_collection(),
        create_optimizers_func=partial(torch.optim.SGD, lr=lr),
        **kwargs,
    )


def create_trainer(**kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "max_epochs": 1,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(**{**options, **kwargs})


def create_loader(raw: torch.Tensor, targets: torch.Tensor, batch_size: int = 4) -> DataLoader[Any]:
    return DataLoader(NamedTensorDataset(raw=raw, targets=targets), batch_size=batch_size)


def test_training_step_sums_weighted_losses_and_returns_each(tmp_path: Path) -> None:
    module = create_module(tmp_path, loss_weights={"loss_nll": 0.5})
    batch = {"raw": torch.rand(5, 4), "targets": torch.tensor([0, 1, 2, 0, 1])}

    step = module.training_step(batch, batch_idx=0)

    assert sorted(step) == ["loss", "loss_ce", "loss_nll"]
    torch.testing.assert_close(step["loss"], step["loss_ce"] + 0.5 * step["loss_nll"])


def test_tuple_batches_are_named_by_input_names(tmp_path: Path) -> None:
    module = create_module(tmp_path, input_names=("raw", "targets"))
    images, labels = torch.rand(2, 4), torch.tensor([0, 1])

    named = module.named_inputs_from_batch([images, labels])

    assert list(named) == ["raw", "targets"]
    assert named["raw"] is images


def test_tuple_batch_of_wrong_length_names_the_expected_names(tmp_path: Path) -> None:
    module = create_module(tmp_path)

    with pytest.raises(BrickError, match=r"batch of 3 items cannot be named by input_names \['raw', 'targets'\]"):
        module.training_step((torch.rand(2, 4), torch.tensor([0, 1]), torch.zeros(2)), batch_idx=0)


def test_unknown_loss_weight_suggests_the_loss_name(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"no loss brick produces.*Did you mean 'loss_ce'"):
        create_module(tmp_path, loss_weights={"loss_cee": 2.0})


def test_a_collection_without_losses_cannot_train(tmp_path: Path) -> None:
    collection = BrickCollection({"classify": BrickTrainable(nn.Linear(4, 2), input_names=["raw"], output_names=["logits"])})
    module = create_module(tmp_path, collection)

    with pytest.raises(BrickError, match="No loss brick ran in stage 'train'"):
        module.training_step({"raw": torch.rand(2, 4)}, batch_idx=0)


def test_stage_views_share_model_bricks_and_own_metric_bricks(tmp_path: Path) -> None:
    collection = create_collection()
    module = create_module(tmp_path, collection)
    original = dict(collection.iter_bricks())

    for stage in (Stage.TRAIN, Stage.VALIDATION, Stage.TEST):
        view = dict(module.stage_collection(stage).iter_bricks())
        assert view["classify"] is original["classify"]
        assert view["metrics"] is not original["metrics"]
    assert module.stage_collection(Stage.INFERENCE) is collection
    assert {id(p) for p in module.parameters()} == {id(p) for p in collection.parameters()}
    assert all(key.startswith("brick_collection.") for key in module.state_dict())


def test_create_optimizers_func_receives_the_trainable_parameters(tmp_path: Path) -> None:
    collection = create_collection()
    received: list[nn.Parameter] = []

    def create_optimizer(parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
        received.extend(parameters)
        return torch.optim.SGD(parameters, lr=0.1)

    module = LightningBrickCollection(tmp_path, "test", collection, create_optimizer)
    module.configure_optimizers()

    trainable = dict(collection.named_parameters())
    assert {id(p) for p in received} == {id(trainable["classify.model.weight"]), id(trainable["classify.model.bias"])}


def test_metrics_are_kept_apart_per_stage(tmp_path: Path) -> None:
    # lr=0 keeps the model fixed, so each stage's metric must equal the accuracy on that stage's data alone.
    torch.manual_seed(0)
    module = create_module(tmp_path, lr=0.0)
    train_raw, validation_raw = torch.rand(16, 4), torch.rand(8, 4)
    train_targets, validation_targets = torch.zeros(16, dtype=torch.int64), torch.randint(0, NUM_CLASSES, (8,))
    trainer = create_trainer()

    trainer.fit(module, create_loader(train_raw, train_targets), create_loader(validation_raw, validation_targets))

    model = module.brick_collection
    with torch.no_grad():
        train_logits = model({"raw": train_raw}, tags=Stage.INFERENCE)["logits"]
        validation_logits = model({"raw": validation_raw}, tags=Stage.INFERENCE)["logits"]
    expected_train = multiclass_accuracy(train_logits, train_targets, num_classes=NUM_CLASSES, average="micro")
    expected_validation = multiclass_accuracy(validation_logits, validation_targets, num_classes=NUM_CLASSES, average="micro")
    torch.testing.assert_close(module.epoch_metrics["train"]["accuracy"], expected_train)
    torch.testing.assert_close(module.epoch_metrics["validation"]["accuracy"], expected_validation)
    assert int(module.epoch_metrics["train"]["confusion_matrix"].sum()) == 16
    assert int(module.epoch_metrics["validation"]["confusion_matrix"].sum()) == 8


def test_losses_and_scalar_metrics_are_logged_per_stage(tmp_path: Path) -> None:
    module = create_module(tmp_path)
    loader = create_loader(torch.rand(8, 4), torch.randint(0, NUM_CLASSES, (8,)))
    trainer = create_trainer()

    trainer.fit(module, loader, loader)
    logged = set(trainer.callback_metrics)
    trainer.test(module, loader)

    expected_fit = {"train/loss_step", "train/loss_epoch", "train/losses/loss_ce_epoch", "train/losses/loss_nll_epoch"}
    assert expected_fit | {"train/accuracy", "validation/loss", "validation/losses/loss_ce", "validation/accuracy"} <= logged
    assert {"test/loss", "test/losses/loss_ce", "test/losses/loss_nll", "test/accuracy"} <= set(trainer.callback_metrics)
    assert "test/confusion_matrix" not in trainer.callback_metrics  # not a scalar: kept in epoch_metrics instead


def test_non_scalar_metrics_are_kept_per_stage(tmp_path: Path) -> None:
    module = create_module(tmp_path)
    targets = torch.tensor([0, 1, 2, 2, 1, 0])
    trainer = create_trainer()

    trainer.test(module, create_loader(torch.rand(6, 4), targets))

    confusion_matrix = module.epoch_metrics["test"]["confusion_matrix"]
    assert confusion_matrix.shape == (NUM_CLASSES, NUM_CLASSES)
    torch.testing.assert_close(confusion_matrix.sum(dim=1), torch.bincount(targets, minlength=NUM_CLASSES))


def test_predict_step_returns_the_inference_outputs(tmp_path: Path) -> None:
    module = create_module(tmp_path)
    trainer = create_trainer()

    predictions = trainer.predict(module, DataLoader(NamedTensorDataset(raw=torch.rand(6, 4)), batch_size=4))

    assert predictions is not None
    assert [sorted(prediction) for prediction in predictions] == [["logits", "scaled"], ["logits", "scaled"]]
    assert predictions[1]["logits"].shape == (2, NUM_CLASSES)


def test_experiment_name_defaults_to_a_timestamp(tmp_path: Path) -> None:
    module = create_module(tmp_path, experiment_name=None)

    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d{3}", module.experiment_name)
    assert module.path_experiment == tmp_path / "experiments" / module.experiment_name


def test_metrics_returning_several_tensors_are_kept(tmp_path: Path) -> None:
    collection = create_collection(with_metrics=False)
    collection["roc"] = BrickMetricSingle(MulticlassROC(num_classes=NUM_CLASSES, thresholds=3), input_names=["logits", "targets"])
    module = create_module(tmp_path, collection)

    create_trainer().test(module, create_loader(torch.rand(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])))

    false_positive_rates, true_positive_rates, thresholds = module.epoch_metrics["test"]["MulticlassROC"]
    assert false_positive_rates.shape == true_positive_rates.shape == (NUM_CLASSES, 3)
    assert sorted(thresholds.tolist()) == [0.0, 0.5, 1.0]  # thresholds=3: evenly spaced over [0, 1]


def test_a_metric_brick_added_after_construction_gets_its_stage_copies(tmp_path: Path) -> None:
    collection = create_collection(with_metrics=False)
    module = create_module(tmp_path, collection)
    collection["accuracy"] = BrickMetricSingle(MulticlassAccuracy(num_classes=NUM_CLASSES), input_names=["logits", "targets"])

    create_trainer().test(module, create_loader(torch.rand(4, 4), torch.tensor([0, 1, 2, 0])))

    assert list(module.epoch_metrics["test"]) == ["MulticlassAccuracy"]
    assert not collection["accuracy"].metrics.update_called  # the injected brick's state is left alone


class _OneBoxPerImage(nn.Module):
    """A fixed box decoder: one box of class 0 at the top-left corner of every image."""

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = raw.shape[0]
        boxes = torch.tensor([[[0.0, 0.0, 2.0, 2.0]]]).expand(size, 1, 4)
        return boxes, torch.full((size, 1), 0.9), torch.zeros(size, 1, dtype=torch.int64)


def test_logged_names_known_before_training_are_the_names_lightning_holds_after_an_epoch(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    from torchbricks.bag_of_bricks.object_detection import BoxMeanAveragePrecision

    collection = create_collection(with_metrics=True)
    collection["per_class"] = BrickMetrics(
        {"recall": MulticlassAccuracy(num_classes=NUM_CLASSES, average=None)}, input_names=["logits", "targets"]
    )  # one value per class: not logged
    collection["roc"] = BrickMetricSingle(MulticlassROC(num_classes=NUM_CLASSES, thresholds=3), ["logits", "targets"])
    box_inputs = ["./boxes", "./scores", "./labels", "target_boxes", "target_labels"]
    collection["cars"] = {
        "decode": BrickNotTrainable(_OneBoxPerImage(), input_names=["raw"], output_names=["./boxes", "./scores", "./labels"]),
        # two dict-valued metrics with the same keys: torchmetrics names them `<metric>_<key>`
        "two_maps": BrickMetrics({"strict": BoxMeanAveragePrecision(), "loose": BoxMeanAveragePrecision()}, box_inputs),
        "one_map": BrickMetricSingle(BoxMeanAveragePrecision(), box_inputs),  # a dict as one value: not logged
    }
    module = create_module(tmp_path, collection)
    data = {
        "raw": torch.rand(8, 4),
        "targets": torch.randint(0, NUM_CLASSES, (8,)),
        "target_boxes": torch.tensor([[[0.0, 0.0, 2.0, 2.0]]]).repeat(8, 1, 1),
        "target_labels": torch.zeros(8, 1, dtype=torch.int64),
    }
    known = {stage: module.logged_names(stage) for stage in (Stage.TRAIN, Stage.VALIDATION)}
    loader = DataLoader(NamedTensorDataset(**data), batch_size=4)
    trainer = create_trainer()

    trainer.fit(module, loader, loader)

    assert set(known[Stage.TRAIN]) | set(known[Stage.VALIDATION]) == set(trainer.callback_metrics)
    assert {"validation/cars/strict_map_50", "validation/cars/loose_mar_100", "train/losses/loss_nll_epoch"} <= set(
        known[Stage.VALIDATION] + known[Stage.TRAIN]
    )


def test_a_points_head_logs_its_f1_precision_and_recall_and_writes_its_per_class_values_to_the_metrics_file(
    tmp_path: Path,
) -> None:
    import json

    from helpers import PointsDataModule

    from torchbricks._files import json_ready
    from torchbricks.bag_of_bricks.point_detection import PointDetectionScores, create_point_detection_head

    torch.manual_seed(0)
    collection = BrickCollection(
        {
            "trunk": BrickTrainable(nn.Conv2d(3, 8, 4, stride=4), input_names=["raw"], output_names=["features"]),
            "spots": create_point_detection_head(
                2, 8, "features", 4, "target_points", "target_labels", hidden_channels=8, threshold=0.0,
                max_points=4, class_names=["dot", "cross"],
            ),
        }
    )  # fmt: skip
    module = create_module(tmp_path, collection, lr=0.0)
    loader = PointsDataModule().test_dataloader()
    known = module.logged_names(Stage.VALIDATION)
    trainer = create_trainer()

    trainer.fit(module, loader, loader)
    fitted = set(trainer.callback_metrics)
    trainer.test(module, loader, verbose=False)

    logged = {"validation/spots/f1", "validation/spots/precision", "validation/spots/recall"}
    assert logged <= set(known) & fitted  # the per-class values are written, not logged
    assert not any("per_class" in name for name in fitted)
    expected = PointDetectionScores(num_classes=2, distance=4, class_names=["dot", "cross"])
    collection.eval()
    with torch.no_grad():
        for batch in loader:
            outputs = collection(named_inputs=batch, tags=Stage.TEST)
            expected.update(outputs["spots/points"], outputs["spots/labels"], batch["target_points"], batch["target_labels"])
    values = expected.compute()
    written = json.loads((module.path_experiment / "metrics_test.json").read_text())
    for key in ("f1", "precision", "recall"):
        assert written[f"spots/{key}"] == pytest.approx(values[key].item()), key
    assert written["spots/per_class"] == json_ready(  # an undefined value (nothing to divide by) is null
        {name: {key: value.item() for key, value in entry.items()} for name, entry in values["per_class"].items()}
    )


def test_a_dict_valued_metric_that_does_not_declare_its_keys_is_logged_under_its_path() -> None:
    from torchmetrics.detection import MeanAveragePrecision

    collection = create_collection(with_metrics=False)
    collection["cars"] = {"map": BrickMetrics({"coco": MeanAveragePrecision()}, input_names=["predictions", "truth"])}
    module = create_module(Path("unused"), collection)

    # MeanAveragePrecision's keys are known once it computes: its values are logged under the brick's path.
    assert module.logged_names(Stage.VALIDATION) == [
        "validation/loss", "validation/losses/loss_ce", "validation/losses/loss_nll", "validation/cars/*"
    ]  # fmt: skip


def test_an_averaged_metric_no_brick_logs_is_refused_with_its_name_and_the_logged_values(tmp_path: Path) -> None:
    import torchmetrics

    from torchbricks import BrickCollection, BrickLoss, BrickMetricSingle, BrickTrainable
    from torchbricks.errors import UnknownMetricError

    collection = BrickCollection(
        {
            "head": {
                "classify": BrickTrainable(torch.nn.Linear(4, 2), input_names=["raw"], output_names=["./logits"]),
                "loss": BrickLoss(torch.nn.CrossEntropyLoss(), input_names=["./logits", "targets"], output_names=["./ce"]),
                "accuracy": BrickMetricSingle(
                    torchmetrics.classification.MulticlassAccuracy(num_classes=2), input_names=["./logits", "targets"]
                ),
            }
        }
    )
    with pytest.raises(
        UnknownMetricError, match=r"averaged_metrics names 'head/acuracy'.*Metric values: \['head/MulticlassAccuracy'\]"
    ) as error:
        LightningBrickCollection(
            tmp_path, "run", collection, lambda parameters: torch.optim.SGD(parameters, lr=0.1), averaged_metrics=["head/acuracy"]
        )
    assert (error.value.name, error.value.available) == ("head/acuracy", ["head/MulticlassAccuracy"])
    module = LightningBrickCollection(
        tmp_path,
        "run",
        collection,
        lambda parameters: torch.optim.SGD(parameters, lr=0.1),
        averaged_metrics=["head/MulticlassAccuracy"],
    )
    assert "validation/monitored_mean" in module.logged_names(Stage.VALIDATION)
    assert "train/monitored_mean" not in module.logged_names(Stage.TRAIN)


def test_an_averaged_metric_a_metric_names_only_once_it_computes_fails_at_the_sanity_check_when_it_is_not_computed(
    tmp_path: Path,
) -> None:
    # A metric collection with a prefix names its values when it computes (`validation/head/*` before): the
    # misspelt `head/accuracy` passed, the mean was never logged, and early stopping on it never acted.
    from torchmetrics import MetricCollection

    from torchbricks.errors import UnknownMetricError

    metrics = MetricCollection({"accuracy": MulticlassAccuracy(num_classes=NUM_CLASSES)}, prefix="top1_")
    collection = BrickCollection(
        {**create_collection(with_metrics=False), "head": {"metrics": BrickMetrics(metrics, input_names=["logits", "targets"])}}
    )
    module = create_module(tmp_path, collection, averaged_metrics=["head/accuracy"], write_files=False)
    assert "validation/head/*" in module.logged_names(Stage.VALIDATION)
    loader = create_loader(torch.randn(8, 4), torch.randint(0, NUM_CLASSES, (8,)))

    with pytest.raises(
        UnknownMetricError,
        match=r"averaged_metrics names 'head/accuracy', which no metric brick of the validation stage logs at the end of "
        r"the sanity check: .*Metric values: \['head/top1_accuracy'\]\. Did you mean 'head/top1_accuracy'\?",
    ):
        create_trainer(num_sanity_val_steps=1, max_epochs=3).fit(module, loader, loader)

    module = create_module(tmp_path, collection, averaged_metrics=["head/top1_accuracy"], write_files=False)
    create_trainer(num_sanity_val_steps=1, max_epochs=1).fit(module, loader, loader)
    mean = module.trainer.callback_metrics["validation/monitored_mean"]
    assert mean == module.epoch_metrics["validation"]["head/top1_accuracy"]


def test_a_class_weighted_loss_epoch_value_is_the_size_weighted_mean_of_its_batch_values_not_the_splits_ratio(
    tmp_path: Path,
) -> None:
    # What the README documents: per-batch normalization (the summed weights of the batch's targets) is kept.
    from torchbricks.bag_of_bricks.losses import ClassWeightedCrossEntropyLoss

    torch.manual_seed(0)
    weights = [0.2, 1.0, 5.0]
    classify = nn.Linear(4, NUM_CLASSES)
    collection = BrickCollection(
        {
            "classify": BrickTrainable(classify, input_names=["raw"], output_names=["logits"]),
            "ce": BrickLoss(ClassWeightedCrossEntropyLoss(weights), input_names=["logits", "targets"], output_names=["loss_ce"]),
        }
    )
    raw = torch.randn(10, 4)
    targets = torch.tensor([0, 0, 0, 0, 2, 1, 2, 1, 0, 2])  # batches of 4, 4, 2 with different weight sums
    module = create_module(tmp_path, collection, write_files=False)

    (logged,) = create_trainer().validate(module, create_loader(raw, targets, batch_size=4), verbose=False)

    weight = torch.tensor(weights)
    with torch.no_grad():
        logits = classify(raw)
        batches = [slice(0, 4), slice(4, 8), slice(8, 10)]
        per_batch = [nn.functional.cross_entropy(logits[part], targets[part], weight=weight) for part in batches]
        size_weighted = sum(loss * len(targets[part]) for loss, part in zip(per_batch, batches, strict=True)) / len(targets)
        whole_split = nn.functional.cross_entropy(logits, targets, weight=weight)
    assert logged["validation/losses/loss_ce"] == pytest.approx(float(size_weighted), rel=1e-5)
    assert abs(float(whole_split) - float(size_weighted)) > 1e-3  # so it is not the split's weighted loss


@pytest.mark.parametrize("stage", ["validate", "test"])
def test_several_evaluation_loaders_get_their_own_values(tmp_path: Path, stage: str) -> None:
    torch.manual_seed(0)
    collection = create_collection()
    module = create_module(tmp_path, collection, write_files=False)
    splits = [
        (torch.randn(13, 4), torch.randint(0, NUM_CLASSES, (13,))),
        (torch.randn(7, 4), torch.randint(0, NUM_CLASSES, (7,))),
    ]
    loaders = [create_loader(raw, targets, batch_size=5) for raw, targets in splits]

    results = getattr(create_trainer(), stage)(module, dataloaders=loaders, verbose=False)

    prefix = "validation" if stage == "validate" else "test"
    with torch.no_grad():
        expected = [
            multiclass_accuracy(
                collection["classify"].model(collection["scale"].model(raw)), targets, NUM_CLASSES, average="micro"
            )
            for raw, targets in splits
        ]
        pooled = multiclass_accuracy(
            collection["classify"].model(collection["scale"].model(torch.cat([raw for raw, _ in splits]))),
            torch.cat([targets for _, targets in splits]),
            NUM_CLASSES,
            average="micro",
        )
    assert len(results) == 2
    for index, result in enumerate(results):
        assert set(result) == {
            f"{prefix}/{name}/dataloader_idx_{index}" for name in ("loss", "losses/loss_ce", "losses/loss_nll", "accuracy")
        }
        assert result[f"{prefix}/accuracy/dataloader_idx_{index}"] == pytest.approx(float(expected[index]))
    assert float(expected[0]) != pytest.approx(float(pooled))  # the pooled value, which every loader reported before
    assert module.epoch_metrics[f"{prefix}/dataloader_idx_1"]["confusion_matrix"].sum() == 7


def test_pcgrad_gradients_are_scaled_by_accumulate_grad_batches_as_the_plain_total(tmp_path: Path) -> None:
    # Two copies of one loss never conflict, so PCGrad's step is the plain sum's; Lightning divides the total by
    # accumulate_grad_batches before backward, and PCGrad's own backward of the losses must do the same.
    from torchbricks.loss_balancing import PCGrad

    generator = torch.Generator().manual_seed(1)
    raw, targets = torch.rand(8, 4, generator=generator), torch.randint(0, NUM_CLASSES, (8,), generator=generator)
    trained = {}
    for name, balancer in (("sum", None), ("pcgrad", PCGrad(["loss_a", "loss_b"]))):
        torch.manual_seed(0)
        collection = BrickCollection(
            {
                "classify": BrickTrainable(nn.Linear(4, NUM_CLASSES), input_names=["raw"], output_names=["logits"]),
                "a": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_a"]),
                "b": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_b"]),
            }
        )
        module = create_module(tmp_path, collection, loss_balancer=balancer, write_files=False)
        create_trainer(accumulate_grad_batches=2).fit(module, create_loader(raw, targets))
        trained[name] = collection["classify"].model.weight.detach()
    torch.testing.assert_close(trained["pcgrad"], trained["sum"])


class _MeanOf042(BrickInterface, nn.Module):
    """A metric-like brick written for torchbricks 0.4.2: its own forward and summarize, no metric brick."""

    def __init__(self, input_names: list[str]) -> None:
        BrickInterface.__init__(self, input_names=input_names, output_names=[], tags="METRIC")
        nn.Module.__init__(self)
        self.total, self.count = 0.0, 0

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values = named_inputs[self.input_names[0]].float()
        self.total += float(values.sum())
        self.count += values.numel()
        return {}

    def extract_losses(self, named_outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def summarize(self, reset: bool) -> dict[str, torch.Tensor]:
        values = {"target_mean": torch.tensor(self.total / self.count)} if self.count else {}
        if reset:
            self.total, self.count = 0.0, 0
        return values

    def get_module_name(self) -> str:
        return "MeanOf"


def test_a_042_bricks_own_summarize_is_logged_per_stage_as_collection_summarize_reports_it(tmp_path: Path) -> None:
    collection = create_collection(with_metrics=False)
    collection["head"] = {"mean": _MeanOf042(["targets"])}
    module = create_module(tmp_path, collection, lr=0.0)
    train_targets, validation_targets = torch.zeros(12, dtype=torch.int64), torch.randint(0, NUM_CLASSES, (8,))
    trainer = create_trainer()

    trainer.fit(module, create_loader(torch.rand(12, 4), train_targets), create_loader(torch.rand(8, 4), validation_targets))

    # each stage's mean is that of its own data: the stages' batches are not mixed
    torch.testing.assert_close(module.epoch_metrics["train"]["head/target_mean"], train_targets.float().mean())
    torch.testing.assert_close(module.epoch_metrics["validation"]["head/target_mean"], validation_targets.float().mean())
    assert {"train/head/target_mean", "validation/head/target_mean"} <= set(trainer.callback_metrics)
    assert "validation/head/*" in module.logged_names(Stage.VALIDATION)
    assert collection["head"]["mean"].count == 0  # the stages ran their own copies
    train_copy = module.stage_collection(Stage.TRAIN)["head"]["mean"]
    assert list(module.stage_metric_bricks["train_stage_own_summaries"]) == [train_copy]  # moved with the module
    assert len(module.stage_metric_bricks["train_stage"]) == 0  # the metric bricks' keys stay as they were


def test_a_042_brick_with_its_own_summarize_and_parameters_is_shared_by_the_stages_with_a_warning(tmp_path: Path) -> None:
    collection = create_collection(with_metrics=False)
    collection["mean"] = _MeanOf042(["targets"])
    collection["mean"].scale = nn.Parameter(torch.ones(()))

    with pytest.warns(UserWarning, match=r"Brick 'mean' has its own summarize\(\) and parameters, so the training"):
        module = create_module(tmp_path, collection)

    assert all(view["mean"] is collection["mean"] for view in module._stage_collections.values())


def test_pcgrad_on_several_processes_of_another_strategy_than_ddp_is_refused_naming_it() -> None:
    from types import SimpleNamespace

    from torchbricks.lightning.module import _check_gradient_balancer_strategy
    from torchbricks.loss_balancing import PCGrad, UncertaintyWeighting

    class FSDPStrategy:  # stands for Lightning's, which needs GPUs
        pass

    sharded = SimpleNamespace(world_size=2, strategy=FSDPStrategy())
    with pytest.raises(BrickError, match=r"PCGrad \(loss_balancing=pcgrad\).*2 processes works with DDP only.*not with FSDPS"):
        _check_gradient_balancer_strategy(PCGrad(["a", "b"]), sharded)  # type: ignore[arg-type]
    _check_gradient_balancer_strategy(UncertaintyWeighting(["a", "b"]), sharded)  # type: ignore[arg-type]
    ddp = SimpleNamespace(world_size=2, strategy=pl.strategies.DDPStrategy())
    _check_gradient_balancer_strategy(PCGrad(["a", "b"]), ddp)  # type: ignore[arg-type]


class _LossWithShortParts(nn.Module):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = nn.functional.cross_entropy(logits, targets)
        return loss, torch.stack((loss.detach(), torch.tensor(1.0)))  # [2], not one row [1, 2] per loss


def test_a_loss_parts_output_of_another_shape_than_one_row_per_loss_is_refused_naming_it() -> None:
    collection = BrickCollection(
        {
            "head": BrickTrainable(nn.Linear(4, 2), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(_LossWithShortParts(), ["logits", "targets"], ["ce", "loss_parts"], loss_output_names=["ce"]),
        }
    )
    module = LightningBrickCollection("build", "parts", collection, lambda params: torch.optim.SGD(params, lr=0.1))

    with pytest.raises(BrickError, match=r"'loss_parts' must hold the numerator and denominator of each of the losses \['ce'\]"):
        module.validation_step((torch.rand(3, 4), torch.tensor([0, 1, 1])), batch_idx=0)


@pytest.mark.parametrize(("batch_size", "compile_stages"), [(3, False), (9, False), (3, True)], ids=["3", "9", "3-compiled"])
def test_a_training_epoch_loss_with_parts_is_the_whole_split_loss_whatever_the_batch_size(
    tmp_path: Path, batch_size: int, compile_stages: bool
) -> None:
    # Multilabel's loss divides each batch's sum by its known labels (-1: unknown), which vary from image to image:
    # with the weights kept (lr 0), the training epoch's loss is the mean over every known label of the split, as the
    # validation epoch's is (it was the mean of the batches' ratios, weighed by their sizes: another number per size).
    # Compiled, the numerators and denominators are outputs of the compiled call.
    from torchbricks.bag_of_bricks.multilabel_classification import MultiLabelLoss

    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(9, 4, generator=generator)
    targets = torch.randint(0, 2, (9, 3), generator=generator)
    targets[torch.arange(3) >= torch.tensor([3, 0, 1, 3, 2, 0, 1, 3, 2])[:, None]] = -1
    collection = BrickCollection(
        {
            "head": BrickTrainable(nn.Linear(4, 3), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(
                MultiLabelLoss(return_parts=True), ["logits", "targets"], ["bce", "loss_parts"], loss_output_names=["bce"]
            ),
        }
    )
    module = LightningBrickCollection(
        tmp_path, "parts", collection, lambda params: torch.optim.SGD(params, lr=0.0), write_files=False,
        compile_stages=compile_stages,
    )  # fmt: skip
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
        accelerator="cpu", limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, DataLoader(NamedTensorDataset(raw=raw, targets=targets), batch_size=batch_size))

    known = targets >= 0
    with torch.no_grad():
        logits = collection(named_inputs={"raw": raw}, tags="MODEL")["logits"]
    expected = nn.functional.binary_cross_entropy_with_logits(logits[known], targets[known].float())
    torch.testing.assert_close(trainer.callback_metrics["train/losses/bce_epoch"], expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(trainer.callback_metrics["train/loss_epoch"], expected, rtol=1e-5, atol=0)


def _two_head_collection() -> BrickCollection:
    """A classification head `cls` (3 classes, always predicting class 0: class 1 is never predicted) and a masks head
    `seg` (2 classes, 2x2 px), each with its loss, confusion matrix and per-class scores."""
    from torchbricks.bag_of_bricks.custom_metrics import ConfusionMatrixClassScores, MulticlassMeanIoU
    from torchbricks.bag_of_bricks.losses import ClassWeightedCrossEntropyLoss

    classify = nn.Linear(4, 3)
    nn.init.zeros_(classify.weight)
    with torch.no_grad():
        classify.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    masks = nn.Sequential(nn.Linear(4, 8), nn.Unflatten(1, (2, 2, 2)))
    cls_metrics = {"confusion_matrix": ConfusionMatrixClassScores(num_classes=3, class_names=["a", "b", "c"])}
    seg_metrics = {
        "mean_iou": MulticlassMeanIoU(num_classes=2, ignore_index=255),
        "confusion_matrix": ConfusionMatrixClassScores(num_classes=2, class_names=["ground", "road"], ignore_index=255),
    }
    return BrickCollection(
        {
            "cls": {
                "classify": BrickTrainable(classify, input_names=["raw"], output_names=["./logits"]),
                "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "targets"], output_names=["./loss_ce"]),
                "metrics": BrickMetrics(cls_metrics, input_names=["./logits", "targets"]),
            },
            "seg": {
                "classify": BrickTrainable(masks, input_names=["raw"], output_names=["./logits"]),
                "loss": BrickLoss(  # as the packaged head's: the numerator and denominator beside it (0 and 0 here)
                    ClassWeightedCrossEntropyLoss(ignore_index=255, return_parts=True),
                    input_names=["./logits", "masks"],
                    output_names=["./loss_ce", "./loss_parts"],
                    loss_output_names=["./loss_ce"],
                ),
                "metrics": BrickMetrics(seg_metrics, input_names=["./logits", "masks"]),
            },
        }
    )


def test_a_test_split_without_a_scored_pixel_of_one_head_leaves_the_total_loss_and_every_per_class_value_undefined(
    tmp_path: Path,
) -> None:
    # The total loss added the masks head's 0 (a sum over no pixel) to the classification loss, and a class absent from
    # the split or never predicted had per-class values of 0 beside support 0: numbers that read as measured.
    import math

    from torchbricks._files import json_ready
    from torchbricks.bag_of_bricks.custom_metrics import UNDEFINED_SCORE_REASONS
    from torchbricks.lightning._epoch_values import UNSCORED_REASON
    from torchbricks.lightning.main_job import logged_test_values

    module = create_module(tmp_path, _two_head_collection(), write_files=False)
    targets = torch.tensor([0, 1, 0, 1, 0, 0])  # no sample of class c; class b is never predicted
    dataset = NamedTensorDataset(raw=torch.randn(6, 4), targets=targets, masks=torch.full((6, 2, 2), 255))
    tested = create_trainer().test(module, DataLoader(dataset, batch_size=4), verbose=False)

    (logged,) = tested
    assert math.isnan(logged["test/loss"])
    assert math.isnan(logged["test/losses/seg/loss_ce"])
    assert logged["test/losses/cls/loss_ce"] == pytest.approx(
        float(nn.functional.cross_entropy(torch.tensor([[1.0, 0.0, -1.0]]).expand(6, 3), targets))
    )
    undefined = module.undefined_metrics["test"]
    assert "head(s) ['seg'] have none" in undefined["loss"]
    assert undefined["losses/seg/loss_ce"] == UNSCORED_REASON == undefined["seg/mean_iou"]
    assert logged_test_values(tested, module.epoch_metrics, module.undefined_metrics)["loss"] is None
    per_class = json_ready(module.epoch_metrics["test"]["cls/per_class"])
    assert per_class == {
        "a": {"precision": pytest.approx(4 / 6), "recall": 1.0, "iou": pytest.approx(4 / 6), "support": 4},
        "b": {"precision": None, "recall": 0.0, "iou": 0.0, "support": 2},  # never predicted: no precision
        "c": {"precision": None, "recall": None, "iou": None, "support": 0},  # neither true nor predicted
    }
    assert {name: reason for name, reason in undefined.items() if name.startswith("cls/")} == {
        "cls/per_class/b/precision": UNDEFINED_SCORE_REASONS["precision"],
        **{f"cls/per_class/c/{score}": UNDEFINED_SCORE_REASONS[score] for score in ("precision", "recall", "iou")},
    }
    seg = json_ready(module.epoch_metrics["test"]["seg/per_class"])
    assert seg == {name: {"precision": None, "recall": None, "iou": None, "support": 0} for name in ("ground", "road")}
    assert {name: reason for name, reason in undefined.items() if name.startswith("seg/per_class/")} == {
        f"seg/per_class/{name}/{score}": UNSCORED_REASON
        for name in ("ground", "road")
        for score in ("precision", "recall", "iou")
    }


def test_a_training_batch_without_a_scored_pixel_of_one_head_trains_the_other_heads_and_gives_that_one_no_gradient(
    tmp_path: Path,
) -> None:
    collection = _two_head_collection()
    module = create_module(tmp_path, collection, write_files=False)
    batch = {"raw": torch.randn(4, 4), "targets": torch.tensor([0, 1, 2, 0]), "masks": torch.full((4, 2, 2), 255)}

    step = module.training_step(batch, batch_idx=0)
    step["loss"].backward()

    seg = [parameter.grad for parameter in collection["seg"]["classify"].parameters()]
    assert all(grad is not None and not grad.isnan().any() and not grad.any() for grad in seg)  # nothing scored, no step
    cls = collection["cls"]["classify"].model.weight.grad
    assert cls is not None
    assert bool(cls.isfinite().all())
    assert float(cls.abs().sum()) > 0


@pytest.mark.slow
def test_a_training_batch_whose_every_mask_pixel_is_255_is_left_out_of_the_epoch_losses_and_its_step_loss_is_nan(
    shapes_root: Path, tmp_path: Path
) -> None:
    # Two training images in batches of one, one mask all 255: its loss is 0 / 0. With learned loss weights its step
    # total was logged as 0 and counted in the epoch's train/loss (half the scored batch's loss).
    import csv
    import shutil

    import numpy as np
    from PIL import Image

    from torchbricks.__main__ import main

    root = tmp_path / "masks"
    shutil.copytree(shapes_root / "segmentation", root)
    images = sorted((root / "train" / "images").iterdir())
    for image in images[2:]:
        image.unlink()
        (root / "train" / "masks" / f"{image.stem}.png").unlink()
    unscored = root / "train" / "masks" / f"{images[0].stem}.png"
    Image.fromarray(np.full_like(np.asarray(Image.open(unscored)), 255)).save(unscored)
    arguments = ["train", "task=segmentation", f"data.root={root}", f"experiment.path_experiments={tmp_path}"]
    arguments += ["experiment.name=run", "trainer.max_epochs=1", "data.image_size=64", "data.batch_size=1"]
    arguments += ["data.num_workers=0", "data.augmentations=[]", "loss_balancing=uncertainty", "trainer.log_every_n_steps=1"]

    assert main([*arguments, "n_visualized=0", "export_onnx=false"]) == 0

    rows = list(csv.DictReader((tmp_path / "run" / "logs" / "metrics.csv").open()))
    steps = [
        (float(row["train/loss_step"]), float(row["train/losses/segmentation/loss_ce_step"]))
        for row in rows
        if row.get("train/loss_step")
    ]
    scored = [loss for total, loss in steps if not np.isnan(loss)]
    assert len(steps) == 2, steps
    assert len(scored) == 1, steps
    assert [np.isnan(total) for total, loss in steps if np.isnan(loss)] == [True]  # not 0: no number for nothing scored
    epoch = next(row for row in rows if row.get("train/loss_epoch"))
    assert float(epoch["train/losses/segmentation/loss_ce_epoch"]) == pytest.approx(scored[0], rel=1e-5)
    # the total of the scored step alone: exp(-s) * loss + s, s the log-variance it was computed with (0 at the start)
    scored_total = next(total for total, loss in steps if not np.isnan(loss))
    assert float(epoch["train/loss_epoch"]) == pytest.approx(scored_total, rel=1e-5)
