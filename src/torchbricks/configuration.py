"""Models, data and trainers from Hydra configs: `_target_` nodes instantiated, errors naming the config key.

The configs shipped with the package live in `torchbricks/configs` (`train.yaml` and its groups `data`, `model`,
`head`, `trainer`, `optimizer`). A model config has a `bricks` node: every node in it with a `_target_` is a brick,
every node without one is a nested collection, so a head is a config group that can be added under any name
(`+head@model.bricks.head2=classification`).

Needs the `hydra` extra: `pip install "torchbricks[hydra]"`.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchbricks._extras import require
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface
from torchbricks.errors import BrickError, ConfigError, did_you_mean

__all__ = [
    "CONFIG_DIR",
    "check_classes_cover_data",
    "check_optimizer_factory",
    "check_train_config",
    "compose_config",
    "create_brick_collection",
    "instantiate_config",
]

CONFIG_DIR = Path(__file__).parent / "configs"
"""The configs shipped with torchbricks."""


FREE_FORM_KEYS = ("loss_weights",)
"""Config keys holding a dict the user fills (loss name -> weight): set without Hydra's `+`, e.g.
`loss_weights={head/loss_ce: 0.5}`."""


def compose_config(
    overrides: Sequence[str] = (),
    config_name: str = "train",
    config_dir: Path | str = CONFIG_DIR,
    extra_config_dirs: Sequence[Path | str] = (),
) -> Any:
    """Composes a config with Hydra's compose API (in-process: no working-directory change, no output folder).

    Args:
        overrides: Hydra overrides, as on the command line: `trainer.max_epochs=3`,
            `+head@model.bricks.head2=classification`.
        config_name: The primary config, without `.yaml`.
        config_dir: The folder of the primary config and its groups.
        extra_config_dirs: More folders of configs (Hydra's `--config-dir`), added to those of `config_dir`: a new
            model, head, optimizer or primary config. They are searched after the folder holding the primary
            config, so a file of the same name in `config_dir` wins unless the primary config is theirs.

    Returns:
        The composed `omegaconf.DictConfig`.

    Raises:
        ConfigError: An override or a config cannot be composed; the message names the key.

    Example:
        >>> compose_config(["trainer.max_epochs=3"]).trainer.max_epochs
        3
    """
    config_dir = Path(config_dir).resolve()
    extra_dirs = [Path(directory).resolve() for directory in extra_config_dirs]
    for directory in extra_dirs:
        if not directory.is_dir():
            raise ConfigError(f"The config folder {str(directory)!r} does not exist.")
    search = [config_dir, *extra_dirs]
    primary_dir = next((directory for directory in search if (directory / f"{config_name}.yaml").is_file()), None)
    if primary_dir is None:
        available = sorted({path.stem for directory in search for path in directory.glob("*.yaml")})
        raise ConfigError(
            f"No config {config_name!r} in {[str(directory) for directory in search]}. Available: {available}."
            f"{did_you_mean(config_name, available)}"
        )
    overrides = [_free_form(override) for override in overrides]
    others = [directory for directory in search if directory != primary_dir]
    if others:  # searched after the primary config's folder, like Hydra's own --config-dir
        overrides.append(f"hydra.searchpath=[{','.join(repr(directory.as_uri()) for directory in others)}]")
    try:
        return _compose(primary_dir, config_name, overrides)
    except ConfigError as error:
        unknown = _unknown_key(error)
        if unknown is None:
            raise
        raise _unknown_key_error(unknown, primary_dir, config_name, overrides) from error


def _compose(config_dir: Path, config_name: str, overrides: list[str]) -> Any:
    hydra = require("hydra", "hydra")
    omegaconf_errors = require("omegaconf.errors", "hydra")
    hydra_errors = require("hydra.errors", "hydra")
    global_hydra = require("hydra.core.global_hydra", "hydra").GlobalHydra
    outer = global_hydra.instance().hydra if global_hydra.instance().is_initialized() else None  # e.g. in @hydra.main
    global_hydra.instance().clear()
    try:
        with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None, job_name="torchbricks"):
            return hydra.compose(config_name=config_name, overrides=list(overrides))
    except (hydra_errors.HydraException, omegaconf_errors.OmegaConfBaseException) as error:
        shown = [override for override in overrides if not override.startswith("hydra.searchpath=")]
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("See https"))
        raise ConfigError(f"Config {config_name!r} with overrides {shown} cannot be composed: {reason}") from error
    finally:
        if outer is not None:  # the context manager restored a copy of the cleared instance: fill that one
            global_hydra.instance().clear()
            global_hydra.instance().initialize(outer)


def instantiate_config(config: Any, key: str, **kwargs: Any) -> Any:
    """Instantiates the `_target_` node at `key` (a dotted path such as `model.bricks.backbone`) of `config`.

    Containers are passed as plain lists and dicts (`_convert_="all"`), so bricks see ordinary names.

    Raises:
        ConfigError: The key is missing or the node cannot be instantiated; the message names the key.
    """
    node = _select(config, key)
    return _instantiate(node, key, **kwargs)


def create_brick_collection(config: Any, key: str = "model.bricks") -> BrickCollection:
    """Builds the `BrickCollection` described by the node at `key` of `config`.

    Each node with a `_target_` must instantiate to a brick; each node without one is a nested collection.

    Raises:
        ConfigError: A node is missing, cannot be instantiated or is not a brick; the message names its key.

    Example:
        >>> collection = create_brick_collection(compose_config())
        >>> [path for path, _ in collection.iter_bricks()][:2]
        ['preprocessor', 'backbone']
    """
    omegaconf = require("omegaconf", "hydra")
    node = _select(config, key)
    if not isinstance(node, omegaconf.DictConfig) or "_target_" in node:
        raise ConfigError(f"Config key {key!r} must be a dict of brick name -> brick config, got {_describe(node)}.")
    bricks = _instantiate_bricks(node, key)
    try:
        return BrickCollection(bricks)
    except BrickError as error:
        if hasattr(error, "add_note"):  # add_note: 3.11+
            error.add_note(f"while building the brick collection of config key {key!r}")
        raise


def _instantiate_bricks(node: Any, key: str) -> dict[str, Any]:
    omegaconf = require("omegaconf", "hydra")
    bricks: dict[str, Any] = {}
    for name, child in node.items():
        child_key = f"{key}.{name}"
        if not isinstance(child, omegaconf.DictConfig):
            raise ConfigError(
                f"Config key {child_key!r} must be a brick config (with _target_) or a dict of them, got {_describe(child)}."
            )
        if "_target_" not in child:
            bricks[str(name)] = _instantiate_bricks(child, child_key)
            continue
        brick = _instantiate(child, child_key)
        if not isinstance(brick, BrickInterface):
            raise ConfigError(
                f"Config key {child_key!r} made a {type(brick).__name__} ({child._target_}), not a brick; "
                "wrap modules in a brick, e.g. _target_: torchbricks.bricks.BrickTrainable with model: {_target_: ...}."
            )
        bricks[str(name)] = brick
    return bricks


def _select(config: Any, key: str) -> Any:
    omegaconf = require("omegaconf", "hydra")
    node = config
    walked: list[str] = []
    for part in key.split("."):
        if not isinstance(node, omegaconf.DictConfig) or part not in node:
            available = [str(name) for name in node] if isinstance(node, omegaconf.DictConfig) else []
            where = ".".join(walked) or "the config"
            raise ConfigError(
                f"Config key {key!r} is missing: {where} has no {part!r}. Available: {available}.{did_you_mean(part, available)}"
            )
        node = node[part]
        walked.append(part)
    return node


def _instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    hydra_utils = require("hydra.utils", "hydra")
    hydra_errors = require("hydra.errors", "hydra")
    omegaconf_errors = require("omegaconf.errors", "hydra")
    try:
        _check_argument_types(node, key, hydra_utils.get_object(node._target_))
        return hydra_utils.instantiate(node, _convert_="all", **kwargs)
    except (hydra_errors.HydraException, omegaconf_errors.OmegaConfBaseException) as error:
        full_key, reason = _hydra_reason(error)
        raise ConfigError(f"Config key {(full_key or key)!r} cannot be instantiated: {reason}") from error


_PRIMITIVES = (bool, int, float, str, type(None))


def _check_argument_types(node: Any, key: str, target: Any) -> None:
    """Rejects a plain value (a number, a string) whose parameter is annotated with plain types it does not match.

    Without this a typo such as `trainer.max_epochs=abc` passes instantiation and fails much later, deep inside
    the target, without naming the key. Parameters with other annotations (classes, containers, Any) are left
    to the target.
    """
    try:
        function = typing.cast(Any, target).__init__ if isinstance(target, type) else target
        hints = typing.get_type_hints(function)
    except Exception:  # annotations that do not resolve leave nothing to check against
        return
    for name, value in node.items():
        _check_minimum(f"{key}.{name}", str(name), value)
        hint = hints.get(str(name))
        allowed = _plain_types(hint)
        if allowed is None and isinstance(value, str) and _rejects_strings(hint):
            expected = " or ".join(_type_name(kind) for kind in _union_arguments(hint))
            raise ConfigError(f"Config key '{key}.{name}' must be {expected}, got str {value!r}.")
        if allowed is None or not isinstance(value, _PRIMITIVES):
            continue
        if isinstance(value, bool) and bool not in allowed:
            matches = False  # a bool is an int to isinstance, never to a config's author
        else:
            matches = isinstance(value, allowed) or (isinstance(value, int) and float in allowed)
        if not matches:
            expected = " or ".join(sorted("None" if kind is type(None) else kind.__name__ for kind in allowed))
            raise ConfigError(f"Config key '{key}.{name}' must be {expected}, got {type(value).__name__} {value!r}.")


_MINIMUM = {"batch_size": 1, "num_workers": 0, "num_classes": 1, "n_features": 1}
"""Lower bounds of integer parameters whatever their target: the names mean the same everywhere in torchbricks'
configs, and a bad value would otherwise fail far from its key (a data loader in the first epoch)."""


def _check_minimum(key: str, name: str, value: Any) -> None:
    minimum = _MINIMUM.get(name)
    if minimum is not None and isinstance(value, int) and not isinstance(value, bool) and value < minimum:
        raise ConfigError(f"Config key {key!r} must be an int >= {minimum}, got {value}.")


def _union_arguments(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _rejects_strings(hint: Any) -> bool:
    """True for a hint made of numbers and classes that no string is (`float | Tensor`, as torch's `lr`)."""
    if hint is None:
        return False
    arguments = _union_arguments(hint)
    if not all(isinstance(argument, type) for argument in arguments):
        return False  # Any, Literal, containers, type variables: leave them to the target
    has_number = any(issubclass(argument, (int, float)) for argument in arguments)
    return has_number and not any(issubclass(str, argument) or issubclass(argument, str) for argument in arguments)


def _type_name(kind: Any) -> str:
    return "None" if kind is type(None) else getattr(kind, "__name__", str(kind))


def _plain_types(hint: Any) -> tuple[type, ...] | None:
    """The plain types a hint allows (`int | None` -> (int, NoneType)), or None when it allows anything else."""
    if hint is None:
        return None
    arguments = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if all(argument in _PRIMITIVES for argument in arguments):
        return tuple(arguments)
    return None


def _hydra_reason(error: Exception) -> tuple[str | None, str]:
    """Hydra's message without its `full_key:` line and its hint about HYDRA_FULL_ERROR; plus that full key."""
    full_key = None
    reasons = []
    for line in str(error).strip().splitlines():
        if line.startswith("full_key:"):
            full_key = line.removeprefix("full_key:").strip()
        elif line.strip():
            reasons.append(line.replace(", set env var HYDRA_FULL_ERROR=1 to see chained exception", "").strip())
    return full_key, " ".join(reasons) or type(error).__name__


def _describe(node: Any) -> str:
    return f"{type(node).__name__} {node!r}"


def _free_form(override: str) -> str:
    """`loss_weights={...}` -> `++loss_weights={...}`: keys of a free-form dict can be added without `+`."""
    key = override.split("=", 1)[0]
    if key.split(".", 1)[0] in FREE_FORM_KEYS and not key.startswith(("+", "~")):
        return "++" + override
    return override


def _unknown_key(error: ConfigError) -> str | None:
    """The key of an override Hydra refused because the config lacks it (it then advises `+`), or None."""
    match = re.search(r"Could not override '([^']+)'\. To append to your config use \+", str(error))
    return match.group(1) if match else None


def _unknown_key_error(key: str, config_dir: Path, config_name: str, overrides: list[str]) -> ConfigError:
    """A one-line error for an override of a key the config lacks, with the close key instead of Hydra's `+` advice."""
    omegaconf = require("omegaconf", "hydra")
    others = [override for override in overrides if override.split("=", 1)[0].lstrip("+~") != key]
    try:
        config = _compose(config_dir, config_name, others)
    except ConfigError:
        return ConfigError(f"Config key {key!r} does not exist.")
    node, walked = config, []
    for part in key.split("."):
        if not isinstance(node, omegaconf.DictConfig) or part not in node:
            break
        node = node[part]
        walked.append(part)
    parent = ".".join(walked)
    missing = key.split(".")[len(walked)]
    where = parent or "the config"
    prefix = f"{parent}." if parent else ""
    keys = [str(name) for name in node] if isinstance(node, omegaconf.DictConfig) else []
    keys = [name for name in keys if not name.startswith("_")]
    parameters = _target_parameters(node)
    if missing in parameters:
        value = next(override.split("=", 1)[1] for override in overrides if override.split("=", 1)[0] == key)
        return ConfigError(
            f"Config key {key!r} is not set in the config, but {node._target_} takes {missing!r}: add it with '+{key}={value}'."
        )
    hint = did_you_mean(key, [f"{prefix}{name}" for name in [*keys, *parameters] if not name.startswith("_")])
    return ConfigError(f"Config key {key!r} does not exist: {where} has no {missing!r}.{hint} Available: {keys}.")


def _target_parameters(node: Any) -> list[str]:
    omegaconf = require("omegaconf", "hydra")
    if not isinstance(node, omegaconf.DictConfig) or "_target_" not in node:
        return []
    try:
        target = require("hydra.utils", "hydra").get_object(node._target_)
        signature = inspect.signature(target)
    except Exception:  # a target that does not import or has no signature offers nothing to suggest
        return []
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [name for name, parameter in signature.parameters.items() if parameter.kind not in variadic]


def check_train_config(config: Any) -> None:
    """Checks the plain values of a `train.yaml` config (seed, n_visualized, export_onnx, loss_weights, the data's
    tile_size and tile_overlap) by key.

    Raises:
        ConfigError: A value has the wrong type or range; the message names the key.
    """
    omegaconf = require("omegaconf", "hydra")
    seed = config.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"Config key 'seed' must be an int, got {type(seed).__name__} {seed!r}.")
    n_visualized = config.get("n_visualized", 0)
    if isinstance(n_visualized, bool) or not isinstance(n_visualized, int) or n_visualized < 0:
        raise ConfigError(f"Config key 'n_visualized' must be an int >= 0, got {type(n_visualized).__name__} {n_visualized!r}.")
    if not isinstance(config.get("export_onnx", True), bool):
        raise ConfigError(f"Config key 'export_onnx' must be true or false, got {config.export_onnx!r}.")
    weights = config.get("loss_weights")
    if weights is not None and not isinstance(weights, omegaconf.DictConfig):
        raise ConfigError(f"Config key 'loss_weights' must be a dict of loss name -> weight, got {weights!r}.")
    for name, weight in (weights or {}).items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"Config key 'loss_weights.{name}' must be a number, got {type(weight).__name__} {weight!r}.")
    _check_tiling(config.get("data"))


