"""Colour masks with a `labelmap.txt`, written here as CVAT's "Segmentation mask 1.1" export and Pascal VOC lay them
out (the labelmap as Datumaro writes it for CVAT, RGB masks; VOC's palette masks with 255 on the borders)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import class_index_mask as _classes
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets.checking import check_data
from torchbricks.datasets.labelmap import MaskColours, mask_colours, read_labelmap
from torchbricks.datasets.readers import DataError, SegmentationFolderDataset, read_mask, segmentation_class_names
from torchbricks.lightning.image_datamodules import SegmentationFolderDataModule
from torchbricks.lightning.task_resolvers import class_weights_of

CVAT_LABELMAP = "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:250,50,83::\nroad:51,221,255::\n"
"""What CVAT's export writes for a task with the labels car and road in its first two default colours."""
CVAT_COLOURS = [(0, 0, 0), (250, 50, 83), (51, 221, 255)]
VOC_BORDER = (224, 224, 192)  # the devkit colour map at index 255


def _painted(indices: np.ndarray, colours: list[tuple[int, int, int]]) -> np.ndarray:
    """The mask in colours, as CVAT paints it (255 in VOC's border colour)."""
    lookup = np.zeros((256, 3), dtype=np.uint8)
    lookup[: len(colours)] = colours
    lookup[255] = VOC_BORDER
    return lookup[indices]


def _cvat_export(root: Path, count: int = 4) -> Path:
    """CVAT's "Segmentation mask 1.1" export with its images: labelmap.txt, ImageSets/Segmentation/default.txt,
    SegmentationClass/ (RGB) and SegmentationObject/, JPEGImages/."""
    for folder in ("ImageSets/Segmentation", "SegmentationClass", "SegmentationObject", "JPEGImages"):
        (root / folder).mkdir(parents=True)
    (root / "labelmap.txt").write_text(CVAT_LABELMAP)
    names = [f"frame_{index:06d}" for index in range(count)]
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("\n".join(names) + "\n")
    for index, name in enumerate(names):
        Image.new("RGB", (20, 10), (40 * index, 90, 30)).save(root / "JPEGImages" / f"{name}.jpg")
        painted = _painted(_classes(index), CVAT_COLOURS)
        Image.fromarray(painted, "RGB").save(root / "SegmentationClass" / f"{name}.png")
        Image.fromarray(painted, "RGB").save(root / "SegmentationObject" / f"{name}.png")
    return root


def _as_segmentation_folder(export: Path) -> Path:
    """The export arranged as README says: JPEGImages/ to images/, SegmentationClass/ to masks/, labelmap.txt kept."""
    (export / "JPEGImages").rename(export / "images")
    (export / "SegmentationClass").rename(export / "masks")
    shutil.rmtree(export / "SegmentationObject")
    return export


