"""Property tests: random DAGs, in any insertion order, give the outputs of a simple reference evaluator."""

from __future__ import annotations

import copy
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from torchbricks import BrickCollection, BrickLoss, BrickTrainable

EXTERNAL = ("x0", "x1", "x2")


class Affine(nn.Module):
    """sum(inputs) * scale + shift: distinct per brick, so a wrong wiring changes the numbers."""

    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale = scale
        self.shift = shift

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return sum(tensors, torch.zeros(())) * self.scale + self.shift


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[list[tuple[str, tuple[str, ...], str, bool]], list[int]]:
    """Bricks `b{i}` producing `v{i}` from external inputs and outputs of earlier bricks; and an insertion order."""
    count = draw(st.integers(min_value=1, max_value=12))
    specs = []
    for i in range(count):
        sources = list(EXTERNAL) + [f"v{j}" for j in range(i)]
        inputs = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=3, unique=True))
        is_loss = draw(st.booleans())
        specs.append((f"b{i}", tuple(inputs), f"v{i}", is_loss))
    order = draw(st.permutations(range(count)))
    return specs, list(order)


def reference_evaluate(
    specs: list[tuple[str, tuple[str, ...], str, bool]], inputs: dict[str, Any], tags: set[str] | None
) -> dict[str, Any]:
    """Repeatedly runs any selected brick whose inputs are all known, until nothing changes."""
    data = dict(inputs)
    pending = [spec for spec in specs if tags is None or ("LOSS" if spec[3] else "MODEL") in tags]
    progress = True
    while progress:
        progress = False
        for spec in list(pending):
            name, ins, out, _ = spec
            if all(i in data for i in ins):
                index = int(name[1:])
                data[out] = sum((data[i] for i in ins), torch.zeros(())) * (index + 2) + index
                pending.remove(spec)
                progress = True
    return data


def build(specs: list[tuple[str, tuple[str, ...], str, bool]], order: list[int]) -> BrickCollection:
    bricks: dict[str, Any] = {}
    for position in order:
        name, ins, out, is_loss = specs[position]
        index = int(name[1:])
        kind = BrickLoss if is_loss else BrickTrainable
        bricks[name] = kind(Affine(index + 2, index), input_names=list(ins), output_names=[out])
    return BrickCollection(bricks)


@settings(max_examples=60, deadline=None)
@given(random_dags())
def test_any_insertion_order_matches_the_reference_evaluator(dag: tuple[list[Any], list[int]]) -> None:
    specs, order = dag
    inputs = {name: torch.tensor(float(k + 1)) for k, name in enumerate(EXTERNAL)}
    actual = build(specs, order)(inputs)
    expected = reference_evaluate(specs, inputs, None)
    assert set(actual) == set(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name])


@settings(max_examples=40, deadline=None)
@given(random_dags())
def test_execution_order_is_topological_and_independent_of_insertion(dag: tuple[list[Any], list[int]]) -> None:
    specs, order = dag
    collection = build(specs, order)
    executed = collection.execution_order()
    position = {name: k for k, name in enumerate(executed)}
    for name, ins, _, _ in specs:
        for source in ins:
            if source.startswith("v"):
                assert position[f"b{source[1:]}"] < position[name]
    assert sorted(executed) == sorted(spec[0] for spec in specs)


@settings(max_examples=40, deadline=None)
@given(random_dags())
def test_output_selection_matches_the_full_run(dag: tuple[list[Any], list[int]]) -> None:
    specs, order = dag
    inputs = {name: torch.tensor(float(k + 1)) for k, name in enumerate(EXTERNAL)}
    collection = build(specs, order)
    wanted = [specs[-1][2]]
    selected = collection(inputs, output_names=wanted)
    assert list(selected) == wanted
    torch.testing.assert_close(selected[wanted[0]], collection(inputs)[wanted[0]])


# --- nested collections, relative names and mutation -------------------------------------------------------------

SCOPES = ((), ("p",), ("q",), ("p", "q"), ("p", "q", "p"), ("q", "p", "q", "p"))
"""Collection paths a brick can sit at, down to depth 4."""


def relative(name: str, scope: tuple[str, ...], spell: int) -> str:
    """`name` (absolute) as a brick at `scope` may spell it: absolute, or `./` / `../` relative to `scope`."""
    parts = name.split("/")
    common = 0
    while common < min(len(scope), len(parts) - 1) and scope[common] == parts[common]:
        common += 1
    if spell == 0:
        return name
    ups = len(scope) - common
    return "/".join(["."] if ups == 0 else [".."] * ups) + "/" + "/".join(parts[common:])


@st.composite
def random_nested_dags(draw: st.DrawFn) -> list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str, str]]:
    """Bricks `b{i}` at a random scope, producing `<scope>/v{i}`, reading external inputs and earlier outputs; each
    name spelled absolute or relative. Rows: (key, scope, absolute inputs, spelled inputs, absolute output, spelled)."""
    count = draw(st.integers(min_value=1, max_value=10))
    rows: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str, str]] = []
    for i in range(count):
        scope = draw(st.sampled_from(SCOPES))
        sources = list(EXTERNAL) + [row[4] for row in rows]
        inputs = tuple(draw(st.lists(st.sampled_from(sources), min_size=1, max_size=3, unique=True)))
        spelled = tuple(relative(name, scope, draw(st.integers(0, 1))) for name in inputs)
        output = "/".join([*scope, f"v{i}"])
        rows.append((f"b{i}", scope, inputs, spelled, output, relative(output, scope, draw(st.integers(0, 1)))))
    return rows


