"""The suite's own house rules: helpers live in helper modules, not in test modules.

Importing one test module from another runs its module-level code and collects its tests a
second time under another name, and couples unrelated tests. Shared helpers belong in a
``conftest.py`` (fixtures), a helper module beside the tests (``snapshot_tables.py``,
``kafka_tools.py``) or ``tests/support/`` (shared across tiers).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[str]:
    """Absolute module names ``path`` imports (``from x import y`` counts ``x`` and ``x.y``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in imported_modules(path)
        if name.startswith("tests.") and name.split(".")[-1].startswith("test_")
    ]
    assert offenders == []


def test_the_check_sees_an_import_of_a_test_module(tmp_path: Path) -> None:
    module = tmp_path / "helper.py"
    module.write_text("from tests.unit.index_store.test_store import update\nimport os\n")
    assert "tests.unit.index_store.test_store" in imported_modules(module)
