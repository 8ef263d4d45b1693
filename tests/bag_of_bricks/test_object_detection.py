"""Box detection: targets, losses, decoding with NMS and the metric, each against an independent reference."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchmetrics.detection import MeanAveragePrecision

from torchbricks.bag_of_bricks.object_detection import (
    MIN_DISTANCE,
    BoxDecoder,
    BoxDetectionHead,
    BoxDetectionLoss,
    BoxMeanAveragePrecision,
    BrickVisualizeBoxes,
    create_bricks_object_detection,
    create_object_detection_head,
    generalized_box_iou_pairs,
    matrix_nms,
    render_box_targets,
)
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import BrickError
from torchbricks.tags import Stage

BOXES = torch.tensor(
    [[[4.0, 8.0, 20.0, 16.0], [17.0, 18.0, 31.0, 30.0], [0, 0, 0, 0]], [[1.0, 2.0, 9.0, 29.0], [0, 0, 0, 0], [0, 0, 0, 0]]]
)
LABELS = torch.tensor([[0, 1, -1], [1, -1, -1]])


def _tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
    )


def _perfect_prediction(
    boxes: torch.Tensor, labels: torch.Tensor, stride: int, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmap logits and side distances that describe the targets exactly."""
    heat, assigned, weight = render_box_targets(boxes, labels, num_classes=2, size=size, stride=stride)
    xs = (torch.arange(size[1]) + 0.5) * stride
    ys = (torch.arange(size[0]) + 0.5) * stride
    distances = (
        torch.stack(
            (xs - assigned[..., 0], ys[:, None] - assigned[..., 1], assigned[..., 2] - xs, assigned[..., 3] - ys[:, None]), dim=1
        )
        / stride
    )
    distances = torch.where(weight[:, None] > 0, distances, torch.ones_like(distances))
    return torch.logit(heat.clamp(1e-4, 1 - 1e-4)), distances


