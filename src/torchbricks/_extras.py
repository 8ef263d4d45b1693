"""Lazy imports of optional integrations: the one `require` every optional import goes through."""

from __future__ import annotations

import importlib
from types import ModuleType

from torchbricks.errors import MissingExtraError

__all__ = ["require"]


def require(
    module: str, extra: str | None = None, *, package: str | None = None, why: str | None = None, alternative: str | None = None
) -> ModuleType:
    """Imports `module`, or raises `MissingExtraError` saying what to install.

    Args:
        module: The module to import, e.g. `"torchvision.models"`.
        extra: The torchbricks extra that provides it (`pip install "torchbricks[extra]"`).
        package: For a package no extra provides: its pip name (`pip install package`).
        why: What needs it, said first in the message.
        alternative: Another way out, said last (`"or pass display_function=..."`).

    Example:
        >>> require("json").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if extra is not None:
            install = f'it comes with the {extra!r} extra: pip install "torchbricks[{extra}]"'
        else:
            install = f"pip install {package or module.split('.', maxsplit=1)[0]}"
        reason = f"{why}, which is not installed" if why else f"{module!r} is not installed"
        other = f", {alternative}" if alternative else ""
        raise MissingExtraError(f"{reason}; {install}{other}") from error
