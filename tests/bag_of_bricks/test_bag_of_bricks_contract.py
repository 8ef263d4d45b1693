"""The contract every bag-of-bricks part keeps: forward, backward, state_dict round trip and, for model parts,
`torch.compile(fullgraph=True)`. A new part joins by adding one entry to PARTS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from torchbricks.bag_of_bricks.backbones import BackboneFeatureExtractor, create_backbone
from torchbricks.bag_of_bricks.compact_cnn import CompactCNN
from torchbricks.bag_of_bricks.image_classification import ImageClassifier, create_bricks_image_classification
from torchbricks.bag_of_bricks.multilabel_classification import MultiLabelClassifier
from torchbricks.bag_of_bricks.necks import FeaturePyramidUpsampler
from torchbricks.bag_of_bricks.object_detection import (
    BoxDecoder,
    BoxDetectionHead,
    BoxDetectionLoss,
    create_bricks_object_detection,
)
from torchbricks.bag_of_bricks.point_detection import (
    PointDecoder,
    PointDetectionHead,
    PointDetectionLoss,
    create_bricks_point_detection,
)
from torchbricks.bag_of_bricks.preprocessors import Preprocessor
from torchbricks.bag_of_bricks.segmentation import SegmentationHead, create_bricks_segmentation
from torchbricks.brick_collection import BrickCollection
from torchbricks.tags import Stage


def _tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
    )


class _ModelStage(nn.Module):
    """A ready-made collection run in one stage, so the contract sees a plain module of tensors."""

    def __init__(self, collection: BrickCollection, stage: Stage) -> None:
        super().__init__()
        self.collection = collection
        self.stage = stage

    def forward(self, **named_inputs: torch.Tensor) -> dict[str, Any]:
        return self.collection(named_inputs=named_inputs, tags=self.stage, return_inputs=False)


@dataclass(frozen=True)
class Part:
    name: str
    create: Callable[[], nn.Module]
    inputs: Callable[[], dict[str, Any]]
    model_part: bool = True  # must compile with fullgraph=True
    differentiable: bool = True  # gradients reach the parameters or the float inputs
    compile_in_tests: bool = True  # full torchvision networks take minutes to compile on a CPU runner


def _boxes_targets() -> dict[str, Any]:
    return {
        "target_boxes": torch.tensor([[[2.0, 3.0, 9.0, 12.0], [0.0, 0.0, 0.0, 0.0]]]),
        "target_labels": torch.tensor([[1, -1]]),
    }


def _points_targets() -> dict[str, Any]:
    return {"target_points": torch.tensor([[[5.0, 9.0], [0.0, 0.0]]]), "target_labels": torch.tensor([[1, -1]])}


PARTS = [
    Part("preprocessor", Preprocessor, lambda: {"image": torch.rand(2, 3, 8, 8)}),
    Part("image_classifier", lambda: ImageClassifier(num_classes=3, n_features=8), lambda: {"features": torch.rand(2, 8, 4, 4)}),
    Part(
        "backbone_feature_extractor",
        lambda: BackboneFeatureExtractor(_tiny_cnn(), num_scales=2),
        lambda: {"image": torch.rand(2, 3, 16, 16)},
    ),
    Part(
        "backbone_by_name",
        lambda: create_backbone("mobilenet_v3_small", num_scales=2),
        lambda: {"image": torch.rand(2, 3, 64, 64)},
        compile_in_tests=False,  # backbone_feature_extractor compiles the same FX graph path in seconds
    ),
    Part(
        "feature_pyramid_upsampler",
        lambda: FeaturePyramidUpsampler([4, 8], out_channels=6),
        lambda: {"fine": torch.rand(2, 4, 8, 8), "coarse": torch.rand(2, 8, 4, 4)},
    ),
    Part(
        "segmentation_head",
        lambda: SegmentationHead(8, 3, upsample_factor=4, hidden_channels=4),
        lambda: {"features": torch.rand(2, 8, 4, 4)},
    ),
    Part(
        "point_detection_head", lambda: PointDetectionHead(8, 2, hidden_channels=4), lambda: {"features": torch.rand(2, 8, 4, 4)}
    ),
    Part(
        "point_decoder",
        lambda: PointDecoder(stride=4, max_points=5),
        lambda: {"heatmap": torch.randn(2, 2, 4, 4), "offsets": torch.rand(2, 2, 4, 4)},
        differentiable=False,
    ),
    Part(
        "point_detection_loss",
        lambda: PointDetectionLoss(num_classes=2, stride=4),
        lambda: {"heatmap": torch.randn(1, 2, 4, 4), "offsets": torch.rand(1, 2, 4, 4), **_points_targets()},
    ),
    Part("compact_cnn", lambda: CompactCNN(num_classes=3), lambda: {"image": torch.rand(2, 3, 32, 32)}),
    Part(
        "multilabel_classifier",
        lambda: MultiLabelClassifier(num_classes=3, n_features=8),
        lambda: {"features": torch.rand(2, 8, 4, 4)},
    ),
    Part("box_detection_head", lambda: BoxDetectionHead(8, 2, hidden_channels=4), lambda: {"features": torch.rand(2, 8, 4, 4)}),
    Part(
        "box_decoder",
        lambda: BoxDecoder(stride=4, max_detections=5),
        lambda: {"heatmap": torch.randn(2, 2, 4, 4), "distances": torch.rand(2, 4, 4, 4)},
        differentiable=False,
    ),
    Part(
        "box_detection_loss",
        lambda: BoxDetectionLoss(num_classes=2, stride=4),
        lambda: {"heatmap": torch.randn(1, 2, 4, 4), "distances": torch.rand(1, 4, 4, 4), **_boxes_targets()},
    ),
    Part(
        "bricks_image_classification",
        lambda: _ModelStage(create_bricks_image_classification(3, backbone=_tiny_cnn()), Stage.EXPORT),
        lambda: {"raw": torch.rand(2, 3, 16, 16)},
    ),
    Part(
        "bricks_segmentation",
        lambda: _ModelStage(create_bricks_segmentation(2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=4), Stage.EXPORT),
        lambda: {"raw": torch.rand(2, 3, 16, 16)},
    ),
    Part(
        "bricks_point_detection",
        lambda: _ModelStage(create_bricks_point_detection(2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=4), Stage.TRAIN),
        lambda: {"raw": torch.rand(1, 3, 16, 16), **_points_targets()},
    ),
    Part(
        "bricks_object_detection",
        lambda: _ModelStage(
            create_bricks_object_detection(2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=4), Stage.TRAIN
        ),
        lambda: {"raw": torch.rand(1, 3, 16, 16), **_boxes_targets()},
    ),
    Part(
        "bricks_object_detection_export",
        lambda: _ModelStage(
            create_bricks_object_detection(2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=4), Stage.EXPORT
        ),
        lambda: {"raw": torch.rand(2, 3, 16, 16)},
    ),
]
MODEL_PARTS = [part for part in PARTS if part.model_part and part.compile_in_tests]


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [tensor for item in value.values() for tensor in _tensors(item)]
    if isinstance(value, (tuple, list)):
        return [tensor for item in value for tensor in _tensors(item)]
    return []


def _run(module: nn.Module, inputs: dict[str, Any]) -> list[torch.Tensor]:
    if isinstance(getattr(module, "_orig_mod", module), _ModelStage):  # compiled modules wrap the original
        return _tensors(module(**inputs))
    return _tensors(module(*inputs.values()))


@pytest.mark.parametrize("part", PARTS, ids=lambda part: part.name)
def test_forward_gives_finite_tensors(part: Part) -> None:
    torch.manual_seed(0)
    outputs = _run(part.create(), part.inputs())
    assert outputs
    assert all(torch.isfinite(tensor.float()).all() for tensor in outputs)


@pytest.mark.parametrize("part", [part for part in PARTS if part.differentiable], ids=lambda part: part.name)
def test_backward_reaches_every_trainable_parameter_or_the_inputs(part: Part) -> None:
    torch.manual_seed(0)
    module = part.create().train()
    inputs = part.inputs()
    float_inputs = [value for key, value in inputs.items() if value.is_floating_point() and not key.startswith("target")]
    for value in float_inputs:
        value.requires_grad_(True)
    outputs = [tensor for tensor in _run(module, inputs) if tensor.requires_grad]
    sum(tensor.float().sum() for tensor in outputs).backward()
    trainable = [(name, parameter) for name, parameter in module.named_parameters() if parameter.requires_grad]
    if trainable:
        assert [name for name, parameter in trainable if parameter.grad is None] == []
    else:
        assert all(value.grad is not None for value in float_inputs)


@pytest.mark.parametrize("part", PARTS, ids=lambda part: part.name)
def test_state_dict_round_trip_reproduces_the_outputs(part: Part) -> None:
    torch.manual_seed(0)
    original = part.create().eval()
    torch.manual_seed(1)
    restored = part.create().eval()
    restored.load_state_dict(original.state_dict())
    inputs = part.inputs()
    with torch.no_grad():
        for expected, actual in zip(_run(original, inputs), _run(restored, inputs), strict=True):
            assert torch.equal(expected, actual)


@pytest.mark.slow
@pytest.mark.parametrize("part", MODEL_PARTS, ids=lambda part: part.name)
def test_compiles_with_fullgraph_and_matches_eager(part: Part) -> None:
    torch.manual_seed(0)
    module = part.create().eval()
    inputs = part.inputs()
    compiled = torch.compile(module, fullgraph=True)
    with torch.no_grad():
        expected = _run(module, inputs)
        actual = _run(compiled, inputs)  # type: ignore[arg-type]
    assert len(actual) == len(expected)
    for reference, value in zip(expected, actual, strict=True):
        assert torch.allclose(reference.float(), value.float(), atol=1e-4)


def test_the_preprocessor_reads_uint8_images_as_042_did() -> None:
    from torchbricks.bag_of_bricks.preprocessors import Preprocessor

    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    expected = (images.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(Preprocessor(uint8_to_float32=True)(images), expected)
