"""What the main job exports and draws after testing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from torchbricks import BrickCollection, BrickError, BrickTrainable
from torchbricks.lightning.job_outputs import export_and_check_onnx, save_visualizations


def _collection() -> BrickCollection:
    torch.manual_seed(0)
    return BrickCollection({"head": BrickTrainable(nn.Linear(4, 3), input_names=["raw"], output_names=["logits"])})


@pytest.mark.slow
def test_the_onnx_export_computes_what_pytorch_computes(tmp_path: Path) -> None:
    collection = _collection().eval()
    named_inputs = {"raw": torch.rand(2, 4), "targets": torch.tensor([0, 1])}

    difference = export_and_check_onnx(tmp_path / "model.onnx", collection, named_inputs)

    assert difference < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == ["raw"]  # the targets are left out
    images = torch.rand(5, 4)  # another batch size: the batch dimension is dynamic
    (logits,) = session.run(["logits"], {"raw": images.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, collection.head.model(images).numpy(), atol=1e-5)


def test_a_collection_that_draws_nothing_has_no_predictions_picture(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match="no VISUALIZATION brick drawing images"):
        save_visualizations(tmp_path / "predictions.png", _collection(), {"raw": torch.rand(2, 4)})
    assert not (tmp_path / "predictions.png").exists()
