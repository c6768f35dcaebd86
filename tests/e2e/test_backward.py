"""The Backward page in a real browser: stepping, play / pause, the client-side animation, sessions, the NPZ download."""
from __future__ import annotations

import time

import numpy as np

from .helpers import (button, exceptions, heatmaps_by_key, is_idle, plotly_charts, runs, step_of, wait_for_app,
                      wait_for_charts, wait_for_run_after, wait_until)

DRAWN = ".st-key-bw_dh_total .js-plotly-plot"


def open_backward(new_page, query: str = ""):
    """The Backward page at this query string, fully drawn."""
    page = new_page("Backward_pass" + (f"?{query}" if query else ""))
    wait_for_app(page, expect=DRAWN)
    wait_for_charts(page, 8)                                   # strip, dh_out, six triplets
    return page


def all_heatmaps(page) -> dict[tuple[str, int], np.ndarray]:
    """(chart key, panel) -> z of every heatmap in every keyed chart (a triplet: 0 = NumPy, 1 = reference, 2 = diff)."""
    return {(c.key, i): z for c in plotly_charts(page) if c.key for i, z in enumerate(c.z)}


def click(page, key: str) -> None:
    """Click the button with this widget key and wait for the run it causes to finish."""
    before = runs(page)
    button(page, key).click()
    wait_for_run_after(page, before)


# ----------------------------------------------------------------------------------------------------------------------
# stepping

def test_step_next_changes_the_heatmaps(new_page):
    page = open_backward(new_page, "seq_len=4")
    assert step_of(page) == (1, 4)
    first = all_heatmaps(page)
    click(page, "step_next")
    wait_until(lambda: step_of(page) == (2, 4), 10, what="step 2 of 4")
    second = all_heatmaps(page)
    assert exceptions(page) == []
    for key in ("bw_dh_next", "bw_dh_total", "bw_d_pre", "bw_dx", "bw_w"):            # the NumPy panel of each
        assert second[key, 0].shape == first[key, 0].shape, key
        assert not np.allclose(second[key, 0], first[key, 0]), f"{key} did not change with the step"
    # every step's NumPy heatmap equals its PyTorch neighbour
    for key in ("bw_dh_total", "bw_d_pre", "bw_dx", "bw_dh_prev", "bw_w"):
        np.testing.assert_allclose(second[key, 0], second[key, 1], rtol=1e-9, atol=1e-12, err_msg=key)
    # and stepping back shows the first step's numbers again (every panel of every chart)
    click(page, "step_prev")
    wait_until(lambda: step_of(page) == (1, 4), 10, what="step 1 of 4")
    again = all_heatmaps(page)
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_allclose(again[key], first[key], rtol=0, atol=0, err_msg=str(key))


def test_play_advances_and_pause_stops(new_page):
    page = open_backward(new_page, "seq_len=30&hidden_size=3&input_size=2&batch_size=2")
    k0, T = step_of(page)
    assert (k0, T) == (1, 30)
    play = button(page, "step_play")
    play.click()
    wait_until(lambda: "pause" in play.inner_text(), 30, what="the play button to turn into pause")
    k1 = wait_until(lambda: step_of(page)[0] >= k0 + 3 and step_of(page)[0], 30, what="play to advance 3 steps")
    assert k1 < T
    play.click()                                               # the same button now pauses
    try:
        wait_until(lambda: "play" in play.inner_text() and is_idle(page), 10, what="the button to turn into play")
    except TimeoutError:
        # on a loaded machine the button can be swapped out by a timer rerun under the pointer, and the click is
        # lost, as a person's would be; a person clicks again, and so does this test (once)
        if "pause" in play.inner_text():
            play.click()
        wait_until(lambda: "play" in play.inner_text() and is_idle(page), 30, what="the button to turn into play")
    wait_for_app(page, settle=0.5)
    paused = step_of(page)[0]
    assert paused >= k1
    time.sleep(3.0)                                            # three periods of the default 1 s timer
    assert step_of(page)[0] == paused, "the step kept moving after pause"
    assert exceptions(page) == []


