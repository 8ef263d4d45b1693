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
    (`available`) and the close-match hint, so a caller can phrase the message for its own key."""

    def __init__(self, name: str, available: list[str], hint: str) -> None:
        self.name, self.available, self.hint = name, available, hint
        super().__init__(self.phrased("averaged_metrics names"))

    def phrased(self, subject: str) -> str:
        """The message with `subject` naming who asked for the metric (`"averaged_metrics names"`)."""
        logged = f"which no metric brick of the validation stage logs. Metric values: {self.available}."
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
