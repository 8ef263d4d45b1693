"""The report's pictures of a head's test predictions (`torchbricks.heads._predictions`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from torchbricks._palette import color_for
from torchbricks.heads._predictions import HeadPredictions


def test_a_mask_class_has_its_palette_colour_in_the_true_and_the_predicted_picture() -> None:
    truth = np.zeros((1, 6, 6), dtype=np.int64)
    truth[0, :3, :3], truth[0, 3:, 3:] = 1, 2
    prediction = truth.copy()
    prediction[0, :3, 3:] = 3  # one more class in the prediction than in the truth
    truth[0, 5, 0] = 255  # ignored
    predictions = HeadPredictions("roads", "segmentation", np.zeros((1, 6, 6, 3)), truth, prediction)
    figure, cells = plt.subplots(1, 2)

    predictions.draw(iter(cells), 0, error=0.25, class_names=["background", "road", "car", "sign"])

    drawn = [axes.get_images()[-1] for axes in cells]
    colours = [image.to_rgba(image.get_array()) for image in drawn]  # RGBA floats per pixel, as drawn over the image
    plt.close(figure)
    for label in (1, 2):  # the same class, the same colour beside itself (the colours were spread over each mask's range)
        true_colour, predicted_colour = (
            colour[mask == label][0] for mask, colour in zip((truth[0], prediction[0]), colours, strict=True)
        )
        assert np.allclose(true_colour, predicted_colour), (label, true_colour, predicted_colour)
    for mask, colour in zip((truth[0], prediction[0]), colours, strict=True):
        for label in (1, 2, 3):
            if (mask == label).any():
                expected = np.array(color_for(label)) / 255
                assert np.allclose(colour[mask == label][:, :3], expected), (label, colour[mask == label][0])
        assert (colour[(mask == 0) | (mask == 255)][:, 3] == 0).all()  # background and ignored pixels are clear
