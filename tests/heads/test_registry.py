"""The head registry: kinds by name, heads found by their outputs, and one description behind factory and config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchbricks.bag_of_bricks.image_classification import create_image_classification_head
from torchbricks.bag_of_bricks.multilabel_classification import create_multilabel_classification_head
from torchbricks.bag_of_bricks.object_detection import create_object_detection_head
from torchbricks.bag_of_bricks.segmentation import create_segmentation_head
from torchbricks.errors import BrickError
from torchbricks.heads import find_heads, get_head, list_heads, packaged_head_configs
from torchbricks.trained_experiment import find_heads as find_deployed_heads


def test_every_head_kind_is_registered_by_its_module() -> None:
    assert list_heads() == ["classification", "count", "detection", "multilabel", "points", "segmentation"]


def test_an_unknown_kind_names_the_close_match() -> None:
    with pytest.raises(BrickError, match=r"No task head kind 'detecton'.*Did you mean 'detection'"):
        get_head("detecton")


def test_heads_are_found_by_their_outputs_and_every_packaged_kind_is_deployed() -> None:
    names = ["raw", "a/boxes", "a/scores", "a/labels", "b/count", "c/mask", "c/probabilities", "d/points", "d/scores", "d/labels"]
    names += ["e/embedding"]  # a user's own output that matches no kind: neither found nor deployed

    assert find_heads(names) == {"a": "detection", "b": "count", "c": "segmentation", "d": "points"}
    assert find_deployed_heads(names) == find_heads(names)  # predict and export serve points and count heads too


@pytest.mark.parametrize("name", sorted(packaged_head_configs()))
def test_the_head_config_group_serves_each_kinds_description_with_no_yaml_file(name: str) -> None:
    from omegaconf import OmegaConf

    from torchbricks.configuration import CONFIG_DIR, compose_config

    config = compose_config(["task=detection", "data.root=unused", f"+head@model.bricks.extra={name}"])

    assert not (CONFIG_DIR / "head").exists()
    assert OmegaConf.to_container(config.model.bricks.extra) == packaged_head_configs()[name].config(name)


def test_a_task_configs_head_takes_a_command_line_override_of_one_bricks_argument() -> None:
    from torchbricks.configuration import compose_config

    config = compose_config(["task=detection", "data.root=unused", "model.bricks.detection.decode.model.score_threshold=0.2"])

    assert config.model.bricks.detection.decode.model.score_threshold == 0.2
    assert config.model.bricks.detection.decode.model.iou_threshold == 0.5


def test_a_users_head_file_named_like_a_packaged_head_config_is_refused_and_another_name_composes(tmp_path: Path) -> None:
    from torchbricks.configuration import compose_config
    from torchbricks.errors import ConfigError

    (tmp_path / "head").mkdir()
    (tmp_path / "head" / "classification.yaml").write_text("mine:\n  _target_: torch.nn.Identity\n")
    with pytest.raises(ConfigError, match=r"classification.yaml' has the name of the packaged head config 'classification'"):
        compose_config(["+head@model.bricks.extra=classification"], extra_config_dirs=[tmp_path])

    (tmp_path / "head" / "classification.yaml").rename(tmp_path / "head" / "mine.yaml")
    config = compose_config(["+head@model.bricks.extra=mine"], extra_config_dirs=[tmp_path])

    assert list(config.model.bricks.extra) == ["mine"]


def _described(bricks: dict) -> list[tuple[str, str, list[str]]]:
    """Each brick's name, type and output names (and the types of its model and metrics)."""
    found = []
    for name, brick in bricks.items():
        inner = getattr(brick, "model", None)
        metrics = getattr(brick, "metrics", None)
        kind = type(brick).__name__ + (f"({type(inner).__name__})" if inner is not None else "")
        if metrics is not None:
            kind += str(sorted((key, type(metric).__name__) for key, metric in metrics.items()))
        found.append((name, kind, list(brick.output_names)))
    return found


def _packaged(overrides: list[str], key: str) -> dict:
    from torchbricks.configuration import compose_config, create_brick_collection

    config = compose_config(overrides)
    collection = create_brick_collection(config)
    return dict(collection[key].items())


