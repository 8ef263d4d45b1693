"""Extracts the fenced python blocks of a markdown file so tests can run them in order."""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_MERMAID = re.compile(r"^```mermaid\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text())


def mermaid_blocks(path: Path) -> list[str]:
    return _MERMAID.findall(path.read_text())
