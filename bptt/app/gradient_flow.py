"""The Gradient flow page: why gradients vanish or explode back through time, for the current configuration."""
from __future__ import annotations

import streamlit as st

from .. import figures
from ..cells import cell_of
from ..config import PRESET_NOTES, PRESETS, RNNConfig, preset
from ..flow import FlowReport
from .panels import chart, cuts
from .state import get_flow

LSTM_PRESET = "LSTM: the cell state carries the gradient"
FLOW_PRESETS = ("Vanishing gradients", "Exploding gradients", LSTM_PRESET)   # presets this page explains
BATCH_KEY = "flow_b"                                             # widget: the batch element of the Jacobian product
NORMS_KEY, JACOBIAN_KEY, SPECTRUM_KEY = "flow_norms", "flow_jacobian", "flow_spectrum"   # the charts
SATURATION_KEY, SWEEP_KEY = "flow_saturation", "flow_sweep"
CELLS_KEY, PATHS_KEY, CELLS_GAP_KEY = "flow_cells", "flow_paths", "flow_cells_gap"   # the three cells compared
GATED_CHART_KEYS = (NORMS_KEY, SWEEP_KEY, CELLS_KEY, PATHS_KEY, CELLS_GAP_KEY)       # every cell's charts
CHART_KEYS = (*GATED_CHART_KEYS, JACOBIAN_KEY, SPECTRUM_KEY, SATURATION_KEY)         # the vanilla RNN's


# ----------------------------------------------------------------------------------------------------------------------
# presets this page explains

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
            "Compare the three cells below: the sentence under the paths chart gives the numbers."
            if name == LSTM_PRESET else
            "The red curve rises by orders of magnitude from t = T back to t = 1 and the Jacobian norms grow "
            "geometrically: the singular values of W_hh reach above 1 and relu's f′ = 1 on active units lets it "
            "through undamped.")
    st.info(f"**Preset: {name}.** {PRESET_NOTES[name]} {look}", icon=":material/lightbulb:")


# ----------------------------------------------------------------------------------------------------------------------
# the sections, top to bottom

def grad_norms_section(cfg: RNNConfig, report: FlowReport) -> None:
    """‖dL/dh_t‖ over t, on a log scale. (Each section: a sentence or two, then its chart across the whole width, so
    that it reads in a narrow window too.)"""
    st.subheader("How much gradient reaches each h_t")
    g = report.grad_norms
    ratio = g.per_t[0] / g.per_t[-1] if g.per_t[-1] > 0 else float("nan")
    cn = None if report.cell_norms is None else report.cell_norms.per_t          # the LSTM's ‖∂L/∂c_t‖
    st.markdown("‖∂L/∂h_t‖ is the norm of `dh_total`, everything that reaches h_t from its own output and from "
                "the future. On a log scale, vanishing gradients are a line falling towards t = 1 and exploding "
                f"ones a line rising towards it. Here **‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {ratio:.3g}**."
                + (" For the LSTM, ‖∂L/∂c_t‖ (`dc_total`, dashed) is what reaches the cell state." if cn is not None
                   else ""))
    chart(figures.grad_norm_figure(g.per_t, g.per_batch, cuts(cfg), c_per_t=cn), NORMS_KEY)
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
    if cfg.cell == "rnn":
        st.subheader("Why: the Jacobian product back through time")
        st.latex(r"\frac{\partial h_T}{\partial h_s} = \prod_{k=s+1}^{T} \operatorname{diag}(f'(a_k))\, W_{hh}")
        st.markdown("A gradient sent from h_T back to h_s is multiplied by this product of T − s factors. Each factor "
                    "stretches by at most ‖W_hh‖₂ · max f′, so the norm shrinks or grows roughly geometrically with "
                    "the distance.")
    b = 0
    if cfg.batch_size > 1:
        b = int(st.number_input("batch element b", 0, cfg.batch_size - 1, 0, key=BATCH_KEY,
                                help="whose activations f′(a_k) enter the product" if cfg.cell == "rnn" else
                                "whose gates the products along the paths (below) multiply"))
    report = get_flow(cfg, b)
    if report.jacobian is None:
        st.caption(f"The {cell_of(cfg.cell).title}'s W_hh stacks {len(cell_of(cfg.cell).gates)} gate blocks, mixed "
                   "with the gates at every step: the Jacobian product, W_hh's spectrum and saturation are shown for "
                   "the vanilla RNN. For every cell, see the paths the gradient takes below.")
        return report
    jac = report.jacobian
    chart(figures.jacobian_norm_figure(jac.distance, jac.norms, cfg.seq_len, b), JACOBIAN_KEY)
    return report


