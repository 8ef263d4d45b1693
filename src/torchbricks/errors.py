"""The torchbricks exception hierarchy: every error the library raises for bad input is a `BrickError`.

Every exception class of the library is defined here (the modules that raise one import it from here), so the
hierarchy reads in one place and `torchbricks` exports all of it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BrickBuildError",
    "BrickCycleError",
    "BrickError",
    "BrickNameError",
    "BrickOutputError",
    "CheckpointError",
    "CheckpointExistsError",
    "CheckpointNotADirectoryError",
    "CheckpointNotFoundError",
    "ConfigError",
    "DataError",
    "DuplicateOutputError",
    "ExperimentExistsError",
    "MissingExtraError",
    "MissingInputError",
    "NamedInputsTypeError",
    "NoBricksSelectedError",
    "NotABrickError",
    "RunStoppedError",
    "ShadowedInputError",
    "ShapesDatasetExistsError",
    "UnknownBrickError",
    "UnknownMetricError",
]


class BrickError(ValueError):
    """Root of every error torchbricks raises for bad input."""


class BrickBuildError(BrickError):
    """The wiring of a brick collection is invalid; raised when the collection is built or mutated."""


class BrickNameError(BrickBuildError):
    """A brick name or an input/output name is malformed, or a relative name escapes the root."""


class BrickCycleError(BrickBuildError):
    """The bricks depend on each other in a cycle."""


class DuplicateOutputError(BrickBuildError):
    """Two bricks produce the same name."""


class NotABrickError(BrickBuildError, TypeError):
    """A value given to a collection is neither a brick, a collection nor a dict of bricks."""


class MissingInputError(BrickError):
    """A brick needs a name that neither the named inputs nor a selected brick provides."""


class ShadowedInputError(BrickError):
    """A named input has the name of an output a selected brick produces: the brick would replace it unseen."""


class NoBricksSelectedError(BrickError):
    """The requested tags select no brick."""


class NamedInputsTypeError(BrickError, TypeError):
    """`named_inputs` is not a dict."""


class BrickOutputError(BrickError):
    """A brick returned what its output names cannot hold: another number of values, a value for no output name,
    or a loss that is not a single value."""


class CheckpointError(BrickError):
    """A brick checkpoint cannot be saved or loaded."""


class ConfigError(BrickError):
    """A configuration cannot be composed or instantiated; the message names the offending key."""


class CheckpointExistsError(CheckpointError, FileExistsError):
    """Saving would overwrite brick checkpoint files and `exist_ok` is False."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The brick checkpoint folder does not exist."""


class CheckpointNotADirectoryError(CheckpointError, NotADirectoryError):
    """The brick checkpoint path is a file, not a folder."""


class MissingExtraError(BrickError, ImportError):
    """An optional dependency is not installed."""


class UnknownBrickError(BrickError, KeyError):
    """A collection is indexed by a key it does not hold (`collection["haed"]`); a `KeyError` too, as for a dict."""

    def __str__(self) -> str:  # the message as written, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


class UnknownMetricError(BrickError):
    """A metric value is named that no metric brick logs; carries the `name`, the metric values that are logged
    (`available`), the close-match hint and `when` it was found missing (empty: when the names were checked), so a
    caller can phrase the message for its own key."""

    def __init__(self, name: str, available: list[str], hint: str, when: str = "") -> None:
        self.name, self.available, self.hint, self.when = name, available, hint, when
        super().__init__(self.phrased("averaged_metrics names"))

    def phrased(self, subject: str) -> str:
        """The message with `subject` naming who asked for the metric (`"averaged_metrics names"`)."""
        logged = f"which no metric brick of the validation stage logs{self.when}. Metric values: {self.available}."
        return f"{subject} {self.name!r}, {logged}{self.hint}"


class DataError(BrickError):
    """Data on disk is missing, empty or inconsistent; the message names the file."""


class ExperimentExistsError(BrickError):
    """The experiment folder exists and the run was asked neither to resume it nor to overwrite it."""


class RunStoppedError(BrickError):
    """A training run was stopped from outside (Ctrl-C, SIGTERM) before it finished; its checkpoints are kept.

    `resumable` says whether it wrote a checkpoint to continue from (`checkpoints/last.ckpt`): one stopped in its
    first epoch did not, and `resume=true` would refuse it, so the message says to start it again instead."""

    def __init__(self, path_experiment: object, signal_name: str, exit_status: int, resumable: bool = True) -> None:
        self.path_experiment = path_experiment
        self.exit_status = exit_status
        name = getattr(path_experiment, "name", path_experiment)
        stopped = (
            f"The run was stopped by {signal_name} before it finished: no test figures, metrics.json, export or "
            "pictures were made. "
        )
        if resumable:
            super().__init__(
                f"{stopped}Its checkpoints are in {str(path_experiment)!r}; continue it with the same command and "
                f"resume=true experiment.name={name}."
            )
        else:
            super().__init__(
                f"{stopped}It stopped before its first checkpoint, so nothing was saved to continue from; start it "
                f"again with the same command and experiment.overwrite=true (it replaces {str(path_experiment)!r})."
            )


