"""The YOLO and Pascal VOC readers against the COCO one: the shapes' COCO folder rewritten in each layout by the test
helpers (tests/layouts.py) reads back as the same boxes, labels and classes; bad files are errors naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from layouts import COCO_TOOLS, coco_as_tools_write_it, coco_to_voc, coco_to_yolo, voc_xml, yolo_to_darknet, yolo_without_splits
from PIL import Image

from torchbricks.datasets.coco import CocoDataset, read_coco_layout
from torchbricks.datasets.detection_layouts import (
    coco_category_ids,
    detect_detection_layout,
    detection_class_names,
    has_test_split,
    has_validation_split,
    read_detection_split,
)
from torchbricks.datasets.readers import BoxDataset, DataError, DataProblems
from torchbricks.datasets.shapes import SHAPE_CLASSES, write_shapes_dataset
from torchbricks.datasets.voc import VocDataset, read_voc_splits, voc_class_names
from torchbricks.datasets.yolo import YoloDataset, yolo_class_names
from torchbricks.errors import ConfigError


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", num_train=6, num_val=3, image_size=40) / "detection"


def _by_image(dataset: BoxDataset, key: str = "name") -> dict[str, tuple[tuple[int, int], list[int], np.ndarray]]:
    """Image -> (size, labels, boxes) of a split, keyed by the image's file name (VOC ids drop the split prefix)."""
    found = {}
    for record in dataset.records:
        name = record.path.name.split("_", 1)[-1] if key == "name" else record.path.name
        found[name] = (
            (record.width, record.height),
            [item.label for item in record.objects],
            np.array([item.box for item in record.objects]),
        )
    return found


def _assert_same(actual: BoxDataset, expected: BoxDataset) -> None:
    assert actual.class_names == expected.class_names == list(SHAPE_CLASSES)
    got, want = _by_image(actual), _by_image(expected)
    assert sorted(got) == sorted(want)
    for name, (size, labels, boxes) in want.items():
        assert got[name][0] == size
        assert got[name][1] == labels
        np.testing.assert_allclose(got[name][2].reshape(-1, 4), boxes.reshape(-1, 4), atol=1e-4)


@pytest.mark.parametrize("layout", ["yolo", "yolo_names_dict", "voc", "voc_per_split"])
def test_yolo_and_voc_copies_of_coco_data_read_as_the_same_boxes_labels_and_classes(
    coco: Path, tmp_path: Path, layout: str
) -> None:
    if layout.startswith("voc"):
        root = coco_to_voc(coco, tmp_path / "voc", per_split=layout == "voc_per_split")
    else:
        root = coco_to_yolo(coco, tmp_path / "yolo", names_as_dict=layout == "yolo_names_dict")
    kind = layout.split("_", maxsplit=1)[0]

    assert detect_detection_layout(root) == kind
    assert detect_detection_layout(coco) == "coco"
    assert detection_class_names(root) == detection_class_names(coco) == list(SHAPE_CLASSES)
    for split in ("train", "validation"):
        _assert_same(read_detection_split(root, kind, split), read_detection_split(coco, "coco", split))
    sample = read_detection_split(root, kind, "train")[0]  # the shared sample path: the same tensors as COCO's
    reference = read_detection_split(coco, "coco", "train")[0]
    assert torch.equal(sample["raw"], reference["raw"])
    torch.testing.assert_close(sample["target_boxes"], reference["target_boxes"], atol=1e-4, rtol=0)
    assert torch.equal(sample["target_labels"], reference["target_labels"])


