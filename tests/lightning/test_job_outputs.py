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


@pytest.mark.parametrize("separate", [True, False], ids=["values per loader", "loaders pooled (data.sources)"])
def test_several_test_loaders_get_a_confusion_matrix_picture_each_named_by_its_loader(tmp_path: Path, separate: bool) -> None:
    # Only one test loader's run was drawn: a run of several test loaders, whether their values are kept apart
    # (`test/dataloader_idx_<i>` in metrics.json) or pooled (the sources of data.sources), had no confusion_matrix.png.
    pytest.importorskip("matplotlib")
    import pytorch_lightning as pl
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchmetrics.classification import MulticlassConfusionMatrix

    from torchbricks import BrickLoss, BrickMetrics
    from torchbricks.lightning import LightningBrickCollection
    from torchbricks.lightning.datamodules import NamedTensorDataset
    from torchbricks.lightning.job_outputs import draw_test_pictures

    torch.manual_seed(0)
    collection = BrickCollection(
        {
            "head": {
                "classify": BrickTrainable(nn.Linear(4, 3), input_names=["raw"], output_names=["./logits"]),
                "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "targets"], output_names=["./loss_ce"]),
                "metrics": BrickMetrics(
                    {"confusion_matrix": MulticlassConfusionMatrix(num_classes=3)}, input_names=["./logits", "targets"]
                ),
            }
        }
    )
    module = LightningBrickCollection(
        tmp_path, "run", collection, lambda parameters: None, write_files=False, separate_loaders=separate
    )
    loaders = [
        DataLoader(NamedTensorDataset(raw=torch.randn(count, 4), targets=torch.randint(0, 3, (count,))), batch_size=4)
        for count in (5, 7)
    ]
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(module, dataloaders=loaders, verbose=False)

    draw_test_pictures(tmp_path, module, loaders, n_visualized=0, class_names=["a", "b", "c"])

    if separate:
        assert sorted(path.name for path in tmp_path.glob("*.png")) == [
            "confusion_matrix_dataloader_idx_0.png",
            "confusion_matrix_dataloader_idx_1.png",
        ]
        assert int(module.epoch_metrics["test/dataloader_idx_1"]["head/confusion_matrix"].sum()) == 7
    else:
        assert sorted(path.name for path in tmp_path.glob("*.png")) == ["confusion_matrix.png"]
        assert int(module.epoch_metrics["test"]["head/confusion_matrix"].sum()) == 12
    assert all(Image.open(path).size[0] > 100 for path in tmp_path.glob("*.png"))


def test_each_loaders_class_scores_picture_is_titled_by_its_loader(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from torchbricks.lightning import report
    from torchbricks.lightning.job_outputs import save_class_scores

    titles = []

    def keep_title(figure: object, path: Path) -> None:
        titles.append((path.name, figure._suptitle.get_text() if figure._suptitle is not None else None))  # type: ignore[attr-defined]

    matrix = torch.tensor([[2, 1], [0, 3]])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "save_figure", keep_title)
        save_class_scores(tmp_path, {"test": {"h/confusion_matrix": matrix}}, None)
        save_class_scores(tmp_path, {"test/dataloader_idx_1": {"h/confusion_matrix": matrix}, "validation": {}}, None)

    assert titles == [
        ("confusion_matrix.png", None),
        ("confusion_matrix_dataloader_idx_1.png", "test loader 1 (test/dataloader_idx_1 of metrics.json)"),
    ]
