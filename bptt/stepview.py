"""The step viewer's payload: every number a page shows for a range of steps, as one bytes message. No streamlit.

The browser steps through the passes by itself (bptt/app/stepper.js); this module builds what it receives once per
configuration and chunk of steps. Layout of the bytes:

    b"BPTT" | uint32 little-endian n | n bytes of UTF-8 JSON (the header) | padding to 4 bytes | float32 values

The values are step-major. Panel p of step t (0-based, lo <= t < hi) is the (rows × cols, row-major) matrix at float
header["steps"][t - lo]["at"][p]. A PyTorch panel whose float32 values equal its NumPy twin's at that step (nearly
always: they agree to ~1e-16) points at the twin's values instead of repeating them. Signed values are float32 (enough
for colour and a 7-digit hover); log10 |NumPy − PyTorch| is computed in float64 and only then stored as float32, so
a difference of 1e-16 still shows as -16.
"""
from __future__ import annotations

import html
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from plotly.colors import get_colorscale, sample_colorscale

from .analysis import Analysis
from .engine import carry_cut
from .figures import DIFF_FLOOR, DIVERGING, SEQUENTIAL, colour_range, log_diff

MAGIC = b"BPTT"
BUDGET = 32 * 2**20          # bytes of values per payload; above it the viewer gets chunks of steps (chunk_steps)
DIFF_RANGE = (float(np.log10(DIFF_FLOOR)), 0.0)   # the fixed colour range of log10 |diff|
PAGES = ("forward", "backward")
WEIGHTS = ("dW_ih", "dW_hh", "db_ih", "db_hh")

# the index names of a matrix kind: (rows, columns)
AXES = {"BH": ("batch b", "hidden unit j"), "BI": ("batch b", "input i"), "HI": ("hidden unit j", "input i"),
        "HH": ("hidden unit j", "hidden unit k"), "1H": ("", "hidden unit j")}


# ----------------------------------------------------------------------------------------------------------------------
# colours and numbers

def colour_table(name: str) -> list[int]:
    """256 RGB entries (flat, 768 ints) sampled from a Plotly colour scale, so the canvas matches Plotly's colours."""
    rgb = sample_colorscale(get_colorscale(name), list(np.linspace(0.0, 1.0, 256)))
    return [round(float(c)) for s in rgb for c in s[s.index("(") + 1:-1].split(",")]


def fmt_err(x: float) -> str:
    """A relative error for a label: 0, or two significant digits."""
    return "0" if x == 0 else f"{x:.1e}"


# ----------------------------------------------------------------------------------------------------------------------
# what a page shows: groups of panels, each panel one (T, rows, cols) series

@dataclass(frozen=True)
class Panel:
    """One heatmap of the viewer: a series over t, how to colour it and what to call it."""
    quantity: str                                   # data-quantity: the export's name (diffs: log10_diff_<name>)
    title: str                                      # above the heatmap
    kind: str                                       # "signed" (diverging, ±zmax) or "diff" (sequential, DIFF_RANGE)
    axes: str                                       # AXES key
    series: Callable[[int, int], np.ndarray]        # (lo, hi) -> (hi - lo, rows, cols) float64 values
    zmax: float = 1.0
    hover: str = ""                                 # the quantity as the page names it, for the hover (else quantity)


@dataclass(frozen=True)
class Group:
    """A row of panels under one heading (the heading and badge change with t: see step_texts)."""
    id: str
    section: str                                    # a heading shown above the first group of a section
    panels: tuple[Panel, ...]
    tab: str = ""                                   # weight groups: the tab they belong to (dW_ih, ...)


def _mat(a: np.ndarray) -> np.ndarray:
    """(T, n) bias series as (T, 1, n); (T, r, c) unchanged."""
    return a[:, None, :] if a.ndim == 2 else a


def _rows(arr: np.ndarray) -> Callable[[int, int], np.ndarray]:
    return lambda lo, hi: _mat(arr[lo:hi])


def _diff(a: np.ndarray, b: np.ndarray) -> Callable[[int, int], np.ndarray]:
    return lambda lo, hi: _mat(log_diff(a[lo:hi], b[lo:hi]))


