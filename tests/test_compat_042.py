"""Code written for torchbricks 0.4.2 runs unchanged on the engine (issue 8): signatures, defaults and names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from torchbricks import BrickCollection, BrickError, BrickLoss, BrickMetrics, BrickMetricSingle, BrickNotTrainable, BrickTrainable
from torchbricks.brick_tags import ModelStage, Tag
from torchbricks.errors import BrickNameError, CheckpointError, NoBricksSelectedError
from torchbricks.tags import STAGE_TAGS, Stage


def test_brick_trainable_takes_loss_output_names_then_tags_positionally() -> None:
    brick = BrickTrainable(nn.Identity(), ["x"], ["y", "z"], ["z"], "HEAD")
    assert brick.loss_output_names == ["z"]
    assert brick.tags == frozenset({"HEAD"})


def test_brick_loss_takes_loss_output_names_then_tags_positionally() -> None:
    brick = BrickLoss(nn.L1Loss(), ["y", "t"], ["l1"], "none", {"LOSS", "EXTRA"})
    assert brick.loss_output_names == []
    assert brick.tags == frozenset({"LOSS", "EXTRA"})


def test_brick_metric_single_takes_metric_name_then_tags_then_return_metrics_positionally() -> None:
    brick = BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["p", "t"], "accuracy", "EVAL", True)
    assert brick.metric_names == ["accuracy"]
    assert brick.tags == frozenset({"EVAL"})
    assert brick.return_metrics


def test_brick_not_trainable_and_brick_metrics_keep_their_positional_order() -> None:
    frozen = BrickNotTrainable(nn.Linear(1, 1), ["x"], ["y"], "FROZEN", False)
    assert (frozen.tags, frozen.calculate_gradients) == (frozenset({"FROZEN"}), False)
    metrics = BrickMetrics(MetricCollection({"acc": MulticlassAccuracy(num_classes=2)}), ["p", "t"], "EVAL", True)
    assert (metrics.tags, metrics.return_metrics) == (frozenset({"EVAL"}), True)


@pytest.mark.parametrize(("loss_output_names", "expected"), [("none", []), ("all", ["a", "b"]), (["b"], ["b"]), ("b", ["b"])])
def test_loss_output_names_accept_none_all_and_a_list(loss_output_names: str | list[str], expected: list[str]) -> None:
    assert BrickTrainable(nn.Identity(), ["x"], ["a", "b"], loss_output_names).loss_output_names == expected


def test_loss_output_names_default_to_none_for_modules_and_all_for_losses() -> None:
    assert BrickTrainable(nn.Identity(), ["x"], ["a"]).loss_output_names == []
    assert BrickLoss(nn.L1Loss(), ["a", "t"], ["l1"]).loss_output_names == ["l1"]


def test_an_unknown_loss_output_name_names_the_close_match() -> None:
    with pytest.raises(BrickNameError, match="Did you mean 'loss'"):
        BrickTrainable(nn.Identity(), ["x"], ["loss"], ["los"])


def test_sub_collection_without_tags_holds_every_brick() -> None:
    collection = BrickCollection(
        {
            "head": {"classify": BrickTrainable(nn.Identity(), ["x"], ["y"])},
            "loss": BrickLoss(nn.L1Loss(), ["y", "t"], ["l1"]),
        }
    )
    assert [path for path, _ in collection.sub_collection().iter_bricks()] == ["head/classify", "loss"]


def _saved(tmp_path: Path, file_format: str) -> tuple[BrickCollection, Path]:
    torch.manual_seed(0)
    collection = BrickCollection({"linear": BrickTrainable(nn.Linear(2, 2), ["x"], ["y"])})
    collection.save_bricks(tmp_path / "bricks", file_format=file_format)  # type: ignore[arg-type]
    return collection, tmp_path / "bricks"


def test_load_bricks_of_a_file_raises_not_a_directory(tmp_path: Path) -> None:
    collection, folder = _saved(tmp_path, "pt")
    with pytest.raises(NotADirectoryError, match=r"is a file; load_bricks needs the folder save_bricks wrote"):
        collection.load_bricks(folder / "linear.pt")
    with pytest.raises(CheckpointError):
        collection.load_bricks(folder / "linear.pt")


@pytest.mark.parametrize("file_format", ["pt", "safetensors"])
def test_load_bricks_accepts_the_file_format_save_bricks_took(tmp_path: Path, file_format: str) -> None:
    saved, folder = _saved(tmp_path, file_format)
    target = BrickCollection({"linear": BrickTrainable(nn.Linear(2, 2), ["x"], ["y"])})
    assert target.load_bricks(folder, file_format=file_format) == ["linear"]  # type: ignore[arg-type]
    torch.testing.assert_close(target["linear"].model.weight, saved["linear"].model.weight)


def test_load_bricks_with_a_file_format_reads_no_file_of_the_other_format(tmp_path: Path) -> None:
    _, folder = _saved(tmp_path, "pt")
    target = BrickCollection({"linear": BrickTrainable(nn.Linear(2, 2), ["x"], ["y"])})
    with pytest.warns(UserWarning, match="has weights but no checkpoint file"):
        assert target.load_bricks(folder, file_format="safetensors") == []


def test_a_metrics_brick_repr_names_its_metrics() -> None:
    metrics = MetricCollection(
        {"Accuracy": MulticlassAccuracy(num_classes=2), "ConfMat": MulticlassConfusionMatrix(num_classes=2)}
    )
    assert repr(BrickMetrics(metrics, input_names=["p", "t"])) == (
        "BrickMetrics(['Accuracy', 'ConfMat'], input_names=['p', 't'], output_names=[], tags={'METRIC'})"
    )
    single = BrickMetricSingle(MulticlassAccuracy(num_classes=2), input_names=["p", "t"])
    assert repr(single).startswith("BrickMetricSingle(['MulticlassAccuracy'], input_names=['p', 't']")


@pytest.mark.parametrize(("tags", "stage"), [("train", "TRAIN"), ({"export"}, "EXPORT"), ("TEST", "TEST")])
def test_a_stage_name_given_as_tags_suggests_the_stage(tags: str | set[str], stage: str) -> None:
    collection = BrickCollection({"head": BrickTrainable(nn.Identity(), ["x"], ["y"])})
    with pytest.raises(NoBricksSelectedError, match=rf"is a stage name, not a tag: use Stage\.{stage} "):
        collection({"x": torch.ones(1)}, tags=tags)


def test_tags_selecting_nothing_without_a_stage_name_give_no_stage_hint() -> None:
    collection = BrickCollection({"head": BrickTrainable(nn.Identity(), ["x"], ["y"])})
    with pytest.raises(NoBricksSelectedError) as error:
        collection({"x": torch.ones(1)}, tags="LOSS")
    assert "stage name" not in str(error.value)


def test_brick_tags_module_has_the_tag_names_and_model_stage() -> None:
    assert (Tag.MODEL, Tag.LOSS, Tag.METRIC, Tag.METRIC_EXTRA, Tag.VISUALIZATION) == (
        "MODEL",
        "LOSS",
        "METRIC",
        "METRIC_EXTRA",
        "VISUALIZATION",
    )
    assert [stage.value for stage in ModelStage] == ["train", "validation", "test", "inference", "export"]
    assert Tag.METRIC_EXTRA in STAGE_TAGS[Stage.TEST]
    assert Tag.METRIC_EXTRA not in STAGE_TAGS[Stage.TRAIN]


def test_model_stage_and_tag_are_accepted_wherever_tags_are() -> None:
    collection = BrickCollection(
        {
            "head": BrickTrainable(nn.Identity(), ["x"], ["y"], tags=Tag.MODEL),
            "extra": BrickTrainable(nn.Identity(), ["y"], ["z"], tags=[Tag.METRIC_EXTRA]),
        }
    )
    assert list(collection({"x": torch.ones(1)}, tags=ModelStage.TRAIN)) == ["x", "y"]
    assert list(collection({"x": torch.ones(1)}, tags=ModelStage.TEST)) == ["x", "y", "z"]
    assert [path for path, _ in collection.sub_collection(ModelStage.EXPORT).iter_bricks()] == ["head"]


def test_brick_error_is_the_root_of_the_not_a_directory_error() -> None:
    from torchbricks.errors import CheckpointNotADirectoryError

    assert issubclass(CheckpointNotADirectoryError, BrickError)
