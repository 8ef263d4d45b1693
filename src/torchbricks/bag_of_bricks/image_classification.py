"""Image classification: the classifier module, a head factory, a visualization and a ready-made collection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from torchbricks.bag_of_bricks.backbones import create_backbone, create_input_bricks
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.drawing import draw_class_label, load_font
from torchbricks.bag_of_bricks.task_utils import TaskInfo
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface, BrickLoss, BrickMetrics, BrickMetricSingle, BrickTrainable
from torchbricks.errors import BrickError
from torchbricks.tags import TagsLike

__all__ = [
    "BrickVisualizeImageClassification",
    "ImageClassifier",
    "create_bricks_image_classification",
    "create_image_classification_head",
]


class ImageClassifier(nn.Module):
    """Pools a feature map [B, C, H, W] (or takes features [B, C]) and classifies it.

    Returns logits, softmax probabilities and the predicted class.

    Example:
        >>> logits, probabilities, class_prediction = ImageClassifier(num_classes=3, n_features=8)(torch.rand(2, 8, 4, 4))
        >>> logits.shape, class_prediction.shape
        (torch.Size([2, 3]), torch.Size([2]))
    """

    def __init__(self, num_classes: int, n_features: int, use_average_pooling: bool = True) -> None:
        super().__init__()
        self.use_average_pooling = use_average_pooling
        self.fc = nn.Linear(n_features, num_classes)
        self.num_classes = num_classes

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if features.ndim == 4:
            features = features.mean(dim=(2, 3)) if self.use_average_pooling else features.amax(dim=(2, 3))
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


@overload
def create_image_classification_head(
    num_classes: int,
    in_channels: int,
    features_name: str,
    targets_name: str,
    image_name: str | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, BrickInterface]: ...


@overload
def create_image_classification_head(
    *, n_backbone_features: int, task_info: TaskInfo, input_name: str
) -> dict[str, BrickInterface]: ...


def create_image_classification_head(
    num_classes: Any = None,
    in_channels: Any = None,
    features_name: Any = None,
    targets_name: str | None = None,
    image_name: str | None = None,
    class_names: Sequence[str] | None = None,
    *,
    n_backbone_features: int | None = None,
    task_info: TaskInfo | None = None,
    input_name: str | None = None,
) -> dict[str, BrickInterface]:
    """Image classification bricks, with relative names so the dict nests under any name.

    Bricks: `classify` (an `ImageClassifier` producing `./logits`, `./probabilities` and `./class_prediction`),
    `accuracy` (`MulticlassAccuracy`, micro average, reported as `./accuracy` like the packaged head config), `loss`
    (cross entropy, `./loss_ce`) and, when `image_name` is given,
    `visualize` (`./visualization`: the predicted class drawn on each image).

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the features.
        features_name: Name of the features [B, C, H, W] or [B, C].
        targets_name: Name of the target classes [B].
        image_name: Name of the images in [0, 1] to draw on; no visualization brick when None.
        class_names: Names of the classes for the visualization.
        n_backbone_features: torchbricks 0.4.2 form, `create_image_classification_head(n_backbone_features,
            task_info, input_name)` (by keyword or positionally): the channels of the features.
        task_info: 0.4.2 form: an `ImageClassificationInfo` giving the classes and the target name (`label_name`).
        input_name: 0.4.2 form: the name of the features.

    The 0.4.2 form returns 0.4.2's head: `classifier`, `loss` (`./loss`) and `metrics`, a `BrickMetrics` of
    `MeanAccuracy` (macro average), `Accuracy` (micro average) and `ConfMat`; no visualization.

    Example:
        >>> from torchbricks.brick_collection import BrickCollection
        >>> model = BrickCollection({"head": create_image_classification_head(3, 8, "features", "targets")})
        >>> sorted(model({"features": torch.rand(2, 8, 4, 4), "targets": torch.tensor([0, 2])}, return_inputs=False))
        ['head/class_prediction', 'head/logits', 'head/loss_ce', 'head/probabilities']
    """
    if isinstance(in_channels, TaskInfo):  # 0.4.2 called it positionally: (n_backbone_features, task_info, input_name)
        n_backbone_features, task_info, input_name, num_classes, in_channels, features_name = (
            num_classes,
            in_channels,
            features_name,
            None,
            None,
            None,
        )
    if task_info is not None or n_backbone_features is not None or input_name is not None:
        return _head_042(
            n_backbone_features, task_info, input_name, given=(num_classes, in_channels, features_name, targets_name)
        )
    if num_classes is None or in_channels is None or features_name is None or targets_name is None:
        raise BrickError(
            "create_image_classification_head needs num_classes, in_channels, features_name and targets_name "
            "(or, as torchbricks 0.4.2, n_backbone_features, task_info and input_name)."
        )
    head: dict[str, BrickInterface] = {
        "classify": BrickTrainable(
            ImageClassifier(num_classes=num_classes, n_features=in_channels),
            input_names=[features_name],
            output_names=["./logits", "./probabilities", "./class_prediction"],
        ),
        # Reported as `<head>/accuracy`, the fraction of images classified right, as the packaged head config does.
        "accuracy": BrickMetricSingle(
            MulticlassAccuracy(num_classes=num_classes, average="micro"),
            input_names=["./class_prediction", targets_name],
            metric_name="accuracy",
        ),
        "loss": BrickLoss(model=nn.CrossEntropyLoss(), input_names=["./logits", targets_name], output_names=["./loss_ce"]),
    }
    if image_name is not None:
        head["visualize"] = BrickVisualizeImageClassification(
            input_image=image_name,
            class_prediction="./class_prediction",
            probabilities="./probabilities",
            output_name="./visualization",
            class_names=class_names,
        )
    return head


def _head_042(
    n_backbone_features: int | None, task_info: TaskInfo | None, input_name: str | None, given: tuple[Any, ...]
) -> dict[str, BrickInterface]:
    """The head of torchbricks 0.4.2's `create_image_classification_head(n_backbone_features, task_info, input_name)`."""
    if n_backbone_features is None or input_name is None or any(value is not None for value in given):
        raise BrickError(
            "create_image_classification_head in the torchbricks 0.4.2 form takes n_backbone_features, task_info and "
            "input_name, and nothing of today's form (num_classes, in_channels, features_name, targets_name)."
        )
    class_names = getattr(task_info, "class_names", None)
    target_name = getattr(task_info, "label_name", None)
    if not isinstance(class_names, list) or not isinstance(target_name, str):
        raise BrickError(
            f"create_image_classification_head: task_info must have class_names and label_name (an "
            f"ImageClassificationInfo), got {task_info!r}."
        )
    num_classes = len(class_names)
    metrics = MetricCollection(
        {
            "MeanAccuracy": MulticlassAccuracy(num_classes=num_classes, average="macro"),
            "Accuracy": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "ConfMat": MulticlassConfusionMatrix(num_classes=num_classes),
        }
    )
    return {
        "classifier": BrickTrainable(
            ImageClassifier(num_classes=num_classes, n_features=n_backbone_features),
            input_names=[input_name],
            output_names=["./logits", "./probabilities", "./class_prediction"],
        ),
        "loss": BrickLoss(model=nn.CrossEntropyLoss(), input_names=["./logits", target_name], output_names=["./loss"]),
        "metrics": BrickMetrics(metric_collection=metrics, input_names=["./class_prediction", target_name]),
    }


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
            "head": create_image_classification_head(
                num_classes=num_classes,
                in_channels=extractor.n_backbone_features,
                features_name="features",
                targets_name=targets_name,
                image_name=image_name if visualize else None,
                class_names=class_names,
            ),
        }
    )
