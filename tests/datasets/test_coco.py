"""The COCO reader on small instances files written here."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import coco_semantic_mask, uncompressed_rle
from test_readers import _coco, _image

from torchbricks.datasets.coco import CocoDataset, coco_class_names
from torchbricks.datasets.readers import DataError

CATEGORIES = [{"id": 90, "name": "zebra"}, {"id": 4, "name": "cat"}]  # unsorted and not contiguous


def _annotation(index: int, image_id: int, category_id: int, bbox: list[float], **extra: Any) -> dict[str, Any]:
    return {"id": index, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0, **extra}


def test_coco_maps_category_ids_in_id_order_converts_boxes_and_marks_crowds_ignored(tmp_path: Path) -> None:
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
    assert sample["target_labels"].tolist() == [1, 0, -2 - 0]  # the crowd of cats: ignored, as VOC difficult objects
    assert sample["target_boxes"].tolist() == [[10.0, 5.0, 30.0, 15.0], [0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 31.0, 21.0]]


def test_a_detection_on_a_crowd_region_scores_as_pycocotools_cocoeval_scores_it(tmp_path: Path) -> None:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from torchbricks.bag_of_bricks.object_detection import BoxMeanAveragePrecision

    _image(tmp_path / "a.png", size=(60, 40))
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 60, "height": 40}],
        [_annotation(1, 1, 4, [2, 2, 10, 10], area=100), _annotation(2, 1, 4, [30, 5, 25, 30], area=750, iscrowd=1)],
        CATEGORIES,
    )
    # The better-scored detection lies on the crowd of cats, the other on the one cat; a third finds nothing there.
    detections = [([31.0, 6.0, 54.0, 34.0], 0.9), ([2.0, 2.0, 12.0, 12.0], 0.6), ([0.0, 25.0, 10.0, 38.0], 0.7)]
    sample = CocoDataset(path)[0]
    metric = BoxMeanAveragePrecision()
    metric.update(
        torch.tensor([[box for box, _ in detections]]),
        torch.tensor([[score for _, score in detections]]),
        torch.zeros(1, len(detections), dtype=torch.int64),  # cat, contiguous class 0 (category 4)
        sample["target_boxes"][None],
        sample["target_labels"][None],
    )

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(path))
        found = [
            {"image_id": 1, "category_id": 4, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score}
            for (x0, y0, x1, y1), score in detections
        ]
        evaluation = COCOeval(truth, truth.loadRes(found), iouType="bbox")
        evaluation.params.catIds = [4]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    result = metric.compute()

    assert float(result["map"]) == pytest.approx(evaluation.stats[0], abs=1e-6)
    assert float(result["map_50"]) == pytest.approx(evaluation.stats[1], abs=1e-6)
    assert evaluation.stats[1] == pytest.approx(0.5)  # the miss ranked above the cat halves it; the crowd costs nothing


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
    expected[5:14, 10:29] = 2  # the pixels between the edges (COCO's rule); zebra is class 1, drawn as 1 + 1
    assert np.array_equal(sample["target_mask"].numpy(), expected)
    assert sample["target_classes"].tolist() == [0, 1]


def test_coco_multitask_masks_from_polygons_equal_pycocotools_ann_to_mask(tmp_path: Path) -> None:
    height, width = 30, 40
    _image(tmp_path / "a.png", size=(width, height))
    concave = [[3.4, 2.2, 20.7, 4.1, 9.5, 9.8, 18.2, 17.6, 2.9, 19.3]]
    two_parts = [[22.5, 1.5, 39.0, 1.5, 30.5, 12.25], [25, 20, 32.6, 14.2, 38.8, 26.4]]  # one object in two pieces
    at_the_edges = [[-0.4, 24.0, 12.6, 22.3, 14.0, 30.0, 0.0, 30.0]]  # reaches past the left and the bottom edges
    crowd = [[8, 8, 30, 8, 30, 28, 8, 28]]
    annotations = [
        _annotation(1, 1, 4, [2.9, 2.2, 17.8, 17.1], segmentation=concave),
        _annotation(2, 1, 90, [22.5, 1.5, 16.5, 24.9], segmentation=two_parts),  # drawn over the crowd: keeps its pixels
        _annotation(3, 1, 4, [0, 22.3, 14, 7.7], segmentation=at_the_edges),
        _annotation(4, 1, 90, [8, 8, 22, 20], segmentation=crowd, iscrowd=1),
    ]
    path = _coco(
        tmp_path / "train.json", [{"id": 1, "file_name": "a.png", "width": width, "height": height}], annotations, CATEGORIES
    )

    sample = CocoDataset(path, with_masks=True)[0]

    expected, present = coco_semantic_mask(path, 1)
    assert np.array_equal(sample["target_mask"].numpy(), expected)
    assert sample["target_classes"].tolist() == present.tolist() == [1, 1]
    assert set(np.unique(expected).tolist()) == {0, 1, 2, 255}  # every kind of pixel is there to compare


def test_coco_multitask_mask_of_an_annotation_without_outline_fills_its_box_as_pycocotools_fills_a_box(tmp_path: Path) -> None:
    mask_utils = pytest.importorskip("pycocotools.mask")
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(1, 1, 90, [10.3, 5.6, 12.5, 8.2])],
        CATEGORIES,
    )

    mask = CocoDataset(path, with_masks=True)[0]["target_mask"].numpy()

    with warnings.catch_warnings():  # pycocotools' decode predates numpy 2's `copy` keyword and says so
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = mask_utils.decode(mask_utils.frPyObjects(np.array([[10.3, 5.6, 12.5, 8.2]]), 30, 40))[:, :, 0]
    assert np.array_equal(mask == 2, expected.astype(bool))
    assert int((mask == 2).sum()) == 13 * 8  # the pixel centres 10.5 to 22.5 across, 6.5 to 13.5 down (Pillow: 13 x 9)


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
        (_annotation(3, 1, 4, [5, 0, -2, 5]), r"annotation 3 .* outside \(or empty in\)"),  # a width below 0
        (_annotation(4, 2, 4, [0, 0, 5, 5]), r"annotation 4 .* names image_id 2, which the file does not list"),
        (
            _annotation(5, 1, 4, [0, 0, 5, 5], segmentation="0 5 5 0"),
            r"annotation 5 .* has segmentation '0 5 5 0'; expected a list of polygons or an RLE",
        ),
        ({"id": 6, "image_id": 1, "category_id": 4, "iscrowd": 0}, r"annotation 6 .* has no bbox; an annotation has"),
        (_annotation(7, 1, 4, None), r"annotation 7 .* has no bbox"),  # type: ignore[arg-type]
        ({"id": 8, "category_id": 4, "bbox": [0, 0, 5, 5]}, r"annotation 8 .* has no image_id"),
        (_annotation(9, 1, 4, [float("nan"), 0, 5, 5]), r"annotation 9 .* has bbox \[nan, 0, 5, 5\]; expected .* finite"),
        (_annotation(10, 1, 4, [0, 0, 5, 5], segmentation=[[]]), r"annotation 10 .* has the polygon \[\]; a polygon is"),
        (_annotation(11, 1, 4, [0, 0, 5, 5], segmentation=[[0, 0, 5, 5]]), r"annotation 11 .* polygon \[0, 0, 5, 5\]"),
        (
            _annotation(12, 1, 4, [0, 0, 5, 5], segmentation=[[0, 0, 5, 0, 5, 5], [0, 0, 5, float("nan"), 5, 5]]),
            r"annotation 12 .* polygon \[0, 0, 5, nan, 5, 5\], with nan; expected finite numbers",
        ),
        (
            _annotation(13, 1, 4, [0, 0, 5, 5], segmentation=[[0, 0, "5", 0, 5, 5]]),
            r"annotation 13 .* polygon \[0, 0, '5', 0, 5, 5\], with '5'; expected finite numbers",
        ),
    ],
    ids=[
        "unknown category",
        "box outside the image",
        "empty box",
        "unknown image",
        "segmentation neither polygons nor RLE",
        "no bbox",
        "bbox null",
        "no image_id",
        "bbox of nan",
        "empty polygon",
        "polygon of two points",
        "polygon with nan",
        "polygon with a string",
    ],
)
def test_bad_coco_annotations_are_errors_naming_the_file(tmp_path: Path, annotation: dict[str, Any], message: str) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(tmp_path / "train.json", [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}], [annotation], CATEGORIES)

    with pytest.raises(DataError, match=message):
        CocoDataset(path)


def test_two_coco_categories_of_one_id_are_an_error_naming_both(tmp_path: Path) -> None:
    """Read as two classes, every annotation of the id would go to the second and the first would never be seen."""
    _image(tmp_path / "a.png", size=(40, 30))
    categories = [{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}]
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(1, 1, 1, [0, 0, 5, 5])],
        categories,
    )

    with pytest.raises(DataError, match=r"train\.json' gives the category id 1 to 'cat' and to 'dog'"):
        CocoDataset(path)
    with pytest.raises(DataError, match=r"gives the category id 1 to 'cat' and to 'dog'"):
        coco_class_names(path)


def test_coco_category_names_are_read_without_the_spaces_around_them_and_alike_ones_are_an_error(tmp_path: Path) -> None:
    # 'cat ' was a class of its own: the per-class results and predictions named it apart from another file's 'cat'
    _image(tmp_path / "a.png", size=(40, 30))
    images = [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}]
    path = _coco(tmp_path / "train.json", images, [_annotation(1, 1, 3, [0, 0, 5, 5])], [{"id": 3, "name": " cat "}])

    assert coco_class_names(path) == ["cat"] == CocoDataset(path).class_names

    _coco(path, images, [], [{"id": 3, "name": "cat "}, {"id": 7, "name": "dog"}, {"id": 1, "name": "cat"}])
    message = r"train\.json' has category id 1 'cat' and category id 3 'cat ': the same class name 'cat' but for the spaces"
    with pytest.raises(DataError, match=message):
        coco_class_names(path)
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
    assert (expected == 2).sum() == zebra.sum()  # the reference sees the hole; the zebra covers the crowd
    assert (expected[:, 37:] == 255).all()  # the crowd's own pixels are ignored, neither background nor a zebra
    assert sample["target_labels"].tolist() == [0, 1, 0, -2 - 1]  # the crowd's box is there to be ignored


def test_a_crowd_annotation_alone_is_an_ignored_region_of_the_mask_and_of_the_classes_and_its_box_ignored(
    tmp_path: Path,
) -> None:
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
    assert sample["target_classes"].tolist() == present.tolist() == [0, -1]  # a crowd of zebras (id 90, class 1): unknown
    assert set(np.unique(sample["target_mask"].numpy()).tolist()) == {0, 255}
    assert (sample["target_mask"][5:25, 5:35] == 255).all()
    assert sample["target_boxes"].tolist() == [[5.0, 5.0, 35.0, 25.0]]
    assert sample["target_labels"].tolist() == [-2 - 1]


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


def test_an_uncompressed_rle_whose_counts_do_not_cover_its_image_is_an_error_naming_the_annotation(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    short = {"size": [30, 40], "counts": [0, 30 * 4]}  # the four left columns, but the rest of the image not run
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(1, 1, 4, [0, 0, 4, 30], segmentation=short, iscrowd=1)],
        CATEGORIES,
    )

    with pytest.raises(DataError, match=r"annotation 1 in .*train\.json' has an uncompressed RLE whose counts add up to 120 "):
        CocoDataset(path, with_masks=True)


def _object(height: int, width: int, rows: slice, columns: slice) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=np.uint8)
    canvas[rows, columns] = 1
    return canvas


def _compressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's compressed RLE, its counts a string as in a JSON file."""
    mask_utils = pytest.importorskip("pycocotools.mask")
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(side) for side in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_a_parent_category_used_by_one_image_is_a_class_in_every_drawn_split(tmp_path: Path) -> None:
    from torchbricks.datasets.detection_layouts import detection_class_names, read_detection_split

    categories = [
        {"id": 0, "name": "vehicle", "supercategory": "none"},  # Roboflow's pattern, but used by one box: a class
        {"id": 1, "name": "car", "supercategory": "vehicle"},
        {"id": 2, "name": "truck", "supercategory": "vehicle"},
    ]
    images, annotations = [], []
    for index in range(10):
        _image(tmp_path / f"{index}.png", size=(40, 30), value=index * 20)
        images.append({"id": index, "file_name": f"{index}.png", "width": 40, "height": 30})
        annotations.append(_annotation(index, index, 0 if index == 3 else 1 + index % 2, [5, 5, 10, 10]))
    _coco(tmp_path / "result.json", images, annotations, categories)  # Label Studio's pool: validation is drawn

    names = detection_class_names(tmp_path)

    assert names == ["vehicle", "car", "truck"]
    for split in ("train", "validation"):  # one of them lacks the vehicle box; both keep the class
        assert read_detection_split(tmp_path, "coco", split, names).class_names == names


