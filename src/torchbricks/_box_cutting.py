"""The one rule for boxes found on an image: cut them to the image, and leave out those with no area left.

`predict` writes its boxes so (`torchbricks._tiled_predictions`), the detection mAP scores them so
(`torchbricks.bag_of_bricks.object_detection.BoxMeanAveragePrecision`) and the report draws them so
(`torchbricks.heads.detection`). The function takes numpy arrays and torch tensors alike, with no import of either,
so the torch-free ONNX runtime (`torchbricks.deploy.OnnxPredictor`) uses it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["cut_to_image"]

Boxes = TypeVar("Boxes", "np.ndarray", "torch.Tensor")


def cut_to_image(boxes: Boxes, height: Boxes | float, width: Boxes | float) -> tuple[Boxes, Boxes]:
    """Boxes [..., 4] (x_min, y_min, x_max, y_max) cut to images, and whether each still covers some of its image.

    The decoder's boxes may reach past the model's input (an object at the border, the black padding of a tile
    shorter than the tile's side); in the image's pixels such a box would reach past the picture, as no true box does.
    The boxes are not changed in place.

    Args:
        boxes: Boxes in an image's pixels, a numpy array or a torch tensor.
        height: The image's height: a number, or an array (tensor) of the boxes' type broadcastable to
            `boxes[..., 0::2]` ([B, 1, 1] for boxes [B, P, 4] of B images of their own sizes).
        width: The image's width, as `height`.

    Returns:
        The cut boxes and a boolean [...] that is False for a box left without area (wholly outside the image).

    Example:
        >>> import numpy as np
        >>> boxes = np.array([[-4.0, 2.0, 10.0, 30.0], [25.0, 5.0, 28.0, 9.0]], dtype=np.float32)
        >>> cut, shown = cut_to_image(boxes, 20, 24)
        >>> cut[0].tolist(), shown.tolist()
        ([0.0, 2.0, 10.0, 20.0], [True, False])
    """
    cut = boxes.clip(min=0)
    cut[..., 0::2] = cut[..., 0::2].clip(max=width)
    cut[..., 1::2] = cut[..., 1::2].clip(max=height)
    return cut, (cut[..., 2] > cut[..., 0]) & (cut[..., 3] > cut[..., 1])
