"""The point head's report (`torchbricks.heads.points`): its unmatched points, against a plain matching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from torchbricks.heads.points import PointHeadPredictions, Points


def _plain_unmatched(truth: Points, prediction: Points, distance: float) -> int:
    """Predicted points matching no true point plus true points matched by none, the matching written out: each
    prediction in turn takes the nearest free true point of its class (the first of equally near ones) within
    `distance`, the distances in float64."""
    free = [True] * len(truth.labels)
    hits = 0
    for point, label in zip(prediction.points.tolist(), prediction.labels.tolist(), strict=True):
        reach = [
            (math.dist(point, target), index)
            for index, (target, target_label) in enumerate(zip(truth.points.tolist(), truth.labels.tolist(), strict=True))
            if free[index] and target_label == label
        ]
        nearest = min(reach, default=None)
        if nearest is not None and nearest[0] <= distance:
            free[nearest[1]] = False
            hits += 1
    return len(truth.labels) + len(prediction.labels) - 2 * hits


@pytest.mark.parametrize("seed", range(3))
def test_the_unmatched_points_of_the_report_agree_with_a_plain_matching_on_random_points_with_ties(seed: int) -> None:
    # on a small grid many distances tie, and many are exactly the matching distance (sqrt(5): 1 and 2 px apart); some
    # images have more than 25 points a side, some none
    generator = np.random.default_rng(seed)
    truth, prediction = [], []
    for count, predicted in ((40, 30), (5, 8), (0, 3), (4, 0), (30, 60)):
        truth.append(Points(generator.integers(0, 12, (count, 2)).astype(np.float32), generator.integers(0, 2, count)))
        prediction.append(
            Points(generator.integers(0, 12, (predicted, 2)).astype(np.float32), generator.integers(0, 2, predicted))
        )
    distance = math.sqrt(5.0)
    head = PointHeadPredictions("cells", np.zeros((len(truth), 12, 12, 3)), truth, prediction, distance)

    expected = [_plain_unmatched(true, predicted, distance) for true, predicted in zip(truth, prediction, strict=True)]
    assert head.errors().tolist() == expected