@pytest.mark.parametrize("tool", COCO_TOOLS)
def test_coco_as_tools_write_it_reads_as_the_same_boxes_labels_and_classes(coco: Path, tmp_path: Path, tool: str) -> None:
    root = coco_as_tools_write_it(coco, tmp_path / tool, tool)
    assert not (root / "train.json").exists()

    assert detect_detection_layout(root) == "coco"
    assert detection_class_names(root) == list(SHAPE_CLASSES)
    assert coco_category_ids(root) == coco_category_ids(coco)
    assert not has_test_split(root, "coco")
    splits = {split: read_detection_split(root, "coco", split) for split in ("train", "validation", "test")}
    if tool in ("cvat_default", "label_studio"):  # one pool: 20 % of its 9 images drawn for validation, the seed's
        assert (len(splits["train"]), len(splits["validation"])) == (7, 2)
        drawn = {record.path.name for record in splits["validation"].records}
        assert {record.path.name for record in read_detection_split(root, "coco", "validation").records} == drawn
        assert {record.path.name for record in read_detection_split(root, "coco", "validation", seed=1).records} != drawn
        pooled = {**_by_image(splits["train"], key="file"), **_by_image(splits["validation"], key="file")}
        reference = {
            f"{folder}_{name}": value
            for split, folder in (("train", "train"), ("validation", "val"))
            for name, value in _by_image(read_detection_split(coco, "coco", split), key="file").items()
        }
        assert sorted(pooled) == sorted(reference)  # every image once, with the boxes the COCO file gives it
        for name, (size, labels, boxes) in reference.items():
            assert pooled[name][:2] == (size, labels)
            np.testing.assert_allclose(pooled[name][2].reshape(-1, 4), boxes.reshape(-1, 4), atol=1e-4)
    else:
        for split in ("train", "validation"):
            _assert_same(splits[split], read_detection_split(coco, "coco", split))
    assert [record.path for record in splits["test"].records] == [record.path for record in splits["validation"].records]
    sample, reference_sample = splits["train"][0], read_detection_split(coco, "coco", "train")[0]
    if tool not in ("cvat_default", "label_studio"):
        assert torch.equal(sample["raw"], reference_sample["raw"])
        assert torch.equal(sample["target_labels"], reference_sample["target_labels"])


def test_a_coco_test_file_is_the_test_split_and_a_missing_training_file_is_named(coco: Path, tmp_path: Path) -> None:
    root = coco_as_tools_write_it(coco, tmp_path / "roboflow", "roboflow")
    shutil.copytree(root / "valid", root / "test")
    shutil.copytree(root / "valid", root / "train_old")  # a stray copy is no split: the folders go by their names

    assert has_test_split(root, "coco")
    assert read_coco_layout(root).train.path == root / "train" / "_annotations.coco.json"
    test = read_detection_split(root, "coco", "test")
    assert [record.path.parent.name for record in test.records] == ["test"] * 3
    shutil.rmtree(root / "train")
    (root / "annotations").mkdir()
    shutil.move(root / "valid" / "_annotations.coco.json", root / "annotations" / "instances_val.json")
    with pytest.raises(DataError, match=r"has no training file among \['annotations/instances_val\.json'\]"):
        detection_class_names(root)


def test_voc_images_with_xml_beside_them_are_split_by_a_seeded_fraction(coco: Path, tmp_path: Path) -> None:
    root = coco_to_voc(coco, tmp_path / "flat", flat=True)

    splits = read_voc_splits(root)
    assert not splits.listed
    assert (len(splits.files["train"]), len(splits.files["validation"]), len(splits.files["test"])) == (7, 2, 0)  # 20 % of 9
    assert read_voc_splits(root).files == splits.files  # fixed by the seed
    assert read_voc_splits(root, seed=1).files["validation"] != splits.files["validation"]
    assert len(read_voc_splits(root, validation_fraction=0.5).files["validation"]) == round(0.5 * 9)
    assert voc_class_names(root) == list(SHAPE_CLASSES)
    every = {**_by_image(VocDataset(root, "train")), **_by_image(VocDataset(root, "validation"))}
    reference = {
        **_by_image(read_detection_split(coco, "coco", "train")),
        **_by_image(read_detection_split(coco, "coco", "validation")),
    }
    assert sorted(every) == sorted(reference)  # every image once, in one split or the other


def _into_subfolders(folders: list[Path], stems: list[str], subfolder: str) -> None:
    """Moves the files of `stems` in each of `folders` into `folder/subfolder/`, as CVAT keeps a task's folders."""
    for folder in folders:
        (folder / subfolder).mkdir()
        for path in list(folder.iterdir()):
            if path.is_file() and path.stem in stems:
                path.rename(folder / subfolder / path.name)


def _every_image(root: Path) -> dict[str, tuple[tuple[int, int], list[int], np.ndarray]]:
    return {**_by_image(VocDataset(root, "train"), key="file"), **_by_image(VocDataset(root, "validation"), key="file")}


