from __future__ import annotations

import copy
import sys

import pytest
import torch
import torchvision
from torch import nn

from torchbricks.bag_of_bricks.backbones import (
    SUPPORTED_BACKBONES,
    BackboneFeatureExtractor,
    BackboneResnet,
    FeatureLayer,
    create_backbone,
    create_backbone_brick,
    create_backbone_brick_from_timm,
    find_feature_layers,
    resnet_to_brick,
)
from torchbricks.bricks import BrickNotTrainable, BrickTrainable
from torchbricks.errors import BrickError, MissingExtraError


def _tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def test_feature_layers_of_a_resnet_are_its_stages() -> None:
    layers = find_feature_layers(torchvision.models.resnet18())
    assert layers == [
        FeatureLayer("relu", 64, 2),
        FeatureLayer("layer1", 64, 4),
        FeatureLayer("layer2", 128, 8),
        FeatureLayer("layer3", 256, 16),
        FeatureLayer("layer4", 512, 32),
    ]


def test_feature_layers_of_a_mobilenet_are_block_outputs_not_expansions_inside_blocks() -> None:
    layers = find_feature_layers(torchvision.models.mobilenet_v3_small())
    assert [(layer.name, layer.stride) for layer in layers] == [
        ("features.0", 2),
        ("features.1", 4),
        ("features.3", 8),
        ("features.8", 16),
        ("features.12", 32),
    ]


def test_feature_layers_skip_global_pooling_and_the_classifier() -> None:
    assert [(layer.name, layer.channels, layer.stride) for layer in find_feature_layers(_tiny_cnn(), probe_size=32)] == [
        ("1", 4, 2),
        ("4", 8, 4),
        ("5", 16, 8),
    ]


def test_the_last_scale_of_a_resnet_equals_the_hand_written_resnet_backbone() -> None:
    resnet = torchvision.models.resnet18().eval()
    reference = BackboneResnet(resnet).eval()
    extractor = BackboneFeatureExtractor(resnet).eval()
    image = torch.rand(1, 3, 64, 64)
    assert extractor.n_backbone_features == reference.n_backbone_features == 512
    assert torch.allclose(extractor(image), reference(image), atol=1e-5)


def test_several_scales_come_fine_to_coarse_with_their_channels_and_strides() -> None:
    extractor = BackboneFeatureExtractor(_tiny_cnn(), num_scales=3, probe_size=32)
    features = extractor(torch.rand(2, 3, 32, 48))
    assert extractor.strides == (2, 4, 8)
    assert extractor.channels == (4, 8, 16)
    assert [tuple(f.shape) for f in features] == [(2, 4, 16, 24), (2, 8, 8, 12), (2, 16, 4, 6)]


@pytest.mark.parametrize("network", ["tiny_cnn", "resnet18"])
def test_a_deep_copy_keeps_each_module_in_its_mode_and_computes_the_same_features(network: str) -> None:
    # torch.fx's GraphModule comes out of copy.deepcopy in training mode: a copied backbone in evaluation used its
    # batch statistics (an EMA or export copy silently wrong).
    model = _tiny_cnn() if network == "tiny_cnn" else torchvision.models.resnet18(num_classes=4)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
    extractor = BackboneFeatureExtractor(model, num_scales=2, probe_size=64).eval()
    first_norm = next((name for name, module in extractor.named_modules() if isinstance(module, nn.BatchNorm2d)), None)
    images = torch.rand(3, 3, 64, 64)

    copied = copy.deepcopy(extractor)

    assert {name: module.training for name, module in copied.named_modules()} == dict.fromkeys(
        (name for name, _ in extractor.named_modules()), False
    )
    with torch.no_grad():
        for original, duplicate in zip(extractor(images), copied(images), strict=True):
            torch.testing.assert_close(duplicate, original)
    extractor.train()
    if first_norm is not None:
        extractor.get_submodule(first_norm).eval()  # a frozen norm inside a training backbone stays frozen
    modes = {name: module.training for name, module in extractor.named_modules()}
    assert {name: module.training for name, module in copy.deepcopy(extractor).named_modules()} == modes


def test_layers_can_be_chosen_by_name() -> None:
    extractor = BackboneFeatureExtractor(_tiny_cnn(), layer_names=["3", "4"], probe_size=32)
    assert extractor.channels == (8, 8)
    assert extractor.strides == (4, 4)


def test_an_unknown_layer_name_suggests_the_close_one() -> None:
    with pytest.raises(BrickError, match=r"no layer 'layer5' that runs\. Did you mean 'layer4'\?"):
        BackboneFeatureExtractor(torchvision.models.resnet18(), layer_names=["layer5"])