def test_generalized_iou_matches_torchvision() -> None:
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(50, 2, 2, generator=generator) * 20
    boxes = torch.cat((corners.amin(dim=1), corners.amax(dim=1)), dim=1)
    others = boxes.roll(1, dims=0)

    iou, giou = generalized_box_iou_pairs(boxes, others)

    assert torch.allclose(iou, torchvision.ops.box_iou(boxes, others).diagonal(), atol=1e-5)
    assert torch.allclose(giou, torchvision.ops.generalized_box_iou(boxes, others).diagonal(), atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_matrix_nms_keeps_what_torchvision_batched_nms_keeps(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    count = 40
    centers = torch.rand(count, 2, generator=generator) * 30
    sizes = torch.rand(count, 2, generator=generator) * 10 + 4
    boxes = torch.cat((centers - sizes / 2, centers + sizes / 2), dim=1)
    scores, order = torch.rand(count, generator=generator).sort(descending=True)
    boxes = boxes[order]
    labels = torch.randint(0, 2, (count,), generator=generator)

    keep = matrix_nms(boxes[None], scores[None], labels[None], iou_threshold=0.4, iterations=count)[0]

    expected = torchvision.ops.batched_nms(boxes, scores, labels, iou_threshold=0.4)
    assert sorted(torch.nonzero(keep).flatten().tolist()) == sorted(expected.tolist())
    assert 0 < len(expected) < count  # the case suppresses some boxes and keeps others


def test_heatmap_targets_peak_at_each_centre_cell_and_cells_inside_a_box_regress_it() -> None:
    heat, assigned, weight = render_box_targets(BOXES, LABELS, num_classes=2, size=(8, 8), stride=4)

    assert heat.shape == (2, 2, 8, 8)
    # Centres (12, 12) -> cell (3, 3) of class 0; (24, 24) -> cell (6, 6) of class 1; (5, 15.5) -> cell (1, 3).
    assert heat[0, 0, 3, 3] == 1.0
    assert heat[0, 1, 6, 6] == 1.0
    assert heat[1, 1, 3, 1] == 1.0
    assert int((heat == 1.0).sum()) == 3
    assert heat[0, 0, 3, 4] < 1.0  # the Gaussian falls off
    assert assigned[0, 3, 3].tolist() == BOXES[0, 0].tolist()
    assert assigned[0, 6, 6].tolist() == BOXES[0, 1].tolist()
    assert weight[0, 0, 7] == 0  # cell centre (30, 2) lies in no box
    assert weight[1, 3, 1] == 1.0


def test_decoding_a_perfect_prediction_gives_back_the_boxes() -> None:
    logits, distances = _perfect_prediction(BOXES, LABELS, stride=4, size=(8, 8))

    boxes, scores, labels = BoxDecoder(stride=4, max_detections=4, score_threshold=0.5)(logits, distances)

    assert labels.tolist() == [[0, 1, -1, -1], [1, -1, -1, -1]]
    assert torch.allclose(boxes[0, :2], BOXES[0, :2], atol=1e-4)
    assert torch.allclose(boxes[1, :1], BOXES[1, :1], atol=1e-4)
    assert (boxes[labels < 0] == 0).all()
    assert (scores[labels >= 0] > 0.99).all()


def _pass_through_head(num_classes: int) -> BoxDetectionHead:
    """A `BoxDetectionHead` reading features [B, K + 4, h, w]: the heatmap logits, then what its distances are the
    activation of (`_pass_through_features`), so it outputs what a head trained to perfection would."""
    head = BoxDetectionHead(in_channels=num_classes + 4, num_classes=num_classes, hidden_channels=num_classes + 4)
    head.shared = nn.Identity()
    with torch.no_grad():
        for layer, channels in ((head.heatmap, range(num_classes)), (head.distances, range(num_classes, num_classes + 4))):
            layer.weight.zero_()
            layer.bias.zero_()
            for row, channel in enumerate(channels):
                layer.weight[row, channel] = 1.0
    return head.eval()


def _pass_through_features(heatmap_logits: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """The features that make `_pass_through_head` output `heatmap_logits` and `distances`."""
    raw = distances.double() - MIN_DISTANCE
    assert (raw > 0).all(), "a target distance lies outside what the head can predict"
    return torch.cat((heatmap_logits, (raw + torch.log(-torch.expm1(-raw))).float()), dim=1)  # softplus's inverse


def _head_giving(heatmap_logits: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """What a `BoxDetectionHead` trained to perfection outputs as distances: `distances` through the head's own
    activation."""
    with torch.no_grad():
        _, predicted = _pass_through_head(heatmap_logits.shape[1])(_pass_through_features(heatmap_logits, distances))
    return predicted


def _random_boxes(count: int, height: int, width: int, stride: int, generator: torch.Generator) -> torch.Tensor:
    """One box per image [count, 1, 4] inside the image, from a pixel to three strides a side, anywhere."""
    sizes = (0.1 + torch.rand(count, 2, generator=generator) * 3 * stride).minimum(torch.tensor([width, height]) - 0.01)
    room = torch.tensor([width, height]) - sizes
    corners = torch.rand(count, 2, generator=generator) * room
    return torch.cat((corners, corners + sizes), dim=1)[:, None, :]


@pytest.mark.parametrize("stride", [2, 4, 8, 16, 32])  # every stride a packaged backbone's finest features have
@pytest.mark.parametrize("size", [(64, 64), (50, 70), (33, 47)])  # multiples of the stride and not
def test_a_box_of_any_size_and_position_is_decoded_exactly_from_its_encoded_target(stride: int, size: tuple[int, int]) -> None:
    # Boxes smaller than the stride came out off-centre, by up to the half-stride: the decoder read them at the cell
    # holding their centre, which no box target reached unless the box covered that cell's centre, and a head with
    # positive side distances could only give boxes covering it (a 2 px box 1.5 px left of it: 10.5 px off at stride 8).
    height, width = size
    generator = torch.Generator().manual_seed(stride * 1000 + height)
    boxes = _random_boxes(200, height, width, stride, generator)
    labels = torch.zeros(200, 1, dtype=torch.int64)
    cells = (math.ceil(height / stride), math.ceil(width / stride))  # the backbones' feature size (see below)
    heat, assigned, weight = render_box_targets(boxes, labels, num_classes=1, size=cells, stride=stride)
    xs = (torch.arange(cells[1]) + 0.5) * stride
    ys = (torch.arange(cells[0]) + 0.5) * stride
    sides = torch.stack(
        (xs - assigned[..., 0], ys[:, None] - assigned[..., 1], assigned[..., 2] - xs, assigned[..., 3] - ys[:, None]), dim=1
    )
    untrained = torch.full_like(sides, 3.0)  # a cell no box target reaches predicts whatever it learnt elsewhere
    distances = torch.where(weight[:, None] > 0, sides.double() / stride, untrained).float()
    logits = torch.where(heat >= 1, 9.0, -9.0)

    decoded, _, decoded_labels = BoxDecoder(stride=stride, max_detections=1)(logits, _head_giving(logits, distances))

    assert (decoded_labels == 0).all()
    torch.testing.assert_close(decoded, boxes, atol=1e-3, rtol=0)


@pytest.mark.parametrize("size", [(64, 64), (50, 70), (33, 47)])
def test_the_packaged_backbones_finest_cells_cover_the_input_from_its_top_left_corner(size: tuple[int, int]) -> None:
    # The box targets put cell i on pixels [i * stride, (i + 1) * stride): the feature map must have ceil(side /
    # stride) cells, or a box's centre cell would be cut off at the right or bottom (and clamped to another cell).
    from torchbricks.bag_of_bricks.compact_cnn import create_task_backbone

    backbone = create_task_backbone("compact_cnn", num_scales=5)
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, *size))
    maps = features if isinstance(features, (list, tuple)) else list(features.values())
    assert [tuple(map.shape[-2:]) for map in maps] == [
        (math.ceil(size[0] / stride), math.ceil(size[1] / stride)) for stride in backbone.strides
    ]


def test_each_small_box_is_regressed_at_the_cell_holding_its_centre_even_inside_a_larger_box() -> None:
    # A 3 px box centred 1 px into cell (2, 2) of stride 8 covers no cell centre; a small box whose centre cell lies
    # inside a larger box was regressed to the larger box there, and its peak decoded it.
    boxes = torch.tensor([[[16.5, 16.5, 19.5, 19.5], [0.0, 0.0, 0.0, 0.0]], [[41.0, 41.0, 43.0, 43.0], [0.0, 0.0, 64.0, 64.0]]])
    labels = torch.tensor([[0, -1], [0, 1]])

    _, assigned, weight = render_box_targets(boxes, labels, num_classes=2, size=(8, 8), stride=8)

    assert weight[0, 2, 2] == 1.0
    assert assigned[0, 2, 2].tolist() == boxes[0, 0].tolist()
    assert weight[1, 5, 5] == 1.0
    assert assigned[1, 5, 5].tolist() == boxes[1, 0].tolist()


def test_an_ignored_box_smaller_than_a_cell_is_not_learnt_as_background_at_the_cell_holding_its_centre() -> None:
    # A 3 px object of class 1 that a tile's border cut (label -2 - 1), centred 1 px into cell (2, 2) of stride 8: it
    # covers no cell centre, so the cell where a model finds it was learnt as background, and the heatmap loss grew
    # as the model learnt to find small objects.
    from torchbricks.bag_of_bricks._box_geometry import ignored_cells

    boxes, labels = torch.tensor([[[15.5, 15.5, 18.5, 18.5]]]), torch.tensor([[-2 - 1]])

    mask = ignored_cells(boxes, labels, num_classes=2, size=(4, 4), stride=8)

    assert mask[0, 1].nonzero().tolist() == [[2, 2]]
    assert mask[0, 0].sum() == 0


def test_weights_saved_before_the_heads_lowest_distance_load_with_positive_distances_as_they_were_trained() -> None:
    torch.manual_seed(0)
    head = BoxDetectionHead(in_channels=4, num_classes=2, hidden_channels=4)
    older = {key: value for key, value in head.state_dict().items() if key != "min_distance"}
    features = torch.rand(1, 4, 3, 3)

    head.load_state_dict(older)
    _, distances = head(features)

    assert head.min_distance.item() == 0.0
    assert (distances > 0).all()
    head.load_state_dict(BoxDetectionHead(in_channels=4, num_classes=2, hidden_channels=4).state_dict())
    assert head.min_distance.item() == MIN_DISTANCE


def test_a_box_whose_sides_crossed_is_decoded_as_its_middle_not_a_reversed_box() -> None:
    heatmap = torch.full((1, 1, 4, 4), -9.0)
    heatmap[0, 0, 1, 2] = 9.0
    distances = torch.full((1, 4, 4, 4), MIN_DISTANCE + 0.1)  # each side 0.4 cells past the centre

    boxes, _, _ = BoxDecoder(stride=8, max_detections=1)(heatmap, distances)

    assert boxes[0, 0].tolist() == [20.0, 12.0, 20.0, 12.0]


def test_boxes_decoded_under_bfloat16_mixed_precision_are_the_pixels_and_scores_of_the_head_outputs() -> None:
    # A head under precision=bf16-mixed gives bfloat16 maps; decoded in bfloat16, a coordinate near 1000 px was a
    # multiple of 4 and a score near 1 a multiple of 1/256, so validation and test measured rounded boxes.
    logits = torch.full((1, 1, 256, 256), -9.0, dtype=torch.bfloat16)  # 1024 px at stride 4
    logits[0, 0, 201, 250] = 4.0
    distances = torch.full((1, 4, 256, 256), 1.0, dtype=torch.bfloat16)
    distances[0, :, 201, 250] = torch.tensor([3.3, 2.7, 5.1, 1.9], dtype=torch.bfloat16)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        boxes, scores, labels = BoxDecoder(stride=4, max_detections=2)(logits, distances)

    sides = distances[0, :, 201, 250].double() * 4
    centre_x, centre_y = (250 + 0.5) * 4, (201 + 0.5) * 4
    expected = torch.stack([centre_x - sides[0], centre_y - sides[1], centre_x + sides[2], centre_y + sides[3]])
    assert labels[0, 0].item() == 0
    torch.testing.assert_close(boxes[0, 0].double(), expected, atol=1e-4, rtol=0)
    assert scores[0, 0].item() == pytest.approx(1 / (1 + math.exp(-4.0)), abs=1e-6)


def test_loss_is_small_for_a_perfect_prediction_and_large_for_a_wrong_one() -> None:
    loss = BoxDetectionLoss(num_classes=2, stride=4)
    logits, distances = _perfect_prediction(BOXES, LABELS, stride=4, size=(8, 8))

    heat_good, box_good = loss(logits, distances, BOXES, LABELS)
    heat_bad, box_bad = loss(-logits, distances * 3, BOXES, LABELS)

    assert heat_good < 0.05
    assert box_good < 1e-4
    assert heat_bad > 100 * heat_good
    assert box_bad > 0.5


def test_the_box_loss_of_a_perfect_prediction_is_zero_under_bfloat16_mixed_precision() -> None:
    # Boxes near 1000 px made from bfloat16 distances were rounded to multiples of 4 px: the GIoU loss of a perfect
    # prediction was 0.43, which training followed and the epoch's loss_box logged.
    boxes = torch.tensor([[[900.0, 800.0, 916.0, 812.0], [500.0, 300.0, 530.0, 340.0]]])
    labels = torch.tensor([[0, 1]])
    logits, distances = _perfect_prediction(boxes, labels, stride=4, size=(256, 256))
    assert torch.equal(distances.bfloat16().float(), distances)  # the head's bfloat16 output can be exact

    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, box_loss = BoxDetectionLoss(num_classes=2, stride=4)(logits.bfloat16(), distances.bfloat16(), boxes, labels)

    assert box_loss.item() == pytest.approx(0.0, abs=1e-4)


def test_loss_of_a_batch_without_boxes_is_the_loss_of_padding_alone() -> None:
    # Tiles of a large image are often empty; a batch of them must train like a batch padded with label -1.
    loss = BoxDetectionLoss(num_classes=2, stride=4)
    logits, distances = torch.randn(2, 2, 8, 8), torch.rand(2, 4, 8, 8)

    heat_empty, box_empty = loss(logits, distances, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.int64))
    heat_padded, box_padded = loss(logits, distances, torch.zeros(2, 1, 4), torch.full((2, 1), -1))

    assert torch.equal(heat_empty, heat_padded)
    assert box_empty.item() == box_padded.item() == 0.0


def test_mean_average_precision_equals_torchmetrics_fed_with_lists() -> None:
    generator = torch.Generator().manual_seed(0)
    predicted = BOXES + torch.rand(BOXES.shape, generator=generator) * 3
    scores = torch.tensor([[0.9, 0.6, 0.0], [0.7, 0.0, 0.0]])
    predicted_labels = torch.tensor([[0, 0, -1], [1, -1, -1]])  # the second box has the wrong class
    metric = BoxMeanAveragePrecision()
    reference = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")

    metric.update(predicted, scores, predicted_labels, BOXES, LABELS)
    reference.update(
        [
            {"boxes": predicted[0, :2], "scores": scores[0, :2], "labels": predicted_labels[0, :2]},
            {"boxes": predicted[1, :1], "scores": scores[1, :1], "labels": predicted_labels[1, :1]},
        ],
        [{"boxes": BOXES[0, :2], "labels": LABELS[0, :2]}, {"boxes": BOXES[1, :1], "labels": LABELS[1, :1]}],
    )
    values, expected = metric.compute(), reference.compute()

    assert sorted(values) == ["map", "map_50", "map_75", "mar_100", "per_class"]
    for name in metric.reported:
        assert values[name].item() == pytest.approx(expected[name].item())
    assert 0 < values["map_50"].item() < 1


def test_box_drawing_skips_weak_and_padded_boxes() -> None:
    brick = BrickVisualizeBoxes("image", "boxes", "labels", "drawn", scores="scores", class_names=["cat", "dog"], min_score=0.5)
    named = {
        "image": torch.zeros(1, 3, 32, 32),
        "boxes": torch.tensor([[[2.0, 14, 12, 30], [18, 14, 30, 30], [0, 0, 5, 5]]]),
        "labels": torch.tensor([[0, 1, -1]]),
        "scores": torch.tensor([[0.9, 0.2, 0.0]]),
    }

    drawn = np.asarray(brick(named)["drawn"][0])

    assert drawn[20, 2].tolist() == [230, 25, 75]  # the confident box's left edge, in class 0's colour
    assert drawn[20, 18].tolist() == [0, 0, 0]  # the weak box is not drawn
    assert drawn[2:4, 2:4].sum() > 0  # the label ("cat 0.90") is written above the confident box, clipped at the top


def test_head_factory_nests_under_any_name_with_relative_names() -> None:
    model = BrickCollection(
        {"cars": create_object_detection_head(2, 8, "features", stride=4, target_boxes_name="boxes", target_labels_name="labels")}
    )

    outputs = model({"features": torch.rand(2, 8, 8, 8), "boxes": BOXES, "labels": LABELS}, tags=Stage.TRAIN)

    assert {"cars/boxes", "cars/scores", "cars/labels", "cars/loss_heatmap", "cars/loss_box"} <= set(outputs)
    assert sorted(model.summarize(reset=True)) == ["cars/map", "cars/map_50", "cars/map_75", "cars/mar_100", "cars/per_class"]


@pytest.mark.slow
def test_detection_collection_learns_a_box_and_draws_it() -> None:
    torch.manual_seed(0)
    model = create_bricks_object_detection(2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=16, class_names=["a", "b"])
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(60):
        images = 0.1 * torch.rand(4, 3, 32, 32, generator=generator)
        corner = torch.randint(0, 16, (4, 2), generator=generator).float()
        boxes = torch.cat((corner, corner + 14), dim=1)[:, None]
        labels = torch.randint(0, 2, (4, 1), generator=generator)
        for image in range(4):
            x, y = corner[image].long().tolist()
            images[image, labels[image, 0], y : y + 14, x : x + 14] = 1.0  # class 0 red, class 1 green
        outputs = model({"raw": images, "target_boxes": boxes, "target_labels": labels}, tags=Stage.TRAIN)
        loss = sum(model.extract_losses(outputs).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())

    assert sum(history[-5:]) < 0.5 * sum(history[:5])
    model.eval()
    with torch.no_grad():
        drawn = model({"raw": images}, tags=Stage.INFERENCE)["head/visualization"]
    assert len(drawn) == 4
    assert drawn[0].size == (32, 32)


@pytest.mark.slow
def test_export_stage_runs_in_onnxruntime_as_in_pytorch(tmp_path: Path) -> None:
    import onnxruntime

    from torchbricks.brick_collection_utils import export_bricks_as_onnx

    torch.manual_seed(0)
    model = create_bricks_object_detection(2, backbone=_tiny_cnn(), num_scales=2, hidden_channels=8, max_detections=10).eval()
    with torch.no_grad():
        model["head"]["detect"].model.heatmap.bias.fill_(0.0)  # scores spread around 0.5: every kept box is compared
    path = tmp_path / "model.onnx"
    export_bricks_as_onnx(
        path_onnx=path, brick_collection=model, named_inputs={"raw": torch.rand(2, 3, 32, 32)}, dynamic_batch_size=True
    )
    images = torch.rand(3, 3, 32, 32)

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_outputs()]
    actual = dict(zip(names, session.run(None, {"raw": images.numpy()}), strict=True))
    with torch.no_grad():
        expected = model(named_inputs={"raw": images}, tags=Stage.EXPORT)

    assert {"head/boxes", "head/scores", "head/labels"} <= set(actual)
    assert (actual["head/labels"] >= 0).sum() > 3
    for name, value in actual.items():
        assert np.allclose(value, expected[name].numpy(), atol=1e-4), name


