"""Code written for torchbricks 0.4.2 runs unchanged on the engine (issue 8): signatures, defaults and names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from torchbricks import BrickCollection, BrickError, BrickLoss, BrickMetrics, BrickMetricSingle, BrickNotTrainable, BrickTrainable
from torchbricks.brick_tags import ModelStage, Tag
from torchbricks.bricks import BrickInterface
from torchbricks.errors import (
    BrickBuildError,
    BrickCycleError,
    BrickNameError,
    CheckpointError,
    DuplicateOutputError,
    NoBricksSelectedError,
)
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


# --- 0.4.2's per-stage helpers in brick_collection_utils ----------------------------------------------------------


def _model_with_nested_metrics() -> BrickCollection:
    torch.manual_seed(0)
    return BrickCollection(
        {
            "backbone": BrickTrainable(nn.Linear(4, 3), ["raw"], ["logits"]),
            "head": {
                "loss": BrickLoss(nn.CrossEntropyLoss(), ["logits", "targets"], ["loss_ce"]),
                "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=3), ["logits", "targets"], "accuracy"),
            },
            "confusion": BrickMetrics({"confusion_matrix": MulticlassConfusionMatrix(num_classes=3)}, ["logits", "targets"]),
            "empty": {"frozen": BrickNotTrainable(nn.Identity(), ["logits"], ["same"])},
        }
    )


def _batch(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"raw": torch.rand(8, 4, generator=generator), "targets": torch.randint(0, 3, (8,), generator=generator)}


def _reference(model: BrickCollection, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What torchmetrics' functional metrics give on the model's predictions for `batch`."""
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix

    with torch.no_grad():
        predictions = model["backbone"].model(batch["raw"]).argmax(1)
    return {
        "head/accuracy": multiclass_accuracy(predictions, batch["targets"], num_classes=3),
        "confusion_matrix": multiclass_confusion_matrix(predictions, batch["targets"], num_classes=3),
    }


def test_filter_brick_types_gives_the_bricks_of_those_types_as_a_nested_dict_and_leaves_the_collection_whole() -> None:
    from torchbricks.brick_collection_utils import filter_brick_types

    model = _model_with_nested_metrics()
    paths = [path for path, _ in model.iter_bricks()]

    metrics = filter_brick_types(model, (BrickMetrics, BrickMetricSingle))
    losses = filter_brick_types(model, BrickLoss)

    assert metrics == {"head": {"accuracy": model["head"]["accuracy"]}, "confusion": model["confusion"]}
    assert metrics["head"]["accuracy"] is model["head"]["accuracy"]
    assert losses == {"head": {"loss": model["head"]["loss"]}}
    assert filter_brick_types(model, (BrickError,)) == {}  # nothing of that type: no key, not even the nested ones
    assert [path for path, _ in model.iter_bricks()] == paths  # 0.4.2 popped the bricks from a shallow copy
    assert sorted(BrickCollection(metrics)(_batch(0) | {"logits": torch.rand(8, 3)})) == ["logits", "raw", "targets"]


def test_copy_metric_bricks_copies_every_metric_brick_and_shares_every_other_brick() -> None:
    from torchbricks.brick_collection_utils import copy_metric_bricks

    model = _model_with_nested_metrics()

    copied = copy_metric_bricks(model)

    assert list(copied) == ["backbone", "head", "confusion", "empty"]
    assert list(copied["head"]) == ["loss", "accuracy"]
    assert copied["backbone"] is model["backbone"]
    assert copied["head"]["loss"] is model["head"]["loss"]
    assert copied["empty"]["frozen"] is model["empty"]["frozen"]
    assert copied["head"]["accuracy"] is not model["head"]["accuracy"]
    assert copied["head"]["accuracy"].metrics is not model["head"]["accuracy"].metrics
    assert copied["confusion"] is not model["confusion"]
    assert repr(copied["confusion"]) == repr(model["confusion"])
    copy = BrickCollection(copied)
    copy(_batch(1))
    model(_batch(2))
    for collection, seed in ((copy, 1), (model, 2)):  # each kept its own states
        summary = collection.summarize(reset=True)
        for name, expected in _reference(model, _batch(seed)).items():
            torch.testing.assert_close(summary[name], expected)


