"""The images `torchbricks predict` reads: files, folders, globs and animation frames, and their output names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchbricks._image_sources import ImageSource, ImageSourceDataset, collect_image_sources, output_names
from torchbricks.errors import BrickError


def _png(path: Path, value: int = 0, size: tuple[int, int] = (6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def test_folders_are_searched_recursively_in_order_and_files_kept_as_given(tmp_path: Path) -> None:
    b, a, nested = _png(tmp_path / "in" / "b.png"), _png(tmp_path / "in" / "a.jpg"), _png(tmp_path / "in" / "sub" / "c.bmp")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    single = _png(tmp_path / "single.png")

    items = collect_image_sources([tmp_path / "in", str(single)])
    assert [item.path for item in items] == [a, b, nested, single]


def test_a_glob_takes_its_image_files_and_an_animation_expands_to_its_frames(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), (value, 0, 0)) for value in (10, 20, 30)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    _png(tmp_path / "x.png")

    items = collect_image_sources([str(tmp_path / "*")])
    assert [item.label for item in items] == [f"{tmp_path / 'clip.gif'}#{frame}" for frame in range(3)] + [
        str(tmp_path / "x.png")
    ]
    dataset = ImageSourceDataset(items)
    reds = [int(dataset[index][1][0, 0, 0]) for index in range(3)]
    assert reds == [10, 20, 30]


def test_a_missing_source_and_a_source_without_images_are_errors_naming_them(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"Source '.*nowhere' is neither an image, a folder nor a glob"):
        collect_image_sources([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrickError, match=r"Source '.*empty' matches no image or video file \(looked for .*\.png"):
        collect_image_sources([tmp_path / "empty"])


def test_an_unreadable_file_is_read_as_none_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    good = _png(tmp_path / "good.png", value=7)

    dataset = ImageSourceDataset([ImageSource(broken), ImageSource(good)])
    index, image, reason = dataset[0]
    assert (index, image) == (0, None)
    assert reason.startswith("UnidentifiedImageError")
    _, image, reason = dataset[1]
    assert image is not None
    assert image.shape == (4, 6, 3)
    assert image.dtype == np.uint8
    assert reason == ""


def test_output_names_are_relative_and_unique() -> None:
    items = [
        ImageSource(Path("/data/a/x.png")),
        ImageSource(Path("/data/a/x.jpg")),
        ImageSource(Path("/data/b/y.png")),
        ImageSource(Path("/data/b/clip.gif"), frame=2),
    ]
    assert output_names(items) == ["a/x_png", "a/x_jpg", "b/y", "b/clip_frame000002"]


def test_output_names_of_a_linked_folder_follow_the_link_not_its_target(tmp_path: Path) -> None:
    photos, archive = tmp_path / "photos", tmp_path / "archive" / "2019"
    photos.mkdir()
    archive.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(photos / "a.png")
    Image.new("RGB", (4, 4)).save(archive / "b.png")
    (photos / "2019").symlink_to(archive, target_is_directory=True)

    items = collect_image_sources([photos])

    assert [item.label for item in items] == [str(photos / "2019" / "b.png"), str(photos / "a.png")]
    assert output_names(items) == ["2019/b", "a"]  # was ['archive/2019/b', 'photos/a']


def test_output_names_differing_only_in_case_stay_apart() -> None:
    items = [ImageSource(Path("/data/x.png")), ImageSource(Path("/data/x.PNG")), ImageSource(Path("/data/X_png.jpg"))]

    names = output_names(items)

    assert names[:2] == ["x_png", "x_PNG_2"]  # x_PNG and x_png are one file where names ignore case (macOS, Windows)
    assert len({name.casefold() for name in names}) == len(names)


def test_a_video_in_a_folder_that_cannot_be_opened_is_an_unreadable_source_and_one_given_by_name_an_error(
    tmp_path: Path,
) -> None:
    # a folder holding an .mp4 stopped the whole predict (torchcodec missing, or a file it cannot decode)
    image = _png(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "clip.mp4").write_bytes(b"\x00not a video")

    items = collect_image_sources([tmp_path / "in"])

    assert [item.path.name for item in items] == ["a.png", "clip.mp4"]
    index, read, reason = ImageSourceDataset(items)[1]
    assert (index, read) == (1, None)
    assert reason.startswith("a video")
    assert "torchcodec" in reason
    assert "torchvision" not in reason  # said where torch is not installed either
    assert collect_image_sources([str(tmp_path / "in" / "*")])[1].unreadable == reason
    with pytest.raises(BrickError, match=r"^(Reading video|Video) '.*clip\.mp4'"):
        collect_image_sources([image, tmp_path / "in" / "clip.mp4"])
