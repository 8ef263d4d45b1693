"""Module attributes imported on first use (PEP 562), so importing a package loads none of its heavy modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`: `names` maps an attribute to the module defining it.

    A loaded attribute is stored in `namespace` (the package's globals), so later lookups skip `__getattr__`.
    """

    def get_attribute(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def list_attributes() -> list[str]:
        return sorted({*namespace, *names})

    return get_attribute, list_attributes