@pytest.mark.slow
def test_the_exported_head_and_decoder_give_small_boxes_at_sub_stride_offsets_as_pytorch_does(tmp_path: Path) -> None:
    import onnxruntime

    from torchbricks.brick_collection_utils import export_bricks_as_onnx
    from torchbricks.bricks import BrickNotTrainable, BrickTrainable

    # boxes of 1 to 7 px at stride 8, one per image, centred anywhere in their cell: sides down to -0.5 cells
    stride, cells = 8, (6, 7)
    generator = torch.Generator().manual_seed(3)
    sizes = 1 + torch.rand(16, 2, generator=generator) * 6
    centres = (torch.tensor([[2.0, 3.0]]) + torch.rand(16, 2, generator=generator)) * stride
    boxes = torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1)[:, None]
    labels = torch.randint(0, 2, (16, 1), generator=generator)
    heat, assigned, weight = render_box_targets(boxes, labels, num_classes=2, size=cells, stride=stride)
    xs, ys = (torch.arange(cells[1]) + 0.5) * stride, (torch.arange(cells[0]) + 0.5) * stride
    sides = torch.stack(
        (xs - assigned[..., 0], ys[:, None] - assigned[..., 1], assigned[..., 2] - xs, assigned[..., 3] - ys[:, None]), dim=1
    )
    distances = torch.where(weight[:, None] > 0, sides / stride, torch.full_like(sides, 3.0))
    features = _pass_through_features(torch.where(heat >= 1, 9.0, -9.0), distances)
    assert (distances[weight[:, None].expand_as(distances) > 0] < 0).any()  # the case needs sides past a cell's centre
    model = BrickCollection(
        {
            "detect": BrickTrainable(_pass_through_head(2), ["features"], ["heatmap", "distances"]),
            "decode": BrickNotTrainable(
                BoxDecoder(stride, max_detections=3), ["heatmap", "distances"], ["boxes", "scores", "labels"]
            ),
        }
    )
    path = export_bricks_as_onnx(
        path_onnx=tmp_path / "boxes.onnx", brick_collection=model, named_inputs={"features": features[:2]}
    )

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = dict(
        zip([node.name for node in session.get_outputs()], session.run(None, {"features": features.numpy()}), strict=True)
    )
    with torch.no_grad():
        expected = model({"features": features}, tags=Stage.EXPORT)

    assert actual["labels"][:, 0].tolist() == labels[:, 0].tolist() == expected["labels"][:, 0].tolist()
    np.testing.assert_allclose(actual["boxes"], expected["boxes"].numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(actual["boxes"][:, :1], boxes.numpy(), atol=1e-3, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("score_threshold", [0.05, 0.0])
def test_a_plateau_of_equal_peaks_decodes_alike_in_onnxruntime_and_pytorch(tmp_path: Path, score_threshold: float) -> None:
    # A region of constant input (a tile's black padding) gives equal logits, which an untrained head scores at its
    # prior (0.1, above the default threshold): torch.topk ranked the tied cells in no fixed order, onnxruntime's TopK
    # lower cell first, and the exported file gave other boxes (its check in training failed by 60 px)
    import onnxruntime

    from torchbricks.brick_collection_utils import export_bricks_as_onnx
    from torchbricks.bricks import BrickNotTrainable, BrickTrainable

    heatmap = torch.full((2, 2, 12, 12), -2.2)  # the prior's logit everywhere
    heatmap[:, :, :6, :6] = torch.linspace(-3.0, -1.0, 36).reshape(6, 6)  # distinct logits in one corner
    heatmap[1, 0, 9, 9] = 4.0
    distances = torch.rand(2, 4, 12, 12, generator=torch.Generator().manual_seed(0)) * 3
    features = _pass_through_features(heatmap, distances)
    model = BrickCollection(
        {
            "detect": BrickTrainable(_pass_through_head(2), ["features"], ["heatmap", "distances"]),
            "decode": BrickNotTrainable(
                BoxDecoder(8, max_detections=40, score_threshold=score_threshold, iou_threshold=1.1),
                ["heatmap", "distances"],
                ["boxes", "scores", "labels"],
            ),
        }
    )
    path = export_bricks_as_onnx(path_onnx=tmp_path / "boxes.onnx", brick_collection=model, named_inputs={"features": features})

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = dict(
        zip([node.name for node in session.get_outputs()], session.run(None, {"features": features.numpy()}), strict=True)
    )
    with torch.no_grad():
        expected = model({"features": features}, tags=Stage.EXPORT)

    assert (expected["labels"] >= 0).sum() > 40  # the plateau's tied cells are among the kept boxes
    for name in ("boxes", "scores", "labels"):
        np.testing.assert_allclose(actual[name], expected[name].numpy(), atol=1e-4, rtol=0, err_msg=name)


def test_equal_peaks_rank_lower_cell_first_and_cells_that_are_no_peak_are_never_kept() -> None:
    from torchbricks.bag_of_bricks._heatmaps import heatmap_peaks

    heatmap = torch.full((1, 1, 4, 4), -2.2)
    heatmap[0, 0, 3, 3] = -1.0  # its neighbours are no peak; the other cells tie

    scores, cells, _ = heatmap_peaks(heatmap, 16)

    ties = [cell for cell in range(16) if cell not in (3 * 4 + 3, 2 * 4 + 2, 2 * 4 + 3, 3 * 4 + 2)]
    assert cells[0].tolist()[:13] == [15, *ties]
    assert scores[0, 13:].tolist() == [0.0, 0.0, 0.0]  # no peak: score 0
    _, _, labels = BoxDecoder(4, max_detections=16, score_threshold=0.0, iou_threshold=1.1)(heatmap, torch.ones(1, 4, 4, 4))
    assert (labels[0] >= 0).sum().item() == 13


def test_mean_average_precision_ignores_objects_labelled_as_ignored_like_voc_difficult_ones() -> None:
    pytest.importorskip("pycocotools")
    real, difficult = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]
    targets, target_labels = torch.tensor([[real, difficult]]), torch.tensor([[0, -2 - 0]])  # class 0, ignored

    found_both = BoxMeanAveragePrecision()  # the better-scored detection is on the ignored object: not a false positive
    found_both.update(targets, torch.tensor([[0.6, 0.9]]), torch.tensor([[0, 0]]), targets, target_labels)
    found_real = BoxMeanAveragePrecision()  # the ignored object left undetected: not a missed ground truth
    found_real.update(targets[:, :1], torch.tensor([[0.6]]), torch.tensor([[0]]), targets, target_labels)
    as_false_positive = BoxMeanAveragePrecision()  # reference: the same detection of an object that is not there
    as_false_positive.update(targets, torch.tensor([[0.6, 0.9]]), torch.tensor([[0, 0]]), targets[:, :1], target_labels[:, :1])

    # One true positive, ranked alone: precision 1 at recall 1 at every IoU threshold.
    assert found_both.compute()["map"].item() == pytest.approx(1.0)
    assert found_real.compute()["mar_100"].item() == pytest.approx(1.0)
    # The false positive ranked first halves the precision at the only recall step (0.5 by 101-point interpolation).
    assert as_false_positive.compute()["map"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("ignored", [False, True], ids=["no object", "only a difficult object"])
def test_mean_average_precision_of_a_split_without_a_true_box_is_nan_where_pycocotools_writes_minus_one(ignored: bool) -> None:
    # -1 was returned and written to metrics.json as a score; pycocotools' summary of the same boxes gives -1.
    pytest.importorskip("pycocotools")
    detected = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    targets = detected if ignored else torch.zeros(1, 1, 4)
    metric = BoxMeanAveragePrecision(class_names=["cat"])
    metric.update(detected, torch.tensor([[0.9]]), torch.tensor([[0]]), targets, torch.tensor([[-2 if ignored else -1]]))
    truth = {
        "images": [{"id": 0, "width": 32, "height": 32}],
        "categories": [{"id": 0}],
        "annotations": [{"id": 1, "image_id": 0, "category_id": 0, "bbox": [0, 0, 10, 10], "iscrowd": 1, "area": 100}]
        if ignored
        else [],
    }
    reference = _pycocotools_evaluated(truth, [{"image_id": 0, "category_id": 0, "bbox": [0, 0, 10, 10], "score": 0.9}])

    values = metric.compute()

    assert reference.stats[[0, 1, 2, 8]].tolist() == [-1.0] * 4  # map, map_50, map_75, mar_100
    assert {name: math.isnan(float(values[name])) for name in metric.reported} == dict.fromkeys(metric.reported, True)
    assert math.isnan(float(values["per_class"]["cat"]["ap"]))


def test_per_class_average_precision_equals_pycocotools_evaluated_one_category_at_a_time() -> None:
    # Two images, three classes: class 0 found once and missed once, class 1 found with a loose box and a false
    # positive, class 2 only predicted (no true box: no AP).
    true_boxes = torch.tensor([[[2.0, 2, 12, 12], [20, 20, 30, 30]], [[4, 4, 16, 14], [0, 0, 0, 0]]])
    true_labels = torch.tensor([[0, 1], [0, -1]])
    boxes = torch.tensor([[[2.0, 3, 12, 12], [21, 19, 31, 29], [0, 0, 6, 6]], [[40, 40, 50, 50], [5, 5, 9, 9], [0, 0, 0, 0]]])
    scores = torch.tensor([[0.9, 0.8, 0.3], [0.6, 0.5, 0.0]])
    labels = torch.tensor([[0, 1, 1], [2, 0, -1]])
    metric = BoxMeanAveragePrecision(class_names=["cat", "dog", "eel"])
    metric.update(boxes, scores, labels, true_boxes, true_labels)

    per_class = metric.compute()["per_class"]

    def xywh(box: torch.Tensor) -> list[float]:
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    annotations = []
    for image in range(2):
        for box, label in zip(true_boxes[image], true_labels[image], strict=True):
            if label >= 0:
                x, y, width, height = xywh(box)
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": image, "category_id": int(label), "bbox": [x, y, width, height],
                     "iscrowd": 0, "area": width * height}
                )  # fmt: skip
    truth = {
        "images": [{"id": 0, "width": 64, "height": 64}, {"id": 1, "width": 64, "height": 64}],
        "categories": [{"id": index} for index in range(3)],
        "annotations": annotations,
    }
    detections = []
    for image in range(2):
        for box, score, label in zip(boxes[image], scores[image], labels[image], strict=True):
            if label >= 0:
                detections.append({"image_id": image, "category_id": int(label), "bbox": xywh(box), "score": float(score)})
    reference = {  # AP at IoU 0.50:0.95 and at 0.5, all areas, 100 boxes
        category: _pycocotools_evaluated(truth, detections, catIds=[category]).stats[:2] for category in range(3)
    }

    assert list(per_class) == ["cat", "dog", "eel"]
    assert reference[2].tolist() == [-1.0, -1.0]  # pycocotools' mark: no true box, no AP
    for category, name in enumerate(["cat", "dog", "eel"]):
        expected = [float("nan") if value == -1 else value for value in reference[category]]
        assert float(per_class[name]["ap"]) == pytest.approx(expected[0], abs=1e-6, nan_ok=True), name
        assert float(per_class[name]["ap_50"]) == pytest.approx(expected[1], abs=1e-6, nan_ok=True), name
    assert np.isnan(float(per_class["eel"]["ap"]))  # no true box: undefined (null in metrics.json), not 0 nor -1
    assert 0 < float(per_class["cat"]["ap_50"]) < 1


