"""The Check your code page with AppTest: the NPZ upload path (good file, wrong keys, wrong shapes, NaN, pickles) and
the code path, refused unless the server is local or its host opted in."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from streamlit import config as st_config

from bptt.app import check as check_page
from bptt.app.check import OPT_IN, is_loopback
from bptt.app.navigation import SCRIPTS
from bptt.check.checker import draw_problem, reference
from bptt.config import RNNConfig
from tests.app.apptools import app, figures, no_exception

CHECK = SCRIPTS["Check your code"]
FILES = Path(__file__).resolve().parents[1] / "unit" / "check_files"


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good(cfg: RNNConfig | None = None) -> dict[str, np.ndarray]:
    ref = reference(draw_problem(cfg or RNNConfig()))
    return {"dx": ref.torch_rnn.dx, "dh0": ref.torch_rnn.dh0, **ref.torch_rnn.gradients}


def _upload(data: bytes, name: str = "grads.npz", **params):
    at = app(CHECK, **params)
    at.file_uploader(key=check_page.NPZ_KEY).set_value((name, data, "application/octet-stream"))
    at.run()
    no_exception(at)
    return at


def _errors(at) -> str:
    return " ".join(e.value for e in at.error)


def test_page_is_in_the_navigation_and_offers_the_problem():
    at = app(CHECK)
    no_exception(at)
    assert at.title[0].value == "Check your code"
    assert any(d.proto.label.startswith("Download the problem") for d in at.get("download_button"))


def test_good_npz_passes():
    at = _upload(_npz(**_good()))
    assert not at.error
    assert any("everything agrees" in s.value for s in at.success)


def test_good_npz_with_per_step_keys_at_another_config_passes():
    cfg = RNNConfig(input_size=3, hidden_size=7, seq_len=5, batch_size=2)
    ref = reference(draw_problem(cfg))
    at = _upload(_npz(**_good(cfg), dh_prev=ref.unrolled.dh_prev, dW_hh_acc=ref.unrolled.dW_hh_acc),
                 input_size="3", hidden_size="7", seq_len="5", batch_size="2")
    assert not at.error and any("everything agrees" in s.value for s in at.success)


def test_a_mistake_is_located_with_heatmaps_at_that_step():
    cfg = RNNConfig()
    ref = reference(draw_problem(cfg))
    bad_acc = ref.unrolled.dW_hh_acc * 1.01            # wrong from the first step BPTT computes, t = T-1
    grads = dict(_good(cfg), dW_hh_acc=bad_acc, dW_hh=bad_acc[0])
    at = _upload(_npz(**grads))
    err = _errors(at)
    assert "First divergence" in err and "dW_hh_acc" in err and f"0-based t = {cfg.seq_len - 1}" in err
    figs = figures(at)
    fig = next(v for k, v in figs.items() if k.startswith(check_page.FIG_KEY))
    assert len(fig["data"]) >= 3
    assert any("Diagnosis" in m.value for m in at.markdown)


def test_wrong_keys_are_named():
    g = _good()
    g.pop("dh0")
    at = _upload(_npz(**g, dW_xh=np.zeros(3)))
    err = _errors(at)
    assert "missing keys 'dh0'" in err and "unknown keys 'dW_xh'" in err
    assert not at.success


def test_wrong_shapes_are_named():
    g = _good()
    g["dW_ih"] = g["dW_ih"].T.copy()
    at = _upload(_npz(**g))
    cfg = RNNConfig()
    assert f"dW_ih has shape ({cfg.input_size}, {cfg.hidden_size}); expected ({cfg.hidden_size}, " \
           f"{cfg.input_size}) = (H, I)" in _errors(at)


def test_nan_is_reported():
    g = _good()
    g["dx"] = g["dx"].copy()
    g["dx"][0, 0, 0] = np.nan
    at = _upload(_npz(**g))
    assert "dx" in _errors(at)
    text = " ".join(m.value for m in at.markdown)
    assert "NaN" in text


@pytest.mark.parametrize("data, words", [
    (pickle.dumps({"dx": np.zeros(3)}), "pickle"),
    (_npz(dx=np.array([{"a": 1}], dtype=object)), "Python objects"),
    (b"not a zip at all", "not an NPZ"),
])
def test_pickles_and_other_files_are_refused(data, words):
    at = _upload(data)
    assert words in _errors(at) and not at.success


def test_upload_from_another_config_is_refused():
    other = RNNConfig(seq_len=4)
    g = _good(other)
    at = _upload(_npz(**g, config_json=np.array(other.to_json())))
    assert "seq_len=4" in _errors(at)


# ----------------------------------------------------------------------------------------------------------------------
# the code path

@pytest.fixture
def address():
    """Set server.address for one test, and put it back."""
    old = st_config.get_option("server.address")
    yield lambda v: st_config.set_option("server.address", v)
    st_config.set_option("server.address", old)


def test_code_upload_is_refused_on_a_reachable_server(monkeypatch, address):
    monkeypatch.delenv(OPT_IN, raising=False)
    for where in (None, "0.0.0.0"):
        address(where)
        at = app(CHECK)
        no_exception(at)
        assert not [u for u in at.file_uploader if u.key == check_page.PY_KEY]
        assert any("other machines may reach it" in i.value for i in at.info)
        assert any("python -m bptt check" in c.value for c in at.code)


def test_code_upload_runs_on_a_loopback_server(monkeypatch, address):
    monkeypatch.delenv(OPT_IN, raising=False)
    address("127.0.0.1")
    at = app(CHECK)
    source = (FILES / "step_carry_transposed.py").read_bytes()
    at.file_uploader(key=check_page.PY_KEY).set_value(("step_carry.py", source, "text/x-python"))
    at.run()
    at.button(key=check_page.RUN_KEY).click().run()
    no_exception(at)
    err = _errors(at)
    assert "dh_prev" in err and f"0-based t = {RNNConfig().seq_len - 1}" in err
    assert any("carry-transposed" in m.value for m in at.markdown)


def test_code_upload_runs_when_opted_in(monkeypatch, address):
    monkeypatch.setenv(OPT_IN, "1")
    address("0.0.0.0")
    at = app(CHECK)
    at.text_area(key=check_page.PASTE_KEY).input((FILES / "worked_exercise.py").read_text())
    at.button(key=check_page.RUN_KEY).click().run()          # the paste box is in the form: one submit sends both
    no_exception(at)
    assert any("everything agrees" in s.value for s in at.success)
    assert any(m.value == "Checked: **the code pasted in the box**." for m in at.markdown)


def test_an_uploaded_file_wins_over_pasted_code_and_the_page_says_so(monkeypatch, address):
    monkeypatch.delenv(OPT_IN, raising=False)
    address("127.0.0.1")
    at = app(CHECK)
    at.file_uploader(key=check_page.PY_KEY).set_value(("mine.py", (FILES / "step_carry_transposed.py").read_bytes(),
                                                       "text/x-python"))
    at.run()
    assert any("mine.py** will be checked" in i.value and "ignored" in i.value for i in at.info)
    at.text_area(key=check_page.PASTE_KEY).input((FILES / "worked_exercise.py").read_text())
    at.button(key=check_page.RUN_KEY).click().run()
    no_exception(at)
    assert any(m.value == "Checked: **the uploaded file mine.py**." for m in at.markdown)
    assert "carry-transposed" in _errors(at) or any("carry-transposed" in m.value for m in at.markdown)


@pytest.mark.parametrize("source, words", [
    (b"x = 1\n" * 50_000, "the limit is 256 KB"),
    (b"   \n", "Nothing to check"),
])
def test_too_large_or_empty_code_is_refused_with_a_message(monkeypatch, address, source, words):
    monkeypatch.setenv(OPT_IN, "1")
    address("0.0.0.0")
    at = app(CHECK)
    at.file_uploader(key=check_page.PY_KEY).set_value(("big.py", source, "text/x-python"))
    at.run()
    at.button(key=check_page.RUN_KEY).click().run()
    no_exception(at)
    assert words in _errors(at)
    assert not at.success


def test_the_paste_box_is_monospace_and_the_uploader_states_only_the_real_limit(monkeypatch, address):
    monkeypatch.setenv(OPT_IN, "1")
    at = app(CHECK)
    css = " ".join(h.proto.body for h in at.get("html"))
    assert f".st-key-{check_page.PASTE_KEY} textarea" in css and "monospace" in css
    assert "stFileUploaderDropzoneInstructions" in css      # Streamlit's "1MB per file" is hidden: the label says
    assert at.file_uploader(key=check_page.PY_KEY).label == "Upload your code (.py, at most 256 KB)"


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback(None) and not is_loopback("") and not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.5")


# ----------------------------------------------------------------------------------------------------------------------
# the LSTM and the GRU

def _good_gated(cfg: RNNConfig) -> dict[str, np.ndarray]:
    ref = reference(draw_problem(cfg))
    out = {"dx": ref.torch_rnn.dx, "dh0": ref.torch_rnn.dh0, **ref.torch_rnn.gradients,
           "d_gates": ref.unrolled.d_gates}
    if cfg.cell == "lstm":
        out.update(dc0=ref.torch_rnn.dc0, dc_prev=ref.unrolled.dc_prev)
    return out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_npz_passes_and_a_wrong_gate_block_is_named(cell):
    cfg = RNNConfig(cell=cell)
    good = _good_gated(cfg)
    at = _upload(_npz(**good), cell=cell)
    assert not at.error and any("everything agrees" in s.value for s in at.success)
    assert any("c0" in m.value for m in at.markdown) == (cell == "lstm")     # the problem's keys, per cell
    H, T = cfg.hidden_size, cfg.seq_len
    bad = dict(good, d_gates=good["d_gates"].copy())
    bad["d_gates"][T - 1, :, H:2 * H] *= 1.01                               # the second gate block: f (lstm), z (gru)
    at = _upload(_npz(**bad), cell=cell)
    gate = "f" if cell == "lstm" else "z"
    assert f"d_gates [{gate}]" in _errors(at) and f"0-based t = {T - 1}" in _errors(at)


def test_gated_npz_with_another_cells_keys_is_refused():
    at = _upload(_npz(**_good_gated(RNNConfig(cell="lstm"))), cell="gru")
    assert "unknown keys 'dc0'" in _errors(at) and "(3H, I)" in _errors(at)


def test_lstm_code_is_checked_per_gate(monkeypatch, address):
    monkeypatch.setenv(OPT_IN, "1")
    at = app(CHECK, cell="lstm")
    at.text_area(key=check_page.PASTE_KEY).input((FILES / "gated" / "lstm_step_c.py").read_text())
    at.button(key=check_page.RUN_KEY).click().run()
    no_exception(at)
    err = _errors(at)
    assert "d_gates [o]" in err and "output-gate-uses-c" in err
    # the gate's gradient shows in this step's contribution: its o block is what the heatmaps draw
    assert any("dW_ih_step [o] at t = 3" in c.value for c in at.caption) and len(figures(at)) == 1


def test_code_whose_names_say_another_cell_asks_for_the_sidebars_cell(monkeypatch, address):
    monkeypatch.setenv(OPT_IN, "1")
    at = app(CHECK)                                                      # the sidebar's cell: rnn
    at.text_area(key=check_page.PASTE_KEY).input((FILES / "gated" / "gru_torch_step.py").read_text())
    at.button(key=check_page.RUN_KEY).click().run()
    no_exception(at)
    assert "set the sidebar's cell to gru" in _errors(at)
