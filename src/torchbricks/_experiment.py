"""The experiment folder of the main job: refusing to overwrite a run, resuming one, where its files go, whether
a folder is a trained experiment, and the folder a relative `data.root` of a run is read from.

Torch-free (only omegaconf, through `require`), so the command line checks a name before importing torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchbricks._extras import require
from torchbricks._files import update_with_file
from torchbricks.errors import ConfigError, ExperimentExistsError, did_you_mean

__all__ = [
    "BEST_CHECKPOINT",
    "BRICKS_FOLDER",
    "CHECKPOINTS_FOLDER",
    "CONFIG_FILE",
    "EXPERIMENT_FILE",
    "LOCATING_KEYS",
    "RESOLVED_CONFIG_FILE",
    "RESUMABLE_KEYS",
    "WORKING_DIRECTORY",
    "ExperimentExistsError",
    "check_trained_experiment_folder",
    "chosen_task",
    "config_file_text",
    "expand_home",
    "experiment_folder",
    "last_checkpoint",
    "launched_as_global_zero",
    "load_config_file",
    "prepare_experiment_folder",
    "read_experiment_description",
    "recorded_working_directory",
    "resume_requested",
    "resumed_config",
    "trained_weights_digest",
    "with_home_expanded",
    "with_rooted_paths",
]

CONFIG_FILE = "config.yaml"
"""The composed config of a run, written into its experiment folder; `resume=true` starts from it."""
EXPERIMENT_FILE = "experiment.json"
"""The run's description (version, data module, input size, class names), written when a run starts."""
RESOLVED_CONFIG_FILE = "resolved_config.yaml"
"""The composed config with every interpolation resolved, written when a run starts; the model is rebuilt from it."""
WORKING_DIRECTORY = "working_directory"
"""The key of `experiment.json` that holds the folder the training command ran in."""
CHECKPOINTS_FOLDER = "checkpoints"
"""Lightning's checkpoints of a run: `last.ckpt` (every epoch) and `best.ckpt` (by `checkpoint.monitor`)."""
BRICKS_FOLDER = "bricks"
"""The trained weights of a run, one file per brick (`BrickCollection.save_bricks`): what predict, evaluate and
export load."""
BEST_CHECKPOINT = f"{CHECKPOINTS_FOLDER}/best.ckpt"
"""The best epoch's Lightning checkpoint, which those load when there is no `bricks/`."""
LAST_CHECKPOINT = "last.ckpt"

RESUMABLE_KEYS = frozenset(
    {"resume", "seed", "export_onnx", "n_visualized", "pictures_every_n_epochs", "compile", "channels_last", "loss_weights"}
)
"""The top-level keys of `train.yaml` that a `resume=true` run can change: none of them changes what the checkpoint
holds. The others choose a config group (`model=`, `optimizer=`, ...) or the loss balancing, whose state is saved."""

CONFIG_FIRST_LINE = "# Written by torchbricks; whole when its last line is the one below.\n"
CONFIG_LAST_LINE = "# End of config.\n"
"""The lines `config_file_text` puts around a config, so that a reader tells a whole file from one cut short (a copy
that stopped): YAML parses any cut of a config into a smaller config, whose errors would name missing keys."""


def config_file_text(yaml_text: str) -> str:
    """The text of a config file the experiment keeps (`CONFIG_FILE`, `RESOLVED_CONFIG_FILE`): `yaml_text` between
    `CONFIG_FIRST_LINE` and `CONFIG_LAST_LINE`, YAML comments, so the file reads as the same YAML.

    Example:
        >>> config_file_text("seed: 1\\n").splitlines()
        ['# Written by torchbricks; whole when its last line is the one below.', 'seed: 1', '# End of config.']
    """
    ending = "" if yaml_text.endswith("\n") else "\n"
    return f"{CONFIG_FIRST_LINE}{yaml_text}{ending}{CONFIG_LAST_LINE}"


