"""Which layout `task=segmentation` reads a folder in: mask folders first, else the COCO or YOLO outlines it holds;
box data without outlines (Pascal VOC XML) is refused as detection data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from layouts import coco_to_voc, write_outline_data

from torchbricks.datasets.readers import DataError
from torchbricks.datasets.segmentation_layouts import segmentation_layout, unread_outlines_notice
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.errors import ConfigError


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_a_folder_of_outlines_is_read_in_its_layout(tmp_path: Path, layout: str) -> None:
    root = write_outline_data(tmp_path / layout, layout)

    assert segmentation_layout(root) == layout
    assert unread_outlines_notice(root, layout) is None


def test_a_folder_with_mask_folders_and_coco_files_is_read_as_mask_folders_unless_the_layout_is_named(tmp_path: Path) -> None:
    shapes = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=2, image_size=32)
    root = Path(shutil.copytree(shapes / "segmentation", tmp_path / "both"))
    for name in ("train.json", "val.json", "images"):  # the COCO files of the same images beside the mask folders
        source = shapes / "detection" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)

    assert segmentation_layout(root) == "segmentation_folder"
    assert segmentation_layout(root, "coco") == "coco"
    notice = unread_outlines_notice(root, "segmentation_folder")
    assert notice is not None
    assert "holds mask folders and COCO files: task=segmentation reads the masks and not the outlines" in notice
    assert "(data.layout=coco reads the outlines" in notice


def test_pascal_voc_xml_is_refused_as_box_data_naming_the_folder_and_task_detection(tmp_path: Path) -> None:
    shapes = write_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=2, image_size=32)
    root = coco_to_voc(shapes / "detection", tmp_path / "voc")

    with pytest.raises(DataError, match=r"^The data folder '.*voc' holds Pascal VOC XML files: boxes, with no outline") as caught:
        segmentation_layout(root)
    assert f"train task=detection on it (torchbricks train task=detection data.root={root})" in str(caught.value)
    with pytest.raises(ConfigError, match=r"^Config key 'data.layout' is 'voc': Pascal VOC XML files hold boxes"):
        segmentation_layout(root, "voc")
    with pytest.raises(ConfigError, match=r"task=segmentation reads \['auto', 'segmentation_folder', 'coco', 'yolo'\]. Did you"):
        segmentation_layout(root, "cocoo")
