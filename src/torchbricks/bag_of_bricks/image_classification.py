"""Image classification head."""

from __future__ import annotations

import torch
from torch import nn


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

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if features.ndim == 4:
            features = features.mean(dim=(2, 3)) if self.use_average_pooling else features.amax(dim=(2, 3))
        logits = self.fc(features)
        probabilities = torch.softmax(logits, dim=1)
        return logits, probabilities, probabilities.argmax(dim=1)
