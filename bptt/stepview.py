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
from .figures import DIFF_FLOOR, DIVERGING, GATE_SCALE, SEQUENTIAL, colour_range, log_diff
from .memory import cached, peek

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
    kind: str                                       # "signed" (diverging, ±zmax), "diff" (sequential, DIFF_RANGE)
                                                    # or "gate" (sequential, 0 … 1: a σ gate)
    axes: str                                       # AXES key
    series: Callable[[int, int], np.ndarray]        # (lo, hi) -> (hi - lo, rows, cols) float64 values
    zmax: float = 1.0
    hover: str = ""                                 # the quantity as the page names it, for the hover (else quantity)
    gate: str = ""                                  # data-gate: the gate block this panel shows (gated cells)
    row0: int = 0                                   # its first row in the whole weight (a gate block's offset)
    step_max: np.ndarray | None = None              # (T,) the largest finite |value| at each step, if known already


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
    if analysis.cell.gates:
        return gated_groups(analysis, page)
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
# the gated cells: every gate its own panel, grouped by what flows where

GATE_NAMES = {"i": "input gate", "f": "forget gate", "g": "candidate", "o": "output gate", "r": "reset gate",
              "z": "update gate", "n": "candidate"}
WEIGHT_BLOCK = {"dW_ih": "W_i", "dW_hh": "W_h", "db_ih": "b_i", "db_hh": "b_h"}   # + the gate: W_if, b_hn, ...


Series = Callable[[int, int], np.ndarray]     # (lo, hi) -> (hi - lo, rows, cols)


def _block_rows(arr: np.ndarray, sl: slice) -> Callable[[int, int], np.ndarray]:
    """A (T, B, G·H) series' gate block, (T, B, H)."""
    return lambda lo, hi: arr[lo:hi, :, sl]


class _Weights:
    """A trace's running sums and step contributions for steps lo..hi-1, derived on demand by the cell's own code and
    kept for the last (lo, hi) asked: every gate block's panel of one payload reads the same derivation.

    The running sums at a chunk's first step are kept in the memory budget (key: `edge`, the config, the trace's role
    and t), so that the next chunk of the backward pass goes on from there instead of summing again from t = T-1."""

    def __init__(self, trace, edge: tuple = ()):
        self.trace, self.edge, self.key, self.value = trace, edge, None, None

    def get(self, sums: bool, lo: int, hi: int) -> dict[str, np.ndarray]:
        if self.key != (sums, lo, hi):
            if sums:
                at_hi = peek((*self.edge, hi)) if self.edge and hi < self.trace.values["h"].shape[0] else None
                self.value = self.trace.running_sums(lo, hi, start=None if at_hi is None else (hi, at_hi))
                if self.edge:
                    first = {w: v[0].copy() for w, v in self.value.items()}
                    cached((*self.edge, lo), lambda: first)
            else:
                self.value = self.trace.contributions(lo, hi)
            self.key = (sums, lo, hi)
        return self.value


def _weight_series(weights: _Weights, w: str, sl: slice, sums: bool) -> Series:
    """Steps lo..hi-1 of one gate block of a weight's running sums (or of each step's contribution); biases as
    (steps, 1, H)."""
    return lambda lo, hi: _mat(weights.get(sums, lo, hi)[w][:, sl])


def _diff_of(a: Series, b: Series) -> Series:
    """log10 |a − b| of two series."""
    return lambda lo, hi: log_diff(a(lo, hi), b(lo, hi))


def _finite_max(a: np.ndarray) -> float:
    a = np.abs(a)
    return float(np.where(np.isfinite(a), a, 0.0).max(initial=0.0))


def weight_maxima(analysis: Analysis) -> dict[tuple[str, str, str], np.ndarray]:
    """(series, weight, gate) -> (T,) the largest finite |value| of each gate block at each step, for the running sums
    of the engine ("acc") and of the reference ("ref") and for each step's contribution ("step"): one pass over the
    steps each, nothing (T, ...) kept; cached per config in the memory budget (every chunk of a config needs them)."""
    def compute() -> dict[tuple[str, str, str], np.ndarray]:
        cell, T, H = analysis.cell, analysis.config.seq_len, analysis.config.hidden_size
        out = {(s, w, g): np.zeros(T) for s in ("acc", "ref", "step") for w in WEIGHTS for g in cell.gates}
        for s, pairs in (("acc", analysis.engine.iter_sums()), ("ref", analysis.unrolled.iter_sums()),
                         ("step", ((t, analysis.engine.contributions(t, t + 1)) for t in range(T)))):
            for t, v in pairs:
                for w in WEIGHTS:
                    for g in cell.gates:
                        block = v[w][..., cell.gate_slice(g, H), :] if v[w].ndim == 3 else v[w][cell.gate_slice(g, H)]
                        out[s, w, g][t] = _finite_max(block)
        return out
    return cached(("weight_maxima", analysis.config), compute)