def load_config_file(path: Path, *, reader: str) -> Any:
    """The config in the experiment's file `path` (`config_file_text`), an OmegaConf `DictConfig`; a file written
    before the first and last lines were (it starts without `CONFIG_FIRST_LINE`) is read as it is.

    Raises:
        ConfigError: Naming the file and `reader`: it starts with `CONFIG_FIRST_LINE` but does not end with
            `CONFIG_LAST_LINE` (cut short), or it is empty.
    """
    omegaconf = require("omegaconf", "hydra")
    text = path.read_text(encoding="utf-8")
    cut = not text.strip() or CONFIG_FIRST_LINE.startswith(text)  # nothing, or not even the first line
    if text.startswith(CONFIG_FIRST_LINE) and text.rstrip("\n").rsplit("\n", 1)[-1] != CONFIG_LAST_LINE.rstrip("\n"):
        cut = True
    if cut:
        raise ConfigError(
            f"{reader}: {str(path)!r} is cut short ({len(text.encode())} bytes): torchbricks ends it with the line "
            f"{CONFIG_LAST_LINE.strip()!r}, which it lacks. Was it copied, or its disk filled, before the end? Copy the "
            "experiment folder again from where it was trained (if the file was edited by hand, end it with that line)."
        )
    return omegaconf.OmegaConf.create(text)


_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def experiment_folder(config: Any) -> Path:
    """`<experiment.path_experiments>/<experiment.name>` of a composed config (the name must be set)."""
    return Path(str(config.experiment.path_experiments)) / str(config.experiment.name)


def last_checkpoint(folder: Path) -> Path:
    """Where Lightning keeps the last checkpoint of the experiment in `folder`."""
    return folder / CHECKPOINTS_FOLDER / LAST_CHECKPOINT


def launched_as_global_zero() -> bool:
    """Whether this process was started as the first of its job (no launcher gave it another rank).

    Lightning's DDP launcher starts the other processes of a machine by running the same command again with
    `LOCAL_RANK` set; other machines have `NODE_RANK`, torchrun sets `RANK`, SLURM `SLURM_PROCID`.
    """
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def resumed_config(config: Any, overrides: Sequence[str]) -> Any:
    """The config a `resume=true` run continues with: the experiment's saved config, with `overrides` on top.

    Plain `key=value` overrides apply on top of the saved config (`trainer.max_epochs=20` trains further), each
    checked against the saved config's keys; group choices and added keys (`model=...`, `+head@...`) are refused:
    the checkpoint holds the saved model. An override the run was started with (`experiment.command_overrides`) is
    taken as it is, so the same command with `resume=true` continues the run, also one started with
    `experiment.overwrite=true` (the resumed run deletes nothing: its `experiment.overwrite` is false). A config
    without `resume=true` is returned as it is.

    The saved relative data roots (`data.root`, each source's with `data.sources`) are joined to the folder the
    training command ran in (`recorded_working_directory`), so a run resumed from another folder reads the data it
    trained on; a data root given on this command line (not one the run was started with) is read from the current
    folder. The experiment is continued where it was found: `experiment.path_experiments`, from the command line or
    the default, is relative to the current folder.

    Raises:
        ConfigError: No experiment name, no saved config in the folder, an override that changes the model, or
            `experiment.overwrite=true` the run was not started with.
    """
    if not config.get("resume", False):
        return config
    omegaconf = require("omegaconf", "hydra")
    if config.experiment.name is None:
        raise ConfigError("resume=true needs the experiment to continue: add experiment.name=NAME.")
    folder = experiment_folder(config)
    if not (folder / CONFIG_FILE).is_file():
        available = sorted(path.parent.name for path in folder.parent.glob(f"*/{CONFIG_FILE}"))
        raise ConfigError(
            f"resume=true: no experiment {folder.name!r} to continue in {str(folder.parent)!r}. Experiments there: {available}."
        )
    from torchbricks.configuration.compose import FREE_FORM_KEYS

    saved = load_config_file(folder / CONFIG_FILE, reader="resume=true")
    started_with = set(saved.get("experiment", {}).get("command_overrides") or [])
    # A run started with experiment.overwrite=true ("or start it again") is continued by the same command
    if any(_overwrites(override) and override not in started_with for override in overrides):
        raise ConfigError(RESUME_AND_OVERWRITE)
    if "data" in saved:  # before the overrides: theirs stay relative to here, and may choose other values
        saved.data = _data_as_trained(saved, folder, omegaconf)
    plain = []
    for override in overrides:
        key = override.split("=", 1)[0]
        if override in started_with:
            continue  # the run was started with it: the saved config holds it already (the same command, resumed)
        if key.startswith(("+", "~")) or "@" in key:
            raise ConfigError(
                f"resume=true continues experiment {folder.name!r} with its saved model and data; the override "
                f"{override!r} adds or removes a part of them. Start a new experiment for it."
            )
        if "." not in key and key not in RESUMABLE_KEYS and not _same_value(saved, override, omegaconf):
            trained = f"{_trained_task(folder)}; " if key == "task" else ""
            raise ConfigError(
                f"resume=true continues experiment {folder.name!r} with the {key!r} it was trained with ({trained}its "
                f"checkpoint holds what that choice built); the override {override!r} would change it. Start a new "
                f"experiment for it. What a resumed run can change: keys of a section (trainer.max_epochs=20, "
                f"early_stopping.patience=5, ...) and {sorted(RESUMABLE_KEYS)}."
            )
        if "." in key and key.split(".", 1)[0] not in FREE_FORM_KEYS and key not in LOCATING_KEYS:
            _check_section_override(saved, override, folder.name, omegaconf)
        plain.append(override)
    merged = omegaconf.OmegaConf.merge(saved, omegaconf.OmegaConf.from_dotlist(plain))
    merged.resume = True
    if "experiment" in merged:  # where the experiment was found, not the saved value when the command gave another
        merged.experiment.path_experiments = config.experiment.path_experiments
        if "overwrite" in merged.experiment:  # the saved `true` of a run started again: continuing deletes nothing
            merged.experiment.overwrite = False
    return merged