@pytest.mark.parametrize("tool", ["cvat", "labelimg"])
def test_voc_xml_files_in_subfolders_are_read_with_their_images(coco: Path, tmp_path: Path, tool: str) -> None:
    root = coco_to_voc(coco, tmp_path / tool, flat=tool == "labelimg")
    folders = [root] if tool == "labelimg" else [root / "Annotations", root / "JPEGImages"]
    stems = sorted(path.stem for path in folders[0].glob("*.xml"))[::2]
    _into_subfolders(folders, stems, "cam1")
    if tool == "cvat":  # CVAT lists every id in default.txt, the subfolder's with it, and no train.txt
        ids = [line if line not in stems else f"cam1/{line}" for line in sorted(path.stem for path in root.rglob("*.xml"))]
        for listed in (root / "ImageSets" / "Main").iterdir():
            listed.unlink()
        (root / "ImageSets" / "Main" / "default.txt").write_text("\n".join(ids) + "\n")

    every = _every_image(root)

    reference = {
        f"{folder}_{name}": value
        for split, folder in (("train", "train"), ("validation", "val"))
        for name, value in _by_image(read_detection_split(coco, "coco", split), key="file").items()
    }
    assert sorted(every) == sorted(reference)  # every image once, the subfolder's included
    for name, (size, labels, boxes) in reference.items():
        assert every[name][:2] == (size, labels)
        np.testing.assert_allclose(every[name][2].reshape(-1, 4), boxes.reshape(-1, 4), atol=1e-4)


def test_a_voc_training_list_alone_draws_the_validation_split_from_it(coco: Path, tmp_path: Path) -> None:
    root = coco_to_voc(coco, tmp_path / "voc")
    listed = (root / "ImageSets" / "Main" / "train.txt").read_text().split()
    (root / "ImageSets" / "Main" / "val.txt").unlink()  # CVAT's export of a train subset alone

    splits = read_voc_splits(root)

    assert not splits.listed
    assert not has_validation_split(root, "voc")
    assert (len(splits.files["train"]), len(splits.files["validation"])) == (5, 1)  # 20 % of the 6 listed
    assert sorted(path.stem for path in splits.files["train"] + splits.files["validation"]) == sorted(listed)
    assert len(VocDataset(root, "validation")) == 1


@pytest.mark.parametrize("tool", ["labelimg", "label_studio"])
def test_yolo_without_splits_as_labelling_tools_save_it_is_split_by_a_seeded_fraction(
    coco: Path, tmp_path: Path, tool: str
) -> None:
    root = yolo_without_splits(coco_to_yolo(coco, tmp_path / "yolo"), tmp_path / tool, tool)
    assert not (root / "data.yaml").exists()

    assert detect_detection_layout(root) == "yolo"
    assert detection_class_names(root) == list(SHAPE_CLASSES)
    splits = {split: read_detection_split(root, "yolo", split) for split in ("train", "validation")}
    assert (len(splits["train"]), len(splits["validation"])) == (7, 2)  # 20 % of 9
    assert not has_test_split(root, "yolo")
    reference = {
        f"{folder}_{name}": value
        for split, folder in (("train", "train"), ("validation", "val"))
        for name, value in _by_image(read_detection_split(coco, "coco", split), key="file").items()
    }
    every = {**_by_image(splits["train"], key="file"), **_by_image(splits["validation"], key="file")}
    assert sorted(every) == sorted(reference)  # every image once, with the boxes and labels the COCO file gives it
    for name, (size, labels, boxes) in reference.items():
        assert every[name][:2] == (size, labels)
        np.testing.assert_allclose(every[name][2].reshape(-1, 4), boxes.reshape(-1, 4), atol=1e-4)
    validation = sorted(_by_image(splits["validation"], key="file"))
    assert sorted(_by_image(read_detection_split(root, "yolo", "validation"), key="file")) == validation  # the seed's
    assert sorted(_by_image(read_detection_split(root, "yolo", "validation", seed=1), key="file")) != validation
    assert len(read_detection_split(root, "yolo", "validation", validation_fraction=0.5)) == round(0.5 * 9)


@pytest.mark.parametrize("prefix", ["data/", ""])
def test_darknet_yolo_as_cvat_exports_it_reads_the_listed_splits(coco: Path, tmp_path: Path, prefix: str) -> None:
    root = yolo_to_darknet(coco_to_yolo(coco, tmp_path / "yolo"), tmp_path / "darknet", prefix=prefix)

    assert detect_detection_layout(root) == "yolo"
    assert detection_class_names(root) == list(SHAPE_CLASSES)
    for split in ("train", "validation"):
        _assert_same(read_detection_split(root, "yolo", split), read_detection_split(coco, "coco", split))
    (root / "obj.names").rename(root / "names.txt")
    with pytest.raises(DataError, match=r"class names file '.*obj\.names' does not exist"):
        detection_class_names(root)