def spectrum_section(report: FlowReport) -> None:
    """The singular values of W_hh, its spectral radius and the line at 1 (the vanilla RNN's)."""
    if report.spectrum is None:
        return
    st.subheader("The recurrent weights W_hh")
    sp = report.spectrum
    st.markdown("If every singular value is below 1 (and f′ ≤ 1, as for tanh and relu), the Jacobian product must "
                "shrink: gradients vanish. A spectral radius above 1 lets it grow over long distances: gradients can "
                "explode, unless saturation (f′ ≈ 0) damps them. Here the **spectral radius ρ = "
                f"{sp.spectral_radius:.3g}** and the **largest σ = ‖W_hh‖₂ = {sp.spectral_norm:.3g}**.")
    chart(figures.spectrum_figure(sp.singular_values, sp.spectral_radius), SPECTRUM_KEY)


def saturation_section(cfg: RNNConfig, report: FlowReport) -> None:
    """The saturation map f′(a_t) over time (the vanilla RNN's)."""
    if report.saturation is None:
        return
    st.subheader("Saturation: where f′(a_t) blocks the gradient")
    sat = report.saturation
    what = ("A tanh unit with |a_t| large has h_t ≈ ±1 and f′ = 1 − h_t² ≈ 0" if cfg.nonlinearity == "tanh" else
            "A relu unit with a_t ≤ 0 has f′ = 0")
    st.markdown(f"{what}: no gradient passes through it at that step. Dark cells are units that block the "
                f"gradient; the top panel counts the saturated fraction ({sat.rule}) over batch and units.")
    chart(figures.saturation_figure(sat.fprime_mean, sat.fraction, cfg.nonlinearity), SATURATION_KEY)


def sweep_section(cfg: RNNConfig, report: FlowReport) -> None:
    """The hh_scale sweep, overlaid."""
    st.subheader("From vanishing to exploding: a sweep over hh_scale")
    sw = report.sweep
    st.markdown("The same problem with W_hh multiplied by each scale (the current one is thick). Small scales make "
                "the curves fall towards t = 1, large ones make them rise, unless tanh saturates. The sweep always "
                "shows full BPTT without a bug, i.e. the true gradient.")
    chart(figures.sweep_figure(sw.scales, sw.norms, cfg.hh_scale), SWEEP_KEY)


# ----------------------------------------------------------------------------------------------------------------------
# the three cells on the same problem

def cells_section(cfg: RNNConfig, report: FlowReport) -> None:
    """The vanilla RNN, the LSTM and the GRU on this problem, under the hh_scale sweep."""
    cc = report.cells
    st.subheader("The three cells on the same problem")
    st.markdown(f"The same sizes, seed and upstream gradient (I = {cfg.input_size}, H = {cfg.hidden_size}, "
                f"T = {cfg.seq_len}, B = {cfg.batch_size}, seed {cfg.seed}, upstream {cfg.upstream}), full BPTT and "
                "no bug, through `torch.nn.RNN`'s, `torch.nn.LSTM`'s and `torch.nn.GRU`'s cells, with W_hh "
                "multiplied by each hh_scale (the current one black).")
    chart(figures.cells_norm_figure(cc.scales, cc.h_norms, cc.c_norms, cfg.hh_scale), CELLS_KEY)


def paths_section(cfg: RNNConfig, report: FlowReport) -> None:
    """∏ f (LSTM) and ∏ z (GRU) against the vanilla RNN's Jacobian norms, and the sentence computed from them."""
    cc = report.cells
    st.subheader("Why the LSTM keeps more of the gradient")
    st.markdown("Along the LSTM's cell path the gradient is multiplied at each step by the forget gate alone: "
                "dc_prev = dc_total ⊙ f_t, with no W_hh and no tanh′. So from step T back to s it carries ∏ f (green, "
                "the mean over units). The GRU's direct path h_(t−1) → h_t carries ∏ z (orange). The vanilla RNN's "
                "gradient goes through diag(f′(a_k)) W_hh at every step (blue: the norm of that product).")
    chart(figures.paths_figure(cc.forget_product, cc.update_product, cc.rnn_jacobian, cc.b), PATHS_KEY)
    st.markdown(f"**{cc.sentence()}**")
    st.caption("The shares are ‖∂L/∂·‖ at t = 1 over ‖∂L/∂·‖ at t = T, computed on this problem with the upstream "
               "gradient at the last step only and this hh_scale (full BPTT, no bug). With PyTorch's initialisation "
               f"the forget gates sit near σ(0) = 0.5 (mean f here: {cc.mean_forget:.2f}), so ∏ f still shrinks "
               "geometrically; a trained LSTM learns f near 1 where it must remember.")


def cells_gap_section(cfg: RNNConfig, report: FlowReport) -> None:
    """The truncation gap of every cell against K."""
    cc = report.cells
    st.subheader("Truncation, for every cell")
    if not cc.truncations:
        st.markdown(f"With T = {cfg.seq_len} there is no K < T to truncate at.")
        return
    st.markdown("Truncated BPTT detaches the state (h, and c for the LSTM) every K steps. The gap is how far the "
                "truncated weight gradients are from full BPTT's: ‖g_K − g_full‖ / ‖g_full‖ over dW_ih, dW_hh, db_ih "
                "and db_hh together, on the same problem (upstream as in the sidebar).")
    chart(figures.cells_gap_figure(cc.truncations, cc.gap), CELLS_GAP_KEY)
