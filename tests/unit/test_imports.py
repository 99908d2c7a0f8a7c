"""The package's import graph: no circles, and minirun-oci reaches only the shared core's public names.

Every import counts as an arrow, at module level or inside a function: minirun imports
lazily for start-up time (entry.py), and a lazy import is still a dependency; hiding one
in a function would hide a circle, not remove it. ``if TYPE_CHECKING:`` blocks do not
count (they never run). A package's __init__ is not implied by importing one of its
modules: Python runs it first, but it is an arrow only when written.
"""

from __future__ import annotations

import ast
import os

import minirun

PACKAGE_DIR = os.path.dirname(minirun.__file__)


def _modules() -> dict[str, str]:
    """module name -> source file, for every .py under minirun/."""
    found = {}
    for directory, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(directory, name), os.path.dirname(PACKAGE_DIR))
                module = rel[:-3].replace(os.sep, ".").removesuffix(".__init__")
                found[module] = os.path.join(directory, name)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Import statements anywhere in the tree except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str, path: str, modules: dict[str, str]) -> set[tuple[str, str]]:
    """(imported module, name) pairs of ``module``; name is "" for a whole module. A name
    used as an attribute of an imported module (``container._helper()``) counts as imported."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found: set[tuple[str, str]] = set()
    bound: dict[str, str] = {}  # local name -> the module it stands for
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "minirun":
                    found.add((alias.name, ""))
                    if alias.asname:
                        bound[alias.asname] = alias.name
            continue
        if node.level:
            base = package.split(".")
            base = base[:len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != "minirun":
            continue
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            found.add((sub, "") if sub in modules else (target, alias.name))
            if sub in modules:
                bound[alias.asname or alias.name] = sub
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            found.add((bound[node.value.id], node.attr))
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[tuple[str, str]]]]:
    """(module -> modules it imports, module -> (module, name) pairs it imports)."""
    modules = _modules()
    names = {m: imports_of(m, p, modules) for m, p in modules.items()}
    graph = {m: {target for target, _ in pairs if target in modules and target != m} for m, pairs in names.items()}
    return graph, names


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_finds_a_circle():
    """Positive control: the detector sees a two-module and a three-module circle."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_of_resolves_relative_and_function_level_imports(tmp_path):
    """Positive control for the parser: relative, nested and TYPE_CHECKING imports."""
    source = tmp_path / "x.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import errors\n"
        "from .errors import SpecError\n"
        "if TYPE_CHECKING:\n"
        "    from .spec import Limits\n"
        "def f():\n"
        "    from ..container import _private\n"
        "    from .. import state as st\n"
        "    import minirun.state\n"
        "    st._lock()\n")
    modules = {"minirun.oci.x": str(source), "minirun.oci.errors": "", "minirun.container": "",
               "minirun.state": ""}
    assert imports_of("minirun.oci.x", str(source), modules) == {
        ("minirun.oci.errors", ""), ("minirun.oci.errors", "SpecError"), ("minirun.container", "_private"),
        ("minirun.state", ""), ("minirun.state", "_lock")}


def test_no_import_circles():
    graph, _ = import_graph()
    assert "minirun.cli" in graph["minirun.entry"]  # the graph is real: entry hands all but `run` to click
    assert cycles(graph) == []


def test_oci_imports_only_public_core_names():
    """minirun-oci is a front end over the core: nothing private of another module, nothing of
    the other front end (lifecycle is `minirun run -d`/exec/attach's orchestration)."""
    _, names = import_graph()
    assert any(m.startswith("minirun.oci.") for m in names)
    bad = []
    for module, pairs in sorted(names.items()):
        if not module.startswith("minirun.oci"):
            continue
        for target, name in sorted(pairs):
            if target == module:
                continue
            if target in ("minirun.lifecycle", "minirun.entry", "minirun.cli") or \
                    (name.startswith("_") and not name.startswith("__")):
                bad.append(f"{module} -> {target}{'.' + name if name else ''}")
    assert bad == []