def test_per_stage_brick_collections_share_the_model_and_keep_metrics_per_stage() -> None:
    from torchbricks.brick_collection_utils import per_stage_brick_collections

    model = _model_with_nested_metrics()

    stages = per_stage_brick_collections(model)

    assert isinstance(stages, nn.ModuleDict)
    assert list(stages) == [ModelStage.TRAIN.name, ModelStage.VALIDATION.name, ModelStage.TEST.name]
    assert all(isinstance(stage, BrickCollection) for stage in stages.values())
    assert {id(parameter) for parameter in stages.parameters()} == {id(parameter) for parameter in model.parameters()}
    optimizer = torch.optim.SGD(stages.parameters(), lr=0.5)
    expected_train = _reference(model, _batch(1))
    losses = stages["TRAIN"].extract_losses(stages["TRAIN"](_batch(1), tags=ModelStage.TRAIN))
    sum(losses.values()).backward()  # type: ignore[union-attr]
    weights = model["backbone"].model.weight.detach().clone()
    optimizer.step()  # the training stage's step moves the weights every stage (and the model) uses
    assert not torch.equal(model["backbone"].model.weight, weights)
    stages["VALIDATION"](_batch(2), tags=ModelStage.VALIDATION)
    stages["TEST"](_batch(3), tags=ModelStage.TEST)
    summaries = {name: stage.summarize(reset=True) for name, stage in stages.items()}
    assert model.summarize(reset=True) == {}
    expected = {"TRAIN": expected_train, "VALIDATION": _reference(model, _batch(2)), "TEST": _reference(model, _batch(3))}
    for name, metrics in expected.items():
        assert sorted(summaries[name]) == sorted(metrics)
        for metric, value in metrics.items():
            torch.testing.assert_close(summaries[name][metric], value)


