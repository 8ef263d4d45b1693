"""Class counts of a training split and the inverse-frequency weights made from them, on tiny hand-made data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchbricks.datasets.class_frequencies import (
    coco_pixel_counts,
    image_folder_class_counts,
    inverse_frequency_weights,
    segmentation_pixel_counts,
)
from torchbricks.datasets.readers import DataError


def write_image_folder(root: Path, counts: dict[str, int], size: int = 32) -> Path:
    """`root/<class>/<i>.png`, `counts[class]` small PNGs per class."""
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.new("RGB", (size, size), (index * 20 % 255, 80, 160)).save(root / name / f"{index}.png")
    return root


def write_masks(folder: Path, masks: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, mask in enumerate(masks):
        Image.fromarray(mask.astype(np.uint8), mode="L").save(folder / f"{index:03d}.png")
    return folder


def test_image_folder_counts_the_image_files_of_each_class_folder(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "train", {"common": 8, "rare": 2})
    (root / "rare" / "notes.txt").write_text("not an image")

    assert image_folder_class_counts(root, ["common", "rare", "absent"]) == [8, 2, 0]


def test_segmentation_counts_pixels_per_class_and_leaves_out_255(tmp_path: Path) -> None:
    first = np.zeros((4, 4), dtype=np.uint8)
    first[0, :3] = 1
    first[3, 3] = 255
    second = np.full((4, 4), 2, dtype=np.uint8)
    second[0, 0] = 255
    masks = write_masks(tmp_path / "masks", [first, second])

    expected = np.bincount(np.concatenate([first.ravel(), second.ravel()]), minlength=256)[:3]  # 255 not among 0..2
    assert segmentation_pixel_counts(masks, num_classes=3) == expected.tolist() == [12, 3, 15]


def test_segmentation_reads_at_most_max_masks_spread_over_the_split(tmp_path: Path) -> None:
    masks = write_masks(tmp_path / "masks", [np.full((2, 2), value % 2, dtype=np.uint8) for value in range(5)])

    # masks 0, 2 and 4 (class 0) are read, 1 and 3 (class 1) are not
    assert segmentation_pixel_counts(masks, num_classes=2, max_masks=3) == [12, 0]


def test_segmentation_refuses_a_mask_value_beyond_the_classes_naming_the_file(tmp_path: Path) -> None:
    masks = write_masks(tmp_path / "masks", [np.full((2, 2), 7, dtype=np.uint8)])

    with pytest.raises(DataError, match=r"000\.png' has value 7; classes are 0 to 2"):
        segmentation_pixel_counts(masks, num_classes=3)


def test_coco_counts_the_pixels_of_the_masks_drawn_from_the_polygons(tmp_path: Path) -> None:
    Image.new("RGB", (10, 8)).save(tmp_path / "a.png")
    square = [1, 1, 4, 1, 4, 4, 1, 4]
    document = {
        "images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 8}],
        "categories": [{"id": 9, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [1, 1, 3, 3], "segmentation": [square]}],
    }
    (tmp_path / "train.json").write_text(json.dumps(document))
    drawn = 3 * 3  # the pixels between the edges at 1 and 4, as pycocotools' annToMask fills them (Pillow's fill: 16)

    # background, cat (id 3), dog (id 9): categories in id order after the background
    assert coco_pixel_counts(tmp_path / "train.json") == [80 - drawn, 0, drawn]


def test_inverse_frequency_weights_average_one_over_the_classes_present() -> None:
    weights = inverse_frequency_weights([8, 2, 10], ["a", "b", "c"])

    expected = np.array([1 / 8, 1 / 2, 1 / 10])
    np.testing.assert_allclose(weights, expected * 3 / expected.sum(), atol=1e-6)
    assert np.mean(weights) == pytest.approx(1.0, abs=1e-6)


def test_a_class_absent_from_the_split_gets_weight_zero_and_a_warning_naming_it() -> None:
    with pytest.warns(UserWarning, match=r"Classes \['ghost'\] do not occur in the training split"):
        weights = inverse_frequency_weights([8, 0, 2], ["common", "ghost", "rare"])

    assert weights[1] == 0.0
    assert [weights[0], weights[2]] == pytest.approx([0.4, 1.6])  # the mean of the present ones is 1


def test_no_class_at_all_is_a_data_error() -> None:
    with pytest.raises(DataError, match="No class of"):
        inverse_frequency_weights([0, 0], ["a", "b"])
