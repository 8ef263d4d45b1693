"""Segmentation data in Pascal VOC's layout, written as VOC's devkit and CVAT's "Segmentation mask 1.1" export lay it
out, read where it lies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchbricks.__main__ import main
from torchbricks.datasets.checking import check_data
from torchbricks.datasets.folder_splits import folder_splits, has_own_split
from torchbricks.datasets.labelmap import read_labelmap, voc_colour_map
from torchbricks.datasets.readers import DataError, segmentation_class_names
from torchbricks.datasets.voc_segmentation import VOC_CLASSES, read_voc_segmentation
from torchbricks.lightning.image_datamodules import SegmentationFolderDataModule

CVAT_LABELMAP = "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:250,50,83::\nroad:51,221,255::\n"
CVAT_COLOURS = [(0, 0, 0), (250, 50, 83), (51, 221, 255)]
VOC_PALETTE = [value for colour in voc_colour_map(256) for value in colour]


def _classes(index: int) -> np.ndarray:
    """A 16 x 16 mask of class indices: a car whose width depends on `index`, a road, VOC's 255 border on a row."""
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[1:5, 1 : 3 + index] = 1
    mask[10:15, :] = 2
    mask[7, :] = 255
    return mask


def _image(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (20 * index, 90, 30)).save(path)


