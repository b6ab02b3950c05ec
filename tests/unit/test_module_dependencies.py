"""How the project's modules depend on each other, read from their source (nothing imported):
no import cycle among shared/, services/ and rapport/; the kernel (shared/) imports nothing
from services/; no module reaches for another module's private (``_name``) names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "rapport")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(*folders: str) -> dict[str, Path]:
    return {
        _module_name(path): path
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "versions" not in path.parts  # Alembic revisions are loaded by Alembic, not imported
    }


PROJECT = _modules(*PACKAGES)


def _imports(name: str, path: Path) -> Iterator[tuple[str, str, int]]:
    """(imported module, name imported from it or "", line) for every import anywhere in the
    file (a deferred import inside a function is a dependency too); relative imports resolved."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                yield module, alias.name, node.lineno


def _project_module(name: str) -> str | None:
    """The project module that importing ``name`` runs (its longest known prefix)."""
    while name and name not in PROJECT:
        name = name.rpartition(".")[0]
    return name or None


def _dependencies() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in PROJECT}
    for name, path in PROJECT.items():
        for module, imported, _ in _imports(name, path):
            submodule = f"{module}.{imported}"
            target = _project_module(submodule if submodule in PROJECT else module)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_the_projects_modules() -> None:
    assert _cycles(_dependencies()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_kernel_imports_nothing_from_the_services() -> None:
    importers = {
        name
        for name, targets in _dependencies().items()
        if name.split(".")[0] == "shared" and any(t.split(".")[0] == "services" for t in targets)
    }
    assert importers == set()


def _private_uses(name: str, path: Path) -> Iterator[tuple[str, str]]:
    """(the other module, where and what) for ``from m import _x`` and ``m._x``, where ``m`` is
    another module of the project (its own package, bench/ or tests/)."""
    ours = (*PACKAGES, "bench", "tests")
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name
    for module, imported, line in _imports(name, path):
        if module.split(".")[0] not in ours:
            continue
        if imported.startswith("_") and not imported.startswith("__"):
            yield module, f"{path.relative_to(ROOT)}:{line}: from {module} import {imported}"
        elif imported:
            aliases[imported] = f"{module}.{imported}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and (node.value.id in aliases)
        ):
            module = aliases[node.value.id] or node.value.id
            if module.split(".")[0] in ours:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                yield module, f"{where}: {node.value.id}.{node.attr}"


def test_the_tooling_uses_no_other_modules_private_names() -> None:
    """Nothing in rapport/ and bench/ (the CLI, the tooling, the benchmarks) uses another
    module's private names, and nothing uses rapport's."""
    tooling = _modules("rapport", "bench")
    found = [
        use
        for name, path in {**tooling, **_modules("shared", "services", "tests")}.items()
        for module, use in _private_uses(name, path)
        if name in tooling or module.split(".")[0] == "rapport"
    ]
    assert found == []
