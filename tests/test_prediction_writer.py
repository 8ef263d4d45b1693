"""`PredictionWriter`: the files of `torchbricks predict` from hand-made results, checked value by value."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import run_under_an_ascii_locale
from PIL import Image

from torchbricks._prediction_writer import grey_png
from torchbricks.errors import BrickError
from torchbricks.predict import PredictionWriter


def test_classification_rows_hold_the_best_class_its_score_and_the_top5(tmp_path: Path) -> None:
    writer = PredictionWriter(tmp_path, {"head": "classification"}, [f"c{i}" for i in range(6)], pictures=None)
    probabilities = np.array([0.05, 0.4, 0.1, 0.3, 0.1, 0.05], dtype=np.float32)
    writer.add(
        "one",
        "photos/one.png",
        np.zeros((8, 8, 3), np.uint8),
        {"head": {"kind": "classification", "probabilities": probabilities}},
    )
    writer.finish()

    (row,) = csv.DictReader((tmp_path / "predictions.csv").open())
    assert row == {
        "file": "photos/one.png",
        "class": "c1",
        "score": "0.4000",
        "top5": "c1:0.4000;c3:0.3000;c2:0.1000;c4:0.1000;c0:0.0500",
    }


def test_multilabel_columns_list_the_classes_above_one_half(tmp_path: Path) -> None:
    heads = {"kind": "classification", "tags": "multilabel"}
    writer = PredictionWriter(tmp_path, heads, ["a", "b", "c"], pictures=None)
    result = {
        "kind": {"kind": "classification", "probabilities": np.array([0.2, 0.7, 0.1], np.float32)},
        "tags": {"kind": "multilabel", "probabilities": np.array([0.9, 0.5, 0.51], np.float32)},
    }
    writer.record("x.png", result)
    writer.finish()

    (row,) = csv.DictReader((tmp_path / "predictions.csv").open())
    assert row["kind/class"] == "b"
    assert row["tags/present"] == "a;c"  # 0.5 is not above the threshold
    assert row["tags/probabilities"] == "a:0.9000;b:0.5000;c:0.5100"


def test_multilabel_present_column_and_picture_follow_the_models_own_decision_at_its_threshold(tmp_path: Path) -> None:
    # A head of threshold 0.7 decides 0.6 is absent: 0.5 would have written b as present.
    writer = PredictionWriter(tmp_path, {"tags": "multilabel"}, ["a", "b", "c"], pictures=None)
    probabilities = np.array([0.9, 0.6, 0.3], np.float32)
    writer.record("x.png", {"tags": {"kind": "multilabel", "probabilities": probabilities, "present": probabilities > 0.7}})
    writer.finish()

    (row,) = csv.DictReader((tmp_path / "predictions.csv").open())
    assert row["present"] == "a"
    assert writer._drawer.classification_text("multilabel", {"probabilities": probabilities, "present": [1, 0, 0]}, "tags") == "a"


def test_detections_are_coco_results_with_x_y_width_height_and_the_training_category_ids(tmp_path: Path) -> None:
    writer = PredictionWriter(tmp_path, {"det": "detection"}, ["cat", "dog"], category_ids=[3, 7], pictures=None)
    for name in ("a", "b"):
        writer.record(
            f"{name}.png",
            {
                "det": {
                    "kind": "detection",
                    "boxes": np.array([[10.0, 20.0, 40.5, 30.25]], np.float32),
                    "scores": np.array([0.123456], np.float32),
                    "labels": np.array([1]),
                }
            },
        )
    (path,) = writer.finish()

    rows = json.loads(path.read_text())
    assert path.read_text().splitlines()[1:-1] == [json.dumps(row) + "," for row in rows[:-1]] + [json.dumps(rows[-1])]
    assert [row["image_id"] for row in rows] == [1, 2]
    assert rows[0] == {
        "image_id": 1,
        "file_name": "a.png",
        "category_id": 7,
        "category_name": "dog",
        "bbox": [10.0, 20.0, 30.5, 10.25],
        "score": 0.12346,
    }


def test_masks_are_class_indices_8_bit_and_16_bit_above_255_classes(tmp_path: Path) -> None:
    writer = PredictionWriter(tmp_path, {"seg": "segmentation"}, pictures="png", overlays=True)
    small = np.array([[0, 1], [2, 3]], dtype=np.int64)
    wide = np.array([[0, 300], [2, 1000]], dtype=np.int64)
    writer.write_images("small", np.zeros((2, 2, 3), np.uint8), {"seg": {"kind": "segmentation", "mask": small}})
    writer.write_images("wide", np.zeros((2, 2, 3), np.uint8), {"seg": {"kind": "segmentation", "mask": wide}})

    assert Image.open(tmp_path / "masks" / "small.png").mode == "L"
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "masks" / "small.png")), small)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "masks" / "wide.png")), wide)
    assert (tmp_path / "overlays" / "small.png").is_file()
    assert not (tmp_path / "overlays" / "wide.png").exists()  # no palette holds class 1000
    assert Image.open(tmp_path / "drawn" / "wide.png").size == (2, 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (96, 97)])
def test_grey_png_is_read_back_by_pillow_value_for_value(dtype: type, shape: tuple[int, int]) -> None:
    mask = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)

    read = Image.open(io.BytesIO(grey_png(mask)))

    assert read.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.array(read), mask)


def test_grey_png_refuses_what_is_not_a_grey_uint8_or_uint16_image() -> None:
    for array in (np.zeros((2, 2), np.int64), np.zeros((2, 2, 3), np.uint8)):
        with pytest.raises(BrickError, match="uint8 or uint16 array"):
            grey_png(array)


def test_overlays_are_written_only_when_asked_for(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 1]], dtype=np.int64)
    for overlays in (False, True):
        writer = PredictionWriter(tmp_path / str(overlays), {"seg": "segmentation"}, overlays=overlays)
        writer.write_images("one", np.zeros((2, 2, 3), np.uint8), {"seg": {"kind": "segmentation", "mask": mask}})

    assert sorted(path.parent.name for path in (tmp_path / "False").rglob("*.*")) == ["drawn", "masks"]
    assert sorted(path.parent.name for path in (tmp_path / "True").rglob("*.*")) == ["drawn", "masks", "overlays"]


def test_pictures_keep_the_image_size_and_folders_and_none_writes_none(tmp_path: Path) -> None:
    result = {"head": {"kind": "classification", "probabilities": np.array([0.2, 0.8], np.float32)}}
    PredictionWriter(tmp_path / "jpg", {"head": "classification"}).write_images(
        "sub/one", np.zeros((30, 50, 3), np.uint8), result
    )
    PredictionWriter(tmp_path / "none", {"head": "classification"}, pictures=None).write_images(
        "one", np.zeros((30, 50, 3), np.uint8), result
    )

    assert Image.open(tmp_path / "jpg" / "drawn" / "sub" / "one.jpg").size == (50, 30)
    assert not (tmp_path / "none").exists()


def test_an_unknown_picture_format_is_refused_naming_the_formats(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"pictures must be one of \['jpg', 'png', None\], got 'gif'"):
        PredictionWriter(tmp_path, {"head": "classification"}, pictures="gif")


def test_heads_trained_on_data_sets_of_their_own_are_named_by_their_own_classes_and_ids(tmp_path: Path) -> None:
    heads = {"detection": "detection", "shape/head": "classification"}  # a source `shape` names the head `shape/...`
    names = {"detection": ["car", "bus"], "shape": ["circle", "square", "star"]}
    writer = PredictionWriter(tmp_path, heads, names, category_ids={"detection": [3, 9]}, pictures="png")
    result = {
        "detection": {
            "kind": "detection",
            "boxes": np.array([[1.0, 1.0, 5.0, 5.0]], np.float32),
            "scores": np.array([0.9], np.float32),
            "labels": np.array([1]),
        },
        "shape/head": {"kind": "classification", "probabilities": np.array([0.1, 0.2, 0.7], np.float32)},
    }
    writer.add("a", "a.png", np.zeros((8, 8, 3), np.uint8), result)
    writer.finish()

    (row,) = csv.DictReader((tmp_path / "predictions.csv").open())
    assert row["shape/head/class"] == "star"
    assert row["shape/head/top5"] == "star:0.7000;square:0.2000;circle:0.1000"
    (box,) = json.loads((tmp_path / "detection_predictions.json").read_text())
    assert (box["category_id"], box["category_name"]) == (9, "bus")


_UNICODE_CLASSES = """
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from torchbricks.predict import predict_images


