from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
from torchmetrics.functional.classification import multiclass_confusion_matrix

from torchbricks import BrickCollection, BrickLoss, BrickMetrics, BrickMetricSingle, BrickTrainable
from torchbricks.heads._predictions import HeadPredictions
from torchbricks.heads.detection import Boxes, BoxHeadPredictions
from torchbricks.heads.multilabel import MultiLabelHeadPredictions
from torchbricks.heads.points import PointHeadPredictions
from torchbricks.lightning.report import (
    collect_predictions,
    curve_series,
    normalized_confusion_matrices,
    per_class_values,
    plot_class_scores,
    plot_confusion_matrices,
    plot_curves,
    plot_predictions,
    save_figure,
)

HISTORY = [
    {"epoch": 0, "train/loss": 2.0, "validation/loss": 2.5, "train/losses/cat/loss_ce": 1.2, "train/losses/dog/loss_ce": 0.8,
     "validation/cat/accuracy": 0.4, "validation/dog/accuracy": 0.6, "train/loss_step": 9.0, "test/cat/accuracy": 0.1},
    {"epoch": 1, "train/loss": 1.0, "validation/loss": 1.5, "train/losses/cat/loss_ce": 0.7, "train/losses/dog/loss_ce": 0.3,
     "validation/cat/accuracy": 0.7, "validation/dog/accuracy": 0.9, "train/loss_step": 9.0, "test/cat/accuracy": 0.1},
]  # fmt: skip


def _lines(axes: object) -> dict[str, tuple[list[float], list[float]]]:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}  # type: ignore[attr-defined]


def test_curves_have_one_panel_per_head_with_train_and_validation_of_every_loss_and_metric() -> None:
    figure = plot_curves(HISTORY)

    panels = [axes for axes in figure.axes if axes.get_title()]
    assert sorted(axes.get_title() for axes in panels) == ["cat", "dog", "total loss"]
    cat = next(axes for axes in panels if axes.get_title() == "cat")
    plotted = {
        **_lines(cat),
        **{label: data for axes in figure.axes if axes.bbox.bounds == cat.bbox.bounds for label, data in _lines(axes).items()},
    }
    assert plotted["loss_ce (train)"] == ([1, 2], [1.2, 0.7])
    assert plotted["accuracy (validation)"] == ([1, 2], [0.4, 0.7])
    total = _lines(next(axes for axes in panels if axes.get_title() == "total loss"))
    assert total == {"loss (train)": ([1, 2], [2.0, 1.0]), "loss (validation)": ([1, 2], [2.5, 1.5])}


def test_curves_count_epochs_from_one_as_the_progress_lines_and_best_epoch_do() -> None:
    history = [{"epoch": epoch, "validation/loss": loss} for epoch, loss in enumerate([3.0, 1.0, 2.0])]  # best: the 2nd

    (line,) = _lines(plot_curves(history).axes[0]).values()

    assert line == ([1, 2, 3], [3.0, 1.0, 2.0])  # metrics.json: best_epoch 2, the line "epoch 2/3"


def test_curve_series_leaves_out_step_values_and_the_test_stage() -> None:
    series = curve_series(HISTORY)

    labels = [label for panel in series.values() for kind in panel.values() for label in kind]
    assert not any("test" in label or "step" in label for label in labels)


