"""A CheckReport as text (the CLI) and as one JSON object (--json)."""
from __future__ import annotations

import math
import textwrap
from typing import Any

import pandas as pd

from . import gated
from .checker import CheckReport, UnitResult


def unit_title(unit: str) -> str:
    if unit == "arrays":
        return "arrays (an NPZ of your gradients)"
    letter, words = gated.unit_words(unit)
    return f"({letter}) {words}"


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    """One line per quantity: worst errors over its steps, pass, how many steps fail, the first message."""
    df = pd.DataFrame(rows)
    out = []
    for q, g in df.groupby("quantity", sort=False):
        steps = g["t"].notna()
        msgs = [m for m in g["message"] if m]
        n_steps = g.loc[steps, "t"].nunique()               # gate blocks of one step count once
        n_failing = g.loc[steps & ~g["passed"], "t"].nunique()
        out.append({"quantity": q, "steps": int(n_steps) if steps.any() else "whole",
                    "max_abs_err": _max(g["max_abs_err"]), "max_rel_err": _max(g["max_rel_err"]),
                    "passed": bool(g["passed"].all()),
                    "failing": int(n_failing) if steps.any() else int((~g["passed"]).sum()),
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


def _name(fd: dict) -> str:
    """A quantity with its gate block: "d_gates [f]", "dc_prev"."""
    return fd["quantity"] + (f" [{fd['gate']}]" if fd.get("gate") else "")


def _where(fd: dict) -> str:
    return _name(fd) + ("" if fd["t"] is None else f" at t = {fd['t']} (0-based)")


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
        lines.append("    probes (your whole-sequence functions on parts of the problem):")
        lines += [f"      {p.text()}" for p in u.probes]
        lines += [_wrap(f"      -> {e}", 9) for e in u.explanation]
    lines.append(_wrap(f"    diagnosis: {u.diagnosis['text']}", 6))
    return lines


def _sizes(cfg: Any) -> str:
    return f"I={cfg.input_size}, H={cfg.hidden_size}, T={cfg.seq_len}, B={cfg.batch_size}"


def headline(r: CheckReport, screen: bool = False) -> dict:
    """The one story of a check: {"passed", "title" (what and where), "text" (why and what to change), "bug", "unit",
    "config"}. It comes from the first failing unit of the first failing config; units come in recognition order, so
    step functions lead when a file has them too. screen: t 1-based, as the app shows it."""
    ff = r.first_failing()
    if ff is None:
        tol = r.configs[0].units[0].rows[0]["tol"] if r.configs and r.configs[0].units[0].rows else 0
        return {"passed": True, "title": f"PASS: everything agrees with PyTorch autograd ({r.api}, "
                                         f"{len(r.configs)} config{'s' if len(r.configs) != 1 else ''}, tolerance "
                                         f"{tol:g} relative)", "text": "", "bug": None, "unit": None, "config": None}
    c, u = ff
    second = " on the second call" if u.state is not None and all(row["passed"] for row in u.rows) else ""
    fd = u.first_divergence
    where = _where(fd) if fd else "the outputs"
    if screen and fd and fd["t"] is not None:
        where = f"{_name(fd)} at t = {fd['t'] + 1} (0-based t = {fd['t']} in the files)"
    return {"passed": False, "title": f"MISMATCH: {where}{second}, in your {unit_title(u.unit)} (config "
                                      f"{r.configs.index(c) + 1}: {_sizes(c.config)})",
            "text": u.diagnosis["text"], "bug": u.diagnosis.get("bug"), "unit": u.unit, "config": c.config}


def short(unit: str) -> str:
    """A unit in a few characters: "(a) step", "(c) sequence", "(d) class", "arrays"."""
    try:
        letter = gated.unit_words(unit)[0]
    except KeyError:
        return unit
    kind = unit.split("-")[-1]
    return f"({letter}) {kind}" if kind != "class" else f"({letter}) class"


def evidence(u: UnitResult) -> list[str]:
    """One unit's evidence in a few short lines: what differs (and at how many steps), what agrees, the first shape
    message, what the probes showed, state kept between calls."""
    s = summary_frame(u.rows)
    bad = [f"{r.quantity} ({r.failing} of {r.steps} steps)" if r.steps != "whole" else r.quantity
           for r in s.itertuples() if not r.passed]
    good = [r.quantity for r in s.itertuples() if r.passed]
    letter = short(u.unit)
    if not bad and u.state is None:
        return [f"{letter}: everything agrees"]
    if not bad:
        lines = [f"{letter}: the first call agrees everywhere; a second call on the same problem gives other "
                 f"{', '.join(u.state['differs'][:6])}"]
    else:
        first = "" if not u.first_divergence else f"first: {_where(u.first_divergence)}; "
        lines = [f"{letter}: {first}differs: {', '.join(bad)}" + (f"; agrees: {', '.join(good)}" if good else "")]
        if u.state is not None:
            lines.append(f"  a second call on the same problem gives other {', '.join(u.state['differs'][:6])}")
    msgs = list(dict.fromkeys(row["message"] for row in u.rows if row["message"]))
    if msgs:
        lines.append(f"  ! {msgs[0]}" + (f" (and {len(msgs) - 1} more like it)" if len(msgs) > 1 else ""))
    if u.probes:
        lines += [f"  probes: {e}" for e in u.explanation[:1]]
    return lines


def _same_story(a: UnitResult, b: UnitResult) -> bool:
    """Whether two configs' results of one shape tell the same story (the same diagnosis, the same quantity)."""
    fa, fb = a.first_divergence or {}, b.first_divergence or {}
    return (a.passed == b.passed and fa.get("quantity") == fb.get("quantity")
            and a.diagnosis.get("bug") == b.diagnosis.get("bug") and a.diagnosis.get("hint") == b.diagnosis.get("hint"))


def report_text(r: CheckReport, verbose: bool = False) -> str:
    """The report as the CLI prints it: the headline (what, where, why, what to change), then the evidence per config
    and shape; the full tables only with verbose."""
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
    lines.append(_wrap("recognised: " + "; ".join(unit_title(u) for u in r.units), 2))
    lines += [_wrap(f"note: {n}", 2) for n in r.notes]
    h = headline(r)
    lines.append("")
    lines.append(_wrap(h["title"], 2))
    if not h["passed"]:
        lines.append(_wrap(f"why: {h['text']}", 2))
        if h["bug"]:
            lines.append(f"see it step by step: python -m bptt verify --bug {h['bug']}")
        lines.append("")
        lines.append("evidence:")
        for i, c in enumerate(r.configs, 1):
            if i > 1 and len(c.units) == len(r.configs[0].units) and all(
                    _same_story(a, b) for a, b in zip(c.units, r.configs[0].units)):
                where = "; ".join(f"{short(u.unit)} {_where(u.first_divergence)}" for u in c.units
                                  if u.first_divergence)
                lines.append(_wrap(f"  config {i} ({_sizes(c.config)}): the same" + (f", first at {where}" if where
                                                                                      else ""), 4))
                continue
            lines.append(f"  config {i} ({_sizes(c.config)}):")
            for u in c.units:
                lines += [_wrap("    " + e, 8) for e in evidence(u)]
    if verbose:
        for i, c in enumerate(r.configs, 1):
            sizes = ", ".join(f"{k}={v}" for k, v in c.config.to_dict().items() if k != "bug" and k != "truncate")
            lines.append("\n" + _wrap(f"config {i} of {len(r.configs)}: {sizes}", 2))
            for u in c.units:
                lines += unit_text(u)
    elif not h["passed"]:
        lines.append("(every quantity at every step: --verbose)")
    return "\n".join(lines)


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else (None if math.isnan(v) else str(v))
    return v


def report_json(r: CheckReport) -> dict:
    """One JSON object: passed, api, headline, first_divergence, diagnosis ({bug, hint, text}), configs (each with its
    rows)."""
    ff = r.first_failing()
    diag = ff[1].diagnosis if ff else {"bug": None, "hint": None, "text": "Every number agrees with PyTorch autograd."}
    if r.failure:
        diag = {"bug": None, "hint": None, "text": f"your code failed ({r.failure.kind}) in {r.failure.where}"}
    out = {
        "passed": r.passed,
        "cell": r.cell,
        "api": r.api,
        "units": list(r.units),
        "headline": None if (r.failure or r.usage) else headline(r)["title"],
        "first_divergence": ff[1].first_divergence if ff else None,
        "diagnosis": diag,
        "configs": [{
            "config": c.config.to_dict(),
            "passed": c.passed,
            "units": [{
                "unit": u.unit, "passed": u.passed, "first_divergence": u.first_divergence,
                "diagnosis": u.diagnosis, "zoo": u.zoo,
                "probes": [{"kind": p.kind, "n": p.n, "failing": p.failing, "text": p.text()} for p in u.probes],
                "explanation": u.explanation, "state": u.state,
            } for u in c.units],
            "rows": [{**{k: _num(v) for k, v in row.items()}} for u in c.units for row in u.rows],
        } for c in r.configs],
    }
    if r.failure:
        out["error"] = {"kind": r.failure.kind, "where": r.failure.where, "message": r.failure.message}
    if r.notes:
        out["notes"] = r.notes
    return out
