"""The Backward pass page's pieces: header, strip, equations, the gradient rows, weight gradients, the animation."""
from __future__ import annotations

import numpy as np
import streamlit as st

from .. import figures
from . import flow_panels
from ..analysis import Analysis
from ..engine import carry_cut
from .panels import chart, d_pre_label, fmt_err, step_badges, triplet, zmax

WEIGHTS = {"dW_ih": ("dW_ih_acc", "HI"), "dW_hh": ("dW_hh_acc", "HH"), "db_ih": ("db_ih_acc", "1H"),
           "db_hh": ("db_hh_acc", "1H")}


def t_of(k: int, T: int) -> int:
    """The 0-based timestep of backward step k (1..T): step 1 is t = T-1."""
    return T - k


def describe(k: int, T: int) -> str:
    """Caption under the step controls."""
    t = t_of(k, T)
    return (f"Step {k} of {T} of the backward pass: t = {t + 1}, going backwards from t = {T} to t = 1. "
            f"Time is shown 1-based (t = 1..T); in the downloads this is t = {t}.")


def cuts(analysis: Analysis) -> list[int]:
    """0-based t where truncated BPTT cuts the carry from step t to t-1."""
    cfg = analysis.config
    return [t for t in range(cfg.seq_len) if carry_cut(t, cfg.truncate)]


def header(analysis: Analysis, k: int) -> None:
    """Title with t and the verdict of this step."""
    T = analysis.config.seq_len
    t = t_of(k, T)
    checks = step_badges(analysis, t)
    bad = [q for q, (ok, _) in checks.items() if not ok and q not in ("a", "h")]
    worst = max((r for q, (_, r) in checks.items()), default=0.0)
    n = sum(1 for q in checks if q not in ("a", "h"))
    verdict = (f":green[:material/check_circle:] all {n} quantities of this step match PyTorch (max rel. err {fmt_err(worst)})" if not bad else
               f":red[:material/cancel:] {len(bad)} of {n} quantities differ from PyTorch: {', '.join(bad)}")
    st.subheader(f"Backward pass · step {k} of {T} (t = {t + 1}, going backwards)")
    st.markdown(verdict)


def strip(analysis: Analysis, k: int) -> None:
    """The unrolled network with the current t highlighted; red arrow widths ∝ the gradient each step sends back."""
    T = analysis.config.seq_len
    t = t_of(k, T)
    norms = np.linalg.norm(analysis.engine.dh_prev.reshape(T, -1), axis=1)
    chart(figures.unrolled_strip(T, current=t, grad_norms=norms, cuts=cuts(analysis), height=170), "bw_strip")


def equations(analysis: Analysis, k: int) -> None:
    """The equations of this step with t filled in (1-based)."""
    cfg = analysis.config
    T = cfg.seq_len
    t = t_of(k, T)
    s, p, n = t + 1, t, t + 2
    dl = d_pre_label(cfg).replace("_", r"\_")
    fp = rf"(1 - h_{{{s}}}^{{2}})" if cfg.nonlinearity == "tanh" else rf"\mathbb{{1}}[a_{{{s}}} > 0]"
    carry = (rf"dh\_next_{{{s}}} = dh\_prev_{{{n}}}" if s < T and not carry_cut(t + 1, cfg.truncate)
             else rf"dh\_next_{{{s}}} = 0" + (r"\ \text{(last step)}" if s == T else r"\ \text{(truncated)}"))
    st.latex(rf"{carry}, \qquad dh\_total_{{{s}}} = dh\_out_{{{s}}} + dh\_next_{{{s}}}, \qquad "
             rf"{dl}_{{{s}}} = dh\_total_{{{s}}} \odot {fp}")
    st.latex(rf"dx_{{{s}}} = {dl}_{{{s}}}\, W_{{ih}}, \qquad dh\_prev_{{{s}}} = {dl}_{{{s}}}\, W_{{hh}} "
             rf"\ \ \text{{(sent to }} h_{{{p}}}\text{{)}}")
    st.latex(rf"dW_{{ih}} \mathrel{{+}}= {dl}_{{{s}}}^{{\top}} x_{{{s}}}, \quad "
             rf"dW_{{hh}} \mathrel{{+}}= {dl}_{{{s}}}^{{\top}} h_{{{p}}}, \quad "
             rf"db_{{ih}} \mathrel{{+}}= \textstyle\sum_b {dl}_{{{s}}}, \quad db_{{hh}} \mathrel{{+}}= "
             rf"\textstyle\sum_b {dl}_{{{s}}}")