def test_the_plotted_confusion_matrix_is_torchmetrics_normalised_one_on_the_same_predictions() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (200,), generator=generator)
    prediction = torch.where(torch.rand(200, generator=generator) < 0.7, target, torch.randint(0, 4, (200,), generator=generator))
    metric = MulticlassConfusionMatrix(num_classes=4)
    metric.update(prediction, target)

    matrices = normalized_confusion_matrices({"head/confusion_matrix": metric.compute(), "head/accuracy": torch.tensor(0.7)})
    figure = plot_confusion_matrices(matrices, class_names=["cat", "dog", "eel", "fox"])

    expected = multiclass_confusion_matrix(prediction, target, num_classes=4, normalize="true").numpy()
    assert list(matrices) == ["head/confusion_matrix"]
    np.testing.assert_allclose(matrices["head/confusion_matrix"], expected, atol=1e-6)
    (axes,) = [axes for axes in figure.axes if axes.get_title()]
    np.testing.assert_allclose(axes.images[0].get_array(), expected, atol=1e-6)
    assert [label.get_text() for label in axes.get_xticklabels()] == ["cat", "dog", "eel", "fox"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["cat", "dog", "eel", "fox"]


def test_the_class_scores_figure_writes_each_class_recall_iou_and_precision_beside_its_matrix() -> None:
    from sklearn.metrics import jaccard_score, precision_recall_fscore_support

    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (90,), generator=generator)
    prediction = torch.where(torch.rand(90, generator=generator) < 0.6, target, torch.randint(0, 3, (90,), generator=generator))
    counts = multiclass_confusion_matrix(prediction, target, num_classes=3)
    # The head's own names (a segmentation head's, background first) win over the data's class names.
    per_class = {"background": {"recall": 0.0}, "road": {"recall": 0.0}, "car": {"recall": 0.0}}
    metrics = {"seg/confusion_matrix": counts, "seg/per_class": per_class, "seg/mean_iou": torch.tensor(0.5)}

    figure = plot_class_scores(metrics, class_names=["road", "car"])

    precision, recall, _, _ = precision_recall_fscore_support(target, prediction, labels=range(3), zero_division=0)
    iou = jaccard_score(target, prediction, labels=range(3), average=None, zero_division=0)
    (axes,) = [axes for axes in figure.axes if axes.get_title() == "seg/confusion_matrix"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["background", "road", "car"]
    beside = {  # the secondary axes: precision above the columns, recall and IoU right of the rows
        tuple(label.get_text() for label in labels)
        for child in axes.child_axes
        for labels in (child.get_xticklabels(), child.get_yticklabels())
        if any(label.get_text() for label in labels)
    }
    assert beside == {
        tuple(f"P {value:.2f}" for value in precision),
        tuple(f"R {value:.2f} IoU {overlap:.2f}" for value, overlap in zip(recall, iou, strict=True)),
    }


def test_the_class_scores_figure_draws_per_class_bars_for_heads_without_a_matrix() -> None:
    metrics = {
        "boxes/map": torch.tensor(0.4),
        "boxes/per_class": {
            "cat": {"ap": torch.tensor(0.5), "ap_50": torch.tensor(0.75)},
            "eel": {"ap": torch.tensor(float("nan")), "ap_50": None},  # no true box: undefined (null in metrics.json)
        },
        "presence/per_class": {"cat": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}},
    }

    figure = plot_class_scores(metrics)

    boxes, presence = (axes for axes in figure.axes if axes.get_title())
    assert boxes.get_title() == "boxes: per class"
    assert [label.get_text() for label in boxes.get_yticklabels()] == ["cat", "eel"]
    assert [patch.get_width() for patch in boxes.patches] == pytest.approx([0.5, 0.75])  # eel has no true box: no AP
    assert [(text.get_text(), text.get_position()[1]) for text in boxes.texts if "n/a" in text.get_text()] == [
        ("n/a: no true box", 1)
    ]
    assert [patch.get_width() for patch in presence.patches] == pytest.approx([1.0, 0.5, 0.667])
    assert plot_class_scores({"head/accuracy": torch.tensor(0.5)}) is None


def test_a_class_missing_from_the_split_has_its_recall_and_iou_drawn_as_not_defined_and_its_row_hatched() -> None:
    # Class 1 has no true sample (its row counts 0), class 2 was never predicted (its column counts 0): class_scores
    # gives them 0, which the figure wrote as "R 0.00 IoU 0.00" and "P 0.00" while metrics.json said support 0.
    counts = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 1, 0]])
    metrics = {"seg/confusion_matrix": counts}

    figure = plot_class_scores(metrics, class_names=["a", "b", "c"])

    (axes,) = [axes for axes in figure.axes if axes.get_title() == "seg/confusion_matrix"]
    beside = {
        tuple(label.get_text() for label in labels)
        for child in axes.child_axes
        for labels in (child.get_xticklabels(), child.get_yticklabels())
        if any(label.get_text() for label in labels)
    }
    # by hand: a: 3 of 4 true, 3 of 4 predicted, IoU 3 / 5; b: no true sample, predicted twice, IoU 0 / 2 (a true 0);
    # c: 0 of 2 true, IoU 0 / 2
    assert beside == {("P 0.75", "P 0.00", "P n/a"), ("R 0.75 IoU 0.60", "R n/a IoU 0.00", "R 0.00 IoU 0.00")}
    absent = {"seg/confusion_matrix": torch.tensor([[3, 0, 1], [0, 0, 0], [1, 0, 1]])}  # b neither true nor predicted
    (axes_absent,) = [
        axes for axes in plot_class_scores(absent, ["a", "b", "c"]).axes if axes.get_title() == "seg/confusion_matrix"
    ]
    assert "R n/a IoU n/a" in {label.get_text() for child in axes_absent.child_axes for label in child.get_yticklabels()}
    hatched = [patch.get_y() + 0.5 for patch in axes.patches if patch.get_hatch()]
    assert hatched == [1.0]


