"""Shipping a collection: ONNX (checked in onnxruntime), torch.export and torch.compile(fullgraph=True) per stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torchvision
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

from torchbricks.bag_of_bricks.backbones import resnet_to_brick
from torchbricks.bag_of_bricks.image_classification import create_image_classification_head
from torchbricks.bag_of_bricks.preprocessors import Preprocessor
from torchbricks.brick_collection import BrickCollection
from torchbricks.brick_collection_utils import export_bricks, export_bricks_as_onnx
from torchbricks.bricks import BrickLoss, BrickNotTrainable, BrickTrainable
from torchbricks.errors import MissingInputError
from torchbricks.tags import STAGE_TAGS, Stage

EXPORT_OUTPUTS = [
    "normalized",
    "features",
    "head0/logits",
    "head0/probabilities",
    "head0/class_prediction",
    "head1/logits",
    "head1/probabilities",
    "head1/class_prediction",
]


def create_two_head_collection() -> BrickCollection:
    """The spec's nested model: a ResNet-18 backbone and two heads with losses and metrics."""
    torch.manual_seed(0)
    resnet_brick = resnet_to_brick(
        resnet=torchvision.models.resnet18(weights=None), input_name="normalized", output_name="features"
    )
    n_features = resnet_brick.model.n_backbone_features
    return BrickCollection(
        {
            "preprocessor": BrickNotTrainable(Preprocessor(), input_names=["raw"], output_names=["normalized"]),
            "backbone": resnet_brick,
            "head0": create_image_classification_head(3, n_features, features_name="features", targets_name="targets0"),
            "head1": create_image_classification_head(5, n_features, features_name="features", targets_name="targets1"),
        }
    )


def named_inputs(batch_size: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch_size)
    return {
        "raw": torch.rand(batch_size, 3, 64, 64, generator=generator),
        "targets0": torch.randint(0, 3, (batch_size,), generator=generator),
        "targets1": torch.randint(0, 5, (batch_size,), generator=generator),
    }


def create_small_collection() -> BrickCollection:
    torch.manual_seed(0)
    return BrickCollection(
        {
            "backbone": BrickTrainable(
                nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)), input_names=["raw"], output_names=["features"]
            ),
            "head0": {
                "classify": BrickTrainable(nn.Linear(8, 3), input_names=["features"], output_names=["./logits"]),
                "probabilities": BrickNotTrainable(nn.Softmax(dim=1), input_names=["./logits"], output_names=["./probabilities"]),
                "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "targets"], output_names=["./loss"]),
            },
        }
    )


