"""The step viewer in a real browser: stepping without the server, play, hover, the URL, large configs, sessions,
the finite-difference cell click, the NPZ download; never a console error or a BidiComponent error element."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tests.support.browser import VIEWER_ROOT_JS

from .helpers import button, main_text, runs, wait_for_app, wait_until

# click a control n times within one task of the page; [data-step after them, script runs finished meanwhile]
CLICKS_JS = """([key, rootJs, testid, n]) => {
  const root = eval(rootJs)(key);
  const runs = window.__runs || 0;
  for (let i = 0; i < n; i += 1) root.querySelector(`[data-testid="${testid}"]`).click();
  return [root.dataset.step, (window.__runs || 0) - runs];
}"""

# ----------------------------------------------------------------------------------------------------------------------
# stepping

def test_buttons_slider_and_keys_step_in_the_browser(open_viewer):
    v = open_viewer(query="seq_len=5&hidden_size=6&batch_size=2")
    assert (v.step, v.steps) == (1, 5)
    seen = {1: v.drawn()}
    assert seen[1][1].startswith("t = 5 · backward step 1 of 5")
    k, _, ran = v.click("next")
    assert k == 2 and ran == 0                                   # drawn without a script run
    seen[2] = v.drawn()
    assert seen[2][3] != seen[1][3] and seen[2][1].startswith("t = 4 ") and seen[2][2] != seen[1][2]
    assert v.url_step() == 2                                     # the address bar follows at once
    assert v.click("last")[0] == 5
    assert v.drawn()[1].startswith("t = 1 · backward step 5 of 5")
    assert v.click("prev")[0] == 4
    assert v.click("first")[0] == 1
    assert v.drawn() == seen[1]                                  # the same pixels as before
    # the slider runs t = 1 … T left to right: t = 2 is backward step 4
    v.root.locator("[data-testid=bptt-step-slider]").fill("2")
    v.wait_step(4)
    assert v.drawn()[1].startswith("t = 2 ")
    # keys, with the viewer focused: ← is t − 1 (a backward step), → is t + 1
    v.root.focus()
    v.page.keyboard.press("ArrowLeft")
    v.wait_step(5)
    v.page.keyboard.press("ArrowRight")
    v.page.keyboard.press("ArrowRight")
    v.wait_step(3)
    assert v.drawn()[1].startswith("t = 3 ")
    assert v.control("next").is_enabled() and v.click("last")[0] == 5 and v.control("next").is_disabled()


def test_keys_work_from_page_load_and_after_a_button_is_disabled_under_the_focus(open_viewer):
    v = open_viewer(query="seq_len=4&hidden_size=3&batch_size=2")
    v.page.keyboard.press("ArrowLeft")                           # nothing clicked or focused: ← is t − 1
    v.wait_step(2)
    v.control("last").click()                                    # "last" is disabled at the end: focus falls away
    v.wait_step(4)
    assert v.control("last").is_disabled()
    v.page.keyboard.press("ArrowRight")
    v.wait_step(3)
    v.page.keyboard.press("ArrowLeft")
    v.wait_step(4)
    v.page.keyboard.press("ArrowRight")
    v.wait_step(3)
    v.page.keyboard.press("Space")                               # Space plays (from t = 2 on to the end)
    wait_until(lambda: "pause" in v.control("play").inner_text() or v.step == 4, 10, what="Space to start play")
    v.wait_step(4, timeout=15)
    # a text field keeps its keys: typing in the sidebar's seed moves nothing
    seed = v.page.locator(".st-key-w_seed input")
    seed.click()
    v.page.keyboard.press("ArrowLeft")
    v.page.keyboard.press("ArrowRight")
    v.page.wait_for_timeout(300)
    assert v.step == 4


# the current node of the strip and the strip's visible box, in page pixels
STRIP_JS = """([key, rootJs]) => {
  const root = eval(rootJs)(key), strip = root.querySelector('[data-testid=bptt-strip]');
  const cur = strip.querySelector('.node.h.cur'), a = strip.getBoundingClientRect(), b = cur.getBoundingClientRect();
  return {strip: [a.left, a.right], node: [b.left, b.right], t: Number(cur.dataset.t),
          scroll: strip.scrollWidth > strip.clientWidth + 1};
}"""


@pytest.mark.parametrize("T, width", [(200, 1400), (12, 800)])
def test_the_strip_always_shows_the_current_step(open_viewer, T, width):
    v = open_viewer(query=f"seq_len={T}&hidden_size=2&input_size=2&batch_size=1", width=width)
    ts = [T, T // 2, 3 * T // 4, 2, 1, T] if T > 20 else [T, 6, 1, T - 1]
    for i, t in enumerate(ts):
        if i:
            v.root.locator("[data-testid=bptt-step-slider]").fill(str(t))
            v.wait_step(T - t + 1)
        s = v.page.evaluate(STRIP_JS, [v.key, VIEWER_ROOT_JS])
        assert s["t"] == t
        assert s["strip"][0] - 0.5 <= s["node"][0] and s["node"][1] <= s["strip"][1] + 0.5, (t, s)
    if T > 20:
        assert s["scroll"]                                       # 200 steps do not fit: the strip scrolls to them
    else:
        assert not s["scroll"]                                   # 12 steps fit 800 px: no scrolling needed


def test_browser_back_undoes_a_sidebar_change_and_a_step_is_no_history_entry(open_viewer):
    v = open_viewer(query="seq_len=5&hidden_size=3&batch_size=2")
    shape = lambda: (v.root.locator("[data-quantity=dh_total]").get_attribute("data-rows"),  # noqa: E731
                     v.root.locator("[data-quantity=dh_total]").get_attribute("data-cols"))
    v.click("next")
    v.click("next")                                              # steps: no history entries
    wait_until(lambda: "step=3" in v.page.url, 10, what="the URL to follow the step")
    v.page.wait_for_timeout(900)                                 # settled: Python knows step 3
    wait_for_app(v.page)
    hidden = v.page.locator(".st-key-w_hidden_size input")
    hidden.fill("6")
    hidden.press("Enter")
    wait_until(lambda: shape() == ("2", "6") and "hidden_size=6" in v.page.url, 60, what="the new config")
    wait_for_app(v.page)
    v.page.go_back()
    wait_until(lambda: shape() == ("2", "3"), 60, what="Back to draw hidden_size = 3 again")
    wait_for_app(v.page)
    v.page.wait_for_timeout(800)
    assert "hidden_size=3" in v.page.url and "hidden_size=6" not in v.page.url   # the app did not rewrite it
    assert hidden.input_value() == "3" and v.step == 3                           # the sidebar and the step too
    v.page.go_forward()
    wait_until(lambda: shape() == ("2", "6") and "hidden_size=6" in v.page.url, 60, what="Forward to hidden_size 6")


def test_the_server_hears_the_step_when_the_user_settles(open_viewer):
    v = open_viewer(query="seq_len=6&hidden_size=3&batch_size=2")
    before = runs(v.page)
    # three clicks in one task of the page, the run count read in the same task: no run can have finished meanwhile
    # however slow the machine (one Playwright call per click could take longer than the settle delay under load)
    step, ran = v.page.evaluate(CLICKS_JS, [v.key, VIEWER_ROOT_JS, "bptt-step-next", 3])
    assert (int(step), ran) == (4, 0)                              # three quick clicks: drawn in the browser
    # settled: one run for the three, and what shows the step outside the viewer (the FD check's note) follows
    wait_until(lambda: "(t = 3)" in main_text(v.page), 20, what="the FD note to name t = 3")
    wait_for_app(v.page)
    assert runs(v.page) - before == 1 and v.url_step() == 4


def test_forward_page_steps_left_to_right(open_viewer):
    v = open_viewer("Forward_pass", "seq_len=4")
    assert v.drawn()[1].startswith("t = 1 · forward step 1 of 4")
    assert v.click("next")[0] == 2
    assert v.drawn()[1].startswith("t = 2 · forward step 2 of 4")
    assert v.root.locator("[data-quantity=torch_h]").count() == 1


def test_play_advances_by_itself_and_pause_stops(open_viewer):
    v = open_viewer(query="seq_len=30&hidden_size=3&input_size=2&batch_size=2")
    v.root.locator("[data-testid=bptt-step-speed]").select_option("100")
    play = v.control("play")
    play.click()
    wait_until(lambda: v.step >= 4, 20, what="play to advance three steps")
    assert "pause" in play.inner_text()
    paused = int(v.page.evaluate(CLICKS_JS, [v.key, VIEWER_ROOT_JS, "bptt-step-play", 1])[0])   # pause; its step
    v.page.wait_for_timeout(600)                                # six periods of the chosen speed: nothing moves
    assert v.step == paused and "play" in play.inner_text()
    # play runs to the end and stops there
    v.click("last")
    v.click("prev")
    play.click()
    v.wait_step(30, timeout=10)
    wait_until(lambda: "play" in play.inner_text(), 10, what="play to stop at the end")


# ----------------------------------------------------------------------------------------------------------------------
# hover, the NPZ export, the URL

def test_hover_shows_the_value_of_the_npz_export(open_viewer, tmp_path):
    T, B, I, H = 4, 2, 3, 6
    v = open_viewer(query=f"seq_len={T}&batch_size={B}&input_size={I}&hidden_size={H}&step=2")
    with v.page.expect_download(timeout=60_000) as info:
        button(v.page, "bw_dl_npz").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    t = T - 2                                                     # backward step 2 is 0-based t = T - 2
    with np.load(path, allow_pickle=False) as z:
        for quantity, name, b, j in (("dh_total", "NumPy dh_total", 1, 4), ("ref_dh_total", "PyTorch dh_total", 0, 2),
                                     ("dx", "NumPy dx", 1, 2), ("log10_diff_d_pre", "log10 |NumPy − PyTorch| of d_tanh",
                                                                0, 1)):
            canvas = v.root.locator(f"[data-quantity={quantity}] canvas.bptt-heat")
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            rows, cols = int(canvas.get_attribute("height")), int(canvas.get_attribute("width"))
            v.page.mouse.move(box["x"] + (j + 0.5) * box["width"] / cols, box["y"] + (b + 0.5) * box["height"] / rows)
            tip = v.root.locator("[data-testid=bptt-tooltip]")
            wait_until(lambda tip=tip, q=quantity: tip.is_visible() and tip.get_attribute("data-quantity") == q, 10,
                       what=f"the tooltip of {quantity}")
            text = tip.inner_text()
            assert text.startswith(f"t = {t + 1} · {name}[b = {b}, ") and "ref_" not in text   # as the page names it
            shown = float(text.rsplit("=", 1)[1].replace("−", "-"))
            if quantity.startswith("log10_diff_"):
                q = quantity[len("log10_diff_"):]
                diff = max(abs(float(z[q][t][b, j]) - float(z["ref_" + q][t][b, j])), 1e-18)
                assert shown == pytest.approx(np.log10(diff), abs=1e-5), (text, diff)
                continue
            want = z[quantity][t][b, j]
            assert shown == pytest.approx(want, rel=1e-6), (text, want)     # at least 6 significant digits
            assert len(re.sub(r"[^0-9]", "", text.rsplit("=", 1)[1].split("e")[0]).lstrip("0")) >= 6


def test_a_url_with_step_7_opens_at_step_7(open_viewer):
    v = open_viewer(query="seq_len=10&hidden_size=3&step=7")
    assert v.step == 7 and v.url_step() == 7
    assert v.drawn()[1].startswith("t = 4 · backward step 7 of 10")
    f = open_viewer("Forward_pass", "seq_len=10&hidden_size=3&step=7")
    assert f.step == 7 and f.drawn()[1].startswith("t = 7 · forward step 7 of 10")


# the chunks the viewer has received: [lo, hi) of each arrival, from its event log
CHUNKS_JS = """([key, rootJs]) => {
  const home = eval(rootJs)(key).getRootNode();
  const view = home.__bpttView || (home.host && home.host.__bpttView);
  return view.log.filter((e) => e[1] === 'arrive').map((e) => [e[2].lo, e[2].hi]);
}"""


# record, in the page, every step the viewer draws and whether "loading" ever shows (polling from Python misses some)
WATCH_JS = """([key, rootJs]) => {
  const root = eval(rootJs)(key), box = root.querySelector('[data-testid=bptt-loading]');
  window.__seen = [];
  window.__loading = false;
  new MutationObserver(() => window.__seen.push(Number(root.dataset.step)))
    .observe(root, {attributes: true, attributeFilter: ['data-step']});
  new MutationObserver(() => { if (!box.hidden) window.__loading = true; })
    .observe(box, {attributes: true, attributeFilter: ['hidden']});
}"""


def test_a_large_config_loads_and_steps_through_chunks(open_viewer):
    v = open_viewer(query="input_size=256&hidden_size=256&seq_len=64&batch_size=64", timeout=240)
    assert (v.step, v.steps) == (1, 64)
    assert v.root.locator("[data-quantity=dW_hh_acc]").get_attribute("data-rows") == "256"
    first = v.drawn()
    chunks = v.page.evaluate(CHUNKS_JS, [v.key, VIEWER_ROOT_JS])
    assert chunks[0][1] == 64 and 1 < chunks[0][1] - chunks[0][0] < 64     # over the budget: the first chunk only
    for k in range(2, 12):                                                 # past at least two chunk edges
        assert v.click("next", 120_000)[0] == k
        assert v.drawn()[1].startswith(f"t = {65 - k} · backward step {k} of 64")
    assert v.drawn()[3] != first[3]
    chunks = v.page.evaluate(CHUNKS_JS, [v.key, VIEWER_ROOT_JS])
    assert min(lo for lo, _ in chunks) <= 64 - 11                          # the steps came in further chunks
    assert len(chunks) == len(set(map(tuple, chunks)))                     # none of them twice
    # the far end is in another chunk: "loading" shows until it comes, then it is drawn
    v.control("last").click()
    wait_until(lambda: v.step == 64, 240, what="the last chunk to arrive")
    assert v.drawn()[1].startswith("t = 1 · backward step 64 of 64")
    assert v.root.locator("[data-testid=bptt-loading]").is_hidden()
    assert v.click("prev", 120_000)[0] == 63
    # the chunks seen before are kept: the first step is drawn again at once, without asking the server
    k, _, ran = v.click("first", 120_000)
    assert (k, ran) == (1, 0) and v.drawn()[3] == first[3]
    # play at 0.1 s a step never stalls on "loading": where it outruns the chunks it waits on the step it is at, says
    # so, and goes on when they come
    v.root.locator("[data-testid=bptt-step-speed]").select_option("100")
    v.page.evaluate(WATCH_JS, [v.key, VIEWER_ROOT_JS])
    v.control("play").click()
    wait_until(lambda: v.step >= 30, 180, what="play to reach step 30")
    v.control("play").click()
    seen, loading = v.page.evaluate("[window.__seen, window.__loading]")
    steps = [k for i, k in enumerate(seen) if i == 0 or k != seen[i - 1]]
    assert not loading                                                     # "loading" never showed
    assert steps[:29] == list(range(2, 31)), steps                         # every step drawn in turn, none skipped
    note = v.root.locator("[data-testid=bptt-playnote]")
    assert note.is_hidden()                                                # paused: the note goes


def test_two_browser_contexts_step_independently(open_viewer):
    a = open_viewer(query="seq_len=6&hidden_size=3")
    b = open_viewer(query="seq_len=4&hidden_size=6&seed=7")
    b_start = b.drawn()
    a.click("next")
    a.click("next")
    assert a.step == 3
    b.page.wait_for_timeout(800)                                 # past the settle delay: A's run has happened
    assert b.step == 1 and b.drawn() == b_start
    b.click("last")
    assert b.step == 4 and a.step == 3
    wait_until(lambda: "step=3" in a.page.url and "step=4" in b.page.url, 10, what="each URL to hold its own step")
    assert "seq_len=6" in a.page.url and "seq_len=4" in b.page.url


# ----------------------------------------------------------------------------------------------------------------------
# the finite-difference check from a cell click

def test_clicking_a_weight_gradient_cell_runs_the_fd_check_on_it(open_viewer):
    v = open_viewer(query="seq_len=3&hidden_size=5&input_size=4")
    v.root.locator("[data-testid=bptt-weight-dW_ih]").click()
    canvas = v.root.locator("[data-quantity=dW_ih_acc] canvas.bptt-heat")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    rows, cols = 5, 4
    wait_for_app(v.page)                                         # no run in flight that could swallow the click
    before = runs(v.page)
    v.page.mouse.click(box["x"] + 2.5 * box["width"] / cols, box["y"] + 3.5 * box["height"] / rows)   # j = 3, i = 2
    wait_until(lambda: runs(v.page) > before and "dW_ih[3, 2]" in main_text(v.page), 90,
               what="the FD check of dW_ih[3, 2]")
    wait_for_app(v.page)
    assert v.step == 1                                           # the viewer stayed where it was