def test_a_class_without_a_true_sample_gets_no_bars_but_not_defined() -> None:
    nan = float("nan")
    metrics = {
        "presence/per_class": {
            "cat": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2},
            "eel": {"precision": nan, "recall": nan, "f1": nan, "support": 0},
        }
    }

    figure = plot_class_scores(metrics)

    (panel,) = (axes for axes in figure.axes if axes.get_title())
    assert [label.get_text() for label in panel.get_yticklabels()] == ["cat", "eel"]
    assert [(patch.get_y() + patch.get_height() / 2 > 0.5, patch.get_width()) for patch in panel.patches] == [
        (False, pytest.approx(1.0)),
        (False, pytest.approx(0.5)),
        (False, pytest.approx(0.667)),
    ]
    assert [(text.get_text(), text.get_position()[1]) for text in panel.texts if "n/a" in text.get_text()] == [
        ("n/a: no true sample", 1)
    ]


def test_a_score_without_a_denominator_gets_no_bar_but_not_defined_beside_the_measured_ones() -> None:
    # dog was predicted but has no true point: its precision and F1 are a measured 0 (every prediction false), its
    # recall has nothing to divide by
    metrics = {"spots/per_class": {"dog": {"precision": 0.0, "recall": float("nan"), "f1": 0.0, "support": 0}}}

    (panel,) = (axes for axes in plot_class_scores(metrics).axes if axes.get_title())

    assert [patch.get_width() for patch in panel.patches] == [0.0, 0.0]
    assert [text.get_text() for text in panel.texts if "n/a" in text.get_text()] == ["recall n/a"]


def test_per_class_values_are_read_by_head_as_plain_numbers() -> None:
    values = per_class_values({"a/b/per_class": {"x": {"iou": torch.tensor(0.25)}}, "a/b/confusion_matrix": [[1]]})

    assert values == {"a/b": {"x": {"iou": 0.25}}}


def test_a_class_without_samples_keeps_a_row_of_zeros() -> None:
    (matrix,) = normalized_confusion_matrices({"m": [[0, 0], [1, 3]]}).values()

    np.testing.assert_array_equal(matrix, [[0.0, 0.0], [0.25, 0.75]])


def test_mistakes_come_first_the_worst_first_then_the_rest_in_order() -> None:
    classification = HeadPredictions(
        "head", "classification", np.zeros((6, 2, 2, 3)), np.array([0, 1, 2, 3, 4, 5]), np.array([0, 9, 2, 9, 4, 5])
    )
    truth = np.zeros((3, 2, 2), dtype=np.int64)
    masks = np.array([[[0, 0], [0, 1]], [[1, 1], [1, 0]], [[0, 0], [0, 0]]])
    segmentation = HeadPredictions("roads", "segmentation", np.zeros((3, 2, 2, 3)), truth, masks)

    assert classification.order().tolist() == [1, 3, 0, 2, 4, 5]
    assert segmentation.order().tolist() == [1, 0, 2]  # 3 of 4 pixels wrong, then 1 of 4, then none


