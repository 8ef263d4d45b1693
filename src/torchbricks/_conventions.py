"""Conventions shared by the data, the heads, the training module and the report: one home each.

- `IGNORE_INDEX`: the mask value that segmentation losses, metrics and pictures leave out (the data's 255).
- Logged names: `<stage>/<head>/<metric>` for metric values, `<stage>/loss` for the summed loss and
  `<stage>/losses/<head>/<loss>` for each loss; Lightning adds `_epoch` / `_step` to values logged both ways.
  `logged_name` builds them and `parse_logged_name` reads them back.
- `LOSS_PARTS`: the output beside a loss brick's losses that hands over each loss's numerator and denominator.
- `PREDICT_VOC_DATABASE`: the `source/database` of the Pascal VOC files `torchbricks predict --labels voc` writes,
  by which the VOC reader knows their corners are pixel edges from 0.
- A head's entry in a mapping by head (`of_head`): by its path, else by its first name (a data source `detection`
  names its head `detection/...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "CONFUSION_MATRIX",
    "IGNORE_INDEX",
    "LOADER_SUFFIX",
    "LOSSES",
    "LOSS_PARTS",
    "PER_CLASS",
    "PREDICT_VOC_DATABASE",
    "SEPARATOR",
    "TOTAL_LOSS",
    "LoggedName",
    "logged_name",
    "of_head",
    "parse_logged_name",
]

IGNORE_INDEX = 255
"""Mask pixels with this value are not scored (the segmentation data's convention)."""

SEPARATOR = "/"
"""Between the parts of a brick path, an output name and a logged name."""

TOTAL_LOSS = "loss"
"""The logged name of the summed loss, `<stage>/loss`."""

LOSSES = "losses"
"""The logged group of the individual losses, `<stage>/losses/<head>/<loss>`."""

LOSS_PARTS = "loss_parts"
"""The last name of a loss brick's output [n, 2] that holds, beside its n losses, each loss's numerator and denominator
(row i: the brick's i-th loss output = numerator / denominator, denominator 0 read as 1) for the batch the process
computed it on, not divided over the processes. A validation or test epoch's loss is then the sum of the numerators
over the epoch's batches and processes divided by the sum of their denominators: the whole split's loss, whatever
the batch size and the number of processes (see `torchbricks.lightning.LightningBrickCollection`)."""

PER_CLASS = "per_class"
"""The metric name under which a head's per-class values are kept, `<head>/per_class` (class name -> score -> value)."""

LOADER_SUFFIX = "/dataloader_idx_"
"""What Lightning appends to the names of the values of each of several validation or test loaders (`/dataloader_idx_0`,
`/dataloader_idx_1`, ...), and the training module to the stage's key in `epoch_metrics` (`test/dataloader_idx_0`)."""

CONFUSION_MATRIX = "confusion_matrix"
"""The metric name of a head's confusion matrix of counts, `<head>/confusion_matrix` (rows: the true classes)."""

PREDICT_VOC_DATABASE = "torchbricks predict"
"""The `source/database` of the Pascal VOC files `torchbricks predict --labels voc` writes: the VOC reader reads their
corners as pixel edges from 0, as the labelling tools write them, not as the 1-based indices of VOC's devkit."""


class LoggedName(NamedTuple):
    """A logged name read back: its stage, whether it is a loss, the head (`""` for the summed loss) and the value."""

    stage: str
    is_loss: bool
    head: str
    name: str


def logged_name(stage: str, name: str, loss: bool = False) -> str:
    """The logged name of a metric value `name` (`head/accuracy`) or, with `loss`, of a loss (`head/loss_ce`, or
    `loss` for the summed loss) at `stage`.

    Example:
        >>> logged_name("validation", "head/accuracy"), logged_name("train", "head/loss_ce", loss=True)
        ('validation/head/accuracy', 'train/losses/head/loss_ce')
    """
    if loss and name != TOTAL_LOSS:
        return SEPARATOR.join((stage, LOSSES, name))
    return SEPARATOR.join((stage, name))


def parse_logged_name(key: str, stages: tuple[str, ...] = ("train", "validation", "test")) -> LoggedName | None:
    """`key` read back as (stage, is_loss, head, name), or None for a per-step value or a key of no stage.

    Lightning's `_epoch` suffix is dropped.

    Example:
        >>> parse_logged_name("train/losses/head/loss_ce_epoch")
        LoggedName(stage='train', is_loss=True, head='head', name='loss_ce')
        >>> parse_logged_name("validation/loss"), parse_logged_name("train/loss_step")
        (LoggedName(stage='validation', is_loss=True, head='', name='loss'), None)
    """
    stage, _, rest = key.partition(SEPARATOR)
    if stage not in stages or not rest or rest.endswith("_step"):
        return None
    rest = rest.removesuffix("_epoch")
    is_loss = rest == TOTAL_LOSS or rest.startswith(LOSSES + SEPARATOR)
    rest = rest.removeprefix(LOSSES + SEPARATOR)
    head, _, name = rest.rpartition(SEPARATOR)
    return LoggedName(stage, is_loss, head, name)


def of_head(values: Mapping[str, Any] | None, head: str) -> Any:
    """`values[head]`, or the entry of the head's first name (a source `detection` names `detection/...`); None
    without either.

    Example:
        >>> of_head({"detection": ["car"]}, "detection/boxes"), of_head(None, "kind")
        (['car'], None)
    """
    if not values:
        return None
    return values.get(head) or values.get(head.split(SEPARATOR, 1)[0])