def test_an_annotation_repeated_under_another_id_is_read_once(tmp_path: Path) -> None:
    """Two exports merged list an object twice under two ids; read once, as Ultralytics' COCO converter keeps it.
    The same box of another category, or with another outline, is another object."""
    _image(tmp_path / "a.png", size=(40, 30))
    polygon = [[10, 5, 30, 5, 30, 15]]
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [
            _annotation(1, 1, 4, [10, 5, 20, 10], segmentation=polygon),
            _annotation(2, 1, 4, [10, 5, 20, 10], segmentation=polygon),
            _annotation(3, 1, 90, [10, 5, 20, 10], segmentation=polygon),
            _annotation(4, 1, 4, [10, 5, 20, 10], segmentation=[[10, 5, 30, 15, 10, 15]]),
        ],
        CATEGORIES,
    )

    dataset = CocoDataset(path)

    assert [item.label for item in dataset.records[0].objects] == [0, 1, 0]
    assert dataset.duplicates == {tmp_path / "a.png": 1}


def test_an_iscrowd_written_as_a_string_is_an_error_not_a_crowd(tmp_path: Path) -> None:
    # "0" is true in Python: read as a crowd, the cat was ignored by training and the mAP without a word
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(5, 1, 4, [10, 5, 20, 10], iscrowd="0")],
        CATEGORIES,
    )

    with pytest.raises(DataError, match=r"annotation 5 in .*train.json' has iscrowd '0'; expected 0 \(an object\) or 1"):
        CocoDataset(path)


