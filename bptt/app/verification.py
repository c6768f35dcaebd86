"""The Verification page's pieces: the comparison table, the final gradients side by side, gradcheck."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ..analysis import Analysis
from ..autograd_op import GRADCHECK_MAX_NUMBERS, gradcheck_numbers
from ..bugs import first_divergence, step_of
from ..cells import cell_of
from ..compare import summary
from ..config import RNNConfig
from .panels import comparison_frame, with_gates
from .state import get_gradcheck

ONLY_FAIL_KEY, QUANTITY_KEY, GRADCHECK_KEY = "ver_only_fail", "ver_quantity", "ver_gradcheck"   # widgets
DOWNLOADS_KEY = "ver_dl"


def _columns(frame) -> dict:
    """Column settings: every error, tolerance and floor in scientific notation, headers short enough to show."""
    sci = {"max_abs_err": ("max abs err", "max |implementation − reference|"),
           "max_rel_err": ("max rel err", "max |implementation − reference| / max |reference|"),
           "tol": ("tol", "relative tolerance"),
           "floor": ("floor", "absolute allowance for forward rounding (see above)")}
    out = {k: st.column_config.NumberColumn(label, help=help, format="%.2e", width="small")
           for k, (label, help) in sci.items() if k in frame.columns}
    if "failing" in frame.columns:
        out["failing"] = st.column_config.TextColumn("failing", help="the steps that fail, t counted from 1 as on "
                                                     "screen, or the whole sequence (a final result)")
    if "rows" in frame.columns:
        out["rows"] = st.column_config.TextColumn("steps", help="steps compared, or the whole sequence", width="small")
    if "nonfinite" in frame.columns:
        out["nonfinite"] = st.column_config.NumberColumn("inf/nan", help="entries that are inf or nan", width="small")
    return out


def failing_text(table, summ, most: int = 8) -> list[str]:
    """For each summary row: "" when it passes, "whole sequence" for a failing whole-sequence row, else "k of n: t = 1,
    2, …" with the failing steps counted from 1 as on screen (the first `most` of them)."""
    keys = ["quantity", "implementation", "reference"]
    bad = table[~table["passed"]].groupby(keys, sort=False)["t"].apply(list).to_dict()
    out = []
    for row in summ.itertuples():
        ts = bad.get((row.quantity, row.implementation, row.reference))
        if not ts:
            out.append("")
        elif row.whole:
            out.append("whole sequence")
        else:
            shown = sorted(int(t) + 1 for t in ts)
            more = ", …" if len(shown) > most else ""
            out.append(f"{len(shown)} of {row.rows}: t = {', '.join(map(str, shown[:most]))}{more}")
    return out


def summary_table(analysis: Analysis) -> None:
    """Pass/fail per quantity and comparison pair, worst errors over all timesteps."""
    s = summary(with_gates(analysis.table))
    s.insert(0, "verdict", np.where(s["passed"], "pass", "FAIL"))
    s["failing"] = failing_text(analysis.table, s)
    s["rows"] = [("whole" if w else str(n)) for w, n in zip(s["whole"], s["rows"])]
    s = s.drop(columns=["passed", "failing_steps", "whole"])
    first = ["verdict", "quantity", "failing", "implementation", "reference"]     # what failed, where, first
    s = s[first + [c for c in s.columns if c not in first]]
    st.dataframe(s, width="stretch", hide_index=True, height=38 + 35 * len(s), column_config=_columns(s))


def full_table(analysis: Analysis) -> None:
    """Every comparison row (per quantity and timestep), filterable."""
    tab = comparison_frame(analysis)
    only_fail = st.toggle("Show only failing rows", key=ONLY_FAIL_KEY)
    if only_fail:
        tab = tab[~tab["passed"]]
    st.dataframe(tab, width="stretch", hide_index=True, height=360, column_config=_columns(tab))


def _printed(a: np.ndarray, rows: int = 12, cols: int = 8) -> str:
    """An array as the exercise printed it: 6 decimals; big arrays cut to their top-left corner."""
    a = np.asarray(a)
    cut = a[tuple(slice(0, cols if i == a.ndim - 1 else rows) for i in range(a.ndim))]
    note = "" if cut.shape == a.shape else f"\n… showing the first {cut.shape} of {a.shape}"
    w = max((len(f"{v:.6f}") for v in cut.flat), default=1)
    return np.array2string(cut, max_line_width=240, threshold=10**6,
                           formatter={"float_kind": lambda v: f"{v:>{w}.6f}"}) + note


def side_by_side(analysis: Analysis) -> None:
    """The final results of the NumPy engine, the hand-written torch operator and the cell's torch module (torch.nn.RNN,
    LSTM or GRU), to 6 decimals."""
    sources = {"NumPy engine": (analysis.engine.h, analysis.engine.dx, analysis.engine.gradients),
               "torch operator (hand-written backward)": (analysis.op.h, analysis.op.dx, analysis.op.gradients),
               f"{cell_of(analysis.config.cell).torch_name} (autograd)": (analysis.torch_rnn.h, analysis.torch_rnn.dx,
                                                                         analysis.torch_rnn.gradients)}
    name = st.segmented_control("quantity", ["h", "dx", "dW_ih", "dW_hh", "db_ih", "db_hh"], default="dW_hh",
                                key=QUANTITY_KEY) or "dW_hh"
    for src, (h, dx, g) in sources.items():
        arr = {"h": h, "dx": dx}.get(name, g.get(name))
        st.markdown(f"**{src}**")
        st.code(f"{name} =\n{_printed(arr)}", language=None)


def gradcheck(analysis: Analysis) -> None:
    """torch.autograd.gradcheck of the hand-written operator, run on request at large sizes."""
    cfg = analysis.config
    small = gradcheck_numbers(cfg) <= GRADCHECK_MAX_NUMBERS
    if small or st.toggle("Run gradcheck (takes a few seconds at this size)", key=GRADCHECK_KEY):
        res = get_gradcheck(cfg)
        (st.success if res.passed else st.error)(res.message)


def bug_zoo(cfg: RNNConfig) -> None:
    """The chosen cell's bug zoo: what each bug does and where it first diverges from autograd (t 1-based)."""
    cell = cell_of(cfg.cell)
    st.markdown(f"Classic mistakes in a hand-written {cell.title} backward pass, each made on purpose by the engine "
                "when chosen in the sidebar's bug selector. The first divergence is where the comparison above "
                f"first fails, in the order BPTT computes (t = {cfg.seq_len} down to 1), at this T.")
    lines = []
    for name in cell.zoo:
        if name == "none":
            continue
        lines.append(f"- **`{name}`**{' (selected)' if name == cfg.bug else ''}: first diverges in "
                     f"{zoo_divergence(name, cfg)}. {step_of(name, cfg.cell).note}")
    st.markdown("\n".join(lines))


def zoo_divergence(bug: str, cfg: RNNConfig) -> str:
    """Where a bug of the config's cell first diverges at its T, naming the gate: "`d_gates [f]` at t = 3"."""
    fd = first_divergence(bug, cfg.seq_len, cfg.cell)
    if fd is None:
        return "no step at this T (it needs a longer sequence)"
    return f"`{fd['quantity']}" + (f" [{fd['gate']}]" if "gate" in fd else "") + f"` at t = {fd['t'] + 1}"
