"""OmegaConf resolvers through which the packaged task configs take their classes and backbone facts from the data
and the backbone, so `torchbricks train task=detection data.root=DIR` needs no class count on the command line.

- `${torchbricks_class_names:LAYOUT,ROOT}` and `${torchbricks_num_classes:LAYOUT,ROOT}`: the classes of the data
  at ROOT, LAYOUT being `image_folder`, `segmentation_folder`, `coco` or `coco_with_background` (the COCO
  categories after a `background` class, for semantic masks drawn from COCO polygons).
- `${torchbricks_backbone:NAME,NUM_SCALES,FACT}`: see `torchbricks.bag_of_bricks.compact_cnn.backbone_info`.
- `${torchbricks_image_size:LAYOUT,ROOT,MULTIPLE,MAX_SIDE}`: the training images' median size rounded to a
  multiple of MULTIPLE and at most MAX_SIDE (`torchbricks.datasets.image_sizes.typical_image_size`), as one side
  when square, else `[height, width]`; LAYOUT is `image_folder`, `segmentation_folder` or `coco`. The choice is
  printed once per process and data set, and the resolved config (`resolved_config.yaml`) holds the number.
"""

from __future__ import annotations

from pathlib import Path

from torchbricks._experiment import launched_as_global_zero
from torchbricks._extras import require
from torchbricks.bag_of_bricks.compact_cnn import backbone_info
from torchbricks.datasets.image_sizes import ImageSizeChoice, typical_image_size
from torchbricks.datasets.readers import coco_class_names, image_folder_class_names, segmentation_class_names
from torchbricks.errors import ConfigError, did_you_mean

__all__ = ["LAYOUTS", "class_names_of", "image_size_of", "register_resolvers"]

LAYOUTS = ("image_folder", "segmentation_folder", "coco", "coco_with_background")


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
    if layout == "coco":
        return coco_class_names(folder / "train.json")
    if layout == "coco_with_background":
        return ["background", *coco_class_names(folder / "train.json")]
    raise ConfigError(f"Unknown data layout {layout!r}. Available: {list(LAYOUTS)}.{did_you_mean(layout, LAYOUTS)}")


_CHOSEN_SIZES: dict[tuple[str, str, int, int], ImageSizeChoice] = {}


def image_size_of(layout: str, root: str, multiple: int = 32, max_side: int = 512) -> int | list[int]:
    """The input size the training images of the data at `root` suggest (see the module docstring).

    Raises:
        ConfigError: An unknown layout.
        DataError: The training split is missing, empty or unreadable.
    """
    key = (str(layout), str(Path(str(root)).resolve()), int(multiple), int(max_side))
    choice = _CHOSEN_SIZES.get(key)
    if choice is None:
        choice = typical_image_size(key[0], key[1], multiple=key[2], max_side=key[3])
        _CHOSEN_SIZES[key] = choice
        if launched_as_global_zero():
            print(choice.describe(), flush=True)
    height, width = choice.size
    return height if height == width else [height, width]


def register_resolvers() -> None:
    """Registers the resolvers with OmegaConf (again, harmlessly, when already registered)."""
    omegaconf = require("omegaconf", "hydra").OmegaConf
    omegaconf.register_new_resolver("torchbricks_class_names", class_names_of, replace=True)
    omegaconf.register_new_resolver(
        "torchbricks_num_classes", lambda layout, root: len(class_names_of(layout, root)), replace=True
    )
    omegaconf.register_new_resolver("torchbricks_backbone", backbone_info, replace=True)
    omegaconf.register_new_resolver("torchbricks_image_size", image_size_of, replace=True)