def test_yolo_without_a_validation_split_draws_one_from_the_training_images(coco: Path, tmp_path: Path) -> None:
    yolo = coco_to_yolo(coco, tmp_path / "yolo")
    darknet = yolo_to_darknet(yolo, tmp_path / "darknet", with_valid=False)
    (yolo / "data.yaml").write_text("path: ./\ntrain: images/train\nnames: [circle, square, triangle]\n")  # no val
    shutil.rmtree(yolo / "images" / "val")

    for root in (darknet, yolo):
        train, validation = (read_detection_split(root, "yolo", split) for split in ("train", "validation"))
        assert (len(train), len(validation)) == (5, 1)  # 20 % of the 6 training images
        names = {record.path.name for record in train.records}
        assert names.isdisjoint(record.path.name for record in validation.records)
        assert names | {record.path.name for record in validation.records} == {
            path.name for path in (tmp_path / "yolo" / "images" / "train").glob("*.png")
        }


def test_a_yolo_pool_of_one_image_cannot_be_split(tmp_path: Path) -> None:
    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "classes.txt").write_text("cat\n")

    with pytest.raises(DataError, match=r"has 1 labelled file\(s\); a split into train and validation needs two"):
        YoloDataset(tmp_path, "train")


def test_yolo_image_without_label_file_has_no_objects_and_a_test_split_is_read(coco: Path, tmp_path: Path) -> None:
    root = coco_to_yolo(coco, tmp_path / "yolo")
    label = next((root / "labels" / "train").glob("*.txt"))
    label.unlink()
    (root / "images" / "test").mkdir()
    Image.new("RGB", (16, 12)).save(root / "images" / "test" / "blank.png")
    (root / "labels" / "test").mkdir()
    (root / "labels" / "test" / "blank.txt").write_text("")  # a split of images without objects says so
    (root / "data.yaml").write_text((root / "data.yaml").read_text() + "test: images/test\n")

    emptied = next(record for record in YoloDataset(root, "train").records if record.path.stem == label.stem)
    test = YoloDataset(root, "test")

    assert emptied.objects == []
    assert len(test) == 1
    assert test[0]["target_boxes"].shape == (0, 4)


def test_yolo_split_entries_may_be_lists_of_image_paths_relative_to_the_list_file(coco: Path, tmp_path: Path) -> None:
    root = coco_to_yolo(coco, tmp_path / "yolo")
    images = sorted((root / "images" / "val").glob("*.png"))
    (root / "val.txt").write_text("\n".join(f"./images/val/{path.name}" for path in images[:2]) + "\n")
    (root / "data.yaml").write_text((root / "data.yaml").read_text().replace("val: images/val", "val: val.txt"))

    assert [record.path.name for record in YoloDataset(root, "validation").records] == [path.name for path in images[:2]]


def test_a_voc_difficult_object_gets_the_ignored_label(tmp_path: Path) -> None:
    Image.new("RGB", (20, 10)).save(tmp_path / "a.jpg")
    Image.new("RGB", (20, 10)).save(tmp_path / "b.jpg")
    (tmp_path / "a.xml").write_text(voc_xml("a.jpg", 20, 10, [("dog", [0, 0, 5, 5], False), ("cat", [5, 5, 10, 5], True)]))
    (tmp_path / "b.xml").write_text(voc_xml("b.jpg", 20, 10, [("cat", [1, 1, 4, 4], False)]))

    datasets = [VocDataset(tmp_path, split, validation_fraction=0.5) for split in ("train", "validation")]
    (dataset,) = [dataset for dataset in datasets if dataset.records[0].path.name == "a.jpg"]
    sample = dataset[0]

    assert dataset.class_names == ["cat", "dog"]
    assert [(item.label, item.difficult) for item in dataset.records[0].objects] == [(1, False), (0, True)]
    assert sample["target_labels"].tolist() == [1, -2 - 0]  # class 0, ignored
    assert sample["target_boxes"][1].tolist() == [5.0, 5.0, 15.0, 10.0]


VOC_DEVKIT_XML = """<annotation>
\t<folder>VOC2012</folder>
\t<filename>{name}.jpg</filename>
\t<size><width>40</width><height>30</height><depth>3</depth></size>
\t<object>
\t\t<name>cat</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>
\t</object>
</annotation>
"""
"""A VOC annotation as the devkit writes one: 1-based pixel indices, `xmax` and `ymax` the last pixel inside."""