@pytest.mark.parametrize("kind", ["classification", "multilabel", "detection", "segmentation"])
def test_a_head_built_by_its_factory_and_by_its_packaged_config_has_the_same_bricks(kind: str, tmp_path: Path) -> None:
    from torchbricks.datasets.shapes import write_shapes_dataset
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    root = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=2, image_size=32)
    if kind == "classification":
        packaged = _packaged(["task=classification", f"data.root={root / 'classification'}"], "classification")
        factory = create_image_classification_head(3, 8, "f", "targets", image_name="raw", class_names=["a", "b", "c"])
    elif kind == "multilabel":
        packaged = _packaged(["task=multitask", f"data.root={root / 'detection'}"], "presence")
        factory = create_multilabel_classification_head(3, 8, "f", "target_classes", image_name="raw")
    elif kind == "segmentation":  # the packaged head adds the per-class scores the factory leaves out by default
        packaged = _packaged(["task=segmentation", f"data.root={root / 'segmentation'}"], "segmentation")
        factory = create_segmentation_head(
            4, [8, 8, 8, 8], ["a", "b", "c", "d"], "targets", 4, image_name="raw", class_scores=True
        )
    else:
        packaged = _packaged(["task=detection", f"data.root={root / 'detection'}"], "detection")
        packaged.pop("neck")  # the packaged head merges the scales itself; the factory reads one feature map
        factory = create_object_detection_head(3, 8, "f", 4, "target_boxes", "target_labels", image_name="raw")

    assert _described(factory) == _described(packaged)


def test_one_bricks_argument_is_overridden_from_the_command_line() -> None:
    from torchbricks.configuration import compose_config

    config = compose_config(["task=detection", "data.root=unused", "model.bricks.detection.decode.model.score_threshold=0.2"])

    assert config.model.bricks.detection.decode.model.score_threshold == 0.2
    assert config.model.bricks.detection.decode.model.max_detections == 50  # the rest as the kind describes it


def test_a_description_naming_what_cannot_be_imported_is_an_error() -> None:
    from torchbricks.heads._registry import create_from_description, node

    with pytest.raises(BrickError, match=r"names 'torch\.nn\.Linearr', which cannot be imported"):
        create_from_description(node("torch.nn.Linearr", in_features=1, out_features=1))
    assert create_from_description(node("torch.nn.Linear", in_features=2, out_features=1))(torch.zeros(1, 2)).shape == (1, 1)


def test_the_factories_keep_their_parameters_in_order_with_the_shared_ones_first() -> None:
    import inspect

    from torchbricks.bag_of_bricks.object_detection import create_object_detection_head
    from torchbricks.bag_of_bricks.point_detection import create_point_detection_head
    from torchbricks.heads.classification import create_classification_head

    detection = list(inspect.signature(create_object_detection_head).parameters)
    points = list(inspect.signature(create_point_detection_head).parameters)
    classification = inspect.signature(create_classification_head)

    shared = ["num_classes", "in_channels", "features_name", "stride"]
    assert detection[:7] == [*shared, "target_boxes_name", "target_labels_name", "hidden_channels"]
    assert points[:6] == [*shared, "target_points_name", "target_labels_name"]
    # A new parameter goes last, so positional calls keep their meaning.
    assert list(classification.parameters) == [
        "num_classes",
        "in_channels",
        "features_name",
        "targets_name",
        "image_name",
        "class_names",
        "class_weights",
        "font_size",
        "pooling",
    ]
    assert classification.parameters["image_name"].default is None
    assert "Image classification bricks" in (create_classification_head.__doc__ or "")
    assert "targets_name: Name of the target classes [B]." in (create_classification_head.__doc__ or "")


def test_a_factory_called_positionally_or_with_a_wrong_keyword_maps_like_its_signature() -> None:
    from torchbricks.bag_of_bricks.point_detection import create_point_detection_head

    bricks = create_point_detection_head(2, 8, "features", 4, "points", "labels", 16)

    assert bricks["detect"].model.heatmap.out_channels == 2
    assert bricks["detect"].model.shared[0].out_channels == 16
    assert bricks["metrics"].metrics["f1"].distance == 4
    with pytest.raises(TypeError, match="max_point"):
        create_point_detection_head(2, 8, "features", 4, "points", "labels", max_point=3)