def gated_groups(analysis: Analysis, page: str) -> tuple[Group, ...]:
    """The LSTM's and the GRU's panels: the gates side by side, the states, and on the Backward page the gradients
    grouped by where they flow, each beside autograd's and their difference; weights by gate block."""
    cell, e, u, p = analysis.cell, analysis.engine, analysis.unrolled, analysis.problem
    H = analysis.config.hidden_size
    torch_name = cell.torch_name
    if page == "forward":
        gates = tuple(Panel(g, f"{g}_t  {GATE_NAMES[g]}", "signed" if g in ("g", "n") else "gate", "BH",
                            _rows(getattr(e, g)), 1.0, gate=g) for g in cell.gates)
        hz = colour_range(p.h0, e.h)
        h0 = p.h0[None]
        states = [Panel("h_prev", "h_(t−1)  (B × H)", "signed", "BH",
                        lambda lo, hi: np.concatenate([h0, e.h[:hi - 1]])[lo:hi], hz)]
        if "c" in cell.states:
            cz = colour_range(p.c0, e.c)
            c0 = p.c0[None]
            states += [Panel("c_prev", "c_(t−1)  (B × H)", "signed", "BH",
                             lambda lo, hi: np.concatenate([c0, e.c[:hi - 1]])[lo:hi], cz),
                       Panel("c", "c_t  the cell state", "signed", "BH", _rows(e.c), cz)]
        else:
            states += [Panel("hn", "hn_t = W_hn h_(t−1) + b_hn", "signed", "BH", _rows(e.hn), colour_range(e.hn))]
        states.append(Panel("h", "h_t  (B × H)", "signed", "BH", _rows(e.h), hz))
        return (
            Group("x", "The input of this step (NumPy engine)", (
                Panel("x", "x_t  (B × I)", "signed", "BI", _rows(p.x), colour_range(p.x)),)),
            Group("gates", "The gates of this step: σ gates from 0 (closed) to 1 (open), tanh ones from −1 to 1",
                  gates),
            Group("states", "The states", tuple(states)),
            Group("h_cmp", f"The NumPy engine beside {torch_name}", (
                Panel("h", "NumPy engine · h_t", "signed", "BH", _rows(e.h), hz),
                Panel("torch_h", f"{torch_name} · h_t", "signed", "BH", _rows(analysis.torch_rnn.h), hz),
                Panel("log10_diff_h", f"log10 |NumPy − {torch_name}|", "diff", "BH",
                      _diff(e.h, analysis.torch_rnn.h)))),
        )
    if page != "backward":
        raise ValueError(f"page must be one of {', '.join(PAGES)}, got {page!r}")
    q = cell.quantities
    out = [Group("dh_out", "The gradient reaching h_t", (
        Panel("dh_out", "dh_out_t  (B × H), an input of the problem", "signed", "BH", _rows(p.dh_out),
              colour_range(p.dh_out)),))]
    for name in ("dh_next", "dh_total"):
        out.append(Group(name, "", _triplet(name, q[name].label, getattr(e, name), getattr(u, name), "BH",
                                            f"ref_{name}")))
    if "c" in cell.states:
        for i, name in enumerate(("dc_next", "dc_total")):
            out.append(Group(name, "The gradient reaching c_t" if i == 0 else "",
                             _triplet(name, q[name].label, getattr(e, name), getattr(u, name), "BH", f"ref_{name}")))
    dg, rg = e.d_gates, u.d_gates
    z = colour_range(dg, rg)
    for gid, title, src, ref_q in (("d_gates", "NumPy engine", dg, "d_gates"),
                                   ("ref_d_gates", "PyTorch autograd", rg, "ref_d_gates")):
        out.append(Group(gid, "At each gate's pre-activation (∂L/∂z, the gated cells' d_tanh)" if gid == "d_gates"
                         else "", tuple(Panel(ref_q, f"{title} · d_gates [{g}]", "signed", "BH",
                                              _block_rows(src, cell.gate_slice(g, H)), z, gate=g)
                                        for g in cell.gates)))
    out.append(Group("diff_d_gates", "", tuple(
        Panel("log10_diff_d_gates", f"log10 |NumPy − PyTorch| · [{g}]", "diff", "BH",
              _diff_of(_block_rows(dg, cell.gate_slice(g, H)), _block_rows(rg, cell.gate_slice(g, H))), gate=g)
        for g in cell.gates)))
    if "d_hn" in q:
        out.append(Group("d_hn", "", _triplet("d_hn", "d_hn (the n block's hidden side)", e.d_hn, u.d_hn, "BH",
                                              "ref_d_hn")))
    for i, name in enumerate(("dx", *cell.carries)):
        kind = q[name].kind
        out.append(Group(name, "Sent onwards" if i == 0 else "",
                         _triplet(name, q[name].label, getattr(e, name), getattr(u, name), kind, f"ref_{name}")))
    ut = u.trace()                                                   # the reference decoded once for this payload
    ew, uw = _Weights(e, ("sums_at", analysis.config, "engine")), _Weights(ut, ("sums_at", analysis.config, "ref"))
    cw = _Weights(e)
    mx = weight_maxima(analysis)
    for w in WEIGHTS:
        axes = {"dW_ih": "HI", "dW_hh": "HH"}.get(w, "1H")
        zmax = max(float(mx["acc", w, g].max()) for g in cell.gates) or 1.0
        for g in cell.gates:
            sl = cell.gate_slice(g, H)
            block = f"{WEIGHT_BLOCK[w]}{g}"
            acc, ref = _weight_series(ew, w, sl, True), _weight_series(uw, w, sl, True)
            out.append(Group(f"{w}_{g}", "Accumulated weight gradients, by gate block", (
                Panel(f"{w}_step", f"this step's contribution to d{block}", "signed", axes,
                      _weight_series(cw, w, sl, False), zmax, f"this step's contribution to d{block}", gate=g,
                      row0=sl.start, step_max=mx["step", w, g]),
                Panel(f"{w}_acc", f"NumPy engine · d{block} so far", "signed", axes, acc, zmax, f"NumPy d{block}",
                      gate=g, row0=sl.start, step_max=mx["acc", w, g]),
                Panel(f"ref_{w}_acc", f"PyTorch autograd · d{block} so far", "signed", axes, ref, zmax,
                      f"PyTorch d{block}", gate=g, row0=sl.start, step_max=mx["ref", w, g]),
                Panel(f"log10_diff_{w}_acc", "log10 |NumPy − PyTorch|", "diff", axes, _diff_of(acc, ref),
                      hover=f"log10 |NumPy − PyTorch| of d{block}", gate=g)),
                tab=w))
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


