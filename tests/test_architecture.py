"""Package structure: one error family and no import cycles."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pophealth
from pophealth.errors import PopHealthError

PACKAGE_DIR = Path(pophealth.__file__).parent


def _module_names() -> list[str]:
    names = ["pophealth"]
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="pophealth."):
        names.append(info.name)
    return sorted(names)


def _module_path(name: str) -> Path:
    parts = name.split(".")[1:]
    package = PACKAGE_DIR.joinpath(*parts, "__init__.py")
    return package if package.exists() else PACKAGE_DIR.joinpath(*parts).with_suffix(".py")


def import_graph() -> dict[str, set[str]]:
    """Module -> pophealth modules it imports anywhere in its source (also inside functions)."""
    modules = set(_module_names())
    graph: dict[str, set[str]] = {}
    for name in modules:
        path = _module_path(name)
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import
                    base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        edges.add(sub)
                    elif target in modules:
                        edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "pophealth.profile_frames" in graph["pophealth.api"]
    assert "pophealth.sources.common" in graph["pophealth.sources.census"]


def test_every_exception_class_derives_from_pophealth_error():
    defined = []
    for name in _module_names():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                defined.append(cls)
    assert len(defined) >= 10
    outside = [
        f"{c.__module__}.{c.__qualname__}" for c in defined if not issubclass(c, PopHealthError)
    ]
    assert not outside, f"exception classes outside the PopHealthError family: {outside}"