@pytest.mark.parametrize(
    ("image", "annotation", "message"),
    [
        ({"id": "a"}, {}, r"an entry of images whose id 'a' is not a whole number"),
        ({}, {"category_id": "cat"}, r"annotation 5 in .* has category_id 'cat'; expected the whole number"),
        ({}, {"image_id": None}, r"annotation 5 in .* has no image_id"),
        ({"width": "wide"}, {}, r"The image id 1 in .* has width 'wide' and height 30; expected numbers of pixels"),
    ],
)
def test_ids_and_sizes_that_are_not_numbers_are_errors_naming_the_entry(
    tmp_path: Path, image: dict[str, Any], annotation: dict[str, Any], message: str
) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    entry = {"id": 1, "file_name": "a.png", "width": 40, "height": 30, **image}
    path = _coco(
        tmp_path / "train.json", [entry], [{**_annotation(5, entry["id"], 4, [10, 5, 20, 10]), **annotation}], CATEGORIES
    )

    with pytest.raises(DataError, match=message):
        CocoDataset(path)


def test_an_image_size_given_as_null_is_read_from_the_file(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": None, "height": None}],
        [_annotation(5, 1, 4, [10, 5, 20, 10])],
        CATEGORIES,
    )

    (record,) = CocoDataset(path).records

    assert (record.width, record.height) == (40, 30)