def _check_tiling(data: Any) -> None:
    """`data.tile_size` null or a side of 1 pixel or more, `data.tile_overlap` in [0, 1), and a data module that tiles."""
    omegaconf = require("omegaconf", "hydra")
    if not isinstance(data, omegaconf.DictConfig) or data.get("tile_size") is None:
        return
    tile_size, overlap = data.tile_size, data.get("tile_overlap", 0.2)
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
        raise ConfigError(
            f"Config key 'data.tile_size' must be null (whole images) or the side of a tile in pixels, an int >= 1, "
            f"got {type(tile_size).__name__} {tile_size!r}."
        )
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0 <= overlap < 1:
        raise ConfigError(
            f"Config key 'data.tile_overlap' must be the fraction of a tile shared by its neighbours, in [0, 1), "
            f"got {type(overlap).__name__} {overlap!r}."
        )
    try:
        target = require("hydra.utils", "hydra").get_object(str(data._target_))
    except Exception:  # a target that does not import is reported, by key, when the data is instantiated
        return
    if not getattr(target, "supports_tiling", False):
        reason = getattr(target, "why_not_tiled", "it reads whole images.")
        raise ConfigError(f"Config key 'data.tile_size' is {tile_size}, but {target.__name__} does not tile images: {reason}")


def check_optimizer_factory(create_optimizer: Any, key: str = "optimizer") -> None:
    """Builds the optimizer once on a throw-away parameter, so a bad value (`optimizer.lr=-1`) is reported by key
    before training instead of from inside `configure_optimizers`.

    Raises:
        ConfigError: The optimizer cannot be built; the message names the key and the optimizer's reason.
    """
    import torch

    try:
        create_optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Config key {key!r} does not make an optimizer: {error}") from error


