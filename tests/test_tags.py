"""Tags: normalizing the ways tags are given, the tags of a stage, and the hint for a stage name given as a tag."""

from __future__ import annotations

import pytest

from torchbricks.errors import BrickError
from torchbricks.tags import LOSS, METRIC, MODEL, VISUALIZATION, Stage, misspelled_tag_hint, normalize_tags, stage_hint, tags_for


def test_a_bare_string_is_one_tag_not_its_characters() -> None:
    assert normalize_tags("MODEL") == frozenset({"MODEL"})


def test_a_stage_gives_its_tags_and_an_iterable_its_elements() -> None:
    assert normalize_tags(Stage.INFERENCE) == frozenset({MODEL, VISUALIZATION})
    assert normalize_tags([MODEL, LOSS, MODEL]) == frozenset({MODEL, LOSS})


@pytest.mark.parametrize(("tags", "message"), [(3, "got int"), ([MODEL, 3], r"strings only; got \[3\]")])
def test_tags_of_the_wrong_type_are_rejected_naming_what_arrived(tags: object, message: str) -> None:
    with pytest.raises(BrickError, match=message):
        normalize_tags(tags)  # type: ignore[arg-type]


def test_tags_for_takes_a_stage_or_its_name() -> None:
    assert tags_for("train") == tags_for(Stage.TRAIN) == frozenset({MODEL, LOSS, METRIC})


def test_an_unknown_stage_name_lists_the_stages_and_the_close_match() -> None:
    with pytest.raises(BrickError, match=r"Unknown stage 'trian'. Available: \['train', .*\]. Did you mean 'train'\?"):
        tags_for("trian")


def test_a_stage_name_given_as_a_tag_gets_a_hint_and_a_tag_none() -> None:
    assert "use Stage.VALIDATION" in stage_hint({"VALIDATION"})
    assert stage_hint({MODEL}) == ""


@pytest.mark.parametrize(
    ("tags", "meant"),
    [({"loss"}, "'LOSS'"), ({"METRICS"}, "'METRIC'"), ({"MODLE"}, "'MODEL'"), ({"VISUALISATION"}, "'VISUALIZATION'")],
)
def test_a_tag_spelled_like_a_stage_tag_gets_a_hint(tags: set[str], meant: str) -> None:
    assert misspelled_tag_hint(tags).endswith(f"Did you mean {meant}?")


def test_a_stage_name_used_as_a_tag_gets_the_stage_hint() -> None:
    assert "use Stage.TRAIN" in misspelled_tag_hint({"train"})


@pytest.mark.parametrize("tags", [{"HEAD"}, {"EXTRA"}, {"EVAL"}, {"FROZEN"}, {"MODEL"}, {"LOSS", "EXTRA"}])
def test_custom_and_stage_tags_get_no_hint(tags: set[str]) -> None:
    assert misspelled_tag_hint(tags) == ""
