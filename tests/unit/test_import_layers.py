"""The packages are floors in data-flow order, and imports only point down or sideways.

``schemas`` (the wire contract and the root exception) is the ground floor; ``index_store``
(vectors and their update rules), ``processors`` (Kafka-free logic), ``models`` (encoder and
GR), ``streams`` (Kafka roles), ``service`` (the query API) and ``feedline`` (CLI, demo) stand
on it in that order. A module may import its own package and the floors below, never a floor
above, and no set of modules may import each other in a circle, lazily or for type checking
alike: a circle means two modules that cannot be understood, tested or moved apart.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOORS = ("schemas", "index_store", "processors", "models", "streams", "service", "feedline")


def module_files() -> dict[str, Path]:
    """Module name → file, for every module of the floors."""
    found = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, known: Mapping[str, Path]) -> set[str]:
    """The known modules ``path`` imports anywhere in it (``from a import b`` counts ``a.b``
    when that is a module, else ``a``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if name in known:
                    found.add(name)
                elif node.module in known:
                    found.add(node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan's algorithm), each sorted.
    Recursive: import chains are a few dozen modules deep."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def floor(module: str) -> int:
    return FLOORS.index(module.split(".")[0])


def upward(graph: Mapping[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if floor(target) > floor(source)
    )


def test_no_module_imports_a_higher_floor() -> None:
    assert upward(import_graph()) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert circles(import_graph()) == []


def test_the_checks_find_a_circle_and_an_upward_import() -> None:
    graph = {
        "schemas.a": {"streams.b"},
        "streams.b": {"streams.c"},
        "streams.c": {"streams.b", "schemas.a"},
        "service.d": {"streams.b"},
    }
    assert circles(graph) == [["schemas.a", "streams.b", "streams.c"]]
    assert upward(graph) == ["schemas.a imports streams.b"]
    assert len(import_graph()) > 150  # every module of the floors was read
