"""The Backward pass page: the step viewer (BPTT, t = T … 1, in the browser), what a buggy engine computes instead,
the finite-difference spot check on a clicked cell, and what truncation costs."""
from __future__ import annotations

import contextlib

import streamlit as st

from .. import figures
from ..analysis import Analysis
from ..bugs import step_of
from ..cells import cell_of
from ..config import RNNConfig
from ..fd import FD_EPS
from . import stepper
from .panels import chart, cuts, fmt_err
from .state import current_step, get_fd, get_flow

FD_W, FD_J, FD_I, FD_GEN = "fd_weight", "fd_j", "fd_i", "fd_gen"   # session_state: the checked entry; box generation
WIDGET_FD_W, WIDGET_FD_J, WIDGET_FD_I = "w_fd_weight", "w_fd_j", "w_fd_i"   # their widgets (the boxes: + _<gen>)
FD_WEIGHTS = ("dW_ih", "dW_hh", "db_ih", "db_hh")
GAP_WEIGHT_KEY = "bw_gap_weight"                   # widget: which weight's truncation gap is drawn
GAP_BARS_KEY, GAP_HEAT_KEY = "bw_gap_bars", "bw_gap_heat"   # the truncation gap's charts
DOWNLOADS_KEY = "bw_dl"


def t_of(k: int, T: int) -> int:
    """The 0-based timestep of backward step k (1..T): step 1 is t = T-1."""
    return T - k


def step_view(analysis: Analysis) -> None:
    """Every backward step, stepped in the browser; then what a buggy engine computes instead, and the FD check."""
    stepper.viewer("backward")
    bug_equation_note(analysis)
    cell = stepper.clicked_cell()
    if cell is not None:
        select_cell(analysis, cell)
    fd_spot_check(analysis, t_of(current_step(), analysis.config.seq_len))


# ----------------------------------------------------------------------------------------------------------------------
# what a buggy engine computes instead

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
    st.latex(r"\color{#c62828}" + step_of(cfg.bug, cfg.cell).equation)
    st.caption(where[0].upper() + where[1:] + ".")


# ----------------------------------------------------------------------------------------------------------------------
# the finite-difference spot check

def _fd_shape(cfg: RNNConfig, choice: str) -> tuple[int, ...]:
    """The shape of the weight whose gradient `choice` (dW_ih, dW_hh, db_ih, db_hh) is, like the torch module's: G·H
    rows for G gate blocks."""
    H, I, G = cfg.hidden_size, cfg.input_size, cell_of(cfg.cell).G
    return {"dW_ih": (G * H, I), "dW_hh": (G * H, H)}.get(choice, (G * H,))


def _fd_set(cfg: RNNConfig, choice: str, j: int, i: int) -> None:
    """Make (choice, j, i) the checked entry, clamped into the weight's shape; the boxes are re-created with it."""
    shape = _fd_shape(cfg, choice)
    st.session_state[FD_W] = choice
    st.session_state[FD_J] = min(max(int(j), 0), shape[0] - 1)
    st.session_state[FD_I] = min(max(int(i), 0), shape[1] - 1) if len(shape) == 2 else 0
    # new widget keys: a box still holding a refused entry (j = 99) cannot keep showing it beside the index used
    st.session_state[FD_GEN] = st.session_state.get(FD_GEN, 0) + 1


def select_cell(analysis: Analysis, cell: dict) -> None:
    """A click on a weight-gradient heatmap cell in the step viewer: check that entry."""
    with contextlib.suppress(KeyError, TypeError, ValueError):       # a malformed report changes nothing
        _fd_set(analysis.config, str(cell["weight"]), int(cell.get("j", 0)), int(cell.get("i", 0)))


def _on_fd_box(name: str, key: str) -> None:
    st.session_state[name] = st.session_state[key]


def _on_fd_weight(cfg: RNNConfig) -> None:
    _fd_set(cfg, st.session_state[WIDGET_FD_W] or "dW_hh", st.session_state.get(FD_J, 0),
            st.session_state.get(FD_I, 0))


def fd_table(name: str, rows: list[tuple[str, float, str]]) -> str:
    """The spot check's values as a Markdown table: every digit shown (monospace, one under the other, so they compare
    digit by digit at any width), with each value's relative difference from the finite difference."""
    body = "\n".join(f"| {label} | `{v:#.12g}` | {rel} |" for label, v, rel in rows)
    return (f"| {name} | value | rel. diff from the finite difference |\n|---|--:|--:|\n{body}\n\n"
            "The central difference is (L(w + ε) − L(w − ε)) / 2ε with L = Σ dh_out ⊙ h, in float64: the true "
            "gradient.")