def chosen_task(config: Any) -> dict[str, str | None]:
    """`{"task": ...}`, what `experiment.json` records of the task a run of `config` trains: the `task=` choice the
    config was composed with (`experiment.task`, kept by `compose_config`; None without `task=`), else its
    `data.task` (a config saved before `experiment.task` was kept); an empty dict when neither tells."""
    experiment = config.get("experiment") if hasattr(config, "get") else None
    if experiment is not None and "task" in experiment:
        task = experiment.get("task")
    else:
        task = (config.get("data") or {}).get("task") if hasattr(config, "get") else None
        if task is None:
            return {}
    return {"task": None if task is None else str(task)}


def _trained_task(folder: Path) -> str:
    """How a refusal of `resume=true` names the task `folder`'s run trained, from its `experiment.json`."""
    try:
        description = read_experiment_description(folder, reader="resume=true")
    except ConfigError as error:
        return f"which is unknown: {error}"
    if "task" not in description:
        return (
            f"which its {EXPERIMENT_FILE} does not record: a torchbricks that did not record it trained it (its "
            f"{CONFIG_FILE} holds the data and model it continues with)"
        )
    task = description["task"]
    chosen = f"task={task}" if task is not None else "no task= (the default data and model)"
    return f"{chosen}, as its {EXPERIMENT_FILE} records"


def _data_as_trained(saved: Any, folder: Path, omegaconf: Any) -> Any:
    """The saved data config as the run read it: its relative roots joined to the folder training ran in, and a split
    seed that was `${seed}` (the digits' before their split seed was their own) pinned to the saved seed."""
    data = saved.data
    recorded = recorded_working_directory(folder, reader="resume=true")
    if recorded is not None and recorded.resolve() != Path.cwd().resolve():
        data = with_rooted_paths(data, recorded)
    if "seed" in saved:
        data = omegaconf.OmegaConf.create(_pinned(omegaconf.OmegaConf.to_container(data), "${seed}", saved.seed))
    return data


def _pinned(node: Any, interpolation: str, value: Any) -> Any:
    """`node` with every value that is exactly `interpolation` replaced by `value`: a resumed run keeps the splits
    its saved seed drew, whatever `seed=N` it is given.

    Example:
        >>> _pinned({"seed": "${seed}", "sources": [{"seed": "${seed}"}], "root": "a"}, "${seed}", 0)
        {'seed': 0, 'sources': [{'seed': 0}], 'root': 'a'}
    """
    if isinstance(node, dict):
        return {key: _pinned(item, interpolation, value) for key, item in node.items()}
    if isinstance(node, list):
        return [_pinned(item, interpolation, value) for item in node]
    return value if node == interpolation else node