def check_classes_cover_data(data_module: Any, collection: BrickCollection, key: str = "model.num_classes") -> None:
    """Checks that every classification layer and metric of `collection` has at least as many classes as the data,
    before training (otherwise the first target beyond the head's classes fails mid-epoch with "Target 9 is out of
    bounds"). More classes than the data is allowed (a segmentation head counting the background, a spare class).

    The data's classes come from its `num_classes` or `class_names` attribute; without either nothing is checked.

    Raises:
        ConfigError: A brick has fewer classes than the data; the message names `key` and the brick.
    """
    expected = _data_classes(data_module)
    if expected is None:
        return
    for path, brick in collection.iter_bricks():
        for owner, classes in _brick_classes(brick):
            if classes < expected:
                raise ConfigError(
                    f"Config key {key!r}: brick {path!r} ({owner}) has {classes} classes, but the data "
                    f"({type(data_module).__name__}) has {expected}; set {key}={expected}."
                )


def _data_classes(data_module: Any) -> int | None:
    classes = getattr(data_module, "num_classes", None)
    if isinstance(classes, int) and not isinstance(classes, bool):
        return classes
    names = getattr(data_module, "class_names", None)
    if isinstance(names, (list, tuple)) and names:
        return len(names)
    return None


def _brick_classes(brick: Any) -> list[tuple[str, int]]:
    """(what, number of classes) of the modules of a brick that classify: classifiers and torchmetrics metrics."""
    found: list[tuple[str, int]] = []
    for module in brick.modules():
        classes = getattr(module, "num_classes", None)
        if isinstance(classes, int) and not isinstance(classes, bool):
            found.append((type(module).__name__, classes))
    return found