def _voc_palette() -> list[int]:
    """Pascal VOC's colour map (the devkit's bit-spreading rule), index 255 its border colour."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        code = index
        for shift in range(7, -1, -1):
            red |= (code & 1) << shift
            green |= ((code >> 1) & 1) << shift
            blue |= ((code >> 2) & 1) << shift
            code >>= 3
        palette.extend((red, green, blue))
    return palette


def test_the_voc_palette_written_here_is_vocs() -> None:
    palette = _voc_palette()
    assert [tuple(palette[3 * index : 3 * index + 3]) for index in (0, 1, 2, 15, 255)] == [
        (0, 0, 0), (128, 0, 0), (0, 128, 0), (192, 128, 128), VOC_BORDER,
    ]  # fmt: skip


def test_cvat_colour_masks_read_as_the_class_of_each_colour_and_the_voc_border_as_ignored(tmp_path: Path) -> None:
    root = _as_segmentation_folder(_cvat_export(tmp_path / "cvat"))

    dataset = SegmentationFolderDataset(root, num_classes=3, colours=mask_colours(root))

    assert segmentation_class_names(root) == ["background", "car", "road"]
    for index in range(4):
        assert np.array_equal(dataset[index]["targets"].numpy(), _classes(index).astype(np.int64))


def test_a_colour_the_labelmap_lacks_is_an_error_naming_mask_colour_pixels_and_closest(tmp_path: Path) -> None:
    root = _as_segmentation_folder(_cvat_export(tmp_path / "cvat"))
    painted = _painted(_classes(0), CVAT_COLOURS)
    painted[0, :3] = (248, 52, 80)  # an edge blended by a smoothing resize
    Image.fromarray(painted, "RGB").save(root / "masks" / "frame_000000.png")

    with pytest.raises(DataError) as raised:
        read_mask(root / "masks" / "frame_000000.png", colours=mask_colours(root))

    message = str(raised.value)
    assert "frame_000000.png' has 3 pixels of colour (248, 52, 80)" in message
    assert f"{str(root / 'labelmap.txt')!r} does not list; closest: 'car' (250, 50, 83)" in message
    assert "Its colours: 'background' (0, 0, 0), 'car' (250, 50, 83), 'road' (51, 221, 255)" in message


def test_voc_palette_masks_are_read_by_colour_and_keep_the_255_border_beside_a_labelmap(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\naeroplane:128,0,0::\nbicycle:0,128,0::\n"
    )
    for index in range(2):
        Image.new("RGB", (20, 10)).save(root / "images" / f"2007_00000{index}.jpg")
        mask = Image.fromarray(_classes(index), "P")
        mask.putpalette(_voc_palette())
        mask.save(root / "masks" / f"2007_00000{index}.png")

    dataset = SegmentationFolderDataset(root, num_classes=3, colours=mask_colours(root))

    assert np.array_equal(dataset[1]["targets"].numpy(), _classes(1).astype(np.int64))
    assert 255 in dataset[1]["targets"]
    (root / "labelmap.txt").write_text("background:0,0,0::\nbicycle:0,128,0::\naeroplane:128,0,0::\n")  # reordered
    reordered = read_mask(root / "masks" / "2007_000001.png", colours=mask_colours(root))  # read by colour
    expected = _classes(1).astype(np.int64)
    expected[_classes(1) == 1], expected[_classes(1) == 2] = 2, 1
    assert np.array_equal(reordered, expected)
    (root / "labelmap.txt").write_text("background:0,0,0::\naeroplane:128,0,0::\n")  # bicycle not listed
    with pytest.raises(DataError, match=r"has 24 pixels of colour \(0, 128, 0\), which .* does not list"):
        read_mask(root / "masks" / "2007_000000.png", colours=mask_colours(root))


def test_labelmap_classes_put_the_black_one_first_and_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "labelmap.txt"
    path.write_text("car:250,50,83::\nvoid:0,0,0::\n")
    assert read_labelmap(path) == MaskColours(path, ("void", "car"), ((0, 0, 0), (250, 50, 83)))
    path.write_text("# label:color_rgb:parts:actions\ncar:250,50,83::\n")
    assert read_labelmap(path).names == ("background", "car")  # added in black, as VOC's tools add it
    person = "person:192,128,128:head,hand,foot:jumping,phoning"  # VOC's parts and actions are not read
    path.write_text(f"background:0,0,0::\n{person}\n")
    assert read_labelmap(path).colours[1] == (192, 128, 128)
    for text, message in (
        ("background:0,0,0::\ncar:250,50::\n", r"line 2 is 'car:250,50::'; expected name:r,g,b"),
        ("background:0,0,0::\ncar::\n", r"line 2 is 'car::'"),
        ("background:0,0,0::\ncar:1,2,300::\n", r"line 2 .* 0 to 255"),
        ("background:0,0,0::\ncar:1,2,3::\nbus:1,2,3::\n", r"line 3 gives 'bus' the colour \(1, 2, 3\) of 'car'"),
        ("background:0,0,0::\ncar:1,2,3::\ncar:4,5,6::\n", r"line 3 lists the class 'car' a second time"),
        ("background:0,0,0::\n", r"lists 1 classes with the background; expected 2 to 255"),
    ):
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            read_labelmap(path)


def test_a_classes_txt_that_disagrees_with_the_labelmap_is_an_error(tmp_path: Path) -> None:
    root = _as_segmentation_folder(_cvat_export(tmp_path / "cvat"))
    (root / "classes.txt").write_text("background\ncar\nroad\n")
    assert segmentation_class_names(root) == ["background", "car", "road"]
    (root / "classes.txt").write_text("background\nroad\ncar\n")
    with pytest.raises(DataError, match=r"classes.txt' lists \['background', 'road', 'car'\] but .*labelmap.txt'"):
        segmentation_class_names(root)


def test_the_data_module_reads_a_white_class_of_a_labelmap_as_the_class_not_binary_255(tmp_path: Path) -> None:
    root = _folder(tmp_path / "white")
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nsnow:255,255,255::\n")
    for split in ("train", "val"):
        for index in range(2):
            Image.new("RGB", (20, 10)).save(_folder(root / split / "images") / f"{index}.png")
            mask = np.zeros((10, 20, 3), dtype=np.uint8)
            mask[:, : 5 * (index + 1)] = 255
            Image.fromarray(mask, "RGB").save(_folder(root / split / "masks") / f"{index}.png")

    data = SegmentationFolderDataModule(root, image_size=(10, 20), batch_size=2, num_workers=0)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))

    assert (data.class_names, data.foreground_255) == (["background", "snow"], False)
    assert torch.equal(batch["targets"].sum(dim=(1, 2)), torch.tensor([50, 100]))  # white is class 1, not ignored
    pixels = [150 + 100, 50 + 100]
    assert class_weights_of("auto", "segmentation_folder", str(root)) == pytest.approx(
        [2 * (1 / value) / sum(1 / count for count in pixels) for value in pixels]
    )


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_check_data_counts_the_classes_of_colour_masks_and_lists_unlisted_colours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _as_segmentation_folder(_cvat_export(tmp_path / "cvat", count=6))

    status = main(["check-data", str(root)])
    printed = capsys.readouterr().out
    report = check_data(root)

    assert status == 0, printed
    assert (report.task, report.class_names, report.problems) == ("segmentation", ["background", "car", "road"], [])
    counted = {name: sum(report.counts[split][name][1] for split in ("train", "validation")) for name in ("car", "road")}
    assert counted == {"car": sum(int((_classes(index) == 1).sum()) for index in range(6)), "road": 6 * 24}
    painted = _painted(_classes(2), CVAT_COLOURS)
    painted[0, 0] = (0, 0, 255)
    Image.fromarray(painted, "RGB").save(root / "masks" / "frame_000002.png")
    assert main(["check-data", str(root)]) == 1
    assert "frame_000002.png' has 1 pixels of colour (0, 0, 255)" in capsys.readouterr().out


def test_a_cvat_background_label_of_its_own_colour_is_the_background_class(tmp_path: Path) -> None:
    # CVAT keeps the colour of a project's own 'background' label and paints the unlabelled pixels with it (Datumaro)
    root = _cvat_export(tmp_path / "cvat")
    purple = (184, 61, 245)
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\ncar:250,50,83::\nbackground:184,61,245::\nroad:51,221,255::\n"
    )
    for index, mask in enumerate(sorted((root / "SegmentationClass").glob("*.png"))):
        Image.fromarray(_painted(_classes(index), [purple, *CVAT_COLOURS[1:]]), "RGB").save(mask)

    colours = read_labelmap(root / "labelmap.txt")
    report = check_data(root)

    assert (colours.names, colours.colours) == (("background", "car", "road"), (purple, *CVAT_COLOURS[1:]))
    assert (report.class_names, report.problems) == (["background", "car", "road"], [])
    dataset = SegmentationFolderDataset(
        root, num_classes=3, colours=colours, images=root / "JPEGImages", masks=root / "SegmentationClass"
    )
    for index in range(4):
        assert np.array_equal(dataset[index]["targets"].numpy(), _classes(index).astype(np.int64))
    # A black class is the background, as Datumaro finds it first: 'background' of another colour is then a class
    (root / "labelmap.txt").write_text("background:184,61,245::\nvoid:0,0,0::\n")
    assert read_labelmap(root / "labelmap.txt").names == ("void", "background")
