"""Composing the job's config with Hydra's compose API, with one-line errors naming the key of a bad override."""

from __future__ import annotations

import inspect
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchbricks._extras import require
from torchbricks.errors import ConfigError, did_you_mean

__all__ = ["CONFIG_DIR", "FREE_FORM_KEYS", "compose_config", "override_string"]

CONFIG_DIR = Path(__file__).parents[1] / "configs"
"""The configs shipped with torchbricks."""

FREE_FORM_KEYS = ("loss_weights",)
"""Config keys holding a dict the user fills (loss name -> weight): set without Hydra's `+`, e.g.
`loss_weights={head/loss_ce: 0.5}` or `loss_weights.head/loss_ce=0.5`."""


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
    _check_head_names(search)
    for override in overrides:
        if override.lstrip("+~").startswith("hydra."):  # the compose API has no run folder, launcher or sweep
            raise ConfigError(
                f"The override {override!r} sets Hydra's own config, which torchbricks does not use (it composes the "
                "config without a Hydra run). The run's folder is experiment.path_experiments/experiment.name; "
                "more config folders come with --config-dir."
            )
    overrides = [_home_quoted(_free_form(override)) for override in overrides]
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
    _store_head_configs()
    try:
        with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None, job_name="torchbricks"):
            composed = hydra.compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
            return _with_task_recorded(composed)
    except (hydra_errors.HydraException, omegaconf_errors.OmegaConfBaseException) as error:
        unread = getattr(error, "override", None) if isinstance(error, hydra_errors.OverrideParseException) else None
        quoted = _quoted(unread)
        if quoted is not None:
            raise ConfigError(
                f"The override {error.override!r} cannot be read: Hydra's override grammar reads a value with non-ASCII "
                f"letters or any of ~ ' # [ ] = ( ) only in quotes: {quoted} (on a shell's command line, "
                f"{_shell_quoted(quoted)})."
            ) from error
        missing, options = getattr(error, "missing_cfg_file", None), getattr(error, "options", None)
        if isinstance(error, hydra_errors.MissingConfigException) and missing and "/" in missing and options:
            group, _, option = missing.rpartition("/")
            raise ConfigError(
                f"Config group {group!r} has no option {option!r}. Available: {sorted(options)}.{did_you_mean(option, options)}"
            ) from error
        shown = [override for override in overrides if not override.startswith("hydra.searchpath=")]
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("See https"))
        cause = error.__cause__  # Hydra's "Error merging override ..." keeps the reason in the error it chains
        if cause is not None and str(cause).strip():
            reason += f": {str(cause).strip().splitlines()[0]}"
        raise ConfigError(f"Config {config_name!r} with overrides {shown} cannot be composed: {reason}") from error
    finally:
        if outer is not None:  # the context manager restored a copy of the cleared instance: fill that one
            global_hydra.instance().clear()
            global_hydra.instance().initialize(outer)


def _with_task_recorded(config: Any) -> Any:
    """`config` without Hydra's own node, with the choice of the `task` group kept in `experiment.task` (null without
    `task=`) when the config has an `experiment` section: `experiment.json` records it, and a resumed run names it."""
    omegaconf = require("omegaconf", "hydra")
    choices = omegaconf.OmegaConf.select(config, "hydra.runtime.choices", default=None) or {}
    with omegaconf.open_dict(config):
        del config["hydra"]
        if isinstance(config.get("experiment"), omegaconf.DictConfig):
            config.experiment.task = choices.get("task")
    return config


def _quoted(override: str | None) -> str | None:
    """`key='value'`, when Hydra cannot read the `key=value` override as it is but reads it so (a path with a `~`, a
    non-ASCII letter or a `#`); None when quoting would not help (a bad key, a value already quoted, a list).

    Example:
        >>> _quoted("data.root=~/data/Zürich"), _quoted("trainer.max_epochs 3")
        ("data.root='~/data/Zürich'", None)
    """
    key, equals, value = (override or "").partition("=")
    if not equals or not value or value[0] in "'\"[{" or ("'" in value and '"' in value):
        return None
    mark = '"' if "'" in value else "'"
    quoted = f"{key}={mark}{value}{mark}"
    try:
        require("hydra.core.override_parser.overrides_parser", "hydra").OverridesParser.create().parse_overrides([quoted])
    except Exception:  # still unreadable: the key or the rest of it is wrong, which Hydra's own message says
        return None
    return quoted


