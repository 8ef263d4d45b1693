from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.sinks import (
    BrickDisplay,
    BrickRecordAnimation,
    BrickSaveImageGrid,
    make_image_grid,
    save_animation,
    save_image_grid,
)
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickTrainable
from torchbricks.errors import BrickError, MissingExtraError
from torchbricks.tags import Stage

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _solid(color: tuple[int, int, int], size: tuple[int, int] = (4, 3)) -> Image.Image:
    return Image.new("RGB", size, color)


def test_grid_places_images_row_by_row_with_padding() -> None:
    grid = make_image_grid([_solid(RED), _solid(GREEN), _solid(BLUE)], columns=2, padding=1, background=(9, 9, 9))
    assert grid.size == (2 * 4 + 3, 2 * 3 + 3)
    assert grid.getpixel((1, 1)) == RED
    assert grid.getpixel((6, 1)) == GREEN
    assert grid.getpixel((1, 5)) == BLUE
    assert grid.getpixel((6, 5)) == (9, 9, 9)  # the empty cell
    assert grid.getpixel((0, 0)) == (9, 9, 9)


def test_grid_defaults_to_a_square_layout_and_reads_batched_tensors() -> None:
    grid = make_image_grid(torch.ones(5, 3, 2, 2), padding=0)
    assert grid.size == (6, 4)  # 3 columns, 2 rows


@pytest.mark.parametrize("images", [[], torch.zeros(0, 3, 4, 4)], ids=["empty_list", "empty_tensor"])
def test_grid_of_no_images_says_it_needs_one(images: list[Image.Image] | torch.Tensor) -> None:
    with pytest.raises(BrickError, match="at least one image"):
        make_image_grid(images)


def test_save_image_grid_writes_the_file_atomically_without_leftovers(tmp_path: Path) -> None:
    path = save_image_grid([_solid(RED), _solid(GREEN)], tmp_path / "sub" / "grid.png", padding=0)
    assert path == tmp_path / "sub" / "grid.png"
    with Image.open(path) as written:
        assert written.size == (8, 3)
        assert written.convert("RGB").getpixel((5, 1)) == GREEN
    assert [entry.name for entry in path.parent.iterdir()] == ["grid.png"]


def test_written_files_get_the_permissions_of_any_new_file_not_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = save_image_grid([_solid(RED)], tmp_path / "grid.png")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_previous_file_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_image_grid([_solid(RED)], tmp_path / "grid.png")
    before = path.read_bytes()

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image_grid([_solid(GREEN)], path)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["grid.png"]


def test_save_image_grid_rejects_unknown_suffixes(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"cannot write '\.nope' files"):
        save_image_grid([_solid(RED)], tmp_path / "grid.nope")


def test_save_animation_writes_every_frame_as_a_gif(tmp_path: Path) -> None:
    path = save_animation([_solid(RED), _solid(GREEN), _solid(BLUE, size=(2, 2))], tmp_path / "video.gif", duration_ms=50)
    with Image.open(path) as animation:
        assert animation.n_frames == 3
        assert animation.size == (4, 3)
        colors = []
        for index in range(3):
            animation.seek(index)
            colors.append(animation.convert("RGB").getpixel((0, 0)))
    assert colors == [RED, GREEN, BLUE]


def test_save_animation_refuses_still_image_formats(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"writes \.gif, \.webp or \.png"):
        save_animation([_solid(RED)], tmp_path / "video.jpg")


def _collection_drawing_into(sink: BrickSaveImageGrid | BrickRecordAnimation | BrickDisplay) -> BrickCollection:
    return BrickCollection(
        {
            "draw": BrickPerImageVisualization(lambda image: Image.fromarray((image * 255).astype(np.uint8)), ["raw"], ["drawn"]),
            "sink": sink,
            "identity": BrickTrainable(torch.nn.Identity(), input_names=["raw"], output_names=["same"]),
        }
    )


def test_grid_sink_brick_writes_one_numbered_grid_per_call(tmp_path: Path) -> None:
    sink = BrickSaveImageGrid("drawn", tmp_path, file_prefix="predictions", columns=2)
    collection = _collection_drawing_into(sink)
    collection({"raw": torch.ones(3, 3, 4, 4)}, tags=Stage.INFERENCE)
    collection({"raw": torch.zeros(3, 3, 4, 4)}, tags=Stage.INFERENCE)
    collection({"raw": torch.zeros(3, 3, 4, 4)}, tags=Stage.EXPORT)  # visualizations do not run in export
    assert sorted(path.name for path in tmp_path.iterdir()) == ["predictions_00000.png", "predictions_00001.png"]
    with Image.open(tmp_path / "predictions_00000.png") as first:
        assert first.convert("RGB").getpixel((3, 3)) == (255, 255, 255)


def test_animation_sink_brick_records_a_frame_per_call(tmp_path: Path) -> None:
    sink = BrickRecordAnimation("drawn", tmp_path / "run.gif", save_every=2)
    collection = _collection_drawing_into(sink)
    for value in (0.0, 1.0, 0.0):
        collection({"raw": torch.full((2, 3, 4, 4), value)}, tags=Stage.TEST)
    with Image.open(tmp_path / "run.gif") as animation:
        assert animation.n_frames == 2  # written at the second frame
    sink.save()
    with Image.open(tmp_path / "run.gif") as animation:
        assert animation.n_frames == 3


def test_animation_sink_keeps_saving_every_n_frames_once_max_frames_is_reached(tmp_path: Path) -> None:
    sink = BrickRecordAnimation("drawn", tmp_path / "run.gif", save_every=2, max_frames=3)
    saved_at = []
    for frame in range(1, 9):
        sink.add_frame(torch.full((1, 3, 4, 4), frame / 8))
        if (tmp_path / "run.gif").exists():
            saved_at.append(frame)
            (tmp_path / "run.gif").unlink()
    assert saved_at == [2, 4, 6, 8]
    assert len(sink.frames) == 3


def test_animation_sink_rejects_still_image_formats_and_empty_frame_limits_when_built(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"BrickRecordAnimation writes \.gif, \.webp or \.png"):
        BrickRecordAnimation("drawn", tmp_path / "run.jpg")
    with pytest.raises(BrickError, match="max_frames must be at least 1, got 0"):
        BrickRecordAnimation("drawn", tmp_path / "run.gif", max_frames=0)


def test_animation_sink_without_frames_says_to_run_it_first(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match="no frames to save"):
        BrickRecordAnimation("drawn", tmp_path / "run.gif").save()


def test_display_sink_shows_one_grid_per_batch_in_inference_only() -> None:
    shown: list[Image.Image] = []
    sink = BrickDisplay("drawn", display_function=shown.append, columns=3)
    collection = _collection_drawing_into(sink)
    collection({"raw": torch.ones(3, 3, 4, 4)}, tags=Stage.INFERENCE)
    collection({"raw": torch.ones(3, 3, 4, 4)}, tags=Stage.TRAIN)
    assert len(shown) == 1
    assert shown[0].size == (3 * 4 + 4 * 2, 4 + 2 * 2)
    assert shown[0].getpixel((2, 2)) == (255, 255, 255)


def test_display_sink_without_ipython_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "IPython.display", None)  # makes the import fail whether or not IPython is installed
    with pytest.raises(MissingExtraError, match="pip install ipython, or pass display_function"):
        BrickDisplay("drawn")({"drawn": torch.zeros(1, 3, 4, 4)})