def _two_head_collection() -> BrickCollection:
    torch.manual_seed(0)

    def head(classes: int) -> dict[str, object]:
        return {
            "classify": BrickTrainable(nn.Linear(12, classes), input_names=["features"], output_names=["./logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "targets"], output_names=["./loss_ce"]),
            "metrics": BrickMetrics({"accuracy": MulticlassAccuracy(num_classes=classes)}, input_names=["./logits", "targets"]),
        }

    flatten = BrickTrainable(nn.Flatten(), input_names=["raw"], output_names=["features"])
    return BrickCollection({"backbone": flatten, "digit": head(3), "parity": head(3)})


def test_predictions_show_ground_truth_beside_prediction_mistakes_first_one_titled_section_per_head(tmp_path: Path) -> None:
    collection = _two_head_collection()
    batches = [{"raw": torch.rand(5, 3, 2, 2), "targets": torch.randint(0, 3, (5,))} for _ in range(2)]
    with torch.no_grad():
        reference = torch.cat([collection(batch)["digit/logits"].argmax(1) for batch in batches])
    targets = torch.cat([batch["targets"] for batch in batches])

    predictions = collect_predictions(collection, batches)
    figure = plot_predictions(predictions, class_names=["zero", "one", "two"], n_samples=10)
    save_figure(figure, tmp_path / "predictions.png")

    assert [(head.head, head.kind) for head in predictions] == [("digit", "classification"), ("parity", "classification")]
    np.testing.assert_array_equal(predictions[0].prediction, reference.numpy())
    np.testing.assert_array_equal(predictions[0].truth, targets.numpy())
    sections = figure.subfigs
    assert len(sections) == 2
    assert sections[0].get_suptitle().startswith("digit (classification)")
    n_wrong = int((reference != targets).sum())
    assert f"{n_wrong} of 10 test images wrong" in sections[0].get_suptitle()
    captions = [axes.get_title() for axes in sections[0].axes if axes.get_title()]
    order = predictions[0].order()
    expected = [f"true {['zero', 'one', 'two'][targets[i]]}\npred {['zero', 'one', 'two'][reference[i]]}" for i in order]
    assert captions == expected
    assert all(caption.split("\n")[0][5:] != caption.split("\n")[1][5:] for caption in captions[:n_wrong])
    assert Image.open(tmp_path / "predictions.png").size[0] > 0


@pytest.mark.parametrize("output", ["probabilities", "logits"])
def test_a_binary_head_is_drawn_with_the_classes_its_binary_metric_decides(output: str) -> None:
    # Truncated to integers, probabilities were all class 0 and logits any integer: a head of accuracy 1.0 was drawn
    # with every positive image wrong.
    from torchmetrics.classification import BinaryAccuracy

    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(8, 3, 2, 2, generator=generator)
    targets = (raw.mean(dim=(1, 2, 3)) > 0).long()
    logits = raw.mean(dim=(1, 2, 3)) * 5

    class Score(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            scores = images.mean(dim=(1, 2, 3)) * 5
            return torch.sigmoid(scores) if output == "probabilities" else scores

    collection = BrickCollection(
        {
            "head": {
                "score": BrickTrainable(Score(), input_names=["raw"], output_names=["./score"]),
                "accuracy": BrickMetricSingle(BinaryAccuracy(), input_names=["./score", "targets"]),
            }
        }
    )

    (head,) = collect_predictions(collection, [{"raw": raw, "targets": targets}])

    assert head.kind == "classification"
    np.testing.assert_array_equal(head.prediction, (torch.sigmoid(logits) > 0.5).long().numpy())
    assert int(head.errors().sum()) == 0  # as BinaryAccuracy says of the same scores
    assert float(BinaryAccuracy()(torch.sigmoid(logits), targets)) == 1.0


def test_segmentation_heads_draw_the_true_and_the_predicted_mask_side_by_side() -> None:
    collection = BrickCollection(
        {
            "segment": BrickTrainable(nn.Conv2d(3, 4, 1), input_names=["raw"], output_names=["roads/logits"]),
            "metrics": BrickMetrics(
                {"accuracy": MulticlassAccuracy(num_classes=4, multidim_average="global")}, input_names=["roads/logits", "masks"]
            ),
        }
    )
    batch = {"raw": torch.rand(3, 3, 5, 5), "masks": torch.randint(0, 4, (3, 5, 5))}

    (head,) = collect_predictions(collection, [batch])
    figure = plot_predictions([head], n_samples=3, columns=4)

    assert head.kind == "segmentation"
    captions = [axes.get_title() for axes in figure.subfigs[0].axes if axes.get_title()]
    assert captions[0::2] == ["true"] * 3
    assert all(caption.startswith("pred (") for caption in captions[1::2])


@pytest.mark.parametrize("missing", ["no metric brick", "no image input"])
def test_nothing_to_draw_gives_no_predictions(missing: str) -> None:
    collection = _two_head_collection()
    if missing == "no metric brick":
        collection = BrickCollection({"backbone": BrickTrainable(nn.Flatten(), input_names=["raw"], output_names=["features"])})
        batch = {"raw": torch.rand(2, 3, 2, 2), "targets": torch.tensor([0, 1])}
    else:
        batch = {"raw": torch.rand(2, 12), "targets": torch.tensor([0, 1])}

    assert collect_predictions(collection, [batch]) == []


# --- box heads ---------------------------------------------------------------------------------------------------

# Three images of 32x32, true boxes padded to two per image (label -1), and the predictions a fixed "decoder" makes:
# image 0 finds its one box exactly; image 1 finds a box of the wrong class and misses its second box (3 unmatched);
# image 2 finds its box shifted (IoU 0.8, a match), adds a false box (1 unmatched) and one below the drawn score.
TRUE_BOXES = torch.tensor(
    [
        [[2.0, 2, 12, 12], [0, 0, 0, 0]],
        [[4.0, 4, 20, 20], [16, 16, 30, 30]],
        [[0.0, 0, 10, 10], [0, 0, 0, 0]],
    ]
)
TRUE_LABELS = torch.tensor([[0, -1], [1, 0], [1, -1]])
PREDICTED_BOXES = torch.tensor(
    [
        [[2.0, 2, 12, 12], [0, 0, 0, 0], [0, 0, 0, 0]],
        [[4.0, 4, 20, 20], [0, 0, 0, 0], [0, 0, 0, 0]],
        [[1.0, 0, 11, 10], [20, 20, 28, 28], [5, 5, 9, 9]],
    ]
)
PREDICTED_SCORES = torch.tensor([[0.9, 0.0, 0.0], [0.8, 0.0, 0.0], [0.7, 0.5, 0.1]])
PREDICTED_LABELS = torch.tensor([[0, -1, -1], [0, -1, -1], [1, 0, 1]])


class _FixedBoxes(nn.Module):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return PREDICTED_BOXES, PREDICTED_SCORES, PREDICTED_LABELS


def _box_collection() -> BrickCollection:
    from torchbricks.bag_of_bricks.object_detection import BoxMeanAveragePrecision

    return BrickCollection(
        {
            "cars": {
                "decode": BrickTrainable(_FixedBoxes(), input_names=["raw"], output_names=["./boxes", "./scores", "./labels"]),
                "mean_average_precision": BrickMetrics(
                    {"mean_average_precision": BoxMeanAveragePrecision()},
                    input_names=["./boxes", "./scores", "./labels", "boxes", "labels"],
                ),
            }
        }
    )


def _drawn(axes: object) -> tuple[list[list[float]], list[str]]:
    """The rectangles on `axes` as (x_min, y_min, x_max, y_max) and their tags."""
    rectangles = [
        [*patch.get_xy(), patch.get_x() + patch.get_width(), patch.get_y() + patch.get_height()] for patch in axes.patches
    ]  # type: ignore[attr-defined]
    return rectangles, [text.get_text() for text in axes.texts]  # type: ignore[attr-defined]


def test_box_heads_draw_true_boxes_beside_predicted_boxes_with_names_and_scores_most_unmatched_first() -> None:
    batch = {"raw": torch.rand(3, 3, 32, 32), "boxes": TRUE_BOXES, "labels": TRUE_LABELS}

    (head,) = collect_predictions(_box_collection(), [batch])
    figure = plot_predictions([head], class_names=["car", "bus"], n_samples=3, columns=4)

    assert (head.head, head.kind) == ("cars", "boxes")
    assert head.errors().tolist() == [0.0, 3.0, 1.0]
    assert head.order().tolist() == [1, 2, 0]
    (section,) = figure.subfigs
    assert section.get_suptitle().startswith("cars (boxes): 2 of 3 test images wrong, mistakes first")
    panels = [axes for axes in section.axes if axes.get_title()]
    assert [axes.get_title() for axes in panels] == [
        "true (2)", "pred (3 unmatched)", "true (1)", "pred (1 unmatched)", "true (1)", "pred (0 unmatched)"
    ]  # fmt: skip
    names = ["car", "bus"]
    for position, index in enumerate([1, 2, 0]):
        real = TRUE_LABELS[index] >= 0
        rectangles, tags = _drawn(panels[2 * position])
        assert rectangles == TRUE_BOXES[index][real].tolist()
        assert tags == [names[label] for label in TRUE_LABELS[index][real]]
        shown = (PREDICTED_LABELS[index] >= 0) & (PREDICTED_SCORES[index] >= 0.3)
        rectangles, tags = _drawn(panels[2 * position + 1])
        assert rectangles == PREDICTED_BOXES[index][shown].tolist()
        scores = PREDICTED_SCORES[index][shown].tolist()
        assert tags == [
            f"{names[label]} {score:.2f}" for label, score in zip(PREDICTED_LABELS[index][shown], scores, strict=True)
        ]


def test_a_box_matches_a_true_box_of_its_class_from_iou_one_half() -> None:
    image = np.zeros((1, 4, 4, 3))
    truth = [Boxes(np.array([[0.0, 0, 10, 10]]), np.array([0]))]

    def unmatched(box: list[float], label: int = 0) -> float:
        prediction = [Boxes(np.array([box]), np.array([label]), np.array([0.9]))]
        return float(BoxHeadPredictions("h", image, truth, prediction).errors()[0])

    # IoU of [0, 0, 10, 10] with [x, 0, 10 + x, 10] is (10 - x) / (10 + x): x = 10/3 gives exactly 1/2.
    assert unmatched([3.0, 0, 13, 10]) == 0.0  # IoU 7/13 > 1/2
    assert unmatched([4.0, 0, 14, 10]) == 2.0  # IoU 6/14 < 1/2: a false box and a missed box
    assert unmatched([0.0, 0, 10, 10], label=1) == 2.0  # the right place, the wrong class


def test_a_box_on_an_object_evaluation_ignores_is_no_mistake_by_cocos_crowd_rule() -> None:
    image = np.zeros((1, 4, 4, 3))
    truth = [Boxes(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))]
    ignored = [Boxes(np.array([[0.0, 0, 20, 20]]), np.array([0]))]  # a crowd region (or a cut object) of class 0

    def unmatched(box: list[float], label: int = 0, regions: list[Boxes] | None = ignored) -> float:
        prediction = [Boxes(np.array([box]), np.array([label]), np.array([0.9]))]
        return float(BoxHeadPredictions("h", image, truth, prediction, ignored=regions).errors()[0])

    assert unmatched([2.0, 2, 8, 8]) == 0.0  # inside the region: its IoU is small, its share inside is 1
    assert unmatched([15.0, 0, 25, 10]) == 0.0  # half of it inside: COCO's crowd rule counts it as found
    assert unmatched([16.0, 0, 26, 10]) == 1.0  # 0.4 of it inside: a false box
    assert unmatched([2.0, 2, 8, 8], label=1) == 1.0  # another class: a false box
    assert unmatched([2.0, 2, 8, 8], regions=None) == 1.0  # no ignored regions known


def test_ignored_objects_come_from_the_labels_below_minus_one_of_the_collected_targets() -> None:
    from torchbricks.bag_of_bricks.object_detection import create_object_detection_head

    head = create_object_detection_head(2, 3, "raw", 1, target_boxes_name="boxes", target_labels_name="labels")
    collection = BrickCollection({"detect": head})
    labels = torch.tensor([[0, -3], [-2, -1], [1, 0]])  # -3: an ignored object of class 1
    batch = {"raw": torch.rand(3, 3, 8, 8), "boxes": TRUE_BOXES / 4, "labels": labels}

    (found,) = collect_predictions(collection, [batch])

    assert isinstance(found, BoxHeadPredictions)
    assert found.ignored is not None
    assert [boxes.labels.tolist() for boxes in found.ignored] == [[1], [0], []]
    np.testing.assert_allclose(found.ignored[0].boxes, (TRUE_BOXES[0][1:2] / 4).numpy())
    assert [boxes.labels.tolist() for boxes in found.truth] == [[0], [], [1, 0]]


def test_box_heads_of_the_packaged_detection_head_are_found_with_their_decoded_boxes() -> None:
    from torchbricks.bag_of_bricks.object_detection import create_object_detection_head

    torch.manual_seed(0)
    head = create_object_detection_head(2, 3, "raw", 1, target_boxes_name="boxes", target_labels_name="labels")
    head["detect"].model.heatmap.bias.data.fill_(0.0)  # type: ignore[union-attr]  # scores near 1/2, above the drawn minimum
    collection = BrickCollection({"detect": head})
    batch = {"raw": torch.rand(3, 3, 8, 8), "boxes": TRUE_BOXES / 4, "labels": TRUE_LABELS}
    with torch.no_grad():
        outputs = collection(dict(batch), tags="MODEL")

    (found,) = collect_predictions(collection, [batch])

    assert isinstance(found, BoxHeadPredictions)
    assert found.head == "detect"
    for index in range(3):
        shown = (outputs["detect/labels"][index] >= 0) & (outputs["detect/scores"][index] >= 0.3)
        assert shown.any()
        np.testing.assert_allclose(found.prediction[index].boxes, outputs["detect/boxes"][index][shown].numpy(), rtol=1e-6)
        np.testing.assert_array_equal(found.truth[index].labels, TRUE_LABELS[index][TRUE_LABELS[index] >= 0].numpy())


# --- point heads -------------------------------------------------------------------------------------------------

TRUE_POINTS = torch.tensor([[[4.0, 4], [20, 20], [0, 0]], [[10.0, 10], [0, 0], [0, 0]], [[5.0, 5], [25, 5], [5, 25]]])
TRUE_POINT_LABELS = torch.tensor([[0, 1, -1], [0, -1, -1], [0, 0, 1]])
PREDICTED_POINTS = torch.tensor([[[5.0, 4], [20, 21]], [[30.0, 30], [10, 11]], [[5.0, 25], [0, 0]]])
PREDICTED_POINT_LABELS = torch.tensor([[0, 1], [0, 0], [1, -1]])


class _FixedPoints(nn.Module):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return PREDICTED_POINTS, PREDICTED_POINT_LABELS


def test_point_heads_draw_true_points_beside_predicted_points_unmatched_counts_agree_with_the_f1_metric() -> None:
    from torchbricks.bag_of_bricks.point_detection import PointDetectionF1

    collection = BrickCollection(
        {
            "cells": {
                "decode": BrickTrainable(_FixedPoints(), input_names=["raw"], output_names=["./points", "./labels"]),
                "f1": BrickMetricSingle(PointDetectionF1(distance=2.0), input_names=["./points", "./labels", "points", "labels"]),
            }
        }
    )
    batch = {"raw": torch.rand(3, 3, 32, 32), "points": TRUE_POINTS, "labels": TRUE_POINT_LABELS}

    (head,) = collect_predictions(collection, [batch])
    figure = plot_predictions([head], class_names=["a", "b"], n_samples=3, columns=4)

    expected_errors = []
    for index in range(3):
        metric = PointDetectionF1(distance=2.0)
        metric.update(PREDICTED_POINTS[index : index + 1], PREDICTED_POINT_LABELS[index : index + 1],
                      TRUE_POINTS[index : index + 1], TRUE_POINT_LABELS[index : index + 1])  # fmt: skip
        expected_errors.append(float(metric.false_positives + metric.false_negatives))
    assert isinstance(head, PointHeadPredictions)
    assert (head.head, head.distance) == ("cells", 2.0)
    assert head.errors().tolist() == expected_errors == [0.0, 1.0, 2.0]
    assert head.order().tolist() == [2, 1, 0]
    (section,) = figure.subfigs
    assert section.get_suptitle().startswith("cells (points): 2 of 3 test images wrong, mistakes first")
    panels = [axes for axes in section.axes if axes.get_title()]
    for position, index in enumerate([2, 1, 0]):
        for axes, points, labels in (
            (panels[2 * position], TRUE_POINTS[index], TRUE_POINT_LABELS[index]),
            (panels[2 * position + 1], PREDICTED_POINTS[index], PREDICTED_POINT_LABELS[index]),
        ):
            shown = labels >= 0
            drawn = [[float(line.get_xdata()[0]), float(line.get_ydata()[0])] for line in axes.get_lines()]
            assert drawn == points[shown].tolist()
            assert [text.get_text() for text in axes.texts] == [["a", "b"][label] for label in labels[shown]]
            assert (axes.get_xlim(), axes.get_ylim()) == ((-0.5, 31.5), (31.5, -0.5))


def test_a_points_head_gets_a_bar_panel_of_each_class_precision_recall_and_f1() -> None:
    from torchbricks.bag_of_bricks.point_detection import PointDetectionScores

    scores = PointDetectionScores(num_classes=2, distance=2.0, class_names=["a", "b"])
    collection = BrickCollection(
        {
            "cells": {
                "decode": BrickTrainable(_FixedPoints(), input_names=["raw"], output_names=["./points", "./labels"]),
                "metrics": BrickMetrics({"f1": scores}, input_names=["./points", "./labels", "points", "labels"]),
            }
        }
    )
    collection(named_inputs={"raw": torch.rand(3, 3, 32, 32), "points": TRUE_POINTS, "labels": TRUE_POINT_LABELS})

    figure = plot_class_scores(collection.summarize(reset=True))

    (panel,) = (axes for axes in figure.axes if axes.get_title())
    assert panel.get_title() == "cells: per class"
    assert [label.get_text() for label in panel.get_yticklabels()] == ["a", "b"]
    # a: 2 of its 4 true points found, by 3 predictions (the one at (30, 30) is far from any); b: both, by 2
    assert [patch.get_width() for patch in panel.patches] == pytest.approx([2 / 3, 1.0, 2 / 4, 1.0, 4 / 7, 1.0])


# --- multi-label heads -------------------------------------------------------------------------------------------

# Four images, three classes. Image 0 is right; image 1 misses class 2 (1 wrong); image 2 adds class 0 and misses
# class 1 (2 wrong); image 3 is right with no class at all.
TRUE_PRESENT = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0], [0, 0, 0]])
PROBABILITIES = torch.tensor([[0.9, 0.2, 0.7], [0.8, 0.6, 0.4], [0.55, 0.3, 0.1], [0.1, 0.2, 0.3]])