def _gate_badges(analysis: Analysis, t: int) -> dict[str, tuple[bool, float]]:
    """quantity -> (every gate block passed, max rel. err over them) of step t, engine against autograd."""
    out: dict[str, tuple[bool, float]] = {}
    for r in analysis.step_rows(t).itertuples():
        ok, rel = out.get(r.quantity, (True, 0.0))
        out[r.quantity] = (ok and bool(r.passed), max(rel, float(r.max_rel_err)))
    return out


def _sym(name: str, s: int | str) -> str:
    return _v(name, s)


GATED_FORWARD_EQ = {
    "lstm": lambda s, p: [
        f"{_sym('z', s)} = <i>W</i><sub>ih</sub> {_sym('x', s)} + <i>b</i><sub>ih</sub> + <i>W</i><sub>hh</sub> "
        f"{_sym('h', p)} + <i>b</i><sub>hh</sub> &nbsp;(blocks i | f | g | o)",
        f"{_sym('i', s)}, {_sym('f', s)}, {_sym('o', s)} = σ(·), &nbsp; {_sym('g', s)} = tanh(·), &nbsp;&nbsp; "
        f"{_sym('c', s)} = {_sym('f', s)} ⊙ {_sym('c', p)} + {_sym('i', s)} ⊙ {_sym('g', s)}, &nbsp;&nbsp; "
        f"{_sym('h', s)} = {_sym('o', s)} ⊙ tanh({_sym('c', s)})"],
    "gru": lambda s, p: [
        f"{_sym('r', s)}, {_sym('z', s)} = σ(<i>W</i><sub>i·</sub> {_sym('x', s)} + <i>b</i><sub>i·</sub> + "
        f"<i>W</i><sub>h·</sub> {_sym('h', p)} + <i>b</i><sub>h·</sub>), &nbsp;&nbsp; {_sym('hn', s)} = "
        f"<i>W</i><sub>hn</sub> {_sym('h', p)} + <i>b</i><sub>hn</sub>",
        f"{_sym('n', s)} = tanh(<i>W</i><sub>in</sub> {_sym('x', s)} + <i>b</i><sub>in</sub> + {_sym('r', s)} ⊙ "
        f"{_sym('hn', s)}), &nbsp;&nbsp; {_sym('h', s)} = (1 − {_sym('z', s)}) ⊙ {_sym('n', s)} + {_sym('z', s)} ⊙ "
        f"{_sym('h', p)} &nbsp;(PyTorch's form: r after the product)"],
}

