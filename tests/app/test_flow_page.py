"""AppTest checks of the gradient-flow lab: the Gradient flow page, presets landing there, truncation on the Backward
page, the bug banner and diff heatmaps, the finite-difference spot check, and truncate= / bug= in the URL."""
from __future__ import annotations

import numpy as np
import pytest
from apptools import BACKWARD, FLOW, app, figures, no_exception
from apptools import decode as _arr
from streamlit.testing.v1 import AppTest
from viewertools import click_cell, panel, payload

from bptt.analysis import analyze
from bptt.app import backward, gradient_flow
from bptt.config import RNNConfig, preset
from bptt.fd import fd_estimate
from bptt.flow import flow_report

SMALL = dict(hidden_size="4", input_size="3", seq_len="5", batch_size="2")


# ----------------------------------------------------------------------------------------------------------------------
# helpers

def text(at: AppTest) -> str:
    parts = [*at.markdown, *at.info, *at.error, *at.warning, *at.caption, *at.subheader, *at.title, *at.latex]
    return "\n".join(str(p.value) for p in parts)


def cfg_of(**params: str) -> RNNConfig:
    return RNNConfig.from_dict({k: (v if k in ("nonlinearity", "upstream", "bug") else
                                    float(v) if k == "hh_scale" else int(v)) for k, v in params.items()})


# ----------------------------------------------------------------------------------------------------------------------
# the Gradient flow page

FLOW_CHARTS = set(gradient_flow.CHART_KEYS)


@pytest.mark.parametrize("params", [
    {},
    dict(SMALL, truncate="2", bug="carry-transposed"),
    dict(hidden_size="128", input_size="16", seq_len="60", batch_size="4", nonlinearity="relu", hh_scale="4"),
])
def test_flow_page_runs_and_shows_every_chart(params):
    at = app(FLOW, **params)
    no_exception(at)
    assert not at.warning
    assert set(figures(at)) >= FLOW_CHARTS


def test_flow_page_numbers_are_the_packages():
    at = app(FLOW, **SMALL, hh_scale="1.5")
    cfg = cfg_of(**SMALL, hh_scale="1.5")
    an = analyze(cfg)
    rep = flow_report(an.problem, an.engine)
    figs = figures(at)
    norms = figs[gradient_flow.NORMS_KEY]["data"][-1]                      # the whole-batch curve, last trace
    np.testing.assert_allclose(_arr(norms["x"]), np.arange(1, cfg.seq_len + 1))   # t shown 1-based
    np.testing.assert_allclose(_arr(norms["y"]), rep.grad_norms.per_t, rtol=1e-12)
    np.testing.assert_allclose(_arr(figs["flow_jacobian"]["data"][0]["y"]), rep.jacobian.norms, rtol=1e-12)
    np.testing.assert_allclose(_arr(figs["flow_spectrum"]["data"][0]["y"]), rep.spectrum.singular_values, rtol=1e-12)
    sat = figs["flow_saturation"]["data"][1]
    np.testing.assert_allclose(_arr(sat["z"]), rep.saturation.fprime_mean.T, rtol=1e-12)
    sweep = figs["flow_sweep"]["data"]
    assert len(sweep) == len(rep.sweep.scales)
    for tr, row in zip(sweep, rep.sweep.norms):
        np.testing.assert_allclose(_arr(tr["y"]), row, rtol=1e-12)
    assert any("(current)" in tr["name"] for tr in sweep)


def test_batch_element_changes_the_jacobian_curve():
    at = app(FLOW, **SMALL)
    before = _arr(figures(at)["flow_jacobian"]["data"][0]["y"])
    at.number_input(key=gradient_flow.BATCH_KEY).set_value(1).run()
    no_exception(at)
    after = _arr(figures(at)["flow_jacobian"]["data"][0]["y"])
    assert not np.allclose(before, after)
    an = analyze(cfg_of(**SMALL))
    np.testing.assert_allclose(after, flow_report(an.problem, an.engine, b=1, sweep=False).jacobian.norms, rtol=1e-12)


def test_a_shared_link_to_a_preset_explains_itself_and_a_changed_one_does_not():
    van = {k: str(v) for k, v in preset("Vanishing gradients").differs_from_default().items()}
    at = app(FLOW, **van)
    assert any("Vanishing gradients" in str(i.value) for i in at.info)
    at = app(FLOW, **dict(van, seed="5"))
    assert not at.info