def _cvat_export(
    root: Path, stems: list[str], unannotated: tuple[str, ...] = (), lists: dict[str, list[str]] | None = None
) -> Path:
    """CVAT's "Segmentation mask 1.1" export with its images: JPEGImages/ (each image's own extension),
    SegmentationClass/ in the labelmap's colours (VOC's border colour for 255), SegmentationObject/ (instances),
    labelmap.txt, and ImageSets/Segmentation/default.txt listing every image, the unannotated ones (no mask) too."""
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "labelmap.txt").write_text(CVAT_LABELMAP)
    for name, listed in (lists or {"default": stems}).items():
        (root / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("".join(f"{stem}\n" for stem in listed))
    lookup = np.zeros((256, 3), dtype=np.uint8)
    lookup[:3] = CVAT_COLOURS
    lookup[255] = voc_colour_map(256)[255]
    for index, stem in enumerate(stems):
        _image(root / "JPEGImages" / f"{stem}{'.png' if index % 2 else '.jpg'}", index)
        if stem in unannotated:
            continue
        for folder in ("SegmentationClass", "SegmentationObject"):
            (root / folder / stem).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(lookup[_classes(index)], "RGB").save(root / "SegmentationClass" / f"{stem}.png")
        Image.fromarray(np.full((16, 16, 3), 99, dtype=np.uint8), "RGB").save(root / "SegmentationObject" / f"{stem}.png")
    return root


def _voc_devkit(root: Path, lists: dict[str, list[str]]) -> Path:
    """Pascal VOC's own layout: palette masks in VOC's colours (255 the border), no labelmap, the lists of
    ImageSets/Segmentation, JPEGImages holding more images than are segmented."""
    stems = sorted({stem for listed in lists.values() for stem in listed})
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for name, listed in lists.items():
        (root / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("".join(f"{stem}\n" for stem in listed))
    for index, stem in enumerate(stems):
        _image(root / "JPEGImages" / f"{stem}.jpg", index)
        indices = _classes(index)
        indices[indices == 1] = 15  # person (and 2, the road, bicycle)
        mask = Image.fromarray(indices, "P")
        mask.putpalette(VOC_PALETTE)
        mask.save(root / "SegmentationClass" / f"{stem}.png")
    _image(root / "JPEGImages" / "2012_999999.jpg", 9)  # a detection image without segmentation
    return root


def test_a_cvat_segmentation_export_is_read_where_it_lies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stems = [f"frame_{index:06d}" for index in range(6)] + ["cam1/frame_000000"]
    root = _cvat_export(tmp_path / "cvat", stems, unannotated=("frame_000005",))

    module = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)
    module.setup("fit")

    assert module.class_names == ["background", "car", "road"]
    assert "1 image listed in" in capsys.readouterr().out  # frame_000005: no mask, left out
    train, validation = module.datasets["train"], module.datasets["validation"]
    assert (len(train), len(validation)) == (5, 1)  # 20 % of the 6 annotated, drawn by split_seed
    read = {image.relative_to(root / "JPEGImages").with_suffix("").as_posix() for image, _ in train.samples + validation.samples}
    assert read == set(stems) - {"frame_000005"}
    assert not has_own_split(root, "segmentation_folder", "validation")
    for dataset in (train, validation):
        for index, (image, mask) in enumerate(dataset.samples):
            assert mask.is_relative_to(root / "SegmentationClass")  # never SegmentationObject
            expected = _classes(stems.index(image.relative_to(root / "JPEGImages").with_suffix("").as_posix()))
            assert np.array_equal(dataset.named_sample(dataset.load_sample(index))["targets"].numpy(), expected)


def test_voc_lists_give_the_splits_and_palette_masks_without_labelmap_get_vocs_classes(tmp_path: Path) -> None:
    lists = {"train": ["2007_000001", "2007_000002", "2007_000003"], "val": ["2007_000004", "2007_000005"]}
    root = _voc_devkit(tmp_path / "VOC2012", {**lists, "trainval": lists["train"] + lists["val"]})

    splits = folder_splits(root, "segmentation_folder")

    assert segmentation_class_names(root) == list(VOC_CLASSES)
    assert splits["train"].stems == tuple(lists["train"])
    assert splits["validation"].stems == tuple(lists["val"])
    assert splits["test"] is splits["validation"]
    assert has_own_split(root, "segmentation_folder", "validation")
    report = check_data(root, task="segmentation")
    absent = [name for name in VOC_CLASSES[1:] if name not in ("bicycle", "person")]
    assert report.problems == [f"Class {name!r} has no example in the train split." for name in absent]
    assert (report.images["train"], report.images["validation"]) == (3, 2)
    assert report.counts["train"]["person"][0] == 3
    assert any("Pascal VOC's colours: read as VOC's 21 classes" in note for note in report.notes)
    (root / "classes.txt").write_text("background\ncat\nperson\n" + "".join(f"c{index}\n" for index in range(12)))
    assert segmentation_class_names(root)[:3] == ["background", "cat", "person"]  # a class list is read first


def test_trainval_and_val_lists_train_on_what_val_lacks_and_a_test_list_is_the_test_split(tmp_path: Path) -> None:
    stems = [f"img_{index}" for index in range(6)]
    root = _cvat_export(
        tmp_path / "cvat",
        stems,
        lists={"Trainval": stems[:4], "Validation": stems[3:4], "test": stems[4:]},  # a CVAT project's subset names
    )

    splits = folder_splits(root, "segmentation_folder")

    assert [splits[name].stems for name in ("train", "validation", "test")] == [
        tuple(stems[:3]), (stems[3],), tuple(stems[4:]),
    ]  # fmt: skip
    assert has_own_split(root, "segmentation_folder", "test")
    report = check_data(root)
    assert (report.task, report.problems) == ("segmentation", [])
    assert report.images == {"train": 3, "validation": 1, "test": 2}


def test_a_labelmap_without_colours_takes_vocs_colour_map_by_line(tmp_path: Path) -> None:
    path = tmp_path / "labelmap.txt"
    path.write_text("# label:color_rgb:parts:actions\nbackground:::\ncar:::\nperson::head,hand:\n")

    colours = read_labelmap(path)

    assert (colours.names, colours.colours) == (("background", "car", "person"), tuple(voc_colour_map(3)))
    path.write_text("background:0,0,0::\ncar:::\n")
    with pytest.raises(DataError, match=r"line 2 is 'car:::', without the colour other lines give"):
        read_labelmap(path)


def test_an_export_without_images_and_a_listed_image_that_is_missing_are_named(tmp_path: Path) -> None:
    root = _cvat_export(tmp_path / "cvat", ["a", "b", "c"])
    (root / "JPEGImages" / "b.png").unlink()

    report = check_data(root)

    assert any("'b' (listed in" in problem and "default.txt" in problem for problem in report.problems), report.problems
    for image in (root / "JPEGImages").iterdir():
        image.unlink()
    (root / "JPEGImages").rmdir()
    with pytest.raises(DataError, match=r"holds SegmentationClass/ but no JPEGImages/.*'Save images' on"):
        read_voc_segmentation(root)


def test_train_reads_a_cvat_segmentation_export_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _cvat_export(tmp_path / "cvat", [f"frame_{index:06d}" for index in range(8)])
    arguments = ["train", "task=segmentation", f"data.root={root}", f"experiment.path_experiments={tmp_path}"]
    tiny = ["experiment.name=run", "trainer.max_epochs=1", "data.image_size=32", "data.batch_size=4", "n_visualized=4"]

    status = main([*arguments, *tiny, "export_onnx=false"])

    assert status == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "run" / "metrics_test.json").is_file()