def read_experiment_description(folder: Path, required: Sequence[str] = (), reader: str = "torchbricks") -> dict[str, Any]:
    """The run description `experiment.json` of the experiment in `folder`: the one reader of that file.

    Args:
        folder: The experiment folder.
        required: The keys the caller needs; a file without one of them is refused (a key written as null is there).
        reader: What reads the file, for the message (`"resume=true"`, `"load_experiment"`).

    Raises:
        ConfigError: The file is missing, is not a JSON object (cut short, edited) or lacks a key of `required`; the
            message names the file, and the key with the keys the file has.
    """
    file = folder / EXPERIMENT_FILE
    needs = f"{reader} reads {str(file)!r}"
    if not file.is_file():
        present = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else None
        where = f"{str(folder)!r} holds {present}" if present is not None else f"{str(folder)!r} does not exist"
        raise ConfigError(
            f"{needs}, the run description `torchbricks train` writes when a run starts, but there is no such file: "
            f"{where}. Is {str(folder)!r} a trained experiment folder, copied whole?"
        )
    try:
        description = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(
            f"{needs}, but it is not JSON ({error}): cut short or edited. Copy it again from the experiment as "
            "`torchbricks train` wrote it."
        ) from error
    if not isinstance(description, dict):
        raise ConfigError(
            f"{needs}, but it holds a JSON {type(description).__name__}, not the object of keys `torchbricks train` "
            "writes. Copy it again from the experiment as it was written."
        )
    for key in required:
        if key not in description:
            raise ConfigError(
                f"{needs}, which has no key {key!r}; keys there: {sorted(description)}.{did_you_mean(key, description)} "
                "Copy it again from the experiment as `torchbricks train` wrote it."
            )
    return description


def recorded_working_directory(
    folder: Path, description: dict[str, Any] | None = None, reader: str = "torchbricks"
) -> Path | None:
    """The folder the training command of the experiment in `folder` ran in, which its relative data roots are
    relative to (`experiment.json`'s `working_directory`, read with `read_experiment_description` unless its
    `description` is given), when the experiment records it and the folder still exists; None otherwise (an
    experiment written before the record, a project moved elsewhere or to another machine), and the roots are read
    from the current folder, as they were before the record.

    Raises:
        ConfigError: As `read_experiment_description`: no `experiment.json`, or one that is not a JSON object.
    """
    if description is None:
        description = read_experiment_description(folder, reader=reader)
    recorded = description.get(WORKING_DIRECTORY)
    return Path(recorded) if isinstance(recorded, str) and recorded and Path(recorded).is_dir() else None


def expand_home(path: str) -> str:
    """`path` with a leading `~` (`~/photos`, `~user/photos`) replaced by that home folder, as a shell does; argparse's
    `type` of every path a command takes, since neither `--out=~/x` nor a quoted `'~/x'` reaches it expanded.

    Example:
        >>> import os
        >>> expand_home("~/photos") == os.path.join(os.path.expanduser("~"), "photos"), expand_home("data/~x")
        (True, 'data/~x')
    """
    return os.path.expanduser(path)


HOME_EXPANDED_KEYS = ("model.weights", "experiment.path_experiments")
"""The config keys holding a user's path besides the data roots (every `root` under `data`, `data.sources`' too)."""


def with_home_expanded(config: Any) -> Any:
    """A copy of the composed `config` in which each user path with a leading `~` (every `root` under `data`, each
    source's of `data.sources` too, and `HOME_EXPANDED_KEYS`) starts at the home folder: the data readers, the
    resolvers reading `${data.root}` and the weights loader took `~` as a folder of that name. Interpolations
    (`${oc.env:DATA}`) and values without a `~` are left as they are.

    Example:
        >>> import os
        >>> from omegaconf import OmegaConf
        >>> config = OmegaConf.create({"data": {"root": "~/shapes", "sources": [{"root": "~/more"}]}, "model": {}})
        >>> expanded = with_home_expanded(config)
        >>> expanded.data.root == os.path.expanduser("~/shapes"), expanded.data.sources[0].root == os.path.expanduser("~/more")
        (True, True)
        >>> config.data.root
        '~/shapes'
    """
    import copy

    omegaconf = require("omegaconf", "hydra")
    expanded = copy.deepcopy(config)

    def unread(node: Any, key: Any) -> bool:  # an interpolation, or ??? (a value still to give)
        return bool(omegaconf.OmegaConf.is_interpolation(node, key) or omegaconf.OmegaConf.is_missing(node, key))

    def expand(node: Any, key: Any) -> None:
        if unread(node, key):
            return
        value = node[key]
        if isinstance(value, str) and value.startswith("~"):
            node[key] = expand_home(value)

    def roots(node: Any) -> None:
        if isinstance(node, omegaconf.DictConfig):
            for key in list(node.keys()):
                if key == "root":
                    expand(node, key)
                elif not unread(node, key):
                    roots(node[key])
        elif isinstance(node, omegaconf.ListConfig):
            for index in range(len(node)):
                if not unread(node, index):
                    roots(node[index])

    if "data" in expanded:
        roots(expanded.data)
    for dotted in HOME_EXPANDED_KEYS:
        section, key = dotted.split(".")
        if section in expanded and isinstance(expanded[section], omegaconf.DictConfig) and key in expanded[section]:
            expand(expanded[section], key)
    return expanded