def test_the_stage_tag_sets_of_042_run_what_they_ran_there() -> None:
    from torchbricks.brick_collection_utils import per_stage_brick_collections
    from torchbricks.brick_tags import DEFAULT_MODEL_STAGE_TAGS, EXPORT, INFERENCE, TEST, TRAINING, VALIDATION

    collection = BrickCollection(
        {
            "head": BrickTrainable(nn.Linear(4, 3), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"]),
            "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=3), input_names=["logits", "targets"]),
            "extra": BrickMetricSingle(MulticlassConfusionMatrix(num_classes=3), ["logits", "targets"], tags=[Tag.METRIC_EXTRA]),
        }
    )
    stages = per_stage_brick_collections(collection)  # as 0.4.2's LightningBrickCollection runs its stages
    named = {"raw": torch.rand(2, 4), "targets": torch.tensor([0, 2])}

    assert set(DEFAULT_MODEL_STAGE_TAGS) == {stage.name for stage in ModelStage}
    assert DEFAULT_MODEL_STAGE_TAGS[ModelStage.TEST.name] is TEST
    assert [{"MODEL", "LOSS", "METRIC"}] * 2 + [{"MODEL"}] * 2 == [TRAINING, VALIDATION, EXPORT, INFERENCE]
    assert stages[ModelStage.TRAIN.name].execution_order(tags=DEFAULT_MODEL_STAGE_TAGS["TRAIN"]) == ["head", "loss", "accuracy"]
    assert stages[ModelStage.TEST.name].execution_order(tags=TEST) == ["head", "loss", "accuracy", "extra"]
    assert set(stages[ModelStage.TEST.name](named_inputs=named, tags=TEST)) >= {"logits", "loss_ce"}
    assert collection.execution_order(tags=INFERENCE) == ["head"]


def test_a_brick_written_for_042_runs_through_its_forward_of_named_inputs() -> None:
    from torchbricks.bricks import BrickInterface

    class BrickScale(BrickInterface, nn.Module):  # 0.4.2's contract: forward, extract_losses, get_module_name
        def __init__(self, input_names: list[str], output_names: list[str]) -> None:
            BrickInterface.__init__(self, input_names=input_names, output_names=output_names, tags="MODEL")
            nn.Module.__init__(self)

        def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {self.output_names[0]: named_inputs[self.input_names[0]] * 2, self.output_names[1]: named_inputs["./x"]}

        def extract_losses(self, named_outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {}

        def get_module_name(self) -> str:
            return "Scale"

    collection = BrickCollection(
        {
            "head": {"scale": BrickScale(["./x"], ["./doubled", "./same"])},
            "after": BrickTrainable(nn.Identity(), ["head/doubled"], ["z"]),
        }
    )
    outputs = collection(named_inputs={"head/x": torch.ones(2)})

    assert torch.equal(outputs["z"], torch.full((2,), 2.0))
    assert torch.equal(outputs["head/same"], torch.ones(2))
    brick = collection["head"]["scale"]
    assert (brick.get_module_name(), brick.get_brick_type(), brick.input_names_as_list()) == ("Scale", "BrickScale", ["./x"])
    assert brick.run_now({"MODEL"})
    assert brick.run_now(None)
    assert not brick.run_now({"LOSS"})


def test_the_brick_methods_of_042_answer_on_todays_bricks() -> None:
    loss = BrickLoss(nn.CrossEntropyLoss(), input_names={"input": "logits", "target": "targets"}, output_names=["loss_ce"])
    assert loss.input_names_as_list() == ["logits", "targets"]
    assert loss.output_names_as_list() == ["loss_ce"]
    assert loss.extract_losses({"loss_ce": 1.0, "other": 2.0}) == {"loss_ce": 1.0}
    assert loss.get_module_name() == "CrossEntropyLoss"


def test_export_bricks_as_onnx_takes_042s_tags_none_and_dynamic_axes(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from torchbricks.brick_collection_utils import export_bricks_as_onnx

    collection = BrickCollection(
        {
            "head": BrickTrainable(nn.Linear(4, 3), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"]),
        }
    )
    named = {"raw": torch.rand(2, 4), "targets": torch.tensor([0, 2])}
    every_brick = export_bricks_as_onnx(tmp_path / "all.onnx", collection, named, False, None)  # 0.4.2's positional form
    axes = export_bricks_as_onnx(
        tmp_path / "axes.onnx", collection, {"raw": named["raw"]}, False, {"MODEL"}, dynamic_axes={"raw": {0: "batch"}}
    )

    assert [output.name for output in onnxruntime.InferenceSession(str(every_brick)).get_outputs()] == ["logits", "loss_ce"]
    session = onnxruntime.InferenceSession(str(axes))
    assert session.get_inputs()[0].shape == ["batch", 4]
    assert session.run(None, {"raw": torch.rand(5, 4).numpy()})[0].shape == (5, 3)
    with pytest.raises(BrickError, match=r"dynamic_axes names \['rwa'\].*Did you mean 'raw'"):
        export_bricks_as_onnx(
            tmp_path / "bad.onnx", collection, {"raw": named["raw"]}, False, {"MODEL"}, dynamic_axes={"rwa": [0]}
        )


class BrickL1Loss042(BrickInterface, nn.Module):
    """A loss brick written for 0.4.2: its own forward, extract_losses and summarize, no loss_output_names."""

    def __init__(self, input_names: list[str], output_names: list[str]) -> None:
        BrickInterface.__init__(self, input_names=input_names, output_names=output_names, tags="LOSS")
        nn.Module.__init__(self)
        self.batches = 0

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.batches += 1
        prediction, target = (named_inputs[name] for name in self.input_names)
        return {self.output_names[0]: (prediction - target).abs().mean()}

    def extract_losses(self, named_outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: named_outputs[name] for name in self.output_names if name in named_outputs}

    def summarize(self, reset: bool) -> dict[str, torch.Tensor]:
        values = {"batches": torch.tensor(float(self.batches))}
        if reset:
            self.batches = 0
        return values

    def get_module_name(self) -> str:
        return "L1"


def test_the_losses_and_summaries_of_a_brick_written_for_042_reach_the_collection() -> None:
    collection = BrickCollection(
        {
            "model": BrickTrainable(nn.Identity(), ["x"], ["y"]),
            "head": {"l1": BrickL1Loss042(["../y", "targets"], ["./l1"])},
            "l1": BrickL1Loss042(["y", "targets"], ["l1_top"]),
        }
    )
    outputs = collection(named_inputs={"x": torch.ones(3), "targets": torch.zeros(3)})
    losses = collection.extract_losses(outputs)
    assert sorted(losses) == ["head/l1", "l1_top"]  # 0.4.2 trained on them; dropped, the model trains without them
    torch.testing.assert_close(losses["head/l1"], torch.tensor(1.0))
    assert collection.summarize(reset=True) == {"head/batches": torch.tensor(1.0), "batches": torch.tensor(1.0)}


# --- 0.4.2 code assigns a brick's names and tags ----------------------------------------------------------------------


def _chain() -> BrickCollection:
    from helpers import AddConstant

    return BrickCollection(
        {
            "first": BrickTrainable(AddConstant(1.0), ["x"], ["y"]),
            "head": {"second": BrickTrainable(AddConstant(10.0), ["../y"], ["./z"])},
        }
    )


def _runner(collection: BrickCollection, compiled: bool) -> Any:
    torch._dynamo.reset()
    return torch.compile(collection, fullgraph=True) if compiled else collection


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_assigned_input_names_are_run_by_the_next_call(compiled: bool) -> None:
    collection = _chain()
    run = _runner(collection, compiled)
    x = torch.arange(3.0)
    torch.testing.assert_close(run({"x": x})["head/z"], x + 1 + 10)

    collection["head"]["second"].input_names = ["../x"]  # 0.4.2 code rewiring a brick in place

    outputs = run({"x": x})
    torch.testing.assert_close(outputs["head/z"], x + 10)
    assert collection.execution_order() == ["first", "head/second"]
    assert collection["head"]["second"].input_names == ["../x"]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_assigned_output_names_are_run_by_the_next_call(compiled: bool) -> None:
    collection = _chain()
    run = _runner(collection, compiled)
    x = torch.arange(3.0)
    run({"x": x})

    collection["first"].output_names = ["renamed"]
    collection["head"]["second"].input_names = ["renamed"]

    outputs = run({"x": x})
    assert sorted(outputs) == ["head/z", "renamed", "x"]
    torch.testing.assert_close(outputs["head/z"], x + 1 + 10)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize(("tags", "expected"), [("LOSS", {"LOSS"}), ({"LOSS"}, {"LOSS"}), (["LOSS", "HEAD"], {"LOSS", "HEAD"})])
def test_assigned_tags_select_the_brick_at_the_next_call(compiled: bool, tags: Any, expected: set[str]) -> None:
    collection = _chain()
    run = _runner(collection, compiled)
    x = torch.arange(3.0)
    assert "head/z" in run({"x": x}, tags=Stage.EXPORT)

    collection["head"]["second"].tags = tags

    assert collection["head"]["second"].tags == frozenset(expected)  # a str is one tag, never its characters
    assert "head/z" not in run({"x": x}, tags=Stage.EXPORT)
    torch.testing.assert_close(run({"x": x}, tags=Stage.TRAIN)["head/z"], x + 1 + 10)
    assert collection.execution_order(tags=Stage.EXPORT) == ["first"]


BAD_ASSIGNMENTS = {  # case -> (brick path, attribute, value, error, message)
    "an output another brick produces": (
        ("head", "second"),
        "output_names",
        ["y"],
        DuplicateOutputError,
        "Bricks 'first' and 'head/second' both produce the output 'y'",
    ),
    "an input making a cycle": (("first",), "input_names", ["head/z"], BrickCycleError, "'first' -> 'head/second' -> 'first'"),
    "a relative name above the root": (("head", "second"), "input_names", ["../../y"], BrickNameError, "climbs above the root"),
    "a keyword the module does not take": (("first",), "input_names", {"input": "x"}, BrickBuildError, "cannot be called with"),
    "an empty name": (("first",), "output_names", [""], BrickNameError, "must be non-empty strings"),
    "tags that are not strings": (("first",), "tags", [1], BrickError, "must hold strings only"),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("case", BAD_ASSIGNMENTS, ids=list(BAD_ASSIGNMENTS))
def test_a_bad_assignment_is_refused_naming_the_brick_and_leaves_the_wiring_as_it_was(case: str, compiled: bool) -> None:
    path, attribute, value, error, message = BAD_ASSIGNMENTS[case]
    collection = _chain()
    run = _runner(collection, compiled)
    x = torch.arange(3.0)
    before = run({"x": x})
    brick = collection[path[0]] if len(path) == 1 else collection[path[0]][path[1]]
    wiring = (brick.input_names, brick.output_names, brick.tags)

    with pytest.raises(error, match=re.escape(message) if "'" in message else message):
        setattr(brick, attribute, value)

    assert (brick.input_names, brick.output_names, brick.tags) == wiring
    after = run({"x": x})
    assert list(after) == list(before)
    for name in before:
        torch.testing.assert_close(after[name], before[name])


def test_an_assignment_is_checked_in_every_collection_holding_the_brick_and_undone_in_all() -> None:
    from helpers import AddConstant

    shared = BrickTrainable(AddConstant(1.0), ["x"], ["y"])
    alone = BrickCollection({"shared": shared})
    clashing = BrickCollection({"shared": shared, "other": BrickTrainable(AddConstant(2.0), ["x"], ["w"])})
    x = torch.arange(2.0)
    alone({"x": x}), clashing({"x": x})

    with pytest.raises(DuplicateOutputError, match="Bricks 'shared' and 'other' both produce the output 'w'"):
        shared.output_names = ["w"]  # fine in `alone`, a second producer of 'w' in `clashing`

    assert shared.output_names == ["y"]
    assert sorted(alone({"x": x})) == ["x", "y"]
    torch.testing.assert_close(clashing({"x": x})["w"], x + 2)
    shared.output_names = ["v"]
    assert sorted(alone({"x": x})) == ["v", "x"]
    assert sorted(clashing({"x": x})) == ["v", "w", "x"]


def test_renamed_outputs_keep_their_losses_by_position_as_042_kept_loss_indices() -> None:
    brick = BrickTrainable(lambda x: (x.sum(), -x.sum()), ["x"], ["total", "negated"], ["negated"])
    collection = BrickCollection({"split": brick})

    brick.output_names = ["kept", "loss"]  # renamed: the loss is still the second output
    assert brick.loss_output_names == ["loss"]
    x = torch.arange(3.0)
    torch.testing.assert_close(collection.extract_losses(collection({"x": x})), {"loss": -x.sum()})
    brick.output_names = ["loss", "kept"]  # reordered names: the loss keeps its name, now the first output
    assert brick.loss_output_names == ["loss"]
    torch.testing.assert_close(collection.extract_losses(collection({"x": x})), {"loss": x.sum()})
    with pytest.raises(BrickNameError, match=r"hold none of the loss outputs \['loss'\] and have another count"):
        brick.output_names = ["a", "b", "c"]
    assert (brick.output_names, brick.loss_output_names) == (["loss", "kept"], ["loss"])


def test_output_names_assigned_to_a_metric_brick_without_return_metrics_are_refused() -> None:
    brick = BrickMetricSingle(MulticlassAccuracy(num_classes=2), ["p", "t"])
    with pytest.raises(BrickNameError, match=r"output_names are only used with return_metrics=True, got \['accuracy'\]"):
        brick.output_names = ["accuracy"]
    assert brick.output_names == []


class _BrickMisnamed042(BrickInterface, nn.Module):
    """A 0.4.2 brick whose forward returns its value under another name than its output name."""

    def __init__(self) -> None:
        BrickInterface.__init__(self, input_names=["x"], output_names=["doubled"], tags="MODEL")
        nn.Module.__init__(self)

    def forward(self, named_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"double": named_inputs["x"] * 2}

    def extract_losses(self, named_outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def get_module_name(self) -> str:
        return "Doubler"


def test_a_042_brick_whose_forward_lacks_an_output_name_raises_naming_the_brick_and_what_it_returned() -> None:
    collection = BrickCollection({"head": {"doubler": _BrickMisnamed042()}})
    expected = (
        r"_BrickMisnamed042\(Doubler\): forward\(named_inputs\) returned no value for its output 'doubled'; "
        r"it returned \['double'\]\. Did you mean 'double'\?"
    )

    with pytest.raises(BrickError, match=expected) as error:
        collection({"x": torch.ones(2)})

    assert error.value.__notes__ == ["while running brick 'head/doubler' of a BrickCollection"]
    assert repr(collection["head"]["doubler"]).startswith("_BrickMisnamed042(Doubler, input_names=['x']")


def test_assigned_loss_output_names_and_042s_loss_output_indices_choose_the_losses_of_the_next_call() -> None:
    brick = BrickTrainable(lambda x: (x.sum(), -x.sum()), ["x"], ["total", "negated"])
    collection = BrickCollection({"split": brick})
    x = torch.arange(3.0)
    assert collection.extract_losses(collection({"x": x})) == {}

    brick.loss_output_names = ["negated"]
    torch.testing.assert_close(collection.extract_losses(collection({"x": x})), {"negated": -x.sum()})
    assert brick.loss_output_indices == [1]
    brick.loss_output_indices = [0]  # 0.4.2 kept its losses as positions in this attribute
    torch.testing.assert_close(collection.extract_losses(collection({"x": x})), {"total": x.sum()})
    assert collection.loss_names() == ["total"]

    with pytest.raises(BrickNameError, match=r"loss_output_indices \[2\] are not positions among output_names"):
        brick.loss_output_indices = [2]
    with pytest.raises(BrickNameError, match=r"loss_output_names \['totl'\] are not among output_names.*Did you mean 'total'"):
        brick.loss_output_names = ["totl"]
    assert brick.loss_output_names == ["total"]


def test_a_brick_s_names_changed_in_place_are_refused_and_added_to_with_plus_equals_rewire_it() -> None:
    from helpers import AddConstant

    brick = BrickTrainable(AddConstant(1.0), ["x"], ["y"])
    keywords = BrickLoss(nn.L1Loss(), {"input": "y", "target": "t"}, ["l1"])
    collection = BrickCollection({"add": brick, "l1": keywords})

    # 0.4.2 handed out the brick's own lists: these changed its wiring there, and would change nothing here
    with pytest.raises(BrickNameError, match=r"assign the whole list instead: brick\.output_names = \['y'\]"):
        brick.output_names[0] = "z"
    with pytest.raises(BrickNameError, match=r"brick\.input_names is a copy"):
        brick.input_names.append("w")
    with pytest.raises(BrickNameError, match=r"assign the whole dict instead: brick\.input_names = \{'input': 'y'"):
        keywords.input_names["target"] = "y"
    with pytest.raises(BrickNameError, match=r"brick\.loss_output_indices is a copy"):
        keywords.loss_output_indices.append(0)
    assert (brick.output_names, keywords.input_names) == (["y"], {"input": "y", "target": "t"})

    brick.input_names += ["t"]  # assigned back, so the brick is rewired

    x, t = torch.arange(3.0), torch.ones(3)
    torch.testing.assert_close(collection({"x": x, "t": t})["y"], x + t + 1)