def d_pre_label(nonlinearity: str) -> str:
    """The on-screen name of d_pre: d_tanh or d_relu."""
    return f"d_{nonlinearity}"


def _triplet(name: str, label: str, impl: np.ndarray, ref: np.ndarray, axes: str, ref_quantity: str,
             ref_title: str = "PyTorch autograd") -> tuple[Panel, ...]:
    z = colour_range(impl, ref)
    return (Panel(name, f"NumPy engine · {label}", "signed", axes, _rows(impl), z, f"NumPy {label}"),
            Panel(ref_quantity, f"{ref_title} · {label}", "signed", axes, _rows(ref), z, f"PyTorch {label}"),
            Panel(f"log10_diff_{name}", "log10 |NumPy − PyTorch|", "diff", axes, _diff(impl, ref),
                  hover=f"log10 |NumPy − PyTorch| of {label}"))


def groups(analysis: Analysis, page: str) -> tuple[Group, ...]:
    """The panels of a page, in the order they are drawn."""
    e, u, p = analysis.engine, analysis.unrolled, analysis.problem
    dl = d_pre_label(analysis.config.nonlinearity)
    if page == "forward":
        h0 = p.h0[None]                                                            # (1, B, H)
        hz = colour_range(p.h0, e.h)
        hprev = lambda lo, hi: np.concatenate([h0, e.h[:hi - 1]])[lo:hi]
        return (
            Group("inputs", "The inputs of this step and what it computes (NumPy engine)", (
                Panel("x", "x_t  (B × I)", "signed", "BI", _rows(p.x), colour_range(p.x)),
                Panel("h_prev", "h_(t−1)  (B × H)", "signed", "BH", hprev, hz, "h_(t−1)"),
                Panel("a", "a_t  (pre-activation)", "signed", "BH", _rows(e.a), colour_range(e.a, u.a)),
                Panel("h", "h_t  (B × H)", "signed", "BH", _rows(e.h), hz))),
            Group("h_cmp", "The NumPy engine beside torch.nn.RNN", (
                Panel("h", "NumPy engine · h_t", "signed", "BH", _rows(e.h), hz, "NumPy h"),
                Panel("torch_h", "torch.nn.RNN · h_t", "signed", "BH", _rows(analysis.torch_rnn.h), hz, "PyTorch h"),
                Panel("log10_diff_h", "log10 |NumPy − torch.nn.RNN|", "diff", "BH",
                      _diff(e.h, analysis.torch_rnn.h), hover="log10 |NumPy − PyTorch| of h"))),
        )
    if page != "backward":
        raise ValueError(f"page must be one of {', '.join(PAGES)}, got {page!r}")
    out = [Group("dh_out", "The gradient reaching h_t", (
        Panel("dh_out", "dh_out_t  (B × H), an input of the problem", "signed", "BH", _rows(p.dh_out),
              colour_range(p.dh_out)),))]
    for q, label, axes in (("dh_next", "dh_next", "BH"), ("dh_total", "dh_total", "BH"), ("d_pre", dl, "BH"),
                           ("dx", "dx", "BI"), ("dh_prev", "dh_prev", "BH")):
        section = "Sent onwards" if q == "dx" else ""
        out.append(Group(q, section, _triplet(q, label, getattr(e, q), getattr(u, q), axes, f"ref_{q}")))
    for w in WEIGHTS:
        axes = {"dW_ih": "HI", "dW_hh": "HH"}.get(w, "1H")
        step, acc, ref = getattr(e, f"{w}_step"), getattr(e, f"{w}_acc"), getattr(u, f"{w}_acc")
        panels = (Panel(f"{w}_step", f"this step's contribution to {w}", "signed", axes, _rows(step),
                        colour_range(step), f"this step's contribution to {w}"),
                  *_triplet(f"{w}_acc", f"{w} so far", acc, ref, axes, f"ref_{w}_acc"))
        out.append(Group(w, "Accumulated weight gradients", panels, tab=w))
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------------------
# budget and chunks

