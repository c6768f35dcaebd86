"""The Forward pass page's content for one step."""
from __future__ import annotations

import streamlit as st

from .. import figures
from ..analysis import Analysis
from .panels import badge, chart, fmt_err, step_badges, triplet, zmax


def describe(k: int, T: int) -> str:
    """Caption under the step controls."""
    return f"Step {k} of {T}: t = {k}. Time is shown 1-based here (t = 1..T); the downloads use 0-based t = {k - 1}."


def equation(analysis: Analysis, t: int) -> None:
    """The forward equation with t (1-based on screen) filled in."""
    f = r"\tanh" if analysis.config.nonlinearity == "tanh" else r"\operatorname{relu}"
    s, p = t + 1, t
    st.latex(rf"a_{{{s}}} = W_{{ih}}\, x_{{{s}}} + b_{{ih}} + W_{{hh}}\, h_{{{p}}} + b_{{hh}}, \qquad "
             rf"h_{{{s}}} = {f}(a_{{{s}}})")


def header(analysis: Analysis, k: int) -> None:
    """Title with t and the verdict of this step."""
    checks = step_badges(analysis, k - 1)
    ok = all(checks.get(q, (True, 0))[0] for q in ("a", "h"))
    st.subheader(f"Forward pass · step {k} of {analysis.config.seq_len} (t = {k})")
    mark = (":green[:material/check_circle:] a_t and h_t match PyTorch" if ok else
            ":red[:material/cancel:] this step differs from PyTorch")
    st.markdown(mark + f" · h_t rel err {fmt_err(checks.get('h', (True, 0.0))[1])}")


def render_step(analysis: Analysis, k: int) -> None:
    """Everything of forward step k (t = k, 1-based)."""
    t = k - 1
    eng, p = analysis.engine, analysis.problem
    hprev = p.h0 if t == 0 else eng.h[t - 1]
    checks = step_badges(analysis, t)
    equation(analysis, t)
    st.markdown("**The inputs of this step and what it computes** (NumPy engine). Each colour range is fixed over "
                "all timesteps: red positive, blue negative.")
    hz = figures.colour_range(p.h0, eng.h)
    c = st.columns(4)
    with c[0]:
        chart(figures.heatmap(p.x[t], f"x_{k}", figures.colour_range(p.x), "BI", title=f"x_{k}  (B × I)"), "fw_x")
    with c[1]:
        chart(figures.heatmap(hprev, f"h_{t}", hz, "BH", title=f"h_{t}  (B × H), from step {t}" if t else
                              "h_0  (B × H), the initial state"), "fw_hprev")
    with c[2]:
        chart(figures.heatmap(eng.a[t], f"a_{k}", zmax(analysis, "a"), "BH", title=f"a_{k}  (pre-activation)"), "fw_a")
    with c[3]:
        chart(figures.heatmap(eng.h[t], f"h_{k}", hz, "BH", title=f"h_{k}  (B × H)"), "fw_h")
    st.divider()
    triplet(f"h_{k}: the NumPy engine beside torch.nn.RNN's output", f"h_{k}", eng.h[t], analysis.torch_rnn.h[t], hz,
            "BH", "fw_h_cmp", None, ref_name="torch.nn.RNN")
    st.markdown(f"Step check against the unrolled autograd graph: a_{k} {badge(*checks['a'])} &nbsp; "
                f"h_{k} {badge(*checks['h'])}" if "a" in checks and "h" in checks else "")