def gradient_rows(analysis: Analysis, k: int) -> None:
    """dh_out, the carry in, their sum, d_pre, then dx and the carry sent on; each beside PyTorch."""
    cfg = analysis.config
    T = cfg.seq_len
    t = t_of(k, T)
    s = t + 1
    eng, ref, p = analysis.engine, analysis.unrolled, analysis.problem
    checks = step_badges(analysis, t)
    dl = d_pre_label(cfg)
    cut_in = t < T - 1 and carry_cut(t + 1, cfg.truncate)     # no carry into h_t: h_t is detached before step t+1
    st.markdown(f"#### The gradient reaching h_{s}")
    st.markdown(f"**dh_out_{s}** — the upstream gradient ∂L/∂h_{s} from the output at t = {s} (an input of the "
                f"problem, the same on both sides" + (", zero except at t = T: upstream = last" if cfg.upstream ==
                                                    "last" else "") + ").")
    c = st.columns(3)
    with c[0]:
        chart(figures.heatmap(p.dh_out[t], f"dh_out_{s}", figures.colour_range(p.dh_out), "BH",
                              title=f"dh_out_{s}  (B × H)"), "bw_dh_out")
    rows = [
        ("dh_next", f"dh_next_{s} — " + ("nothing comes in after the last step" if t == T - 1 else
                                          f"the carry from t = {s + 1}, cut by truncation" if cut_in else
                                          f"the carry in from t = {s + 1}"),
         "the gradient step t+1 sent back to h_t (zero at the last step and where truncation cuts)"),
        ("dh_total", f"dh_total_{s} = dh_out_{s} + dh_next_{s} = ∂L/∂h_{s}", "everything that reaches h_t"),
        ("d_pre", f"{dl}_{s} = dh_total_{s} ⊙ f'(a_{s}) = ∂L/∂a_{s}", "the gradient at the pre-activation"),
    ]
    for q, label, explain in rows:
        triplet(label, f"{q if q != 'd_pre' else dl}_{s}", getattr(eng, q)[t], getattr(ref, q)[t], zmax(analysis, q),
                "BH", f"bw_{q}", checks.get(q), explain)
    st.markdown("#### Sent onwards")
    triplet(f"dx_{s} = {dl}_{s} · W_ih", f"dx_{s}", eng.dx[t], ref.dx[t], zmax(analysis, "dx"), "BI", "bw_dx",
            checks.get("dx"), "the gradient of the input x_t (B × I)")
    triplet(f"dh_prev_{s} = {dl}_{s} · W_hh — the carry sent to h_{t}", f"dh_prev_{s}", eng.dh_prev[t],
            ref.dh_prev[t], zmax(analysis, "dh_prev"), "BH", "bw_dh_prev", checks.get("dh_prev"),
            "becomes dh_next at t − 1" + (" (this step's carry is cut by truncation)" if carry_cut(t, cfg.truncate)
                                          else "") + (" — at t = 1 it is dL/dh_0" if t == 0 else ""))


def weight_gradients(analysis: Analysis, k: int) -> None:
    """One accumulated weight gradient at a time (chosen with a segmented control), after this step."""
    T = analysis.config.seq_len
    t = t_of(k, T)
    s = t + 1
    st.markdown(f"#### Accumulated weight gradients after this step (steps t = {T} … {s})")
    choice = st.segmented_control("weight gradient", list(WEIGHTS), default="dW_hh", key="bw_weight",
                                  label_visibility="collapsed") or "dW_hh"
    q, axes = WEIGHTS[choice]
    checks = step_badges(analysis, t)
    full = " — this is the full gradient" if t == 0 else ""
    local = st.toggle("Colour range of this step only", key="bw_w_local",
                      help="Off: one range over all steps, so you see the sum grow as steps are added. "
                           "On: the range of this step's partial sum, to see its pattern.")
    eng, ref = getattr(analysis.engine, q)[t], getattr(analysis.unrolled, q)[t]
    zm = figures.colour_range(eng, ref) if local else zmax(analysis, q)
    triplet(f"{choice} after step t = {s}{full}", choice, eng, ref, zm, axes, "bw_w", checks.get(q),
            "rows: hidden unit j; columns: input i" if axes == "HI" else
            "rows: hidden unit j; columns: hidden unit k (of h_(t−1))" if axes == "HH" else "one entry per hidden unit j",
            on_select=flow_panels.on_cell_select)
    flow_panels.fd_spot_check(analysis, choice, t)


def animation(analysis: Analysis) -> None:
    """The client-side animation of dh_total and d_pre over t = T..1, built only when asked for."""
    with st.expander("▶ Animate the whole backward pass in the browser (no server round trip per frame)"):
        if st.toggle("Build the animation", key="bw_anim", help="Large configurations make a large figure."):
            dl = d_pre_label(analysis.config)
            fig = figures.backward_animation({"dh_total": analysis.engine.dh_total, dl: analysis.engine.d_pre})
            chart(fig, "bw_animation")
            st.caption("Frames run from t = T down to t = 1; the colour ranges are fixed over all frames.")
