"""Multi-label image classification ("which classes are in the image"): classifier, loss, head factory, drawing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from torchbricks.bag_of_bricks._data_parallel import divide_by_every_process, parts
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.drawing import draw_class_label, load_font
from torchbricks.heads._registry import head_factory
from torchbricks.heads.multilabel import MultiLabelArguments, MultiLabelTaskHead
from torchbricks.tags import TagsLike

__all__ = [
    "BrickVisualizeMultiLabel",
    "MultiLabelClassifier",
    "MultiLabelLoss",
    "create_multilabel_classification_head",
]


class MultiLabelClassifier(nn.Module):
    """Pools a feature map [B, C, H, W] (or takes features [B, C]) and scores each class independently.

    Returns logits [B, K], sigmoid probabilities [B, K] and the predicted classes [B, K] (int64, 1 where the
    probability is above `threshold`).

    Example:
        >>> logits, probabilities, present = MultiLabelClassifier(num_classes=3, n_features=8)(torch.rand(2, 8, 4, 4))
        >>> logits.shape, present.dtype
        (torch.Size([2, 3]), torch.int64)
    """

    def __init__(self, num_classes: int, n_features: int, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold
        self.fc = nn.Linear(n_features, num_classes)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if features.ndim == 4:
            features = features.mean(dim=(2, 3))
        logits = self.fc(features)
        probabilities = torch.sigmoid(logits)
        return logits, probabilities, (probabilities > self.threshold).long()


class MultiLabelLoss(nn.Module):
    """Binary cross entropy of logits [B, K] against 0/1 targets [B, K] of any dtype, averaged over the targets that
    are not negative: a negative target (`PRESENCE_IGNORED`, a class seen only in ignored objects) is left out. In
    training under DDP the average is over the known targets of every process's batch (see
    `torchbricks.bag_of_bricks._data_parallel`). With `return_parts`, it also returns the loss's numerator and
    denominator on this batch, [1, 2] (see `torchbricks._conventions.LOSS_PARTS`).

    Example:
        >>> round(MultiLabelLoss()(torch.zeros(1, 2), torch.tensor([[1, 0]])).item(), 4)
        0.6931
        >>> round(MultiLabelLoss()(torch.tensor([[0.0, 9.0]]), torch.tensor([[1, -1]])).item(), 4)  # the 9 is left out
        0.6931
    """

    def __init__(self, return_parts: bool = False) -> None:
        super().__init__()
        self.return_parts = return_parts

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        known = targets >= 0
        losses = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0).to(logits.dtype), reduction="none")
        summed = (losses * known).sum()
        loss = divide_by_every_process(summed, known.sum(), self.training, minimum=1.0)
        return (loss, parts((summed, known.sum()))) if self.return_parts else loss


class BrickVisualizeMultiLabel(BrickPerImageVisualization):
    """Writes the names of the classes predicted present on each image.

    Args:
        input_image: Name of the images [B, C, H, W] in [0, 1].
        present: Name of the predicted classes [B, K] (1 = present).
        output_name: Name of the drawn images, a list of RGB Pillow images.
        class_names: Names of the classes; indices are written when None.
        font_size: Height of the text in pixels.
        tags: VISUALIZATION by default.
    """

    def __init__(
        self,
        input_image: str,
        present: str,
        output_name: str,
        class_names: Sequence[str] | None = None,
        font_size: int = 12,
        tags: TagsLike | None = None,
    ) -> None:
        self.class_names = None if class_names is None else list(class_names)
        self.font_size = font_size
        super().__init__(callable=self.draw, input_names=[input_image, present], output_names=[output_name], tags=tags)

    def draw(self, image: np.ndarray, present: np.ndarray) -> Image.Image:
        """Draws one image's classes."""
        indices = np.flatnonzero(np.asarray(present).reshape(-1))
        names = [self.class_names[i] if self.class_names is not None else str(i) for i in indices]
        return draw_class_label(image, ", ".join(names) or "-", font=load_font(self.font_size))


create_multilabel_classification_head = head_factory(
    MultiLabelArguments, MultiLabelTaskHead, "create_multilabel_classification_head"
)
"""The bricks of `torchbricks.heads.multilabel.MultiLabelTaskHead.bricks`,
of the arguments of `torchbricks.heads.multilabel.MultiLabelArguments` (see there),
with relative names so the dict nests under any name."""
