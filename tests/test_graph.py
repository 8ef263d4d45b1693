"""The pure-Python graph logic: name resolution, validation and planning."""

from __future__ import annotations

import pytest

from torchbricks._graph import ALL_NAMES, BrickNode, missing_input_error, plan, release_after, resolve_name, validate
from torchbricks.errors import BrickCycleError, BrickNameError, DuplicateOutputError, NoBricksSelectedError


def node(path: str, inputs: tuple[str, ...], outputs: tuple[str, ...], tags: tuple[str, ...] = ("MODEL",)) -> BrickNode:
    return BrickNode(path=path, kind="Brick", inputs=inputs, outputs=outputs, tags=frozenset(tags))


@pytest.mark.parametrize(
    ("name", "scope", "expected"),
    [
        ("x", ("a",), "x"),
        ("./x", (), "x"),
        ("./x", ("a", "b"), "a/b/x"),
        ("../x", ("a", "b"), "a/x"),
        ("../../x", ("a", "b"), "x"),
        ("./sub/x", ("a",), "a/sub/x"),
        ("a/x", ("b",), "a/x"),
        (ALL_NAMES, ("a",), ALL_NAMES),
    ],
)
def test_resolve_name_joins_relative_names_with_the_scope(name: str, scope: tuple[str, ...], expected: str) -> None:
    assert resolve_name(name, scope, "brick") == expected


def test_resolve_name_rejects_climbing_above_the_root() -> None:
    with pytest.raises(BrickNameError, match=r"'head/classify' uses the relative name '\.\./\.\./x', which climbs above"):
        resolve_name("../../x", ("head",), "head/classify")


@pytest.mark.parametrize("name", ["./", "./a//b", "./a/../b", ""])
def test_resolve_name_rejects_malformed_names(name: str) -> None:
    with pytest.raises(BrickNameError):
        resolve_name(name, ("head",), "head/classify")


def test_validate_names_both_producers_of_a_name() -> None:
    nodes = [node("a", ("x",), ("y",)), node("b", ("x",), ("y",))]
    with pytest.raises(DuplicateOutputError, match="Bricks 'a' and 'b' both produce the output 'y'"):
        validate(nodes)


def test_validate_names_a_brick_listing_an_output_twice() -> None:
    with pytest.raises(DuplicateOutputError, match="Brick 'a' lists the output 'y' twice"):
        validate([node("a", ("x",), ("y", "y"))])


def test_validate_names_the_bricks_of_a_cycle() -> None:
    nodes = [
        node("start", ("x",), ("a",)),
        node("b", ("a", "c"), ("b",)),
        node("c", ("b",), ("c",)),
        node("sink", ("c",), ("z",)),
    ]
    with pytest.raises(BrickCycleError, match="cycle: 'b' -> 'c' -> 'b'"):
        validate(nodes)


def test_validate_rejects_a_brick_reading_its_own_output() -> None:
    with pytest.raises(BrickCycleError, match="'loop' -> 'loop'"):
        validate([node("loop", ("y",), ("y",))])


def test_plan_orders_by_dependency_and_keeps_insertion_order_for_ties() -> None:
    nodes = [node("head", ("features",), ("logits",)), node("other", ("raw",), ("o",)), node("backbone", ("raw",), ("features",))]
    result = plan(nodes, None, None)
    assert [nodes[i].path for i in result.order] == ["other", "backbone", "head"]
    assert result.required_inputs == ("raw",)
    assert result.produced == ("o", "features", "logits")


def test_plan_selects_bricks_sharing_a_tag() -> None:
    nodes = [node("model", ("raw",), ("logits",)), node("loss", ("logits", "targets"), ("loss",), tags=("LOSS",))]
    result = plan(nodes, frozenset({"MODEL"}), None)
    assert result.order == (0,)
    assert result.required_inputs == ("raw",)
    assert result.excluded_producers["loss"].path == "loss"


