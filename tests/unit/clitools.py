"""Shared helpers for the command-line tests."""
from __future__ import annotations

from bptt.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """bptt.cli.main(argv) in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, out: str, err: str, flag: str) -> None:
    """Exit 2, nothing on stdout, and one line on stderr that names the flag, with no traceback."""
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in err
