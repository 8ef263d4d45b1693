from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import iou_per_class

from torchbricks.bag_of_bricks.custom_metrics import (
    ConcatenatePredictionAndTarget,
    ConfusionMatrixClassScores,
    MulticlassMeanAccuracy,
    MulticlassMeanIoU,
    MultilabelClassScores,
)
from torchbricks.bricks import BrickMetricSingle
from torchbricks.errors import BrickError


def test_concatenate_prediction_and_target_returns_every_batch_in_order() -> None:
    batches = [(torch.rand(3, 4), torch.randint(0, 4, (3,))), (torch.rand(2, 4), torch.randint(0, 4, (2,)))]
    metric = ConcatenatePredictionAndTarget()
    for predictions, targets in batches:
        metric.update(predictions, targets)

    predictions, targets = metric.compute()

    torch.testing.assert_close(predictions, torch.cat([batch[0] for batch in batches]))
    torch.testing.assert_close(targets, torch.cat([batch[1] for batch in batches]))
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update`` method"):
        assert [value.numel() for value in metric.compute()] == [0, 0]


def test_concatenate_prediction_and_target_rejects_batches_of_different_sizes() -> None:
    with pytest.raises(BrickError, match=r"got shapes \(3, 4\) and \(2,\)"):
        ConcatenatePredictionAndTarget().update(torch.rand(3, 4), torch.zeros(2))


def test_concatenate_prediction_and_target_works_in_a_metric_brick() -> None:
    brick = BrickMetricSingle(ConcatenatePredictionAndTarget(), input_names=["logits", "targets"], metric_name="concat")
    logits, targets = torch.rand(5, 3), torch.arange(5)
    brick({"logits": logits, "targets": targets})

    (values,) = brick.summarize(reset=True).values()
    torch.testing.assert_close(values[0], logits)
    torch.testing.assert_close(values[1], targets)


def test_confusion_matrix_class_scores_equal_scikit_learn_on_the_same_predictions() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (300,), generator=generator)
    prediction = torch.where(torch.rand(300, generator=generator) < 0.6, target, torch.randint(0, 4, (300,), generator=generator))
    prediction[prediction == 3] = 2  # class 3 is never predicted: its precision is undefined (NaN), not 0
    names = ["cat", "dog", "eel", "fox"]
    metric = ConfusionMatrixClassScores(num_classes=4, class_names=names)
    for chunk in range(3):
        metric.update(prediction[chunk * 100 : (chunk + 1) * 100], target[chunk * 100 : (chunk + 1) * 100])

    values = metric.compute()

    precision, recall, _, support = precision_recall_fscore_support(target, prediction, labels=range(4), zero_division=np.nan)
    iou = iou_per_class(target, prediction, range(4))
    assert list(values["per_class"]) == names
    for index, name in enumerate(names):
        scores = values["per_class"][name]
        assert float(scores["precision"]) == pytest.approx(precision[index], abs=1e-6, nan_ok=True)
        assert float(scores["recall"]) == pytest.approx(recall[index], abs=1e-6, nan_ok=True)
        assert float(scores["iou"]) == pytest.approx(iou[index], abs=1e-6, nan_ok=True)
        assert int(scores["support"]) == support[index]
    assert values["confusion_matrix"].sum() == 300


def test_segmentation_class_scores_leave_out_ignored_pixels_as_scikit_learn_does_without_them() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    target[:, :2] = 255
    prediction = torch.where(torch.rand(2, 8, 8, generator=generator) < 0.7, target.clamp(max=2), 1)
    metric = ConfusionMatrixClassScores(num_classes=3, class_names=["background", "road", "car"], ignore_index=255)
    metric.update(prediction, target)

    scores = metric.compute()["per_class"]

    kept = target != 255
    truth, guess = target[kept].numpy(), prediction[kept].numpy()
    precision, recall, _, support = precision_recall_fscore_support(truth, guess, labels=range(3), zero_division=np.nan)
    iou = iou_per_class(truth, guess, range(3))
    assert [float(scores[name]["precision"]) for name in scores] == pytest.approx(precision.tolist(), abs=1e-6, nan_ok=True)
    assert [float(scores[name]["recall"]) for name in scores] == pytest.approx(recall.tolist(), abs=1e-6, nan_ok=True)
    assert [float(scores[name]["iou"]) for name in scores] == pytest.approx(iou.tolist(), abs=1e-6, nan_ok=True)
    assert [int(scores[name]["support"]) for name in scores] == support.tolist()


def test_mean_iou_equals_scikit_learn_on_masks_with_ignored_pixels_and_from_scores() -> None:
    from sklearn.metrics import jaccard_score

    generator = torch.Generator().manual_seed(2)
    target = torch.randint(0, 4, (3, 16, 16), generator=generator)
    target[:, :3] = 255
    scores = torch.rand(3, 4, 16, 16, generator=generator)
    metric = MulticlassMeanIoU(num_classes=4, ignore_index=255)
    metric.update(scores[:2], target[:2])  # float scores [B, C, H, W] are argmax'ed
    metric.update(scores[2:].argmax(dim=1), target[2:])

    kept = target != 255
    expected = jaccard_score(target[kept].numpy(), scores.argmax(dim=1)[kept].numpy(), labels=range(4), average="macro")
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-6)