def fd_spot_check(analysis: Analysis, t: int) -> None:
    """The central finite difference of one weight's gradient beside the engine's and the torch module's values."""
    cfg = analysis.config
    st.markdown("**Finite-difference spot check** — click a cell of a running sum above (NumPy engine), or choose "
                "the weight and its indices:")
    choice = st.session_state.get(FD_W, "dW_hh")
    if choice not in FD_WEIGHTS:
        choice = "dW_hh"
    weight = choice[1:]                                            # "dW_hh" -> "W_hh"
    shape = _fd_shape(cfg, choice)
    gen = st.session_state.get(FD_GEN, 0)
    j = min(max(int(st.session_state.get(FD_J, 0)), 0), shape[0] - 1)
    i = min(max(int(st.session_state.get(FD_I, 0)), 0), shape[1] - 1) if len(shape) == 2 else 0
    st.session_state[FD_J], st.session_state[FD_I] = j, i
    cols = st.columns([1.4, 1, 1, 2.6])
    st.session_state[WIDGET_FD_W] = choice
    cols[0].selectbox("weight gradient", FD_WEIGHTS, key=WIDGET_FD_W, on_change=_on_fd_weight,
                      args=(cfg,))          # the config, not the analysis: a widget's callback args live in the session
    kj = f"{WIDGET_FD_J}_{gen}"
    st.session_state[kj] = j
    cell = cell_of(cfg.cell)
    torch_name = cell.torch_name
    j_label = "row j (hidden unit)" if cell.G == 1 else f"row j (gate row: {' | '.join(cell.gates)})"
    cols[1].number_input(j_label, 0, shape[0] - 1, key=kj, on_change=_on_fd_box, args=(FD_J, kj))
    if len(shape) == 2:
        ki = f"{WIDGET_FD_I}_{gen}"
        st.session_state[ki] = i
        i_label = "column i (input)" if weight == "W_ih" else "column k (unit of h_t−1)"
        cols[2].number_input(i_label, 0, shape[1] - 1, key=ki, on_change=_on_fd_box, args=(FD_I, ki))
        index: tuple[int, ...] = (j, i)
    else:
        index = (j,)
    r = get_fd(cfg, weight, index)
    name = f"{choice}[{', '.join(map(str, index))}]"
    rows = [(f"central difference, ε = {FD_EPS:g}", r.estimate, ""),
            ("NumPy engine (full gradient)", r.engine, fmt_err(r.rel_err(r.engine))),
            (torch_name + (f" (truncate = {cfg.truncate})" if cfg.truncate else ""), r.torch_rnn,
             fmt_err(r.rel_err(r.torch_rnn)))]
    if cfg.truncate:
        rows.append((f"{torch_name}, full BPTT", r.torch_full, fmt_err(r.rel_err(r.torch_full))))
    st.markdown(fd_table(name, rows))
    notes = [f"The spot check is about the full gradient {name} (the heatmap at t = 1, the last backward step)."]
    if t != 0:
        notes.append(f"The heatmap at this step (t = {t + 1}) is only the partial sum of steps T … {t + 1}, so it "
                     "need not match.")
    if cfg.truncate:
        notes.append(f"With truncate = {cfg.truncate} the engine and {torch_name} compute the truncated gradient; "
                     f"the finite difference estimates the true one, which {torch_name} gives without detaching.")
    if cfg.bug != "none":
        notes.append(f"The engine makes the bug `{cfg.bug}` on purpose, so its value is expected to differ.")
    if r.exact:
        notes.append("All three agree up to the finite difference's own error (about 1e-9 relative).")
    st.caption(" ".join(notes))


# ----------------------------------------------------------------------------------------------------------------------
# what truncation costs

def truncation_gap(analysis: Analysis) -> None:
    """What truncated BPTT costs: per-weight relative error against full BPTT and a heatmap of the difference."""
    cfg = analysis.config
    if cfg.truncate == 0:
        return
    gap = get_flow(cfg).gap
    cut = cuts(cfg)
    st.subheader(f"Truncated BPTT (K = {cfg.truncate}): what it costs")
    where = ", ".join(f"h_{t} and h_{t + 1}" for t in cut[:12]) + (" …" if len(cut) > 12 else "")
    st.markdown(f"The hidden state is detached every {cfg.truncate} steps, like `h = h.detach()` in a training loop: "
                f"windows start at t = 1, {cfg.truncate + 1}, {2 * cfg.truncate + 1}, … and no gradient flows from a "
                f"window into the one before it. The carry is cut between {where or 'nothing (K ≥ T)'} "
                "(marked ✂ in the strip). PyTorch, detaching the same way, agrees with the engine; "
                "the gap below is against full BPTT.")
    # one under the other: side by side they were squeezed to ~200 px each in a narrow window
    chart(figures.gap_figure(gap.rel_err, cfg.truncate), GAP_BARS_KEY)
    st.markdown("Where the gap is, entry by entry (truncated − full BPTT, on the colour range of the full gradient):")
    w = st.segmented_control("gap weight", list(gap.diff), default="dW_hh", key=GAP_WEIGHT_KEY,
                             label_visibility="collapsed") or "dW_hh"
    axes = {"dW_ih": "HI", "dW_hh": "HH"}.get(w, "1H")
    d = gap.diff[w]
    chart(figures.heatmap(d, f"{w} (truncated − full)", figures.colour_range(d, gap.full[w]), axes,
                          title=f"{w}: truncated − full BPTT"), GAP_HEAT_KEY)
