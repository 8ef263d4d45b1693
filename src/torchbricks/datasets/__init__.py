"""Image data in the layouts users bring (ImageFolder, image/mask folders, COCO) and a generated shapes data set."""

from __future__ import annotations

from torchbricks.datasets.readers import (
    CocoDataset,
    DataError,
    ImageFolderDataset,
    SegmentationFolderDataset,
    coco_class_names,
    image_folder_class_names,
    segmentation_class_names,
)
from torchbricks.datasets.shapes import write_shapes_dataset
from torchbricks.datasets.transforms import collate_padded, create_transform

__all__ = [
    "CocoDataset",
    "DataError",
    "ImageFolderDataset",
    "SegmentationFolderDataset",
    "coco_class_names",
    "collate_padded",
    "create_transform",
    "image_folder_class_names",
    "segmentation_class_names",
    "write_shapes_dataset",
]