def chunk_steps(T: int, per_step: int, budget: int | None = None) -> int:
    """How many steps one payload holds: all T if they fit the budget, else chunks of a quarter of it (at least one
    step). Small chunks arrive quickly and the viewer keeps the ones it has, so only new steps travel."""
    budget = BUDGET if budget is None else budget
    per_step = max(per_step, 1)
    if T * per_step <= budget:
        return T
    return max(1, min(T, budget // 4 // per_step))


def chunk(T: int, per_step: int, t: int, budget: int | None = None, backward: bool = False) -> tuple[int, int]:
    """The steps [lo, hi) (0-based t) of the payload holding step t: all T if they fit the budget, else the chunk of a
    fixed grid (so that every request for a step of it is the same, cached payload). The grid starts where the pass
    starts: at t = 0 going forward, at t = T − 1 going backward (so the first chunk is a whole one)."""
    if not 0 <= t < T:
        raise ValueError(f"t must satisfy 0 <= t < seq_len = {T}, got {t}")
    n = chunk_steps(T, per_step, budget)
    if backward:
        hi = T - (T - 1 - t) // n * n
        return max(0, hi - n), hi
    lo = t // n * n
    return lo, min(T, lo + n)


# ----------------------------------------------------------------------------------------------------------------------
# the words of each step (t filled in)

def _v(name: str, sub: int | str, sup: str = "") -> str:
    """A symbol with a subscript (and superscript) as HTML, e.g. dh_total<sub>3</sub>."""
    return f"<i>{html.escape(name)}</i><sub>{sub}</sub>" + (f"<sup>{sup}</sup>" if sup else "")


def _badges(analysis: Analysis, t: int) -> dict[str, tuple[bool, float]]:
    """quantity -> (passed, max_rel_err) of step t (0-based), engine against the unrolled autograd graph."""
    return {r.quantity: (bool(r.passed), float(r.max_rel_err)) for r in analysis.step_rows(t).itertuples()}


def _badge(check: tuple[bool, float]) -> list:
    """[passed, max_rel_err] for JSON: a non-finite error becomes its text ("inf", "nan")."""
    ok, rel = check
    return [ok, rel if np.isfinite(rel) else str(rel)]


def _forward_texts(analysis: Analysis, t: int) -> dict:
    T, s = analysis.config.seq_len, t + 1
    f = "tanh" if analysis.config.nonlinearity == "tanh" else "relu"
    checks = _badges(analysis, t)
    ok = all(checks.get(q, (True, 0.0))[0] for q in ("a", "h"))
    rel = max(checks.get(q, (True, 0.0))[1] for q in ("a", "h"))
    verdict = (f"a_{s} and h_{s} match PyTorch (max rel. err {fmt_err(rel)})" if ok else
               f"step t = {s} differs from PyTorch (max rel. err {fmt_err(rel)})")
    eq = [(f"{_v('a', s)} = <i>W</i><sub>ih</sub> {_v('x', s)} + <i>b</i><sub>ih</sub> + <i>W</i><sub>hh</sub> "
          f"{_v('h', t)} + <i>b</i><sub>hh</sub>, &nbsp;&nbsp; {_v('h', s)} = {f}({_v('a', s)})")]
    hp = "h_0, the initial state" if t == 0 else f"h_{t}, from step t = {t}"
    labels = {"inputs": f"x_{s}, {hp}, a_{s} and h_{s}", "h_cmp": f"h_{s}: the NumPy engine beside torch.nn.RNN"}
    titles = {"h_prev": f"{hp}  (B × H)"}
    return {"t": s, "k": s, "title": f"t = {s} · forward step {s} of {T}", "verdict": verdict, "ok": ok,
                "caption": f"Forward pass at t = {s} of {T}: time runs t = 1 … {T} from left to right. "
                        f"In the downloads (0-based) this is t = {t}.",
                "eq": eq, "labels": labels, "titles": titles,
                "badges": {"h_cmp": _badge(checks["h"])} if "h" in checks else {}}


def _backward_texts(analysis: Analysis, t: int) -> dict:
    cfg = analysis.config
    T, s, k = cfg.seq_len, t + 1, cfg.seq_len - t
    dl = d_pre_label(cfg.nonlinearity)
    checks = _badges(analysis, t)
    bad = [q for q in checks if q not in ("a", "h") and not checks[q][0]]
    n = sum(1 for q in checks if q not in ("a", "h"))
    worst = max((r for q, (_, r) in checks.items() if q not in ("a", "h")), default=0.0)
    verdict = (f"all {n} quantities of this step match PyTorch (max rel. err {fmt_err(worst)})" if not bad else
               f"{len(bad)} of {n} quantities differ from PyTorch: {', '.join(bad)}")
    cut_in = t < T - 1 and carry_cut(t + 1, cfg.truncate)
    fp = f"(1 − {_v('h', s, '2')})" if cfg.nonlinearity == "tanh" else f"𝟙[{_v('a', s)} &gt; 0]"
    carry = (f"{_v('dh_next', s)} = {_v('dh_prev', s + 1)}" if s < T and not cut_in else
             f"{_v('dh_next', s)} = 0 " + ("(last step)" if s == T else "(truncated)"))
    eq = [(f"{carry}, &nbsp;&nbsp; {_v('dh_total', s)} = {_v('dh_out', s)} + {_v('dh_next', s)}, &nbsp;&nbsp; "
          f"{_v(dl, s)} = {_v('dh_total', s)} ⊙ {fp}"),
          (f"{_v('dx', s)} = {_v(dl, s)} <i>W</i><sub>ih</sub>, &nbsp;&nbsp; {_v('dh_prev', s)} = {_v(dl, s)} "
          f"<i>W</i><sub>hh</sub> &nbsp;(sent to {_v('h', t)})"),
          (f"<i>dW</i><sub>ih</sub> += {_v(dl, s, 'T')} {_v('x', s)}, &nbsp;&nbsp; <i>dW</i><sub>hh</sub> += "
          f"{_v(dl, s, 'T')} {_v('h', t)}, &nbsp;&nbsp; <i>db</i><sub>ih</sub> += Σ<sub>b</sub> {_v(dl, s)}, "
          f"&nbsp;&nbsp; <i>db</i><sub>hh</sub> += Σ<sub>b</sub> {_v(dl, s)}")]
    full = " — this is the full gradient" if t == 0 else ""
    sent = ("becomes dh_next at t − 1" + (" (this step's carry is cut by truncation)" if carry_cut(t, cfg.truncate)
                                          else "") + (" — at t = 1 it is dL/dh_0" if t == 0 else ""))
    labels = {
        "dh_out": f"dh_out_{s}: the upstream gradient ∂L/∂h_{s} from the output at t = {s} (an input of the problem, "
                  "the same on both sides" + (", zero except at t = T: upstream = last" if cfg.upstream == "last"
                                              else "") + ")",
        "dh_next": f"dh_next_{s}: " + ("nothing comes in after the last step" if t == T - 1 else
                                       f"the carry from t = {s + 1}, cut by truncation" if cut_in else
                                       f"the carry in from t = {s + 1}"),
        "dh_total": f"dh_total_{s} = dh_out_{s} + dh_next_{s} = ∂L/∂h_{s}: everything that reaches h_{s}",
        "d_pre": f"{dl}_{s} = dh_total_{s} ⊙ f′(a_{s}) = ∂L/∂a_{s}: the gradient at the pre-activation",
        "dx": f"dx_{s} = {dl}_{s} · W_ih: the gradient of the input x_{s}  (B × I)",
        "dh_prev": f"dh_prev_{s} = {dl}_{s} · W_hh: the carry sent to h_{t}; {sent}",
        **{w: f"{w} after step t = {s} (the sum of steps t = {T} … {s}){full}, and this step's contribution"
           for w in WEIGHTS},
    }
    badges = {q: _badge(checks[q]) for q in ("dh_next", "dh_total", "d_pre", "dx", "dh_prev") if q in checks}
    badges.update({w: _badge(checks[f"{w}_acc"]) for w in WEIGHTS if f"{w}_acc" in checks})
    return {"t": s, "k": k, "title": f"t = {s} · backward step {k} of {T}", "verdict": verdict, "ok": not bad,
                "caption": f"Backward pass at t = {s}, going backwards from t = {T} to t = 1 (a step moves left). "
                        f"In the downloads (0-based) this is t = {t}.",
                "eq": eq, "labels": labels, "titles": {}, "badges": badges}


def step_texts(analysis: Analysis, page: str, t: int) -> dict:
    """The words of step t (0-based) of a page: title, verdict, caption, equations, labels and badges, t filled in."""
    return _forward_texts(analysis, t) if page == "forward" else _backward_texts(analysis, t)


# ----------------------------------------------------------------------------------------------------------------------
# the payload

def strip_info(analysis: Analysis, page: str) -> dict:
    """What the unrolled strip needs: T, the norm of what each step sends back, and the truncation cuts (0-based t)."""
    cfg = analysis.config
    T = cfg.seq_len
    info = {"T": T, "norms": None, "cuts": [t for t in range(T) if carry_cut(t, cfg.truncate)]}
    if page == "backward":
        norms = np.linalg.norm(np.asarray(analysis.engine.dh_prev).reshape(T, -1), axis=1)
        info["norms"] = [float(v) if np.isfinite(v) else None for v in norms]
    return info


def per_step_bytes(analysis: Analysis, page: str) -> int:
    """Bytes of float32 values the largest step of this page takes (a panel equal to its twin takes none)."""
    gs = groups(analysis, page)
    panels = [pn for g in gs for pn in g.panels]
    T = analysis.config.seq_len
    sizes = np.zeros(T, dtype=np.int64)                                        # floats of each step
    for pn, j in zip(panels, _twins(gs)):
        r, c = pn.series(0, 1).shape[1:]
        if j is None:
            sizes += r * c
            continue
        a = pn.series(0, T).astype(np.float32).reshape(T, -1)
        b = panels[j].series(0, T).astype(np.float32).reshape(T, -1)
        same = np.all(a.view(np.uint32) == b.view(np.uint32), axis=1)          # bit for bit, as build_payload sees it
        sizes += np.where(same, 0, r * c)
    return 4 * int(sizes.max())


def _twins(gs: tuple[Group, ...]) -> list[int | None]:
    """For each panel (payload order), the earlier panel whose values it may repeat: ref_q -> q, torch_h -> h, and a
    quantity shown twice -> its first showing."""
    names = [pn.quantity for g in gs for pn in g.panels]
    first = {}
    for i, q in enumerate(names):
        first.setdefault(q, i)
    out: list[int | None] = []
    for i, q in enumerate(names):
        twin = q[4:] if q.startswith("ref_") else "h" if q == "torch_h" else q
        j = first.get(twin)
        out.append(j if j is not None and j < i else None)
    return out


def _step_max(series: Callable[[int, int], np.ndarray], T: int, every: int = 8) -> np.ndarray:
    """(T,) the largest finite |value| of a panel at each step (0 where there is none), a few steps at a time."""
    out = np.zeros(T)
    for a in range(0, T, every):
        v = np.abs(series(a, min(T, a + every)).reshape(min(T, a + every) - a, -1))
        out[a:a + len(v)] = np.where(np.isfinite(v), v, 0.0).max(axis=1, initial=0.0)
    return out


def growing_ranges(gs: tuple[Group, ...], T: int, backward: bool = True) -> dict[int, np.ndarray]:
    """panel index -> (T,) zmax at each step for the panels whose range grows with the steps taken: a weight tab's
    contribution and running sums (NumPy and PyTorch) share, at step t, the largest finite |value| any of them had at
    the steps taken so far in this pass (t = T … t going backwards). So the first step's sum shows its structure, the
    sum visibly grows as steps are added, and a contribution and a sum that hold the same numbers look the same."""
    out: dict[int, np.ndarray] = {}
    k = 0
    for g in gs:
        idx = list(range(k, k + len(g.panels)))
        k += len(g.panels)
        if not g.tab:
            continue
        signed = [(i, pn) for i, pn in zip(idx, g.panels) if pn.kind == "signed"]
        m = np.max([_step_max(pn.series, T) for _, pn in signed], axis=0)            # (T,)
        z = np.maximum.accumulate(m[::-1])[::-1] if backward else np.maximum.accumulate(m)
        z = np.where(z > 0, z, 1.0)
        for i, _ in signed:
            out[i] = z
    return out


def build_payload(analysis: Analysis, page: str, lo: int, hi: int, start: int) -> bytes:
    """The viewer's data for steps lo <= t < hi (0-based) of `page`, opening at page step `start` (1..T)."""
    cfg = analysis.config
    T = cfg.seq_len
    if not 0 <= lo < hi <= T:
        raise ValueError(f"the steps must satisfy 0 <= lo < hi <= seq_len = {T}, got lo = {lo}, hi = {hi}")
    gs = groups(analysis, page)
    panels = [pn for g in gs for pn in g.panels]
    twins = _twins(gs)
    series = [pn.series(lo, hi).astype(np.float32) for pn in panels]          # (steps, rows, cols) each, rounded once
    chunks, at_steps, pos = [], [], 0
    for i in range(hi - lo):
        at: list[int] = []
        for p, z in enumerate(series):
            j = twins[p]
            if j is not None and z[i].tobytes() == series[j][i].tobytes():
                at.append(at[j])                                                # the same float32 values: shared
                continue
            at.append(pos)
            chunks.append(z[i].ravel())
            pos += z[i].size
        at_steps.append(at)
    values = np.concatenate(chunks) if chunks else np.empty(0, np.float32)
    meta_groups, k = [], 0
    for g in gs:
        metas = []
        for pn in g.panels:
            r, c = series[k].shape[1:]
            ylab, xlab = AXES[pn.axes]
            metas.append({"quantity": pn.quantity, "hover": pn.hover or pn.quantity, "title": pn.title,
                          "kind": pn.kind, "rows": r, "cols": c,
                          "index": k, "rowname": ylab, "colname": xlab,
                          "zmin": DIFF_RANGE[0] if pn.kind == "diff" else -pn.zmax,
                          "zmax": DIFF_RANGE[1] if pn.kind == "diff" else pn.zmax})
            k += 1
        meta_groups.append({"id": g.id, "section": g.section, "tab": g.tab, "panels": metas})
    steps = [step_texts(analysis, page, t) for t in range(lo, hi)]
    ranges = growing_ranges(gs, T, backward=page == "backward")
    for i, (st, at) in enumerate(zip(steps, at_steps)):
        st["at"] = at
        if ranges:
            st["z"] = {str(p): float(z[lo + i]) for p, z in ranges.items()}   # panel index -> this step's zmax
    header = {
        "version": 2, "page": page, "id": f"{page}:{cfg.to_json()}", "config": cfg.to_dict(), "T": T, "lo": lo,
        "hi": hi, "start": start, "budget": BUDGET, "floats": int(values.size),
        "weights": list(WEIGHTS) if page == "backward" else [],
        "d_pre": d_pre_label(cfg.nonlinearity), "groups": meta_groups, "strip": strip_info(analysis, page),
        "steps": steps,
        "colours": {"signed": colour_table(DIVERGING), "diff": colour_table(SEQUENTIAL)},
        "bug": cfg.bug,
    }
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    pad = b" " * (-(len(MAGIC) + 4 + len(head)) % 4)
    return b"".join([MAGIC, struct.pack("<I", len(head) + len(pad)), head, pad, values.tobytes()])


def decode_payload(data: bytes) -> tuple[dict, np.ndarray]:
    """(header, values: flat float32) of a payload: what the browser reads, for tests and tools."""
    if data[:4] != MAGIC:
        raise ValueError("not a step-viewer payload (it must start with b'BPTT')")
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + n])
    return header, np.frombuffer(data, dtype="<f4", offset=8 + n)


def panel_values(header: dict, values: np.ndarray, group: str, quantity: str, t: int) -> np.ndarray:
    """The (rows, cols) float32 matrix of one panel at step t (0-based) from a decoded payload."""
    g = next(g for g in header["groups"] if g["id"] == group)
    p = next(p for p in g["panels"] if p["quantity"] == quantity)
    at = header["steps"][t - header["lo"]]["at"][p["index"]]
    return values[at:at + p["rows"] * p["cols"]].reshape(p["rows"], p["cols"])
