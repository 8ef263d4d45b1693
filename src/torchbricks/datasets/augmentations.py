"""Augmentations that `torchvision.transforms.v2` lacks, written as v2 transforms (boxes and masks follow the image).

`RandomRightAngleRotation` turns a sample by a multiple of 90 degrees exactly: pixels are moved, not resampled,
and a box stays the tight box of its object. (`v2.RandomRotation` at other angles can only return the box
around the turned box, up to 1.4 times too large at 45 degrees, which teaches a detector loose boxes.) With
`v2.RandomHorizontalFlip` it gives all eight right-angle views of a picture seen from above.

Importing this module needs torchvision (`pip install "torchbricks[vision]"`).
"""

from __future__ import annotations

from typing import Any

import torch

from torchbricks._extras import require
from torchbricks.errors import BrickError

v2 = require("torchvision.transforms.v2", "vision")
tv_tensors = require("torchvision.tv_tensors", "vision")

__all__ = ["RandomRightAngleRotation", "rotate_boxes_right_angle"]


def rotate_boxes_right_angle(boxes: torch.Tensor, turns: int, canvas_size: tuple[int, int]) -> torch.Tensor:
    """XYXY boxes on a canvas of `(height, width)` turned like `torch.rot90(image, turns, dims=(-2, -1))`.

    One turn (counter-clockwise on the screen) moves the point (x, y) to (y, width - x).

    Example:
        >>> rotate_boxes_right_angle(torch.tensor([[10.0, 20.0, 30.0, 25.0]]), 1, (40, 100))
        tensor([[20., 70., 25., 90.]])
    """
    height, width = canvas_size
    for _ in range(turns % 4):
        x_min, y_min, x_max, y_max = boxes.unbind(-1)
        boxes = torch.stack([y_min, width - x_max, y_max, width - x_min], dim=-1)
        height, width = width, height
    return boxes


class RandomRightAngleRotation(v2.Transform):  # type: ignore[name-defined]
    """Turns the image, its masks and its boxes by 0, 90, 180 or 270 degrees, each equally likely.

    A turn by 90 or 270 degrees swaps the height and width, so a sample that is not square is turned by 0 or 180
    degrees only (a batch keeps one size).

    Args:
        p: Probability of turning the sample at all (by 90, 180 or 270 degrees, each equally likely).

    Example:
        >>> from torchvision import tv_tensors
        >>> image = tv_tensors.Image(torch.arange(4).reshape(1, 2, 2))
        >>> RandomRightAngleRotation().transform(image, {"turns": 1}).tolist()  # one counter-clockwise turn
        [[[1, 3], [0, 2]]]
    """

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise BrickError(f"RandomRightAngleRotation: p must be in [0, 1], got {p!r}.")
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        if torch.rand(()) >= self.p:
            return {"turns": 0}
        choices = (1, 2, 3) if height == width else (2,)
        return {"turns": choices[int(torch.randint(len(choices), ()))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        turns = params["turns"]
        if turns == 0:
            return inpt
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            xyxy = v2.functional.convert_bounding_box_format(inpt, new_format=tv_tensors.BoundingBoxFormat.XYXY)
            turned = rotate_boxes_right_angle(xyxy.as_subclass(torch.Tensor), turns, tuple(inpt.canvas_size))
            height, width = inpt.canvas_size
            canvas = (height, width) if turns == 2 else (width, height)
            result = tv_tensors.BoundingBoxes(turned, format="XYXY", canvas_size=canvas)
            return v2.functional.convert_bounding_box_format(result, new_format=inpt.format)
        if isinstance(inpt, torch.Tensor):  # images, masks, videos: [..., H, W]
            turned = torch.rot90(inpt, turns, dims=(-2, -1))
            return tv_tensors.wrap(turned, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else turned
        return v2.functional.rotate(inpt, 90.0 * turns, expand=True)  # PIL images: a right-angle turn is exact
