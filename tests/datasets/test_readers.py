"""The readers on small files written here in the standard layouts (not by the shapes generator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import coco_semantic_mask, uncompressed_rle
from PIL import Image

from torchbricks.datasets.readers import (
    CocoDataset,
    DataError,
    ImageFolderDataset,
    SegmentationFolderDataset,
    coco_class_names,
    image_folder_class_names,
    segmentation_class_names,
)


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


def test_an_empty_segmentation_split_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "val" / "images").mkdir(parents=True)
    (tmp_path / "val" / "masks").mkdir(parents=True)

    with pytest.raises(DataError, match="holds no image"):
        SegmentationFolderDataset(tmp_path / "val", num_classes=2)


# --- COCO ---------------------------------------------------------------------------------------------------------

CATEGORIES = [{"id": 90, "name": "zebra"}, {"id": 4, "name": "cat"}]  # unsorted and not contiguous


def _annotation(index: int, image_id: int, category_id: int, bbox: list[float], **extra: Any) -> dict[str, Any]:
    return {"id": index, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0, **extra}


def test_coco_maps_category_ids_in_id_order_converts_boxes_and_skips_crowds(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "a.png", size=(40, 30))
    path = _coco(
        tmp_path / "train.json",
        [{"id": 7, "file_name": "images/a.png", "width": 40, "height": 30}],
        [
            _annotation(1, 7, 90, [10, 5, 20, 10]),
            _annotation(2, 7, 4, [0, 0, 5, 5]),
            _annotation(3, 7, 4, [1, 1, 30, 20], iscrowd=1),
        ],
        CATEGORIES,
    )

    dataset = CocoDataset(path)
    sample = dataset[0]

    assert dataset.class_names == ["cat", "zebra"] == coco_class_names(path)
    assert sample["target_labels"].tolist() == [1, 0]
    assert sample["target_boxes"].tolist() == [[10.0, 5.0, 30.0, 15.0], [0.0, 0.0, 5.0, 5.0]]


def test_coco_multitask_targets_draw_polygons_into_a_semantic_mask_and_list_the_classes(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    polygon = [[10, 5, 29, 5, 29, 14, 10, 14]]
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(1, 1, 90, [10, 5, 19, 9], segmentation=polygon)],
        CATEGORIES,
    )

    sample = CocoDataset(path, with_masks=True)[0]

    expected = np.zeros((30, 40), dtype=np.int64)
    expected[5:15, 10:30] = 2  # zebra is class 1, drawn as 1 + 1 (0 is the background)
    assert np.array_equal(sample["target_mask"].numpy(), expected)
    assert sample["target_classes"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (
            _annotation(1, 1, 5, [0, 0, 5, 5]),
            r"annotation 1 in .*train\.json' has category_id 5; the file's categories are \[4, 90\]",
        ),
        (
            _annotation(2, 1, 4, [30, 0, 15, 5]),
            r"annotation 2 .* bbox \[x, y, w, h\] = \[30, 0, 15, 5\], outside .*a\.png' of 40x30",
        ),
        (_annotation(3, 1, 4, [0, 0, 0, 5]), r"annotation 3 .* outside \(or empty in\)"),
        (_annotation(4, 2, 4, [0, 0, 5, 5]), r"annotation 4 .* names image_id 2, which the file does not list"),
        (
            _annotation(5, 1, 4, [0, 0, 5, 5], segmentation="0 5 5 0"),
            r"annotation 5 .* has segmentation '0 5 5 0'; expected a list of polygons or an RLE",
        ),
    ],
    ids=["unknown category", "box outside the image", "empty box", "unknown image", "segmentation neither polygons nor RLE"],
)
def test_bad_coco_annotations_are_errors_naming_the_file(tmp_path: Path, annotation: dict[str, Any], message: str) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(tmp_path / "train.json", [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], [annotation], CATEGORIES)

    with pytest.raises(DataError, match=message):
        CocoDataset(path)


def test_a_missing_coco_image_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _coco(tmp_path / "val.json", [{"id": 3, "file_name": "images/gone.png", "width": 4, "height": 4}], [], CATEGORIES)

    with pytest.raises(DataError, match=r"gone\.png' \(id 3 in .*val\.json'\) does not exist"):
        CocoDataset(path)


def test_an_empty_coco_split_and_a_missing_file_are_errors(tmp_path: Path) -> None:
    path = _coco(tmp_path / "val.json", [], [], CATEGORIES)

    with pytest.raises(DataError, match=r"val\.json' lists no image"):
        CocoDataset(path)
    with pytest.raises(DataError, match=r"test\.json' does not exist"):
        CocoDataset(tmp_path / "test.json")


def test_an_image_whose_size_differs_from_the_json_is_an_error(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(tmp_path / "train.json", [{"id": 1, "file_name": "a.png", "width": 50, "height": 30}], [], CATEGORIES)

    with pytest.raises(DataError, match=r"a\.png' is 40x30; .*train\.json' says 50x30"):
        CocoDataset(path)[0]


def test_coco_images_without_width_and_height_take_them_from_the_file(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(tmp_path / "train.json", [{"id": 1, "file_name": "a.png"}], [_annotation(1, 1, 4, [30, 20, 10, 10])], CATEGORIES)

    assert CocoDataset(path)[0]["target_boxes"].tolist() == [[30.0, 20.0, 40.0, 30.0]]


# --- COCO masks against pycocotools -------------------------------------------------------------------------------


def _object(height: int, width: int, rows: slice, columns: slice) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=np.uint8)
    canvas[rows, columns] = 1
    return canvas


def _compressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's compressed RLE, its counts a string as in a JSON file."""
    mask_utils = pytest.importorskip("pycocotools.mask")
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(side) for side in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_coco_multitask_masks_from_uncompressed_and_compressed_rle_equal_pycocotools_ann_to_mask(tmp_path: Path) -> None:
    height, width = 30, 40
    _image(tmp_path / "a.png", size=(width, height))
    cat = _object(height, width, slice(2, 20), slice(3, 15))
    zebra = _object(height, width, slice(10, 28), slice(10, 37))  # overlaps the cat: drawn later, it covers it
    zebra[15:20, 20:25] = 0  # a hole, which a polygon cannot express
    corner = _object(height, width, slice(0, 4), slice(0, 4))  # starts with a 1: the uncompressed counts begin with 0
    crowd = _object(height, width, slice(0, 30), slice(30, 40))
    annotations = [
        _annotation(1, 1, 4, [3, 2, 12, 18], segmentation=uncompressed_rle(cat)),
        _annotation(2, 1, 90, [10, 10, 27, 18], segmentation=_compressed_rle(zebra)),
        _annotation(3, 1, 4, [0, 0, 4, 4], segmentation=uncompressed_rle(corner)),
        _annotation(4, 1, 90, [30, 0, 10, 30], segmentation=uncompressed_rle(crowd), iscrowd=1),
    ]
    path = _coco(
        tmp_path / "train.json", [{"id": 1, "file_name": "a.png", "width": width, "height": height}], annotations, CATEGORIES
    )

    sample = CocoDataset(path, with_masks=True)[0]

    expected, present = coco_semantic_mask(path, 1)
    assert np.array_equal(sample["target_mask"].numpy(), expected)
    assert sample["target_classes"].tolist() == present.tolist() == [1, 1]
    assert (expected == 2).sum() == zebra.sum()  # the reference sees the hole and leaves out the crowd
    assert not expected[:, 37:].any()
    assert sample["target_labels"].tolist() == [0, 1, 0]  # the crowd has no box either