def test_a_bbox_wholly_past_the_border_within_the_tolerance_is_an_error(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", size=(40, 30))
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(5, 1, 4, [40.2, 5, 0.5, 10])],  # within the pixel a box may reach past, but none of it inside
        CATEGORIES,
    )

    with pytest.raises(DataError, match=r"annotation 5 in .* has bbox \[x, y, w, h\] = \[40.2, 5, 0.5, 10\], outside"):
        CocoDataset(path)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("frames/0001.png", "frames/0001.png"), "listed twice under two ids, each with its own annotations"),
        (("cam1/0001.png", "cam2/0001.png"), "the only file of that name where they were looked for"),
    ],
    ids=["merged_export", "flattened_folders"],
)
def test_two_coco_images_read_from_one_file_are_an_error_naming_both(
    tmp_path: Path, names: tuple[str, str], message: str
) -> None:
    # Each entry was read as the picture with only its own annotations: the other's objects trained as background and
    # counted as false positives when found, without a word.
    _image(tmp_path / "frames" / "0001.png" if names[0] == names[1] else tmp_path / "0001.png", (20, 10))
    images = [{"id": index, "file_name": name, "width": 20, "height": 10} for index, name in enumerate(names, start=1)]
    annotations = [
        {"id": index, "image_id": index, "category_id": 4, "bbox": [2.0 * index, 2, 4, 4], "area": 16, "iscrowd": 0}
        for index in (1, 2)
    ]
    path = _coco(tmp_path / "train.json", images, annotations, CATEGORIES)

    with pytest.raises(DataError, match=rf"id 1 \('{names[0]}'\) and id 2 \('{names[1]}'\) .* are both read from .*{message}"):
        CocoDataset(path)