@pytest.mark.parametrize(
    ("voc_box", "coco_bbox"),
    [((10, 5, 19, 7), [9, 4, 10, 3]), ((1, 1, 40, 30), [0, 0, 40, 30]), ((7, 30, 7, 30), [6, 29, 1, 1])],
    ids=["columns_10_to_19", "whole_image", "one_pixel_at_the_bottom"],
)
def test_a_voc_box_of_1_based_inclusive_pixels_is_the_coco_box_of_the_same_pixels(
    tmp_path: Path, voc_box: tuple[int, int, int, int], coco_bbox: list[int]
) -> None:
    for name in ("a", "b"):
        Image.new("RGB", (40, 30)).save(tmp_path / f"{name}.jpg")
        (tmp_path / f"{name}.xml").write_text(
            VOC_DEVKIT_XML.format(name=name, **dict(zip(("xmin", "ymin", "xmax", "ymax"), voc_box, strict=True)))
        )
    (tmp_path / "coco.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": coco_bbox, "area": 1, "iscrowd": 0}],
                "categories": [{"id": 1, "name": "cat"}],
            }
        )
    )

    voc = [record for split in ("train", "validation") for record in VocDataset(tmp_path, split, validation_fraction=0.5).records]
    coco = CocoDataset(tmp_path / "coco.json", tmp_path).records

    assert voc[0].objects[0].box == coco[0].objects[0].box  # (x_min, y_min, x_max, y_max) in pixel edges
    x, y, width, height = coco_bbox
    assert coco[0].objects[0].box == pytest.approx((x, y, x + width, y + height))


def test_multitask_on_voc_boxes_without_outlines_is_a_config_error_naming_the_layouts_with_outlines(
    coco: Path, tmp_path: Path
) -> None:
    from torchbricks.lightning.datamodules import DetectionDataModule

    root = coco_to_voc(coco, tmp_path / "voc")
    with pytest.raises(ConfigError, match=r"'data.task' is multitask.*YOLO segmentation lines\); the voc data .* has boxes only"):
        DetectionDataModule(root, task="multitask")


def test_the_data_module_exposes_class_names_and_coco_category_ids(coco: Path, tmp_path: Path) -> None:
    from torchbricks.lightning.datamodules import CocoDataModule, DetectionDataModule

    voc = DetectionDataModule(coco_to_voc(coco, tmp_path / "voc"), image_size=32, batch_size=2, num_workers=0)
    from_coco = CocoDataModule(coco, image_size=32, batch_size=2, num_workers=0)

    assert (voc.layout, voc.class_names, voc.category_ids) == ("voc", list(SHAPE_CLASSES), None)
    assert (from_coco.layout, from_coco.class_names, from_coco.category_ids) == ("coco", list(SHAPE_CLASSES), [3, 7, 12])
    batch = next(iter(voc.train_dataloader()))
    assert batch["raw"].shape == (2, 3, 32, 32)
    assert len(voc.test_dataloader().dataset) == 3  # no test split: val is the test split


# --- Errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["labelimg", "label_studio"])
def test_yolo_data_kept_under_a_folder_named_images_keeps_its_label_files(coco: Path, tmp_path: Path, tool: str) -> None:
    yolo = coco_to_yolo(coco, tmp_path / "yolo")
    outside = yolo_without_splits(yolo, tmp_path / "plain" / tool, tool)
    inside = shutil.copytree(outside, tmp_path / "images" / tool)  # ~/images/<project>, as people name such folders

    for root in (inside, yolo):
        assert detection_class_names(root) == list(SHAPE_CLASSES)
    train = read_detection_split(inside, "yolo", "train")
    got, want = (_by_image(dataset, key="file") for dataset in (train, read_detection_split(outside, "yolo", "train")))
    assert sorted(got) == sorted(want)
    assert sum(len(record.objects) for record in train.records) > 0
    for name, (size, labels, boxes) in want.items():
        assert got[name][:2] == (size, labels)
        np.testing.assert_array_equal(got[name][2], boxes)
    moved = shutil.copytree(yolo, tmp_path / "images" / "ultralytics")
    (moved / "data.yaml").write_text((yolo / "data.yaml").read_text().replace(f"path: {yolo}", "path: ."))
    _assert_same(read_detection_split(moved, "yolo", "train"), read_detection_split(coco, "coco", "train"))