class _FixedPresence(nn.Module):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.logit(PROBABILITIES), PROBABILITIES, (PROBABILITIES > 0.5).long()


def test_multilabel_heads_caption_true_classes_above_predicted_classes_with_scores_most_wrong_classes_first() -> None:
    from torchmetrics.classification import MultilabelF1Score
    from torchmetrics.functional.classification import multilabel_hamming_distance

    collection = BrickCollection(
        {
            "presence": {
                "classify": BrickTrainable(
                    _FixedPresence(), input_names=["raw"], output_names=["./logits", "./probabilities", "./present"]
                ),
                "metrics": BrickMetrics({"f1": MultilabelF1Score(num_labels=3)}, input_names=["./present", "classes"]),
            }
        }
    )
    batch = {"raw": torch.rand(4, 3, 8, 8), "classes": TRUE_PRESENT}

    (head,) = collect_predictions(collection, [batch])
    figure = plot_predictions([head], class_names=["cat", "dog", "eel"], n_samples=4, columns=4)

    wrong = [round(float(multilabel_hamming_distance((PROBABILITIES[i : i + 1] > 0.5).long(), TRUE_PRESENT[i : i + 1],
                                                      num_labels=3)) * 3) for i in range(4)]  # fmt: skip
    assert isinstance(head, MultiLabelHeadPredictions)
    assert (head.head, head.kind) == ("presence", "multilabel")
    assert head.errors().tolist() == wrong == [0, 1, 2, 0]
    assert head.order().tolist() == [2, 1, 0, 3]
    np.testing.assert_allclose(head.scores, PROBABILITIES.numpy())  # the brick's other output, `./probabilities`
    (section,) = figure.subfigs
    assert section.get_suptitle().startswith("presence (multilabel): 2 of 4 test images wrong, mistakes first")
    panels = [axes for axes in section.axes if axes.get_title()]
    assert [axes.get_title() for axes in panels] == [
        "true dog\npred cat 0.55",
        "true cat, dog,\neel\npred cat 0.80, dog 0.60",
        "true cat, eel\npred cat 0.90, eel 0.70",
        "true -\npred -",
    ]
    assert [axes.title.get_color() for axes in panels] == ["tab:red", "tab:red", "black", "black"]
    for axes, index in zip(panels, [2, 1, 0, 3], strict=True):
        np.testing.assert_array_equal(axes.images[0].get_array(), head.images[index])