def reference_nested(rows: list[Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Each brick in index order (a topological order), on absolute names."""
    data = dict(inputs)
    for key, _, ins, _, out, _ in rows:
        index = int(key[1:])
        data[out] = sum((data[i] for i in ins), torch.zeros(())) * (index + 2) + index
    return data


def nested_brick(row: Any) -> BrickTrainable:
    key, _, _, spelled, _, spelled_output = row
    index = int(key[1:])
    return BrickTrainable(Affine(index + 2, index), input_names=list(spelled), output_names=[spelled_output])


@settings(max_examples=60, deadline=None)
@given(random_nested_dags(), st.randoms(use_true_random=False))
def test_nested_relative_names_at_any_depth_match_the_reference(rows: list[Any], random: Any) -> None:
    tree: dict[str, Any] = {}
    for row in random.sample(rows, len(rows)):
        branch = tree
        for part in row[1]:
            branch = branch.setdefault(part, {})
        branch[row[0]] = nested_brick(row)
    inputs = {name: torch.tensor(float(k + 1)) for k, name in enumerate(EXTERNAL)}
    actual = BrickCollection(tree)(inputs)
    expected = reference_nested(rows, inputs)
    assert set(actual) == set(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name])


@settings(max_examples=40, deadline=None)
@given(random_nested_dags())
def test_a_collection_grown_brick_by_brick_at_any_depth_runs_what_it_holds_after_each_change(rows: list[Any]) -> None:
    """Each brick is inserted into its nested collection after a call has cached the plans: no call may run a stale
    plan, and a deep copy made along the way runs what it held when it was copied."""
    collection = BrickCollection({})
    inputs = {name: torch.tensor(float(k + 1)) for k, name in enumerate(EXTERNAL)}
    for count, row in enumerate(rows, start=1):
        branch = collection
        for part in row[1]:
            if part not in branch:
                branch[part] = {}
            branch = branch[part]
        branch[row[0]] = nested_brick(row)
        copied = copy.deepcopy(collection)
        expected = reference_nested(rows[:count], inputs)
        for runner in (collection, copied):
            actual = runner(inputs)
            assert set(actual) == set(expected)
            for name in expected:
                torch.testing.assert_close(actual[name], expected[name])


class Everything(nn.Module):
    """Reads the dict of every value computed so far (and its other inputs); keeps the names it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.saw: set[str] = set()

    def forward(self, everything: dict[str, Any], *tensors: torch.Tensor) -> torch.Tensor:
        self.saw = set(everything)
        return sum(tensors, torch.zeros(()))


@settings(max_examples=60, deadline=None)
@given(random_dags(), st.data())
def test_bricks_reading_all_names_run_after_their_inputs_and_in_insertion_order(dag: Any, data: st.DataObject) -> None:
    """Any bricks may also read `__all__`: the plan never cycles, every named input comes first, of two `__all__`
    bricks the one inserted later runs later (unless it, or an `__all__` brick inserted after it, feeds the other by
    name), and each sees exactly the values of the bricks that ran before it."""
    specs, order = dag
    reads_all = data.draw(st.sets(st.sampled_from([spec[0] for spec in specs])))
    bricks: dict[str, Any] = {}
    for position in order:
        name, ins, out, _ = specs[position]
        if name in reads_all:
            bricks[name] = BrickTrainable(Everything(), input_names=["__all__", *ins], output_names=[out])
        else:
            bricks[name] = BrickTrainable(Affine(1.0, 0.0), input_names=list(ins), output_names=[out])
    collection = BrickCollection(bricks)
    executed = collection.execution_order()
    position = {name: k for k, name in enumerate(executed)}
    ancestors: dict[str, set[str]] = {}
    for name, ins, _, _ in specs:  # specs list producers before readers
        parents = {f"b{source[1:]}" for source in ins if source.startswith("v")}
        ancestors[name] = parents.union(*(ancestors[parent] for parent in parents))
        assert all(position[parent] < position[name] for parent in parents)
    inserted = [name for name in bricks if name in reads_all]
    for k, earlier in enumerate(inserted):
        for m, later in enumerate(inserted[k + 1 :], start=k + 1):
            if not ancestors[earlier] & set(inserted[m:]):  # no feed from `later` or an `__all__` brick after it
                assert position[earlier] < position[later]
    collection({name: torch.tensor(1.0) for name in EXTERNAL})
    for name, _, _, _ in specs:
        if name in reads_all:  # it saw every value of the bricks that ran before it
            ran_before = {spec[2] for spec in specs if position[spec[0]] < position[name]}
            assert collection[name].model.saw == set(EXTERNAL) | ran_before
