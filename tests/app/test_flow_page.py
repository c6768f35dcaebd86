"""AppTest checks of the gradient-flow lab: the Gradient flow page, presets landing there, truncation on the Backward
page, the bug banner and diff heatmaps, the finite-difference spot check, and truncate= / bug= in the URL."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from bptt.analysis import analyze
from bptt.config import RNNConfig, preset
from bptt.fd import fd_estimate
from bptt.flow import flow_report

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "streamlit_app.py")
FLOW = "pages/3_Gradient_flow.py"
BACKWARD = "pages/2_Backward_pass.py"
TIMEOUT = 90
SMALL = dict(hidden_size="4", input_size="3", seq_len="5", batch_size="2")


# ----------------------------------------------------------------------------------------------------------------------
# helpers

def app(page: str | None = None, **params: str) -> AppTest:
    """An AppTest of the app with these query params, run once (on `page` if given)."""
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _arr(v) -> np.ndarray:
    """A Plotly array (typed {dtype, bdata, shape} or a list with None for gaps) as float64."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(s) for s in str(v.get("shape", a.size)).split(",")]).astype(np.float64)
    return np.array([np.nan if x is None else x for x in np.ravel(v)] if np.ndim(v) == 1 else v, dtype=np.float64)


def figures(at: AppTest) -> dict[str, dict]:
    """Every plotly chart's figure JSON, by the chart's user key."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def text(at: AppTest) -> str:
    parts = [*at.markdown, *at.info, *at.error, *at.warning, *at.caption, *at.subheader, *at.title, *at.latex]
    return "\n".join(str(p.value) for p in parts)


def cfg_of(**params: str) -> RNNConfig:
    return RNNConfig.from_dict({k: (v if k in ("nonlinearity", "upstream", "bug") else
                                    float(v) if k == "hh_scale" else int(v)) for k, v in params.items()})


# ----------------------------------------------------------------------------------------------------------------------
# the Gradient flow page

FLOW_CHARTS = {"flow_norms", "flow_jacobian", "flow_spectrum", "flow_saturation", "flow_sweep"}


@pytest.mark.parametrize("params", [
    {},
    dict(SMALL, truncate="2", bug="carry-transposed"),
    dict(hidden_size="128", input_size="16", seq_len="60", batch_size="4", nonlinearity="relu", hh_scale="4"),
])
def test_flow_page_runs_and_shows_every_chart(params):
    at = app(FLOW, **params)
    no_exception(at)
    assert not at.warning
    assert FLOW_CHARTS <= set(figures(at))


def test_flow_page_numbers_are_the_packages():
    at = app(FLOW, **SMALL, hh_scale="1.5")
    cfg = cfg_of(**SMALL, hh_scale="1.5")
    an = analyze(cfg)
    rep = flow_report(an.problem, an.engine)
    figs = figures(at)
    norms = figs["flow_norms"]["data"][-1]                                  # the whole-batch curve, last trace
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
    at.number_input(key="flow_b").set_value(1).run()
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
