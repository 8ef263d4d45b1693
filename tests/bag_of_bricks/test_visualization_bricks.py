"""The task visualization bricks draw what the model predicted, checked pixel by pixel."""

from __future__ import annotations

import numpy as np
import torch

from torchbricks.bag_of_bricks.drawing import color_for
from torchbricks.bag_of_bricks.image_classification import BrickVisualizeImageClassification
from torchbricks.bag_of_bricks.point_detection import BrickVisualizePoints
from torchbricks.bag_of_bricks.segmentation import BrickVisualizeSegmentation


def test_classification_visualization_writes_the_predicted_class_in_its_color() -> None:
    brick = BrickVisualizeImageClassification(
        "image", "prediction", "drawn", class_names=["cat", "dog"], probabilities="probabilities"
    )
    images = torch.full((2, 3, 40, 100), 0.5)
    drawn = brick({"image": images, "prediction": torch.tensor([1, 0]), "probabilities": torch.tensor([[0.1, 0.9], [0.8, 0.2]])})[
        "drawn"
    ]
    assert [image.getpixel((4, 4)) for image in drawn] == [color_for(1), color_for(0)]
    assert drawn[0].getpixel((99, 39)) == (128, 128, 128)


def test_classification_visualization_draws_on_gray_images() -> None:
    brick = BrickVisualizeImageClassification("image", "prediction", "drawn")
    drawn = brick({"image": torch.zeros(1, 1, 30, 60), "prediction": torch.tensor([3])})["drawn"]
    assert drawn[0].mode == "RGB"
    assert drawn[0].getpixel((4, 4)) == color_for(3)


def test_segmentation_visualization_colors_the_predicted_pixels_only() -> None:
    mask = torch.zeros(1, 8, 8, dtype=torch.int64)
    mask[0, 2:5, 3:6] = 2
    drawn = BrickVisualizeSegmentation("image", "mask", "drawn", alpha=0.5)({"image": torch.zeros(1, 3, 8, 8), "mask": mask})[
        "drawn"
    ][0]
    pixels = np.asarray(drawn)
    colored = pixels.any(axis=-1)
    assert colored.tolist() == (mask[0] > 0).tolist()
    assert tuple(pixels[3, 4]) == tuple(np.rint(np.array(color_for(2)) * 0.5).astype(np.uint8))


def test_point_visualization_draws_the_valid_points_of_each_image() -> None:
    brick = BrickVisualizePoints("image", "points", "labels", "drawn", radius=2)
    points = torch.tensor([[[10.0, 10.0], [30.0, 20.0]], [[5.0, 25.0], [0.0, 0.0]]])
    labels = torch.tensor([[0, 1], [2, -1]])
    drawn = brick({"image": torch.zeros(2, 3, 32, 48), "points": points, "labels": labels})["drawn"]
    assert drawn[0].getpixel((10, 10)) == color_for(0)
    assert drawn[0].getpixel((30, 20)) == color_for(1)
    assert drawn[1].getpixel((5, 25)) == color_for(2)
    assert drawn[1].getpixel((0, 0)) == (0, 0, 0)
