"""Image data in the layouts users bring (ImageFolder, image/mask folders, COCO, YOLO, Pascal VOC), a checker that
lists every problem of a data folder, and a generated shapes data set."""

from __future__ import annotations

from torchbricks.datasets.checking import DataReport, check_data
from torchbricks.datasets.detection_layouts import detect_detection_layout, detection_class_names, read_detection_split
from torchbricks.datasets.readers import (
    BoxDataset,
    BoxImage,
    BoxObject,
    CocoDataset,
    DataError,
    DataProblems,
    ImageFolderDataset,
    SegmentationFolderDataset,
    coco_class_names,
    image_folder_class_names,
    segmentation_class_names,
)
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.datasets.transforms import collate_padded, create_transform
from torchbricks.datasets.voc import VocDataset, voc_class_names
from torchbricks.datasets.yolo import YoloDataset, yolo_class_names

__all__ = [
    "BoxDataset",
    "BoxImage",
    "BoxObject",
    "CocoDataset",
    "DataError",
    "DataProblems",
    "DataReport",
    "ImageFolderDataset",
    "SegmentationFolderDataset",
    "VocDataset",
    "YoloDataset",
    "check_data",
    "coco_class_names",
    "collate_padded",
    "create_transform",
    "detect_detection_layout",
    "detection_class_names",
    "image_folder_class_names",
    "read_detection_split",
    "segmentation_class_names",
    "voc_class_names",
    "write_shapes_dataset",
    "yolo_class_names",
]
