"""The package's layers import one way: the contracts, no cycle, imports inside functions only
for a heavy library.

The import-linter contracts (``[tool.importlinter]`` in ``pyproject.toml``) check that a layer
imports only layers below it and that pure libraries never import Dagster. They do not see a
cycle between two modules of one layer, so :func:`test_no_import_cycle_between_modules` finds
every strongly connected set of modules in grimp's import graph, which counts imports inside
functions too: a cycle hidden in a function is still a cycle of responsibilities. An import
inside a function is there only to keep a heavy library off the start-up path (the import cost
test in ``test_definitions.py`` guards that path); anything else belongs at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parent.parent / "mlops_assets"
HEAVY = {
    "bentoml",
    "boto3",
    "botocore",
    "catboost",
    "cloudpickle",
    "dagster_k8s",
    "matplotlib",
    "mlflow",
    "optuna",
    "psycopg2",
    "pyarrow",
    "scipy",
    "sklearn",
    "sqlalchemy",
    "threadpoolctl",
}
"""Libraries costing seconds to import (or optional), imported where they are used."""


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint)], capture_output=True, text=True, cwd=PACKAGE.parent, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (its own package's init excluded)."""
    graph = grimp.build_graph("mlops_assets")
    return {
        module: {
            other
            for other in graph.find_modules_directly_imported_by(module)
            if not module.startswith(other + ".")
        }
        for module in graph.modules
    }


def test_no_import_cycle_between_modules() -> None:
    assert strongly_connected(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path, monkeypatch) -> None:
    """grimp's graph has imports inside functions, so a hidden cycle is a cycle."""
    package = tmp_path / "hidden_cycle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("from hidden_cycle import second\n")
    (package / "second.py").write_text("def late():\n    from hidden_cycle import first\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("hidden_cycle", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert strongly_connected(edges) == [["hidden_cycle.first", "hidden_cycle.second"]]


def module_trees() -> list[tuple[str, ast.Module]]:
    """Every module of the package with its syntax tree."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, ast.parse(path.read_text(), str(path))))
    return found


def function_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements inside a function or method body."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found.append(inner)
    return found


def imported_roots(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The top-level packages an import statement reads."""
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0] if not node.level else "mlops_assets"}
    return {alias.name.split(".")[0] for alias in node.names}


def test_imports_inside_functions_are_heavy_libraries_only() -> None:
    offending = sorted(
        f"{module}:{node.lineno} imports {', '.join(sorted(roots))}"
        for module, tree in module_trees()
        for node in function_level_imports(tree)
        if not (roots := imported_roots(node)) <= HEAVY
    )
    assert offending == []