# ----------------------------------------------------------------------------------------------------------------------
# truncate= and bug= in the URL

def test_truncate_and_bug_round_trip_through_the_url():
    at = app(BACKWARD, truncate="3", bug="dWhh-uses-h_t")
    no_exception(at)
    cfg = at.session_state["config"]
    assert (cfg.truncate, cfg.bug) == (3, "dWhh-uses-h_t")
    assert at.query_params["truncate"] == "3" and at.query_params["bug"] == "dWhh-uses-h_t"
    assert at.number_input(key="w_truncate").value == 3 and at.selectbox(key="w_bug").value == "dWhh-uses-h_t"


@pytest.mark.parametrize("params, name", [(dict(truncate="-1"), "truncate"), (dict(bug="off-by-one"), "bug")])
def test_bad_truncate_or_bug_in_the_url_warns(params, name):
    at = app(FLOW, **params)
    no_exception(at)
    assert name in "\n".join(str(w.value) for w in at.warning)
    assert getattr(at.session_state["config"], name) == getattr(RNNConfig(), name)



@pytest.mark.parametrize("name", ["Vanishing gradients", "Exploding gradients"])
def test_flow_presets_explain_themselves_on_the_flow_page(name):
    from bptt.app.state import preset_key
    at = app(FLOW)
    at.button(key=preset_key(name)).click().run()
    no_exception(at)
    assert at.session_state["config"] == preset(name)
    assert set(figures(at)) >= FLOW_CHARTS
    assert any(name in str(i.value) for i in at.info)


# ----------------------------------------------------------------------------------------------------------------------
# truncated BPTT on the Backward page

def test_backward_page_marks_the_cut_and_shows_the_truncation_gap():
    at = app(BACKWARD, **SMALL, truncate="2", step="2")                     # step 2 is t = 4: dh_next_4 is cut
    no_exception(at)
    cfg = cfg_of(**SMALL, truncate="2")
    an = analyze(cfg)
    gap = flow_report(an.problem, an.engine, sweep=False).gap
    figs = figures(at)
    bars = figs[backward.GAP_BARS_KEY]["data"][0]
    assert list(bars["x"]) == list(gap.rel_err)
    np.testing.assert_allclose(_arr(bars["y"]), list(gap.rel_err.values()), rtol=1e-12)
    np.testing.assert_allclose(_arr(figs[backward.GAP_HEAT_KEY]["data"][0]["z"]), gap.diff["dW_hh"], rtol=1e-12)
    assert payload(at)[0]["strip"]["cuts"] == [2, 4]                     # cuts before t = 3 and t = 5 (1-based)
    assert "truncated" in text(at)
    at.segmented_control(key=backward.GAP_WEIGHT_KEY).set_value("db_ih").run()
    np.testing.assert_allclose(_arr(figures(at)[backward.GAP_HEAT_KEY]["data"][0]["z"]).ravel(), gap.diff["db_ih"],
                               rtol=1e-12)


def test_no_gap_section_for_full_bptt():
    at = app(BACKWARD, **SMALL)
    assert backward.GAP_BARS_KEY not in figures(at)


# ----------------------------------------------------------------------------------------------------------------------
# the bug zoo: the banner and the diff heatmaps lighting up

def test_bug_diff_heatmaps_light_up_from_the_first_divergence():
    at = app(BACKWARD, **SMALL, bug="no-activation-derivative")
    no_exception(at)
    banner = "\n".join(str(e.value) for e in at.error)
    assert "no-activation-derivative" in banner and "d_pre" in banner and "t = 5" in banner   # 0-based t = 4
    z = panel(at, "d_pre", "log10_diff_d_pre", 4)                          # log10 |NumPy − PyTorch| at t = T
    assert z.max() > -4                                                     # bright against the floor of -18
    assert np.nanmax(panel(at, "dh_total", "log10_diff_dh_total", 4)) < -12  # before it: still agrees


# ----------------------------------------------------------------------------------------------------------------------
# the finite-difference spot check

