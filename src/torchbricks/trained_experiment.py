"""A trained experiment folder loaded back for use after training: `predict`, `evaluate` and `export` read it.

The main job writes two files for this when a run starts (`write_experiment_description`):

- `experiment.json`: the torchbricks version, the data module, the model's input size `[height, width]`, the class
  names of the data (and the COCO category ids, when the data has them), and the folder the training command ran
  in (`working_directory`), which a relative `data.root` is relative to, and the classes the training split has no
  example of (`classes_without_training_example`, box and mask data, when there are any; with `data.sources`,
  `head_classes_without_training_example`, those of each head's source);
- `resolved_config.yaml`: the composed config with every interpolation resolved, so the model is rebuilt without
  the training data (the class names are in it, not read again from `data.root`).

`load_experiment` reads a relative `data.root` (each source's too, with `data.sources`) from that folder, so
`evaluate`, `export` and the benchmarks find the data from any folder (from the current one when that folder is gone,
a project moved or renamed, as `resume=true` does: `recorded_working_directory`), and rebuilds the collection from
`resolved_config.yaml` and loads the trained weights: the
per-brick checkpoints of `bricks/` (written when fitting ends), or Lightning's `checkpoints/best.ckpt` when a
run stopped before writing them. The weights training started from (`model.weights`: a file, torchvision's
`DEFAULT`) are not read again: the trained ones replace them, and the file may be gone or the network absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from torchbricks._checkpoint import read_training_checkpoint
from torchbricks._conventions import of_head
from torchbricks._experiment import (
    BEST_CHECKPOINT,
    BRICKS_FOLDER,
    EXPERIMENT_FILE,
    RESOLVED_CONFIG_FILE,
    WORKING_DIRECTORY,
    check_trained_experiment_folder,
    chosen_task,
    config_file_text,
    load_config_file,
    read_experiment_description,
    recorded_working_directory,
    with_home_expanded,
    with_rooted_paths,
)
from torchbricks._extras import require
from torchbricks._files import write_json, write_text
from torchbricks.brick_collection import BrickCollection
from torchbricks.errors import CheckpointError, ConfigError

__all__ = [
    "DEPLOYED_KINDS",
    "EXPERIMENT_FILE",
    "RESOLVED_CONFIG_FILE",
    "WORKING_DIRECTORY",
    "TrainedExperiment",
    "describe_experiment",
    "find_heads",
    "load_experiment",
    "multilabel_threshold",
    "use_trained_memory_order",
    "with_rooted_paths",
    "without_initial_weights",
    "write_experiment_description",
]


DEPLOYED_KINDS = ("detection", "segmentation", "classification", "multilabel", "points", "count")
"""The head kinds (`torchbricks.heads`) that `predict`, `evaluate` and `export` serve: every registered kind."""


def use_trained_memory_order(collection: BrickCollection, config: Any) -> None:
    """Puts `collection` in the memory order its job trained and tested it in: `channels_last` when `config` (an
    experiment's resolved config, or None) says so. The same kernels as the test metrics, and faster convolutions on
    the CPU; `evaluate` and `predict` run a trained experiment this way."""
    if config is not None and config.get("channels_last", False):
        collection.to(memory_format=torch.channels_last)


def find_heads(output_names: list[str]) -> dict[str, str]:
    """The task heads among a collection's output names: head path -> kind, one of `DEPLOYED_KINDS`.

    A head is a nested collection whose outputs include every output of a registered head kind
    (`torchbricks.heads.find_heads`).

    Example:
        >>> find_heads(["features", "det/boxes", "det/scores", "det/labels", "cls/class_prediction", "cls/probabilities"])
        {'cls': 'classification', 'det': 'detection'}
    """
    from torchbricks.heads import find_heads as find_registered_heads

    return find_registered_heads(output_names, kinds=DEPLOYED_KINDS)


def decoder_iou_threshold(collection: BrickCollection, head: str) -> float:
    """The IoU threshold of the box decoder of a detection head (`torchbricks.bag_of_bricks.object_detection.BoxDecoder`):
    what merging the boxes of a tiled image suppresses at, in `predict` and in an exported file's metadata. 0.5 when the
    head has no decoder naming one."""
    for path, brick in collection.iter_bricks():
        threshold = getattr(getattr(brick, "model", None), "iou_threshold", None)
        if path.startswith(f"{head}/") and isinstance(threshold, float):
            return threshold
    return 0.5


def multilabel_threshold(collection: BrickCollection, head: str) -> float | None:
    """The probability above which a multilabel head's model decides a class is present (`MultiLabelClassifier`'s
    `threshold`, 0.5 by default and settable), read from the brick making `<head>/present`; None when its model
    names none."""
    for node in collection.plan().nodes:
        threshold = getattr(getattr(node.brick, "model", None), "threshold", None)
        if f"{head}/present" in node.outputs and isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            return float(threshold)
    return None


def describe_experiment(config: Any, data_module: Any) -> dict[str, Any]:
    """What `experiment.json` holds for a run of `config` on `data_module`."""
    import torchbricks

    description: dict[str, Any] = {
        "torchbricks_version": torchbricks.__version__,
        "data_module": f"{type(data_module).__module__}.{type(data_module).__qualname__}",
        "image_size": list(getattr(data_module, "image_size", ())) or None,
        WORKING_DIRECTORY: str(Path.cwd()),  # a relative data.root is read from here
    }
    class_names = getattr(data_module, "class_names", None)
    description["class_names"] = list(class_names) if isinstance(class_names, (list, tuple)) and class_names else None
    if isinstance(class_names, dict):  # several sources: the classes of each head
        description["head_class_names"] = {head: list(names) for head, names in class_names.items()}
    category_ids = getattr(data_module, "category_ids", None)
    if isinstance(category_ids, dict):  # several sources: the COCO ids of each head's classes
        description["head_category_ids"] = {head: [int(value) for value in ids] for head, ids in category_ids.items() if ids}
    elif category_ids:
        description["category_ids"] = [int(value) for value in category_ids]
    description.update(chosen_task(config))
    untrained = getattr(data_module, "classes_without_training_example", None)
    if isinstance(untrained, list) and untrained:  # the data module warned of them at the start of the run
        description["classes_without_training_example"] = list(untrained)
    elif isinstance(untrained, dict) and untrained:  # several sources: those of each head's source
        description["head_classes_without_training_example"] = {head: list(names) for head, names in untrained.items()}
    return description


def write_experiment_description(path_experiment: Path, config: Any, data_module: Any) -> None:
    """Writes `experiment.json` and `resolved_config.yaml` into the experiment folder (atomically)."""
    omegaconf = require("omegaconf", "hydra").OmegaConf
    write_json(path_experiment / EXPERIMENT_FILE, describe_experiment(config, data_module))
    resolved = omegaconf.create(omegaconf.to_container(config, resolve=True))
    write_text(path_experiment / RESOLVED_CONFIG_FILE, config_file_text(omegaconf.to_yaml(resolved)))


@dataclass
class TrainedExperiment:
    """A trained experiment: its folder, resolved config, description and the collection in eval mode."""

    folder: Path
    config: Any
    description: dict[str, Any]
    collection: BrickCollection = field(repr=False)

    @property
    def class_names(self) -> list[str] | None:
        """The class names of the training data (the COCO categories in id order for COCO data)."""
        return self.description.get("class_names")

    @property
    def category_ids(self) -> list[int] | None:
        """The COCO category id of each class, when the training data was COCO."""
        return self.description.get("category_ids")

    def head_class_names(self, head: str) -> list[str] | None:
        """The class names of `head`: those of its own data set when the experiment trained on several
        (`data.sources`, `experiment.json`'s `head_class_names`, by the head's path or its first name), else
        `class_names`."""
        return of_head(self.description.get("head_class_names"), head) or self.class_names

    def head_category_ids(self, head: str) -> list[int] | None:
        """The COCO category ids of `head`'s classes (its own data set's with `data.sources`), else `category_ids`."""
        return of_head(self.description.get("head_category_ids"), head) or self.category_ids

    @property
    def unlocated_data_root(self) -> str | None:
        """Why the training data (`data.root`) cannot be found from here: it does not exist, or it is relative to the
        folder training ran in, which the experiment does not record (one written before `experiment.json` kept it)
        or which is gone (read from the current folder then); None when it exists or there is none. The caller says
        what to pass instead."""
        root = self.config.get("data", {}).get("root")
        if root is None or "${" in str(root) or Path(str(root)).expanduser().exists():
            return None
        where = f"experiment {str(self.folder)!r} reads its data from {str(root)!r}"
        recorded = self.description.get(WORKING_DIRECTORY)
        if Path(str(root)).expanduser().is_absolute():
            return f"{where}, which does not exist"
        if not recorded:
            return (
                f"{where}, relative to the folder `torchbricks train` ran in, which the experiment does not record and "
                f"which is not {str(Path.cwd())!r}"
            )
        return (
            f"{where}, relative to the folder `torchbricks train` ran in, {str(recorded)!r}, which no longer exists, "
            f"and {str(Path.cwd())!r} does not hold it either"
        )

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(height, width)` the model's input images were resized to in training."""
        size = self.description.get("image_size")
        return (int(size[0]), int(size[1])) if size else None


