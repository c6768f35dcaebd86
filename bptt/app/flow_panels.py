"""The gradient-flow lab in the app: the Gradient flow page, the truncation gap, the finite-difference check."""
from __future__ import annotations

import contextlib
import json

import streamlit as st

from .. import figures
from ..analysis import Analysis
from ..bugs import step_of
from ..config import PRESET_NOTES, PRESETS, RNNConfig, preset
from ..engine import carry_cut
from ..fd import FD_EPS, FDCheck, fd_check
from ..flow import FlowReport, flow_report
from .panels import chart, fmt_err
from .state import get_analysis

FLOW_PRESETS = ("Vanishing gradients", "Exploding gradients")   # presets the Gradient flow page explains
FD_W, FD_J, FD_I, FD_GEN = "fd_weight", "fd_j", "fd_i", "fd_gen"   # session_state: the checked entry; box generation
WIDGET_FD_W, WIDGET_FD_J, WIDGET_FD_I = "w_fd_weight", "w_fd_j", "w_fd_i"   # their widgets (the boxes: + _<gen>)
FD_WEIGHTS = ("dW_ih", "dW_hh", "db_ih", "db_hh")


# ----------------------------------------------------------------------------------------------------------------------
# cached numbers (keyed on the config's scalars and the batch element, bounded)

@st.cache_resource(max_entries=4, show_spinner="Computing the gradient flow (Jacobians, spectrum, hh_scale sweep)…")
def _flow(config_json: str, b: int) -> FlowReport:
    cfg = RNNConfig.from_dict(json.loads(config_json))
    an = get_analysis(cfg)
    return flow_report(an.problem, an.engine, b)


def get_flow(cfg: RNNConfig, b: int = 0) -> FlowReport:
    """The (cached, read-only) gradient-flow report of this config for batch element b."""
    return _flow(cfg.to_json(), b)


@st.cache_resource(max_entries=32, show_spinner=False)
def _fd(config_json: str, weight: str, index: tuple[int, ...]) -> FDCheck:
    cfg = RNNConfig.from_dict(json.loads(config_json))
    an = get_analysis(cfg)
    return fd_check(an.problem, weight, index, engine=an.engine, torch_rnn=an.torch_rnn)


# ----------------------------------------------------------------------------------------------------------------------
# presets the Gradient flow page explains

def matching_preset(cfg: RNNConfig) -> str | None:
    """The name of the preset this config is exactly (so a shared link explains itself too), else None."""
    return next((name for name in PRESETS if name != "Worked example" and preset(name) == cfg), None)


def preset_note(cfg: RNNConfig) -> None:
    """When the config is the vanishing or exploding preset, say what to look for."""
    name = matching_preset(cfg)
    if name not in FLOW_PRESETS:
        return
    look = ("The red curve falls by orders of magnitude from t = T back to t = 1, the Jacobian norms fall "
            "geometrically with the distance, and every singular value of W_hh is below 1."
            if name == "Vanishing gradients" else
            "The red curve rises by orders of magnitude from t = T back to t = 1 and the Jacobian norms grow "
            "geometrically: the singular values of W_hh reach above 1 and relu's f′ = 1 on active units lets it "
            "through undamped.")
    st.info(f"**Preset: {name}.** {PRESET_NOTES[name]} {look}", icon=":material/lightbulb:")


# ----------------------------------------------------------------------------------------------------------------------
# the Gradient flow page's sections

def _cuts(cfg: RNNConfig) -> list[int]:
    return [t for t in range(cfg.seq_len) if carry_cut(t, cfg.truncate)]


