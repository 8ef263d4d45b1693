"""`torchbricks train task=multitask data.sources=[...]`: one backbone, one head per separately labelled data set.

`expand_sources` turns the multitask config with `data.sources` into the config the job runs:

- each source `{task: classification|segmentation|detection, root: DIR, name: HEAD, ...}` is composed as the
  single task would be (`task=<task> data.root=DIR`, the multitask config's backbone, scales, channels, image size
  and batch size, and the source's other keys as `data.<key>`), and its head is taken from that config with its
  classes resolved from its own data; the head is named `name` (the task by default);
- every source is read at one image size (the model takes one): `data.image_size` when given, else the largest of
  the sources' own defaults;
- each head reads its targets under names of its own (`<head>_targets`, `<head>_target_boxes`, ...), which its
  source's batches carry (`RenamedDataModule`), so no two sources' targets collide;
- the data becomes a `MultiSourceDataModule` (`data.mode`, `data.temperature`), and the job runs with
  `missing_targets: skip`, so each batch trains the model and only its own head's losses and metrics;
- `checkpoint.monitor` lists each head's main validation value (its single task's, such as
  `validation/detection/map_50`): best.ckpt and early stopping follow their mean, `validation/monitored_mean`.

A config without `data.sources` is returned as it is (the keys `sources`, `mode` and `temperature` are removed).
"""

from __future__ import annotations

from typing import Any

from torchbricks._extras import require
from torchbricks.errors import ConfigError, did_you_mean

__all__ = ["SOURCE_TASKS", "expand_sources"]

SOURCE_TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "classification": ("classification", ("targets",)),
    "segmentation": ("segmentation", ("targets",)),
    "detection": ("detection", ("target_boxes", "target_labels")),
}
"""Source task -> (its head's key under `model.bricks` in the task's config, the target names its batches carry)."""

_SHARED_MODEL_KEYS = ("backbone", "weights", "num_scales", "hidden_channels")
_SHARED_DATA_KEYS = ("image_size", "batch_size", "num_workers")
_MULTI_SOURCE_KEYS = ("sources", "mode", "temperature")


def expand_sources(config: Any) -> Any:
    """The job's config for `data.sources` (see the module docstring); `config` itself is not changed.

    Raises:
        ConfigError: A source without `task` or `root`, an unknown task (with the close match), two sources with one
            head name, or a source whose config cannot be composed (the message names `data.sources[i]`).
    """
    omegaconf = require("omegaconf", "hydra").OmegaConf
    open_dict = require("omegaconf", "hydra").open_dict
    if "data" not in config or config.data.get("sources") is None:
        if "data" in config and any(key in config.data for key in _MULTI_SOURCE_KEYS):
            config = config.copy()
            with open_dict(config):
                for key in _MULTI_SOURCE_KEYS:
                    config.data.pop(key, None)
        return config
    from torchbricks.configuration import compose_config

    sources = config.data.sources
    if not omegaconf.is_list(sources) or not sources:
        raise ConfigError(
            f"Config key 'data.sources' must be a list of sources such as [{{task: detection, root: DIR}}], got {sources!r}."
        )
    expanded = config.copy()
    heads: dict[str, Any] = {}
    data_sources: dict[str, Any] = {}
    monitors: list[str] = []
    for index, source in enumerate(sources):
        key = f"data.sources[{index}]"
        name, head, data, rename, monitor = _expand_source(config, source, key, compose_config)
        monitors.append(monitor)
        if name in heads:
            raise ConfigError(f"Config key {key!r}: two sources label head {name!r}; give one of them another `name`.")
        shared = [brick for brick, node in config.model.bricks.items() if "_target_" in node]  # kept beside the heads
        if name in shared:
            raise ConfigError(
                f"Config key {key!r} names its head {name!r}, the name of the model's shared brick {name!r} (the shared "
                f"bricks are {shared}), which the head would replace; give the source another `name`."
            )
        heads[name] = head
        data_sources[name] = {
            "_target_": "torchbricks.lightning.multi_source.RenamedDataModule",
            "data_module": data,
            "rename": rename,
        }
    _one_image_size(data_sources, config, sources)
    with open_dict(expanded):
        _replace_heads_and_data(expanded, config, heads, data_sources)
        # Each head's own main validation value, averaged: training stops when no head improves, not the first.
        expanded.checkpoint.monitor = monitors
        expanded.checkpoint.mode = "max"
    return expanded


def _one_image_size(data_sources: dict[str, Any], config: Any, sources: Any) -> None:
    """Gives every source one input size: the heads share one backbone, and `predict` and the export take one
    input size. Without `data.image_size`, each source's own default (from its images' median size and its task's
    scale) is computed, and the largest is taken for all, so that no source is read smaller than its own default.
    Sources given different sizes of their own are refused.

    Raises:
        ConfigError: Two sources set different `image_size`s.
    """
    sizes = {name: _pair(source["data_module"].get("image_size")) for name, source in data_sources.items()}
    given = {str(source.get("name", source.task)): _pair(source.image_size) for source in sources if "image_size" in source}
    if len(set(given.values())) > 1:
        raise ConfigError(
            f"Config key 'data.sources' sets image sizes {given}; the sources share one model, which takes one input "
            "size: give one data.image_size for all."
        )
    known = [size for size in sizes.values() if size is not None]
    if not known or len(set(known)) == 1 or _value(config.data, "image_size") is not None:
        return
    chosen = [size for size in given.values() if size is not None]
    shared = chosen[0] if chosen else max(known, key=lambda size: (size[0] * size[1], size))
    for source in data_sources.values():
        source["data_module"]["image_size"] = list(shared)


