from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.errors import ConfigError
from torchbricks.lightning.task_resolvers import class_names_of, register_resolvers


def test_configs_read_the_classes_of_each_layout_from_the_data(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=32)
    register_resolvers()
    config = OmegaConf.create(
        {
            "folder": f"${{torchbricks_class_names:image_folder,{root / 'classification'}}}",
            "masks": f"${{torchbricks_num_classes:segmentation_folder,{root / 'segmentation'}}}",
            "coco": f"${{torchbricks_class_names:coco,{root / 'detection'}}}",
            "coco_masks": f"${{torchbricks_class_names:coco_with_background,{root / 'detection'}}}",
            "strides": "${torchbricks_backbone:compact_cnn,2,strides}",
        }
    )

    assert list(config.folder) == ["circle", "square", "triangle"]
    assert config.masks == 4
    assert list(config.coco) == ["circle", "square", "triangle"]  # category ids 3, 7, 12 in id order
    assert list(config.coco_masks) == ["background", "circle", "square", "triangle"]
    assert list(config.strides) == [16, 32]


def test_an_unknown_layout_is_a_config_error_with_the_close_match(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'image_folder'"):
        class_names_of("image_folders", str(tmp_path))