GATED_BACKWARD_EQ = {
    "lstm": lambda s, p: [
        f"{_sym('dc_total', s)} = {_sym('dc_next', s)} + {_sym('dh_total', s)} ⊙ {_sym('o', s)} ⊙ "
        f"(1 − tanh² {_sym('c', s)}) &nbsp;(the cell path plus the path through h)",
        f"<i>d_gates</i><sub>{s}</sub> = [dc ⊙ {_sym('g', s)} ⊙ σ′(i), &nbsp;dc ⊙ {_sym('c', p)} ⊙ σ′(f), &nbsp;"
        f"dc ⊙ {_sym('i', s)} ⊙ (1 − g²), &nbsp;dh ⊙ tanh {_sym('c', s)} ⊙ σ′(o)]",
        f"{_sym('dx', s)} = <i>d_gates</i><sub>{s}</sub> <i>W</i><sub>ih</sub>, &nbsp; {_sym('dh_prev', s)} = "
        f"<i>d_gates</i><sub>{s}</sub> <i>W</i><sub>hh</sub>, &nbsp; {_sym('dc_prev', s)} = {_sym('dc_total', s)} ⊙ "
        f"{_sym('f', s)} &nbsp;(sent to t = {p})",
        f"<i>dW</i><sub>ih</sub> += <i>d_gates</i><sub>{s}</sub><sup>T</sup> {_sym('x', s)}, &nbsp; "
        f"<i>dW</i><sub>hh</sub> += <i>d_gates</i><sub>{s}</sub><sup>T</sup> {_sym('h', p)}, &nbsp; "
        f"<i>db</i> += Σ<sub>b</sub> <i>d_gates</i><sub>{s}</sub>"],
    "gru": lambda s, p: [
        f"dn = {_sym('dh_total', s)} ⊙ (1 − {_sym('z', s)}), &nbsp; dz = dh ⊙ ({_sym('h', p)} − {_sym('n', s)}), "
        f"&nbsp; d_n = dn ⊙ (1 − {_sym('n', s, )}²), &nbsp; dr = d_n ⊙ {_sym('hn', s)}, &nbsp; "
        f"{_sym('d_hn', s)} = d_n ⊙ {_sym('r', s)}",
        f"<i>d_gates</i><sub>{s}</sub> = [dr ⊙ σ′(r), dz ⊙ σ′(z), d_n], &nbsp; {_sym('dx', s)} = "
        f"<i>d_gates</i><sub>{s}</sub> <i>W</i><sub>ih</sub>",
        f"{_sym('dh_prev', s)} = dh ⊙ {_sym('z', s)} + [dr ⊙ σ′(r), dz ⊙ σ′(z), {_sym('d_hn', s)}] "
        f"<i>W</i><sub>hh</sub> &nbsp;(sent to t = {p})",
        f"<i>dW</i><sub>ih</sub> += <i>d_gates</i><sup>T</sup> {_sym('x', s)}, &nbsp; <i>dW</i><sub>hh</sub> += "
        f"[d_r, d_z, d_hn]<sup>T</sup> {_sym('h', p)}, &nbsp; <i>db</i><sub>hh</sub>'s n block sums d_hn, not d_n"],
}


