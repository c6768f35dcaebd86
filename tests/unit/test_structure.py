"""The package's shape: streamlit only in bptt/app/, and no import cycles (imports inside functions count too, so a
cycle cannot hide in a function body)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "bptt"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, node: ast.AST) -> list[str]:
    """The absolute module names one import statement names (relative imports resolved; `from . import x` gives
    both the package and package.x)."""
    pkg = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            up = pkg.split(".")
            up = up[: len(up) - (node.level - 1)]
            base = ".".join(up + ([base] if base else []))
        return [base] + [f"{base}.{a.name}" for a in node.names]
    return []


def package_imports(path: Path) -> set[str]:
    """The bptt modules this file imports, anywhere in it."""
    known = {module_name(p) for p in MODULES}
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        out |= {name for name in imported(path, node) if name in known}
    return out - {module_name(path)}


def test_streamlit_is_imported_only_in_the_app():
    offenders = []
    for path in MODULES:
        if path.relative_to(PACKAGE).parts[0] == "app":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if any(name == "streamlit" or name.startswith("streamlit.") for name in imported(path, node)):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"core modules import streamlit: {offenders} (keep streamlit inside bptt/app/)"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = {module_name(p): package_imports(p) for p in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
