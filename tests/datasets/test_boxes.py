"""The checks of a box against its image, shared by every box layout."""

from __future__ import annotations

import pytest

from torchbricks.datasets.boxes import BoxDataset, box_problem, clip_box
from torchbricks.errors import DataError


@pytest.mark.parametrize(
    ("box", "problem"),
    [
        ((0, 0, 10, 10), False),
        ((-1.0, 0, 10, 10.5), False),  # within a pixel of the border: rounding in annotation tools
        ((5, 5, 5, 8), True),  # empty
        ((0, 0, 12, 10), True),  # two pixels past the right border
        ((0, -3, 4, 4), True),
        ((float("nan"), 0, 4, 4), True),  # every comparison with nan is false: none would say it is past the border
        ((0, 0, 4, float("nan")), True),
    ],
)
def test_a_box_is_a_problem_when_empty_or_past_its_image(box: tuple[float, ...], problem: bool) -> None:
    assert box_problem(box, width=10, height=10) is problem


def test_a_box_within_the_tolerance_is_clipped_to_its_image() -> None:
    assert clip_box((-0.5, 2, 10.8, 9), width=10, height=8) == (0.0, 2, 10.0, 8.0)


def test_multitask_masks_refuse_a_class_that_would_be_drawn_as_the_ignored_value() -> None:
    names = [f"class{index}" for index in range(255)]

    with pytest.raises(DataError, match=r"class 'class254' \(the 255th\) would be drawn as ignored"):
        BoxDataset([], names, with_masks=True)
    assert BoxDataset([], names[:-1], with_masks=True).class_names == names[:-1]
    assert BoxDataset([], [*names, "more"]).class_names[-1] == "more"  # detection draws no mask: any number
