"""Reusable modules and bricks: preprocessors, backbones, necks, task heads, visualizations and sinks.

Each task module (`image_classification`, `segmentation`, `object_detection`, `point_detection`) has its modules, a head factory
returning a dict of bricks with relative names (`create_*_head`) and a ready-made collection
(`create_bricks_*`).
"""

from __future__ import annotations

from torchbricks.bag_of_bricks.backbones import (
    BackboneFeatureExtractor,
    BackboneResnet,
    create_backbone,
    create_backbone_brick,
    create_backbone_brick_from_timm,
    find_feature_layers,
    resnet_to_brick,
)
from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
from torchbricks.bag_of_bricks.compact_cnn import CompactCNN, create_task_backbone
from torchbricks.bag_of_bricks.drawing import draw_boxes, draw_class_label, draw_points, overlay_segmentation_mask
from torchbricks.bag_of_bricks.image_classification import (
    BrickVisualizeImageClassification,
    ImageClassifier,
    create_bricks_image_classification,
    create_image_classification_head,
)
from torchbricks.bag_of_bricks.multilabel_classification import (
    BrickVisualizeMultiLabel,
    MultiLabelClassifier,
    MultiLabelLoss,
    create_multilabel_classification_head,
)
from torchbricks.bag_of_bricks.necks import FeaturePyramidUpsampler
from torchbricks.bag_of_bricks.object_detection import (
    BoxDecoder,
    BoxDetectionHead,
    BoxDetectionLoss,
    BoxMeanAveragePrecision,
    BrickVisualizeBoxes,
    create_bricks_object_detection,
    create_object_detection_head,
)
from torchbricks.bag_of_bricks.point_detection import (
    BrickVisualizePoints,
    PointDecoder,
    PointDetectionF1,
    PointDetectionHead,
    PointDetectionLoss,
    create_bricks_point_detection,
    create_point_detection_head,
)
from torchbricks.bag_of_bricks.preprocessors import Preprocessor
from torchbricks.bag_of_bricks.segmentation import (
    BrickVisualizeSegmentation,
    SegmentationHead,
    create_bricks_segmentation,
    create_segmentation_head,
)
from torchbricks.bag_of_bricks.sinks import (
    BrickDisplay,
    BrickRecordAnimation,
    BrickSaveImageGrid,
    make_image_grid,
    save_animation,
    save_image_grid,
)

__all__ = [
    "BackboneFeatureExtractor",
    "BackboneResnet",
    "BoxDecoder",
    "BoxDetectionHead",
    "BoxDetectionLoss",
    "BoxMeanAveragePrecision",
    "BrickDisplay",
    "BrickPerImageVisualization",
    "BrickRecordAnimation",
    "BrickSaveImageGrid",
    "BrickVisualizeBoxes",
    "BrickVisualizeImageClassification",
    "BrickVisualizeMultiLabel",
    "BrickVisualizePoints",
    "BrickVisualizeSegmentation",
    "CompactCNN",
    "FeaturePyramidUpsampler",
    "ImageClassifier",
    "MultiLabelClassifier",
    "MultiLabelLoss",
    "PointDecoder",
    "PointDetectionF1",
    "PointDetectionHead",
    "PointDetectionLoss",
    "Preprocessor",
    "SegmentationHead",
    "create_backbone",
    "create_backbone_brick",
    "create_backbone_brick_from_timm",
    "create_bricks_image_classification",
    "create_bricks_object_detection",
    "create_bricks_point_detection",
    "create_bricks_segmentation",
    "create_image_classification_head",
    "create_multilabel_classification_head",
    "create_object_detection_head",
    "create_point_detection_head",
    "create_segmentation_head",
    "create_task_backbone",
    "draw_boxes",
    "draw_class_label",
    "draw_points",
    "find_feature_layers",
    "make_image_grid",
    "overlay_segmentation_mask",
    "resnet_to_brick",
    "save_animation",
    "save_image_grid",
]