def override_string(value: str) -> str:
    """`value` as the right-hand side of a Hydra override that reads back as exactly this string: quoted, so that a
    path with `( ) , = ' # [ ]`, spaces or non-ASCII letters (`export (1)`, `Zürich`) is one string, not a grammar
    error, a sweep or another type (`true`, `123`).

    Example:
        >>> print(override_string("data/export (1)"), override_string("it's"))
        'data/export (1)' 'it\\'s'
    """
    # in Hydra's quoted strings a backslash escapes a quote, so a run of them before a quote or the end is doubled
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, value)
    return "'" + escaped.replace("'", "\\'") + "'"


def _home_quoted(override: str) -> str:
    """`key='~/x'` for `key=~/x`: the shell leaves a `~` after `key=` as it is, and Hydra's grammar reads it only in
    quotes; the job then expands it in the paths it reads (`torchbricks._experiment.with_home_expanded`).

    Example:
        >>> _home_quoted("data.root=~/photos"), _home_quoted("~data.root"), _home_quoted("data.root='~/x'")
        ("data.root='~/photos'", '~data.root', "data.root='~/x'")
        >>> _home_quoted("data.sources=[{task: detection, root: ~/a}, {task: segmentation, root: '~/b'}]")
        "data.sources=[{task: detection, root: '~/a'}, {task: segmentation, root: '~/b'}]"
    """
    key, _, value = override.partition("=")
    if value.startswith("~"):
        return _quoted(override) or override
    if value[:1] in "[{" and "~" in value:  # a source's root in a list: data.sources=[{task: detection, root: ~/a}]
        quoted = f"{key}={_HOME_IN_LIST.sub(lambda match: override_string(match[0]), value)}"
        return quoted if _readable(quoted) else override
    return override


_HOME_IN_LIST = re.compile(r"(?<=[\[{:,]\s)~[^,\]}\s'\"]*|(?<=[\[{:,])~[^,\]}\s'\"]*")
"""An unquoted `~/...` element or value of a list or dict override."""


def _readable(override: str) -> bool:
    """Whether Hydra's override grammar reads `override`."""
    try:
        require("hydra.core.override_parser.overrides_parser", "hydra").OverridesParser.create().parse_overrides([override])
    except Exception:  # the grammar's own errors: Hydra says what is wrong once the override is composed
        return False
    return True


def _shell_quoted(override: str) -> str:
    """The override as a POSIX shell passes it on: in the other kind of quotes than its value's.

    Example:
        >>> print(_shell_quoted("data.root='~/x'"))
        "data.root='~/x'"
    """
    if "'" in override and '"' in override:
        return shlex.quote(override)
    return f"'{override}'" if '"' in override else f'"{override}"'


def _store_head_configs() -> None:
    """Stores every head kind's packaged configs in Hydra's ConfigStore as options of the group `head`.

    The head kinds (`torchbricks.heads`) are the only description of a head: the task configs' defaults
    (`/head@model.bricks.detection: detection`) and `+head@model.bricks.NAME=<name>` find them here, a brick's
    argument is overridden as in a file (`model.bricks.detection.decode.model.score_threshold=0.2`), and a new kind's
    configs are options without a YAML file.
    """
    config_store = require("hydra.core.config_store", "hydra").ConfigStore.instance()
    from torchbricks.heads import packaged_head_configs

    for name, head in packaged_head_configs().items():
        config_store.store(group="head", name=name, node=head.config(name))


def _check_head_names(folders: Sequence[Path]) -> None:
    """Refuses a user's `head/<name>.yaml` named like a packaged head config: Hydra would merge the two."""
    from torchbricks.heads import packaged_head_configs

    packaged = packaged_head_configs()
    for folder in folders:
        for path in sorted((folder / "head").glob("*.yaml")):
            if path.stem in packaged:
                raise ConfigError(
                    f"The config {str(path)!r} has the name of the packaged head config {path.stem!r} (kind "
                    f"{packaged[path.stem].kind!r}), which Hydra would merge into it; give it another name."
                )


def _free_form(override: str) -> str:
    """`loss_weights={...}` -> `++loss_weights={...}`: keys of a free-form dict can be added without `+`. A loss
    path in the key, which Hydra's grammar refuses (`loss_weights.head/loss_ce=2`), is nested instead
    (`loss_weights.head.loss_ce`; `read_loss_weights` joins it back)."""
    key, equals, value = override.partition("=")
    if key.split(".", 1)[0] in FREE_FORM_KEYS and not key.startswith(("+", "~")):
        return "++" + key.replace("/", ".") + equals + value
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