def test_mean_average_precision_given_the_images_scores_boxes_cut_to_them_as_pycocotools_scores_the_cut_boxes() -> None:
    # A 32 x 32 image with one true box at its left border, found by a box reaching 6 px past the border (IoU 0.67
    # uncut, 1 cut), behind a box wholly outside the image, scored higher (a false positive uncut, nothing cut).
    true_boxes, true_labels = torch.tensor([[[0.0, 8, 12, 20]]]), torch.tensor([[0]])
    boxes = torch.tensor([[[-6.0, 8, 12, 20], [33, 2, 40, 9]]])
    scores, labels = torch.tensor([[0.6, 0.9]]), torch.tensor([[0, 0]])
    cut = [[0.0, 8, 12, 20]]  # what `predict` writes: the first box cut at x = 0; the second left out
    truth = {
        "images": [{"id": 1, "width": 32, "height": 32}],
        "categories": [{"id": 0}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [0.0, 8, 12, 12], "iscrowd": 0, "area": 144.0}],
    }
    detections = [{"image_id": 1, "category_id": 0, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": 0.6} for x0, y0, x1, y1 in cut]
    evaluation = _pycocotools_evaluated(truth, detections)

    metric, uncut = BoxMeanAveragePrecision(), BoxMeanAveragePrecision()
    metric.update(boxes, scores, labels, true_boxes, true_labels, torch.zeros(1, 3, 32, 32))
    uncut.update(boxes, scores, labels, true_boxes, true_labels)
    values, uncut_values = metric.compute(), uncut.compute()

    for name, index in (("map", 0), ("map_50", 1), ("map_75", 2), ("mar_100", 8)):
        assert float(values[name]) == pytest.approx(evaluation.stats[index], abs=1e-6), name
    assert float(values["map"]) == pytest.approx(1.0)
    assert float(uncut_values["map"]) < 0.5  # the boxes as the decoder gave them: a false positive first, a loose box


def test_the_detection_head_scores_the_boxes_cut_to_its_images() -> None:
    """The decoder's box reaching past the image (x_min -4 of a 32 px image) is scored as `predict` writes it, cut at 0:
    equal to the true box, an AP of 1 at every IoU threshold (uncut, IoU 0.75: 0.6)."""
    head = create_object_detection_head(
        1, 5, "features", stride=8, target_boxes_name="boxes", target_labels_name="labels", image_name="raw", hidden_channels=5
    )
    model = BrickCollection({"cars": head})
    model["cars"]["detect"].model = _pass_through_head(1)
    heatmap = torch.full((1, 1, 4, 4), -9.0)
    heatmap[0, 0, 1, 0] = 9.0  # the cell centred on (4, 12)
    distances = torch.full((1, 4, 4, 4), 1.0)
    distances[0, 1::2, 1, 0] = 0.5  # sides in cells: the box [-4, 8, 12, 16]
    named = {"features": _pass_through_features(heatmap, distances), "raw": torch.zeros(1, 3, 32, 32)}

    with torch.no_grad():
        model({**named, "boxes": torch.tensor([[[0.0, 8, 12, 16]]]), "labels": torch.tensor([[0]])}, tags=Stage.TEST)

    assert model({**named}, tags=Stage.INFERENCE)["cars/boxes"][0, 0].tolist() == pytest.approx([-4.0, 8, 12, 16], abs=1e-4)
    values = model.summarize(reset=True)
    assert float(values["cars/map"]) == pytest.approx(1.0)
    assert float(values["cars/per_class"]["0"]["ap"]) == pytest.approx(1.0)


def test_the_detection_head_scores_a_padded_tiles_boxes_cut_to_its_picture_as_pycocotools_scores_them(tmp_path: Path) -> None:
    """A 20 px wide image in 32-px tiles: its tile is black from x = 20 on. The decoder finds the object with a box
    reaching 8 px into the padding (IoU 0.6 with the true box; 0.75 cut at x = 20, as `predict` writes it) behind a
    box wholly in the padding, scored higher (which `predict` leaves out). The mAP is pycocotools' on the boxes cut
    to the picture; cut to the padded tile, the box in the padding was a false positive ranked first."""
    import json

    from PIL import Image

    from torchbricks.datasets.readers import CocoDataset
    from torchbricks.datasets.tiled import TiledDataset
    from torchbricks.datasets.transforms import collate_padded, create_transform

    Image.new("RGB", (20, 32), (90, 90, 90)).save(tmp_path / "narrow.png")
    coco = {
        "images": [{"id": 1, "file_name": "narrow.png", "width": 20, "height": 32}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 8, 12, 12], "area": 144, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "car"}],
    }
    (tmp_path / "test.json").write_text(json.dumps(coco))
    tiles = TiledDataset(CocoDataset(tmp_path / "test.json"), tile_size=32, transform=create_transform(32, evaluation=True))
    batch = collate_padded([tiles[0]])
    assert batch["image_extent"].tolist() == [[32.0, 20.0]]
    assert batch["raw"].shape == (1, 3, 32, 32)

    head = create_object_detection_head(
        1, 5, "features", stride=8, target_boxes_name="target_boxes", target_labels_name="target_labels",
        image_name="raw", image_extent_name="image_extent", hidden_channels=5,
    )  # fmt: skip
    model = BrickCollection({"cars": head})
    model["cars"]["detect"].model = _pass_through_head(1)
    heatmap = torch.full((1, 1, 4, 4), -9.0)
    distances = torch.full((1, 4, 4, 4), 1.0)
    heatmap[0, 0, 1, 1] = 2.0  # the cell centred on (12, 12): the box [4, 8, 24, 20], sides in cells 1, 0.5, 1.5, 1
    distances[0, :, 1, 1] = torch.tensor([1.0, 0.5, 1.5, 1.0])
    heatmap[0, 0, 0, 3] = 4.0  # the cell centred on (28, 4): the box [22, 2, 30, 10], in the padding
    distances[0, :, 0, 3] = torch.tensor([0.75, 0.25, 0.25, 0.75])
    named = {**batch, "features": _pass_through_features(heatmap, distances)}

    with torch.no_grad():
        decoded = model(named, tags=Stage.INFERENCE)
        model(named, tags=Stage.TEST)
    values = model.summarize(reset=True)

    found = decoded["cars/labels"][0] >= 0
    boxes, scores = decoded["cars/boxes"][0][found], decoded["cars/scores"][0][found]
    torch.testing.assert_close(boxes, torch.tensor([[22.0, 2, 30, 10], [4, 8, 24, 20]]), atol=1e-4, rtol=0)  # by score
    cut = [[4.0, 8, 20, 20]]  # what `predict` writes: the first box left out, the second cut at x = 20
    reference = _pycocotools_summary(torch.tensor(cut), scores[1:], batch["target_boxes"][0], max_dets=[1, 10, 100])
    for name, index in (("map", 0), ("map_50", 1), ("map_75", 2), ("mar_100", 8)):
        assert float(values[f"cars/{name}"]) == pytest.approx(reference.stats[index], abs=1e-6), name
    assert float(values["cars/map"]) == pytest.approx(0.6)  # found at IoU 0.50 to 0.75: 6 of the 10 thresholds

    from torchbricks.lightning.report import collect_predictions

    (drawn,) = collect_predictions(model, [named])  # the report draws the boxes as they are scored
    np.testing.assert_allclose(drawn.prediction[0].boxes, cut, atol=1e-4)


