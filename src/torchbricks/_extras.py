"""Lazy imports of optional integrations, with an error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from torchbricks.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Imports `module`, or raises `MissingExtraError` telling which torchbricks extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f'{module!r} is not installed; it comes with the {extra!r} extra: pip install "torchbricks[{extra}]"'
        ) from error