@pytest.mark.parametrize("written_by", ["cvat", "coco"])
def test_crowd_regions_of_a_cvat_export_are_said_to_be_objects_drawn_as_masks(tmp_path: Path, written_by: str) -> None:
    # CVAT's COCO export (Datumaro's writer) marks every object drawn with the brush as a crowd region, iscrowd 1 with
    # its mask as an uncompressed RLE: training and the mAP ignored those objects without a word.
    from torchbricks.datasets.checking import check_data

    brushed = np.zeros((10, 20), dtype=np.uint8)
    brushed[2:6, 3:9] = 1
    extra = {"attributes": {"occluded": False}} if written_by == "cvat" else {}
    images, annotations = [], []
    for image_id, name in enumerate(("a.png", "b.png"), start=1):
        _image(tmp_path / "images" / "default" / name, (20, 10))
        images.append({"id": image_id, "file_name": name, "width": 20, "height": 10})
        polygon = [10.0, 1.0, 18.0, 1.0, 18.0, 8.0, 10.0, 8.0]
        annotations += [
            {
                "id": 2 * image_id,
                "image_id": image_id,
                "category_id": 1,
                "segmentation": [polygon],
                "area": 56.0,
                "bbox": [10.0, 1.0, 8.0, 7.0],
                "iscrowd": 0,
                **extra,
            },
            {
                "id": 2 * image_id + 1,
                "image_id": image_id,
                "category_id": 1,
                "segmentation": uncompressed_rle(brushed),
                "area": 24.0,
                "bbox": [3.0, 2.0, 6.0, 4.0],
                "iscrowd": 1,
                **extra,
            },
        ]
    categories = [{"id": 1, "name": "cell", "supercategory": ""}]
    path = _coco(tmp_path / "annotations" / "instances_default.json", images, annotations, categories)

    dataset = CocoDataset(path, tmp_path / "images" / "default", image_ids=[1])

    assert [item.crowd for item in dataset.records[0].objects] == [False, True]
    if written_by == "cvat":
        assert "1 annotation of" in str(dataset.reading_notice)
        assert "brush or mask tool as a crowd region" in str(dataset.reading_notice)
        assert dataset.reading_notice in check_data(tmp_path, task="detection").notes
    else:  # COCO's own crowd regions are crowds
        assert dataset.reading_notice is None