def _gated_texts(analysis: Analysis, page: str, t: int) -> dict:
    """The words of step t of a gated cell's page (see _forward_texts, _backward_texts)."""
    cfg, cell = analysis.config, analysis.cell
    T, s = cfg.seq_len, t + 1
    checks = _gate_badges(analysis, t)
    forward = tuple(q.name for q in cell.forward)
    if page == "forward":
        ok = all(checks.get(q, (True, 0.0))[0] for q in forward)
        rel = max(checks.get(q, (True, 0.0))[1] for q in forward)
        verdict = (f"every gate and state of t = {s} matches PyTorch (max rel. err {fmt_err(rel)})" if ok else
                   f"step t = {s} differs from PyTorch (max rel. err {fmt_err(rel)})")
        prev = "the initial state" if t == 0 else f"from step t = {t}"
        return {"t": s, "k": s, "title": f"t = {s} · forward step {s} of {T}", "verdict": verdict, "ok": ok,
                "caption": f"Forward pass at t = {s} of {T}: time runs t = 1 … {T} from left to right. "
                           f"In the downloads (0-based) this is t = {t}.",
                "eq": GATED_FORWARD_EQ[cell.name](s, t),
                "labels": {"x": f"x_{s}, the input of step t = {s}",
                           "gates": f"the gates of t = {s}: how much of each unit passes",
                           "states": f"the states: {prev} and after t = {s}",
                           "h_cmp": f"h_{s}: the NumPy engine beside {cell.torch_name}"},
                "titles": {"h_prev": f"h_{t}, {prev}  (B × H)", "c_prev": f"c_{t}, {prev}  (B × H)"},
                "badges": {"h_cmp": _badge(checks["h"])} if "h" in checks else {}}
    k = T - t
    backward = [q for q in checks if q not in forward]
    bad = [q for q in backward if not checks[q][0]]
    worst = max((checks[q][1] for q in backward), default=0.0)
    verdict = (f"all {len(backward)} quantities of this step match PyTorch, every gate (max rel. err "
               f"{fmt_err(worst)})" if not bad else
               f"{len(bad)} of {len(backward)} quantities differ from PyTorch: {', '.join(bad)}")
    cut_in = t < T - 1 and carry_cut(t + 1, cfg.truncate)
    came = ("nothing comes in after the last step" if t == T - 1 else
            f"the carry from t = {s + 1}, cut by truncation" if cut_in else f"the carry in from t = {s + 1}")
    carries = [f"{_v(f'd{c}_next', s)} = " + (f"{_v(f'd{c}_prev', s + 1)}" if s < T and not cut_in else
                                              "0 " + ("(last step)" if s == T else "(truncated)"))
               for c in cell.states]
    eq = [", &nbsp;&nbsp; ".join(carries) + f", &nbsp;&nbsp; {_v('dh_total', s)} = {_v('dh_out', s)} + "
          f"{_v('dh_next', s)}", *GATED_BACKWARD_EQ[cell.name](s, t)]
    full = " — this is the full gradient" if t == 0 else ""
    labels = {
        "dh_out": f"dh_out_{s}: the upstream gradient ∂L/∂h_{s} from the output at t = {s} (an input of the problem"
                  + (", zero except at t = T: upstream = last" if cfg.upstream == "last" else "") + ")",
        "dh_next": f"dh_next_{s}: {came} (through W_hh)",
        "dh_total": f"dh_total_{s} = dh_out_{s} + dh_next_{s} = ∂L/∂h_{s}: everything that reaches h_{s}",
        "dc_next": f"dc_next_{s}: {came}, through the forget gate f_{s + 1}" if t < T - 1 else f"dc_next_{s}: {came}",
        "dc_total": f"dc_total_{s} = dc_next_{s} + dh_total_{s} ⊙ o_{s} ⊙ (1 − tanh² c_{s}) = ∂L/∂c_{s}: the cell "
                    "path plus the path through h",
        "d_gates": f"d_gates_{s}: the gradient at each gate's pre-activation, NumPy engine",
        "ref_d_gates": "the same from PyTorch autograd",
        "diff_d_gates": "log10 |NumPy − PyTorch|, gate by gate",
        "d_hn": f"d_hn_{s} = d_n ⊙ r_{s}: the gradient at W_hn h_{t} + b_hn (the n block's hidden side)",
        "dx": f"dx_{s} = d_gates_{s} · W_ih: the gradient of the input x_{s}  (B × I)",
        "dh_prev": f"dh_prev_{s}: the carry sent to h_{t}" + (" — at t = 1 it is dL/dh_0" if t == 0 else ""),
        "dc_prev": f"dc_prev_{s} = dc_total_{s} ⊙ f_{s}: the carry sent to c_{t}"
                   + (" — at t = 1 it is dL/dc_0" if t == 0 else ""),
    }
    for w in WEIGHTS:
        for g in cell.gates:
            labels[f"{w}_{g}"] = (f"d{WEIGHT_BLOCK[w]}{g} ({GATE_NAMES[g]}'s block of {w}) after step t = {s} (the "
                                  f"sum of steps t = {T} … {s}){full}, and this step's contribution")
    badges = {q: _badge(checks[q]) for q in labels if q in checks}
    badges.update({f"{w}_{g}": _badge(checks[f"{w}_acc"]) for w in WEIGHTS for g in cell.gates
                   if f"{w}_acc" in checks})
    return {"t": s, "k": k, "title": f"t = {s} · backward step {k} of {T}", "verdict": verdict, "ok": not bad,
            "caption": f"Backward pass at t = {s}, going backwards from t = {T} to t = 1 (a step moves left). "
                       f"In the downloads (0-based) this is t = {t}.",
            "eq": eq, "labels": labels, "titles": {}, "badges": badges}