def load_experiment(folder: Path | str, map_location: str | torch.device = "cpu") -> TrainedExperiment:
    """Loads the experiment in `folder` with its trained weights, in eval mode.

    Raises:
        ConfigError: `folder` is not a trained experiment: no `resolved_config.yaml` / `experiment.json` (written by
            torchbricks 0.5.0 and later), a `resolved_config.yaml` cut short (`load_config_file`), or no trained weights
            (`bricks/` or `checkpoints/best.ckpt`).
        CheckpointError: The weights cannot be read (a file cut short) or do not fit the model the config builds.
    """
    from torchbricks.configuration import create_brick_collection

    folder = Path(folder)
    check_trained_experiment_folder(folder)
    config = load_config_file(folder / RESOLVED_CONFIG_FILE, reader="load_experiment")
    description = read_experiment_description(folder, reader="load_experiment")
    recorded = recorded_working_directory(folder, description)  # None when gone (a project moved): read from here, as resume does
    if recorded is not None and "data" in config:
        config.data = with_rooted_paths(config.data, recorded)
    config = with_home_expanded(config)  # a data.root=~/photos the run was given (before the job expanded it)
    collection = create_brick_collection(without_initial_weights(config), "model.bricks")
    if (folder / BRICKS_FOLDER).is_dir():
        _load_trained_bricks(collection, folder)
    elif (folder / BEST_CHECKPOINT).is_file():
        _load_lightning_checkpoint(collection, folder / BEST_CHECKPOINT)
    else:
        raise ConfigError(
            f"Experiment {str(folder)!r} has no trained weights: neither {BRICKS_FOLDER}/ nor {BEST_CHECKPOINT}. "
            "Did its training finish?"
        )
    collection.to(map_location).eval()
    return TrainedExperiment(folder, config, description, collection)


