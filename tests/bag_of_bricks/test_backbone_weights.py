from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from torchbricks.bag_of_bricks.backbone_weights import is_weights_path, read_state_dict
from torchbricks.bag_of_bricks.compact_cnn import CompactCNN, create_task_backbone, packaged_weights
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickTrainable
from torchbricks.errors import CheckpointError, CheckpointNotFoundError


def _features(backbone: torch.nn.Module, image: torch.Tensor) -> list[torch.Tensor]:
    backbone.eval()
    with torch.no_grad():
        return list(backbone(image))


def _stem(weights: torch.nn.Module | dict[str, torch.Tensor]) -> torch.Tensor:
    """The compact CNN's first convolution weights, of a backbone or of a state dict."""
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    return next(value for name, value in state.items() if name.endswith("stem.0.weight"))


def test_a_torchvision_state_dict_loads_into_the_backbone_and_its_classifier_is_left_unused(tmp_path: Path) -> None:
    torch.manual_seed(1)
    network = torchvision.models.resnet18()
    torch.save(network.state_dict(), tmp_path / "resnet18.pt")
    reference = create_feature_extractor(network, {"layer3": "0", "layer4": "1"})  # the network itself, cut by hand

    backbone = create_task_backbone("resnet18", num_scales=2, weights=str(tmp_path / "resnet18.pt"))

    reference.eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(image)
    actual = _features(backbone, image)
    torch.testing.assert_close(actual[0], expected["0"])
    torch.testing.assert_close(actual[1], expected["1"])


def test_a_timm_style_training_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(num_classes=5).state_dict()  # another classifier: its shape does not matter
    torch.save({"state_dict": {f"module.{key}": value for key, value in state.items()}, "epoch": 3}, tmp_path / "timm.pth")

    backbone = create_task_backbone("resnet18", num_scales=1, weights=str(tmp_path / "timm.pth"))

    torch.testing.assert_close(backbone.state_dict()["extractor.layer4.1.bn2.running_var"], state["layer4.1.bn2.running_var"])


def test_a_torchbricks_bricks_folder_and_its_backbone_file_load(tmp_path: Path) -> None:
    trained = create_task_backbone("compact_cnn", num_scales=2)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.rand_like(parameter))
    collection = BrickCollection({"backbone": BrickTrainable(trained, input_names=["raw"], output_names=["a", "b"])})
    collection.save_bricks(tmp_path / "bricks")

    from_folder = create_task_backbone("compact_cnn", num_scales=2, weights=str(tmp_path / "bricks"))
    from_file = create_task_backbone("compact_cnn", num_scales=2, weights=str(tmp_path / "bricks" / "backbone.pt"))

    for loaded in (from_folder, from_file):
        for key, value in trained.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value)


def test_weights_of_another_architecture_are_refused_with_the_missing_and_unexpected_keys(tmp_path: Path) -> None:
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "resnet34.pt")
    torch.save(CompactCNN().state_dict(), tmp_path / "compact.pt")

    with pytest.raises(
        CheckpointError, match=r"'.*resnet34.pt' do not fit backbone 'resnet18': 96 are unexpected \(layer1\.2\.conv1\.weight"
    ):
        create_task_backbone("resnet18", num_scales=1, weights=str(tmp_path / "resnet34.pt"))
    with pytest.raises(
        CheckpointError, match=r"120 of its 120 weights are missing \(conv1\.weight, bn1\.weight, .*80 are unexpected \(stem"
    ):
        create_task_backbone("resnet18", num_scales=1, weights=str(tmp_path / "compact.pt"))


def test_a_missing_file_and_a_folder_without_a_backbone_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"The weights file '.*nope.pt' does not exist"):
        create_task_backbone("compact_cnn", weights=str(tmp_path / "nope.pt"))
    with pytest.raises(CheckpointNotFoundError, match=r"has no backbone.pt or backbone.safetensors"):
        read_state_dict(tmp_path)


def test_torchvision_weight_names_are_not_paths_and_the_compact_cnn_has_only_its_packaged_ones() -> None:
    assert not is_weights_path("DEFAULT")
    assert not is_weights_path("IMAGENET1K_V1")
    with pytest.raises(CheckpointError, match=r"compact_cnn has no packaged weights 'DEFAULT' \(packaged: \['shapes'\]\)"):
        create_task_backbone("compact_cnn", weights="DEFAULT")
    with pytest.raises(CheckpointError, match=r"Did you mean 'shapes'\?"):
        create_task_backbone("compact_cnn", weights="shape")


