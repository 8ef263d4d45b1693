"""The numpy merging of windows both `predict` backends share, against torch and torchvision as references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torchbricks._tiled_predictions import merge_windows, non_maximum_suppression, resize_bilinear, tile_pixels
from torchbricks.errors import BrickError


@pytest.mark.parametrize(("size", "target"), [((8, 8), (20, 12)), ((24, 16), (7, 9)), ((5, 5), (5, 5)), ((1, 3), (4, 4))])
def test_resize_bilinear_is_torchs_bilinear_interpolation(size: tuple[int, int], target: tuple[int, int]) -> None:
    values = np.random.default_rng(0).random((3, *size), dtype=np.float32)

    resized = resize_bilinear(values, *target)

    expected = F.interpolate(torch.from_numpy(values)[None], size=target, mode="bilinear", align_corners=False)[0].numpy()
    assert resized.shape == (3, *target)
    np.testing.assert_allclose(resized, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("count", "side"), [(300, 80), (6000, 400)])  # 6000: more than one chunk of x-sorted boxes
def test_non_maximum_suppression_keeps_torchvisions_boxes_class_by_class(count: int, side: int) -> None:
    from torchvision.ops import batched_nms

    generator = np.random.default_rng(1)
    corners = generator.uniform(0, side, size=(count, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + generator.uniform(4, 30, size=(count, 2)).astype(np.float32)], axis=1)
    scores = (generator.permutation(count) / count).astype(np.float32)  # no ties: one order is right
    labels = generator.integers(0, 3, size=count)

    kept = non_maximum_suppression(boxes, scores, labels, 0.5)

    expected = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.5).numpy()
    assert count / 20 < len(kept) < count * 0.95  # boxes were suppressed and boxes were kept
    assert kept.tolist() == expected.tolist()


def test_a_short_window_is_padded_to_the_tile_with_black_at_the_right_and_bottom() -> None:
    image = np.full((10, 30, 3), 7, dtype=np.uint8)

    pixels = tile_pixels(image, (14, 0, 30, 10), tile=16)

    assert pixels.shape == (16, 16, 3)
    assert (pixels[:10, :16] == 7).all()
    assert not pixels[10:].any()


def test_masks_average_the_windows_probabilities_where_they_overlap() -> None:
    # Two windows of 4 over a width of 6 share columns 2 and 3: the left window is sure of class 0 (0.9), the right one
    # mildly of class 1 (0.6); the mean there (0.65 for class 0) gives class 0.
    left = np.stack([np.full((4, 4), 0.9), np.full((4, 4), 0.1)]).astype(np.float32)
    right = np.stack([np.full((4, 4), 0.4), np.full((4, 4), 0.6)]).astype(np.float32)
    parts = [((0, 0, 4, 4), {"seg/probabilities": left}), ((2, 0, 6, 4), {"seg/probabilities": right})]

    result = merge_windows({"seg": "segmentation"}, parts, 4, 6, input_size=(4, 4), tile=4)

    assert result["seg"]["mask"].tolist() == [[0, 0, 0, 0, 1, 1]] * 4
    assert result["seg"]["mask"].dtype == np.int64


@pytest.mark.parametrize("tile", [None, 64])
def test_boxes_are_cut_to_the_image_and_boxes_wholly_outside_it_dropped(tile: int | None) -> None:
    # A 50 x 40 image (width x height) and a model of 32 x 32: without tiles the input shows the image stretched, with a
    # tile of 64 the one window is the image padded with black to 64 x 64. The first box reaches past the image's left
    # and bottom borders, the second lies wholly right of the image (in the padding, or past the input's border).
    boxes = np.array([[-2.0, 4.0, 10.0, 40.0], [33.0, 10.0, 40.0, 20.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    outputs = {
        "det/boxes": boxes,
        "det/scores": np.array([0.9, 0.8, 0.0], dtype=np.float32),
        "det/labels": np.array([1, 0, -1]),
    }

    result = merge_windows({"det": "detection"}, [((0, 0, 50, 40), outputs)], 40, 50, input_size=(32, 32), tile=tile)

    scale_x, scale_y = (50 / 32, 40 / 32) if tile is None else (2.0, 2.0)
    expected = [[0.0, 4.0 * scale_y, 10.0 * scale_x, 40.0]]  # cut at x = 0 and y = 40 (the image's height)
    np.testing.assert_allclose(result["det"]["boxes"], expected, rtol=1e-6)
    assert result["det"]["scores"].tolist() == pytest.approx([0.9])
    assert result["det"]["labels"].tolist() == [1]


def _points_window(points: list[tuple[float, float]], scores: list[float]) -> dict[str, np.ndarray]:
    """A points head's outputs for one window, padded with a row of label -1; points in the window's input pixels."""
    return {
        "p/points": np.array([*points, (0.0, 0.0)], dtype=np.float32),
        "p/scores": np.array([*scores, 0.01], dtype=np.float32),
        "p/labels": np.array([0] * len(points) + [-1], dtype=np.int64),
    }


def test_tiled_points_seen_by_two_windows_are_reported_once_by_the_window_they_are_central_to() -> None:
    # Windows of 40 at x 0 and 20 over an image 60 wide, input 20 x 20 (half the tile): the overlap 20..40 splits at 30.
    left = _points_window([(5.0, 5.0), (12.5, 10.0), (17.5, 10.0)], [0.9, 0.8, 0.7])  # x 10, 25 and 35 in the image
    right = _points_window([(2.5, 10.0), (7.5, 10.0), (15.0, 5.0)], [0.75, 0.6, 0.5])  # x 25, 35 and 50 in the image
    parts = [((0, 0, 40, 40), left), ((20, 0, 60, 40), right)]

    result = merge_windows({"p": "points"}, parts, 40, 60, input_size=(20, 20), tile=40)["p"]

    # x 25 is the left window's (left of 30), x 35 the right one's: each object once, at its score there
    np.testing.assert_allclose(result["points"], [[10.0, 10.0], [25.0, 20.0], [35.0, 20.0], [50.0, 10.0]])
    np.testing.assert_allclose(result["scores"], [0.9, 0.8, 0.6, 0.5])
    assert result["labels"].tolist() == [0, 0, 0, 0]


def test_untiled_points_are_scaled_to_the_image_and_the_padding_left_out() -> None:
    output = _points_window([(4.0, 2.0), (20.0, 10.0)], [0.9, 0.4])

    result = merge_windows({"p": "points"}, [((0, 0, 60, 30), output)], 30, 60, input_size=(10, 20), tile=None)["p"]

    np.testing.assert_allclose(result["points"], [[12.0, 6.0], [60.0, 30.0]])  # the far border is on the image
    assert result["labels"].tolist() == [0, 0]
    assert result["points"].dtype == np.float32


def _perfectly_detected(
    boxes: torch.Tensor, labels: torch.Tensor, input_size: tuple[int, int], stride: int
) -> dict[str, np.ndarray]:
    """The outputs of a detection head trained to perfection on one input's target boxes [N, 4] (labels [N]; those
    below 0 are not detected): the targets encoded as training encodes them, decoded as prediction decodes them."""
    from torchbricks.bag_of_bricks.object_detection import BoxDecoder, render_box_targets

    cells = (-(-input_size[0] // stride), -(-input_size[1] // stride))
    heat, assigned, weight = render_box_targets(boxes[None], labels[None], num_classes=2, size=cells, stride=stride)
    xs = (torch.arange(cells[1]) + 0.5) * stride
    ys = (torch.arange(cells[0]) + 0.5) * stride
    sides = torch.stack(
        (xs - assigned[..., 0], ys[:, None] - assigned[..., 1], assigned[..., 2] - xs, assigned[..., 3] - ys[:, None]), dim=1
    )
    distances = torch.where(weight[:, None] > 0, sides / stride, torch.full_like(sides, 3.0))
    decoded, scores, decoded_labels = BoxDecoder(stride, max_detections=128)(torch.where(heat >= 1, 9.0, -9.0), distances)
    return {"det/boxes": decoded[0].numpy(), "det/scores": scores[0].numpy(), "det/labels": decoded_labels[0].numpy()}


def _scattered_small_boxes(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Boxes of 1 to 12 px, one near each point of a 24 px grid (so no two centres share a cell of the model)."""
    centres = torch.stack(torch.meshgrid(torch.arange(12, width - 12, 24), torch.arange(12, height - 12, 24), indexing="xy"), -1)
    centres = centres.reshape(-1, 2).float() + (torch.rand(centres.numel() // 2, 2, generator=generator) - 0.5) * 8
    sizes = 1 + torch.rand(len(centres), 2, generator=generator) * 11
    return torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1)


@pytest.mark.parametrize(("tile", "input_size"), [(None, (64, 96)), (None, (128, 96)), (96, (64, 64)), (64, (64, 64))])
def test_small_boxes_read_at_another_size_or_in_overlapping_tiles_come_back_once_at_their_pixels(
    tile: int | None, input_size: tuple[int, int]
) -> None:
    # The round trip of predict: an image read at the model's size (or cut into tiles, each read at it) as the data
    # modules read the training images and their boxes, each input's boxes encoded and decoded by a perfect head, and
    # the windows merged back to the image's pixels. A box in an overlap is found by two tiles, a box cut by a tile's
    # border is found cut by one and whole by another: each is one box, where it is.
    from torchvision import tv_tensors

    from torchbricks._tiled_predictions import image_windows
    from torchbricks.datasets.tiled import crop_sample
    from torchbricks.datasets.transforms import create_transform

    height, width = 200, 300
    boxes = _scattered_small_boxes(height, width, torch.Generator().manual_seed(0))
    labels = torch.arange(len(boxes)) % 2
    image = tv_tensors.Image(torch.zeros(3, height, width, dtype=torch.uint8))
    sample = {
        "image": image,
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
        "labels": labels,
    }
    transform = create_transform(input_size, boxes=True, evaluation=True)
    parts = []
    for window in image_windows(height, width, tile, overlap=0.25):
        cut = sample if tile is None else crop_sample(sample, window, tile)
        seen = transform(cut)
        parts.append((window, _perfectly_detected(seen["boxes"].as_subclass(torch.Tensor), seen["labels"], input_size, 4)))

    result = merge_windows({"det": "detection"}, parts, height, width, input_size=input_size, tile=tile)["det"]

    order = np.lexsort((result["boxes"][:, 0], result["boxes"][:, 1]))
    expected = np.lexsort((boxes[:, 0].numpy(), boxes[:, 1].numpy()))
    assert len(result["boxes"]) == len(boxes)
    np.testing.assert_allclose(result["boxes"][order], boxes[expected].numpy(), atol=1e-3, rtol=0)
    assert result["labels"][order].tolist() == labels[expected].tolist()


@pytest.mark.parametrize("cut_part_score", [0.8, 0.9])
def test_the_cut_part_of_a_box_does_not_suppress_the_whole_box_another_window_found(cut_part_score: float) -> None:
    # Windows [0, 40) and [30, 70) of a 70 x 40 image and an object at x 32 to 42: the first window finds its part
    # 32-40 against its inner border, the second finds it whole. Their IoU, 0.8, is above the threshold: the part,
    # scoring as high or higher, suppressed the whole box, and was reported in its place.
    def window(box: list[float], score: float) -> dict[str, np.ndarray]:
        return {
            "det/boxes": np.array([box], dtype=np.float32),
            "det/scores": np.array([score], dtype=np.float32),
            "det/labels": np.array([0]),
        }

    parts = [
        ((0, 0, 40, 40), window([32.0, 5.0, 40.0, 15.0], cut_part_score)),
        ((30, 0, 70, 40), window([2.0, 5.0, 12.0, 15.0], 0.8)),
    ]

    result = merge_windows({"det": "detection"}, parts, 40, 70, input_size=(40, 40), tile=40)["det"]

    assert result["boxes"].tolist() == [[32.0, 5.0, 42.0, 15.0]]


# The merge before 2026-12-07, kept as the reference of the bounded one: it compared every cut part with every kept
# box in one [parts, others] array (128 GiB for 625 windows of 300 boxes) and swept every box along x over the whole
# image's height. The bounded merge must keep exactly the boxes this kept.
def _reference_without_cut_parts(
    kept: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, cut: np.ndarray
) -> np.ndarray:
    if not cut[kept].any():
        return kept
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    parts, others = kept[cut[kept]], kept
    overlap = np.clip(
        np.minimum(boxes[parts, None, 2:], boxes[None, others, 2:]) - np.maximum(boxes[parts, None, :2], boxes[None, others, :2]),
        0,
        None,
    ).prod(axis=2)
    better = (
        (scores[others][None] > scores[parts][:, None])
        | ((scores[others][None] == scores[parts][:, None]) & (area[others][None] > area[parts][:, None]))
        | ~cut[others][None]
    )
    inside = overlap >= 0.7 * np.maximum(area[parts], 1e-6)[:, None]
    dropped = parts[((labels[others][None] == labels[parts][:, None]) & better & inside).any(axis=1)]
    return kept[~np.isin(kept, dropped)]


def _reference_non_maximum_suppression(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float
) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    better, worse = _reference_suppressing_pairs(boxes, labels, rank, iou_threshold)
    grouped = np.lexsort((better, rank[worse]))
    better, worse = better[grouped], worse[grouped]
    starts = np.searchsorted(rank[worse], np.arange(len(order) + 1))
    kept = np.ones(len(order), dtype=bool)
    for position in np.flatnonzero(starts[1:] > starts[:-1]):
        kept[order[position]] = not kept[better[starts[position] : starts[position + 1]]].any()
    return order[kept[order]]


def _reference_suppressing_pairs(
    boxes: np.ndarray, labels: np.ndarray, rank: np.ndarray, iou_threshold: float, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    by_x = np.argsort(boxes[:, 0], kind="stable")
    x_min = boxes[by_x, 0]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    better, worse = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(by_x), chunk):
        firsts = by_x[start : start + chunk]
        ends = np.searchsorted(x_min, boxes[firsts, 2], side="left")
        counts = np.maximum(ends - np.arange(start, start + len(firsts)) - 1, 0)
        one = np.repeat(firsts, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        other = by_x[np.repeat(np.arange(start, start + len(firsts)) + 1, counts) + offsets]
        same = labels[one] == labels[other]
        one, other = one[same], other[same]
        inner = np.clip(np.minimum(boxes[one, 2:], boxes[other, 2:]) - np.maximum(boxes[one, :2], boxes[other, :2]), 0, None)
        intersection = inner[:, 0] * inner[:, 1]
        overlapping = intersection / (area[one] + area[other] - intersection) > iou_threshold
        one, other = one[overlapping], other[overlapping]
        first_better = rank[one] < rank[other]
        better.append(np.where(first_better, one, other))
        worse.append(np.where(first_better, other, one))
    return np.concatenate(better), np.concatenate(worse)


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, scores, labels and cut flags with many ties: corners on a coarse grid (equal areas, shared borders, equal
    boxes), scores from a few values, some boxes far larger than the rest, some without height or width."""
    generator = np.random.default_rng(seed)
    count = int(generator.integers(2, 400))
    side = float(generator.choice([20, 60, 300]))
    step = float(generator.choice([0.5, 1.0, 4.0]))
    corners = np.round(generator.uniform(0, side, (count, 2)) / step) * step
    sizes = np.round(generator.uniform(0, side / 4, (count, 2)) / step) * step
    large = generator.random(count) < 0.05
    sizes[large] *= 6
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    duplicated = generator.integers(0, count, count // 5)
    boxes[duplicated[1:]] = boxes[duplicated[:-1]]
    scores = generator.choice(np.array([0.3, 0.5, 0.5, 0.7, 0.9], dtype=np.float32), count)
    labels = generator.integers(0, int(generator.integers(1, 4)), count)
    cut = generator.random(count) < generator.uniform(0.1, 0.9)
    return boxes, scores, labels, cut


@pytest.mark.parametrize("pairs_per_chunk", [5, 1 << 19])  # 5: a few pairs at a time, many chunks
@pytest.mark.parametrize("seed", range(40))
def test_cut_parts_are_left_out_as_by_comparing_every_part_with_every_box(
    seed: int, pairs_per_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchbricks import _tiled_predictions

    monkeypatch.setattr(_tiled_predictions, "PAIRS_PER_CHUNK", pairs_per_chunk)
    boxes, scores, labels, cut = _random_case(seed)
    generator = np.random.default_rng(seed + 1000)
    kept = generator.permutation(len(boxes))[: int(generator.integers(1, len(boxes) + 1))]

    result = _tiled_predictions.without_cut_parts(kept, boxes, scores, labels, cut)

    expected = _reference_without_cut_parts(kept, boxes, scores, labels, cut)
    assert result.tolist() == expected.tolist()


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # boxes without area: IoU 0 / 0, as before
@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.9, -0.1])
@pytest.mark.parametrize("pairs_per_chunk", [5, 1 << 19])
@pytest.mark.parametrize("seed", range(20))
def test_suppression_keeps_the_boxes_of_sweeping_every_box_along_x(
    seed: int, pairs_per_chunk: int, iou_threshold: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchbricks import _tiled_predictions

    monkeypatch.setattr(_tiled_predictions, "PAIRS_PER_CHUNK", pairs_per_chunk)
    boxes, scores, labels, _ = _random_case(seed)

    result = _tiled_predictions.non_maximum_suppression(boxes, scores, labels, iou_threshold)

    expected = _reference_non_maximum_suppression(boxes, scores, labels, iou_threshold)
    assert result.tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(10))
def test_meeting_pairs_are_every_pair_of_boxes_with_a_common_area_once(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchbricks import _tiled_predictions

    monkeypatch.setattr(_tiled_predictions, "PAIRS_PER_CHUNK", 7)
    boxes = _random_case(seed)[0]

    chunks = list(_tiled_predictions._meeting_pairs(boxes))

    pairs = [tuple(sorted(pair)) for one, other in chunks for pair in zip(one.tolist(), other.tolist(), strict=True)]
    assert len(pairs) == len(set(pairs))  # each pair once
    meeting = {
        (first, second)
        for first in range(len(boxes))
        for second in range(first + 1, len(boxes))
        if min(boxes[first, 2], boxes[second, 2]) > max(boxes[first, 0], boxes[second, 0])
        and min(boxes[first, 3], boxes[second, 3]) > max(boxes[first, 1], boxes[second, 1])
    }
    assert meeting <= set(pairs)


def _many_windows(size: int, tile: int, boxes_per_window: int) -> list[tuple[tuple[int, int, int, int], dict[str, np.ndarray]]]:
    """Tiles of a large image, each with a detector's outputs for the objects it shows (cut by its borders)."""
    from torchbricks._tiled_predictions import image_windows

    generator = np.random.default_rng(0)
    count = boxes_per_window * size * size // (tile + 27) ** 2
    centres = generator.uniform(0, size, (count, 2))
    objects = np.concatenate([centres - 12, centres + generator.uniform(-6, 24, (count, 2)) + 12], axis=1).clip(0, size)
    labels, quality = generator.integers(0, 3, count), generator.uniform(0.3, 1.0, count)
    parts = []
    for window in image_windows(size, size, tile, 0.2):
        x_min, y_min, x_max, y_max = window
        shown = (objects[:, 0] < x_max) & (objects[:, 2] > x_min) & (objects[:, 1] < y_max) & (objects[:, 3] > y_min)
        seen = (objects[shown] - np.array([x_min, y_min, x_min, y_min])).clip(0, tile).astype(np.float32)
        parts.append((window, {"det/boxes": seen, "det/scores": quality[shown].astype(np.float32), "det/labels": labels[shown]}))
    return parts


def test_merging_the_boxes_of_many_windows_takes_memory_bounded_by_the_chunk_not_by_the_boxes_squared() -> None:
    import tracemalloc

    # 1000 x 1000 px in tiles of 100: 144 windows, about 29,000 boxes, of which a third reach an inner window border.
    # Comparing every cut part with every kept box at once took 14 GiB here (128 GiB for 625 windows of 300 boxes).
    parts = _many_windows(1000, 100, 200)
    boxes = sum(len(output["det/boxes"]) for _, output in parts)

    tracemalloc.start()
    try:
        result = merge_windows({"det": "detection"}, parts, 1000, 1000, input_size=(100, 100), tile=100)["det"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert boxes > 25_000
    assert 0 < len(result["boxes"]) < boxes
    assert peak < 200 * 2**20


def _merged_masks_before(parts: list, height: int, width: int, tile: int | None) -> np.ndarray:
    """The tiled mask as merge_windows made it until 2026-12-07 (every window's probabilities kept, then summed into a
    float32 [K, H, W] beside a float32 count [H, W]): the reference the bounded merge must equal pixel for pixel."""
    num_classes = parts[0][1]["seg/probabilities"].shape[0]
    total = np.zeros((num_classes, height, width), dtype=np.float32)
    count = np.zeros((height, width), dtype=np.float32)
    for window, output in parts:
        x_min, y_min, x_max, y_max = window
        canvas_width, canvas_height = (tile, tile) if tile is not None else (x_max - x_min, y_max - y_min)
        resized = resize_bilinear(output["seg/probabilities"].astype(np.float32), canvas_height, canvas_width)
        total[:, y_min:y_max, x_min:x_max] += resized[:, : y_max - y_min, : x_max - x_min]
        count[y_min:y_max, x_min:x_max] += 1
    return (total / count).argmax(axis=0).astype(np.int64)


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap", "input_side", "classes"),
    [
        (37, 53, 16, 0.2, 16, 3),  # odd sizes, windows at uneven steps
        (23, 101, 32, 0.5, 24, 5),  # an image side shorter than the tile: padded windows
        (40, 40, 10, 0.95, 7, 4),  # 0.95: up to 100 windows on a pixel
        (61, 29, 12, 0.0, 15, 2),  # no overlap
        (5, 5, 8, 0.3, 8, 6),  # one padded window
    ],
)
@pytest.mark.parametrize("strip_bytes", [1, 1000, 1 << 24])  # a row, some rows, the whole mask at a time
@pytest.mark.parametrize("order", ["rows", "reversed"])  # windows row by row (tile_windows'), or last row first
def test_tiled_masks_are_the_masks_the_merge_gave_when_it_kept_every_window(
    monkeypatch: pytest.MonkeyPatch,
    order: str,
    height: int,
    width: int,
    tile: int,
    overlap: float,
    input_side: int,
    classes: int,
    strip_bytes: int,
) -> None:
    from torchbricks import _tiled_predictions
    from torchbricks._tiled_predictions import WindowMerger, image_windows

    monkeypatch.setattr(_tiled_predictions, "MASK_STRIP_BYTES", strip_bytes)
    generator = np.random.default_rng(height * width + classes)
    parts = []
    windows = image_windows(height, width, tile, overlap)
    for window in windows if order == "rows" else windows[::-1]:
        # eighths: many classes tie, before and after averaging, so the first of equal classes is tested too
        probabilities = generator.integers(0, 9, (classes, input_side, input_side)).astype(np.float32) / 8
        boxes = {"det/boxes": np.array([[1, 1, 5, 5]], np.float32), "det/scores": np.array([0.9], np.float32)}
        parts.append((window, {"seg/probabilities": probabilities, **boxes, "det/labels": np.array([0])}))
    heads = {"det": "detection", "seg": "segmentation"}  # multitask: the boxes are kept beside the summed masks

    merged = merge_windows(heads, parts, height, width, input_size=(input_side, input_side), tile=tile)  # rows finished
    merger = WindowMerger(heads, height, width, input_size=(input_side, input_side), tile=tile)  # ... at the end
    for window, output in parts:
        merger.add(window, output)
    unplanned = merger.result()

    expected = _merged_masks_before(parts, height, width, tile)
    assert len(np.unique(expected)) > 1
    for result in (merged, unplanned):
        assert result["seg"]["mask"].dtype == np.int64
        np.testing.assert_array_equal(result["seg"]["mask"], expected)
        assert len(result["det"]["boxes"]) >= 1


def test_masks_of_several_windows_without_a_tile_are_each_window_resized_to_itself() -> None:
    generator = np.random.default_rng(3)
    parts = [
        (window, {"seg/probabilities": generator.random((3, 6, 6), dtype=np.float32)})
        for window in [(0, 0, 9, 11), (4, 0, 13, 11), (0, 5, 13, 11)]
    ]

    result = merge_windows({"seg": "segmentation"}, parts, 11, 13, input_size=(6, 6), tile=None)

    np.testing.assert_array_equal(result["seg"]["mask"], _merged_masks_before(parts, 11, 13, None))


def test_merging_a_tiled_mask_as_its_windows_come_holds_the_open_rows_sums_not_every_windows_probabilities() -> None:
    import tracemalloc

    from torchbricks._tiled_predictions import WindowMerger, image_windows

    # 1600 x 1600 px in tiles of 64 at overlap 0.2: 1024 windows, each 3 classes at a model input of 64 px (48 KiB): 48 MiB
    # of probabilities, which the merge kept until the last window. The image's sums would be 29 MiB, its int64 mask
    # is 19.5 MiB; the rows still open (about two tiles) are 2.3 MiB.
    windows = image_windows(1600, 1600, 64, 0.2)
    pool = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)

    tracemalloc.start()
    try:
        merger = WindowMerger({"seg": "segmentation"}, 1600, 1600, input_size=(64, 64), tile=64, windows=windows)
        for index, window in enumerate(windows):
            merger.add(window, {"seg/probabilities": pool[index % len(pool)].copy()})  # a new array per window
        mask = merger.result()["seg"]["mask"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert len(windows) == 1024
    assert mask.shape == (1600, 1600)
    assert peak < 35 * 2**20


def test_a_window_other_than_the_planned_one_and_a_mask_before_the_last_window_are_refused() -> None:
    from torchbricks._tiled_predictions import WindowMerger

    merger = WindowMerger({"seg": "segmentation"}, 8, 8, input_size=(4, 4), tile=4, windows=[(0, 0, 4, 4), (4, 0, 8, 4)])

    with pytest.raises(BrickError, match=r"window \(4, 4, 8, 8\) came where \(0, 0, 4, 4\) was planned"):
        merger.add((4, 4, 8, 8), {"seg/probabilities": np.zeros((2, 4, 4), np.float32)})
    merger.add((0, 0, 4, 4), {"seg/probabilities": np.zeros((2, 4, 4), np.float32)})
    with pytest.raises(BrickError, match="asked after 1 windows of the 2 planned"):
        merger.result()  # counted as two windows, the mask would average over a window never added
