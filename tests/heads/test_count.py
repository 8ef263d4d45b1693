"""The instance count head: its modules against plain references, its report cell, and a tiny CLI run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.regression import mean_absolute_error

from torchbricks import BrickCollection, BrickTrainable
from torchbricks.heads import get_head
from torchbricks.heads.count import CountLoss, CountMeanAbsoluteError, CountPredictions, count_objects
from torchbricks.lightning.report import collect_predictions, plot_predictions

LABELS = torch.tensor([[0, 2, -1], [-1, -1, -1], [1, -2, 1]])  # 2 objects, none (padding), 2 (one ignored: -2)


def test_the_count_of_an_image_is_its_real_labels_padding_and_ignored_objects_left_out() -> None:
    assert count_objects(LABELS).tolist() == [2.0, 0.0, 2.0]


def test_loss_is_smooth_l1_and_metric_mean_absolute_error_of_the_label_counts() -> None:
    predicted = torch.tensor([2.5, 3.0, 1.0])
    truth = torch.tensor([2.0, 0.0, 2.0])
    metric = CountMeanAbsoluteError()
    metric.update(predicted, LABELS)

    torch.testing.assert_close(CountLoss()(predicted, LABELS), nn.SmoothL1Loss()(predicted, truth))
    torch.testing.assert_close(metric.compute(), mean_absolute_error(predicted, truth))


def test_counts_above_256_are_compared_exactly_under_bfloat16_mixed_precision() -> None:
    # In bfloat16 301 is 300: the true count was cast to the prediction's dtype, a count one off scored 0
    predicted = torch.tensor([300.0], dtype=torch.bfloat16)
    labels = torch.zeros((1, 301), dtype=torch.long)
    metric = CountMeanAbsoluteError()
    metric.update(predicted, labels)

    assert metric.compute().item() == 1.0
    assert CountLoss()(predicted, labels).item() == pytest.approx(
        F.smooth_l1_loss(torch.tensor([300.0]), torch.tensor([301.0])).item()
    )


def test_the_count_head_is_found_by_its_output_and_drawn_true_above_predicted_count_worst_first() -> None:
    counts = torch.tensor([2.2, 1.4, 2.0])
    head = get_head("count").create(in_channels=3, features_name="raw", target_labels_name="labels")
    head["regress"] = BrickTrainable(_Fixed(counts), input_names=["raw"], output_names=["./count"])
    collection = BrickCollection({"counter": head})

    (found,) = collect_predictions(collection, [{"raw": torch.rand(3, 3, 8, 8), "labels": LABELS}])
    figure = plot_predictions([found], n_samples=3, columns=4)

    assert isinstance(found, CountPredictions)
    assert (found.head, found.kind) == ("counter", "count")
    np.testing.assert_allclose(found.errors(), [0.0, 1.4, 0.0], rtol=1e-6)  # an error below 1/2 rounds right
    assert found.order().tolist() == [1, 0, 2]
    (section,) = figure.subfigs
    assert (
        section.get_suptitle() == "counter (count): 1 of 3 test images wrong, mistakes first, mean absolute error 0.53"
    )  # (0.2 + 1.4 + 0) / 3
    assert [axes.get_title() for axes in section.axes if axes.get_title()] == [
        "true 0\npred 1.4",
        "true 2\npred 2.2",
        "true 2\npred 2.0",
    ]


class _Fixed(nn.Module):
    def __init__(self, counts: torch.Tensor) -> None:
        super().__init__()
        self.counts = counts

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.counts


@pytest.mark.slow
def test_a_count_head_trains_beside_detection_from_the_command_line(tmp_path: Path) -> None:
    from torchbricks.__main__ import main
    from torchbricks.datasets.shapes import write_shapes_dataset

    root = write_shapes_dataset(tmp_path / "shapes", num_train=8, num_val=4, image_size=32) / "detection"
    status = main(
        [
            "train",
            "task=detection",
            f"data.root={root}",
            "+head@model.bricks.count=count",
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=run",
            "trainer.max_epochs=1",
            "data.batch_size=4",
            "data.image_size=32",
            "model.hidden_channels=8",
        ]
    )

    assert status == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["count/mae"] >= 0.0
    assert "detection/map_50" in metrics["test"]  # beside the detection head it was added to
    assert (tmp_path / "run" / "bricks" / "count" / "regress.pt").is_file()  # its trained weights
    assert (tmp_path / "run" / "predictions.png").is_file()
