"""The step viewer for the LSTM and the GRU in a real browser: stepping, play, a hovered gate value against the NPZ
export, a deep link at step 7, the cell path on the strip, a click on a gate block's running sum checks the whole
weight's row; never a console error (the open_viewer fixture checks every page it opened)."""
from __future__ import annotations

import numpy as np
import pytest

from .helpers import button, main_text, runs, wait_for_app, wait_until

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cell_steps_plays_and_hovers_the_npz_values(open_viewer, tmp_path, cell):
    T, B, I, H = 5, 2, 3, 4
    v = open_viewer(query=f"cell={cell}&seq_len={T}&batch_size={B}&input_size={I}&hidden_size={H}&step=2")
    assert (v.step, v.steps) == (2, T)
    # every gate has its own heatmap, marked with its export name and gate, NumPy and PyTorch
    for g in GATES[cell]:
        assert v.root.locator(f"[data-quantity=d_gates][data-gate={g}]").count() == 1
        assert v.root.locator(f"[data-quantity=ref_d_gates][data-gate={g}]").count() == 1
        assert v.root.locator(f"[data-quantity=dW_ih_acc][data-gate={g}]").count() == 1
    if cell == "lstm":
        assert v.root.locator("[data-quantity=dc_total]").count() == 1
        assert v.root.locator("[data-testid=bptt-strip] g.bwc").count() == T     # the cell path, drawn apart
    # stepping without the server, and the equations follow
    k, _, ran = v.click("next")
    assert k == 3 and ran == 0 and v.drawn()[1].startswith(f"t = {T - 2} · backward step 3 of {T}")
    v.click("prev")
    # a hovered gate value is the NPZ export's number
    with v.page.expect_download(timeout=60_000) as info:
        button(v.page, "bw_dl_npz").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    t = T - 2
    g = GATES[cell][1]                                           # the forget gate / the update gate
    k_gate = GATES[cell].index(g)
    with np.load(path, allow_pickle=False) as z:
        for quantity, b, j in (("d_gates", 1, 2), ("ref_d_gates", 0, 3)):
            text = v.hover(f"[data-quantity={quantity}][data-gate={g}]", b, j)
            shown = float(text.rsplit("=", 1)[1].replace("−", "-"))
            want = float(z[quantity][t][b, k_gate * H + j])
            assert shown == pytest.approx(want, rel=1e-6), (text, want)
    # play runs to the end by itself
    v.root.locator("[data-testid=bptt-step-speed]").select_option("100")
    v.control("play").click()
    v.wait_step(T, timeout=20)


def test_an_lstm_link_with_step_7_opens_there_on_both_pages(open_viewer):
    v = open_viewer(query="cell=lstm&seq_len=10&hidden_size=3&step=7")
    assert v.step == 7 and v.url_step() == 7
    assert v.drawn()[1].startswith("t = 4 · backward step 7 of 10")
    f = open_viewer("Forward_pass", "cell=lstm&seq_len=10&hidden_size=3&step=7")
    assert f.step == 7 and f.drawn()[1].startswith("t = 7 · forward step 7 of 10")
    for g in GATES["lstm"]:                                      # σ gates on their own 0..1 scale, g on the signed one
        kind = f.root.locator(f"[data-quantity={g}][data-gate={g}]").get_attribute("data-kind")
        assert kind == ("signed" if g == "g" else "gate")


def test_clicking_a_gate_block_checks_the_whole_weights_row(open_viewer):
    H, I = 3, 2
    v = open_viewer(query=f"cell=gru&seq_len=3&hidden_size={H}&input_size={I}")
    v.root.locator("[data-testid=bptt-weight-dW_ih]").click()
    canvas = v.root.locator("[data-quantity=dW_ih_acc][data-gate=n] canvas.bptt-heat")    # rows 2H … 3H−1
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    wait_for_app(v.page)
    before = runs(v.page)
    v.page.mouse.click(box["x"] + 1.5 * box["width"] / I, box["y"] + 1.5 * box["height"] / H)    # block row 1, i = 1
    want = f"dW_ih[{2 * H + 1}, 1]"
    wait_until(lambda: runs(v.page) > before and want in main_text(v.page), 90, what=f"the FD check of {want}")


def test_switching_the_cell_in_the_sidebar_keeps_the_sizes_and_the_step(open_viewer):
    T, H = 6, 3
    v = open_viewer(query=f"seq_len={T}&hidden_size={H}&batch_size=2&step=3")
    assert v.step == 3 and v.root.locator("[data-quantity=d_pre]").count() == 1
    wait_for_app(v.page)
    v.page.locator(".st-key-w_cell").get_by_text("LSTM", exact=True).click()
    wait_until(lambda: v.root.locator("[data-quantity=d_gates][data-gate=f]").count() == 1 and v.step == 3, 90,
               what="the LSTM's viewer at step 3")
    wait_for_app(v.page)
    assert v.steps == T and v.drawn()[1].startswith(f"t = {T - 2} · backward step 3 of {T}")
    assert "cell=lstm" in v.page.url and "step=3" in v.page.url and f"hidden_size={H}" in v.page.url
    assert v.root.locator("[data-quantity=dh_total]").get_attribute("data-cols") == str(H)
