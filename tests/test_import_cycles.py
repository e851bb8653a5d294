"""No runtime import cycle among the modules of ``ucs/`` (issue 15).

Read from the source with :mod:`ast`, nothing imported: every ``import`` a
module runs -- at its top or inside a function, which is a cycle put off, not
removed -- except those under ``if TYPE_CHECKING:``.  ``from pkg import name``
is an edge to ``pkg`` (its ``__init__`` runs and is read) and to ``pkg.name``
when that is a module; the parent packages a dotted import runs on the way are
not counted (every submodule would be in a cycle with its package).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ucs"

#: Cycles being taken apart right now by other parts of issue 15, each as the
#: set of its modules: a cycle within one of these sets passes, any other
#: fails.  Remove an entry when its cycle is gone.
ALLOWED: list[frozenset[str]] = [
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _runtime_imports(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                source = _resolve(name, path.name == "__init__.py", node)
                targets = [source] + [f"{source}.{a.name}" for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _path(graph: dict[str, set[str]], component: frozenset[str]) -> str:
    """One cycle through ``component``, for the failure message."""
    start = min(component)
    seen = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return " -> ".join(seen[v] + [start])
            if w not in seen:
                seen[w] = seen[v] + [w]
                todo.append(w)
    return ", ".join(sorted(component))  # pragma: no cover


def test_no_runtime_import_cycle() -> None:
    graph = import_graph()
    # A listed cycle may shrink or go while it is being taken apart; it may not grow.
    new = [c for c in cycles(graph) if not any(c <= allowed for allowed in ALLOWED)]
    assert not new, "runtime import cycles:\n" + "\n".join(_path(graph, c) for c in new)


def test_the_finder_sees_a_function_level_cycle(tmp_path: Path) -> None:
    graph = {"ucs.a": {"ucs.b"}, "ucs.b": {"ucs.a"}, "ucs.c": {"ucs.a"}}
    assert cycles(graph) == [frozenset({"ucs.a", "ucs.b"})]
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import ucs.hidden\n"
        "def f():\n    from ucs.sim import pbx\n"
    )
    names = [getattr(n, "module", None) or n.names[0].name for n in _runtime_imports(tree)]
    assert names == ["typing", "ucs.sim"]
