"""A structure counter: every change to a collection's wiring bumps it, so cached plans know they are stale."""

from __future__ import annotations


class StructureEpoch:
    value = 0


def bump() -> None:
    StructureEpoch.value += 1