def with_rooted_paths(data: Any, working_directory: Path) -> Any:
    """A copy of the data config `data` in which every relative `root` (`data.root`, each source's with
    `data.sources`) is joined to `working_directory`, the folder the training command read it from. A root that is
    an interpolation (`${oc.env:DATA}`) is left as it is.

    Example:
        >>> from omegaconf import OmegaConf
        >>> data = OmegaConf.create({"root": "data/shapes", "sources": {"a": {"data_module": {"root": "/data/a"}}}})
        >>> rooted = with_rooted_paths(data, Path("/home/me/project"))
        >>> rooted.root, rooted.sources.a.data_module.root
        ('/home/me/project/data/shapes', '/data/a')
    """
    omegaconf = require("omegaconf", "hydra").OmegaConf

    def rooted(node: Any) -> Any:
        if isinstance(node, list):
            return [rooted(item) for item in node]
        if not isinstance(node, dict):
            return node
        joined = {key: rooted(value) for key, value in node.items()}
        root = joined.get("root")
        if isinstance(root, str) and root and "${" not in root and not Path(root).expanduser().is_absolute():
            joined["root"] = str(working_directory / root)
        return joined

    return omegaconf.create(rooted(omegaconf.to_container(data, resolve=False)))


SPLIT_KEYS = frozenset({"data.seed", "data.split_seed", "data.validation_fraction", "data.test_fraction"})
"""The keys that draw a run's splits from its data (the digits', and those of data without a validation split of its
own): a resumed run keeps them."""

RESUME_AND_OVERWRITE = "resume=true continues an experiment and experiment.overwrite=true deletes it: give one of them."

LOCATING_KEYS = ("experiment.path_experiments", "experiment.name", "resume")
"""The overrides that find the experiment a `resume=true` command continues: the default config is composed with
these alone, and every other override applies to the experiment's saved config (`resumed_config`)."""


def _overwrites(override: str) -> bool:
    return override.replace(" ", "").lower() == "experiment.overwrite=true"


def resume_requested(overrides: Sequence[str]) -> bool:
    """Whether the command line asks for `resume=true`."""
    return any(override.split("=", 1)[0] == "resume" and override.split("=", 1)[1].lower() == "true" for override in overrides
               if "=" in override)  # fmt: skip


def _same_value(saved: Any, override: str, omegaconf: Any) -> bool:
    """Whether a `key=value` override gives the value the saved config holds (a group choice never does: its name is
    not a value of the config)."""
    key = override.split("=", 1)[0]
    missing = object()
    held = omegaconf.OmegaConf.select(saved, key, default=missing)
    if held is missing:
        return False
    try:
        given = omegaconf.OmegaConf.select(omegaconf.OmegaConf.from_dotlist([override]), key)
    except Exception:  # an override the dotlist grammar does not read is no match
        return False
    return bool(given == held)


def _check_section_override(saved: Any, override: str, name: str, omegaconf: Any) -> None:
    """Raises `ConfigError` when the dotted key of `override` is not in the saved config, or would draw other splits."""
    key = override.split("=", 1)[0]
    _check_saved_key(saved, key, name, omegaconf)
    if key in SPLIT_KEYS and not _same_value(saved, override, omegaconf):
        raise ConfigError(
            f"resume=true continues experiment {name!r} on the training, validation and test splits it began with; "
            f"the override {override!r} would draw others, so the test split would hold images the run has trained on. "
            "Start a new experiment for it."
        )


def _check_saved_key(saved: Any, key: str, name: str, omegaconf: Any) -> None:
    """Raises `ConfigError` when the dotted `key` is not in the saved config, naming the close key there."""
    node = saved
    walked: list[str] = []
    for part in key.split("."):
        if isinstance(node, omegaconf.ListConfig) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, omegaconf.DictConfig) and part in node:
            node = node[part]
        else:
            where = ".".join(walked) or "the config"
            keys = [str(item) for item in node] if isinstance(node, omegaconf.DictConfig) else []
            raise ConfigError(
                f"resume=true: experiment {name!r}'s saved config has no key {key!r} ({where} has no {part!r}; it has "
                f"{keys}).{did_you_mean(part, keys)}"
            )
        walked.append(part)


