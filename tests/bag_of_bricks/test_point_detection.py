from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from torchbricks.bag_of_bricks.point_detection import (
    PointDecoder,
    PointDetectionF1,
    PointDetectionLoss,
    PointDetectionScores,
    matched_points,
    render_heatmap_targets,
)
from torchbricks.errors import BrickError

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


# --- precision, recall and the values of each class (PointDetectionScores) ---------------------------------------------


def _reference_counts(
    cases: list[dict[str, np.ndarray]], num_classes: int, distance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives and false negatives per class, of a matching written out: per image, the
    predictions by falling score each take the nearest not yet taken true point of their class within `distance`."""
    hits, wrong, missed = (np.zeros(num_classes, dtype=np.int64) for _ in range(3))
    for case in cases:
        taken = [False] * len(case["target_labels"])
        for index in np.argsort(-case["scores"], kind="stable"):
            label = int(case["labels"][index])
            best, best_distance = None, math.inf
            for target, target_label in enumerate(case["target_labels"]):
                gap = math.dist(case["points"][index].tolist(), case["target_points"][target].tolist())
                if not taken[target] and int(target_label) == label and gap <= distance and gap < best_distance:
                    best, best_distance = target, gap
            if best is None:
                wrong[label] += 1
            else:
                taken[best] = True
                hits[label] += 1
        for target, target_label in enumerate(case["target_labels"]):
            if not taken[target]:
                missed[int(target_label)] += 1
    return hits, wrong, missed


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0  # the micro averages: scikit-learn's zero_division=0


def _class_ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")  # per class: undefined, zero_division=np.nan


def _random_cases(rng: np.random.Generator, images: int, num_classes: int, extent: float = 40.0) -> list[dict[str, np.ndarray]]:
    """Images of 0 to 5 true points of the classes but the last (absent from the truth) and 0 to 7 predictions: near a
    true point (of its class or, now and then, another, the last among them), or anywhere in a square of `extent`
    pixels; some images without any true point, some without predictions, some with neither. In a small square the
    points crowd: predictions compete for a true point, and a prediction has several in reach."""
    cases = []
    for _ in range(images):
        count = int(rng.integers(0, 6))
        target_points = rng.uniform(0, extent, (count, 2))
        target_labels = rng.integers(0, num_classes - 1, count)
        points, labels = [], []
        for _ in range(int(rng.integers(0, 8))):
            if count and rng.random() < 0.7:
                target = int(rng.integers(0, count))
                points.append(target_points[target] + rng.normal(0, 2.0, 2))
                labels.append(int(target_labels[target]) if rng.random() < 0.8 else int(rng.integers(0, num_classes)))
            else:
                points.append(rng.uniform(0, extent, 2))
                labels.append(int(rng.integers(0, num_classes)))
        cases.append(
            {
                "points": np.array(points, dtype=np.float32).reshape(-1, 2),
                "scores": rng.random(len(points)),
                "labels": np.array(labels, dtype=np.int64),
                "target_points": target_points.astype(np.float32),
                "target_labels": target_labels,
            }
        )
    return cases


def _padded(cases: list[dict[str, np.ndarray]]) -> tuple[torch.Tensor, ...]:
    """The cases as the decoder and the data loader give them: predictions by falling score, padded with label -1."""
    width = max([1, *(len(case["labels"]) for case in cases)])
    target_width = max([1, *(len(case["target_labels"]) for case in cases)])
    points, labels = torch.zeros(len(cases), width, 2), torch.full((len(cases), width), -1)
    target_points, target_labels = torch.zeros(len(cases), target_width, 2), torch.full((len(cases), target_width), -1)
    for image, case in enumerate(cases):
        order = np.argsort(-case["scores"], kind="stable")
        points[image, : len(order)] = torch.from_numpy(case["points"][order])
        labels[image, : len(order)] = torch.from_numpy(case["labels"][order])
        target_points[image, : len(case["target_labels"])] = torch.from_numpy(case["target_points"])
        target_labels[image, : len(case["target_labels"])] = torch.from_numpy(case["target_labels"])
    return points, labels, target_points, target_labels


@pytest.mark.parametrize("extent", [40.0, 8.0])
@pytest.mark.parametrize("seed", range(4))
def test_precision_recall_and_f1_overall_and_per_class_match_a_matching_written_out(seed: int, extent: float) -> None:
    rng = np.random.default_rng(seed)
    num_classes, distance, names = 4, 3.0, ["car", "tree", "sign", "absent"]
    cases = _random_cases(rng, images=30, num_classes=num_classes, extent=extent)
    metric = PointDetectionScores(num_classes=num_classes, distance=distance, class_names=names)
    f1_alone = PointDetectionF1(distance=distance)

    metric.update(*_padded(cases))
    f1_alone.update(*_padded(cases))
    values = metric.compute()

    hits, wrong, missed = _reference_counts(cases, num_classes, distance)
    assert min(hits.sum(), wrong.sum(), missed.sum()) > 0  # the cases hold all three
    assert hits[-1] + missed[-1] == 0  # the last class has no true point
    tp, fp, fn = hits.sum(), wrong.sum(), missed.sum()
    assert values["precision"].item() == pytest.approx(_ratio(tp, tp + fp))
    assert values["recall"].item() == pytest.approx(_ratio(tp, tp + fn))
    assert values["f1"].item() == pytest.approx(_ratio(2 * tp, 2 * tp + fp + fn))
    assert values["f1"] == f1_alone.compute()  # the <head>/f1 of before, bit for bit
    assert list(values["per_class"]) == names
    for index, name in enumerate(names):
        entry = {key: value.item() for key, value in values["per_class"][name].items()}
        expected = {
            "precision": _class_ratio(hits[index], hits[index] + wrong[index]),
            "recall": _class_ratio(hits[index], hits[index] + missed[index]),
            "f1": _class_ratio(2 * hits[index], 2 * hits[index] + wrong[index] + missed[index]),
        }
        assert {key: entry[key] for key in expected} == pytest.approx(expected, nan_ok=True), name
        assert entry["support"] == hits[index] + missed[index], name


def test_the_values_accumulated_over_batches_equal_those_of_one_batch() -> None:
    rng = np.random.default_rng(7)
    cases = _random_cases(rng, images=15, num_classes=3)
    whole = PointDetectionScores(num_classes=3, distance=3.0)
    whole.update(*_padded(cases))
    accumulated = PointDetectionScores(num_classes=3, distance=3.0)
    for start, stop in [(0, 1), (1, 5), (5, 6), (6, 13), (13, 15)]:  # batches padded each to its own widths
        accumulated.update(*_padded(cases[start:stop]))

    expected, values = whole.compute(), accumulated.compute()

    for key in ("f1", "precision", "recall"):
        assert values[key] == expected[key], key
    for name, entry in expected["per_class"].items():
        for key, value in entry.items():
            torch.testing.assert_close(values["per_class"][name][key], value, rtol=0, atol=0, equal_nan=True, msg=f"{name} {key}")


def test_a_class_with_neither_true_points_nor_predictions_has_undefined_scores_not_zeros() -> None:
    # As the classification and multilabel heads' per-class values: a ratio with nothing to divide by is undefined
    # (NaN, null in metrics.json), not 0, which read as a measured score; a class only predicted has precision and F1
    # 0, measured (all false positives), and no recall (no true point).
    metric = PointDetectionScores(num_classes=3, distance=2.0, class_names=["seen", "unseen", "only_predicted"])
    metric.update(
        torch.tensor([[[1.0, 1.0], [9.0, 9.0]]]), torch.tensor([[0, 2]]), torch.tensor([[[1.5, 1.0]]]), torch.tensor([[0]])
    )

    per_class = {
        name: {key: value.item() for key, value in entry.items()} for name, entry in metric.compute()["per_class"].items()
    }

    assert per_class["unseen"] == pytest.approx(
        {"precision": math.nan, "recall": math.nan, "f1": math.nan, "support": 0}, nan_ok=True
    )
    assert per_class["only_predicted"] == pytest.approx(
        {"precision": 0.0, "recall": math.nan, "f1": 0.0, "support": 0}, nan_ok=True
    )
    assert per_class["seen"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_points_scores_refuse_a_label_past_num_classes_and_mismatched_class_names() -> None:
    metric = PointDetectionScores(num_classes=2)
    with pytest.raises(BrickError, match=r"target labels hold 2, expected class indices 0 \.\. 1 .*num_classes=2"):
        metric.update(torch.zeros(1, 1, 2), torch.tensor([[0]]), torch.zeros(1, 1, 2), torch.tensor([[2]]))
    with pytest.raises(BrickError, match=r"PointDetectionScores has 2 classes but 1 class names: \['car'\]"):
        PointDetectionScores(num_classes=2, class_names=["car"])


def _scores_on_two_processes(rank: int, port: int, folder: str) -> None:
    import os

    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    cases = _random_cases(np.random.default_rng(11), images=9, num_classes=3)
    metric = PointDetectionScores(num_classes=3, distance=3.0)
    mine = cases[:6] if rank == 0 else cases[6:]  # unequal shares, in batches of their own widths
    for start in range(0, len(mine), 2):
        metric.update(*_padded(mine[start : start + 2]))
    torch.save(metric.compute(), Path(folder) / f"{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_report_the_values_of_one_process_on_their_images_together(tmp_path: Path) -> None:
    from helpers import spawn_two_gloo_processes

    spawn_two_gloo_processes(_scores_on_two_processes, tmp_path, timeout=300, waiting="the point scores")
    one = PointDetectionScores(num_classes=3, distance=3.0)
    one.update(*_padded(_random_cases(np.random.default_rng(11), images=9, num_classes=3)))
    expected = one.compute()

    for rank in range(2):
        values = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        for key in ("f1", "precision", "recall"):
            assert values[key] == expected[key], (rank, key)
        torch.testing.assert_close(values["per_class"], expected["per_class"], rtol=0, atol=0, equal_nan=True)


# --- the matching, against a plain greedy matching in float64 ----------------------------------------------------------


def plain_matched(
    points: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, target_labels: torch.Tensor, distance: float
) -> list[bool]:
    """The matching written out: each prediction in turn takes the nearest free target of its class (the first of
    equally near ones) within `distance`, the distances in float64 from the points' values."""
    free = [True] * len(targets)
    hits = []
    for point, label in zip(points.double().tolist(), labels.tolist(), strict=True):
        reach = [
            (math.dist(point, target), index)
            for index, (target, target_label) in enumerate(zip(targets.double().tolist(), target_labels.tolist(), strict=True))
            if free[index] and target_label == label
        ]
        nearest = min(reach, default=None)
        hits.append(nearest is not None and nearest[0] <= distance)
        if hits[-1]:
            free[nearest[1]] = False
    return hits


def test_points_exactly_at_the_distance_match_however_many_and_far_from_the_origin() -> None:
    # torch.cdist computes the distances of more than 25 points a side through a matrix product (|a|^2 + |b|^2 - 2ab),
    # whose float32 rounding at 10,000 px (an orthomosaic's points) moved a point 5 px away to anywhere from 0 to 6.9:
    # matched or not at random, and the F1 with it.
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 10_000, (300, 2), generator=generator).float()
    labels = torch.zeros(300, dtype=torch.int64)
    exactly = targets + torch.tensor([3.0, 4.0])  # 5 px away
    beyond = targets + torch.tensor([3.0, 5.0])  # 5.83 px away

    for points, distance in ((exactly, 5.0), (beyond, 5.0), (beyond, 5.9)):
        expected = plain_matched(points, labels, targets, labels, distance)
        assert matched_points(points, labels, targets, labels, distance).tolist() == expected
        assert expected == [points is exactly or distance > 5.83] * 300


@pytest.mark.parametrize("seed", range(5))
def test_matched_points_agree_with_a_plain_greedy_matching_on_random_points_with_ties(seed: int) -> None:
    # on a small grid many distances tie, and many are exactly the matching distance (sqrt(5): 1 and 2 px apart)
    generator = torch.Generator().manual_seed(seed)
    points, targets = (torch.randint(0, 12, (count, 2), generator=generator).float() for count in (40, 30))
    labels, target_labels = (torch.randint(0, 2, (count,), generator=generator) for count in (40, 30))
    distance = math.sqrt(5.0)

    hit = matched_points(points, labels, targets, target_labels, distance)

    assert hit.tolist() == plain_matched(points, labels, targets, target_labels, distance)