def test_mean_average_precision_cuts_each_images_boxes_to_its_own_extent() -> None:
    """Two 32 x 32 tiles showing 20 x 32 and 32 x 12 pixels (width x height) of their images, each with an object at
    the picture's border found by a box reaching past it (IoU 0.625, 1 cut), behind a better-scored box in the
    padding: each box is scored cut to its own tile's picture (cut here by hand), a box left without area dropped."""
    boxes = torch.tensor([[[10.0, 4, 26, 14], [22, 20, 30, 28], [1, 1, 5, 5]], [[4, 2, 14, 18], [5, 20, 15, 30], [30, 0, 40, 6]]])
    scores = torch.tensor([[0.5, 0.9, 0.3], [0.6, 0.95, 0.4]])
    labels = torch.tensor([[0, 0, 1], [1, 1, 0]])
    true_boxes, true_labels = torch.tensor([[[10.0, 4, 20, 14]], [[4, 2, 14, 12]]]), torch.tensor([[0], [1]])
    extents = torch.tensor([[32.0, 20.0], [12.0, 32.0]])  # (height, width)

    by_hand_boxes, by_hand_labels = boxes.clone(), labels.clone()
    for image, (height, width) in enumerate(extents.tolist()):
        for index, box in enumerate(boxes[image].tolist()):
            x0, y0, x1, y1 = (min(max(value, 0.0), limit) for value, limit in zip(box, (width, height) * 2, strict=True))
            by_hand_boxes[image, index] = torch.tensor([x0, y0, x1, y1])
            if x1 <= x0 or y1 <= y0:
                by_hand_labels[image, index] = -1
    assert by_hand_labels.tolist() == [[0, -1, 1], [1, -1, 0]]

    metric, reference = BoxMeanAveragePrecision(), BoxMeanAveragePrecision()
    metric.update(boxes, scores, labels, true_boxes, true_labels, torch.zeros(2, 3, 32, 32), extents)
    reference.update(by_hand_boxes, scores, by_hand_labels, true_boxes, true_labels)
    values, expected = metric.compute(), reference.compute()

    assert float(expected["map"]) == pytest.approx(1.0)
    for name in ("map", "map_50", "map_75", "mar_100"):
        assert float(values[name]) == pytest.approx(float(expected[name]), abs=1e-7), name


