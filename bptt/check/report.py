"""A CheckReport as text (the CLI) and as one JSON object (--json)."""
from __future__ import annotations

import math
import textwrap
from typing import Any

import pandas as pd

from . import shapes
from .checker import CheckReport, UnitResult


def unit_title(unit: str) -> str:
    if unit == "arrays":
        return "arrays (an NPZ of your gradients)"
    letter, words = shapes.UNITS[unit]
    return f"({letter}) {words}"


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    """One line per quantity: worst errors over its steps, pass, how many steps fail, the first message."""
    df = pd.DataFrame(rows)
    out = []
    for q, g in df.groupby("quantity", sort=False):
        steps = g["t"].notna()
        msgs = [m for m in g["message"] if m]
        out.append({"quantity": q, "steps": int(steps.sum()) if steps.any() else "whole",
                    "max_abs_err": _max(g["max_abs_err"]), "max_rel_err": _max(g["max_rel_err"]),
                    "passed": bool(g["passed"].all()),
                    "failing": int((~g.loc[steps, "passed"]).sum()) if steps.any() else int((~g["passed"]).sum()),
                    "message": msgs[0] if msgs else ""})
    return pd.DataFrame(out)


def _max(s: pd.Series) -> float:
    v = s.dropna()
    return float(v.max()) if len(v) else math.nan


def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2e}"


def _wrap(text: str, indent: int, width: int = 116) -> str:
    """One long line wrapped to width, continuation lines indented."""
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=" " * indent, break_on_hyphens=False))


def _where(fd: dict) -> str:
    return f"{fd['quantity']}" + ("" if fd["t"] is None else f" at t = {fd['t']} (0-based)")


def unit_text(u: UnitResult) -> list[str]:
    lines = [f"  {unit_title(u.unit)}"]
    s = summary_frame(u.rows)
    w = max(10, *(len(q) for q in s["quantity"])) + 2
    lines.append(f"    {'quantity':<{w}}{'steps':>6}{'max abs err':>13}{'max rel err':>13}  result")
    for r in s.itertuples():
        verdict = "ok" if r.passed else ("FAIL" if r.steps == "whole" else f"FAIL ({r.failing} of {r.steps})")
        lines.append(f"    {r.quantity:<{w}}{r.steps!s:>6}{_fmt(r.max_abs_err):>13}{_fmt(r.max_rel_err):>13}  "
                     f"{verdict}")
    for r in u.rows:
        if r["message"]:
            lines.append(_wrap(f"    ! {r['message']}", 6))
    if u.first_divergence:
        lines.append(f"    first divergence: {_where(u.first_divergence)}")
    if u.probes:
        lines.append("    probes (your rnn_forward / rnn_backward on parts of the problem):")
        lines += [f"      {p.text()}" for p in u.probes]
        lines += [_wrap(f"      -> {e}", 9) for e in u.explanation]
    lines.append(_wrap(f"    diagnosis: {u.diagnosis['text']}", 6))
    return lines


def report_text(r: CheckReport) -> str:
    """The report as the CLI prints it."""
    lines = [f"BPTT Explorer check: {r.source}"]
    if r.usage:
        return r.usage
    if r.failure:
        f = r.failure
        what = {"timeout": "hit the time limit", "memory": "hit the memory limit", "crash": "ended the process"}.get(
            f.kind, "raised an exception")
        lines.append(f"your code {what} ({f.where}):")
        lines += ["  " + line for line in f.message.splitlines()]
        if r.output:
            lines.append("what your code printed last:")
            lines += ["  " + line for line in r.output.splitlines()]
        return "\n".join(lines)
    lines.append("recognised: " + "; ".join(unit_title(u) for u in r.units))
    lines += [f"note: {n}" for n in r.notes]
    for i, c in enumerate(r.configs, 1):
        sizes = ", ".join(f"{k}={v}" for k, v in c.config.to_dict().items() if k != "bug" and k != "truncate")
        lines.append("\n" + _wrap(f"config {i} of {len(r.configs)}: {sizes}", 2))
        for u in c.units:
            lines += unit_text(u)
    ff = r.first_failing()
    tol = r.configs[0].units[0].rows[0]["tol"] if r.configs and r.configs[0].units[0].rows else 0
    if ff is None:
        lines.append(f"\nPASS: everything agrees with PyTorch autograd (tolerance {tol:g} relative)")
    else:
        c, u = ff
        lines.append("\n" + _wrap(f"MISMATCH: first divergence {_where(u.first_divergence)} (config "
                                  f"{r.configs.index(c) + 1}, {unit_title(u.unit)})", 2))
        if u.diagnosis["bug"]:
            lines.append(f"this is the bug zoo's `{u.diagnosis['bug']}` (see it step by step: python -m bptt verify "
                         f"--bug {u.diagnosis['bug']})")
    return "\n".join(lines)


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else (None if math.isnan(v) else str(v))
    return v


def report_json(r: CheckReport) -> dict:
    """One JSON object: passed, api, first_divergence, diagnosis, configs (each with its rows)."""
    ff = r.first_failing()
    diag = ff[1].diagnosis if ff else {"bug": None, "text": "Every number agrees with PyTorch autograd."}
    if r.failure:
        diag = {"bug": None, "text": f"your code failed ({r.failure.kind}) in {r.failure.where}"}
    out = {
        "passed": r.passed,
        "api": r.api,
        "units": list(r.units),
        "first_divergence": ff[1].first_divergence if ff else None,
        "diagnosis": diag,
        "configs": [{
            "config": c.config.to_dict(),
            "passed": c.passed,
            "units": [{
                "unit": u.unit, "passed": u.passed, "first_divergence": u.first_divergence,
                "diagnosis": u.diagnosis, "zoo": u.zoo,
                "probes": [{"kind": p.kind, "n": p.n, "failing": p.failing, "text": p.text()} for p in u.probes],
                "explanation": u.explanation,
            } for u in c.units],
            "rows": [{**{k: _num(v) for k, v in row.items()}} for u in c.units for row in u.rows],
        } for c in r.configs],
    }
    if r.failure:
        out["error"] = {"kind": r.failure.kind, "where": r.failure.where, "message": r.failure.message}
    if r.notes:
        out["notes"] = r.notes
    return out
