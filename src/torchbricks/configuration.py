"""Models, data and trainers from Hydra configs: `_target_` nodes instantiated, errors naming the config key.

The configs shipped with the package live in `torchbricks/configs` (`train.yaml` and its groups `data`, `model`,
`head`, `trainer`, `optimizer`). A model config has a `bricks` node: every node in it with a `_target_` is a brick,
every node without one is a nested collection, so a head is a config group that can be added under any name
(`+head@model.bricks.head2=classification`).

Needs the `hydra` extra: `pip install "torchbricks[hydra]"`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchbricks._extras import require
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface
from torchbricks.errors import BrickError, ConfigError, did_you_mean

__all__ = ["CONFIG_DIR", "compose_config", "create_brick_collection", "instantiate_config"]

CONFIG_DIR = Path(__file__).parent / "configs"
"""The configs shipped with torchbricks."""


def compose_config(overrides: Sequence[str] = (), config_name: str = "train", config_dir: Path | str = CONFIG_DIR) -> Any:
    """Composes a config with Hydra's compose API (in-process: no working-directory change, no output folder).

    Args:
        overrides: Hydra overrides, as on the command line: `trainer.max_epochs=3`,
            `+head@model.bricks.head2=classification`.
        config_name: The primary config, without `.yaml`.
        config_dir: The folder of the primary config and its groups.

    Returns:
        The composed `omegaconf.DictConfig`.

    Raises:
        ConfigError: An override or a config cannot be composed; the message names the key.

    Example:
        >>> compose_config(["trainer.max_epochs=3"]).trainer.max_epochs
        3
    """
    hydra = require("hydra", "hydra")
    omegaconf_errors = require("omegaconf.errors", "hydra")
    hydra_errors = require("hydra.errors", "hydra")
    config_dir = Path(config_dir).resolve()
    if not (config_dir / f"{config_name}.yaml").is_file():
        available = sorted(path.stem for path in config_dir.glob("*.yaml"))
        raise ConfigError(
            f"No config {config_name!r} in {str(config_dir)!r}. Available: {available}.{did_you_mean(config_name, available)}"
        )
    global_hydra = require("hydra.core.global_hydra", "hydra").GlobalHydra
    outer = global_hydra.instance().hydra if global_hydra.instance().is_initialized() else None  # e.g. in @hydra.main
    global_hydra.instance().clear()
    try:
        with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None, job_name="torchbricks"):
            return hydra.compose(config_name=config_name, overrides=list(overrides))
    except (hydra_errors.HydraException, omegaconf_errors.OmegaConfBaseException) as error:
        raise ConfigError(f"Config {config_name!r} with overrides {list(overrides)} cannot be composed: {error}") from error
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
        allowed = _plain_types(hints.get(str(name)))
        if allowed is None or not isinstance(value, _PRIMITIVES):
            continue
        if isinstance(value, bool) and bool not in allowed:
            matches = False  # a bool is an int to isinstance, never to a config's author
        else:
            matches = isinstance(value, allowed) or (isinstance(value, int) and float in allowed)
        if not matches:
            expected = " or ".join(sorted("None" if kind is type(None) else kind.__name__ for kind in allowed))
            raise ConfigError(f"Config key '{key}.{name}' must be {expected}, got {type(value).__name__} {value!r}.")


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