def grad_norms_section(cfg: RNNConfig, report: FlowReport) -> None:
    """‖dL/dh_t‖ over t, on a log scale."""
    st.subheader("How much gradient reaches each h_t")
    c = st.columns([3, 1.3])
    with c[0]:
        g = report.grad_norms
        chart(figures.grad_norm_figure(g.per_t, g.per_batch, _cuts(cfg)), "flow_norms")
    with c[1]:
        st.markdown("‖∂L/∂h_t‖ is the norm of `dh_total`, everything that reaches h_t from its own output and from "
                    "the future. On a log scale, vanishing gradients are a line falling towards t = 1 and exploding "
                    "ones a line rising towards it.")
        ratio = g.per_t[0] / g.per_t[-1] if g.per_t[-1] > 0 else float("nan")
        st.metric("‖∂L/∂h_1‖ / ‖∂L/∂h_T‖", f"{ratio:.2e}")
        notes = []
        if cfg.truncate:
            notes.append(f"truncate = {cfg.truncate}: the carry is cut at the dashed lines, so each window starts "
                         "afresh")
        if cfg.bug != "none":
            notes.append(f"bug = `{cfg.bug}`: these are the buggy engine's numbers")
        if notes:
            st.caption("; ".join(notes) + ".")


def jacobian_section(cfg: RNNConfig) -> FlowReport:
    """The Jacobian products ∂h_T/∂h_s against the distance, for a chosen batch element; returns the report used."""
    st.subheader("Why: the Jacobian product back through time")
    b = 0
    if cfg.batch_size > 1:
        b = int(st.number_input("batch element b", 0, cfg.batch_size - 1, 0, key="flow_b",
                                help="whose activations f′(a_k) enter the product"))
    report = get_flow(cfg, b)
    c = st.columns([3, 1.3])
    with c[0]:
        jac = report.jacobian
        chart(figures.jacobian_norm_figure(jac.distance, jac.norms, cfg.seq_len, b), "flow_jacobian")
    with c[1]:
        st.latex(r"\frac{\partial h_T}{\partial h_s} = \prod_{k=s+1}^{T} \operatorname{diag}(f'(a_k))\, W_{hh}")
        st.markdown("A gradient sent from h_T back to h_s is multiplied by this product of T − s factors. Each "
                    "factor stretches by at most ‖W_hh‖₂ · max f′, so the norm shrinks or grows roughly "
                    "geometrically with the distance.")
    return report


def spectrum_section(report: FlowReport) -> None:
    """The singular values of W_hh, its spectral radius and the line at 1."""
    st.subheader("The recurrent weights W_hh")
    c = st.columns([3, 1.3])
    sp = report.spectrum
    with c[0]:
        chart(figures.spectrum_figure(sp.singular_values, sp.spectral_radius), "flow_spectrum")
    with c[1]:
        st.markdown("If every singular value is below 1 (and f′ ≤ 1, as for tanh and relu), the Jacobian product "
                    "must shrink: gradients vanish. A spectral radius above 1 lets it grow over long distances: "
                    "gradients can explode, unless saturation (f′ ≈ 0) damps them.")
        a, b = st.columns(2)
        a.metric("spectral radius ρ", f"{sp.spectral_radius:.3g}")
        b.metric("largest σ = ‖W_hh‖₂", f"{sp.spectral_norm:.3g}")


def saturation_section(cfg: RNNConfig, report: FlowReport) -> None:
    """The saturation map f′(a_t) over time."""
    st.subheader("Saturation: where f′(a_t) blocks the gradient")
    c = st.columns([3, 1.3])
    sat = report.saturation
    with c[0]:
        chart(figures.saturation_figure(sat.fprime_mean, sat.fraction, cfg.nonlinearity), "flow_saturation")
    with c[1]:
        what = ("A tanh unit with |a_t| large has h_t ≈ ±1 and f′ = 1 − h_t² ≈ 0" if cfg.nonlinearity == "tanh" else
                "A relu unit with a_t ≤ 0 has f′ = 0")
        st.markdown(f"{what}: no gradient passes through it at that step. Dark cells are units that block the "
                    f"gradient; the top panel counts the saturated fraction ({sat.rule}) over batch and units.")


def sweep_section(cfg: RNNConfig, report: FlowReport) -> None:
    """The hh_scale sweep, overlaid."""
    st.subheader("From vanishing to exploding: a sweep over hh_scale")
    sw = report.sweep
    c = st.columns([3, 1.3])
    with c[0]:
        chart(figures.sweep_figure(sw.scales, sw.norms, cfg.hh_scale), "flow_sweep")
    with c[1]:
        st.markdown("The same problem with W_hh multiplied by each scale (the current one is thick). Small scales "
                    "make the curves fall towards t = 1, large ones make them rise, unless tanh saturates. The sweep "
                    "always shows full BPTT without a bug, i.e. the true gradient.")