def test_a_yolo_pose_line_is_read_as_its_box_and_a_short_one_is_named(tmp_path: Path) -> None:
    keypoints = " 0.3 0.3 0.4 0.4 0.5 0.5 0.6 0.6"  # four keypoints of two numbers, inside the box
    root = _yolo(tmp_path, "1 0.5 0.5 0.4 0.8" + keypoints + "\n", names="[cat, dog]\nkpt_shape: [4, 2]")

    (record,) = YoloDataset(root, "train").records
    assert record.objects[0].box == pytest.approx((6.0, 1.0, 14.0, 9.0))  # the box of cx cy w h, not the points'
    assert record.objects[0].label == 1
    assert record.objects[0].segmentation is None
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.4 0.8 0.3 0.3\n")
    with pytest.raises(DataError, match=r"a\.txt' line 1: .* has 7 numbers; with the kpt_shape of data.yaml .*\(13 in all\)"):
        YoloDataset(root, "train")
    (root / "data.yaml").write_text("names: [cat, dog]\nkpt_shape: [4]\n")
    with pytest.raises(DataError, match=r"has kpt_shape \[4\]; expected \[keypoints, 2 or 3\]"):
        YoloDataset(root, "train")


def _yolo(tmp_path: Path, lines: str, names: str = "[cat, dog]") -> Path:
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        Image.new("RGB", (20, 10)).save(tmp_path / "images" / split / "a.png")
    (tmp_path / "labels" / "train" / "a.txt").write_text(lines)
    (tmp_path / "data.yaml").write_text(f"names: {names}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("0 0.5 0.5 0.2\n", r"a\.txt' line 1: '0 0.5 0.5 0.2' is not 'class cx cy w h'"),
        ("0 0.5 0.5 0.2 0.2\nx 0.5 0.5 0.2 0.2\n", r"a\.txt' line 2: 'x 0.5 .*' is not a class index followed by numbers"),
        ("2 0.5 0.5 0.2 0.2\n", r"a\.txt' line 1: class 2 is out of range; the data has 2 classes \(0 to 1\)"),
        ("0.5 0.5 0.5 0.2 0.2\n", r"a\.txt' line 1: .* the class 0.5 is not a whole number"),
        ("0 0.98 0.5 0.2 0.2\n", r"a\.txt' line 1: .* is outside \[0, 1\] .* of 20x10"),
        ("0 0.5 0.5 0 0.2\n", r"a\.txt' line 1: .* is outside \[0, 1\] .*, or empty;"),
    ],
)
def test_bad_yolo_lines_are_errors_naming_the_file_and_line(tmp_path: Path, lines: str, message: str) -> None:
    root = _yolo(tmp_path, lines)

    with pytest.raises(DataError, match=message):
        YoloDataset(root, "train")


@pytest.mark.parametrize("label", ["1", "1.0"])  # 1.0: converters that write every column as a float
def test_yolo_coordinates_may_reach_a_pixel_past_the_border(tmp_path: Path, label: str) -> None:
    root = _yolo(tmp_path, f"{label} 0.5 0.5 1.05 1.0\n")  # 21 of 20 pixels wide: rounding in an annotation tool

    (record,) = YoloDataset(root, "train").records
    assert record.objects[0].box == (0.0, 0.0, 20.0, 10.0)
    assert record.objects[0].label == 1


