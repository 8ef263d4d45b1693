"""The checks of an instantiated job's parts against each other."""

from __future__ import annotations

import pytest

from torchbricks.configuration import compose_config, create_brick_collection
from torchbricks.errors import ConfigError


def test_a_head_with_at_least_the_data_classes_passes_the_class_check() -> None:
    from torchbricks.configuration import check_classes_cover_data
    from torchbricks.lightning.datamodules import DigitsDataModule

    for num_classes in (10, 11):  # 11: a spare class (a segmentation background) is allowed
        collection = create_brick_collection(compose_config([f"model.num_classes={num_classes}"]))
        check_classes_cover_data(DigitsDataModule(), collection)
    with pytest.raises(ConfigError, match=r"brick 'head/classify' \(ImageClassifier\) has 9 classes.*has 10"):
        check_classes_cover_data(DigitsDataModule(), create_brick_collection(compose_config(["model.num_classes=9"])))
