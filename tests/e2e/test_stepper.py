"""The step viewer in a real browser: stepping without the server, play, hover, the URL, large configs, sessions,
the finite-difference cell click, the NPZ download; never a console error or a BidiComponent error element."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tests.support.browser import VIEWER_ROOT_JS

from .helpers import Console, button, exceptions, main_text, runs, wait_for_app, wait_until

# a signature of everything drawn: the title, the equations and every visible heatmap's pixels
DRAWN_JS = """([key, rootJs]) => {
  const root = eval(rootJs)(key);
  if (!root) return null;
  let h = 0;
  for (const c of root.querySelectorAll('canvas.bptt-heat')) {
    if (c.closest('[hidden]')) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 1) h = (h * 31 + d[i]) >>> 0;
  }
  return [root.dataset.step, root.querySelector('.bptt-title').textContent,
          root.querySelector('.bptt-eq').textContent, h];
}"""

# click a control and wait (in the page) for data-step to change; report the ms and whether a script run happened
CLICK_JS = """async ([key, rootJs, testid, timeoutMs]) => {
  const root = eval(rootJs)(key);
  const before = root.dataset.step, runs = window.__runs || 0, t0 = performance.now();
  root.querySelector(`[data-testid="${testid}"]`).click();
  while (root.dataset.step === before && performance.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 2));
  return [root.dataset.step, performance.now() - t0, (window.__runs || 0) - runs];
}"""

# click a control n times within one task of the page; [data-step after them, script runs finished meanwhile]
CLICKS_JS = """([key, rootJs, testid, n]) => {
  const root = eval(rootJs)(key);
  const runs = window.__runs || 0;
  for (let i = 0; i < n; i += 1) root.querySelector(`[data-testid="${testid}"]`).click();
  return [root.dataset.step, (window.__runs || 0) - runs];
}"""

# ----------------------------------------------------------------------------------------------------------------------
# helpers

@pytest.fixture
def open_viewer(new_page):
    """Open a page with the viewer at a query string; every page opened is checked for errors at teardown."""
    opened = []

    def make(path: str = "Backward_pass", query: str = "", timeout: float = 90):
        page = new_page(path + (f"?{query}" if query else ""))
        console = page.console
        opened.append((page, console))
        key = "stepper_backward" if path.startswith("Backward") else "stepper_forward"
        page.wait_for_selector(f".st-key-{key} [data-testid=bptt-stepper][data-step]", state="attached",
                               timeout=timeout * 1000)
        wait_for_app(page, timeout=timeout)
        return Viewer(page, key, console)

    yield make
    for page, console in opened:
        assert console.errors() == [], (console.errors(), console.failed)
        assert page.get_by_text("BidiComponent Error").count() == 0
        assert exceptions(page) == []


class Viewer:
    """The viewer on one page."""

    def __init__(self, page, key: str, console: Console):
        self.page, self.key, self.console = page, key, console
        self.root = page.locator(f".st-key-{key} [data-testid=bptt-stepper]")

    def drawn(self):
        return self.page.evaluate(DRAWN_JS, [self.key, VIEWER_ROOT_JS])

    @property
    def step(self) -> int:
        return int(self.root.get_attribute("data-step"))

    @property
    def steps(self) -> int:
        return int(self.root.get_attribute("data-steps"))

    def click(self, name: str, timeout_ms: int = 30_000) -> tuple[int, float, int]:
        """Click bptt-step-<name>; (the new data-step, ms until it changed, script runs meanwhile)."""
        k, ms, ran = self.page.evaluate(CLICK_JS, [self.key, VIEWER_ROOT_JS, f"bptt-step-{name}", timeout_ms])
        return int(k), ms, ran

    def control(self, name: str):
        return self.root.locator(f"[data-testid=bptt-step-{name}]")

    def url_step(self) -> int:
        return int(re.search(r"[?&]step=(\d+)", self.page.evaluate("location.search")).group(1))

    def wait_step(self, k: int, timeout: float = 30) -> None:
        wait_until(lambda: self.step == k, timeout, what=f"data-step = {k}")


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
        for quantity, b, j in (("dh_total", 1, 4), ("ref_dh_total", 0, 2), ("dx", 1, 2)):
            canvas = v.root.locator(f"[data-quantity={quantity}] canvas.bptt-heat")
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            rows, cols = int(canvas.get_attribute("height")), int(canvas.get_attribute("width"))
            v.page.mouse.move(box["x"] + (j + 0.5) * box["width"] / cols, box["y"] + (b + 0.5) * box["height"] / rows)
            tip = v.root.locator("[data-testid=bptt-tooltip]")
            wait_until(lambda tip=tip, q=quantity: tip.is_visible() and tip.get_attribute("data-quantity") == q, 10,
                       what=f"the tooltip of {quantity}")
            text = tip.inner_text()
            assert text.startswith(f"t = {t + 1} · {quantity}[b = {b}, ")
            shown = float(text.rsplit("=", 1)[1].replace("−", "-"))
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
