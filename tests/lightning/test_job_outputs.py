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


class _ArgmaxWithOneFlip(nn.Module):
    """Classes per pixel; in eager PyTorch `flipped` pixels get another class, as a near tie of two classes may in
    one runtime and not in the other."""

    def __init__(self, flipped: int) -> None:
        super().__init__()
        self.flipped = flipped

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        mask = scores.argmax(dim=1)
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
            return mask
        flat = mask.flatten().clone()
        flat[: self.flipped] = (flat[: self.flipped] + 1) % scores.shape[1]
        return flat.reshape(mask.shape)


@pytest.mark.slow
@pytest.mark.parametrize(("flipped", "accepted"), [(1, True), (100, False)])
def test_a_mask_may_differ_from_pytorch_on_a_near_tie_pixel_but_not_more(tmp_path: Path, flipped: int, accepted: bool) -> None:
    collection = BrickCollection(
        {"mask": BrickTrainable(_ArgmaxWithOneFlip(flipped), input_names=["raw"], output_names=["mask"])}
    ).eval()
    named_inputs = {"raw": torch.rand(2, 3, 64, 64)}  # 8192 pixels: 1 is a near tie, 100 a model that differs

    if accepted:
        assert export_and_check_onnx(tmp_path / "model.onnx", collection, named_inputs) == 0.0
    else:
        with pytest.raises(BrickError, match=r"differs from PyTorch by [12] > 0.0001"):
            export_and_check_onnx(tmp_path / "model.onnx", collection, named_inputs)