def check_experiment_folder(config: Any) -> None:
    """The checks of `prepare_experiment_folder` that need nothing built, run before the data and the model are
    read: a bad name, `resume` with `overwrite`, an existing name without either, `resume` without a checkpoint.

    Raises:
        ConfigError: The name is empty or a path, both `resume` and `experiment.overwrite` are set, or `resume=true`
            finds no last checkpoint.
        ExperimentExistsError: The folder exists and neither `resume=true` nor `experiment.overwrite=true` is set.
    """
    if isinstance(config.experiment.name, (bool, float)):  # not the text typed: experiment.name=0.10 is the folder 0.1
        raise ConfigError(
            f"Config key 'experiment.name' must be a folder name, got {type(config.experiment.name).__name__} "
            f"{config.experiment.name!r}: Hydra reads an unquoted number or true/false as one (experiment.name=0.10 as "
            "0.1). Quote it: \"experiment.name='0.10'\"."
        )
    name = str(config.experiment.name)
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(
            f"Config key 'experiment.name' must be a folder name (the experiment's folder in experiment.path_experiments), "
            f"got {name!r}."
        )
    if bool(config.get("resume", False)) and bool(config.experiment.get("overwrite", False)):
        raise ConfigError(RESUME_AND_OVERWRITE)
    folder = experiment_folder(config)
    if bool(config.get("resume", False)):
        if not last_checkpoint(folder).is_file():
            raise ConfigError(
                f"resume=true: experiment {str(folder)!r} has no {CHECKPOINTS_FOLDER}/{LAST_CHECKPOINT} to continue from "
                "(a run stopped in its first epoch saved none); start it again with experiment.overwrite=true instead."
            )
    elif launched_as_global_zero() and folder.exists() and not bool(config.experiment.get("overwrite", False)):
        raise ExperimentExistsError(
            f"Experiment {str(folder)!r} already exists; continue it with resume=true, "
            "or replace it with experiment.overwrite=true (or choose another experiment.name)."
        )


def prepare_experiment_folder(config: Any) -> Path:
    """Checks the experiment folder of a composed config before a run starts, and empties it for `overwrite`.

    Only the process started as the job's first (`launched_as_global_zero`) checks and deletes: the other
    processes of a distributed run start after it and meet the folder it has begun to fill.

    Returns:
        The experiment folder.

    Raises:
        ExperimentExistsError: The folder exists and neither `resume=true` nor `experiment.overwrite=true` is set.
        ConfigError: As `check_experiment_folder`, or `overwrite` of a folder that is not an experiment.
    """
    check_experiment_folder(config)
    folder = experiment_folder(config)
    if bool(config.get("resume", False)) or not launched_as_global_zero() or not folder.exists():
        return folder
    if not (folder / CONFIG_FILE).is_file() and any(folder.iterdir()):
        raise ConfigError(
            f"experiment.overwrite=true would delete {str(folder)!r}, which holds no {CONFIG_FILE}: it does not look "
            "like an experiment folder, so it is left alone."
        )
    shutil.rmtree(folder)
    return folder


def check_trained_experiment_folder(folder: Path) -> None:
    """Checks that `folder` holds the files `torchbricks train` writes when a run starts (`EXPERIMENT_FILE`,
    `RESOLVED_CONFIG_FILE`); reads neither (`predict --onnx` checks its folder with it where torch is not installed).

    Raises:
        ConfigError: Naming the files the folder lacks.
    """
    missing = [name for name in (RESOLVED_CONFIG_FILE, EXPERIMENT_FILE) if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"{str(folder)!r} is not a trained experiment folder: it lacks {missing} (written by `torchbricks train` "
            "when a run starts)."
        )


def trained_weights_digest(folder: Path) -> str | None:
    """A SHA-256 of the trained weights an experiment's predictions come from: the files of its `bricks/` (names and
    contents, hidden files left out), or its `checkpoints/best.ckpt` without `bricks/`; None without either. An
    export records it, so a file exported before the experiment trained on (`resume=true`) is told from a current
    one. Reads no torch."""
    bricks, checkpoint = folder / BRICKS_FOLDER, folder / BEST_CHECKPOINT
    if not bricks.is_dir() and not checkpoint.is_file():
        return None
    # Not the hidden temporary file a save killed midway left (`.backbone.pt.<id>.tmp`): the weights are the old ones
    files = sorted(path for path in bricks.rglob("[!.]*") if path.is_file()) if bricks.is_dir() else [checkpoint]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        update_with_file(digest, path)
    return digest.hexdigest()
