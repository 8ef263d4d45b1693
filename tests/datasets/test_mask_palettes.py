"""Palette masks whose palettes disagree: written here as an image editor saves an indexed PNG with an optimised
palette (the colours kept, the indices renumbered), beside masks of one palette, with and without a labelmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import class_index_mask as _classes
from PIL import Image

from torchbricks.datasets import mask_palettes
from torchbricks.datasets.checking import check_data
from torchbricks.datasets.mask_palettes import palette_disagreement
from torchbricks.datasets.readers import DataError
from torchbricks.lightning.image_datamodules import SegmentationFolderDataModule

BLACK, RED, GREEN = (0, 0, 0), (200, 0, 0), (0, 200, 0)
TOOL_PALETTE = [BLACK, RED, GREEN]
"""The labelling tool's palette: index 0 the background, 1 red (class 1), 2 green (class 2)."""


def _save_palette_mask(path: Path, indices: np.ndarray, colours: list[tuple[int, int, int]]) -> None:
    mask = Image.fromarray(indices, "P")
    if int(indices.max()) >= len(colours):  # Pillow writes as many bits as the palette needs: 255 would not fit
        colours = [*colours, *[BLACK] * (256 - len(colours))]
    mask.putpalette([value for colour in colours for value in colour])
    mask.save(path)


def _renumbered(indices: np.ndarray) -> np.ndarray:
    """The same picture with the editor's palette [black, green, red]: red pixels now index 2, green ones 1."""
    swapped = indices.copy()
    swapped[indices == 1], swapped[indices == 2] = 2, 1
    return swapped


def _data(root: Path, edited: set[str]) -> Path:
    """A segmentation folder of two splits, two masks each; the masks named in `edited` saved by the editor."""
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir()
        for index in range(2):
            Image.new("RGB", (20, 10)).save(root / split / "images" / f"{index}.png")
            path = root / split / "masks" / f"{index}.png"
            if f"{split}/{index}" in edited:
                _save_palette_mask(path, _renumbered(_classes(index)), [BLACK, GREEN, RED])
            else:
                _save_palette_mask(path, _classes(index), TOOL_PALETTE)
    (root / "classes.txt").write_text("background\ncar\nroad\n")
    return root


def test_a_mask_saved_with_a_renumbered_palette_is_refused_naming_both_masks_and_the_colours(tmp_path: Path) -> None:
    root = _data(tmp_path / "data", edited={"val/1"})

    with pytest.raises(DataError) as raised:
        SegmentationFolderDataModule(root, image_size=(10, 20), batch_size=2, num_workers=0)

    message = str(raised.value)
    assert f"{str(root / 'train' / 'masks' / '0.png')!r} and {str(root / 'val' / 'masks' / '1.png')!r}" in message
    assert f"colour class index 1 differently: {RED} in the first, {GREEN} in the second" in message
    assert "labelmap.txt" in message


def test_check_data_reports_the_renumbered_palette(tmp_path: Path) -> None:
    root = _data(tmp_path / "data", edited={"train/1"})

    report = check_data(root, task="segmentation")

    assert any("colour class index 1 differently" in problem for problem in report.problems)
    assert not any("differently" in problem for problem in check_data(_data(tmp_path / "same", set())).problems)


def test_palettes_that_differ_only_in_colours_no_mask_uses_pass(tmp_path: Path) -> None:
    root = tmp_path / "masks"
    root.mkdir()
    background_and_red = np.where(_classes(0) == 1, 1, 0).astype(np.uint8)
    _save_palette_mask(root / "a.png", _classes(0), TOOL_PALETTE)
    _save_palette_mask(root / "b.png", background_and_red, [BLACK, RED])  # optimised: only the colours it uses
    _save_palette_mask(root / "c.png", background_and_red, [BLACK, RED, (9, 9, 9)])  # index 2 unused
    Image.fromarray(_classes(1), "L").save(root / "d.png")  # grey levels: indices, no palette

    assert palette_disagreement(sorted(root.iterdir()), 3, tmp_path) is None
    _save_palette_mask(root / "e.png", _classes(0), [BLACK, RED, (9, 9, 9)])  # index 2 used: green elsewhere
    assert "colour class index 2 differently: (0, 200, 0) in the first, (9, 9, 9)" in str(
        palette_disagreement(sorted(root.iterdir()), 3, tmp_path)
    )


def test_one_palette_everywhere_is_checked_from_the_headers_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _data(tmp_path / "data", edited=set())

    def decoded(path: Path, num_classes: int) -> list[int]:
        raise AssertionError(f"{path} was decoded")

    monkeypatch.setattr(mask_palettes, "_used_indices", decoded)
    assert palette_disagreement(sorted(root.glob("*/masks/*.png")), 3, root) is None


def test_with_a_labelmap_palette_masks_are_read_by_colour_and_255_stays_ignored(tmp_path: Path) -> None:
    root = _data(tmp_path / "data", edited={"train/1", "val/1"})
    (root / "classes.txt").unlink()
    # index 255's palette colour, black by default here, is a listed colour: still ignored
    (root / "labelmap.txt").write_text("background:0,0,0::\ncar:200,0,0::\nroad:0,200,0::\n")

    data = SegmentationFolderDataModule(root, image_size=(10, 20), batch_size=2, num_workers=0)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))

    expected = torch.from_numpy(np.stack([_classes(0), _classes(1)]).astype(np.int64))
    assert torch.equal(batch["targets"], expected)
    assert (batch["targets"] == 255).any()
