"""AppTest checks of the Streamlit app: every page runs, the step viewer gets its payload and reports the step, the URL
is honoured, presets and downloads work."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from apptools import BACKWARD, FORWARD, app, no_exception
from streamlit.testing.v1 import AppTest
from viewertools import panel, payload, report_step, viewer

from bptt.app.navigation import SCRIPTS, URL_PATHS
from bptt.app.state import PRESET_PAGES, RESET_KEY, preset_key
from bptt.config import PRESETS, RNNConfig, preset

VERIFICATION = SCRIPTS["Verification"]

PAGES = [s for title, s in SCRIPTS.items() if title != "Gradient flow"]   # the Gradient flow page: test_flow_page.py
LARGE = dict(hidden_size="128", input_size="64", seq_len="50", batch_size="16")


def warnings_text(at: AppTest) -> str:
    return "\n".join(str(w.value) for w in at.warning)


# ----------------------------------------------------------------------------------------------------------------------
# every page runs

@pytest.mark.parametrize("page", [None, *PAGES])
def test_page_runs_at_defaults(page):
    at = app(page)
    no_exception(at)
    assert not at.warning


def test_all_pages_run_at_a_large_config():
    at = app(None, **LARGE)
    no_exception(at)
    assert not at.warning
    for page in PAGES:
        at.switch_page(page)
        at.run()
        no_exception(at)
    at.switch_page(BACKWARD)
    at.run()
    assert panel(at, "dh_total", "dh_total", 49).shape == (16, 128)
    assert panel(at, "dx", "dx", 49).shape == (16, 64)
    assert panel(at, "dW_hh", "dW_hh_acc", 49).shape == (128, 128)


# ----------------------------------------------------------------------------------------------------------------------
# steps: the viewer steps in the browser; Python hears the step the browser settles on

@pytest.mark.parametrize("page, name", [(BACKWARD, "backward"), (FORWARD, "forward")])
def test_each_page_mounts_the_viewer_with_the_payload_of_the_urls_config(page, name):
    from bptt import stepview
    from bptt.analysis import analyze
    from bptt.config import RNNConfig
    at = app(page, seq_len="4", hidden_size="6", batch_size="2", seed="9", nonlinearity="relu", step="3")
    no_exception(at)
    cfg = RNNConfig(seq_len=4, hidden_size=6, batch_size=2, seed=9, nonlinearity="relu")
    want = stepview.build_payload(analyze(cfg), name, 0, 4, start=3)
    assert viewer(at).proto.bytes == want                       # the whole payload, byte for byte
    header, _ = payload(at)
    assert (header["page"], header["T"], header["start"]) == (name, 4, 3)
    assert header["config"] == cfg.to_dict()


def test_a_reported_step_reaches_the_session_and_the_url_without_resending_the_data():
    at = app(BACKWARD, seq_len="5", hidden_size="6", batch_size="2")
    assert at.session_state["step"] == 1
    before = viewer(at).proto.bytes
    report_step(at, 4)
    no_exception(at)
    assert at.session_state["step"] == 4
    assert at.query_params["step"] == "4"
    assert viewer(at).proto.bytes == before                     # the browser is there already: nothing to send
    report_step(at, 2, seq=2)
    assert at.session_state["step"] == 2 and at.query_params["step"] == "2"
    assert viewer(at).proto.bytes == before


def test_a_reported_step_out_of_range_is_clamped():
    at = app(BACKWARD, seq_len="5")
    report_step(at, 99)
    no_exception(at)
    assert at.session_state["step"] == 5 and at.query_params["step"] == "5"
    report_step(at, "not a number", seq=2)                      # ignored: the step stays where it was
    assert at.session_state["step"] == 5


def test_backward_step_k_shows_t_equal_T_minus_k_plus_1():
    from bptt.analysis import analyze
    from bptt.config import RNNConfig
    at = app(BACKWARD, seq_len="4", step="2")
    an = analyze(RNNConfig(seq_len=4))
    header, _ = payload(at)
    assert header["start"] == 2
    step = header["steps"][4 - 2 - header["lo"]]
    assert step["k"] == 2 and step["title"].startswith("t = 3 · backward step 2 of 4")
    np.testing.assert_array_equal(panel(at, "dh_total", "dh_total", 4 - 2), an.engine.dh_total[2].astype(np.float32))


def test_forward_step_shows_t_equal_k():
    from bptt.analysis import analyze
    from bptt.config import RNNConfig
    at = app(FORWARD, seq_len="4", step="3")
    an = analyze(RNNConfig(seq_len=4))
    header, _ = payload(at)
    assert header["start"] == 3 and header["steps"][2]["title"].startswith("t = 3 · forward step 3 of 4")
    np.testing.assert_array_equal(panel(at, "h_cmp", "h", 2), an.engine.h[2].astype(np.float32))
    np.testing.assert_array_equal(panel(at, "h_cmp", "torch_h", 2), an.torch_rnn.h[2].astype(np.float32))


def test_changing_the_config_keeps_the_step_where_it_exists_and_clamps_it_otherwise():
    at = app(BACKWARD, seq_len="6", step="2")
    report_step(at, 5)
    at.number_input(key="w_hidden_size").set_value(4).run()      # the step still exists: kept
    no_exception(at)
    assert at.session_state["step"] == 5 and payload(at)[0]["start"] == 5
    at.number_input(key="w_seq_len").set_value(3).run()          # it does not: the last step
    no_exception(at)
    assert at.session_state["step"] == 3
    assert at.query_params["seq_len"] == "3" and at.query_params["step"] == "3"
    header, _ = payload(at)
    assert (header["T"], header["start"]) == (3, 3)


def test_a_chunk_request_sends_that_chunk_and_a_later_report_resends_nothing(monkeypatch):
    from bptt import stepview
    monkeypatch.setattr(stepview, "BUDGET", 1)                   # every step over budget: chunks of one step
    at = app(BACKWARD, seq_len="6")
    header, _ = payload(at)
    assert (header["lo"], header["hi"]) == (5, 6)                 # step 1 is t = T
    report_step(at, 1, want=4)                                    # the browser, still at step 1, prefetches t = 4
    no_exception(at)
    header, _ = payload(at)
    assert (header["lo"], header["hi"], header["start"]) == (4, 5, 1) and at.session_state["step"] == 1
    sent = viewer(at).proto.bytes
    report_step(at, 3, seq=2)                                     # settled on a step of a chunk it got earlier
    no_exception(at)
    assert at.session_state["step"] == 3 and at.query_params["step"] == "3"
    assert viewer(at).proto.bytes == sent                         # it has that step: nothing is sent again
    report_step(at, 3, seq=3, want=2)                             # the next chunk, asked for with the settle report
    header, _ = payload(at)
    assert (header["lo"], header["hi"], header["start"]) == (2, 3, 1) and at.session_state["step"] == 3


def test_a_page_switch_reopens_the_viewer_at_the_sessions_step():
    at = app(BACKWARD, seq_len="6")
    report_step(at, 4)
    at.switch_page(FORWARD)
    at.run()
    assert payload(at)[0]["start"] == 4                        # the URL's step keeps its meaning on each page
    at.switch_page(BACKWARD)
    at.run()
    no_exception(at)
    assert payload(at)[0]["start"] == 4


# ----------------------------------------------------------------------------------------------------------------------
# the URL

def test_query_string_sizes_appear_in_the_figures():
    at = app(BACKWARD, hidden_size="7", batch_size="2", input_size="3")
    no_exception(at)
    assert not at.warning
    assert panel(at, "dh_total", "dh_total", 0).shape == (2, 7)
    assert panel(at, "dx", "dx", 0).shape == (2, 3)
    assert panel(at, "dx", "log10_diff_dx", 0).shape == (2, 3)


@pytest.mark.parametrize("params, name", [
    (dict(hidden_size="1e9"), "hidden_size"),
    (dict(seq_len="abc"), "seq_len"),
    (dict(step="-4"), "step"),
    (dict(nonlinearity="sigmoid"), "nonlinearity"),
    (dict(hh_scale="nan"), "hh_scale"),
    (dict(seq_len=["3", "4"]), "seq_len"),
    (dict(hidden_size="256", input_size="256", seq_len="200"), "seq_len"),   # over the engine's history budget
])
def test_bad_url_values_warn_and_fall_back(params, name):
    at = app(BACKWARD, **params)
    no_exception(at)
    text = warnings_text(at)
    assert name in text, text
    cfg = at.session_state["config"]
    from bptt.config import RNNConfig
    if name != "step":
        assert getattr(cfg, name) == getattr(RNNConfig(), name)
    assert 1 <= at.session_state["step"] <= cfg.seq_len
    assert payload(at)[0]["T"] == cfg.seq_len


@pytest.mark.parametrize("name", ["seq_len", "seed", "step"])
def test_a_huge_url_value_is_cut_in_the_warning(name):
    at = app(None, **{name: "9" * 5000})
    no_exception(at)
    text = warnings_text(at)
    assert name in text and "9" * 40 + "…" in text and "9" * 41 not in text, text[:300]
    assert len(text) < 400


def test_good_url_values_are_kept_and_written_back():
    at = app(None, seed="7", nonlinearity="relu", upstream="last", hh_scale="0.5", truncate="2", seq_len="5",
             step="4")
    no_exception(at)
    cfg = at.session_state["config"]
    assert (cfg.seed, cfg.nonlinearity, cfg.upstream, cfg.hh_scale, cfg.truncate) == (7, "relu", "last", 0.5, 2)
    assert at.session_state["step"] == 4
    assert at.query_params["hh_scale"] == "0.5" and at.query_params["step"] == "4"


# ----------------------------------------------------------------------------------------------------------------------
# sidebar and presets

def test_sidebar_change_survives_a_page_switch():
    at = app(None)
    at.number_input(key="w_hidden_size").set_value(6).run()
    at.switch_page(BACKWARD)
    at.run()
    no_exception(at)
    assert at.session_state["config"].hidden_size == 6
    assert at.number_input(key="w_hidden_size").value == 6
    assert panel(at, "dh_total", "dh_total", 0).shape == (3, 6)


def test_a_refused_sidebar_change_shows_an_error_and_keeps_the_config():
    at = app(None, hidden_size="256", input_size="256", seq_len="60")
    before = at.session_state["config"]
    at.number_input(key="w_seq_len").set_value(200).run()
    no_exception(at)
    assert at.session_state["config"] == before
    assert any("seq_len" in str(e.value) for e in at.error)


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_changes_the_config_on_this_page_and_links_to_where_it_shows_best(name):
    at = app(VERIFICATION, hidden_size="9")
    at.button(key=preset_key(name)).click().run()
    no_exception(at)
    assert at.session_state["config"] == preset(name)
    assert any(t.value == "Verification" for t in at.title), "a preset must not switch the page"
    links = [el.proto for el in at.get("page_link")]
    assert URL_PATHS[PRESET_PAGES[name]] in [link.page for link in links]


def test_reset_resets_the_config_and_the_step():
    at = app(VERIFICATION, seq_len="6", hidden_size="7", step="4")
    assert at.session_state["step"] == 4
    at.button(key=RESET_KEY).click().run()
    no_exception(at)
    assert at.session_state["config"] == RNNConfig()
    assert at.session_state["step"] == 1
    assert at.query_params["step"] == ["1"] or at.query_params["step"] == "1"


def test_verification_page_lists_failing_steps_1_based_or_the_whole_sequence():
    at = app(VERIFICATION, bug="forget-carry", seq_len="4")
    no_exception(at)
    s = at.dataframe[0].value
    assert "failing_steps" not in s.columns
    bad = RNNConfig(bug="forget-carry", seq_len=4)
    from bptt.analysis import analyze
    tab = analyze(bad).table
    for row in s.itertuples():
        if row.verdict == "pass":
            assert row.failing == ""
            continue
        if row.reference == "torch.nn.RNN":
            assert (row.failing, row.rows) == ("whole sequence", "whole")
            continue
        rows = tab[(tab["quantity"] == row.quantity) & (tab["implementation"] == row.implementation) &
                   (tab["reference"] == row.reference)]
        failing = sorted(int(t) + 1 for t in rows.loc[~rows["passed"], "t"])
        assert row.failing == f"{len(failing)} of 4: t = {', '.join(map(str, failing))}", row
        assert 0 not in failing and row.rows == "4"


def test_bug_banner_names_the_first_divergence():
    at = app(BACKWARD, bug="forget-carry", seq_len="4")
    no_exception(at)
    text = "\n".join(str(e.value) for e in at.error)
    assert "forget-carry" in text and "dh_total" in text and "t = 3" in text   # 0-based t = 2, shown 1-based


# ----------------------------------------------------------------------------------------------------------------------
# downloads

def _check_files(files: dict[str, bytes | str]) -> None:
    npz = np.load(io.BytesIO(files["npz"]), allow_pickle=False)
    assert len(npz.files) > 0
    df = pd.read_csv(io.BytesIO(files["csv"]))
    assert len(df) > 0
    compile(files["py"], "repro.py", "exec")


def test_download_buttons_produce_loadable_files():
    from bptt.app.panels import download_data
    at = app(BACKWARD, seq_len="4", hidden_size="3")
    buttons = at.get("download_button")
    assert len(buttons) == 3
    assert all(b.proto.deferred_file_id for b in buttons)      # made on click, not on every rerun
    cfg = at.session_state["config"]
    files = {fname.rsplit(".", 1)[-1]: make() for fname, _, make in download_data(cfg).values()}
    _check_files(files)
    npz = np.load(io.BytesIO(files["npz"]), allow_pickle=False)
    shapes = [npz[k].shape for k in npz.files]
    assert any(s[:1] == (4,) and s[-1] == 3 for s in shapes)     # (T, B, H) arrays of this config


def test_download_data_at_a_nondefault_config():
    from bptt.app.panels import download_data
    from bptt.config import RNNConfig
    made = {fname.rsplit(".", 1)[-1]: make() for fname, _, make in download_data(RNNConfig(seq_len=2, seed=5)).values()}
    _check_files(made)
