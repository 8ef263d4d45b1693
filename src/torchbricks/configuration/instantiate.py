"""Instantiating `_target_` nodes of a composed config: bricks, data, trainers, optimizers, with errors naming the key.

Plain values are checked against the target's annotations and the minimums of `torchbricks.configuration.settings`
before the target is called, so `trainer.max_epochs=abc` fails at its key instead of deep inside Lightning.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from torchbricks._extras import require
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface
from torchbricks.configuration.settings import PARAMETER_MINIMUMS
from torchbricks.errors import BrickError, ConfigError, DataError, did_you_mean

__all__ = ["create_brick_collection", "instantiate_config"]


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
        >>> from torchbricks.configuration import compose_config
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
        data_error = _data_error_within(error)
        if data_error is not None:  # the data, not the config, is wrong: its own message says which file and why
            raise data_error from error
        keyed = _keyed_config_error_within(error)
        if keyed is not None:  # the target (or a resolver of the data) named the key itself
            raise keyed from keyed.__cause__
        named = _argument_named_by(error.__cause__, node, key)
        if named is not None:  # the target's own message about one of its arguments: the key of that argument
            raise ConfigError(f"Config key {named[0]!r}: {named[1]}") from error
        full_key, reason = _hydra_reason(error)
        full_key = _list_item_key(node, full_key)
        raise ConfigError(f"Config key {(full_key or key)!r} cannot be instantiated: {reason}") from error


def _argument_named_by(cause: BaseException | None, node: Any, key: str) -> tuple[str, str] | None:
    """(`key.argument`, message) when the target refused one of its arguments with a message that starts with the
    argument's name (`BrickError('image_size must be a positive int ...')`); None otherwise. Hydra's message named
    only the node (`Config key 'data' cannot be instantiated: Error in call to target ...`)."""
    if not isinstance(cause, (BrickError, ValueError)) or not hasattr(node, "keys"):
        return None
    message = str(cause).strip()
    name = message.split(" ", 1)[0]
    if name.startswith("_") or name not in node or not message.startswith(f"{name} "):
        return None
    return f"{key}.{name}", message


def _keyed_config_error_within(error: BaseException) -> ConfigError | None:
    """A `ConfigError` naming its key (`Config key 'data.image_scale' must be ...`) raised inside Hydra's or
    OmegaConf's wrapping error, by a target or an interpolation's resolver; None if there is none."""
    seen: set[int] = set()
    current: BaseException | None = error.__cause__ or error.__context__
    while current is not None and id(current) not in seen:
        if isinstance(current, ConfigError) and str(current).startswith("Config key "):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _data_error_within(error: BaseException) -> DataError | None:
    """The `DataError` a target (or a resolver) raised inside Hydra's or OmegaConf's wrapping error, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DataError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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


def _check_minimum(key: str, name: str, value: Any) -> None:
    minimum = PARAMETER_MINIMUMS.get(name)
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


def _list_item_key(node: Any, full_key: str | None) -> str | None:
    """Hydra names an item of a list without a separator (`data.augmentations0`); as the command line names it,
    `data.augmentations.0`. A key only ends in an index when the config holds a list at the key before it."""
    import re

    omegaconf = require("omegaconf", "hydra")
    match = re.fullmatch(r"(.*\D)(\d+)", full_key or "")
    if match is None:
        return full_key
    try:
        parent = omegaconf.OmegaConf.select(node._get_root(), match.group(1))
    except Exception:  # a key OmegaConf cannot select: keep Hydra's
        return full_key
    return f"{match.group(1)}.{match.group(2)}" if isinstance(parent, omegaconf.ListConfig) else full_key


def _hydra_reason(error: Exception) -> tuple[str | None, str]:
    """Hydra's message without its `full_key:` line and its hint about HYDRA_FULL_ERROR, and without the indented
    `full_key:` and `object_type=` lines of an OmegaConf error it holds (an interpolation's); plus Hydra's full key."""
    full_key = None
    reasons = []
    for line in str(error).strip().splitlines():
        if line.startswith("full_key:"):
            full_key = line.removeprefix("full_key:").strip()
        elif line.strip() and not line.strip().startswith(("full_key:", "object_type=", "reference_type=")):
            reasons.append(line.replace(", set env var HYDRA_FULL_ERROR=1 to see chained exception", "").strip())
    return full_key, " ".join(reasons) or type(error).__name__


def _describe(node: Any) -> str:
    return f"{type(node).__name__} {node!r}"