class Grey:
    heads = {"head": "classification"}

    def predict(self, images):
        return [{"head": {"kind": "classification", "probabilities": np.array([0.25, 0.75], np.float32)}} for _ in images]


folder = Path(sys.argv[1])
Image.new("RGB", (8, 8)).save(folder / "photo.png")
predict_images(Grey(), [folder], folder / "out", class_names=["cat", "d\\u00f6g \\u732b"], progress=False, workers=0)
"""


def test_predictions_csv_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    run_under_an_ascii_locale(_UNICODE_CLASSES, str(tmp_path))  # the class names of a German or Japanese data set
    (row,) = csv.DictReader((tmp_path / "out" / "predictions.csv").open(encoding="utf-8"))
    assert row["class"] == "d\u00f6g \u732b"
    assert row["top5"] == "d\u00f6g \u732b:0.7500;cat:0.2500"


def _two_boxes() -> dict[str, Any]:
    """A detection head's result on a 40 x 30 image: a box scoring 0.9 that reaches past the right edge, one of 0.2."""
    return {
        "det": {
            "kind": "detection",
            "boxes": np.array([[4.0, 3.0, 44.0, 15.0], [10.0, 10.0, 20.0, 20.0]], np.float32),
            "scores": np.array([0.9, 0.2], np.float32),
            "labels": np.array([1, 0]),
        }
    }