def run_onnx(path: Path, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    values = session.run(names, {name: tensor.numpy() for name, tensor in inputs.items()})
    return dict(zip(names, values, strict=True))


# --- ONNX ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_export_of_the_spec_model_matches_torch_in_onnxruntime_on_another_batch_size(tmp_path: Path) -> None:
    collection = create_two_head_collection()
    path = export_bricks_as_onnx(tmp_path / "model.onnx", collection, named_inputs(batch_size=2), dynamic_batch_size=True)

    model = onnx.load(str(path))
    assert [value.name for value in model.graph.input] == ["raw"]  # targets are only read by losses and metrics
    assert [value.name for value in model.graph.output] == EXPORT_OUTPUTS
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert list(tmp_path.iterdir()) == [path]  # one self-contained file

    inputs = named_inputs(batch_size=5)
    onnx_outputs = run_onnx(path, {"raw": inputs["raw"]})
    collection.eval()
    with torch.no_grad():
        expected = collection(named_inputs=inputs, tags=Stage.EXPORT, return_inputs=False)
    assert list(expected) == EXPORT_OUTPUTS
    for name in EXPORT_OUTPUTS:
        assert onnx_outputs[name].shape[0] == 5
        np.testing.assert_allclose(onnx_outputs[name], expected[name].numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_onnx_export_of_chosen_tags_and_outputs_keeps_only_what_they_need(tmp_path: Path) -> None:
    collection = create_small_collection()
    inputs = {"raw": torch.rand(3, 4), "targets": torch.tensor([0, 1, 2]), "unused": torch.zeros(1)}
    path = export_bricks_as_onnx(
        tmp_path / "loss.onnx", collection, inputs, dynamic_batch_size=True, tags={"MODEL", "LOSS"}, output_names=["head0/loss"]
    )

    model = onnx.load(str(path))
    assert [value.name for value in model.graph.input] == ["raw", "targets"]
    assert [value.name for value in model.graph.output] == ["head0/loss"]
    assert not any(node.op_type == "Softmax" for node in model.graph.node)  # 'head0/probabilities' is not needed

    other = {"raw": torch.rand(6, 4), "targets": torch.tensor([0, 1, 2, 2, 1, 0])}
    collection.eval()
    with torch.no_grad():
        expected = collection(named_inputs=other, tags={"MODEL", "LOSS"})["head0/loss"]
    np.testing.assert_allclose(run_onnx(path, other)["head0/loss"], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_onnx_export_without_dynamic_batch_size_fixes_the_batch(tmp_path: Path) -> None:
    path = export_bricks_as_onnx(
        tmp_path / "fixed.onnx", create_small_collection(), {"raw": torch.rand(3, 4)}, dynamic_batch_size=False
    )
    (graph_input,) = onnx.load(str(path)).graph.input
    assert [dim.dim_value for dim in graph_input.type.tensor_type.shape.dim] == [3, 4]


def test_exports_from_an_example_batch_of_one_still_take_any_batch_size(tmp_path: Path) -> None:
    collection = create_small_collection()
    one = {"raw": torch.rand(1, 4)}
    path = export_bricks_as_onnx(tmp_path / "one.onnx", collection, one, dynamic_batch_size=True)
    program = export_bricks(collection, one, dynamic_batch_size=True)

    other = {"raw": torch.rand(6, 4)}
    collection.eval()
    expected = collection(named_inputs=other, tags=Stage.EXPORT)["head0/probabilities"]
    torch.testing.assert_close(program.module()(other)["head0/probabilities"], expected)
    np.testing.assert_allclose(run_onnx(path, other)["head0/probabilities"], expected.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_onnx_export_with_a_missing_input_names_it_before_exporting(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match=r"Brick 'head0/loss' needs input 'targets'.*Available: \[.*'raw'"):
        export_bricks_as_onnx(tmp_path / "x.onnx", create_small_collection(), {"raw": torch.rand(3, 4)}, True, tags=Stage.TRAIN)
    assert not (tmp_path / "x.onnx").exists()


def test_export_leaves_the_training_mode_of_every_module_as_it_was(tmp_path: Path) -> None:
    collection = create_small_collection()
    collection.train()
    collection["backbone"].model[1].eval()
    modes = [module.training for module in collection.modules()]
    export_bricks_as_onnx(tmp_path / "m.onnx", collection, {"raw": torch.rand(3, 4)}, dynamic_batch_size=True)
    export_bricks(collection, {"raw": torch.rand(3, 4)})
    assert [module.training for module in collection.modules()] == modes


# --- torch.export -------------------------------------------------------------------------------------------


def test_torch_export_of_the_spec_model_reproduces_eager_outputs_for_any_batch_size() -> None:
    collection = create_two_head_collection()
    program = export_bricks(collection, named_inputs(batch_size=2), tags=Stage.EXPORT, dynamic_batch_size=True)

    assert isinstance(program, torch.export.ExportedProgram)
    inputs = named_inputs(batch_size=7)
    exported = program.module()({"raw": inputs["raw"]})
    collection.eval()
    expected = collection(named_inputs=inputs, tags=Stage.EXPORT, return_inputs=False)
    assert list(exported) == EXPORT_OUTPUTS
    for name in EXPORT_OUTPUTS:
        torch.testing.assert_close(exported[name], expected[name], msg=name)


def test_torch_export_of_a_loss_stage_takes_exactly_the_inputs_it_reads() -> None:
    collection = create_small_collection()
    inputs = {"raw": torch.rand(4, 4), "targets": torch.tensor([0, 1, 2, 0]), "unused": torch.zeros(2)}
    program = export_bricks(collection, inputs, tags={"MODEL", "LOSS"}, output_names=["head0/loss", "head0/probabilities"])

    other = {"raw": torch.rand(9, 4), "targets": torch.randint(0, 3, (9,))}
    exported = program.module()(other)
    collection.eval()
    expected = collection(named_inputs=other, tags={"MODEL", "LOSS"}, output_names=["head0/loss", "head0/probabilities"])
    assert list(exported) == ["head0/loss", "head0/probabilities"]
    torch.testing.assert_close(exported, expected)


# --- torch.compile ------------------------------------------------------------------------------------------


def _check_compiled_stage(collection: BrickCollection, compiled: nn.Module, stage: Stage) -> None:
    """Compiled and eager runs of one stage agree, metrics update under compile and gradients match."""
    collection.train(stage == Stage.TRAIN)
    collection.reset_metrics()
    inputs = named_inputs(batch_size=4)

    outputs = compiled(named_inputs=inputs, tags=stage)
    metrics = collection.summarize(reset=True) if "METRIC" in STAGE_TAGS[stage] else {}
    expected = collection(named_inputs=inputs, tags=stage)

    assert list(outputs) == list(expected)
    for name, value in expected.items():
        torch.testing.assert_close(outputs[name], value, rtol=1e-4, atol=1e-4, msg=name)
    if "METRIC" in STAGE_TAGS[stage]:
        for head, num_classes in (("head0", 3), ("head1", 5)):
            reference = multiclass_accuracy(
                outputs[f"{head}/class_prediction"], inputs[f"targets{head[-1]}"], num_classes=num_classes, average="micro"
            )
            torch.testing.assert_close(metrics[f"{head}/accuracy"], reference)  # updated inside the graph
    else:
        assert "head0/loss_ce" not in outputs
    if stage == Stage.TRAIN:
        weight = collection["head0"]["classify"].model.fc.weight
        (compiled_grad,) = torch.autograd.grad(outputs["head0/loss_ce"] + outputs["head1/loss_ce"], weight)
        (eager_grad,) = torch.autograd.grad(expected["head0/loss_ce"] + expected["head1/loss_ce"], weight)
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(Stage), ids=[stage.name for stage in Stage])
def test_compile_fullgraph_of_every_stage_has_no_graph_break(stage: Stage) -> None:
    torch._dynamo.reset()
    collection = create_two_head_collection()
    compiled = torch.compile(collection, fullgraph=True, backend="aot_eager")  # fullgraph raises on any graph break
    _check_compiled_stage(collection, compiled, stage)


@pytest.mark.slow
def test_compile_fullgraph_with_inductor_of_the_training_stage_matches_eager() -> None:
    torch._dynamo.reset()
    collection = create_two_head_collection()
    compiled = torch.compile(collection, fullgraph=True)
    _check_compiled_stage(collection, compiled, Stage.TRAIN)


@pytest.mark.slow
def test_onnx_export_makes_the_batch_dynamic_by_default_as_export_bricks_does(tmp_path: Path) -> None:
    collection = create_small_collection()
    path = export_bricks_as_onnx(tmp_path / "default.onnx", collection, {"raw": torch.rand(3, 4)})

    (graph_input,) = onnx.load(str(path)).graph.input
    batch, features = graph_input.type.tensor_type.shape.dim
    assert (batch.dim_param != "", features.dim_value) == (True, 4)
    other = {"raw": torch.rand(5, 4)}
    collection.eval()
    with torch.no_grad():
        expected = collection(named_inputs=other, tags=Stage.EXPORT, return_inputs=False)
    for name, value in run_onnx(path, other).items():
        np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-5, atol=1e-6)


def test_a_failed_onnx_export_leaves_the_earlier_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = BrickCollection({"linear": BrickTrainable(nn.Linear(3, 3), input_names=["raw"], output_names=["out"])})
    path = export_bricks_as_onnx(tmp_path / "model.onnx", collection, {"raw": torch.rand(2, 3)})
    earlier = path.read_bytes()

    def fails_half_way(module: nn.Module, args: tuple, file: str, **kwargs: object) -> None:
        Path(file).write_bytes(earlier[: len(earlier) // 2])  # a full disk, or an operator the exporter lacks
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", fails_half_way)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_bricks_as_onnx(path, collection, {"raw": torch.rand(2, 3)})

    assert path.read_bytes() == earlier
    assert [file.name for file in tmp_path.iterdir()] == ["model.onnx"]
