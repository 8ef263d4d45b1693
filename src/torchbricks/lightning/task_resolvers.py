"""OmegaConf resolvers through which the packaged task configs take their classes and backbone facts from the data
and the backbone, so `torchbricks train task=detection data.root=DIR` needs no class count on the command line.

- `${torchbricks_class_names:LAYOUT,ROOT}` and `${torchbricks_num_classes:LAYOUT,ROOT}`: the classes of the data
  at ROOT, LAYOUT being `image_folder`, `segmentation_folder`, a box layout (`coco`, `yolo`, `voc`, or `auto`: the
  one ROOT holds, see `torchbricks.datasets.detection_layouts`), or a box layout with `_with_background` (its
  classes after a `background` class, for multitask's semantic masks drawn from COCO or YOLO outlines) or, COCO and YOLO,
  with `_segmentation` (the same classes, for `task=segmentation`'s masks drawn from the outlines).
- `${torchbricks_segmentation_layout:LAYOUT,ROOT[,FACT]}`: how `task=segmentation` reads the data at ROOT, LAYOUT
  being `data.layout` (`auto`, `segmentation_folder`, `coco` or `yolo`; `segmentation_layout`): FACT `layout` (the
  default) gives the layout read (`segmentation_folder`, `coco`, `yolo`), `classes` the layout its classes are read
  in (`segmentation_folder`, or `coco_segmentation`, `yolo_segmentation`: masks drawn from the outlines as
  `OutlineSegmentationDataModule` draws them, the classes after a `background` class), `module` the data module
  that reads it (`SegmentationFolderDataModule` or `OutlineSegmentationDataModule`).
- `${torchbricks_backbone:NAME,NUM_SCALES,FACT}`: see `torchbricks.bag_of_bricks.compact_cnn.backbone_info`.
- `${torchbricks_class_weights:SPEC,LAYOUT,ROOT[,VALIDATION_FRACTION,SPLIT_SEED]}`: the class weights of a
  cross-entropy head (`class_weights_of`), SPEC being the config key `loss.class_weights`: null (no weights),
  `auto` (inverse class frequency in the training split, drawn as `data.validation_fraction` and `data.split_seed`
  draw it) or a list of one weight per class. `check_class_weights(config)` resolves them once, before anything is
  written, so a bad value is one error naming `loss.class_weights`.
- `${torchbricks_image_size:LAYOUT,ROOT,MULTIPLE,MAX_SIDE[,TILE_SIZE[,SCALE]]}`: the training images' median size
  (times SCALE, the config key `data.image_scale`, when given) rounded to a multiple of MULTIPLE and at most
  MAX_SIDE (`torchbricks.datasets.image_sizes.typical_image_size`), as one side when square, else `[height, width]`;
  LAYOUT is `image_folder`, `segmentation_folder` or a box layout; TILE_SIZE may be null. The choice is
  measured once per job (`torchbricks._data_facts`: images replaced between two jobs of one process are measured
  again), printed once per process and choice, and the resolved config (`resolved_config.yaml`) holds the number. With TILE_SIZE
  (the config key `data.tile_size`, when not null) the images are cut into tiles of that side, and the tile size is
  the input size (the images are not read).
- `${torchbricks_with_image_extent:TILE_SIZE,NAMES}`: the input names NAMES (a list), followed, when TILE_SIZE
  (`data.tile_size`) is not null, by the name under which each tile gives the part of it that shows the image
  (`torchbricks.datasets.tiled.IMAGE_EXTENT`): the packaged detection head's mAP cuts its boxes to it, as `predict`
  cuts them to the image; without tiles the batches have no extent, and the boxes are cut to the whole input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torchbricks._data_facts import data_facts_kept, kept_for_one_job
from torchbricks._experiment import launched_as_global_zero
from torchbricks._extras import require
from torchbricks.bag_of_bricks.compact_cnn import backbone_info
from torchbricks.datasets._reading import SPLIT_SEED, VALIDATION_FRACTION
from torchbricks.datasets.class_frequencies import (
    MAX_MASKS,
    image_folder_class_counts,
    inverse_frequency_weights,
    masks_of_split,
    outline_pixel_counts,
    segmentation_pixel_counts,
)
from torchbricks.datasets.detection_layouts import (
    DETECTION_LAYOUTS,
    detect_detection_layout,
    detection_class_names,
    read_detection_split,
)
from torchbricks.datasets.folder_splits import folder_splits, training_folder
from torchbricks.datasets.image_sizes import ImageSizeChoice, check_image_scale, typical_image_size
from torchbricks.datasets.readers import (
    mask_colours,
    masks_are_binary_255,
    segmentation_class_names,
    training_class_names,
)
from torchbricks.datasets.segmentation_layouts import OUTLINE_LAYOUTS, segmentation_layout
from torchbricks.datasets.tiled import IMAGE_EXTENT
from torchbricks.errors import BrickError, ConfigError, did_you_mean

__all__ = [
    "CLASS_WEIGHTS_KEY",
    "LAYOUTS",
    "check_class_weights",
    "class_names_of",
    "class_weights_of",
    "image_size_of",
    "register_resolvers",
    "segmentation_layout_of",
    "with_image_extent",
]

BOX_LAYOUTS = (*DETECTION_LAYOUTS, "auto")
LAYOUTS = (
    "image_folder",
    "segmentation_folder",
    *BOX_LAYOUTS,
    *(f"{layout}_with_background" for layout in BOX_LAYOUTS),
    *(f"{layout}_segmentation" for layout in OUTLINE_LAYOUTS),
)
_OUTLINE_SEGMENTATION_LAYOUTS = tuple(f"{layout}_segmentation" for layout in OUTLINE_LAYOUTS)
CLASS_WEIGHTS_KEY = "loss.class_weights"
"""The config key every cross-entropy head of the packaged task configs reads its class weights from."""
_RESOLVER = "torchbricks_class_weights"
SEGMENTATION_MODULES = {
    "segmentation_folder": "torchbricks.lightning.datamodules.SegmentationFolderDataModule",
    "coco": "torchbricks.lightning.datamodules.OutlineSegmentationDataModule",
    "yolo": "torchbricks.lightning.datamodules.OutlineSegmentationDataModule",
}
"""The layout `task=segmentation` reads -> the data module reading it (the `_target_` of `data/segmentation_folder.yaml`)."""
_SEGMENTATION_FACTS = ("layout", "classes", "module")


def segmentation_layout_of(layout: str, root: str, fact: str = "layout") -> str:
    """How `task=segmentation` reads the data at `root` given `data.layout` (see the module docstring). The `module`
    of data that cannot be read (a missing folder, box data) is `SegmentationFolderDataModule`: the job's settings
    read `data._target_` before the data, and the error comes when the data's size or classes are read.

    Raises:
        ConfigError: An unknown layout or fact.
        DataError: The data is missing or box data without outlines (`segmentation_layout`).
    """
    if fact not in _SEGMENTATION_FACTS:
        raise ConfigError(
            f"torchbricks_segmentation_layout: unknown fact {fact!r}. Available: {list(_SEGMENTATION_FACTS)}."
            f"{did_you_mean(fact, _SEGMENTATION_FACTS)}"
        )
    if fact == "module":
        try:
            return SEGMENTATION_MODULES[segmentation_layout(str(root), str(layout))]
        except BrickError:  # a missing folder, an unknown layout, box data: the mask folders' module names the key,
            # and the data's size and classes, read before it is built, raise the error itself (`data._target_` is
            # also read by the job's settings before any data is)
            return SEGMENTATION_MODULES["segmentation_folder"]
    read = segmentation_layout(str(root), str(layout))
    if fact == "classes" and read != "segmentation_folder":
        return f"{read}_segmentation"
    return read


def class_names_of(layout: str, root: str) -> list[str]:
    """The class names of the data at `root` in `layout` (see the module docstring).

    Raises:
        ConfigError: An unknown layout.
        DataError: The data is missing or has no class.
    """
    folder = Path(str(root))
    if layout == "image_folder":
        return training_class_names(training_folder(folder, layout))
    if layout == "segmentation_folder":
        return segmentation_class_names(folder)
    if layout in BOX_LAYOUTS:
        return detection_class_names(folder, layout)
    if layout.removesuffix("_with_background") in BOX_LAYOUTS:
        return ["background", *detection_class_names(folder, layout.removesuffix("_with_background"))]
    if layout in _OUTLINE_SEGMENTATION_LAYOUTS:
        return ["background", *detection_class_names(folder, layout.removesuffix("_segmentation"))]
    raise ConfigError(f"Unknown data layout {layout!r}. Available: {list(LAYOUTS)}.{did_you_mean(layout, LAYOUTS)}")


@data_facts_kept()  # the classes and the masks' kind are asked twice here: read once
def class_weights_of(
    spec: Any, layout: str, root: str, validation_fraction: float = VALIDATION_FRACTION, split_seed: int = SPLIT_SEED
) -> list[float] | None:
    """The class weights `spec` (the value of `loss.class_weights`) gives the classes of the data at `root`.

    - None: no weights (every class counts 1).
    - `auto`: inverse class frequency in the training split, averaging 1 over the classes present (a class absent
      from it gets 0 and a warning): image files per class folder (`image_folder`), mask pixels per class with 255
      left out (`segmentation_folder`: the masks of the split's images, at most `MAX_MASKS`, see
      `torchbricks.datasets.class_frequencies`); a split drawn from a folder without validation split is the one
      `validation_fraction` and `split_seed` draw (`data.validation_fraction`, `data.split_seed`), as training reads it;
      pixels of the masks drawn from the COCO polygons, background first (`coco_with_background`). Counted once
      per job (`torchbricks._data_facts`): masks rewritten between two jobs of one process are counted again.
    - a list: one weight >= 0 per class, used as given.

    Raises:
        ConfigError: `spec` is none of these, or a list of the wrong length or with a negative weight; the message
            names `loss.class_weights`.
    """
    if spec is None:
        return None
    names = class_names_of(layout, root)
    if isinstance(spec, str):
        if spec != "auto":
            raise ConfigError(
                f"Config key {CLASS_WEIGHTS_KEY!r} must be null, auto or a list of one weight per class "
                f"({len(names)}: {names}), got {spec!r}.{did_you_mean(spec, ['auto'])}"
            )
        return list(_automatic_weights(layout, str(root), float(validation_fraction), int(split_seed)))
    values = list(spec) if isinstance(spec, Sequence) else None
    if values is None:
        raise ConfigError(
            f"Config key {CLASS_WEIGHTS_KEY!r} must be null, auto or a list of one weight per class "
            f"({len(names)}: {names}), got {type(spec).__name__} {spec!r}."
        )
    if len(values) != len(names):
        raise ConfigError(
            f"Config key {CLASS_WEIGHTS_KEY!r} has {len(values)} weights but the {layout} data at {str(root)!r} has "
            f"{len(names)} classes: {names}."
        )
    bad = [value for value in values if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0]
    if bad or not any(values) or any(not math.isfinite(value) for value in values):
        raise ConfigError(
            f"Config key {CLASS_WEIGHTS_KEY!r} must hold finite numbers >= 0, not all 0 (one per class of {names}), got {values}."
        )
    return [float(value) for value in values]


@kept_for_one_job  # each head reading loss.class_weights asks, and the config is resolved more than once
def _automatic_weights(layout: str, root: str, validation_fraction: float, split_seed: int) -> tuple[float, ...]:
    folder = Path(root)
    names = class_names_of(layout, root)
    source = f"the training split of {root!r}"
    if layout in ("image_folder", "segmentation_folder"):  # the training split as training reads it (maybe drawn)
        train = folder_splits(folder, layout, validation_fraction, split_seed)["train"]
        drawn = "" if train.only is None else f", without the {validation_fraction:g} drawn for validation"
    if layout == "image_folder":
        counts = image_folder_class_counts(train.folder, names, train.only)
        source = f"the training images of {str(train.folder)!r}{drawn}"
    elif layout == "segmentation_folder":
        masks = masks_of_split(train)
        colours = mask_colours(folder)
        binary = colours is None and masks_are_binary_255(train.masks, len(names))
        counts = segmentation_pixel_counts(masks, len(names), foreground_255=binary, colours=colours)
        source = f"the training masks of {str(train.masks)!r}{drawn} (at most {MAX_MASKS} read)"
    elif (outlines := _outline_layout(folder, layout)) is not None:  # masks drawn from the outlines
        segmentation = layout in _OUTLINE_SEGMENTATION_LAYOUTS
        boxes = read_detection_split(  # the training split as training reads it (maybe drawn)
            folder,
            outlines,
            "train",
            with_masks=not segmentation,
            validation_fraction=validation_fraction,
            seed=split_seed,
            segmentation=segmentation,
        )
        counts = outline_pixel_counts(boxes)
        source = f"the masks drawn from the outlines of the training split of {root!r} (at most {MAX_MASKS} images read)"
    else:
        raise ConfigError(
            f"Config key {CLASS_WEIGHTS_KEY!r} is auto, which counts classes in image_folder, segmentation_folder, "
            "or the masks drawn from the outlines of COCO and YOLO data by task=multitask (coco_with_background, "
            "yolo_with_background) and task=segmentation (coco_segmentation, yolo_segmentation), not "
            f"{layout!r}; give the weights as a list instead."
        )
    return tuple(inverse_frequency_weights(counts, names, source))


def _outline_layout(folder: Path, layout: str) -> str | None:
    """The box layout (`coco`, `yolo`) whose outlines the masks of `layout` are drawn from: task=segmentation's
    (`coco_segmentation`, `yolo_segmentation`) or multitask's (a box layout or `auto` with `_with_background`, the
    data being COCO or YOLO); None for other layouts."""
    if layout in _OUTLINE_SEGMENTATION_LAYOUTS:
        return layout.removesuffix("_segmentation")
    if layout.removesuffix("_with_background") in BOX_LAYOUTS and layout.endswith("_with_background"):
        read = detect_detection_layout(folder, layout.removesuffix("_with_background"))
        return read if read in OUTLINE_LAYOUTS else None
    return None


@data_facts_kept()
def check_class_weights(config: Any, log: Callable[[str], Any] | None = None) -> dict[str, list[float]]:
    """Resolves, once and before anything is written, every class weight of `config`'s bricks that reads
    `loss.class_weights`, so a bad value fails here as one error naming that key.

    Args:
        config: A composed `train.yaml` config.
        log: Called with one line per brick naming its resolved weights (the training job's log).

    Returns:
        The config key of each brick's weights -> its resolved weights (empty when `loss.class_weights` is null).

    Raises:
        ConfigError: `loss.class_weights` is bad (see `class_weights_of`), or set while no brick reads it.
        DataError: The training split cannot be counted.
    """
    omegaconf = require("omegaconf", "hydra").OmegaConf
    spec = omegaconf.select(config, CLASS_WEIGHTS_KEY, default=None)
    if spec is None:
        return {}
    raw = omegaconf.to_container(config.model.bricks, resolve=False) if "bricks" in config.get("model", {}) else {}
    keys = [f"model.bricks.{path}" for path in _paths_reading(raw, _RESOLVER)]
    if not keys:  # heads composed apart (one per data source) hold their weights resolved already
        keys = [f"model.bricks.{path}" for path in _paths_of_weight_lists(raw)]
    if not keys:
        raise ConfigError(
            f"Config key {CLASS_WEIGHTS_KEY!r} is set, but no brick of this config reads it: the cross-entropy heads of "
            "task=classification, task=segmentation and task=multitask (its segmentation head) do."
        )
    resolved = {}
    for key in keys:
        try:
            value = omegaconf.select(config, key, throw_on_resolution_failure=True)
        except Exception as error:  # OmegaConf wraps what the resolver raised (which names the key), maybe twice
            cause: BaseException | None = error
            while cause is not None and not isinstance(cause, BrickError):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            raise cause from None
        resolved[key] = [float(weight) for weight in value]
        if log is not None:
            log(f"{key}: {resolved[key]} ({CLASS_WEIGHTS_KEY}={spec})")
    return resolved


def _paths_of_weight_lists(node: Any, prefix: str = "") -> list[str]:
    """The dotted paths of the `class_weights` lists of a plain nested container."""
    if not isinstance(node, dict):
        return []
    found = [f"{prefix}{key}" for key, child in node.items() if key == "class_weights" and isinstance(child, list)]
    return found + [path for key, child in node.items() for path in _paths_of_weight_lists(child, f"{prefix}{key}.")]


def _paths_reading(node: Any, resolver: str, prefix: str = "") -> list[str]:
    """The dotted paths of the string values of a plain nested container that call `resolver`."""
    if isinstance(node, dict):
        return [path for key, child in node.items() for path in _paths_reading(child, resolver, f"{prefix}{key}.")]
    if isinstance(node, str) and f"${{{resolver}:" in node:
        return [prefix.rstrip(".")]
    return []


_SAID_SIZES: set[tuple[tuple[str, str, int, int, float], str]] = set()
"""The image-size choices printed in this process (`ImageSizeChoice.describe` for the arguments), each once."""


@kept_for_one_job  # the config is resolved more than once by a job; images resized in between are measured again
def _chosen_size(layout: str, root: str, multiple: int, max_side: int, scale: float) -> ImageSizeChoice:
    return typical_image_size(layout, root, multiple=multiple, max_side=max_side, scale=scale)


def image_size_of(
    layout: str, root: str, multiple: int = 32, max_side: int = 512, tile_size: int | None = None, scale: float = 1.0
) -> int | list[int]:
    """The input size the training images of the data at `root` suggest, or `tile_size` when the images are cut into
    tiles (see the module docstring).

    Raises:
        ConfigError: An unknown layout, or a `tile_size` that is not an int >= 1 (the key `data.tile_size`).
        DataError: The training split is missing, empty or unreadable.
    """
    if tile_size is not None:
        if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
            raise ConfigError(
                f"Config key 'data.tile_size' must be null (whole images) or the side of a tile in pixels, an int >= 1, "
                f"got {type(tile_size).__name__} {tile_size!r}."
            )
        return tile_size
    key = (str(layout), str(Path(str(root)).resolve()), int(multiple), int(max_side), check_image_scale(scale))
    choice = _chosen_size(*key)
    said = (key, choice.describe())
    if said not in _SAID_SIZES:
        _SAID_SIZES.add(said)
        if launched_as_global_zero():
            print(said[1], flush=True)
    height, width = choice.size
    return height if height == width else [height, width]


def with_image_extent(tile_size: int | None, names: Sequence[str]) -> list[str]:
    """`names`, and the name of each tile's extent after them when the images are cut into tiles of `tile_size` (see
    the module docstring).

    Example:
        >>> with_image_extent(96, ["./boxes", "raw"]), with_image_extent(None, ["./boxes", "raw"])
        (['./boxes', 'raw', 'image_extent'], ['./boxes', 'raw'])
    """
    return [*names, IMAGE_EXTENT] if tile_size is not None else list(names)


def register_resolvers() -> None:
    """Registers the resolvers with OmegaConf (again, harmlessly, when already registered)."""
    omegaconf = require("omegaconf", "hydra").OmegaConf
    omegaconf.register_new_resolver("torchbricks_class_names", class_names_of, replace=True)
    omegaconf.register_new_resolver(
        "torchbricks_num_classes", lambda layout, root: len(class_names_of(layout, root)), replace=True
    )
    omegaconf.register_new_resolver("torchbricks_backbone", backbone_info, replace=True)
    omegaconf.register_new_resolver("torchbricks_segmentation_layout", segmentation_layout_of, replace=True)
    omegaconf.register_new_resolver(_RESOLVER, class_weights_of, replace=True)
    omegaconf.register_new_resolver("torchbricks_image_size", image_size_of, replace=True)
    omegaconf.register_new_resolver("torchbricks_with_image_extent", with_image_extent, replace=True)