def test_a_crowd_annotation_alone_leaves_the_mask_and_the_classes_empty(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    crowd = _compressed_rle(_object(30, 40, slice(5, 25), slice(5, 35)))
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(1, 1, 90, [5, 5, 30, 20], segmentation=crowd, iscrowd=1)],
        CATEGORIES,
    )

    sample = CocoDataset(path, with_masks=True)[0]

    expected, present = coco_semantic_mask(path, 1)
    assert np.array_equal(sample["target_mask"].numpy(), expected)
    assert sample["target_classes"].tolist() == present.tolist() == [0, 0]
    assert not sample["target_mask"].any()
    assert sample["target_boxes"].shape == (0, 4)


@pytest.mark.parametrize("kind", ["uncompressed", "compressed"])
def test_an_rle_mask_of_another_size_than_its_image_is_an_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    mask = _object(20, 40, slice(0, 5), slice(0, 5))
    rle = uncompressed_rle(mask) if kind == "uncompressed" else _compressed_rle(mask)
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(1, 1, 4, [0, 0, 5, 5], segmentation=rle)],
        CATEGORIES,
    )

    with pytest.raises(DataError, match=r"annotation 1 in .*train\.json' has an RLE segmentation of size \[20, 40\] "):
        CocoDataset(path, with_masks=True)


def test_two_images_sharing_one_mask_are_an_error_naming_both(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "images" / "a.png")
    _image(tmp_path / "train" / "images" / "a.jpg")
    _mask(tmp_path / "train" / "masks" / "a.png", np.zeros((10, 20)))

    with pytest.raises(DataError, match=r"Images .*a\.jpg' and .*a\.png' share the mask .*a\.png'"):
        SegmentationFolderDataset(tmp_path / "train", num_classes=2)