def test_too_many_scales_lists_the_scales_found() -> None:
    with pytest.raises(BrickError, match=r"has 3 scales \[\('1', 2\), \('4', 4\), \('5', 8\)\]; num_scales=4"):
        BackboneFeatureExtractor(_tiny_cnn(), num_scales=4, probe_size=32)


def test_a_torchvision_model_is_found_by_name_and_typos_get_a_suggestion() -> None:
    assert create_backbone("mobilenet_v3_small", num_scales=2).strides == (16, 32)
    with pytest.raises(BrickError, match=r"no classification model 'resnet81'\. Did you mean 'resnet18'\?"):
        create_backbone("resnet81")


def test_weights_only_apply_to_models_given_by_name() -> None:
    with pytest.raises(BrickError, match="weights only apply to a model given by name"):
        create_backbone(_tiny_cnn(), weights="DEFAULT")


def test_backbone_brick_has_one_output_name_per_scale_and_can_be_frozen() -> None:
    brick = create_backbone_brick(_tiny_cnn(), input_name="image", output_names=["s4", "s8"])
    assert isinstance(brick, BrickTrainable)
    outputs = brick({"image": torch.rand(1, 3, 32, 32)})
    assert [tuple(outputs[name].shape) for name in ("s4", "s8")] == [(1, 8, 8, 8), (1, 16, 4, 4)]
    frozen = create_backbone_brick(_tiny_cnn(), input_name="image", output_names="features", trainable=False)
    assert isinstance(frozen, BrickNotTrainable)
    assert not any(parameter.requires_grad for parameter in frozen.parameters())


def test_backbone_brick_needs_as_many_layer_names_as_output_names() -> None:
    with pytest.raises(BrickError, match=r"2 output_names \['a', 'b'\] need as many layer_names, got \['1'\]"):
        create_backbone_brick(_tiny_cnn(), input_name="image", output_names=["a", "b"], layer_names=["1"])


def test_resnet_to_brick_keeps_the_spec_api() -> None:
    brick = resnet_to_brick(torchvision.models.resnet18(num_classes=10), input_name="normalized", output_name="features")
    assert brick.model.n_backbone_features == 512
    assert brick.output_names == ["features"]


def test_timm_backbones_name_the_package_to_install_when_timm_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail whether or not timm is installed
    with pytest.raises(MissingExtraError, match=r"pip install \"torchbricks\[timm\]\""):
        create_backbone_brick_from_timm("resnet18", input_name="image", output_names="features")


def _reference_small_resnet18() -> nn.Module:
    """torchvision's resnet18 with the CIFAR stem, pooling and classifier removed, written out by hand."""
    resnet = torchvision.models.resnet18()
    resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {"name": "resnet18", "pretrained": False, "small": True}),
        (("resnet18", False, True), {}),  # 0.4.2 code calls it positionally: (name, pretrained, small)
        (("resnet18",), {"pretrained": False, "small": True}),
    ],
    ids=["keywords", "positional", "mixed"],
)
def test_the_042_form_of_create_backbone_gives_a_resnet_with_the_cifar_stem(args: tuple, kwargs: dict) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(*args, **kwargs)
    torch.manual_seed(0)
    reference = _reference_small_resnet18()
    reference.load_state_dict(dict(zip(reference.state_dict(), backbone.state_dict().values(), strict=True)))
    backbone.eval()
    reference.eval()
    images = torch.rand(2, 3, 32, 32)

    assert isinstance(backbone, BackboneResnet)
    assert backbone.n_backbone_features == 512
    assert backbone.conv1.stride == (1, 1)
    assert isinstance(backbone.maxpool, nn.Identity)
    torch.testing.assert_close(backbone(images), reference(images))
    assert backbone(images).shape == (2, 512, 4, 4)  # stride 8: the stem keeps 32x32 at full resolution


def test_the_042_form_without_small_keeps_the_imagenet_stem() -> None:
    backbone = create_backbone(name="resnet34", pretrained=False)
    assert backbone(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_supported_backbones_lists_the_042_resnets_and_others_are_refused_with_a_suggestion() -> None:
    assert "resnet18" in SUPPORTED_BACKBONES
    assert "wide_resnet101_2" in SUPPORTED_BACKBONES
    with pytest.raises(BrickError, match=r"'resnet19' is not supported.*Did you mean 'resnet18'"):
        create_backbone(name="resnet19", pretrained=False)
    with pytest.raises(BrickError, match="cannot be combined with num_scales"):
        create_backbone(name="resnet18", num_scales=2)


def test_todays_form_of_create_backbone_still_works_beside_the_042_form() -> None:
    assert isinstance(create_backbone("resnet18"), BackboneFeatureExtractor)
    assert create_backbone("resnet18", 2).strides == (16, 32)
