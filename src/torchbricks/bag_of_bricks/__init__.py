"""Reusable modules and bricks: preprocessors, backbones, necks, task heads, visualizations and sinks.

Each task module (`image_classification`, `segmentation`, `object_detection`, `point_detection`) has its modules, a head factory
returning a dict of bricks with relative names (`create_*_head`) and a ready-made collection
(`create_bricks_*`).

The names are imported on first use (PEP 562), so importing one module of the bag (say the private tensor
conversions behind `torchbricks.tensor_conversions`) does not import every head, backbone and sink.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchbricks._lazy import lazy_attributes

if TYPE_CHECKING:  # the names below are imported on first use, see __getattr__
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
        PointDetectionScores,
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

_LAZY_NAMES = {
    "BackboneFeatureExtractor": "torchbricks.bag_of_bricks.backbones",
    "BackboneResnet": "torchbricks.bag_of_bricks.backbones",
    "BoxDecoder": "torchbricks.bag_of_bricks.object_detection",
    "BoxDetectionHead": "torchbricks.bag_of_bricks.object_detection",
    "BoxDetectionLoss": "torchbricks.bag_of_bricks.object_detection",
    "BoxMeanAveragePrecision": "torchbricks.bag_of_bricks.object_detection",
    "BrickDisplay": "torchbricks.bag_of_bricks.sinks",
    "BrickPerImageVisualization": "torchbricks.bag_of_bricks.brick_visualizer",
    "BrickRecordAnimation": "torchbricks.bag_of_bricks.sinks",
    "BrickSaveImageGrid": "torchbricks.bag_of_bricks.sinks",
    "BrickVisualizeBoxes": "torchbricks.bag_of_bricks.object_detection",
    "BrickVisualizeImageClassification": "torchbricks.bag_of_bricks.image_classification",
    "BrickVisualizeMultiLabel": "torchbricks.bag_of_bricks.multilabel_classification",
    "BrickVisualizePoints": "torchbricks.bag_of_bricks.point_detection",
    "BrickVisualizeSegmentation": "torchbricks.bag_of_bricks.segmentation",
    "CompactCNN": "torchbricks.bag_of_bricks.compact_cnn",
    "FeaturePyramidUpsampler": "torchbricks.bag_of_bricks.necks",
    "ImageClassifier": "torchbricks.bag_of_bricks.image_classification",
    "MultiLabelClassifier": "torchbricks.bag_of_bricks.multilabel_classification",
    "MultiLabelLoss": "torchbricks.bag_of_bricks.multilabel_classification",
    "PointDecoder": "torchbricks.bag_of_bricks.point_detection",
    "PointDetectionF1": "torchbricks.bag_of_bricks.point_detection",
    "PointDetectionHead": "torchbricks.bag_of_bricks.point_detection",
    "PointDetectionLoss": "torchbricks.bag_of_bricks.point_detection",
    "PointDetectionScores": "torchbricks.bag_of_bricks.point_detection",
    "Preprocessor": "torchbricks.bag_of_bricks.preprocessors",
    "SegmentationHead": "torchbricks.bag_of_bricks.segmentation",
    "create_backbone": "torchbricks.bag_of_bricks.backbones",
    "create_backbone_brick": "torchbricks.bag_of_bricks.backbones",
    "create_backbone_brick_from_timm": "torchbricks.bag_of_bricks.backbones",
    "create_bricks_image_classification": "torchbricks.bag_of_bricks.image_classification",
    "create_bricks_object_detection": "torchbricks.bag_of_bricks.object_detection",
    "create_bricks_point_detection": "torchbricks.bag_of_bricks.point_detection",
    "create_bricks_segmentation": "torchbricks.bag_of_bricks.segmentation",
    "create_image_classification_head": "torchbricks.bag_of_bricks.image_classification",
    "create_multilabel_classification_head": "torchbricks.bag_of_bricks.multilabel_classification",
    "create_object_detection_head": "torchbricks.bag_of_bricks.object_detection",
    "create_point_detection_head": "torchbricks.bag_of_bricks.point_detection",
    "create_segmentation_head": "torchbricks.bag_of_bricks.segmentation",
    "create_task_backbone": "torchbricks.bag_of_bricks.compact_cnn",
    "draw_boxes": "torchbricks.bag_of_bricks.drawing",
    "draw_class_label": "torchbricks.bag_of_bricks.drawing",
    "draw_points": "torchbricks.bag_of_bricks.drawing",
    "find_feature_layers": "torchbricks.bag_of_bricks.backbones",
    "make_image_grid": "torchbricks.bag_of_bricks.sinks",
    "overlay_segmentation_mask": "torchbricks.bag_of_bricks.drawing",
    "resnet_to_brick": "torchbricks.bag_of_bricks.backbones",
    "save_animation": "torchbricks.bag_of_bricks.sinks",
    "save_image_grid": "torchbricks.bag_of_bricks.sinks",
}

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
    "PointDetectionScores",
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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_NAMES, globals())
