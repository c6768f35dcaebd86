"""AppTest for the cell choice (issue 15, item 1) and the pages that show every cell: Derivation, Gradient flow and
Verification, for rnn, lstm and gru, at the defaults and through the URL; bad URL values warn, never raise."""
from __future__ import annotations

import numpy as np
import pytest
from apptools import FLOW, app, figures, no_exception
from apptools import decode as _arr
from streamlit.testing.v1 import AppTest
from viewertools import panel, payload

from bptt.analysis import analyze
from bptt.app import gradient_flow
from bptt.app.navigation import SCRIPTS
from bptt.bugs import first_divergence
from bptt.cells import BUGS
from bptt.config import RNNConfig
from bptt.flow import compare_cells

PAGES = list(SCRIPTS.values())
VERIFICATION, DERIVATION = SCRIPTS["Verification"], SCRIPTS["Derivation"]
GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
SMALL = dict(input_size="3", hidden_size="4", seq_len="5", batch_size="2")


def text(at: AppTest) -> str:
    parts = [*at.markdown, *at.info, *at.error, *at.warning, *at.caption, *at.subheader, *at.title, *at.latex]
    return "\n".join(str(p.value) for p in parts)


def warnings_text(at: AppTest) -> str:
    return "\n".join(str(w.value) for w in at.warning)