def test_a_bbox_of_zero_height_as_coco_2017_has_is_left_out_and_said_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """instances_train2017.json holds annotation 918 as below (image 200365): the whole of COCO's training file was
    refused for it, and check-data failed on it."""
    _image(tmp_path / "a.png", size=(640, 480))
    coco_2017 = {  # as written there: a flat polygon, area 0.0
        "segmentation": [[296.65, 388.33, 296.65, 388.33, 297.68, 388.33, 297.68, 388.33]],
        "area": 0.0,
        "iscrowd": 0,
        "image_id": 1,
        "bbox": [296.65, 388.33, 1.03, 0.0],
        "category_id": 4,
        "id": 918,
    }
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 640, "height": 480}],
        [_annotation(1, 1, 90, [10.5, 20, 30, 40]), coco_2017, _annotation(3, 1, 4, [100, 50, 0, 0])],
        CATEGORIES,
    )

    dataset = CocoDataset(path)

    assert [(item.label, item.box) for item in dataset.records[0].objects] == [(1, (10.5, 20.0, 40.5, 60.0))]  # x + w
    assert "2 annotations of" in str(dataset.reading_notice)
    assert "id 918 (bbox [296.65, 388.33, 1.03, 0.0]), id 3 (bbox [100, 50, 0, 0]), have a bbox of zero width or height" in str(
        dataset.reading_notice
    )
    assert CocoDataset(path, with_masks=True)[0]["target_mask"].unique().tolist() == [0, 2]  # zebra: index 1, + 1


def test_within_a_start_up_a_coco_file_is_parsed_once_and_each_reader_gets_its_own_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The class names, the category ids, the split draw, the image sizes and each split's reader parsed the same
    # training file (4 to 17 times per start-up). Parsed once, one reader must still not see what another changed.
    import json

    from torchbricks.datasets._reading import each_file_read_once
    from torchbricks.datasets.coco import parsed_json

    _image(tmp_path / "images" / "a.png", size=(40, 30))
    images = [{"id": 1, "file_name": "images/a.png", "width": 40, "height": 30}]
    annotations = [_annotation(1, 1, 4, [1.0, 2.0, 3.0, 4.0], segmentation=[[1, 2, 4, 2, 4, 6]])]
    path = _coco(tmp_path / "train.json", images, annotations, CATEGORIES)
    written = json.loads(path.read_text())
    parses = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, *rest, **keywords: parses.append(text) or real_loads(text, *rest, **keywords))

    with each_file_read_once():
        first = parsed_json(path)
        first["annotations"][0]["segmentation"][0].append(99)  # a reader changing its own document, deep inside
        first["categories"].clear()
        second = parsed_json(path)
        names = coco_class_names(path)
        dataset = CocoDataset(path, tmp_path)

    assert second == written != first
    assert second["annotations"][0]["segmentation"] is not first["annotations"][0]["segmentation"]
    assert names == ["cat", "zebra"]
    assert dataset.records[0].objects[0].segmentation == [[1, 2, 4, 2, 4, 6]]
    assert len(parses) == 1


def test_roboflows_project_category_named_with_a_trailing_space_is_still_left_out(tmp_path: Path) -> None:
    # Names are stripped as they are read (7980548); the supercategories that point at the project category were
    # compared unstripped, so a project named 'cells ' became a class no image holds.
    _image(tmp_path / "a.png", size=(40, 30))
    categories = [
        {"id": 0, "name": "cells ", "supercategory": "none"},
        {"id": 1, "name": "red", "supercategory": "cells "},
        {"id": 2, "name": "white", "supercategory": "cells "},
    ]
    path = _coco(
        tmp_path / "train.json",
        [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        [_annotation(1, 1, 1, [5, 5, 10, 10])],
        categories,
    )
    assert coco_class_names(path) == ["red", "white"]
