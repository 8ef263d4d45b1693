"""The code blocks of the spec and of our README run verbatim, in order, in one namespace."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from readme_blocks import python_blocks

ROOT = Path(__file__).parent.parent
SPEC = ROOT / "tests" / "spec" / "torchbricks-README.md"
README = ROOT / "README.md"


def _run_blocks(blocks: list[str], workdir: Path) -> tuple[dict[str, Any], list[str]]:
    """Runs each block in `workdir` (with tests/data reachable) and returns the namespace and each block's stdout."""
    (workdir / "tests").mkdir()
    (workdir / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    namespace: dict[str, Any] = {"display": lambda *objects: None, "__name__": "readme"}
    printed = []
    old_cwd = Path.cwd()
    os.chdir(workdir)
    try:
        for index, block in enumerate(blocks):
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                try:
                    exec(compile(block, f"<block {index}>", "exec"), namespace)
                except Exception as error:
                    error.add_note(f"in python block {index}:\n{block}")
                    raise
            printed.append(buffer.getvalue())
    finally:
        os.chdir(old_cwd)
    return namespace, printed


def _commented_output(block: str, after: str) -> str:
    """The `# ...` lines that follow the line starting with `after` in a block: the output the spec shows."""
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    expected = []
    for line in lines[start + 1 :]:
        if not line.startswith("# ") or line.startswith("# print("):
            break
        expected.append(line[2:])
    return "\n".join(expected)


@pytest.mark.slow
def test_spec_code_blocks_run_verbatim(tmp_path: Path) -> None:
    blocks = python_blocks(SPEC)
    _, printed = _run_blocks(blocks, tmp_path)

    concept2 = next(i for i, block in enumerate(blocks) if "BrickLoss(model=nn.CrossEntropyLoss()" in block and "print(" in block)
    assert printed[concept2].strip() == _commented_output(blocks[concept2], "print(brick_collection)").strip()
    outputs = next(i for i, block in enumerate(blocks) if 'print("Brick outputs:"' in block)
    assert printed[outputs].strip() == _commented_output(blocks[outputs], 'print("Brick outputs:"').strip()


def test_readme_code_blocks_run_and_print_what_they_show(tmp_path: Path) -> None:
    blocks = python_blocks(README)
    _, printed = _run_blocks(blocks, tmp_path)
    for block, output in zip(blocks, printed, strict=True):
        shown = _shown_output(block)
        if shown is not None:
            assert output.strip() == shown, f"the README block prints\n{output}\nbut shows\n{shown}\n{block}"


def _shown_output(block: str) -> str | None:
    """The `# ...` lines after a block's one `print(` line, when they are exact (no `...` standing for a value)."""
    lines = block.splitlines()
    prints = [i for i, line in enumerate(lines) if line.startswith("print(")]
    if len(prints) != 1:
        return None
    shown = list(itertools.takewhile(lambda line: line.startswith("# "), lines[prints[0] + 1 :]))
    text = "\n".join(line[2:] for line in shown).strip()
    return text if text and "..." not in text else None


def test_readme_block_for_042_users_prints_what_it_shows(tmp_path: Path) -> None:
    block = next(block for block in python_blocks(README) if "SUPPORTED_BACKBONES" in block)
    _, (printed,) = _run_blocks([block], tmp_path)

    expected = [_commented_output(block, "print(backbone("), _commented_output(block, "print(describe(")]
    assert printed.strip() == "\n".join(expected)


def test_readme_block_for_class_weights_prints_what_it_shows(tmp_path: Path) -> None:
    block = next(block for block in python_blocks(README) if "inverse_frequency_weights" in block)
    _, (printed,) = _run_blocks([block], tmp_path)

    assert printed.strip() == _commented_output(block, "print(inverse_frequency_weights(").strip()


def test_the_version_is_above_the_042_release_and_the_same_in_pyproject() -> None:
    import re

    import torchbricks

    pyproject = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', pyproject, flags=re.MULTILINE)
    assert match is not None
    assert match.group(1) == torchbricks.__version__
    assert tuple(int(part) for part in torchbricks.__version__.split(".")[:3]) > (0, 4, 2)