def test_mean_iou_takes_its_arguments_by_position_as_torchmetrics_jaccard_index_does() -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    generator = torch.Generator().manual_seed(3)
    target, prediction = torch.randint(0, 3, (2, 8, 8), generator=generator), torch.randint(0, 3, (2, 8, 8), generator=generator)
    metric, reference = MulticlassMeanIoU(3, "macro", 255), MulticlassJaccardIndex(3, "macro", 255)

    assert float(metric(prediction, target)) == pytest.approx(float(reference(prediction, target)), abs=1e-6)


@pytest.mark.parametrize("metric_class", [MulticlassMeanIoU, ConfusionMatrixClassScores])
@pytest.mark.parametrize(
    ("prediction", "target", "expected"),
    [
        (torch.tensor([[0, 1]]), torch.tensor([[1, 3]]), "targets hold 3, expected class indices 0 .. 2 or 255 (ignored)"),
        (torch.tensor([[0, 1]]), torch.tensor([[-1, 0]]), "targets hold -1, expected class indices 0 .. 2"),
        (torch.tensor([[0, 5]]), torch.tensor([[0, 0]]), "predictions hold 5"),
        (torch.tensor([[0, 255]]), torch.tensor([[0, 0]]), "predictions hold 255, expected class indices 0 .. 2;"),
        (torch.tensor([[0, 1]]), torch.tensor([[0.0, 1.0]]), "targets must be class indices (an integer tensor)"),
        (torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1]]), "predictions of shape (1, 3) do not fit targets of shape (1, 2)"),
        (torch.rand(1, 2, 4), torch.tensor([[0, 1, 1, 0]]), "float scores with 3 classes on axis 1"),
    ],
)
def test_multiclass_metrics_name_the_bad_value_or_shape(
    metric_class: type, prediction: torch.Tensor, target: torch.Tensor, expected: str
) -> None:
    # torchmetrics' own validation counted distinct values only: [1, 3] with 3 classes passed it and failed later
    # in a reshape; the check names the value and nothing is counted
    metric = metric_class(num_classes=3, ignore_index=255)

    with pytest.raises(BrickError, match=re.escape(expected)) as raised:
        metric.update(prediction, target)

    assert metric_class.__name__ in str(raised.value)
    assert int(metric.confmat.sum()) == 0


def test_multiclass_metrics_count_the_ignored_index_as_nothing_and_accept_every_class() -> None:
    metric = ConfusionMatrixClassScores(num_classes=3, ignore_index=255)

    metric.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 2, 255, 2]]))

    assert metric.compute()["confusion_matrix"].tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]


def test_multilabel_class_scores_equal_scikit_learn_per_class() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    generator = torch.Generator().manual_seed(2)
    target = torch.randint(0, 2, (40, 3), generator=generator)
    prediction = torch.where(torch.rand(40, 3, generator=generator) < 0.7, target, 1 - target)
    prediction[:, 2] = 0  # never predicted: precision undefined (NaN), F1 a measured 0
    metric = MultilabelClassScores(num_labels=3, class_names=["circle", "square", "triangle"])
    metric.update(prediction, target)

    scores = metric.compute()["per_class"]

    precision, recall, f1, support = precision_recall_fscore_support(target, prediction, average=None, zero_division=np.nan)
    for index, name in enumerate(["circle", "square", "triangle"]):
        assert float(scores[name]["precision"]) == pytest.approx(precision[index], abs=1e-6, nan_ok=True)
        assert float(scores[name]["recall"]) == pytest.approx(recall[index], abs=1e-6, nan_ok=True)
        assert float(scores[name]["f1"]) == pytest.approx(f1[index], abs=1e-6, nan_ok=True)
        assert int(scores[name]["support"]) == support[index]


def test_class_scores_need_one_distinct_name_per_class() -> None:
    with pytest.raises(BrickError, match="has 3 classes but 2 class names"):
        ConfusionMatrixClassScores(num_classes=3, class_names=["a", "b"])
    with pytest.raises(BrickError, match="distinct class names"):
        MultilabelClassScores(num_labels=2, class_names=["a", "a"])


def test_class_scores_in_a_metric_collection_keep_the_confusion_matrix_name_and_log_no_scalar(tmp_path: Path) -> None:
    from torchmetrics.classification import MulticlassAccuracy

    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import BrickMetrics
    from torchbricks.lightning import LightningBrickCollection
    from torchbricks.tags import Stage

    brick = BrickMetrics(
        {
            "accuracy": MulticlassAccuracy(num_classes=2, average="micro"),
            "confusion_matrix": ConfusionMatrixClassScores(num_classes=2, class_names=["a", "b"]),
        },
        input_names=["prediction", "target"],
    )
    brick.metrics.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    module = LightningBrickCollection(tmp_path, "names", BrickCollection({"head": {"metrics": brick}}), torch.optim.SGD)

    assert sorted(brick.summarize(reset=True)) == ["accuracy", "confusion_matrix", "per_class"]
    assert [name for name in module.logged_names(Stage.VALIDATION) if name.startswith("validation/head")] == [
        "validation/head/accuracy"
    ]  # the matrix and the per-class values go to metrics.json, not to the logger


