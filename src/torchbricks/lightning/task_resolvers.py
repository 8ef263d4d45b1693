"""OmegaConf resolvers through which the packaged task configs take their classes and backbone facts from the data
and the backbone, so `torchbricks train task=detection data.root=DIR` needs no class count on the command line.

- `${torchbricks_class_names:LAYOUT,ROOT}` and `${torchbricks_num_classes:LAYOUT,ROOT}`: the classes of the data
  at ROOT, LAYOUT being `image_folder`, `segmentation_folder`, a box layout (`coco`, `yolo`, `voc`, or `auto`: the
  one ROOT holds, see `torchbricks.datasets.detection_layouts`), or a box layout with `_with_background` (its
  classes after a `background` class, for semantic masks drawn from COCO polygons).
- `${torchbricks_backbone:NAME,NUM_SCALES,FACT}`: see `torchbricks.bag_of_bricks.compact_cnn.backbone_info`.
"""

from __future__ import annotations

from pathlib import Path

from torchbricks._extras import require
from torchbricks.bag_of_bricks.compact_cnn import backbone_info
from torchbricks.datasets.detection_layouts import DETECTION_LAYOUTS, detection_class_names
from torchbricks.datasets.readers import image_folder_class_names, segmentation_class_names
from torchbricks.errors import ConfigError, did_you_mean

__all__ = ["LAYOUTS", "class_names_of", "register_resolvers"]

BOX_LAYOUTS = (*DETECTION_LAYOUTS, "auto")
LAYOUTS = ("image_folder", "segmentation_folder", *BOX_LAYOUTS, *(f"{layout}_with_background" for layout in BOX_LAYOUTS))


def class_names_of(layout: str, root: str) -> list[str]:
    """The class names of the data at `root` in `layout` (see the module docstring).

    Raises:
        ConfigError: An unknown layout.
        DataError: The data is missing or has no class.
    """
    folder = Path(str(root))
    if layout == "image_folder":
        return image_folder_class_names(folder / "train")
    if layout == "segmentation_folder":
        return segmentation_class_names(folder)
    if layout in BOX_LAYOUTS:
        return detection_class_names(folder, layout)
    if layout.removesuffix("_with_background") in BOX_LAYOUTS:
        return ["background", *detection_class_names(folder, layout.removesuffix("_with_background"))]
    raise ConfigError(f"Unknown data layout {layout!r}. Available: {list(LAYOUTS)}.{did_you_mean(layout, LAYOUTS)}")


def register_resolvers() -> None:
    """Registers the resolvers with OmegaConf (again, harmlessly, when already registered)."""
    omegaconf = require("omegaconf", "hydra").OmegaConf
    omegaconf.register_new_resolver("torchbricks_class_names", class_names_of, replace=True)
    omegaconf.register_new_resolver(
        "torchbricks_num_classes", lambda layout, root: len(class_names_of(layout, root)), replace=True
    )
    omegaconf.register_new_resolver("torchbricks_backbone", backbone_info, replace=True)
