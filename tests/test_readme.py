"""The code blocks of the spec and of our README run verbatim, in order, in one namespace."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
from pathlib import Path
from typing import Any

import pytest
from readme_blocks import python_blocks

ROOT = Path(__file__).parent.parent
SPEC = ROOT / "tests" / "spec" / "torchbricks-README.md"
README = ROOT / "README.md"


def _run_blocks(blocks: list[str], workdir: Path) -> tuple[dict[str, Any], list[str]]:
    """Runs each block in `workdir` (with tests/data reachable) and returns the namespace and what each block's
    `print` calls printed (other output, such as Lightning's tables, is left out)."""
    (workdir / "tests").mkdir()
    (workdir / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    buffer = io.StringIO()

    def recorded_print(*values: object, **options: Any) -> None:
        print(*values, **{**options, "file": buffer})

    namespace: dict[str, Any] = {"display": lambda *objects: None, "__name__": "readme", "print": recorded_print}
    printed = []
    old_cwd = Path.cwd()
    os.chdir(workdir)
    try:
        for index, block in enumerate(blocks):
            buffer.seek(0)
            buffer.truncate()
            with contextlib.redirect_stdout(io.StringIO()):
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


@pytest.mark.slow
def test_every_output_the_readme_shows_is_what_its_block_prints(tmp_path: Path) -> None:
    text = README.read_text()
    blocks = python_blocks(README)
    _, printed = _run_blocks(blocks, tmp_path)

    statements = 0
    for block, output in zip(blocks, printed, strict=True):
        shown = _shown_outputs(block, _mermaid_after(text, block))
        statements += len(shown)
        expected = "\n".join(shown)
        assert _matches(expected, output), f"the README block prints\n{output}\nbut shows\n{expected}\n\n{block}"
    # Every print of the README shows its output (none is left unchecked), and the README has prints to check.
    assert statements == sum(len(re.findall(r"^\s*print\(", block, flags=re.MULTILINE)) for block in blocks) >= 15


def _shown_outputs(block: str, mermaid_after: str | None) -> list[str]:
    """What each `print(...)` statement of a block shows: the `# ` lines after it, else its trailing comment, else
    the mermaid block that follows the python block in the README (the graph it prints). `...` stands for any text."""
    lines = block.splitlines()
    shown = []
    for index, line in enumerate(lines):
        if not line.lstrip().startswith("print("):
            continue
        end = index
        while _depth("\n".join(lines[index : end + 1])) > 0:
            end += 1
        after = list(itertools.takewhile(lambda line: line.startswith("# "), lines[end + 1 :]))
        trailing = lines[end].partition(")  # ")[2]
        if after:
            shown.append("\n".join(line[2:] for line in after))
        elif trailing:
            shown.append(trailing)
        elif mermaid_after is not None:
            shown.append(mermaid_after)
        else:
            raise AssertionError(f"a README print shows no output:\n{line}\n\n{block}")
    return shown


def _depth(code: str) -> int:
    return sum(code.count(opening) - code.count(closing) for opening, closing in ("()", "[]", "{}"))


def _mermaid_after(text: str, block: str) -> str | None:
    """The mermaid block right after a python block of the README, if any."""
    rest = text[text.index(block) + len(block) :].removeprefix("```").lstrip("\n")
    return rest.removeprefix("```mermaid\n").partition("```")[0].rstrip("\n") if rest.startswith("```mermaid") else None


def _matches(expected: str, output: str) -> bool:
    """The printed text equals the shown one, `...` standing for any text; runs of spaces and line breaks are one space
    (the README wraps long messages)."""
    import doctest

    checker = doctest.OutputChecker()
    return checker.check_output(expected.strip() + "\n", output.strip() + "\n", doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


def test_the_readme_check_fails_on_a_wrong_or_missing_output() -> None:
    block = "x = 2\nprint(x + 1)\n# 3\nprint([x] * 2)  # [2, ...]\n"
    assert _shown_outputs(block, None) == ["3", "[2, ...]"]
    assert _matches("3\n[2, ...]", "3\n[2, 2]\n")
    assert not _matches("3\n[2, ...]", "4\n[2, 2]\n")
    assert not _matches("3\n[2, ...]", "3\n")  # a print that printed nothing (an except that never ran)
    with pytest.raises(AssertionError, match="shows no output"):
        _shown_outputs("print(1)\n", None)


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
