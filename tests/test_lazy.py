"""Lazy module attributes: a name is imported on first use and kept, an unknown one raises AttributeError."""

from __future__ import annotations

import subprocess
import sys

import pytest

from torchbricks._lazy import lazy_attributes


def test_a_lazy_attribute_is_imported_on_first_use_and_stored() -> None:
    namespace: dict[str, object] = {}
    get, listing = lazy_attributes("package", {"sqrt": "math"}, namespace)
    import math

    assert get("sqrt") is math.sqrt
    assert namespace == {"sqrt": math.sqrt}
    assert listing() == ["sqrt"]


def test_an_unknown_attribute_raises_attribute_error_naming_the_package() -> None:
    get, _ = lazy_attributes("package", {}, {})
    with pytest.raises(AttributeError, match="module 'package' has no attribute 'missing'"):
        get("missing")


def test_importing_the_package_imports_neither_torch_lightning_nor_torchvision() -> None:
    code = "import sys, torchbricks; print(sorted(m for m in ('torch', 'lightning', 'torchvision') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "[]"
