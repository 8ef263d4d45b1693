from __future__ import annotations

import math

import pytest
import torch

from torchbricks.bag_of_bricks.point_detection import PointDecoder, PointDetectionF1, PointDetectionLoss, render_heatmap_targets

POINTS = torch.tensor([[[13.0, 6.0], [30.5, 21.25], [0.0, 0.0]], [[2.0, 29.0], [0.0, 0.0], [0.0, 0.0]]])
LABELS = torch.tensor([[0, 1, -1], [1, -1, -1]])


def _reference_heatmap(
    points: torch.Tensor, labels: torch.Tensor, num_classes: int, size: tuple[int, int], stride: int
) -> torch.Tensor:
    heat = torch.zeros(points.shape[0], num_classes, *size)
    for image in range(points.shape[0]):
        for (x, y), label in zip(points[image].tolist(), labels[image].tolist(), strict=True):
            if label < 0:
                continue
            cell_x, cell_y = min(int(x // stride), size[1] - 1), min(int(y // stride), size[0] - 1)
            for row in range(size[0]):
                for column in range(size[1]):
                    value = math.exp(-((column - cell_x) ** 2 + (row - cell_y) ** 2) / 2)
                    heat[image, label, row, column] = max(heat[image, label, row, column].item(), value)
    return heat


def test_heatmap_targets_match_a_loop_over_points_and_pixels() -> None:
    heat, cells, offsets, valid = render_heatmap_targets(POINTS, LABELS, num_classes=2, size=(8, 8), stride=4)
    assert torch.allclose(heat, _reference_heatmap(POINTS, LABELS, 2, (8, 8), 4), atol=1e-6)
    assert cells[0, 1].tolist() == [7, 5]
    assert offsets[0, 1].tolist() == pytest.approx([0.625, 0.3125])
    assert valid.tolist() == [[True, True, False], [True, False, False]]


def test_decoding_the_targets_gives_back_the_points() -> None:
    heat, cells, offsets, valid = render_heatmap_targets(POINTS, LABELS, num_classes=2, size=(8, 8), stride=4)
    logits = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    offset_map = torch.zeros(2, 2, 8, 8)
    for image, point in torch.nonzero(valid).tolist():
        x, y = cells[image, point].tolist()
        offset_map[image, :, y, x] = offsets[image, point]
    points, scores, labels = PointDecoder(stride=4, max_points=3, threshold=0.5)(logits, offset_map)

    assert labels.tolist() == [[0, 1, -1], [1, -1, -1]]
    assert torch.allclose(points[0, :2], POINTS[0, :2])
    assert torch.allclose(points[1, :1], POINTS[1, :1])
    assert (scores[labels >= 0] > 0.99).all()


def test_points_decoded_under_bfloat16_mixed_precision_are_the_pixels_and_scores_of_the_head_outputs() -> None:
    # Decoded in bfloat16 (a head's maps under precision=bf16-mixed), a coordinate near 1000 px was a multiple of 4:
    # the F1 matched points within a stride of 4 px against rounded positions.
    logits = torch.full((1, 1, 256, 256), -9.0, dtype=torch.bfloat16)
    logits[0, 0, 201, 250] = 4.0
    offsets = torch.zeros(1, 2, 256, 256, dtype=torch.bfloat16)
    offsets[0, :, 201, 250] = torch.tensor([0.3, 0.7], dtype=torch.bfloat16)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        points, scores, labels = PointDecoder(stride=4, max_points=2)(logits, offsets)

    offset = offsets[0, :, 201, 250].double()
    expected = torch.stack([(250 + offset[0]) * 4, (201 + offset[1]) * 4])
    assert labels[0, 0].item() == 0
    torch.testing.assert_close(points[0, 0].double(), expected, atol=1e-4, rtol=0)
    assert scores[0, 0].item() == pytest.approx(1 / (1 + math.exp(-4.0)), abs=1e-6)


def test_loss_is_small_for_the_targets_and_large_for_a_wrong_heatmap() -> None:
    heat = render_heatmap_targets(POINTS, LABELS, num_classes=2, size=(8, 8), stride=4)[0]
    loss = PointDetectionLoss(num_classes=2, stride=4)
    offset_map = torch.full((2, 2, 8, 8), 0.5)
    good, _ = loss(torch.logit(heat.clamp(1e-4, 1 - 1e-4)), offset_map, POINTS, LABELS)
    bad, _ = loss(torch.logit((1 - heat).clamp(1e-4, 1 - 1e-4)), offset_map, POINTS, LABELS)
    assert good < 0.1
    assert bad > 100 * good


def test_focal_loss_equals_the_centernet_formula_written_out() -> None:
    torch.manual_seed(0)
    logits, offset_map = torch.randn(2, 2, 8, 8), torch.rand(2, 2, 8, 8)
    heat, cells, offsets, valid = render_heatmap_targets(POINTS, LABELS, num_classes=2, size=(8, 8), stride=4)
    heatmap_loss, offset_loss = PointDetectionLoss(num_classes=2, stride=4)(logits, offset_map, POINTS, LABELS)

    p = torch.sigmoid(logits)
    positive = heat == 1
    expected = -(((1 - p) ** 2 * torch.log(p))[positive].sum() + ((1 - heat) ** 4 * p**2 * torch.log(1 - p))[~positive].sum()) / 3
    assert heatmap_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    expected_offset = sum(
        (offset_map[image, :, cells[image, point, 1], cells[image, point, 0]] - offsets[image, point]).abs().sum()
        for image, point in torch.nonzero(valid).tolist()
    )
    assert offset_loss.item() == pytest.approx(float(expected_offset) / 3, rel=1e-5)


def test_f1_counts_matches_by_class_and_distance_and_ignores_padding() -> None:
    metric = PointDetectionF1(distance=2.0)
    predicted = torch.tensor([[[13.0, 7.0], [30.0, 21.0], [50.0, 50.0]], [[2.0, 29.0], [9.0, 9.0], [0.0, 0.0]]])
    predicted_labels = torch.tensor([[0, 0, 1], [1, -1, -1]])  # the second point has the wrong class
    metric.update(predicted, predicted_labels, POINTS, LABELS)
    assert (metric.true_positives.item(), metric.false_positives.item(), metric.false_negatives.item()) == (2, 2, 1)
    assert metric.compute().item() == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))


def test_one_prediction_matches_one_target_only() -> None:
    metric = PointDetectionF1(distance=5.0)
    metric.update(
        torch.tensor([[[1.0, 1.0], [1.5, 1.0]]]), torch.tensor([[0, 0]]), torch.tensor([[[1.0, 1.0]]]), torch.tensor([[0]])
    )
    assert (metric.true_positives.item(), metric.false_positives.item(), metric.false_negatives.item()) == (1, 1, 0)
