"""`ImageClassifier`'s pooling, and the head and task config that choose it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchbricks.bag_of_bricks.image_classification import ImageClassifier
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import BrickError
from torchbricks.heads.classification import create_classification_head


def _one_bright_cell(channels: int = 4) -> torch.Tensor:
    """A 4x4 map of zeros but one cell: a small object on an empty background."""
    features = torch.zeros(2, channels, 4, 4)
    features[:, :, 1, 2] = torch.arange(1, channels + 1, dtype=torch.float32)
    return features


@pytest.mark.parametrize(
    ("pooling", "pooled"),
    [
        ("average", lambda features: features.mean(dim=(2, 3))),
        ("max", lambda features: features.amax(dim=(2, 3))),
        ("average_max", lambda features: torch.cat((features.mean(dim=(2, 3)), features.amax(dim=(2, 3))), dim=1)),
    ],
)
def test_the_classifier_pools_the_map_as_asked(pooling: str, pooled) -> None:
    classifier = ImageClassifier(num_classes=3, n_features=4, pooling=pooling)
    features = _one_bright_cell()
    logits, probabilities, prediction = classifier(features)
    torch.testing.assert_close(logits, classifier.fc(pooled(features)))
    torch.testing.assert_close(probabilities, torch.softmax(logits, dim=1))
    assert prediction.tolist() == logits.argmax(dim=1).tolist()


def test_average_max_keeps_a_small_object_at_its_full_strength_beside_the_mean() -> None:
    classifier = ImageClassifier(num_classes=3, n_features=4, pooling="average_max")
    assert classifier.fc.in_features == 8
    with torch.no_grad():
        classifier.fc.weight.zero_()
        classifier.fc.weight[0, 4 + 3] = 1.0  # class 0 reads the maximum of the last channel
        classifier.fc.bias.zero_()
    logits, _, _ = classifier(_one_bright_cell())
    assert logits[:, 0].tolist() == [4.0, 4.0]  # the average would give 4 / 16


def test_the_0_4_2_switch_still_chooses_between_mean_and_maximum() -> None:
    assert ImageClassifier(3, 4).pooling == "average"
    maximum = ImageClassifier(3, 4, use_average_pooling=False)
    assert maximum.pooling == "max"
    assert not maximum.use_average_pooling
    assert ImageClassifier(3, 4, use_average_pooling=False, pooling="average_max").pooling == "average_max"


def test_flat_features_skip_the_pooling() -> None:
    classifier = ImageClassifier(num_classes=3, n_features=4, pooling="max")
    features = torch.rand(2, 4)
    torch.testing.assert_close(classifier(features)[0], classifier.fc(features))


def test_flat_features_given_to_average_max_are_refused_by_name_not_by_a_shape_error_in_the_linear_layer() -> None:
    with pytest.raises(BrickError, match=r"pooling='average_max'\) needs a feature map \[B, C, H, W\] .* shape \[2, 4\]"):
        ImageClassifier(num_classes=3, n_features=4, pooling="average_max")(torch.rand(2, 4))


def test_an_unknown_pooling_names_the_choices_and_the_close_match() -> None:
    with pytest.raises(BrickError, match=r"pooling 'average-max' is not one of .*'average_max'.*Did you mean 'average_max'\?"):
        ImageClassifier(num_classes=3, n_features=4, pooling="average-max")


def test_the_head_passes_its_pooling_to_the_classifier() -> None:
    head = BrickCollection({"head": create_classification_head(3, 8, "features", "targets", pooling="average_max")})
    classifier = head["head"]["classify"].model
    assert classifier.pooling == "average_max"
    assert classifier.fc.in_features == 16
    outputs = head({"features": torch.rand(2, 8, 4, 4), "targets": torch.tensor([0, 2])}, return_inputs=False)
    assert outputs["head/logits"].shape == (2, 3)
    default = BrickCollection({"head": create_classification_head(3, 8, "features", "targets")})
    assert default["head"]["classify"].model.pooling == "average"


@pytest.mark.parametrize("pooling", ["max", "average"])
def test_the_classification_task_takes_its_pooling_from_model_pooling(tmp_path: Path, pooling: str) -> None:
    from torchbricks.configuration import compose_config, create_brick_collection
    from torchbricks.datasets.shapes import write_shapes_dataset
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()
    root = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, image_size=32) / "classification"
    config = compose_config(["task=classification", f"data.root={root}", f"model.pooling={pooling}"])
    assert create_brick_collection(config)["classification"]["classify"].model.pooling == pooling