def test_a_list_line_is_a_stem_whole_so_a_name_with_a_space_is_read(tmp_path: Path) -> None:
    # CVAT writes the item of 'IMG 0001.jpg' as the line 'IMG 0001'; the first word named no image: dropped as unannotated
    stems = ["IMG 0001", "IMG 0002", "frame_000002", "frame_000003"]
    root = _cvat_export(tmp_path / "cvat", stems, lists={"Train": stems[:3], "Validation": stems[3:]})
    listed = "".join(f"  {stem} \r\n" for stem in stems[:3])
    (root / "ImageSets" / "Segmentation" / "Train.txt").write_bytes(listed.encode("utf-8-sig"))  # BOM, CRLF, spaces

    splits = folder_splits(root, "segmentation_folder")

    assert splits["train"].stems == tuple(stems[:3])
    assert read_voc_segmentation(root).unlabelled() == []
    assert check_data(root).images == {"train": 3, "validation": 1}


def test_a_test_list_without_any_mask_leaves_the_validation_split_as_the_test_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # VOC2012's test.txt: its test set ships no masks; the test split was empty and training stopped
    lists = {"train": ["2007_000001", "2007_000002", "2007_000003"], "val": ["2007_000004", "2007_000005"]}
    root = _voc_devkit(tmp_path / "VOC2012", lists)
    for index in range(3):
        _image(root / "JPEGImages" / f"2008_00000{index}.jpg", index)
    (root / "ImageSets" / "Segmentation" / "test.txt").write_text("".join(f"2008_00000{index}\n" for index in range(3)))

    splits = folder_splits(root, "segmentation_folder")
    module = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)
    module.setup("test")

    assert splits["test"] is splits["validation"]
    assert not has_own_split(root, "segmentation_folder", "test")
    assert len(module.datasets["test"]) == 2
    notice = capsys.readouterr().out
    assert "test.txt' has no image with a mask" in notice
    assert "the validation split is the test split" in notice
    assert "left out (CVAT lists the images nobody annotated" not in notice
    report = check_data(root, task="segmentation")
    assert set(report.images) == {"train", "validation"}
    assert any("the validation split is the test split" in note for note in report.notes)


def test_masks_in_no_split_list_are_noted_as_not_read(tmp_path: Path) -> None:
    stems = [f"frame_{index:06d}" for index in range(6)]
    root = _cvat_export(tmp_path / "cvat", stems, lists={"train": stems[:3], "val": stems[3:4]})  # 2 masked later

    report = check_data(root, task="segmentation")

    (note,) = [note for note in report.notes if "in no split list" in note]
    assert note.startswith(f"2 masks of {str(root / 'SegmentationClass')!r} ('frame_000004.png', ...) are in no split list")
    assert (report.images["train"], report.images["validation"]) == (3, 1)  # as training reads them