def test_a_collecting_reader_lists_every_bad_line_and_keeps_the_good_ones(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n0 2 0.5 0.2 0.2\n1 0.25 0.25 0.5 0.5\n")
    problems = DataProblems(collect=True)

    dataset = YoloDataset(root, "train", problems=problems)

    assert [message.split(": ")[0].rsplit(" ", 1)[-1] for message in problems.messages] == ["2", "3"]
    assert [item.label for item in dataset.records[0].objects] == [0, 1]


def test_a_missing_yolo_image_and_bad_data_yaml_are_errors(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "")
    (root / "val.txt").write_text("images/val/gone.png\n")
    (root / "data.yaml").write_text("names: [cat, dog]\nval: val.txt\n")
    with pytest.raises(DataError, match=r"gone\.png' \(listed in the YOLO split 'validation'\) does not exist"):
        YoloDataset(root, "validation")
    (root / "data.yaml").write_text("names: {0: cat, 2: dog}\n")
    with pytest.raises(DataError, match=r"numbers its 'names' \[0, 2\]; expected 0 to 1"):
        yolo_class_names(root)
    (root / "data.yaml").write_text("names: [cat, dog]\nnc: 3\n")
    with pytest.raises(DataError, match=r"has nc: 3 but 2 names"):
        yolo_class_names(root)
    (root / "data.yaml").write_text("names: [cat\n")
    with pytest.raises(DataError, match=r"data\.yaml' cannot be read as YAML"):
        yolo_class_names(root)


def _voc(tmp_path: Path) -> Path:
    for name in ("a", "b"):
        Image.new("RGB", (20, 10)).save(tmp_path / f"{name}.jpg")
        (tmp_path / f"{name}.xml").write_text(voc_xml(f"{name}.jpg", 20, 10, [("cat", [1, 1, 4, 4], False)]))
    return tmp_path


def test_voc_xml_that_fails_to_parse_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    (root / "b.xml").write_text("<annotation><object>")

    with pytest.raises(DataError, match=r"b\.xml' cannot be read as XML"):
        voc_class_names(root)


def test_a_missing_voc_image_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    (root / "b.jpg").unlink()

    with pytest.raises(DataError, match=r"image .*b\.jpg' of the VOC file .*b\.xml' does not exist"):
        voc_class_names(root)


def test_a_voc_class_name_the_train_split_lacks_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    (root / "Annotations").mkdir()
    for name in ("a", "b"):
        (root / f"{name}.xml").rename(root / "Annotations" / f"{name}.xml")
    (root / "Annotations" / "b.xml").write_text(voc_xml("b.jpg", 20, 10, [("horse", [1, 1, 4, 4], False)]))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("b\n")

    assert voc_class_names(root) == ["cat"]  # the train split's names
    with pytest.raises(DataError, match=r"b\.xml' has an object 'horse', not a class of the train split \['cat'\]"):
        VocDataset(root, "validation")


def test_a_voc_box_outside_its_image_is_an_error(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    (root / "a.xml").write_text(voc_xml("a.jpg", 20, 10, [("cat", [15, 1, 8, 4], False)]))
    problems = DataProblems(collect=True)

    VocDataset(root, "train", problems=problems)
    VocDataset(root, "validation", problems=problems)

    assert len(problems.messages) == 1
    assert "a.xml' has an object 'cat' with box" in problems.messages[0]
    assert "outside (or empty in) its image" in problems.messages[0]


def test_a_folder_in_no_layout_is_one_error_listing_what_each_expects(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"holds no box detection layout") as raised:
        detect_detection_layout(tmp_path)
    for expected in ("coco: ROOT/train.json", "yolo: ROOT/data.yaml", "voc: ROOT/Annotations/*.xml"):
        assert expected in str(raised.value)
    (tmp_path / "train.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    (tmp_path / "labels").mkdir()
    with pytest.raises(DataError, match=r"more than one layout \(\['coco', 'yolo'\]\); set data.layout"):
        detect_detection_layout(tmp_path)
    assert detect_detection_layout(tmp_path, "yolo") == "yolo"
    with pytest.raises(ConfigError, match="Did you mean 'voc'"):
        detect_detection_layout(tmp_path, "vco")


def test_yolo_splits_are_relative_to_the_path_entry_and_roboflow_parent_paths_are_found(tmp_path: Path) -> None:
    base = tmp_path / "sub"
    for image, label in (("images/train/x.png", "labels/train/x.txt"), ("valid/images/y.png", "valid/labels/y.txt")):
        (base / image).parent.mkdir(parents=True)
        (base / label).parent.mkdir(parents=True)
        Image.new("RGB", (10, 10)).save(base / image)
        (base / label).write_text("0 0.5 0.5 0.4 0.4\n")
    (tmp_path / "data.yaml").write_text("path: sub\ntrain: images/train\nval: ../valid/images\nnames: {0: dot}\n")

    train, validation = YoloDataset(tmp_path, "train"), YoloDataset(tmp_path, "validation")

    assert [record.path for record in train.records] == [base / "images/train/x.png"]
    assert [record.path for record in validation.records] == [base / "valid/images/y.png"]
    assert validation.records[0].objects[0].box == pytest.approx((3.0, 3.0, 7.0, 7.0))
    assert validation.class_names == ["dot"]


def test_text_files_saved_by_windows_tools_read_as_written(coco: Path, tmp_path: Path) -> None:
    """classes.txt from Notepad (a byte-order mark, CRLF line ends) and CRLF label files, as labelImg on Windows saves
    them: the first class is named as written, not with the mark stuck to it."""
    root = yolo_without_splits(coco_to_yolo(coco, tmp_path / "yolo"), tmp_path / "windows", "labelimg")
    for path in root.glob("*.txt"):
        text = path.read_text()
        path.write_bytes((b"\xef\xbb\xbf" if path.name == "classes.txt" else b"") + text.replace("\n", "\r\n").encode())

    assert detection_class_names(root) == list(SHAPE_CLASSES)
    reference = yolo_without_splits(coco_to_yolo(coco, tmp_path / "yolo_unix"), tmp_path / "unix", "labelimg")
    for split in ("train", "validation"):
        assert (
            _by_image(read_detection_split(root, "yolo", split)).keys()
            == _by_image(read_detection_split(reference, "yolo", split)).keys()
        )
        for (size, labels, boxes), (size_unix, labels_unix, boxes_unix) in zip(
            _by_image(read_detection_split(root, "yolo", split)).values(),
            _by_image(read_detection_split(reference, "yolo", split)).values(),
            strict=True,
        ):
            assert (size, labels) == (size_unix, labels_unix)
            np.testing.assert_allclose(boxes, boxes_unix)
    (root / "classes.txt").write_bytes("circle\nsquare\ntriangle\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"classes\.txt' is not UTF-8 text: .*Save it as UTF-8"):
        detection_class_names(root)


def test_voc_per_split_folders_without_a_validation_folder_draw_one_and_read_a_test_folder(coco: Path, tmp_path: Path) -> None:
    root = coco_to_voc(coco, tmp_path / "voc", per_split=True)
    shutil.copytree(root / "valid", root / "test")
    shutil.rmtree(root / "valid")

    splits = read_voc_splits(root)

    assert (len(splits.files["train"]), len(splits.files["validation"]), len(splits.files["test"])) == (5, 1, 3)
    assert not splits.listed
    assert has_test_split(root, "voc")
    assert {record.path.parent.name for record in read_detection_split(root, "voc", "test").records} == {"test"}


@pytest.mark.parametrize(
    ("line", "box"),
    [
        ("1 0.25 0.2 0.75 0.2 0.75 0.8 0.25 0.8", (5.0, 2.0, 15.0, 8.0)),  # Ultralytics' segmentation (and OBB) line
        ("1\t0.5\t0.5\t0.5\t0.6  ", (5.0, 2.0, 15.0, 8.0)),  # tabs and trailing spaces, as converters leave them
        ("1 0.5 0.5 0.5 0.6\r", (5.0, 2.0, 15.0, 8.0)),  # a Windows line end
        ("1 0.5 0.5 1.01 0.6", (0.0, 2.0, 20.0, 8.0)),  # within 1% past the border: cut to the image
    ],
    ids=["polygon", "tabs_and_spaces", "windows_line_end", "past_the_border"],
)
def test_yolo_lines_as_tools_write_them_are_read_as_the_box_they_draw(tmp_path: Path, line: str, box: tuple) -> None:
    root = _yolo(tmp_path, f"{line}\n")

    (record,) = YoloDataset(root, "train").records

    assert [(item.label, item.box) for item in record.objects] == [(1, pytest.approx(box))]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1 0.5 0.5 0.5 0.6 0.93", r"line 1: .* has 6 numbers: 'class cx cy w h confidence'"),  # a prediction
        ("1 0.25 0.2 0.75 0.2 0.75 0.8 0.93", r"line 1: .* is not 'class cx cy w h' \(or 'class x1 y1"),  # a polygon's
        ("1 320 240 64 48", r"line 1: .* is outside \[0, 1\] .* coordinates are normalised"),  # pixels, not normalised
    ],
    ids=["box_with_confidence", "polygon_with_confidence", "pixels"],
)
def test_yolo_lines_no_label_reads_right_are_refused_naming_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    root = _yolo(tmp_path, f"0 0.5 0.5 0.2 0.2\n{line}\n".replace("line 1", "line 2"))

    with pytest.raises(DataError, match=r"a\.txt' " + message.replace("line 1", "line 2")):
        YoloDataset(root, "train")


@pytest.mark.parametrize("tool", ["yolo", "voc"])
def test_labelimg_files_only_in_subfolders_are_found_as_their_box_layout(tmp_path: Path, tool: str) -> None:
    # a folder per day or camera, nothing but classes.txt in the data folder: check-data read it as classification
    # (the day folders its classes) and train task=detection found no box layout
    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
        for index in range(2):
            Image.new("RGB", (40, 30), (index * 100, 0, 0)).save(tmp_path / day / f"{day}_{index}.jpg")
            if tool == "yolo":
                (tmp_path / day / f"{day}_{index}.txt").write_text("0 0.5 0.5 0.3 0.3\n")
            else:
                (tmp_path / day / f"{day}_{index}.xml").write_text(
                    f"<annotation><filename>{day}_{index}.jpg</filename><object><name>cat</name><bndbox><xmin>5</xmin>"
                    "<ymin>5</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
                )
    if tool == "yolo":
        (tmp_path / "classes.txt").write_text("cat\n")

    assert detect_detection_layout(tmp_path) == tool
    assert detection_class_names(tmp_path) == ["cat"]
