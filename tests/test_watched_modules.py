"""WatchedModules: every change of the dict goes through `__setitem__` and `__delitem__`, with a plain dict's results."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from torchbricks._watched_modules import WatchedModules


class _Owner:
    pass


class _Recording(WatchedModules[_Owner]):
    __slots__ = ("log",)

    def __init__(self, owner: _Owner, modules: dict[str, Any]) -> None:
        super().__init__(owner, modules)
        self.log: list[tuple[str, str]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.log.append(("set", key))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.log.append(("del", key))


CHANGES: dict[str, tuple[Callable[[dict[str, Any]], Any], list[tuple[str, str]]]] = {
    "update": (lambda d: d.update({"b": 20, "c": 3}), [("set", "b"), ("set", "c")]),
    "update_pairs_and_keywords": (lambda d: d.update([("c", 3)], b=20), [("set", "c"), ("set", "b")]),
    "setdefault_new": (lambda d: d.setdefault("c", 3), [("set", "c")]),
    "setdefault_present": (lambda d: d.setdefault("a", 99), []),
    "pop": (lambda d: d.pop("a"), [("del", "a")]),
    "pop_missing_with_default": (lambda d: d.pop("z", 0), []),
    "popitem": (lambda d: d.popitem(), [("del", "b")]),
    "clear": (lambda d: d.clear(), [("del", "a"), ("del", "b")]),
    "in_place_or": (lambda d: d.__ior__({"c": 3}), [("set", "c")]),
}


@pytest.mark.parametrize("change", CHANGES)
def test_each_dict_change_goes_through_setitem_or_delitem_with_a_plain_dicts_result(change: str) -> None:
    apply, expected_log = CHANGES[change]
    owner = _Owner()
    watched, plain = _Recording(owner, {"a": 1, "b": 2}), {"a": 1, "b": 2}
    returned, returned_plain = apply(watched), apply(plain)
    assert watched.log == expected_log
    assert dict(watched) == plain
    assert list(watched) == list(plain)
    if change != "in_place_or":
        assert returned == returned_plain


def test_missing_keys_raise_as_for_a_plain_dict() -> None:
    watched = _Recording(_Owner(), {})
    with pytest.raises(KeyError):
        watched.pop("absent")
    with pytest.raises(KeyError, match="empty"):
        watched.popitem()
    assert watched.log == []


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy, lambda d: pickle.loads(pickle.dumps(d))])
def test_a_copy_or_pickle_is_a_plain_dict_that_reports_to_no_owner(copier: Callable[[Any], Any]) -> None:
    owner = _Owner()
    watched = _Recording(owner, {"a": [1]})
    twin = copier(watched)
    assert type(twin) is dict
    assert twin == {"a": [1]}
    twin["b"] = 2
    assert "b" not in watched


def test_the_owner_is_held_weakly() -> None:
    owner = _Owner()
    watched = _Recording(owner, {})
    assert watched.owner() is owner
    del owner
    assert watched.owner() is None
