"""The package's import graph: no cycles (imports inside functions and under TYPE_CHECKING count), a torch-free graph core."""

from __future__ import annotations

import ast
from pathlib import Path

import torchbricks

PACKAGE_ROOT = Path(torchbricks.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports anywhere in its source (top level, functions, TYPE_CHECKING blocks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES}
            found.update(submodules)
            if len(submodules) < len(node.names):  # a name read from the module itself, not only its submodules
                found.add(module)
    return found


def _internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        graph[name] = {module for module in _imports(name, path) if module in MODULES and module != name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def _closure(start: str) -> set[str]:
    """`start` and every module it imports, transitively, including third-party top-level names."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in MODULES:
            pending += list(_imports(name, MODULES[name]))
    return seen


def test_the_import_graph_of_the_package_has_no_cycle() -> None:
    graph = _internal_graph()
    assert len(graph) > 20  # the walk found the package
    assert _find_cycle(graph) is None, f"import cycle: {' -> '.join(_find_cycle(graph) or [])}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_are_counted() -> None:
    assert "torchbricks._checkpoint" in _imports("torchbricks.brick_collection", MODULES["torchbricks.brick_collection"])


def test_the_graph_logic_and_the_mermaid_renderer_import_no_torch() -> None:
    for module in ("torchbricks._graph", "torchbricks._mermaid", "torchbricks.tags", "torchbricks.errors"):
        third_party = {name.split(".")[0] for name in _closure(module) if not name.startswith("torchbricks")}
        assert not third_party & {"torch", "torchmetrics", "numpy"}, (module, sorted(third_party))
