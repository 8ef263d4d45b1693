"""Semantic segmentation: a per-pixel head, a head factory, a mask overlay visualization and a ready-made collection."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from torchbricks.bag_of_bricks._backbone_factories import create_backbone, create_input_bricks
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.drawing import overlay_segmentation_mask
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import BrickError
from torchbricks.heads._registry import head_factory
from torchbricks.heads.segmentation import SegmentationTaskHead
from torchbricks.tags import TagsLike

__all__ = [
    "BrickVisualizeSegmentation",
    "SegmentationHead",
    "create_bricks_segmentation",
    "create_segmentation_head",
]


class SegmentationHead(nn.Module):
    """Classifies every pixel of a feature map and upsamples the scores to the image size.

    Returns logits [B, K, H, W], probabilities [B, K, H, W] and the class mask [B, H, W], where H and W are the
    feature map's size times `upsample_factor` (the feature map's stride).

    Args:
        in_channels: Channels of the features.
        num_classes: Number of classes.
        upsample_factor: Stride of the features relative to the image.
        hidden_channels: Channels of the 3x3 convolution before the classifier.

    Example:
        >>> head = SegmentationHead(in_channels=8, num_classes=3, upsample_factor=4)
        >>> logits, probabilities, mask = head(torch.rand(2, 8, 4, 4))
        >>> logits.shape, mask.shape
        (torch.Size([2, 3, 16, 16]), torch.Size([2, 16, 16]))
    """

    def __init__(self, in_channels: int, num_classes: int, upsample_factor: int, hidden_channels: int = 64) -> None:
        super().__init__()
        if upsample_factor < 1:
            raise BrickError(f"SegmentationHead: upsample_factor must be at least 1, got {upsample_factor}.")
        self.upsample_factor = upsample_factor
        self.classify = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(hidden_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, num_classes, kernel_size=1),
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.classify(features)
        if self.upsample_factor > 1:
            logits = F.interpolate(logits, scale_factor=float(self.upsample_factor), mode="bilinear", align_corners=False)
        probabilities = torch.softmax(logits, dim=1)
        return logits, probabilities, probabilities.max(dim=1).indices  # argmax(dim=1) is 10x slower on the CPU


class BrickVisualizeSegmentation(BrickPerImageVisualization):
    """Overlays the class mask on each image, each class in its palette color (class 0, background, uncolored).

    Args:
        input_image: Name of the images [B, C, H, W] in [0, 1].
        mask: Name of the class masks [B, H, W].
        output_name: Name of the drawn images, a list of RGB Pillow images.
        alpha: Opacity of the mask colors.
        background_class: Class left uncolored; None colors all.
        tags: VISUALIZATION by default.

    Example:
        >>> brick = BrickVisualizeSegmentation("image", "mask", "drawn", alpha=1.0)
        >>> drawn = brick({"image": torch.zeros(1, 3, 4, 4), "mask": torch.ones(1, 4, 4, dtype=torch.int64)})["drawn"]
        >>> drawn[0].getpixel((0, 0))
        (60, 180, 75)
    """

    def __init__(
        self,
        input_image: str,
        mask: str,
        output_name: str,
        alpha: float = 0.5,
        background_class: int | None = 0,
        tags: TagsLike | None = None,
    ) -> None:
        self.alpha = alpha
        self.background_class = background_class
        super().__init__(callable=self.draw, input_names=[input_image, mask], output_names=[output_name], tags=tags)

    def draw(self, image: np.ndarray, mask: np.ndarray) -> Image.Image:
        """Draws one image's mask."""
        return overlay_segmentation_mask(image, mask, alpha=self.alpha, background_class=self.background_class)


create_segmentation_head = head_factory(SegmentationTaskHead.describe, SegmentationTaskHead, "create_segmentation_head")
"""The bricks of `torchbricks.heads.segmentation.SegmentationTaskHead.describe` (see there),
with relative names so the dict nests under any name."""


def create_bricks_segmentation(
    num_classes: int,
    backbone: nn.Module | str = "resnet18",
    num_scales: int = 3,
    image_name: str = "raw",
    targets_name: str = "targets",
    hidden_channels: int = 64,
    weights: str | None = None,
    in_channels: int = 3,
    visualize: bool = True,
) -> BrickCollection:
    """A ready-made semantic segmentation model: preprocessor, multi-scale backbone and segmentation head.

    Bricks: `preprocessor` (`raw` -> `normalized`), `backbone` (-> `features_stride8`, `features_stride16`,
    ... one per scale) and `head` (see `create_segmentation_head`: `head/logits`, `head/mask`,
    `head/loss_ce`, the mean IoU `head/mean_iou` and `head/visualization`). Image sides should be multiples of the
    coarsest stride so the mask has the image's size.

    Args:
        num_classes: Number of classes, background included.
        backbone: A classification network or a torchvision model name; see `create_backbone`.
        num_scales: How many backbone scales the neck merges.
        image_name: Name of the input images [B, C, H, W] in [0, 1].
        targets_name: Name of the target masks [B, H, W].
        hidden_channels: Channels of the neck and head.
        weights: Torchvision weights for a backbone given by name.
        in_channels: Channels of the input images.
        visualize: Include the visualization brick.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
        >>> model = create_bricks_segmentation(num_classes=2, backbone=net, num_scales=2, hidden_channels=8)
        >>> model({"raw": torch.rand(1, 3, 16, 16)}, tags="MODEL")["head/mask"].shape
        torch.Size([1, 16, 16])
    """
    extractor = create_backbone(backbone, num_scales=num_scales, weights=weights, in_channels=in_channels)
    input_bricks = create_input_bricks(extractor, image_name, in_channels)
    features_names = input_bricks["backbone"].output_names
    return BrickCollection(
        {
            **input_bricks,
            "head": create_segmentation_head(
                num_classes=num_classes,
                in_channels=extractor.channels,
                features_names=features_names,
                targets_name=targets_name,
                output_stride=extractor.strides[0],
                hidden_channels=hidden_channels,
                image_name=image_name if visualize else None,
            ),
        }
    )