def test_a_detection_head_reading_image_extents_without_images_is_refused() -> None:
    with pytest.raises(BrickError, match="image_extent_name='extent' needs image_name too"):
        create_object_detection_head(1, 5, "features", 8, "boxes", "labels", image_extent_name="extent")


def test_mean_average_precision_equals_pycocotools_when_a_recall_falls_on_a_threshold() -> None:
    # 20 true boxes, found in order with one false positive after the 7th: recall 0.35 (a multiple of 0.01, which
    # a float32 threshold of 0.34999999 reads on the wrong side) is reached before the precision drops
    true_boxes = torch.tensor([[index * 10.0, 0, index * 10 + 8, 8] for index in range(20)])
    found = [True] * 7 + [False] + [True] * 13
    boxes, next_true = [], 0
    for hit in found:
        boxes.append(true_boxes[next_true].tolist() if hit else [500.0, 500, 508, 508])
        next_true += hit
    detections = torch.tensor(boxes)
    scores = torch.linspace(0.99, 0.5, len(detections))
    metric = BoxMeanAveragePrecision(class_names=["a"])
    metric.update(
        detections[None],
        scores[None],
        torch.zeros(1, len(found), dtype=torch.long),
        true_boxes[None],
        torch.zeros(1, 20, dtype=torch.long),
    )
    values = metric.compute()

    truth = {
        "images": [{"id": 1, "width": 1000, "height": 1000}],
        "categories": [{"id": 0, "name": "a"}],
        "annotations": [
            {"id": index + 1, "image_id": 1, "category_id": 0, "bbox": [float(box[0]), 0.0, 8.0, 8.0], "area": 64.0, "iscrowd": 0}
            for index, box in enumerate(true_boxes)
        ],
    }
    evaluation = _pycocotools_evaluated(
        truth,
        [
            {"image_id": 1, "category_id": 0, "bbox": [float(box[0]), float(box[1]), 8.0, 8.0], "score": float(score)}
            for box, score in zip(detections, scores, strict=True)
        ],
    )

    assert float(values["map"]) == pytest.approx(evaluation.stats[0], abs=1e-6)
    assert float(values["map_50"]) == pytest.approx(evaluation.stats[1], abs=1e-6)
    assert float(values["per_class"]["a"]["ap"]) == pytest.approx(evaluation.stats[0], abs=1e-6)


