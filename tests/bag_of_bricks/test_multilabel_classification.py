from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torchbricks.bag_of_bricks.multilabel_classification import (
    BrickVisualizeMultiLabel,
    MultiLabelClassifier,
    MultiLabelLoss,
    create_multilabel_classification_head,
)
from torchbricks.brick_collection import BrickCollection


def test_classifier_predicts_each_class_whose_probability_passes_the_threshold() -> None:
    classifier = MultiLabelClassifier(num_classes=3, n_features=2, threshold=0.5)
    with torch.no_grad():
        classifier.fc.weight.zero_()
        classifier.fc.bias.copy_(torch.tensor([2.0, -2.0, 0.1]))

    logits, probabilities, present = classifier(torch.rand(1, 2, 3, 3))

    assert torch.allclose(probabilities, torch.sigmoid(logits))
    assert present.tolist() == [[1, 0, 1]]


def test_loss_is_binary_cross_entropy_of_integer_targets() -> None:
    logits, targets = torch.randn(4, 3), torch.randint(0, 2, (4, 3))

    assert torch.allclose(MultiLabelLoss()(logits, targets), F.binary_cross_entropy_with_logits(logits, targets.float()))


def test_head_reports_f1_accuracy_and_per_class_scores_under_its_name_and_draws_the_class_names() -> None:
    model = BrickCollection(
        {
            "presence": create_multilabel_classification_head(
                2, 4, "features", "present", image_name="raw", class_names=["cat", "dog"]
            )
        }
    )
    named = {"features": torch.rand(2, 4, 2, 2), "present": torch.tensor([[1, 0], [1, 1]]), "raw": torch.zeros(2, 3, 32, 64)}

    outputs = model(named, tags={"MODEL", "LOSS", "METRIC", "VISUALIZATION"})

    metrics = model.summarize(reset=True)
    assert sorted(metrics) == ["presence/accuracy", "presence/f1", "presence/per_class"]
    assert sorted(metrics["presence/per_class"]) == ["cat", "dog"]
    assert outputs["presence/loss_bce"].ndim == 0
    assert len(outputs["presence/visualization"]) == 2


def test_drawing_writes_nothing_but_a_dash_when_no_class_is_present() -> None:
    brick = BrickVisualizeMultiLabel("image", "present", "drawn", class_names=["cat", "dog"])
    empty = np.asarray(brick.draw(np.zeros((20, 60, 3), dtype=np.uint8), np.array([0, 0])))
    both = np.asarray(brick.draw(np.zeros((20, 60, 3), dtype=np.uint8), np.array([1, 1])))

    assert (both > 0).sum() > (empty > 0).sum() > 0


def test_a_class_seen_only_in_ignored_objects_is_neither_right_nor_wrong_in_the_loss_and_the_metrics() -> None:
    from torchbricks.datasets.boxes import PRESENCE_IGNORED

    torch.manual_seed(0)
    model = BrickCollection({"presence": create_multilabel_classification_head(3, 4, "features", "present")})
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    targets[0, 1] = targets[2, 2] = PRESENCE_IGNORED  # a crowd region, an object a tile cuts

    outputs = model({"features": torch.rand(4, 4, 2, 2), "present": targets}, tags={"MODEL", "LOSS", "METRIC"})

    metrics = model.summarize(reset=True)
    known = (targets >= 0).numpy()
    truth, predicted = targets.numpy()[known], outputs["presence/present"].numpy()[known]
    true_positives = int(((truth == 1) & (predicted == 1)).sum())
    wrong = int((truth != predicted).sum())
    assert float(metrics["presence/accuracy"]) == pytest.approx(1 - wrong / known.sum())
    assert float(metrics["presence/f1"]) == pytest.approx(2 * true_positives / (2 * true_positives + wrong))
    logits = outputs["presence/logits"][targets >= 0]
    expected_loss = F.binary_cross_entropy_with_logits(logits, targets[targets >= 0].float())
    assert torch.allclose(outputs["presence/loss_bce"], expected_loss)
    assert sum(value["support"] for value in metrics["presence/per_class"].values()) == int((truth == 1).sum())


def test_a_head_of_one_class_reports_its_f1_accuracy_and_scores_as_scikit_learn_computes_them() -> None:
    # A one-class COCO data set (cars, tree crowns) trained with task=multitask has a presence head of one class:
    # torchmetrics' multilabel metrics refuse one label when they are built, and the job stopped before training.
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    from torchbricks.datasets.boxes import PRESENCE_IGNORED

    head = create_multilabel_classification_head(1, 2, "features", "present", class_names=["tree"])
    model = BrickCollection({"presence": head})
    with torch.no_grad():  # present where the first feature channel's mean is positive
        model["presence"]["classify"].model.fc.weight.copy_(torch.tensor([[1.0, 0.0]]))
        model["presence"]["classify"].model.fc.bias.zero_()
    signs = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0])
    targets = torch.tensor([[1], [0], [0], [1], [1], [PRESENCE_IGNORED], [1]])
    features = torch.zeros(7, 2, 2, 2)
    features[:, 0] = signs[:, None, None]

    for batch in (slice(0, 3), slice(3, 7)):
        model({"features": features[batch], "present": targets[batch]}, tags={"MODEL", "LOSS", "METRIC"})

    metrics = model.summarize(reset=True)
    known = targets[:, 0] >= 0
    truth, predicted = targets[known, 0].numpy(), (signs[known] > 0).long().numpy()
    precision, recall, f1, _ = precision_recall_fscore_support(truth, predicted, average="binary", zero_division=0)
    assert 0 < f1 < 1
    assert float(metrics["presence/f1"]) == pytest.approx(f1)
    assert float(metrics["presence/accuracy"]) == pytest.approx(accuracy_score(truth, predicted))
    tree = metrics["presence/per_class"]["tree"]
    assert [float(tree["precision"]), float(tree["recall"]), float(tree["f1"])] == pytest.approx([precision, recall, f1])
    assert int(tree["support"]) == int(truth.sum())
