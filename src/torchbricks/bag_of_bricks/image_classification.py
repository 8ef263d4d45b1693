"""Image classification: the classifier module, a head factory, a visualization and a ready-made collection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from torchbricks.bag_of_bricks._backbone_factories import create_backbone, create_input_bricks
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.drawing import draw_class_label, load_font
from torchbricks.brick_collection import BrickCollection
from torchbricks.compat import (
    accepting_042,
    create_image_classification_head_042_call,
    is_classification_head_042_call,
)
from torchbricks.errors import BrickError, did_you_mean
from torchbricks.heads.classification import create_classification_head
from torchbricks.tags import TagsLike

__all__ = [
    "POOLINGS",
    "BrickVisualizeImageClassification",
    "ImageClassifier",
    "create_bricks_image_classification",
    "create_image_classification_head",
]


POOLINGS = ("average", "max", "average_max")
"""How `ImageClassifier` pools a feature map: its mean, its maximum, or both side by side (twice the features)."""


class ImageClassifier(nn.Module):
    """Pools a feature map [B, C, H, W] (or takes features [B, C]) and classifies it.

    Returns logits, softmax probabilities and the predicted class.

    Args:
        num_classes: Number of classes.
        n_features: Channels C of the features.
        use_average_pooling: 0.4.2's switch: the mean (True) or the maximum (False) over the map; `pooling` replaces it.
        pooling: One of `POOLINGS`; "average_max" concatenates the mean and the maximum (the classifier then reads
            2 * `n_features`). Given, it overrides `use_average_pooling`.

    Example:
        >>> logits, probabilities, class_prediction = ImageClassifier(num_classes=3, n_features=8)(torch.rand(2, 8, 4, 4))
        >>> logits.shape, class_prediction.shape
        (torch.Size([2, 3]), torch.Size([2]))
    """

    def __init__(self, num_classes: int, n_features: int, use_average_pooling: bool = True, pooling: str | None = None) -> None:
        super().__init__()
        if pooling is None:
            pooling = "average" if use_average_pooling else "max"
        if pooling not in POOLINGS:
            raise BrickError(
                f"ImageClassifier: pooling {pooling!r} is not one of {list(POOLINGS)}.{did_you_mean(pooling, POOLINGS)}"
            )
        self.pooling = pooling
        self.use_average_pooling = pooling == "average"
        self.fc = nn.Linear(2 * n_features if pooling == "average_max" else n_features, num_classes)
        self.num_classes = num_classes

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if features.ndim == 4:
            if self.pooling == "average":
                features = features.mean(dim=(2, 3))
            elif self.pooling == "max":
                features = features.amax(dim=(2, 3))
            else:
                features = torch.cat((features.mean(dim=(2, 3)), features.amax(dim=(2, 3))), dim=1)
        elif self.pooling == "average_max":
            raise BrickError(
                f"ImageClassifier(pooling='average_max') needs a feature map [B, C, H, W] to pool, got features of shape "
                f"{list(features.shape)}; flat features have nothing to pool: give pooling='average'."
            )
        logits = self.fc(features)
        probabilities = torch.softmax(logits, dim=1)
        return logits, probabilities, probabilities.argmax(dim=1)


class BrickVisualizeImageClassification(BrickPerImageVisualization):
    """Draws the predicted class name (and its probability) on each image.

    Args:
        input_image: Name of the images [B, C, H, W] with values in [0, 1] (the raw input, not the normalized one).
        class_prediction: Name of the predicted classes [B].
        output_name: Name of the drawn images, a list of RGB Pillow images.
        class_names: Names of the classes; indices are written when None.
        probabilities: Name of the class probabilities [B, K]; the predicted class's probability is written.
        font_size: Height of the text in pixels.
        tags: VISUALIZATION by default.

    Example:
        >>> brick = BrickVisualizeImageClassification("image", "prediction", "drawn", class_names=["cat", "dog"])
        >>> drawn = brick({"image": torch.zeros(2, 3, 32, 64), "prediction": torch.tensor([0, 1])})["drawn"]
        >>> drawn[1].getpixel((4, 4))
        (60, 180, 75)
    """

    def __init__(
        self,
        input_image: str,
        class_prediction: str,
        output_name: str,
        class_names: Sequence[str] | None = None,
        probabilities: str | None = None,
        font_size: int = 16,
        tags: TagsLike | None = None,
    ) -> None:
        self.class_names = None if class_names is None else list(class_names)
        self.font_size = font_size
        names = [input_image, class_prediction] if probabilities is None else [input_image, class_prediction, probabilities]
        super().__init__(callable=self.draw, input_names=names, output_names=[output_name], tags=tags)

    def draw(self, image: np.ndarray, class_prediction: np.ndarray, probabilities: np.ndarray | None = None) -> Image.Image:
        """Draws one image's prediction."""
        label = int(class_prediction.reshape(-1)[0])
        score = None if probabilities is None else float(probabilities.reshape(-1)[label])
        return draw_class_label(image, label, class_names=self.class_names, score=score, font=load_font(self.font_size))


create_image_classification_head = accepting_042(
    create_classification_head, is_classification_head_042_call, create_image_classification_head_042_call
)
"""Today's `create_image_classification_head(num_classes, in_channels, features_name, targets_name, image_name=None,
class_names=None, ...)` (`torchbricks.heads.classification.ClassificationTaskHead.describe`); a torchbricks 0.4.2
call, `(n_backbone_features, task_info, input_name)`, gets 0.4.2's head (see `torchbricks.compat`)."""


def create_bricks_image_classification(
    num_classes: int,
    backbone: nn.Module | str = "resnet18",
    image_name: str = "raw",
    targets_name: str = "targets",
    class_names: Sequence[str] | None = None,
    weights: str | None = None,
    in_channels: int = 3,
    visualize: bool = True,
) -> BrickCollection:
    """A ready-made image classification model: preprocessor, backbone and a classification head in one call.

    Bricks: `preprocessor` (`raw` -> `normalized`), `backbone` (-> `features`) and `head` (see
    `create_image_classification_head`: `head/logits`, `head/probabilities`, `head/class_prediction`,
    `head/loss_ce`, the accuracy and `head/visualization`).

    Args:
        num_classes: Number of classes.
        backbone: A classification network or a torchvision model name; see `create_backbone_brick`.
        image_name: Name of the input images [B, C, H, W] in [0, 1].
        targets_name: Name of the target classes [B].
        class_names: Names of the classes for the visualization.
        weights: Torchvision weights for a backbone given by name.
        in_channels: Channels of the input images; images of other than 3 channels are normalized with mean
            and standard deviation 0.5 instead of ImageNet statistics.
        visualize: Include the visualization brick.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        >>> model = create_bricks_image_classification(num_classes=2, backbone=net)
        >>> model({"raw": torch.rand(2, 3, 16, 16)}, tags="MODEL")["head/probabilities"].shape
        torch.Size([2, 2])
    """
    extractor = create_backbone(backbone, weights=weights, in_channels=in_channels)
    return BrickCollection(
        {
            **create_input_bricks(extractor, image_name, in_channels, output_names=["features"]),
            "head": create_classification_head(
                num_classes=num_classes,
                in_channels=extractor.n_backbone_features,
                features_name="features",
                targets_name=targets_name,
                image_name=image_name if visualize else None,
                class_names=class_names,
            ),
        }
    )