def _crowded_image(n_true: int, n_false: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """One 1000 px image holding `n_true` true boxes of class 0, found by jittered detections with random scores,
    and `n_false` detections of nothing: detections [1, n_true + n_false, 4], scores, labels, true boxes, labels."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(n_true, 2, generator=generator) * 960
    true_boxes = torch.cat((corners, corners + 30), dim=1)
    found = true_boxes + torch.randn(true_boxes.shape, generator=generator) * 3
    nothing = torch.cat((torch.full((n_false, 2), 2000.0), torch.full((n_false, 2), 2030.0)), dim=1)
    detections = torch.cat((found, nothing))
    scores = torch.rand(len(detections), generator=generator)
    zeros = torch.zeros(1, len(detections), dtype=torch.long)
    return detections[None], scores[None], zeros, true_boxes[None], torch.zeros(1, n_true, dtype=torch.long)


def _pycocotools_summary(detections: torch.Tensor, scores: torch.Tensor, true_boxes: torch.Tensor, max_dets: list[int]):
    """pycocotools' evaluation of one image of class 0 with `maxDets`: the evaluator, after `summarize`."""

    def xywh(box: torch.Tensor) -> list[float]:
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    truth = {
        "images": [{"id": 1, "width": 3000, "height": 3000}],
        "categories": [{"id": 0}],
        "annotations": [
            {"id": index + 1, "image_id": 1, "category_id": 0, "bbox": xywh(box), "area": 900.0, "iscrowd": 0}
            for index, box in enumerate(true_boxes)
        ],
    }
    found = zip(detections, scores, strict=True)
    detected = [{"image_id": 1, "category_id": 0, "bbox": xywh(b), "score": float(s)} for b, s in found]
    return _pycocotools_evaluated(truth, detected, maxDets=max_dets)


def test_mean_average_precision_counts_every_detection_of_an_image_holding_more_than_100_objects() -> None:
    # 150 tree crowns in one image, all found, among 170 detections: COCO's 100-detection cap left 50 crowns
    # uncounted (recall 0.667 at most, reported as if it were the model's).
    detections, scores, labels, true_boxes, true_labels = _crowded_image(n_true=150, n_false=20)
    metric = BoxMeanAveragePrecision(max_detections=200)  # the decoder's max_detections
    metric.update(detections, scores, labels, true_boxes, true_labels)

    values = metric.compute()
    reference = _pycocotools_summary(detections[0], scores[0], true_boxes[0], max_dets=[1, 10, 200])

    assert metric.reported == ("map", "map_50", "map_75", "mar_200")
    assert sorted(values) == ["map", "map_50", "map_75", "mar_200", "per_class"]
    assert float(values["map_50"]) == pytest.approx(reference.stats[1], abs=1e-6)
    assert float(values["map_75"]) == pytest.approx(reference.stats[2], abs=1e-6)
    assert float(values["mar_200"]) == pytest.approx(reference.stats[8], abs=1e-6)
    # pycocotools' summary reads its first value (mAP) at 100 detections whatever maxDets says; the same mean of its
    # precision array read at 200 detections:
    curve = reference.eval["precision"][:, :, :, 0, -1]
    assert float(values["map"]) == pytest.approx(curve[curve > -1].mean(), abs=1e-6)
    assert float(values["per_class"]["0"]["ap"]) == pytest.approx(float(values["map"]), abs=1e-6)
    at_coco_cap = _pycocotools_summary(detections[0], scores[0], true_boxes[0], max_dets=[1, 10, 100])
    assert float(values["mar_200"]) > at_coco_cap.stats[8] + 0.1  # what cutting at 100 detections reported
    assert float(values["map_50"]) > at_coco_cap.stats[1] + 0.1


def test_mean_average_precision_keeps_cocos_values_when_the_decoder_keeps_100_detections_or_fewer() -> None:
    detections, scores, labels, true_boxes, true_labels = _crowded_image(n_true=40, n_false=10)
    from torchbricks.bag_of_bricks._box_metrics import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS

    metric = BoxMeanAveragePrecision(max_detections=50)
    reference = MeanAveragePrecision(  # pycocotools' thresholds (torchmetrics' own are float32, see the metric)
        box_format="xyxy", iou_type="bbox", iou_thresholds=COCO_IOU_THRESHOLDS, rec_thresholds=COCO_RECALL_THRESHOLDS
    )
    metric.update(detections, scores, labels, true_boxes, true_labels)
    reference.update(
        [{"boxes": detections[0], "scores": scores[0], "labels": labels[0]}], [{"boxes": true_boxes[0], "labels": true_labels[0]}]
    )

    values, expected = metric.compute(), reference.compute()

    assert metric.reported == ("map", "map_50", "map_75", "mar_100")
    for name in metric.reported:
        assert float(values[name]) == pytest.approx(float(expected[name]), abs=1e-6), name


def test_mean_average_precision_refuses_an_image_with_more_detections_than_its_cap() -> None:
    detections, scores, labels, true_boxes, true_labels = _crowded_image(n_true=120, n_false=0)
    metric = BoxMeanAveragePrecision()

    with pytest.raises(BrickError, match=r"at most 100 detections per image.*an image with 120.*max_detections=120"):
        metric.update(detections, scores, labels, true_boxes, true_labels)
    with pytest.raises(BrickError, match=r"max_detections must be a whole number of 1 or more.*got 0"):
        BoxMeanAveragePrecision(max_detections=0)


def test_the_detection_heads_metric_counts_as_many_boxes_as_its_decoder_keeps() -> None:
    head = create_object_detection_head(
        2, 8, "features", stride=4, target_boxes_name="boxes", target_labels_name="labels", max_detections=300
    )
    model = BrickCollection({"trees": head})

    model({"features": torch.rand(1, 8, 8, 8), "boxes": BOXES[:1], "labels": LABELS[:1]}, tags=Stage.TRAIN)

    assert head["metrics"].metrics["mean_average_precision"].max_detections == 300
    expected = ["trees/map", "trees/map_50", "trees/map_75", "trees/mar_300", "trees/per_class"]
    assert sorted(model.summarize(reset=True)) == expected


def test_the_packaged_detection_configs_metric_follows_a_command_line_override_of_the_decoders_max_detections() -> None:
    from torchbricks.configuration import compose_config

    override = "model.bricks.detection.decode.model.max_detections=300"
    config = compose_config(["task=detection", "data.root=unused", override])
    node = config.model.bricks.detection.metrics.metric_collection.mean_average_precision

    assert node.max_detections == 300
    assert BoxMeanAveragePrecision(max_detections=node.max_detections).reported[-1] == "mar_300"


def test_peaks_whose_probabilities_are_all_one_are_ranked_by_their_logits() -> None:
    from torchbricks.bag_of_bricks._heatmaps import heatmap_peaks

    heatmap = torch.full((1, 1, 9, 9), -9.0)
    for rank, (y, x) in enumerate([(4, 4), (4, 1), (1, 7), (1, 4), (1, 1)]):  # all above 17: sigmoid 1.0 in float32
        heatmap[0, 0, y, x] = 30.0 - rank
    heatmap[0, 0, 7, 7] = 25.0
    heatmap[0, 0, 7, 8] = 24.0  # beside a stronger cell: not a peak, though both are 1.0 as probabilities

    scores, cells, _ = heatmap_peaks(heatmap, 3)

    assert torch.sigmoid(torch.tensor(24.0)).item() == 1.0
    assert cells.tolist() == [[4 * 9 + 4, 4 * 9 + 1, 1 * 9 + 7]]  # the three largest logits, in order
    assert scores.tolist() == [[1.0, 1.0, 1.0]]
    everything = heatmap_peaks(heatmap, 81)[1][0].tolist()
    assert 7 * 9 + 7 in everything[:6]
    assert 7 * 9 + 8 not in everything[:6]


def test_the_heatmap_loss_learns_an_ignored_box_neither_as_object_nor_as_background() -> None:
    from torchbricks.bag_of_bricks.object_detection import BoxDetectionLoss

    logits = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_()
    crowd = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])  # cells 1 to 4 on both sides at stride 8

    heatmap_loss, box_loss = BoxDetectionLoss(3, 8)(logits, torch.rand(1, 4, 8, 8), crowd, torch.tensor([[-2 - 1]]))
    heatmap_loss.backward()

    assert box_loss.item() == 0.0
    gradient = logits.grad[0]
    assert gradient[1, 1:5, 1:5].abs().max().item() == 0.0  # its own class inside the region: no loss either way
    assert gradient[1, 6:, 6:].abs().min().item() > 0.0  # the same class elsewhere: background as ever
    assert gradient[0, 1:5, 1:5].abs().min().item() > 0.0  # other classes inside it: background as ever


