"""Checks of single values of the job's config, each raising one `ConfigError` that names the key
(`torchbricks.configuration.settings` reads the sections with them)."""

from __future__ import annotations

from typing import Any

from torchbricks.errors import ConfigError, did_you_mean

__all__ = ["choice", "flag", "is_int", "is_number", "loss_balancing", "read_loss_weights"]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flag(node: Any, name: str, default: bool, prefix: str = "") -> bool:
    value = node.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"Config key '{prefix}{name}' must be true or false, got {value!r}.")
    return value


def choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"Config key {key!r} must be one of {list(choices)}, got {value!r}.{did_you_mean(str(value), choices)}")
    return str(value)


def read_loss_weights(weights: Any, omegaconf: Any) -> dict[str, float]:
    """Loss name -> weight. A nested dict is a loss path (`loss_weights.head.loss_ce=2`, as `head/loss_ce`): the
    command line cannot spell `/` in a key, and brick names never hold a `.`."""
    if weights is not None and not isinstance(weights, omegaconf.DictConfig):
        raise ConfigError(f"Config key 'loss_weights' must be a dict of loss name -> weight, got {weights!r}.")
    flat: dict[str, float] = {}
    pending = [(str(name), weight) for name, weight in (weights or {}).items()]
    while pending:
        name, weight = pending.pop(0)
        if isinstance(weight, omegaconf.DictConfig):
            pending.extend((f"{name}/{inner}", value) for inner, value in weight.items())
            continue
        if not is_number(weight):
            raise ConfigError(f"Config key 'loss_weights.{name}' must be a number, got {type(weight).__name__} {weight!r}.")
        if name in flat:
            raise ConfigError(f"Config key 'loss_weights' gives loss {name!r} twice.")
        flat[name] = float(weight)
    return flat


def loss_balancing(config: Any, loss_weights: dict[str, float]) -> str:
    from torchbricks.loss_balancing import BALANCERS

    strategy = str(config.get("loss_balancing", "fixed"))
    if strategy not in BALANCERS:
        raise ConfigError(
            f"Config key 'loss_balancing': Unknown loss balancing {strategy!r}. Available: {list(BALANCERS)}."
            f"{did_you_mean(strategy, BALANCERS)}"
        )
    if strategy != "fixed" and loss_weights:
        raise ConfigError(
            f"Config key 'loss_weights' applies to loss_balancing=fixed; loss_balancing={strategy} sets its own weights."
        )
    return strategy