def test_a_class_of_unknown_presence_is_drawn_as_neither_true_nor_a_mistake() -> None:
    head = MultiLabelHeadPredictions(
        "presence",
        images=np.zeros((2, 4, 4, 3)),
        truth=np.array([[1, -1, 0], [-1, 0, 0]]),  # -1: a class seen only in ignored objects (a crowd, a cut object)
        prediction=np.array([[1, 1, 0], [0, 0, 1]]),
    )

    assert head.errors().tolist() == [0.0, 1.0]  # the class of unknown presence is neither right nor wrong
    assert head.caption(0, ["cat", "dog", "eel"]) == "true cat\npred cat, dog"


def test_multilabel_metrics_reading_scores_threshold_them_at_one_half_and_list_many_classes_shortly() -> None:
    from torchmetrics.classification import MultilabelAccuracy

    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, 1.0, 0.2]])
    collection = BrickCollection(
        {
            "tags": {
                "classify": BrickTrainable(nn.Identity(), input_names=["logits"], output_names=["./logits"]),
                "metrics": BrickMetrics({"accuracy": MultilabelAccuracy(num_labels=6)}, input_names=["./logits", "truth"]),
            }
        }
    )
    batch = {"raw": torch.rand(1, 3, 4, 4), "logits": logits, "truth": torch.tensor([[1, 0, 1, 1, 1, 1]])}

    (head,) = collect_predictions(collection, [batch])

    assert isinstance(head, MultiLabelHeadPredictions)
    np.testing.assert_allclose(head.scores, torch.sigmoid(logits).numpy(), rtol=1e-6)
    assert head.prediction.tolist() == [[1, 0, 1, 1, 1, 1]]
    assert head.errors().tolist() == [0.0]
    assert head.caption(0, max_classes=4, per_line=5) == "true 0, 2, 3, 4, +1\npred 3 0.95, 0 0.88, 4 0.73, 2 0.62, +1"
    assert head.caption(0, max_classes=3) == "true 0, 2,\n3, +2\npred 3 0.95, 0 0.88,\n4 0.73, +2"


