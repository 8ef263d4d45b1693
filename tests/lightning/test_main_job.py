from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from torchbricks import BrickCollection, Stage
from torchbricks.configuration import compose_config, create_brick_collection
from torchbricks.lightning.main_job import run_main_job


@pytest.mark.slow
def test_main_job_reaches_97_percent_on_digits_and_writes_every_artifact(tmp_path: Path) -> None:
    config = compose_config(
        [f"experiment.path_experiments={tmp_path}", "experiment.name=digits", "trainer.enable_progress_bar=false"]
    )

    result = run_main_job(config)

    folder = tmp_path / "digits"
    assert result.path_experiment == folder
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["head/accuracy"] >= 0.97
    assert np.array(metrics["test"]["head/confusion_matrix"]).sum() == 360  # the 20 % test split of 1797 digits
    assert metrics["onnx_max_abs_difference"] < 1e-4
    assert (folder / "brick_graph.md").read_text().startswith("```mermaid\nflowchart LR")
    assert (folder / "logs" / "metrics.csv").is_file()
    assert Image.open(folder / "predictions.png").size[0] > 0

    # The per-brick checkpoints restore the trained model, and the ONNX file computes what it computes.
    restored = create_brick_collection(config)
    restored.load_bricks(folder / "bricks")
    restored.eval()
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = restored({"raw": images}, tags=Stage.EXPORT)["head/probabilities"]
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["head/probabilities"], {"raw": images.numpy()})
    np.testing.assert_allclose(probabilities, expected.numpy(), atol=1e-4)
    assert isinstance(result.module.brick_collection, BrickCollection)


@pytest.mark.slow
def test_tensorboard_receives_the_scalars_and_the_prediction_pictures_every_n_epochs_and_at_the_end(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from torchbricks.lightning.report import normalized_confusion_matrices

    config = compose_config(
        [
            f"experiment.path_experiments={tmp_path}",
            "experiment.name=tb",
            "trainer.max_epochs=3",
            "+trainer.limit_train_batches=4",
            "pictures_every_n_epochs=2",
        ]
    )

    result = run_main_job(config)

    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/loss_epoch",
        "validation/loss",
        "validation/head/accuracy",
        "train/head/accuracy",
        "test/head/accuracy",
    } <= scalars
    assert len(events.Scalars("validation/head/accuracy")) == 3
    pictures = events.Images("predictions")
    assert [picture.step for picture in pictures] == [1, 2]  # after the second epoch, and the last
    assert all(picture.width > 100 and picture.height > 100 for picture in pictures)
    # The pictures of the run, drawn from what metrics.json holds.
    folder = tmp_path / "tb"
    assert {"curves.png", "confusion_matrix.png", "predictions.png", "history.json"} <= {path.name for path in folder.iterdir()}
    matrix = np.array(result.metrics["test"]["head/confusion_matrix"], dtype=float)
    (normalized,) = normalized_confusion_matrices(result.metrics["test"]).values()
    np.testing.assert_allclose(normalized.sum(axis=1), np.ones(10))
    np.testing.assert_allclose(normalized * matrix.sum(axis=1, keepdims=True), matrix)
    history = json.loads((folder / "history.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1, 2]
    assert history[-1]["validation/head/accuracy"] == pytest.approx(result.metrics["validation"]["head/accuracy"])


def test_a_picture_interval_below_one_is_refused_naming_the_config_key(tmp_path: Path) -> None:
    from torchbricks.errors import ConfigError
    from torchbricks.lightning.main_job import create_callbacks

    config = compose_config([f"experiment.path_experiments={tmp_path}", "pictures_every_n_epochs=0"])

    with pytest.raises(ConfigError, match=r"'pictures_every_n_epochs' must be 1 or more \(1: every epoch\), got 0"):
        create_callbacks(config, tmp_path / "run")