def step_texts(analysis: Analysis, page: str, t: int) -> dict:
    """The words of step t (0-based) of a page: title, verdict, caption, equations, labels and badges, t filled in."""
    if analysis.cell.gates:
        return _gated_texts(analysis, page, t)
    return _forward_texts(analysis, t) if page == "forward" else _backward_texts(analysis, t)


# ----------------------------------------------------------------------------------------------------------------------
# the payload

def strip_info(analysis: Analysis, page: str) -> dict:
    """What the unrolled strip needs: T, the norm of what each step sends back, and the truncation cuts (0-based t)."""
    cfg = analysis.config
    T = cfg.seq_len
    info = {"T": T, "norms": None, "cuts": [t for t in range(T) if carry_cut(t, cfg.truncate)]}
    if page == "backward":
        for key, q in (("norms", "dh_prev"), ("cnorms", "dc_prev")):       # the hidden path; the LSTM's cell path
            if q in analysis.engine.values:
                norms = np.linalg.norm(np.asarray(analysis.engine.values[q]).reshape(T, -1), axis=1)
                info[key] = [float(v) if np.isfinite(v) else None for v in norms]
    return info


def per_step_bytes(analysis: Analysis, page: str) -> int:
    """Bytes of float32 values the largest step of this page takes (a panel equal to its twin takes none)."""
    gs = groups(analysis, page)
    panels = [pn for g in gs for pn in g.panels]
    T = analysis.config.seq_len
    sizes = np.zeros(T, dtype=np.int64)                                        # floats of each step
    gated = bool(analysis.cell.gates)
    for pn, j in zip(panels, _twins(gs)):
        r, c = pn.series(0, 1).shape[1:]
        if j is None or gated:      # a gated cell's weight blocks are derived on demand: count every panel whole
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
        m = np.max([pn.step_max if pn.step_max is not None else _step_max(pn.series, T) for _, pn in signed],
                   axis=0)                                                        # (T,)
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
            zmin, zmax = DIFF_RANGE if pn.kind == "diff" else (0.0, 1.0) if pn.kind == "gate" else (-pn.zmax,
                                                                                                     pn.zmax)
            metas.append({"quantity": pn.quantity, "hover": pn.hover or pn.quantity, "title": pn.title,
                          "kind": pn.kind, "rows": r, "cols": c, "index": k, "rowname": ylab, "colname": xlab,
                          "zmin": zmin, "zmax": zmax, "gate": pn.gate, "row0": pn.row0})
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
        "colours": {"signed": colour_table(DIVERGING), "diff": colour_table(SEQUENTIAL),
                    "gate": colour_table(GATE_SCALE)},
        "cell": cfg.cell, "gates": list(analysis.cell.gates),
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