def _metric_values(at: AppTest) -> list[float]:
    """The finite-difference spot check's values, in the order shown: estimate, engine, torch.nn.RNN[, full]."""
    import re
    table = next(m.value for m in at.markdown if "| value | rel. diff" in m.value)
    return [float(v) for v in re.findall(r"`\s*([-+0-9.e]+)`", table)]


def fd_box(at: AppTest, which: str):
    """The FD index box "j" or "i" (its widget key changes when a cell click re-creates it)."""
    prefix = backward.WIDGET_FD_J if which == "j" else backward.WIDGET_FD_I
    boxes = [n for n in at.number_input if n.key and n.key.startswith(f"{prefix}_")]
    assert len(boxes) <= 1
    return boxes[0] if boxes else None


def test_fd_spot_check_shows_the_estimate_beside_engine_and_torch():
    at = app(BACKWARD, **SMALL, step="5")                                   # the last step: the full gradient
    no_exception(at)
    fd_box(at, "j").set_value(2).run()
    fd_box(at, "i").set_value(1).run()
    no_exception(at)
    an = analyze(cfg_of(**SMALL))
    est, eng, ref = _metric_values(at)[:3]
    assert est == pytest.approx(fd_estimate(an.problem, "W_hh", (2, 1)), rel=1e-9)
    assert eng == pytest.approx(an.engine.gradients["dW_hh"][2, 1], rel=1e-9)
    assert ref == pytest.approx(an.torch_rnn.gradients["dW_hh"][2, 1], rel=1e-9)
    assert est == pytest.approx(ref, rel=1e-6)
    assert "partial sum" not in text(at)


def test_fd_spot_check_says_when_it_is_not_the_full_gradient():
    at = app(BACKWARD, **SMALL, step="2", truncate="2")
    no_exception(at)
    t = text(at)
    assert "partial sum" in t and "truncate = 2" in t


def test_fd_spot_check_for_a_bias_has_one_index():
    at = app(BACKWARD, **SMALL, step="5")
    at.selectbox(key=backward.WIDGET_FD_W).set_value("db_hh").run()
    no_exception(at)
    assert fd_box(at, "j").max == 3
    assert fd_box(at, "i") is None
    an = analyze(cfg_of(**SMALL))
    assert _metric_values(at)[0] == pytest.approx(an.torch_rnn.gradients["db_hh"][0], rel=1e-6)


def test_a_cell_click_in_the_viewer_runs_the_check_on_that_cell():
    at = app(BACKWARD, **SMALL, step="5")
    click_cell(at, "dW_ih", 3, 2)
    no_exception(at)
    assert at.selectbox(key=backward.WIDGET_FD_W).value == "dW_ih"
    assert (fd_box(at, "j").value, fd_box(at, "i").value) == (3, 2)
    an = analyze(cfg_of(**SMALL))
    assert _metric_values(at)[1] == pytest.approx(an.engine.gradients["dW_ih"][3, 2], rel=1e-9)
    assert "dW_ih[3, 2]" in text(at)
    click_cell(at, "db_ih", 1)                                               # a bias: one index
    assert fd_box(at, "j").value == 1 and fd_box(at, "i") is None
    assert _metric_values(at)[1] == pytest.approx(an.engine.gradients["db_ih"][1], rel=1e-9)
    click_cell(at, "dW_hh", 99, -5)                                          # out of range: clamped, and shown
    assert (fd_box(at, "j").value, fd_box(at, "i").value) == (3, 0)
    assert "dW_hh[3, 0]" in text(at)


def test_after_a_refused_entry_a_cell_click_shows_the_index_it_checks():
    """Issue 9: after j = 99 was refused, a click on a cell left "99" in the box while the check used j = 4."""
    at = app(BACKWARD, **SMALL, step="5")
    fd_box(at, "j").set_value(99).run()                                     # out of range (hidden units 0..3)
    no_exception(at)
    j, i = fd_box(at, "j").value, fd_box(at, "i").value
    assert j <= 3 and f"dW_hh[{j}, {i}]" in text(at)                       # the box shows the index checked
    before = fd_box(at, "j").key
    click_cell(at, "dW_hh", 2, 1)
    no_exception(at)
    box = fd_box(at, "j")
    assert box.key != before                                                # a fresh box: no stale entry survives
    assert box.value == 2 and fd_box(at, "i").value == 1                   # it shows the index the check uses
    assert "dW_hh[2, 1]" in text(at)
