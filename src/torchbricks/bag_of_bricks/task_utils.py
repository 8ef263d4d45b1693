"""What a task's bricks need to know about the data: the task, the class names, ids and drawing colors."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from enum import Enum

from torchbricks.bag_of_bricks.drawing import PALETTE, Color
from torchbricks.errors import BrickError

__all__ = [
    "ImageClassificationInfo",
    "ImageSegmentationInfo",
    "Task",
    "TaskInfo",
    "distinct_colors",
    "get_distinct_colors",
]


class Task(Enum):
    """The vision tasks a head can solve."""

    IMAGE_CLASSIFICATION = "image_classification"
    SEMANTIC_SEGMENTATION = "semantic_segmentation"


@dataclass
class TaskInfo:
    """Base class of the per-task descriptions."""


@dataclass
class ImageClassificationInfo(TaskInfo):
    """The classes of a classification (or segmentation) task: names, ids and one drawing color each.

    Example:
        >>> info = ImageClassificationInfo.from_names(["cat", "dog"])
        >>> info.class_ids, info.class_colors[0]
        ([0, 1], (230, 25, 75))
    """

    label_name: str
    class_names: list[str]
    class_ids: list[int]
    class_colors: list = field(default_factory=list)  # list[Color]; a plain list so hydra/omegaconf accept it

    def __post_init__(self) -> None:
        lengths = {"class_names": len(self.class_names), "class_ids": len(self.class_ids), "class_colors": len(self.class_colors)}
        if len(set(lengths.values())) != 1:
            raise BrickError(f"{type(self).__name__} needs one id and one color per class name, got {lengths}.")

    @classmethod
    def from_names(cls, class_names: list[str]) -> ImageClassificationInfo:
        """Ids 0..n-1 and distinct colors for `class_names`; the label is named "label"."""
        names = list(class_names)
        ids = list(range(len(names)))
        return cls(label_name="label", class_names=names, class_ids=ids, class_colors=get_distinct_colors(len(names)))


class ImageSegmentationInfo(ImageClassificationInfo):
    """The classes of a semantic segmentation task (as `ImageClassificationInfo`)."""


def get_distinct_colors(n_colors: int) -> list[Color]:
    """`n_colors` RGB colors, easy to tell apart: the drawing palette first, then hues spread by the golden ratio.

    Example:
        >>> get_distinct_colors(2)
        [(230, 25, 75), (60, 180, 75)]
    """
    if isinstance(n_colors, bool) or not isinstance(n_colors, int) or n_colors < 0:
        raise BrickError(f"get_distinct_colors needs a count of colors (an int >= 0), got {n_colors!r}.")
    colors = list(PALETTE[:n_colors])
    hue = 0.0
    while len(colors) < n_colors:
        hue = (hue + 0.618033988749895) % 1.0
        red, green, blue = colorsys.hsv_to_rgb(hue, 0.65 + 0.35 * (len(colors) % 2), 0.95 - 0.25 * (len(colors) % 3 == 2))
        colors.append((round(red * 255), round(green * 255), round(blue * 255)))
    return colors


distinct_colors: list[str] = [f"#{red:02x}{green:02x}{blue:02x}" for red, green, blue in get_distinct_colors(20)]
"""The first 20 colors of `get_distinct_colors` as hex strings."""