# ----------------------------------------------------------------------------------------------------------------------
# the Backward page: the truncation gap

def truncation_gap(analysis: Analysis) -> None:
    """What truncated BPTT costs: per-weight relative error against full BPTT and a heatmap of the difference."""
    cfg = analysis.config
    if cfg.truncate == 0:
        return
    gap = get_flow(cfg).gap
    cuts = _cuts(cfg)
    st.subheader(f"Truncated BPTT (K = {cfg.truncate}): what it costs")
    where = ", ".join(f"h_{t} and h_{t + 1}" for t in cuts[:12]) + (" …" if len(cuts) > 12 else "")
    st.markdown(f"The hidden state is detached every {cfg.truncate} steps, like `h = h.detach()` in a training loop: "
                f"windows start at t = 1, {cfg.truncate + 1}, {2 * cfg.truncate + 1}, … and no gradient flows from a "
                f"window into the one before it. The carry is cut between {where or 'nothing (K ≥ T)'} "
                "(marked ✂ in the strip). PyTorch, detaching the same way, agrees with the engine; "
                "the gap below is against full BPTT.")
    c = st.columns([1.2, 2])
    with c[0]:
        chart(figures.gap_figure(gap.rel_err, cfg.truncate), "bw_gap_bars")
    with c[1]:
        w = st.segmented_control("gap weight", list(gap.diff), default="dW_hh", key="bw_gap_weight",
                                 label_visibility="collapsed") or "dW_hh"
        axes = {"dW_ih": "HI", "dW_hh": "HH"}.get(w, "1H")
        d = gap.diff[w]
        chart(figures.heatmap(d, f"{w} (truncated − full)", figures.colour_range(d, gap.full[w]), axes,
                              title=f"{w}: truncated − full BPTT (colour range of the full gradient)"), "bw_gap_heat")


# ----------------------------------------------------------------------------------------------------------------------
# the Backward page: the finite-difference spot check

def _fd_shape(analysis: Analysis, choice: str) -> tuple[int, ...]:
    """The shape of the weight whose gradient `choice` (dW_ih, dW_hh, db_ih, db_hh) is."""
    return analysis.problem.weights[choice[1:]].shape


def _fd_set(analysis: Analysis, choice: str, j: int, i: int) -> None:
    """Make (choice, j, i) the checked entry, clamped into the weight's shape; the boxes are re-created with it."""
    shape = _fd_shape(analysis, choice)
    st.session_state[FD_W] = choice
    st.session_state[FD_J] = min(max(int(j), 0), shape[0] - 1)
    st.session_state[FD_I] = min(max(int(i), 0), shape[1] - 1) if len(shape) == 2 else 0
    # new widget keys: a box still holding a refused entry (j = 99) cannot keep showing it beside the index used
    st.session_state[FD_GEN] = st.session_state.get(FD_GEN, 0) + 1


def select_cell(analysis: Analysis, cell: dict) -> None:
    """A click on a weight-gradient heatmap cell in the step viewer: check that entry."""
    with contextlib.suppress(KeyError, TypeError, ValueError):       # a malformed report changes nothing
        _fd_set(analysis, str(cell["weight"]), int(cell.get("j", 0)), int(cell.get("i", 0)))


def _on_fd_box(name: str, key: str) -> None:
    st.session_state[name] = st.session_state[key]


def _on_fd_weight(analysis: Analysis) -> None:
    _fd_set(analysis, st.session_state[WIDGET_FD_W] or "dW_hh", st.session_state.get(FD_J, 0),
            st.session_state.get(FD_I, 0))