def without_initial_weights(config: Any) -> Any:
    """A copy of `config` in which torchbricks' factories build their networks without the weights training
    started from: `weights` (a file, a folder, `DEFAULT`, `shapes`) becomes None and `pretrained` False.

    The trained weights replace them anyway; reading them again would fail once the file has moved, and would
    download torchvision's on every `predict`. Only targets in `torchbricks.` are changed (a user's own factory may
    mean something else by `weights`).

    Example:
        >>> from omegaconf import OmegaConf
        >>> backbone = {"_target_": "torchbricks.bag_of_bricks.create_task_backbone", "weights": "/gone.pt"}
        >>> config = OmegaConf.create({"backbone": backbone})
        >>> without_initial_weights(config).backbone.weights is None
        True
    """
    omegaconf = require("omegaconf", "hydra").OmegaConf
    container = omegaconf.to_container(config, resolve=False)

    def strip(node: Any) -> Any:
        if isinstance(node, list):
            return [strip(item) for item in node]
        if not isinstance(node, dict):
            return node
        ours = str(node.get("_target_", "")).startswith("torchbricks.")
        stripped = {key: strip(value) for key, value in node.items()}
        if ours and isinstance(stripped.get("weights"), str):
            stripped["weights"] = None
        if ours and stripped.get("pretrained") is True:
            stripped["pretrained"] = False
        return stripped

    return omegaconf.create(strip(container))


def _load_trained_bricks(collection: BrickCollection, folder: Path) -> None:
    """Loads `bricks/`; a brick with weights but no file there is an error (`missing="error"`), not a warning: its
    weights would be the untrained ones (the initial weights are not read, `without_initial_weights`)."""
    try:
        collection.load_bricks(folder / BRICKS_FOLDER, missing="error")
    except CheckpointError as error:
        raise CheckpointError(
            f"Cannot load the trained weights of experiment {str(folder)!r} (the bricks would predict with the "
            f"untrained ones): {error} Copy the experiment's {BRICKS_FOLDER}/ whole, as its training run wrote it."
        ) from error


def _load_lightning_checkpoint(collection: BrickCollection, path: Path) -> None:
    """Loads the bricks' weights of a Lightning checkpoint, each one checked (present, same shape) before any loads."""
    checkpoint = read_training_checkpoint(path)
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        raise CheckpointError(f"The training checkpoint {str(path)!r} has no 'state_dict' (it holds {list(checkpoint)[:10]}).")
    prefix = "brick_collection."
    state = {key[len(prefix) :]: value for key, value in saved.items() if key.startswith(prefix)}
    expected = collection.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise ConfigError(
            f"Experiment {str(path)!r} has no trained weights for {missing} (its weights are "
            f"{[key[len(prefix) :] for key in saved][:10]}); they would predict with untrained weights."
        )
    reshaped = [
        f"{key!r} has shape {list(state[key].shape)} there, the model expects {list(value.shape)}"
        for key, value in expected.items()
        if isinstance(value, torch.Tensor) and (not isinstance(state[key], torch.Tensor) or state[key].shape != value.shape)
    ]
    if reshaped:
        raise CheckpointError(
            f"The weights of {str(path)!r} do not fit the model its experiment's {RESOLVED_CONFIG_FILE} builds: "
            f"{'; '.join(reshaped[:3])}{' ...' if len(reshaped) > 3 else ''}. No weight was loaded."
        )
    collection.load_state_dict({key: state[key] for key in expected}, strict=True)