def test_the_presence_head_of_the_packaged_multitask_config_is_drawn_with_its_probabilities(tmp_path: Path) -> None:
    from torchbricks.configuration import compose_config, create_brick_collection
    from torchbricks.datasets.shapes import write_shapes_dataset
    from torchbricks.lightning.task_resolvers import register_resolvers

    register_resolvers()  # as the main job does: the task configs read their classes from the data
    root = write_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=2, image_size=32) / "detection"
    torch.manual_seed(0)
    collection = create_brick_collection(compose_config(["task=multitask", f"data.root={root}"]))
    batch = {
        "raw": torch.rand(2, 3, 32, 32),
        "target_boxes": torch.tensor([[[1.0, 1, 9, 9]], [[4.0, 4, 20, 20]]]),
        "target_labels": torch.tensor([[0], [2]]),
        "target_mask": torch.zeros(2, 32, 32, dtype=torch.int64),
        "target_classes": torch.tensor([[1, 0, 0], [0, 0, 1]]),
    }
    with torch.no_grad():
        outputs = collection(dict(batch), tags="MODEL")

    found = {head.head: head for head in collect_predictions(collection, [batch])}

    assert sorted((name, head.kind) for name, head in found.items()) == [
        ("detection", "boxes"), ("presence", "multilabel"), ("segmentation", "segmentation")
    ]  # fmt: skip
    presence = found["presence"]
    assert isinstance(presence, MultiLabelHeadPredictions)
    np.testing.assert_allclose(presence.scores, outputs["presence/probabilities"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(presence.prediction, outputs["presence/present"].numpy())
    np.testing.assert_array_equal(presence.truth, batch["target_classes"].numpy())
    figure = plot_predictions(list(found.values()), class_names=["circle", "square", "triangle"], n_samples=2)
    titles = [section.get_suptitle() for section in figure.subfigs]
    assert any(title.startswith("presence (multilabel)") for title in titles)
