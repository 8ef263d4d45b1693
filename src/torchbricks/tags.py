"""Tags choose which bricks run; a model stage is a named set of tags."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable

from torchbricks.errors import BrickError, did_you_mean

__all__ = [
    "LOSS",
    "METRIC",
    "METRIC_EXTRA",
    "MODEL",
    "STAGE_TAGS",
    "STAGE_TAG_NAMES",
    "VISUALIZATION",
    "Stage",
    "TagsLike",
    "misspelled_tag_hint",
    "normalize_tags",
    "stage_hint",
    "tags_for",
]

MODEL = "MODEL"
LOSS = "LOSS"
METRIC = "METRIC"
METRIC_EXTRA = "METRIC_EXTRA"
"""Metrics too costly for every epoch: they run in the test stage only."""
VISUALIZATION = "VISUALIZATION"


class Stage(enum.Enum):
    """The model stages. Pass one as `tags` to run the bricks of that stage."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"
    INFERENCE = "inference"
    EXPORT = "export"


STAGE_TAGS: dict[Stage, frozenset[str]] = {
    Stage.TRAIN: frozenset({MODEL, LOSS, METRIC}),
    Stage.VALIDATION: frozenset({MODEL, LOSS, METRIC}),
    Stage.TEST: frozenset({MODEL, LOSS, METRIC, METRIC_EXTRA, VISUALIZATION}),
    Stage.INFERENCE: frozenset({MODEL, VISUALIZATION}),
    Stage.EXPORT: frozenset({MODEL}),
}
"""The tags each stage runs. Visualizations never run in training, validation or export."""

TagsLike = str | Iterable[str] | Stage

STAGE_TAG_NAMES: frozenset[str] = frozenset().union(*STAGE_TAGS.values())
"""Every tag some stage runs."""


def normalize_tags(tags: TagsLike, *, owner: str = "tags") -> frozenset[str]:
    """Turns a tag, an iterable of tags or a `Stage` into a frozenset of tags.

    A bare string is one tag; it is never split into characters.

    Example:
        >>> sorted(normalize_tags(["MODEL", "LOSS"]))
        ['LOSS', 'MODEL']
        >>> sorted(normalize_tags(Stage.EXPORT))
        ['MODEL']
    """
    if isinstance(tags, Stage):
        return STAGE_TAGS[tags]
    if isinstance(tags, str):
        return frozenset((tags,))
    try:
        result = frozenset(tags)
    except TypeError:
        raise BrickError(f"{owner} must be a str, an iterable of str or a Stage, got {type(tags).__name__}.") from None
    wrong = [tag for tag in result if not isinstance(tag, str)]
    if wrong:
        raise BrickError(f"{owner} must hold strings only; got {wrong!r}.")
    return result


def tags_for(stage: Stage | str) -> frozenset[str]:
    """The tags of a model stage, by `Stage` or by its name (`"train"`, `"export"`, ...)."""
    if isinstance(stage, Stage):
        return STAGE_TAGS[stage]
    try:
        return STAGE_TAGS[Stage(stage)]
    except ValueError:
        names = [s.value for s in Stage]
        raise BrickError(f"Unknown stage {stage!r}. Available: {names}.{did_you_mean(stage, names)}") from None


def stage_hint(tags: Iterable[str]) -> str:
    """` Use Stage.TRAIN ...` when a tag is spelled like a stage name (`"train"`), else an empty string.

    Example:
        >>> stage_hint({"train"})
        " 'train' is a stage name, not a tag: use Stage.TRAIN (tags=Stage.TRAIN runs the bricks of that stage)."
    """
    by_name = {name: stage for stage in Stage for name in (stage.value, stage.name)}
    for tag in sorted(tags):
        stage = by_name.get(tag) or by_name.get(tag.lower())
        if stage is not None:
            name = f"Stage.{stage.name}"
            return f" {tag!r} is a stage name, not a tag: use {name} (tags={name} runs the bricks of that stage)."
    return ""


def misspelled_tag_hint(tags: Iterable[str]) -> str:
    """A sentence naming a tag among `tags` that no stage runs but that is spelled like a stage tag or a stage name
    (`"model"`, `"METRICS"`, `"train"`), with what was probably meant; an empty string when there is none.

    A brick with only such tags runs in no `Stage`, silently: a loss tagged `"loss"` is never computed in training.
    Other custom tags (`"HEAD"`) are left alone.

    Example:
        >>> misspelled_tag_hint({"METRICS"}).endswith("Did you mean 'METRIC'?")
        True
        >>> misspelled_tag_hint({"HEAD", "MODEL"})
        ''
    """
    known = sorted(STAGE_TAG_NAMES)
    for tag in sorted(tags):
        if tag in STAGE_TAG_NAMES:
            continue
        hint = stage_hint([tag])
        if not hint:
            match = difflib.get_close_matches(tag.upper(), known, n=1, cutoff=0.8)
            hint = f" Did you mean {match[0]!r}?" if match else ""
        if hint:
            return f" No stage runs tag {tag!r} (stages run {known}).{hint}"
    return ""