def test_plan_with_wanted_outputs_keeps_only_their_ancestors() -> None:
    nodes = [node("a", ("x",), ("a",)), node("b", ("a",), ("b",)), node("c", ("x",), ("c",))]
    result = plan(nodes, None, ("b",))
    assert [nodes[i].path for i in result.order] == ["a", "b"]


def test_plan_treats_wanted_names_nobody_produces_as_required_inputs() -> None:
    result = plan([node("a", ("x",), ("a",))], None, ("x",))
    assert result.order == ()
    assert result.first_consumer == {"x": "output_names"}


def test_plan_runs_an_all_names_brick_after_every_independent_brick() -> None:
    nodes = [node("debug", (ALL_NAMES,), ("report",)), node("a", ("x",), ("a",)), node("b", ("a",), ("b",))]
    assert plan(nodes, None, None).order == (1, 2, 0)


def test_plan_runs_consumers_of_an_all_names_brick_after_it() -> None:
    nodes = [node("use", ("report",), ("final",)), node("debug", (ALL_NAMES,), ("report",)), node("a", ("x",), ("a",))]
    assert plan(nodes, None, None).order == (2, 1, 0)


def test_of_two_all_names_bricks_the_later_inserted_runs_later_and_sees_the_earlier() -> None:
    nodes = [
        node("a", ("raw",), ("y",)),
        node("first", (ALL_NAMES,), ("first_saw",)),
        node("second", (ALL_NAMES,), ("second_saw",)),
        node("after_second", ("second_saw",), ("z",)),
        node("late", ("y",), ("w",)),
    ]
    order = [nodes[i].path for i in plan(nodes, None, None).order]
    assert order == ["a", "late", "first", "second", "after_second"]


def test_an_all_names_brick_fed_by_name_by_a_later_one_runs_after_it() -> None:
    nodes = [node("first", (ALL_NAMES, "second_saw"), ("first_saw",)), node("second", (ALL_NAMES,), ("second_saw",))]
    assert [nodes[i].path for i in plan(nodes, None, None).order] == ["second", "first"]


def test_plan_rejects_tags_selecting_no_brick() -> None:
    with pytest.raises(NoBricksSelectedError, match=r"Tags \['LOSS'\] select no brick. Tags in use: \['MODEL'\]"):
        plan([node("a", ("x",), ("y",))], frozenset({"LOSS"}), None)


def test_tags_selecting_no_brick_suggest_the_close_tag_in_use() -> None:
    with pytest.raises(
        NoBricksSelectedError, match=r"Tags \['MODLE'\] select no brick. Tags in use: \['MODEL'\]. Did you mean 'MODEL'\?"
    ):
        plan([node("a", ("x",), ("y",))], frozenset({"MODLE"}), None)


def test_missing_input_error_suggests_the_close_match() -> None:
    result = plan([node("head/classify", ("featurs",), ("y",))], None, None)
    error = missing_input_error(result, "featurs", ["features", "raw"], None)
    assert str(error) == (
        "Brick 'head/classify' needs input 'featurs', which no brick produces and named_inputs lacks. "
        "Available: ['features', 'raw', 'y']. Did you mean 'features'?"
    )


def test_release_after_frees_each_name_after_its_last_reader() -> None:
    nodes = [node("a", ("x",), ("a", "unused")), node("b", ("a",), ("b",)), node("c", ("b", "x"), ("c",))]
    result = plan(nodes, None, None)
    assert release_after(nodes, result, keep=["c"]) == [("unused",), ("a",), ("x", "b")]


def test_release_after_keeps_everything_until_an_all_names_brick_ran() -> None:
    nodes = [node("a", ("x",), ("a",)), node("b", ("a",), ("b",)), node("debug", (ALL_NAMES,), ("report",))]
    result = plan(nodes, None, None)
    assert release_after(nodes, result, keep=["report"]) == [(), (), ("x", "a", "b")]
