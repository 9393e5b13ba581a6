"""Test helpers come from ``mlops_assets_tests.harness``, never from test modules or conftests.

pytest imports every test module and conftest by itself; importing one from another module runs
it twice under two names (or registers its fixtures where they do not belong), so shared code
lives in the harness. Checked with ``ast`` over the files, without importing them; ``bench/``
(which starts its servers through the harness) is checked too.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PACKAGE = TESTS.name
CHECKED = sorted(
    path
    for folder in (TESTS, ROOT / "bench")
    for path in folder.rglob("*.py")
    if "__pycache__" not in path.parts
)


def _is_test_module(name: str) -> bool:
    return name == "conftest" or name.startswith("test_")


def _module_file(dotted: str) -> Path | None:
    """The file of a module of this package (``mlops_assets_tests.x.y``), if there is one."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    """The module an ``ImportFrom`` names, relative imports resolved against ``path``."""
    if not node.level:
        return node.module or ""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def forbidden_imports(source: str, path: Path) -> list[str]:
    """``line: module`` for each import of a test module or conftest of this package in
    ``source``, the text of the file ``path``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            modules = [module]
            # ``from mlops_assets_tests.serving import conftest``: the names may be modules too
            modules += [
                f"{module}.{alias.name}"
                for alias in node.names
                if _is_test_module(alias.name) and _module_file(f"{module}.{alias.name}")
            ]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == PACKAGE and any(_is_test_module(part) for part in parts[1:]):
                found.append(f"{node.lineno}: {module}")
    return found


def test_the_check_sees_the_files() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in CHECKED}
    assert f"{PACKAGE}/conftest.py" in names
    assert f"{PACKAGE}/harness/processes.py" in names
    assert "bench/serving.py" in names


def test_the_check_finds_such_imports() -> None:
    source = """\
from mlops_assets_tests.conftest import point_at_home
from mlops_assets_tests.serving.test_segment_service import records
import mlops_assets_tests.ingest.test_sensors
from mlops_assets_tests.serving import conftest
from . import test_http
from .conftest import spec
from mlops_assets_tests.harness.records import record
from mlops_assets_tests.integration.stack import UC
from mlops_assets.ops import serve


def later():
    from mlops_assets_tests.serving.conftest import start_bento
"""
    found = forbidden_imports(source, TESTS / "serving" / "test_sample.py")
    assert found == [
        "1: mlops_assets_tests.conftest",
        "2: mlops_assets_tests.serving.test_segment_service",
        "3: mlops_assets_tests.ingest.test_sensors",
        "4: mlops_assets_tests.serving.conftest",
        "5: mlops_assets_tests.serving.test_http",
        "6: mlops_assets_tests.serving.conftest",
        "13: mlops_assets_tests.serving.conftest",
    ]


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        path.relative_to(ROOT).as_posix(): found
        for path in CHECKED
        if (found := forbidden_imports(path.read_text(), path))
    }
    assert offenders == {}, "move what these import to mlops_assets_tests/harness/"


def test_each_file_is_one_xdist_group(request) -> None:
    """``make test`` relies on xdist groups (a file's module fixtures built once, the trained home
    trained once); pytest 9.2 with xdist 3.8 dropped them without a word (see pyproject)."""
    groups = [m.args[0] for m in request.node.iter_markers("xdist_group")]
    assert groups == [request.node.nodeid.split("::")[0].split("@")[0]]
    if getattr(request.config.option, "loadgroup", False):  # a worker of `-n N --dist loadgroup`
        assert request.node.nodeid.endswith(f"@{groups[0]}"), request.node.nodeid