def test_mean_iou_averages_the_classes_in_the_masks_or_the_predictions_whatever_the_batches() -> None:
    """As the README says: a class neither in a mask nor predicted is left out of the mean (not an IoU of 0), a class
    predicted where no mask has it counts with its IoU of 0, the background is a class like the others, and 255 pixels
    count nowhere; the same in batches of 1, 3 or all the masks (the last batch partial). Reference: numpy."""
    generator = torch.Generator().manual_seed(4)
    target = torch.randint(0, 3, (7, 6, 6), generator=generator)  # classes 0 to 2; class 4 never in a mask
    target[1] = 0  # a mask of nothing but the background
    target[2, :2] = 255
    prediction = torch.randint(0, 3, (7, 6, 6), generator=generator)
    prediction[3, 0, :3] = 3  # class 3: predicted, in no mask
    kept = target != 255
    truth, guess = target[kept].numpy(), prediction[kept].numpy()
    unions = [np.sum((truth == index) | (guess == index)) for index in range(5)]
    ious = [np.sum((truth == index) & (guess == index)) / union for index, union in enumerate(unions) if union]
    assert len(ious) == 4  # class 4 left out
    assert ious[3] == 0  # class 3 counted with its IoU of 0

    for batch_size in (1, 3, 7):
        metric = MulticlassMeanIoU(num_classes=5, ignore_index=255)
        for start in range(0, 7, batch_size):
            metric.update(prediction[start : start + batch_size], target[start : start + batch_size])
        assert float(metric.compute()) == pytest.approx(np.mean(ious), abs=1e-6), batch_size


def test_mean_iou_leaves_out_a_class_neither_true_nor_predicted_and_counts_a_class_only_predicted_as_its_true_0() -> None:
    # torchmetrics' macro mean weighs 0 a class whose union is empty (no IoU), so the mean is over the classes with an
    # IoU; a class predicted without a true pixel has a measured IoU of 0 (every such prediction false), counted.
    target = torch.tensor([[0, 0, 0, 1, 255, 255]])
    prediction = torch.tensor([[0, 0, 1, 1, 1, 2]])  # class 2 only where the target is ignored: neither true nor predicted
    metric = MulticlassMeanIoU(num_classes=4, ignore_index=255)
    only_predicted = MulticlassMeanIoU(num_classes=3, ignore_index=255)

    mean = float(metric(prediction, target))
    with_class_only_predicted = float(only_predicted(torch.tensor([0, 0, 2]), torch.tensor([0, 0, 1])))

    kept = target != 255
    per_class = iou_per_class(target[kept].numpy(), prediction[kept].numpy(), range(4))  # [2/3, 1/2, nan, nan]
    assert mean == pytest.approx(float(np.nanmean(per_class))) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert mean != pytest.approx(float(np.nan_to_num(per_class).mean()))  # (2/3 + 1/2) / 4: absent classes as 0
    assert with_class_only_predicted == pytest.approx((1.0 + 0.0 + 0.0) / 3)  # a 2 / 2, b 0 / 1 (missed), c 0 / 1 (false)


def test_mean_accuracy_is_the_mean_recall_of_the_classes_with_a_true_sample_as_scikit_learns_balanced_accuracy() -> None:
    # torchmetrics' macro accuracy counted class 2 (predicted once, never true) as a recall of 0: 0.5 for 0.75 here
    import warnings

    from sklearn.metrics import balanced_accuracy_score
    from torchmetrics.classification import MulticlassAccuracy

    generator = torch.Generator().manual_seed(3)
    target = torch.randint(0, 3, (40,), generator=generator)  # classes 0 .. 2 true, 3 never
    prediction = torch.where(torch.rand(40, generator=generator) < 0.6, target, torch.randint(0, 4, (40,), generator=generator))
    assert bool((prediction == 3).any())
    metric = MulticlassMeanAccuracy(num_classes=4)
    for start in (0, 15, 30):
        metric.update(prediction[start : start + 15], target[start : start + 15])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns of the predicted class without a true sample
        expected = balanced_accuracy_score(target.numpy(), prediction.numpy())
    assert float(metric.compute()) == pytest.approx(expected)
    torchmetrics_macro = float(MulticlassAccuracy(num_classes=4, average="macro")(prediction, target))
    assert torchmetrics_macro == pytest.approx(expected * 3 / 4)  # the same recalls over 4 classes: class 3 as 0
    assert float(MulticlassMeanAccuracy(num_classes=3)(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 0, 1, 1]))) == 0.75
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns of a compute before any update
        assert np.isnan(float(MulticlassMeanAccuracy(num_classes=2).compute()))  # no class with a true sample
