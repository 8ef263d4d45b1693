"""The readers on small files written here in the standard layouts (not by the shapes generator)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from torchbricks.datasets.readers import (
    DataError,
    ImageFolderDataset,
    SegmentationFolderDataset,
    binary_mask_kind,
    binary_masks_disagree,
    image_folder_class_names,
    read_mask,
    segmentation_class_names,
)
from torchbricks.lightning.image_datamodules import SegmentationFolderDataModule


def _image(path: Path, size: tuple[int, int] = (20, 10), value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def _mask(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def _coco(path: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]], categories: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


# --- ImageFolder --------------------------------------------------------------------------------------------------


def test_image_folder_numbers_classes_in_sorted_order_and_scales_images(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "dog" / "a.png", value=255)
    _image(tmp_path / "train" / "cat" / "b.jpg")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")  # not an image extension: skipped

    dataset = ImageFolderDataset(tmp_path / "train")

    assert dataset.class_names == ["cat", "dog"] == image_folder_class_names(tmp_path / "train")
    assert len(dataset) == 1 + 1
    samples = [dataset[index] for index in range(len(dataset))]
    assert [int(sample["targets"]) for sample in samples] == [0, 1]
    assert samples[1]["raw"].shape == (3, 10, 20)
    assert samples[1]["raw"].max().item() == 1.0


def test_image_folder_split_with_a_class_the_training_split_lacks_is_an_error(tmp_path: Path) -> None:
    _image(tmp_path / "val" / "horse" / "a.png")

    with pytest.raises(DataError, match=r"class folders \['horse'\] that the training split lacks"):
        ImageFolderDataset(tmp_path / "val", class_names=["cat", "dog"])


def test_image_folder_empty_split_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "val" / "cat").mkdir(parents=True)

    with pytest.raises(DataError, match="holds no image") as raised:
        ImageFolderDataset(tmp_path / "val")
    assert str(tmp_path / "val") in str(raised.value)
    with pytest.raises(DataError, match="does not exist"):
        image_folder_class_names(tmp_path / "missing")


# --- Segmentation folders -----------------------------------------------------------------------------------------


def test_segmentation_masks_keep_class_indices_and_the_ignore_value(tmp_path: Path) -> None:
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[2:5, 3:8] = 2
    mask[0, 0] = 255
    _image(tmp_path / "train" / "images" / "x.jpg")
    _mask(tmp_path / "train" / "masks" / "x.png", mask)

    sample = SegmentationFolderDataset(tmp_path / "train", num_classes=3)[0]

    assert sample["targets"].dtype == torch.int64
    assert np.array_equal(sample["targets"].numpy(), mask.astype(np.int64))
    assert segmentation_class_names(tmp_path) == ["background", "class_1", "class_2"]  # scanned: 255 is not a class
    (tmp_path / "classes.txt").write_text("background\nroad\ncar\n")
    assert segmentation_class_names(tmp_path) == ["background", "road", "car"]


def test_labelmes_labels_txt_as_classes_txt_names_the_classes_its_masks_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # labelme's labels.txt begins with __ignore__ (-1, which labelme2voc saves as 255) and then _background_ (0): read
    # as classes.txt line by line, every class took the name of the one before it ('cat' pixels reported as
    # '_background_', 'dog' as 'cat') and 'dog' was said to have no training pixel.
    (tmp_path / "classes.txt").write_text("__ignore__\n_background_\ncat\ndog\n")
    for split in ("train", "val"):
        for index in range(2):
            mask = np.zeros((10, 20), dtype=np.uint8)
            mask[1:4, 1:4], mask[5:8, 10:14], mask[0, :] = 1, 2, 255  # a cat, a dog, a row left unlabelled
            _image(tmp_path / split / "images" / f"{index}.jpg")
            _mask(tmp_path / split / "masks" / f"{index}.png", mask)

    data = SegmentationFolderDataModule(tmp_path, image_size=16, batch_size=2, num_workers=0)

    assert segmentation_class_names(tmp_path) == data.class_names == ["_background_", "cat", "dog"]
    assert data.classes_without_training_example == []
    assert "warning" not in capsys.readouterr().err


def test_a_mask_of_another_size_than_its_image_is_an_error_naming_both_files(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "x.png", size=(20, 10))
    _mask(tmp_path / "train" / "masks" / "x.png", np.zeros((10, 21)))

    with pytest.raises(DataError, match=r"is 21x10 but its image .* is 20x10") as raised:
        SegmentationFolderDataset(tmp_path / "train", num_classes=2)
    assert str(tmp_path / "train" / "masks" / "x.png") in str(raised.value)


def test_an_image_without_its_mask_is_an_error(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "x.png")
    (tmp_path / "train" / "masks").mkdir()

    with pytest.raises(DataError, match=r"has no mask .*x\.png"):
        SegmentationFolderDataset(tmp_path / "train", num_classes=2)


def test_a_mask_value_beyond_the_classes_is_an_error_naming_the_mask(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "x.png")
    _mask(tmp_path / "train" / "masks" / "x.png", np.full((10, 20), 7))

    with pytest.raises(DataError, match=r"x\.png' has value 7; classes are 0 to 2"):
        SegmentationFolderDataset(tmp_path / "train", num_classes=3)[0]


def test_images_in_subfolders_of_a_segmentation_split_are_an_error_not_left_out(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "x.png")
    _mask(tmp_path / "train" / "masks" / "x.png", np.zeros((10, 20)))
    for name in ("a", "b"):  # a camera's frames in a folder of their own, with their masks likewise
        _image(tmp_path / "train" / "images" / "cam1" / f"{name}.png")
        _mask(tmp_path / "train" / "masks" / "cam1" / f"{name}.png", np.zeros((10, 20)))

    with pytest.raises(DataError, match=r"^2 images in subfolders of .*images' \('cam1/a\.png', \.\.\.\) are not read"):
        SegmentationFolderDataset(tmp_path / "train", num_classes=2)


def test_check_data_names_the_images_in_subfolders_of_a_segmentation_split(tmp_path: Path) -> None:
    from torchbricks.datasets.checking import check_data

    root = _binary_segmentation(tmp_path / "data", foreground=1)
    _image(root / "train" / "images" / "cam1" / "a.png", size=(16, 16))

    problems = check_data(root).problems

    found = [problem for problem in problems if problem.startswith("1 image in subfolders of")]
    assert len(found) == 1, problems
    assert "('cam1/a.png') is not read" in found[0]


def test_an_empty_segmentation_split_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "val" / "images").mkdir(parents=True)
    (tmp_path / "val" / "masks").mkdir(parents=True)

    with pytest.raises(DataError, match="holds no image"):
        SegmentationFolderDataset(tmp_path / "val", num_classes=2)


def test_two_images_sharing_one_mask_are_an_error_naming_both(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "a.png")
    _image(tmp_path / "train" / "images" / "a.jpg")
    _mask(tmp_path / "train" / "masks" / "a.png", np.zeros((10, 20)))

    with pytest.raises(DataError, match=r"Images .*a\.jpg' and .*a\.png' share the mask .*a\.png'"):
        SegmentationFolderDataset(tmp_path / "train", num_classes=2)


def _binary_segmentation(root: Path, foreground: int = 255, boundary: bool = False) -> Path:
    """Two images per split with masks of one square drawn as `foreground` on 0 (and a 255 border when `boundary`)."""
    for split in ("train", "val"):
        for index in range(2):
            mask = np.zeros((16, 16), dtype=np.uint8)
            mask[4 + index : 12, 4:12] = foreground
            if boundary:
                mask[3, 3:13] = 255
            _image(root / split / "images" / f"{index}.png", size=(16, 16), value=40 * index + 10 * (split == "val"))
            _mask(root / split / "masks" / f"{index}.png", mask)
    return root


@pytest.mark.parametrize("listed", [False, True])
def test_binary_masks_drawn_as_0_and_255_read_255_as_the_foreground_class(tmp_path: Path, listed: bool) -> None:
    from torchbricks.datasets.checking import check_data
    from torchbricks.lightning.datamodules import SegmentationFolderDataModule
    from torchbricks.lightning.task_resolvers import class_weights_of

    root = _binary_segmentation(tmp_path / "lesions")
    if listed:
        (root / "classes.txt").write_text("skin\nlesion\n")

    data = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)
    targets = next(iter(data.train_dataloader()))["targets"]
    report = check_data(root)

    assert data.foreground_255
    assert set(targets.unique().tolist()) == {0, 1}  # the square is class 1, nothing is ignored
    assert report.ok, report.problems
    names = data.class_names
    assert report.counts["train"][names[1]] == [2, 64 + 56]  # both masks' squares, counted as the foreground
    assert any("hold only 0 and 255: read as binary masks" in note for note in report.notes)
    weights = class_weights_of("auto", "segmentation_folder", str(root))
    assert weights[0] < 1 < weights[1]  # the square is the rarer class


def test_masks_of_class_indices_keep_255_as_the_ignored_value(tmp_path: Path) -> None:
    from torchbricks.lightning.datamodules import SegmentationFolderDataModule

    root = _binary_segmentation(tmp_path / "indices", foreground=1, boundary=True)  # VOC's way: 255 borders objects

    data = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)

    assert not data.foreground_255
    assert {0, 1, 255} == set(next(iter(data.train_dataloader()))["targets"].unique().tolist())


def test_a_mask_saved_as_jpeg_is_named_with_why_masks_are_png(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "x.jpg")
    (tmp_path / "train" / "masks").mkdir(parents=True)
    Image.new("L", (20, 10), 255).save(tmp_path / "train" / "masks" / "x.jpg")

    with pytest.raises(DataError, match=r"has no mask .*x\.png'\. '.*x\.jpg' exists, but masks are read from PNG only"):
        SegmentationFolderDataset(tmp_path / "train", num_classes=2)


def test_a_mask_with_an_upper_case_png_suffix_is_its_images_mask(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "x.jpg")
    _mask(tmp_path / "train" / "masks" / "x.PNG", np.ones((10, 20)))

    (sample,) = SegmentationFolderDataset(tmp_path / "train", num_classes=2)

    assert sample["targets"].unique().tolist() == [1]


def _colour_masks(root: Path, colours: list[tuple[int, int, int]]) -> Path:
    """Images with RGB masks painted in `colours` (as CVAT's "Segmentation mask" export saves classes)."""
    for index, colour in enumerate(colours):
        _image(root / "train" / "images" / f"{index}.png")
        pixels = np.zeros((10, 20, 3), dtype=np.uint8)
        pixels[2:6, 3:9] = colour
        (root / "train" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "train" / "masks" / f"{index}.png")
    return root


def test_a_colour_mask_is_an_error_naming_it_and_a_colour_not_grey_levels(tmp_path: Path) -> None:
    root = _colour_masks(tmp_path, [(250, 50, 83), (51, 221, 255)])

    with pytest.raises(DataError, match=r"Mask '.*0\.png' is a colour mask: .* colours such as \(250, 50, 83\)"):
        segmentation_class_names(root)  # not 251 classes from the largest channel value
    (root / "classes.txt").write_text("background\ncar\nroad\n")
    with pytest.raises(DataError, match=r"is a colour mask.*labelmap\.txt"):
        SegmentationFolderDataset(root / "train", num_classes=3)[0]  # not classes 114 and 174 (grey levels)
    with pytest.raises(DataError, match=r"is a colour mask"):
        SegmentationFolderDataModule(root, image_size=32)  # before the job starts


def test_grey_rgb_and_16_bit_masks_keep_their_class_indices(tmp_path: Path) -> None:
    root = _colour_masks(tmp_path, [(2, 2, 2)])  # grey saved as RGB: the channels agree
    assert segmentation_class_names(root) == ["background", "class_1", "class_2"]
    assert SegmentationFolderDataset(root / "train", num_classes=3)[0]["targets"].unique().tolist() == [0, 2]
    values = np.zeros((10, 20), dtype=np.uint16)
    values[0, :3] = [1, 300, 255]  # more than 255 classes, as predict writes them (16 bits)
    Image.fromarray(values).save(tmp_path / "sixteen.png")
    assert read_mask(tmp_path / "sixteen.png")[0, :4].tolist() == [1, 300, 255, 0]


def _smoothed(mask: np.ndarray) -> np.ndarray:
    """A 0/255 mask as a smoothing resize leaves it: grey levels on the edges of the objects."""
    height, width = mask.shape
    return np.asarray(Image.fromarray(mask).resize((width * 13 // 10, height * 13 // 10), Image.Resampling.BILINEAR))


def test_binary_masks_with_smoothed_edges_are_two_classes_thresholded_at_128(tmp_path: Path) -> None:
    from torchbricks.datasets.checking import check_data
    from torchbricks.lightning.datamodules import SegmentationFolderDataModule

    root = tmp_path / "smoothed"
    for split in ("train", "val"):
        for index in range(3):
            mask = np.zeros((64, 64), dtype=np.uint8)
            mask[8 + index : 40, 12:52] = 255
            smoothed = _smoothed(mask)
            _image(root / split / "images" / f"{index}.png", size=smoothed.shape[::-1], value=30 * index + (split == "val"))
            _mask(root / split / "masks" / f"{index}.png", smoothed)
    assert binary_mask_kind(root / "train" / "masks") == "smoothed"  # grey levels between 0 and 255 on the edges

    assert segmentation_class_names(root) == ["background", "class_1"]  # not 252 classes up to the largest grey level
    data = SegmentationFolderDataModule(root, image_size=48, batch_size=3, num_workers=0)
    targets = next(iter(data.val_dataloader()))["targets"]
    assert data.foreground_255
    assert set(targets.unique().tolist()) == {0, 1}  # nothing ignored, the objects are the class
    smoothed = np.asarray(Image.open(root / "train" / "masks" / "0.png"))
    assert np.array_equal(read_mask(root / "train" / "masks" / "0.png", foreground_255=True), smoothed >= 128)
    report = check_data(root)
    assert report.ok, report.problems
    assert any("grey levels on their edges (smoothed binary masks)" in note for note in report.notes)


def test_masks_of_index_classes_with_a_255_border_and_few_levels_stay_indices(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:12, 4:12] = 1
    mask[3, 3:13] = 255  # VOC's border: few levels, not smoothed edges
    _image(root / "train" / "images" / "a.png", size=(16, 16))
    _mask(root / "train" / "masks" / "a.png", mask)
    assert binary_mask_kind(root / "train" / "masks") is None
    assert segmentation_class_names(root) == ["background", "class_1"]


def test_a_split_of_background_only_masks_agrees_with_binary_training_masks(tmp_path: Path) -> None:
    root = tmp_path / "few_objects"
    for split, value in (("train", 255), ("val", 0)):
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[4:12, 4:12] = value
        _image(root / split / "images" / "a.png", size=(16, 16))
        _mask(root / split / "masks" / "a.png", mask)
    (root / "classes.txt").write_text("background\nobject\n")

    assert binary_masks_disagree(root, 2) is None
    assert SegmentationFolderDataModule(root, image_size=16).class_names == ["background", "object"]


@pytest.mark.parametrize("binary_split", ["train", "val"])
def test_splits_whose_masks_are_of_two_kinds_are_refused_naming_both(tmp_path: Path, binary_split: str) -> None:
    from torchbricks.datasets.checking import check_data

    root = tmp_path / "mixed"
    for split in ("train", "val"):
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[4:12, 4:12] = 255 if split == binary_split else 1
        _image(root / split / "images" / "a.png", size=(16, 16))
        _mask(root / split / "masks" / "a.png", mask)
    (root / "classes.txt").write_text("background\nobject\n")

    with pytest.raises(
        DataError, match=r"'.*train/masks' hold .*, those in '.*val/masks' .*Save every split's masks the same way"
    ):
        SegmentationFolderDataModule(root, image_size=16)
    assert any("Save every split's masks the same way" in problem for problem in check_data(root).problems)


def test_automatic_class_weights_count_the_training_split_as_training_reads_it(tmp_path: Path) -> None:
    from torchbricks.lightning.task_resolvers import class_weights_of

    pool = tmp_path / "pool"  # class folders without splits: a fifth of each class is drawn for validation
    for name, count in (("a", 20), ("b", 5)):
        for index in range(count):
            _image(pool / name / f"{index}.png", value=index)
    segmentation = tmp_path / "segmentation"
    for index in range(2):
        mask = np.zeros((10, 20), dtype=np.uint8)
        mask[:, : 5 * (index + 1)] = 1
        _image(segmentation / "train" / "images" / f"{index}.png")
        _mask(segmentation / "train" / "masks" / f"{index}.png", mask)
        _image(segmentation / "val" / "images" / f"{index}.png")
        _mask(segmentation / "val" / "masks" / f"{index}.png", mask)
    _mask(segmentation / "train" / "masks" / "orphan.png", np.ones((10, 20)))  # its image was deleted

    assert class_weights_of("auto", "image_folder", str(pool)) == pytest.approx([0.4, 1.6])  # 16 and 4 kept
    assert class_weights_of("auto", "image_folder", str(pool), 0.5, 0) == pytest.approx(
        [2 * 3 / 13, 2 * 10 / 13], abs=1e-6
    )  # 10, 3
    pixels = [150 + 100, 50 + 100]  # the two masks of the training images, not the orphan's 200 pixels of class 1
    expected = [1 / pixels[0], 1 / pixels[1]]
    assert class_weights_of("auto", "segmentation_folder", str(segmentation)) == pytest.approx(
        [2 * value / sum(expected) for value in expected]
    )


def test_a_mask_drawn_on_the_stored_picture_of_an_exif_turned_image_is_named_with_why(tmp_path: Path) -> None:
    image = Image.new("RGB", (20, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # stored 20 x 10, shown turned a quarter: 10 x 20
    (tmp_path / "train" / "images").mkdir(parents=True)
    image.save(tmp_path / "train" / "images" / "a.jpg", exif=exif)
    _mask(tmp_path / "train" / "masks" / "a.png", np.zeros((10, 20)))  # drawn on the picture as stored

    with pytest.raises(DataError, match=r"is 20x10 but its image .* is 10x20 .* The sides are swapped: .*EXIF orientation"):
        SegmentationFolderDataset(tmp_path / "train", num_classes=2)


def test_check_data_notes_masks_without_an_image(tmp_path: Path) -> None:
    from torchbricks.datasets.checking import check_data

    root = _binary_segmentation(tmp_path / "data", foreground=1)
    _mask(root / "train" / "masks" / "deleted.png", np.ones((16, 16)))  # its image was deleted

    notes = check_data(root).notes

    assert any("1 mask in " in note and "('deleted.png') has no image of the same name" in note for note in notes), notes


def test_class_folders_spelt_in_another_unicode_form_are_the_same_class(tmp_path: Path) -> None:
    import unicodedata

    composed, decomposed = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    assert composed != decomposed  # the same name shown, two spellings on disk (macOS copies write NFD)
    _image(tmp_path / "train" / composed / "a.png")
    _image(tmp_path / "train" / "thé" / "b.png")
    _image(tmp_path / "val" / decomposed / "c.png")

    dataset = ImageFolderDataset(tmp_path / "val", [composed, "thé"])

    assert [(path.name, label) for path, label in dataset.samples] == [("c.png", 0)]


def test_an_empty_line_in_a_segmentation_classes_file_is_an_error_naming_the_line(tmp_path: Path) -> None:
    # line n names the mask value n - 1: skipped, the empty line would give the values above it the next class's name
    (tmp_path / "classes.txt").write_text("background\nroad\n\ncar\n")

    with pytest.raises(DataError, match=r"classes.txt' line 3 is empty"):
        segmentation_class_names(tmp_path)


@pytest.mark.parametrize(
    ("folders", "layout"),
    [
        (["images", "masks"], "segmentation data"),
        (["JPEGImages", "SegmentationClass"], "Pascal VOC's segmentation layout"),
        (["Annotations", "JPEGImages"], "Pascal VOC's box layout"),
        (["images", "labels"], "YOLO's box layout"),
    ],
)
def test_the_folders_of_another_tasks_layout_are_refused_as_classes(tmp_path: Path, folders: list[str], layout: str) -> None:
    # task=classification data.root=<segmentation data> trained on the classes 'images' and 'masks' without a word
    from torchbricks.datasets.readers import DataError, training_class_names

    for name in folders:
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "a.png")

    with pytest.raises(
        DataError, match=rf"holds the folders {re.escape(str(folders))}, which are {re.escape(layout)}.* not classes"
    ):
        training_class_names(tmp_path)
    (tmp_path / "other").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "other" / "a.png")
    with pytest.raises(DataError, match=r"not classes"):
        training_class_names(tmp_path)


def test_class_folders_named_as_no_layouts_folders_together_are_classes(tmp_path: Path) -> None:
    from torchbricks.datasets.readers import training_class_names

    for name in ("images", "cats"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "a.png")

    assert training_class_names(tmp_path) == ["cats", "images"]


def _cat_dog_segmentation(root: Path, classes: str, values: tuple[int, ...] = (1, 2)) -> Path:
    """Masks as a user's tool writes them (0 the background, the cat 1, the dog 2), with the `classes.txt` a user
    writes by hand."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(classes)
    for split in ("train", "val"):
        for index in range(2):
            mask = np.zeros((10, 20), dtype=np.uint8)
            for place, value in enumerate(values):
                mask[1:4, 1 + 5 * place : 4 + 5 * place] = value
            _image(root / split / "images" / f"{index}.jpg")
            _mask(root / split / "masks" / f"{index}.png", mask)
    return root


def test_a_classes_txt_without_its_background_line_is_named_when_a_mask_value_is_past_it(tmp_path: Path) -> None:
    # 'cat' and 'dog' listed, masks 0/1/2: the error said "classes are 0 to 1" without saying line 1 is value 0
    root = _cat_dog_segmentation(tmp_path, "cat\ndog\n")
    data = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)
    data.setup("fit")

    with pytest.raises(DataError, match=r"has value 2; classes are 0 to 1") as raised:
        data.datasets["train"].load_sample(0)
    assert "Value 0 is the background ('cat', the first line of the class list)" in str(raised.value)
    assert "put a line `background` first" in str(raised.value)
    with pytest.raises(DataError, match=r"got \['cat'\]: put a line `background` first"):
        segmentation_class_names(_cat_dog_segmentation(tmp_path / "one", "cat\n", (1,)))


def test_segmentation_on_a_labelimg_yolo_folder_of_one_class_names_the_missing_masks_not_the_class_list(
    tmp_path: Path,
) -> None:
    # task=segmentation on YOLO boxes beside a classes.txt of one class said to put a line `background` first in
    # classes.txt, a class list of boxes; with two classes the same folder was named as no segmentation data
    (tmp_path / "classes.txt").write_text("cat\n")
    for stem in ("a", "b"):
        _image(tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n")

    with pytest.raises(DataError, match=r"has no training folder .*expected .*masks/<same stem>\.png"):
        segmentation_class_names(tmp_path)


def test_a_classes_txt_without_its_background_line_is_noted_once_at_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cat, dog, bird listed, masks 0 (background), 1 (cat), 2 (dog), no bird drawn yet: 'cat' named the background,
    # 'dog' the cats and 'bird' the dogs, and every value was in range: not a word
    root = _cat_dog_segmentation(tmp_path / "shifted", "cat\ndog\nbird\n")

    SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)

    printed = capsys.readouterr().err
    assert "note: " + repr(str(root / "classes.txt")) + " begins with 'cat': its first line names mask value 0" in printed
    assert "put a line `background` first" in printed
    assert printed.count("begins with") == 1
    # a background line (as VOC, labelme and CVAT export), with a class not drawn yet or not: no note
    for number, classes in enumerate(("background\ncat\ndog\nbird\n", "_background_\ncat\ndog\n", "Void\ncat\ndog\n")):
        SegmentationFolderDataModule(
            _cat_dog_segmentation(tmp_path / str(number), classes), image_size=16, batch_size=2, num_workers=0
        )
        assert "begins with" not in capsys.readouterr().err


def test_a_numbered_classes_txt_of_masks_is_read_without_its_numbers_and_the_start_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # '0 background', '1 cat', ... (as some exporters write a class list) is read as the names; the YOLO readers said
    # so, the masks' reader read it alike without a word
    from torchbricks.datasets.checking import check_data

    root = _cat_dog_segmentation(tmp_path / "numbered", "0 background\n1 cat\n2 dog\n")

    module = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)

    assert module.class_names == ["background", "cat", "dog"]
    printed = capsys.readouterr().err
    assert printed.count("begins each line with its class index ('0 background')") == 1
    assert "begins each line" in " ".join(check_data(root, task="segmentation").notes)
    # written as names: no note
    SegmentationFolderDataModule(
        _cat_dog_segmentation(tmp_path / "names", "background\ncat\ndog\n"), image_size=16, batch_size=2, num_workers=0
    )
    assert "begins each line" not in capsys.readouterr().err


def test_a_segmentation_split_of_more_classes_than_the_ignored_value_leaves_out_is_refused(tmp_path: Path) -> None:
    # 16-bit masks can number 300 classes, but 255 marks ignored pixels: class 255 would never be trained or scored
    with pytest.raises(DataError, match=r"has 256 classes, but mask value 255 marks ignored pixels: class 255"):
        SegmentationFolderDataset(tmp_path, num_classes=256)


def test_masks_rewritten_in_the_same_process_are_read_again_for_the_classes_and_the_binary_kind(tmp_path: Path) -> None:
    # The class count (without classes.txt) and whether two-class masks are binary 0/255 were kept per folder path for
    # the life of the process: a notebook that fixed its masks and built the data module again got the old ones.
    from torchbricks.lightning.datamodules import SegmentationFolderDataModule

    root = _binary_segmentation(tmp_path / "data")  # 0 and 255: one class, binary
    before = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)
    for path in sorted(root.glob("*/masks/*.png")):  # rewritten as class indices 0, 1, 2, 3 (3 in the second mask)
        index = int(path.stem)
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[4:8, 4:12], mask[8:12, 4:12] = 1, 2 + index
        _mask(path, mask)

    after = SegmentationFolderDataModule(root, image_size=16, batch_size=2, num_workers=0)

    assert before.foreground_255
    assert before.class_names == ["background", "class_1"]
    assert not after.foreground_255
    assert after.class_names == segmentation_class_names(root) == ["background", "class_1", "class_2", "class_3"]
    assert set(next(iter(after.train_dataloader()))["targets"].unique().tolist()) == {0, 1, 2, 3}


def test_a_class_folder_whose_name_is_not_utf_8_is_an_error_naming_its_bytes(tmp_path: Path) -> None:
    # 'bl\xfce' (cp1252's blue, as a zip made on Windows unpacks on Linux) became the class 'bl\udcfce', which
    # trained until matplotlib could not draw it in the pictures of the first validation: a raw TypeError
    for name in (b"red", b"bl\xfce"):
        _image(tmp_path / "train" / os.fsdecode(name) / "a.png")

    with pytest.raises(DataError, match=re.escape(r"has a name that is no UTF-8 (b'bl\xfce'")):
        image_folder_class_names(tmp_path / "train")


def test_segmentation_class_list_lines_equal_but_for_spaces_are_an_error_and_numbered_lines_are_read(tmp_path: Path) -> None:
    # read as ['background', 'road', 'road']: two classes of one name, the masks' value 2 reported as a second 'road'
    (tmp_path / "classes.txt").write_text("background\nroad\nroad \n")
    with pytest.raises(DataError, match=r"classes\.txt' has line 2 'road' and line 3 'road ': the same class name 'road'"):
        segmentation_class_names(tmp_path)

    (tmp_path / "classes.txt").write_text("0 background\n1 road\n2 car\n")
    assert segmentation_class_names(tmp_path) == ["background", "road", "car"]