def test_yolo_labels_hold_the_boxes_scoring_min_score_normalised_and_cut_to_the_image(tmp_path: Path) -> None:
    writer = PredictionWriter(tmp_path, {"det": "detection"}, ["cat", "dog"], pictures=None, labels="yolo")
    image = np.zeros((30, 40, 3), np.uint8)
    writer.add("sub/a", "photos/sub/a.png", image, _two_boxes())
    writer.add("b", "photos/b.png", image, {"det": {**_two_boxes()["det"], "scores": np.array([0.1, 0.2], np.float32)}})
    writer.finish()

    # the first box cut at x = 40: centre (22, 9), 36 x 12 pixels of 40 x 30; the 0.2 box is under the default 0.3
    assert (tmp_path / "labels" / "sub" / "a.txt").read_text() == "1 0.550000 0.300000 0.900000 0.400000\n"
    assert (tmp_path / "labels" / "b.txt").read_text() == ""  # an image without a box: an empty file, as tools write
    assert (tmp_path / "classes.txt").read_text() == "cat\ndog\n"
    heads, names = {"det": "detection"}, ["cat", "dog"]
    lowered = PredictionWriter(tmp_path / "low", heads, names, pictures=None, labels="yolo", min_score=0.15)
    lowered.add("a", "a.png", image, _two_boxes())
    assert (tmp_path / "low" / "labels" / "a.txt").read_text().splitlines()[1] == "0 0.375000 0.500000 0.250000 0.333333"


def test_labels_are_written_at_the_images_own_size_when_the_picture_is_reduced(tmp_path: Path) -> None:
    writer = PredictionWriter(tmp_path, {"det": "detection"}, ["cat", "dog"], pictures=None, labels="yolo")
    writer.write_images("a", np.zeros((15, 20, 3), np.uint8), _two_boxes(), size=(30, 40))

    assert (tmp_path / "labels" / "a.txt").read_text() == "1 0.550000 0.300000 0.900000 0.400000\n"


def test_voc_labels_name_the_image_and_its_size_with_whole_pixel_corners_from_0(tmp_path: Path) -> None:
    from xml.etree import ElementTree

    writer = PredictionWriter(tmp_path, {"det": "detection"}, ["cat", "d<g"], pictures=None, labels="voc")
    result = _two_boxes()
    result["det"]["boxes"][0] = [4.4, 2.6, 44.0, 15.5]
    writer.write_images("sub/a", np.zeros((30, 40, 3), np.uint8), result, source=Path("photos/sub/a.png"))

    root = ElementTree.parse(tmp_path / "Annotations" / "sub" / "a.xml").getroot()
    assert root.findtext("filename") == "a.png"
    assert [root.findtext(f"size/{key}") for key in ("width", "height", "depth")] == ["40", "30", "3"]
    (item,) = root.findall("object")
    assert item.findtext("name") == "d<g"
    assert [item.findtext(f"bndbox/{key}") for key in ("xmin", "ymin", "xmax", "ymax")] == ["4", "3", "40", "16"]
    assert root.findtext("source/database") == "torchbricks predict"


def test_min_score_sets_the_boxes_drawn_too(tmp_path: Path) -> None:
    image = np.zeros((60, 60, 3), np.uint8)
    result = _two_boxes()
    result["det"]["boxes"][1] = [20.0, 40.0, 50.0, 58.0]
    for name, min_score in (("default", 0.3), ("low", 0.15)):
        PredictionWriter(tmp_path / name, {"det": "detection"}, ["cat", "dog"], pictures="png", min_score=min_score).add(
            "a", "a.png", image, result
        )
    bottom_edge_of_the_low_box = (35, 57)  # x, y: on the 0.2 box's outline, away from the 0.9 box and the labels
    assert Image.open(tmp_path / "default" / "drawn" / "a.png").getpixel(bottom_edge_of_the_low_box) == (0, 0, 0)
    assert Image.open(tmp_path / "low" / "drawn" / "a.png").getpixel(bottom_edge_of_the_low_box) != (0, 0, 0)


def test_labels_without_a_detection_head_or_of_an_unknown_layout_or_score_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BrickError, match=r"labels='yolo' writes the boxes of a detection head.*'cls': 'classification'"):
        PredictionWriter(tmp_path, {"cls": "classification"}, labels="yolo")
    with pytest.raises(BrickError, match=r"labels must be one of \['yolo', 'voc', 'coco', 'folders'\] or None, got 'cvat'"):
        PredictionWriter(tmp_path, {"det": "detection"}, labels="cvat")
    with pytest.raises(BrickError, match=r"min_score is a score in \[0, 1\], got 1.5"):
        PredictionWriter(tmp_path, {"det": "detection"}, min_score=1.5)
    assert list(tmp_path.iterdir()) == []