def fd_spot_check(analysis: Analysis, t: int) -> None:
    """The central finite difference of one weight's gradient beside the engine's and torch.nn.RNN's values."""
    cfg = analysis.config
    st.markdown("**Finite-difference spot check** — click a cell of a running sum above (NumPy engine), or choose "
                "the weight and its indices:")
    choice = st.session_state.get(FD_W, "dW_hh")
    if choice not in FD_WEIGHTS:
        choice = "dW_hh"
    weight = choice[1:]                                            # "dW_hh" -> "W_hh"
    shape = _fd_shape(analysis, choice)
    gen = st.session_state.get(FD_GEN, 0)
    j = min(max(int(st.session_state.get(FD_J, 0)), 0), shape[0] - 1)
    i = min(max(int(st.session_state.get(FD_I, 0)), 0), shape[1] - 1) if len(shape) == 2 else 0
    st.session_state[FD_J], st.session_state[FD_I] = j, i
    cols = st.columns([1.4, 1, 1, 2.6])
    st.session_state[WIDGET_FD_W] = choice
    cols[0].selectbox("weight gradient", FD_WEIGHTS, key=WIDGET_FD_W, on_change=_on_fd_weight, args=(analysis,))
    kj = f"{WIDGET_FD_J}_{gen}"
    st.session_state[kj] = j
    cols[1].number_input("row j (hidden unit)", 0, shape[0] - 1, key=kj, on_change=_on_fd_box, args=(FD_J, kj))
    if len(shape) == 2:
        ki = f"{WIDGET_FD_I}_{gen}"
        st.session_state[ki] = i
        i_label = "column i (input)" if weight == "W_ih" else "column k (unit of h_t−1)"
        cols[2].number_input(i_label, 0, shape[1] - 1, key=ki, on_change=_on_fd_box, args=(FD_I, ki))
        index: tuple[int, ...] = (j, i)
    else:
        index = (j,)
    r = _fd(cfg.to_json(), weight, index)
    name = f"{choice}[{', '.join(map(str, index))}]"
    diff = lambda v: f"rel. diff {fmt_err(r.rel_err(v))}"  # noqa: E731
    m = st.columns(4 if cfg.truncate else 3)
    m[0].metric(f"central difference, ε = {FD_EPS:g}", f"{r.estimate:.10g}",
                help="(L(w + ε) − L(w − ε)) / 2ε with L = Σ dh_out ⊙ h, in float64: the true gradient")
    m[1].metric("NumPy engine (full gradient)", f"{r.engine:.10g}", diff(r.engine), delta_color="off",
                delta_arrow="off")
    m[2].metric("torch.nn.RNN" + (f" (truncate = {cfg.truncate})" if cfg.truncate else ""), f"{r.torch_rnn:.10g}",
                diff(r.torch_rnn), delta_color="off", delta_arrow="off")
    if cfg.truncate:
        m[3].metric("torch.nn.RNN, full BPTT", f"{r.torch_full:.10g}", diff(r.torch_full), delta_color="off",
                    delta_arrow="off")
    notes = [f"The spot check is about the full gradient {name} (the heatmap at t = 1, the last backward step)."]
    if t != 0:
        notes.append(f"The heatmap at this step (t = {t + 1}) is only the partial sum of steps T … {t + 1}, so it "
                     "need not match.")
    if cfg.truncate:
        notes.append(f"With truncate = {cfg.truncate} the engine and torch.nn.RNN compute the truncated gradient; "
                     "the finite difference estimates the true one, which torch.nn.RNN gives without detaching.")
    if cfg.bug != "none":
        notes.append(f"The engine makes the bug `{cfg.bug}` on purpose, so its value is expected to differ.")
    if r.exact:
        notes.append("All three agree up to the finite difference's own error (about 1e-9 relative).")
    st.caption(" ".join(notes))


# ----------------------------------------------------------------------------------------------------------------------
# the Backward page: the bug zoo beside the equations

def bug_equation_note(analysis: Analysis) -> None:
    """Under the (correct) equations: what the buggy engine computes instead, and where it first diverges."""
    cfg = analysis.config
    if cfg.bug == "none":
        return
    fd = analysis.first_divergence
    where = (f"first divergence: **{fd['quantity']}** at **t = {fd['t'] + 1}** (t = {fd['t']} in "
             "`python -m bptt verify --json`, which counts from 0)" if fd else
             "no number changes in this configuration")
    st.markdown(f":red[The equations above are the correct ones; the engine (bug `{cfg.bug}`) computes instead:]")
    st.latex(r"\color{#c62828}" + step_of(cfg.bug).equation)
    st.caption(where[0].upper() + where[1:] + ".")
