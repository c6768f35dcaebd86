"""Every session-state and widget key of the app is a named constant, defined once (no string literal as a key)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_FILES = sorted([*(ROOT / "bptt" / "app").glob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "streamlit_app.py"])


def literal_keys(path: Path) -> list[str]:
    """Places where a string literal (or f-string) is used as a widget key= or a session_state subscript/get/pop."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        literal = isinstance(node, ast.keyword) and isinstance(node.value, (ast.Constant, ast.JoinedStr))
        if literal and node.arg == "key":
            if isinstance(node.value, ast.JoinedStr):
                # an f-string is fine when it only decorates a named prefix: f"{PREFIX}_{n}"
                first = node.value.values[0]
                if isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name):
                    continue
            out.append(f"line {node.lineno}: key={ast.unparse(node.value)}")
        target = None
        if isinstance(node, ast.Subscript):
            target, arg = node.value, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop",
                                                                                                        "setdefault"):
            target, arg = node.func.value, (node.args[0] if node.args else None)
        if (target is not None and isinstance(target, ast.Attribute) and target.attr == "session_state"
                and isinstance(arg, ast.Constant)):
            out.append(f"line {node.lineno}: session_state[{arg.value!r}]")
    return out


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_keys_are_named_constants(path: Path) -> None:
    assert not literal_keys(path), f"{path.relative_to(ROOT)} uses literal keys: {literal_keys(path)}"