def test_folders_put_each_image_file_in_the_folder_of_its_predicted_class(tmp_path: Path) -> None:
    photo = tmp_path / "photos" / "day 1" / "a.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"the file as it is, not decoded")
    writer = PredictionWriter(tmp_path / "out", {"cls": "classification"}, ["cat", "dog"], pictures=None, labels="folders")
    result = {"cls": {"kind": "classification", "probabilities": np.array([0.3, 0.7], np.float32)}}

    writer.write_images("day 1/a", np.zeros((4, 4, 3), np.uint8), result, source=photo)

    sorted_photo = tmp_path / "out" / "classified" / "dog" / "day 1" / "a.jpg"
    assert sorted_photo.read_bytes() == photo.read_bytes()
    assert [path.name for path in (tmp_path / "out" / "classified").iterdir()] == ["dog"]
    with pytest.raises(BrickError, match=r"'clip_frame000003' is a frame of a video, without a file of its own"):
        writer.write_images("clip_frame000003", np.zeros((4, 4, 3), np.uint8), result, source=None)


def test_folders_without_a_classification_head_are_refused_naming_the_heads(tmp_path: Path) -> None:
    with pytest.raises(
        BrickError, match=r"labels='folders' sorts the images into the class folders of a classification head.*'det': 'detection'"
    ):
        PredictionWriter(tmp_path, {"det": "detection"}, labels="folders")


def test_coco_labels_of_a_mask_are_polygons_that_cocos_own_rule_fills_back_to_the_class_pixels(tmp_path: Path) -> None:
    import pycocotools.mask as mask_module  # the dev extra: the reference the tools use

    rng = np.random.default_rng(0)
    mask = np.zeros((40, 50), np.int64)
    mask[5:30, 4:20] = 2
    mask[10:20, 8:14] = 0  # a hole
    mask[25:38, 30:48] = rng.integers(0, 2, (13, 18)) * 3  # ragged pixels of class 3
    writer = PredictionWriter(tmp_path, {"seg": "segmentation"}, ["background", "a", "b", "c"], pictures=None, labels="coco")

    writer.record("photos/x.png", {"seg": {"kind": "segmentation", "mask": mask}}, image_file="x.png")
    writer.finish()

    document = json.loads((tmp_path / "annotations" / "instances_default.json").read_text())
    assert document["images"] == [{"id": 1, "file_name": "x.png", "width": 50, "height": 40}]
    assert document["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    assert [annotation["category_id"] for annotation in document["annotations"]] == [2, 3]
    for annotation in document["annotations"]:
        pixels = mask == annotation["category_id"]
        rle = mask_module.merge(mask_module.frPyObjects(annotation["segmentation"], 40, 50))
        assert np.array_equal(mask_module.decode(rle).astype(bool), pixels)  # pycocotools' annToMask, as tools read it
        assert annotation["area"] == int(pixels.sum())
        ys, xs = np.nonzero(pixels)
        assert annotation["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max() + 1 - xs.min()), int(ys.max() + 1 - ys.min())]


def test_coco_labels_of_boxes_keep_those_scoring_min_score_with_the_training_category_ids(tmp_path: Path) -> None:
    heads = {"det": "detection", "seg": "segmentation"}
    writer = PredictionWriter(
        tmp_path, heads, {"det": ["cat", "dog"]}, category_ids={"det": [3, 7]}, pictures=None, labels="coco"
    )
    mask = {"kind": "segmentation", "mask": np.zeros((30, 40), np.int64)}

    writer.record("a.png", {**_two_boxes(), "seg": mask}, size=(30, 40))
    writer.finish()

    document = json.loads((tmp_path / "det_annotations" / "instances_default.json").read_text())
    assert document["categories"] == [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    (annotation,) = document["annotations"]  # the 0.2 box is under the default 0.3
    assert annotation == {
        "id": 1,
        "image_id": 1,
        "category_id": 7,
        "iscrowd": 0,
        "bbox": [4.0, 3.0, 36.0, 12.0],
        "area": 432.0,
        "segmentation": [],
        "score": 0.9,
    }
    assert json.loads((tmp_path / "seg_annotations" / "instances_default.json").read_text())["annotations"] == []
    with pytest.raises(BrickError, match=r"labels='coco' needs the size of each image of head 'det'"):
        writer.record("b.png", {**_two_boxes(), "seg": mask})
    with pytest.raises(BrickError, match=r"labels='coco' writes the boxes of a detection head and the mask outlines"):
        PredictionWriter(tmp_path, {"cls": "classification"}, labels="coco")