def _pair(size: Any) -> tuple[int, int] | None:
    """An image size (a side or [height, width]) as (height, width); None when unset."""
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    values = [int(side) for side in size]
    return (values[0], values[-1])


def _replace_heads_and_data(expanded: Any, config: Any, heads: dict[str, Any], data_sources: dict[str, Any]) -> None:
    """Keeps the preprocessor and backbone of `model.bricks` beside the sources' heads; the data reads the sources."""
    omegaconf = require("omegaconf", "hydra").OmegaConf
    kept = {name: brick for name, brick in config.model.bricks.items() if "_target_" in brick}  # preprocessor, backbone
    expanded.model.bricks = omegaconf.create({**omegaconf.to_container(omegaconf.create(kept)), **heads})
    expanded.data = omegaconf.create(
        {
            "_target_": "torchbricks.lightning.multi_source.MultiSourceDataModule",
            "sources": data_sources,
            "mode": str(config.data.get("mode", "max_size_cycle")),
            "temperature": float(config.data.get("temperature", 1.0)),
            "seed": int(config.get("seed", 0)),
        }
    )
    expanded.missing_targets = "skip"
    if expanded.data.mode in ("sequential", "temperature") and expanded.trainer.get("strategy") == "ddp":
        expanded.trainer.strategy = "ddp_find_unused_parameters_true"  # a step runs one source: other heads get no gradient
    # The model's facts that read the single data root (its classes, its layout) mean nothing with several sources:
    # each head holds its own. The others (the backbone's features and channels) are kept, resolved.
    errors = require("omegaconf.errors", "hydra")
    for item in [item for item in config.model if item != "bricks"]:
        try:
            value = config.model[item]
            expanded.model[item] = omegaconf.to_container(value, resolve=True) if omegaconf.is_config(value) else value
        except errors.OmegaConfBaseException:
            del expanded.model[item]


def _expand_source(config: Any, source: Any, key: str, compose: Any) -> tuple[str, Any, Any, dict[str, str], str]:
    from torchbricks.configuration.compose import override_string

    omegaconf = require("omegaconf", "hydra").OmegaConf
    if not omegaconf.is_dict(source) or "task" not in source or "root" not in source:
        raise ConfigError(f"Config key {key!r} must be a source {{task: ..., root: DIR}}, got {source!r}.")
    task = str(source.task)
    if task not in SOURCE_TASKS:
        raise ConfigError(
            f"Config key '{key}.task' is {task!r}; a source labels one of {list(SOURCE_TASKS)}.{did_you_mean(task, SOURCE_TASKS)}"
        )
    head_key, target_names = SOURCE_TASKS[task]
    name = str(source.get("name", task))
    overrides = [f"task={task}", f"data.root={override_string(str(source.root))}"]  # a folder `export (1)` too
    overrides += [f"model.{item}={value}" for item in _SHARED_MODEL_KEYS if (value := _value(config.model, item)) is not None]
    overrides += [f"data.{item}={value}" for item in _SHARED_DATA_KEYS if (value := _value(config.data, item)) is not None]
    overrides += [f"data.{item}={_value(source, item)}" for item in source if item not in ("task", "root", "name")]
    if task != "detection" and "loss" in config and (weights := _value(config.loss, "class_weights")) not in (None, "null"):
        overrides.append(f"loss.class_weights={weights}")  # each head weighs the classes of its own source
    try:
        single = compose(overrides)
        head = omegaconf.to_container(single.model.bricks[head_key], resolve=True)
        data = omegaconf.to_container(single.data, resolve=True)
        monitor = str(single.checkpoint.monitor).replace(f"validation/{head_key}/", f"validation/{name}/", 1)
    except Exception as error:
        raise ConfigError(f"Config key {key!r} ({task} from {str(source.root)!r}) cannot be composed: {error}") from error
    rename = {target: f"{name}_{target}" for target in target_names}
    return name, _renamed_inputs(head, rename), data, rename, monitor


def _value(node: Any, key: str) -> str | None:
    """`node[key]` as a Hydra override's right-hand side; None when it is missing or depends on `data.root`."""
    omegaconf = require("omegaconf", "hydra")
    try:
        value = node[key]
        if omegaconf.OmegaConf.is_config(value):
            value = omegaconf.OmegaConf.to_container(value, resolve=True)
    except (KeyError, omegaconf.errors.OmegaConfBaseException):
        return None
    if isinstance(value, (list, dict)):
        return str(value).replace("'", "")
    return "null" if value is None else str(value)


def _renamed_inputs(node: Any, rename: dict[str, str]) -> Any:
    """`node` with every name in an `input_names` list or dict renamed by `rename`."""
    if isinstance(node, dict):
        renamed: dict[Any, Any] = {}
        for item, value in node.items():
            if item == "input_names" and isinstance(value, list):
                renamed[item] = [rename.get(name, name) if isinstance(name, str) else name for name in value]
            elif item == "input_names" and isinstance(value, dict):
                renamed[item] = {argument: rename.get(name, name) for argument, name in value.items()}
            else:
                renamed[item] = _renamed_inputs(value, rename)
        return renamed
    if isinstance(node, list):
        return [_renamed_inputs(item, rename) for item in node]
    return node