# ----------------------------------------------------------------------------------------------------------------------
# the client-side animation

def test_animation_frames_play_in_the_browser(new_page):
    page = open_backward(new_page, "seq_len=5")
    page.get_by_text("Animate the whole backward pass").click()
    before = runs(page)
    page.locator(".st-key-bw_anim label").first.click()        # the toggle that builds the figure
    wait_for_run_after(page, before)
    page.wait_for_selector(".st-key-bw_animation .js-plotly-plot .updatemenu-button", state="attached")
    anim = [c for c in plotly_charts(page) if c.key == "bw_animation"][0]
    assert anim.frames == 5
    assert anim.active == 0
    z0 = [z.copy() for z in anim.z]
    runs_before = runs(page)
    page.locator(".st-key-bw_animation .updatemenu-button").first.click()   # Plotly's own ▶ play

    def moved():
        c = [c for c in plotly_charts(page) if c.key == "bw_animation"][0]
        return c if (c.active or 0) >= 2 else None

    later = wait_until(moved, 15, what="the animation's slider to advance two frames")
    assert any(not np.allclose(a, b, equal_nan=True) for a, b in zip(later.z, z0)), "the frames did not change z"
    assert runs(page) == runs_before, "a frame caused a server round trip"
    assert exceptions(page) == []


# ----------------------------------------------------------------------------------------------------------------------
# sessions

def test_two_sessions_step_independently(new_page):
    a = open_backward(new_page, "seq_len=6&hidden_size=3")
    b = open_backward(new_page, "seq_len=4&hidden_size=6&seed=7")
    b_start = all_heatmaps(b)
    click(a, "step_next")
    click(a, "step_next")
    wait_until(lambda: step_of(a) == (3, 6), 10, what="A at step 3 of 6")
    b.wait_for_timeout(300)
    assert step_of(b) == (1, 4), "B moved when A was clicked"
    b_now = all_heatmaps(b)
    assert b_now.keys() == b_start.keys()
    for key, z in b_now.items():
        np.testing.assert_array_equal(z, b_start[key], err_msg=f"B's {key} changed when A stepped")
    click(b, "step_last")
    wait_until(lambda: step_of(b) == (4, 4), 10, what="B at step 4 of 4")
    assert step_of(a) == (3, 6)
    assert heatmaps_by_key(a)["bw_dh_total"].shape[1] == 3
    assert heatmaps_by_key(b)["bw_dh_total"].shape[1] == 6
    assert "seq_len=6" in a.url and "step=3" in a.url
    assert "seq_len=4" in b.url and "step=4" in b.url
    assert exceptions(a) == [] and exceptions(b) == []


# ----------------------------------------------------------------------------------------------------------------------
# downloads

def test_npz_download_loads_with_the_right_shapes(new_page, tmp_path):
    T, B, I, H = 4, 2, 3, 6
    page = open_backward(new_page, f"seq_len={T}&batch_size={B}&input_size={I}&hidden_size={H}")
    with page.expect_download(timeout=60_000) as info:
        button(page, "bw_dl_npz").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as z:
        assert z["x"].shape == (T, B, I)
        assert z["h"].shape == z["dh_total"].shape == z["d_pre"].shape == (T, B, H)
        assert z["dx"].shape == (T, B, I)
        assert z["dW_ih"].shape == (H, I) and z["dW_hh"].shape == (H, H)
        assert z["db_ih"].shape == z["db_hh"].shape == (H,)
        assert z["dW_hh_acc"].shape == (T, H, H)
        shown = heatmaps_by_key(page)["bw_dh_total"]                      # step 1 shows t = T (0-based T - 1)
        np.testing.assert_allclose(shown, z["dh_total"][T - 1], rtol=1e-12, atol=0)
    assert exceptions(page) == []