def _box_batches(seed: int, images: int) -> list[tuple[torch.Tensor, ...]]:
    """One image per batch: 3 predicted and 2 true boxes of 2 classes near each other, drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(images):
        corners = torch.rand(1, 2, 2, generator=generator) * 40
        truth = torch.cat([corners, corners + 10 + torch.rand(1, 2, 2, generator=generator) * 20], dim=-1)
        boxes = torch.cat([truth + torch.randn(1, 2, 4, generator=generator), truth[:, :1] + 15], dim=1)
        scores = torch.rand(1, 3, generator=generator)
        batches.append((boxes, scores, torch.tensor([[0, 1, 0]]), truth, torch.tensor([[0, 1]])))
    return batches


def _map_on_one_of_two_processes(rank: int, port: int, folder: str) -> None:
    import json
    import os

    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    metric = BoxMeanAveragePrecision(class_names=["a", "b"])
    batches = _box_batches(seed=0, images=5)
    for batch in batches[:3] if rank == 0 else batches[3:]:  # five test images on two processes: three and two
        metric.update(*batch)
    values = metric.compute()  # gathers the other process's images
    Path(folder, f"{rank}.json").write_text(json.dumps({name: float(values[name]) for name in metric.reported}))
    dist.destroy_process_group()


@pytest.mark.slow
def test_mean_average_precision_of_processes_that_saw_different_numbers_of_images_is_that_of_all_images(
    tmp_path: Path,
) -> None:
    import json

    from helpers import spawn_two_gloo_processes

    spawn_two_gloo_processes(_map_on_one_of_two_processes, tmp_path, timeout=120, waiting="gathering their images")

    whole = BoxMeanAveragePrecision(class_names=["a", "b"])
    for batch in _box_batches(seed=0, images=5):
        whole.update(*batch)
    expected = {name: float(whole.compute()[name]) for name in whole.reported}
    assert 0 < expected["map_50"] < 1  # neither nothing nor everything found: a sum of the wrong images would differ
    for rank in range(2):
        assert json.loads((tmp_path / f"{rank}.json").read_text()) == pytest.approx(expected), rank


def _random_detection_split(seed: int) -> list[dict[str, np.ndarray]]:
    """A few 100 px images of up to three classes: up to six true boxes each (some crowd regions, label -2 - k; some
    images without any), up to ten detections by score (most a jittered true box, some of another class or of
    nothing, scores often tied)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(rng.integers(2, 7)):
        count = int(rng.integers(0, 7))
        corners = rng.uniform(0, 80, (count, 2))
        true_boxes = np.concatenate([corners, np.minimum(corners + rng.uniform(4, 20, (count, 2)), 100)], axis=1)
        classes = rng.integers(0, 3, count)
        true_labels = np.where(rng.random(count) < 0.2, -2 - classes, classes)
        found = int(rng.integers(0, 11))
        boxes, labels = np.zeros((found, 4)), rng.integers(0, 3, found)
        for index in range(found):
            if count and rng.random() < 0.7:
                which = rng.integers(0, count)
                boxes[index] = true_boxes[which] + rng.normal(0, 2, 4)
                labels[index] = classes[which] if rng.random() < 0.9 else labels[index]
            else:
                corner = rng.uniform(0, 90, 2)
                boxes[index] = [*corner, *(corner + rng.uniform(3, 15, 2))]
        boxes = np.clip(np.concatenate([boxes[:, :2], np.maximum(boxes[:, 2:], boxes[:, :2] + 1)], axis=1), 0, 100)
        scores = rng.choice([0.3, 0.6, 0.9], found) if seed % 2 else rng.random(found)
        order = np.argsort(-scores, kind="stable")
        images.append({"true_boxes": true_boxes, "true_labels": true_labels, "boxes": boxes[order], "scores": scores[order],
                       "labels": labels[order]})  # fmt: skip
    return images


def _pycocotools_evaluation(images: list[dict[str, np.ndarray]]) -> Any:
    """pycocotools' evaluation of `images`, crowd regions as `iscrowd` annotations, after `summarize`."""
    annotations, detections = [], []
    for image_id, image in enumerate(images, start=1):
        for (x0, y0, x1, y1), label in zip(image["true_boxes"].tolist(), image["true_labels"].tolist(), strict=True):
            category, area = label if label >= 0 else -2 - label, (x1 - x0) * (y1 - y0)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": int(label < 0), "area": area})  # fmt: skip
        for (x0, y0, x1, y1), score, label in zip(*(image[key].tolist() for key in ("boxes", "scores", "labels")), strict=True):
            detections.append({"image_id": image_id, "category_id": label, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    truth = {"images": [{"id": index + 1, "width": 100, "height": 100} for index in range(len(images))],
             "categories": [{"id": index} for index in range(3)], "annotations": annotations}  # fmt: skip
    return _pycocotools_evaluated(truth, detections)


def _pycocotools_evaluated(truth: dict[str, Any], detections: list[dict[str, Any]], **params: Any) -> Any:
    """pycocotools' box evaluation of `detections` (its result format) against the COCO dataset dict `truth`, with
    `params` set on the evaluator's `params` (`catIds`, `maxDets`): the evaluator, after `summarize`."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground_truth = COCO()
    ground_truth.dataset = truth
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(detections), iouType="bbox")
        for name, value in params.items():
            setattr(evaluation.params, name, value)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def _padded(images: list[dict[str, np.ndarray]], key: str, fill: float) -> torch.Tensor:
    longest = max(1, *(len(image[key]) for image in images))
    padded = np.full((len(images), longest, *images[0][key].shape[1:]), fill, dtype=np.float64)
    for index, image in enumerate(images):
        padded[index, : len(image[key])] = image[key]
    return torch.tensor(padded)


@pytest.mark.parametrize("seed", range(8))
def test_mean_average_precision_equals_pycocotools_with_crowds_images_without_boxes_and_tied_scores_in_any_batches(
    seed: int,
) -> None:
    images = _random_detection_split(seed)
    if not any(len(image["boxes"]) for image in images):
        images[0].update(boxes=np.array([[1.0, 1, 9, 9]]), scores=np.array([0.5]), labels=np.array([0]))
    evaluation = _pycocotools_evaluation(images)
    curve = evaluation.eval["precision"][:, :, :, 0, -1]  # [iou thresholds, recall thresholds, classes], all areas

    def defined_mean(values: np.ndarray) -> float:
        return float(values[values > -1].mean()) if (values > -1).any() else float("nan")  # pycocotools' -1: no AP

    for batch_size in (1, 3, 64):  # the last batch partial
        metric = BoxMeanAveragePrecision(class_names=["a", "b", "c"])
        for start in range(0, len(images), batch_size):
            part = images[start : start + batch_size]
            boxes, scores, labels = _padded(part, "boxes", 0.0), _padded(part, "scores", 0.0), _padded(part, "labels", -1)
            true_boxes, true_labels = _padded(part, "true_boxes", 0.0), _padded(part, "true_labels", -1)
            metric.update(boxes.float(), scores.float(), labels.long(), true_boxes.float(), true_labels.long())
        values = metric.compute()

        for name, index in (("map", 0), ("map_50", 1), ("map_75", 2), ("mar_100", 8)):
            assert float(values[name]) == pytest.approx(evaluation.stats[index], abs=1e-6), (name, batch_size)
        for index, name in enumerate(["a", "b", "c"]):
            ap, ap_50 = (float(values["per_class"][name][key]) for key in ("ap", "ap_50"))
            assert ap == pytest.approx(defined_mean(curve[:, :, index]), abs=1e-6, nan_ok=True)
            assert ap_50 == pytest.approx(defined_mean(curve[0, :, index]), abs=1e-6, nan_ok=True)
