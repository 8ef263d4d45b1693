from __future__ import annotations

import pytest

from torchbricks.bag_of_bricks.task_utils import (
    ImageClassificationInfo,
    ImageSegmentationInfo,
    Task,
    distinct_colors,
    get_distinct_colors,
)
from torchbricks.errors import BrickError


def test_class_info_from_names_numbers_the_classes_and_gives_each_a_distinct_color() -> None:
    info = ImageSegmentationInfo.from_names(["background", "cat", "dog"])

    assert isinstance(info, ImageClassificationInfo)
    assert (info.label_name, info.class_ids) == ("label", [0, 1, 2])
    assert len(set(info.class_colors)) == 3
    assert Task("semantic_segmentation") is Task.SEMANTIC_SEGMENTATION


@pytest.mark.parametrize("count", [0, 1, 12, 20, 64])
def test_distinct_colors_are_rgb_and_all_different(count: int) -> None:
    colors = get_distinct_colors(count)
    assert len(colors) == count
    assert len(set(colors)) == count
    assert all(len(color) == 3 and all(0 <= channel <= 255 for channel in color) for color in colors)
    assert len(distinct_colors) == 20
    assert all(color.startswith("#") and len(color) == 7 for color in distinct_colors)


def test_class_info_needs_one_id_and_color_per_name() -> None:
    with pytest.raises(BrickError, match="one id and one color per class name"):
        ImageClassificationInfo("label", ["a", "b"], [0], [(0, 0, 0), (1, 1, 1)])