# ----------------------------------------------------------------------------------------------------------------------
# every page, every cell

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_page_runs_for_a_gated_cell_at_the_defaults(cell):
    at = app(None, cell=cell)
    for page in [None, *PAGES]:
        if page:
            at.switch_page(page)
            at.run()
        no_exception(at)
        assert not at.warning, warnings_text(at)
        assert at.session_state["config"] == RNNConfig(cell=cell)
        assert at.query_params["cell"] in (cell, [cell])


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_from_a_gru_link_with_a_step(page):
    at = app(page, cell="gru", step="2")
    no_exception(at)
    assert not at.warning, warnings_text(at)
    assert at.session_state["config"].cell == "gru" and at.session_state["step"] == 2


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("page", ["Forward pass", "Backward pass"])
def test_the_step_pages_draw_every_gate_of_a_gated_cell(page, cell):
    at = app(SCRIPTS[page], cell=cell, **SMALL, step="2")
    no_exception(at)
    header, values = payload(at)
    assert header["cell"] == cell and header["gates"] == list(GATES[cell])
    an = analyze(RNNConfig(cell=cell, **{k: int(v) for k, v in SMALL.items()}))
    H = an.config.hidden_size
    if page == "Forward pass":
        for g in GATES[cell]:                                      # each gate's activation, step 2 (t = 1)
            np.testing.assert_allclose(panel(at, "gates", g, 1), getattr(an.engine, g)[1], rtol=1e-6, atol=1e-7)
        return
    for k, g in enumerate(GATES[cell]):                            # each gate's gradient, NumPy and PyTorch, t = 3
        gate = [p for g2 in header["groups"] if g2["id"] == "d_gates" for p in g2["panels"] if p["gate"] == g][0]
        at_t = header["steps"][3 - header["lo"]]["at"][gate["index"]]
        got = values[at_t:at_t + gate["rows"] * gate["cols"]].reshape(gate["rows"], gate["cols"])
        np.testing.assert_allclose(got, an.engine.d_gates[3][:, k * H:(k + 1) * H], rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------------------------------
# the URL and the sidebar

@pytest.mark.parametrize("params, name, kept", [
    (dict(cell="lstm", nonlinearity="relu", hidden_size="6"), "nonlinearity", dict(cell="lstm", hidden_size=6)),
    (dict(cell="gru", bug="forget-carry", seed="9"), "bug", dict(cell="gru", seed=9)),
    (dict(cell="cnn", hidden_size="6"), "cell", dict(cell="rnn", hidden_size=6)),
    (dict(cell="lstm", bug="z-swapped", seq_len="4"), "bug", dict(cell="lstm", seq_len=4)),
])
def test_a_url_value_that_does_not_fit_the_cell_warns_and_keeps_the_rest(params, name, kept):
    at = app(DERIVATION, **params)
    no_exception(at)
    w = warnings_text(at)
    assert f"`{name}`" in w, w
    cfg = at.session_state["config"]
    assert getattr(cfg, name) == getattr(RNNConfig(), name)
    assert all(getattr(cfg, k) == v for k, v in kept.items())
    if name == "bug":                                                   # the message lists what is allowed
        assert all(b in w for b in BUGS[cfg.cell][1:])


def test_the_cell_is_the_first_control_and_gated_cells_hide_what_does_not_apply():
    at = app(VERIFICATION, **SMALL)
    assert at.sidebar.radio[0].key == "w_cell"
    assert at.sidebar.selectbox(key="w_bug").options == list(BUGS["rnn"])
    assert any(r.key == "w_nonlinearity" for r in at.sidebar.radio)
    at.sidebar.radio(key="w_cell").set_value("lstm").run()
    no_exception(at)
    assert not any(r.key == "w_nonlinearity" for r in at.sidebar.radio)
    assert at.sidebar.selectbox(key="w_bug").options == list(BUGS["lstm"])


def test_switching_the_cell_keeps_sizes_seed_and_step_and_resets_the_old_cells_bug():
    at = app(VERIFICATION, **SMALL, seed="9", step="3", bug="forget-carry", nonlinearity="relu")
    at.sidebar.radio(key="w_cell").set_value("gru").run()
    no_exception(at)
    cfg = at.session_state["config"]
    assert cfg == RNNConfig(cell="gru", input_size=3, hidden_size=4, seq_len=5, batch_size=2, seed=9)
    assert at.session_state["step"] == 3 and at.query_params["step"] in ("3", ["3"])
    said = "\n".join(str(i.value) for i in at.sidebar.info)
    assert "forget-carry" in said and "'none'" in said and "nonlinearity" in said
    at.run()                                                            # said once
    assert not any("forget-carry" in str(i.value) for i in at.sidebar.info)


# ----------------------------------------------------------------------------------------------------------------------
# the pages' content

def test_verification_names_each_gate_block_and_the_cells_bug_zoo():
    at = app(VERIFICATION, cell="lstm", **SMALL)
    no_exception(at)
    quantities = set(at.dataframe[0].value["quantity"])
    assert {"d_gates [i]", "d_gates [f]", "d_gates [g]", "d_gates [o]", "dc_total", "dW_hh_acc [f]"} <= quantities
    assert "d_gates" not in quantities
    assert any("gradcheck passed" in str(s.value) for s in at.success)
    zoo = next(str(m.value) for m in at.markdown if "`gate-order-ifog`" in str(m.value))
    assert all(f"**`{b}`**" in zoo for b in BUGS["lstm"][1:]) and "forget-carry" not in zoo
    fd = first_divergence("gate-order-ifog", 5, "lstm")
    assert fd["gate"] == "g"
    assert f"**`gate-order-ifog`**: first diverges in `d_gates [g]` at t = {fd['t'] + 1}." in zoo


@pytest.mark.parametrize("cell, needles", [
    ("lstm", [r"dc\_total_t", r"\texttt{dc\_total}", r"\texttt{d\_gates[f]}", "f_{t+1}", r"(1 - \tanh^2 c_t)"]),
    ("gru", [r"\text{paper:}", r"\texttt{d\_gates[r]}", r"\texttt{d\_hn}", "reset-before-matmul"]),
])
def test_derivation_of_each_gated_cell(cell, needles):
    at = app(DERIVATION, cell=cell)
    no_exception(at)
    t = text(at)
    for needle in needles:
        assert needle in t, needle
    assert "Through the nonlinearity" not in t                          # the vanilla RNN's derivation is not shown


def test_flow_page_compares_the_three_cells_with_the_packages_numbers():
    at = app(FLOW, cell="lstm", **SMALL, upstream="last")
    no_exception(at)
    assert not at.warning
    figs = figures(at)
    assert set(figs) >= set(gradient_flow.GATED_CHART_KEYS)
    assert not set(figs) & {gradient_flow.JACOBIAN_KEY, gradient_flow.SPECTRUM_KEY, gradient_flow.SATURATION_KEY}
    cfg = RNNConfig(cell="lstm", input_size=3, hidden_size=4, seq_len=5, batch_size=2, upstream="last")
    cc = compare_cells(cfg)
    assert cc.sentence() in text(at)
    current = [tr for tr in figs[gradient_flow.CELLS_KEY]["data"] if "(current)" in tr["name"]]
    assert len(current) == 4                                            # rnn h, lstm h and c, gru h
    np.testing.assert_allclose(_arr(current[0]["x"]), np.arange(1, 6))     # t from 1
    i = cc.scales.index(1.0)
    for tr, want in zip(current, (cc.h_norms["rnn"][i], cc.h_norms["lstm"][i], cc.c_norms[i], cc.h_norms["gru"][i])):
        np.testing.assert_allclose(_arr(tr["y"]), want, rtol=1e-12)
    paths = figs[gradient_flow.PATHS_KEY]["data"]
    np.testing.assert_allclose(_arr(paths[0]["y"]), cc.forget_product, rtol=1e-12)
    np.testing.assert_allclose(_arr(paths[2]["y"]), cc.rnn_jacobian, rtol=1e-12)
    gap = figs[gradient_flow.CELLS_GAP_KEY]["data"]
    assert [tr["name"] for tr in gap] == ["vanilla RNN", "LSTM", "GRU"]
    np.testing.assert_allclose(_arr(gap[1]["y"]), cc.gap["lstm"], rtol=1e-12)
    norms = figs[gradient_flow.NORMS_KEY]["data"][-1]                   # the LSTM's ‖∂L/∂c_t‖, added last
    assert "c_t" in norms["name"]