LOADER_TERMINATED = "is killed by signal: Terminated"
"""What torch's error says when SIGTERM ended a DataLoader process (sent to the whole process group)."""


class Terminated(SystemExit):
    """Raised by the command line's SIGTERM handler (a scheduler, `timeout`, `docker stop`), so that what a command
    was writing is cleaned up as on Ctrl-C; exit status 143. Not a `BrickError`, so not in `__all__`."""

    def __init__(self) -> None:
        super().__init__(143)


class ShapesDatasetExistsError(BrickError, FileExistsError):
    """The target folder of a generated data set exists and overwriting was not asked for."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Returns ` Did you mean 'x'?` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def did_you_mean_key(name: str, candidates: Iterable[str], separator: str = "/") -> str:
    """` Did you mean 'x'?` for the logged key (`validation/classification/accuracy`) the user most likely meant by
    `name`, or an empty string.

    Keys are compared part by part, the last part (the value's own name) first: a last part that is the candidate's
    spelt out (`acc` for `accuracy`, `miou` for `mean_iou`, `val` for `validation`), misspelt or without its
    underscores counts more than the whole string's likeness, which made `validation/acc` suggest `validation/loss`.
    A middle part left out (`validation/accuracy` for `validation/classification/accuracy`) is no mismatch; keys that
    fit equally well (two heads' `accuracy`) are all named. Without a candidate whose last and first parts both
    resemble the name's, the closest whole string (`did_you_mean`).

    Example:
        >>> keys = ["validation/loss", "validation/classification/accuracy", "train/classification/accuracy"]
        >>> did_you_mean_key("validation/acc", keys)
        " Did you mean 'validation/classification/accuracy'?"
        >>> did_you_mean_key("val/loss", keys)
        " Did you mean 'validation/loss'?"
    """
    choices = [candidate for candidate in candidates if "*" not in candidate]
    typed = name.split(separator)
    stages = {candidate.split(separator)[0] for candidate in choices}
    words = name.split("_", 1)
    if len(typed) == 1 and len(words) == 2 and any(_part_likeness(words[0], stage) >= 0.8 for stage in stages):
        typed = words  # `val_loss`, as Keras names it
    scored = []
    for candidate in choices:
        parts = candidate.split(separator)
        leaf = _part_likeness(typed[-1], parts[-1])
        first = _part_likeness(typed[0], parts[0]) if len(typed) > 1 else 1.0
        if leaf < _CUTOFF or first < _CUTOFF:
            continue
        middles = [max((_part_likeness(part, other) for other in parts[1:-1]), default=0.0) for part in typed[1:-1]]
        middle = sum(middles) / len(middles) if middles else 1.0
        scored.append((round(2 * leaf + first + middle - 0.1 * abs(len(parts) - len(typed)), 6), candidate))
    if not scored:
        return did_you_mean(name, choices)
    best = max(score for score, _ in scored)
    tied = [candidate for score, candidate in scored if score == best][:3]  # two heads' `accuracy`: both
    return " Did you mean " + " or ".join(repr(candidate) for candidate in tied) + "?"


_CUTOFF = 0.6


def _part_likeness(typed: str, candidate: str) -> float:
    """How likely the key part `candidate` is what `typed` meant, in [0, 1]: 1 for the same word (case, `_`, `-`
    aside), 0.9 for its beginning (`acc`, `val`), 0.8 for its letters in order with the same first one (`miou`,
    `map50`), 0.75 for the word with more after it (`f1_score`), else the likeness of the two strings (a
    misspelling)."""
    short, full = (_plain(part) for part in (typed, candidate))
    if short == full:
        return 1.0
    if len(short) >= 2 and full.startswith(short):
        return 0.9
    if len(full) >= 2 and short.startswith(full):  # `f1_score` for `f1`
        return 0.75
    if len(short) >= 2 and short[0] == full[:1] and _in_order(short, full):
        return 0.8
    return difflib.SequenceMatcher(None, short, full).ratio()


def _plain(part: str) -> str:
    return part.lower().replace("_", "").replace("-", "")


def _in_order(letters: str, word: str) -> bool:
    remaining = iter(word)
    return all(letter in remaining for letter in letters)