def test_packaged_weights_for_another_backbone_and_unknown_torchvision_weights_are_named_errors() -> None:
    with pytest.raises(CheckpointError, match=r"the packaged weights 'shapes' are for 'compact_cnn', not 'resnet18'"):
        create_task_backbone("resnet18", weights="shapes")
    with pytest.raises(CheckpointError, match=r"torchvision has no weights 'DEFALT' for 'resnet18'.*Did you mean 'DEFAULT'\?"):
        create_task_backbone("resnet18", weights="DEFALT")
    with pytest.raises(CheckpointError, match=r"no weights 'ResNet18_Weights.NOPE' for 'resnet18'"):
        create_task_backbone("resnet18", weights="ResNet18_Weights.NOPE")


def test_torchvision_weights_pass_in_either_spelling_torchvision_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def get_model(name: str, weights: str) -> torch.nn.Module:  # no download: the spelling is what is checked
        asked.append(weights)
        return torchvision.models.resnet18()

    monkeypatch.setattr(torchvision.models, "get_model", get_model)

    for weights in ("DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"):
        create_task_backbone("resnet18", weights=weights)

    assert asked == ["DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"]


def test_torchvision_weights_that_cannot_be_downloaded_say_what_to_give_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    def offline(name: str, weights: str) -> torch.nn.Module:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models, "get_model", offline)

    with pytest.raises(CheckpointError, match=r"'DEFAULT' weights for 'resnet18' could not be downloaded.*model.weights=PATH"):
        create_task_backbone("resnet18", weights="DEFAULT")


def _saved_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", r"the file is empty or cut short"),
        (b"not a torch file at all", r"it is not a state dict that torch.load reads safely"),
        (_saved_bytes({"weight": torch.zeros(64)})[:-30], r"the file is cut short \(a copy or a write that did not finish\)"),
    ],
)
def test_an_empty_or_foreign_weights_file_says_why_it_cannot_be_read(tmp_path: Path, content: bytes, reason: str) -> None:
    file = tmp_path / "weights.pt"
    file.write_bytes(content)

    with pytest.raises(CheckpointError, match=rf"Cannot read the weights file .*weights.pt': {reason}"):
        read_state_dict(file)


def test_the_packaged_shapes_weights_load_into_the_compact_cnn_at_every_number_of_scales() -> None:
    file = packaged_weights("shapes")
    saved = read_state_dict(file)
    assert file.is_file()
    assert file.stat().st_size < 2_000_000

    for num_scales in (1, 4):
        stem = _stem(create_task_backbone("compact_cnn", num_scales=num_scales, weights="shapes"))
        assert stem.dtype == torch.float32
        torch.testing.assert_close(stem, _stem(saved).float())
        assert not torch.equal(stem, _stem(create_task_backbone("compact_cnn", num_scales=num_scales)))


def test_auto_weights_are_the_shipped_ones_for_the_compact_cnn_and_none_for_a_backbone_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.testing.assert_close(
        _stem(create_task_backbone("compact_cnn", num_scales=4, weights="auto")),
        _stem(create_task_backbone("compact_cnn", num_scales=4, weights="shapes")),
    )
    asked: list[object] = []

    def get_model(name: str, weights: object = None) -> torch.nn.Module:  # no download: what is asked is checked
        asked.append(weights)
        return torchvision.models.resnet18()

    monkeypatch.setattr(torchvision.models, "get_model", get_model)
    create_task_backbone("resnet18", weights="auto")
    assert asked == [None]  # from scratch: resnet18 ships no weights in the package


def test_a_packaged_name_is_the_packaged_weights_even_beside_a_folder_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `torchbricks make-dataset shapes shapes` makes such a folder in the working directory
    (tmp_path / "shapes" / "classification").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    saved = _stem(read_state_dict(packaged_weights("shapes"))).float()

    for weights in ("auto", "shapes"):
        torch.testing.assert_close(_stem(create_task_backbone("compact_cnn", weights=weights)), saved)
    with pytest.raises(CheckpointError, match=r"no backbone\.pt"):  # './shapes' is that folder, read as weights
        create_task_backbone("compact_cnn", weights="./shapes")


def test_auto_weights_start_a_backbone_for_other_than_rgb_images_from_scratch() -> None:
    grey = create_task_backbone("compact_cnn", weights="auto", in_channels=1)
    assert _stem(grey).shape[1] == 1
    with pytest.raises(CheckpointError):  # the shipped weights themselves take 3 channels
        create_task_backbone("compact_cnn", weights="shapes", in_channels=1)
