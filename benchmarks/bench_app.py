"""Benchmark: how long a step_next click on the Backward page takes in headless Chromium, against a bare Streamlit page.

Run: python benchmarks/bench_app.py [--clicks 20] [--no-profile]

Two real `streamlit run` servers (the app, and benchmarks/bare_app.py whose step_next button only bumps a counter)
are driven by one headless Chromium. Each click is timed inside the page: from the click to (a)
the page having changed (the step text, and the data of the last heatmap on the page, which the script draws last)
while (b) the app is idle (connected, script notRunning, no skeleton), then (c) two animation frames (painted). The
content must have changed because React may batch running -> notRunning into one render, so the script-state
attribute alone cannot tell a finished run from one not yet started. App and bare clicks
alternate, so that load from other processes slows both alike. For each size it prints p50 / p95 in ms and their
ratio to the bare page (target p95 ratio <= 1.3), and the websocket bytes received per click. Start-up: goto to a
fully drawn Backward page (every Plotly chart drawn), cold (first load of the config) and warm, against the bare page.
The profile section times the Python side of one step (script run, figure building, JSON) outside the server.
At the defaults T = 3, so after the last step an unmeasured step_first click starts over.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bptt.browser import RUN_COUNTER_JS, StreamlitServer, browser_launch_kwargs, wait_for_app, wait_until  # noqa: E402

SIZES = {
    "defaults (I=4, H=5, T=3, B=3)": "",
    "large (I=64, H=128, T=50, B=16)": "input_size=64&hidden_size=128&seq_len=50&batch_size=16",
}
VIEWPORT = {"width": 1400, "height": 1000}

# A page signature that changes when the step changes: the "step k of T" text and the last heatmap's data.
# textContent, not innerText: polling must not force a layout, or the measurement slows the page it measures.
SIGNATURE_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const text = main ? (main.textContent.match(/[Ss]tep \\d+ of \\S+/) || [''])[0] : '';
  const plots = [...document.querySelectorAll('.js-plotly-plot')].filter((p) => p.data && p.data.length);
  let z = '';
  if (plots.length) {
    const v = plots[plots.length - 1].data[0].z;
    z = v && v.bdata ? v.bdata.length + ':' + v.bdata.slice(0, 64) + v.bdata.slice(-64)
      : JSON.stringify(v || '').slice(0, 256);
  }
  return text + '|' + z;
}"""

# Click the button with this key, resolve with the ms until run finished + idle + changed + painted.
CLICK_JS = """async ([key, timeoutMs]) => {
  const sig = """ + SIGNATURE_JS + """;
  const idle = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
      && app.getAttribute('data-test-script-state') === 'notRunning'
      && document.querySelectorAll('[data-testid="stSkeleton"]').length === 0;
  };
  const btn = document.querySelector(`.st-key-${key} button`);
  if (!btn) throw new Error(`no button with key ${key}`);
  const before = sig();
  const t0 = performance.now();
  btn.click();
  await new Promise((resolve, reject) => {
    const check = () => {
      if (idle() && sig() !== before) resolve();
      else if (performance.now() - t0 > timeoutMs) reject(new Error(`no change after ${timeoutMs} ms`));
      else setTimeout(check, 10);
    };
    check();
  });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""

DRAWN_JS = """() => {
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]').length;
  const drawn = [...document.querySelectorAll('.js-plotly-plot')].filter((e) => e.data && e._fullLayout).length;
  return [charts, drawn];
}"""


# ----------------------------------------------------------------------------------------------------------------------
# one page under test

class Tab:
    """A browser context on one server's page, counting the websocket bytes it receives."""

    def __init__(self, browser, url: str):
        self.ctx = browser.new_context(viewport=VIEWPORT)
        self.ctx.add_init_script(RUN_COUNTER_JS)
        self.page = self.ctx.new_page()
        self.bytes = 0
        self.frames = 0
        self.page.on("websocket", self._on_ws)
        self.url = url
        self.timeout_ms = int(__import__("os").environ.get("BENCH_TIMEOUT_MS", "120000"))

    def _on_ws(self, ws) -> None:
        def got(payload) -> None:
            self.bytes += len(payload)
            self.frames += 1
        ws.on("framereceived", got)

    def load(self, expect: str, min_charts: int = 0) -> float:
        """Seconds from goto to the page idle with every Plotly chart drawn."""
        t0 = time.perf_counter()
        self.page.goto(self.url)
        wait_for_app(self.page, expect=expect, timeout=300, settle=0.05)
        if min_charts:
            wait_until(lambda: (lambda c, d: c >= min_charts and d >= c)(*self.page.evaluate(DRAWN_JS)), 300,
                       interval=0.02, what="every plotly chart to draw")
        return time.perf_counter() - t0

    def click_ms(self, key: str = "step_next") -> tuple[float, int]:
        """(ms of one timed click, websocket bytes received for it)."""
        b0 = self.bytes
        try:
            ms = self.page.evaluate(CLICK_JS, [key, self.timeout_ms])
        except Exception as err:
            state = self.page.evaluate("""() => { const a = document.querySelector('[data-testid="stApp"]');
              return [a && a.getAttribute('data-test-connection-state'), a && a.getAttribute('data-test-script-state'),
                      window.__runs, document.querySelectorAll('[data-testid="stSkeleton"]').length]; }""")
            raise RuntimeError(f"{self.url}: click on {key} did not finish: {err}; state {state}, "
                               f"signature {self.page.evaluate(SIGNATURE_JS)!r}") from None
        self.page.wait_for_timeout(30)                  # let Playwright deliver the last websocket events
        return float(ms), self.bytes - b0

    def at_last_step(self) -> bool:
        return self.page.locator(".st-key-step_next button").is_disabled()

    def restart(self) -> None:
        """Back to step 1 (unmeasured)."""
        self.page.evaluate(CLICK_JS, ["step_first", 120_000])


def pct(xs: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


# ----------------------------------------------------------------------------------------------------------------------
# the Python side of one step, outside the server

def profile(query: str) -> None:
    """Time the Backward page's step render in bare mode: everything, figure building, plotly JSON."""
    import logging
    import plotly.io

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from bptt import figures
    from bptt.app import backward
    from bptt.app.state import get_analysis
    from bptt.config import RNNConfig

    kw = dict(p.split("=") for p in query.split("&")) if query else {}
    cfg = RNNConfig(**{k: int(v) for k, v in kw.items()})
    t0 = time.perf_counter()
    analysis = get_analysis(cfg)
    t_an = time.perf_counter() - t0
    spent = {"figures": 0.0, "to_json": 0.0}
    sizes: list[int] = []

    def timed(fn, slot):
        def wrap(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            spent[slot] += time.perf_counter() - t
            if slot == "to_json":
                sizes.append(len(out))
            return out
        return wrap

    orig = {n: getattr(figures, n) for n in ("heatmap", "diff_heatmap", "triplet_figure", "unrolled_strip")}
    orig_json = plotly.io.to_json
    for n, fn in orig.items():
        setattr(figures, n, timed(fn, "figures"))
    plotly.io.to_json = timed(orig_json, "to_json")
    try:
        parts = [getattr(backward, n) for n in ("header", "strip", "equations", "gradient_rows", "weight_gradients")
                 if hasattr(backward, n)]
        for p in parts:                                                      # warm the caches
            try:
                p(analysis, 2)
            except TypeError:
                pass
        spent.update(figures=0.0, to_json=0.0)
        sizes.clear()
        t0 = time.perf_counter()
        for p in parts:
            try:
                p(analysis, 2)
            except TypeError:
                pass
        total = time.perf_counter() - t0
    finally:
        for n, fn in orig.items():
            setattr(figures, n, fn)
        plotly.io.to_json = orig_json
    print(f"  python, one step in bare mode: {total * 1e3:7.1f} ms  (figure building {spent['figures'] * 1e3:.1f} ms, "
          f"plotly.io.to_json {spent['to_json'] * 1e3:.1f} ms for {len(sizes)} charts, "
          f"{sum(sizes) / 1024:.0f} KiB of JSON); analysis on first call (computed, then cached) {t_an * 1e3:.1f} ms")


# ----------------------------------------------------------------------------------------------------------------------
# diagnosis: what a click costs as a function of the number of Plotly charts it redraws

DIAG_PAGE = """import sys
sys.path.insert(0, {root!r})
import numpy as np
import streamlit as st
from plotly.subplots import make_subplots
from bptt import figures

N, TEXT, PER_FIG, SHAPE = {n}, {text}, {per_fig}, {shape}
st.set_page_config(layout="wide")
if "count" not in st.session_state:
    st.session_state.count = 1


def _bump():
    st.session_state.count += 1


st.button("next", key="step_next", on_click=_bump)
st.markdown(f"Step {{st.session_state.count}} of ∞")
rng = np.random.default_rng(st.session_state.count)
cols = st.columns(3)
for i in range(N):
    zs = [rng.standard_normal(SHAPE) for _ in range(PER_FIG)]
    if PER_FIG == 1:
        fig = figures.heatmap(zs[0], "q", 3.0, "BH")
    else:
        fig = make_subplots(rows=1, cols=PER_FIG)
        for k, z in enumerate(zs):
            fig.add_trace(figures.heatmap(z, "q", 3.0, "BH").data[0], row=1, col=k + 1)
        fig.update_layout(height=figures.heatmap(zs[0], "q", 3.0, "BH").layout.height)
    if not TEXT:
        fig.update_traces(text=None, texttemplate=None)
    with cols[i % 3] if PER_FIG == 1 else st.container():
        st.plotly_chart(fig, width="stretch", key=f"c{{i}}", config={{"displayModeBar": False}})
"""

DIAG_VARIANTS = {              # name -> (charts, text in cells, heatmaps per chart, shape)
    "1 chart (3x5, values in cells)": (1, True, 1, (3, 5)),
    "7 charts": (7, True, 1, (3, 5)),
    "20 charts (like the Backward page)": (20, True, 1, (3, 5)),
    "20 charts, no values in cells": (20, False, 1, (3, 5)),
    "7 charts of 3 subplots (same 21 heatmaps)": (7, True, 3, (3, 5)),
    "20 charts of 16x128": (20, False, 1, (16, 128)),
}


def diagnose(browser, bare: "Tab", clicks: int) -> None:
    """Click latency of generated pages that redraw N heatmaps per click, as ratios to the bare page."""
    import tempfile
    print("\ndiagnosis: p50 / p95 of a click on a page that redraws N Plotly heatmaps (ratio to bare, same run)")
    for name, (n, text, per_fig, shape) in DIAG_VARIANTS.items():
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, dir=ROOT / "benchmarks",
                                         prefix="_diag_") as f:
            f.write(DIAG_PAGE.format(root=str(ROOT), n=n, text=text, per_fig=per_fig, shape=shape))
        srv = StreamlitServer(script=str(Path(f.name).relative_to(ROOT))).start()
        try:
            t = Tab(browser, srv.url)
            t.load(".st-key-step_next", min_charts=n)
            t.click_ms(), bare.click_ms()
            a_ms, b_ms, nb = [], [], []
            for _ in range(clicks):
                ms, size = t.click_ms()
                a_ms.append(ms)
                nb.append(size)
                b_ms.append(bare.click_ms()[0])
            print(f"  {name:45s} p50 {pct(a_ms, 50):7.1f} ms  p95 {pct(a_ms, 95):7.1f} ms   ratio p50 "
                  f"{pct(a_ms, 50) / pct(b_ms, 50):5.2f}  p95 {pct(a_ms, 95) / pct(b_ms, 95):5.2f}   "
                  f"{statistics.median(nb) / 1024:7.1f} KiB/click")
            t.ctx.close()
        finally:
            srv.stop()
            Path(f.name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------------------
# main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clicks", type=int, default=20, help="measured clicks per size (default 20)")
    ap.add_argument("--no-profile", action="store_true", help="skip the Python-side profile")
    ap.add_argument("--diagnose", action="store_true",
                    help="also time generated pages that redraw 1, 7, 20 heatmaps per click (the cause of the cost)")
    ap.add_argument("--only-diagnose", action="store_true", help="only the diagnosis")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    kwargs = browser_launch_kwargs()
    if kwargs is None:
        sys.exit("no browser: install chromium (apt-get install -y chromium)")
    app = StreamlitServer(script="streamlit_app.py").start()
    bare = StreamlitServer(script="benchmarks/bare_app.py").start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(**kwargs)
            b = Tab(browser, bare.url)
            b_cold = b.load(".st-key-step_next")
            b_warm = Tab(browser, bare.url).load(".st-key-step_next")
            print(f"bare page start-up: cold {b_cold:.2f} s, warm {b_warm:.2f} s")
            if args.diagnose or args.only_diagnose:
                diagnose(browser, b, max(5, args.clicks // 2))
            for size, query in ({} if args.only_diagnose else SIZES).items():
                url = f"{app.url}/Backward_pass" + (f"?{query}" if query else "")
                a = Tab(browser, url)
                cold = a.load(".st-key-step_next", min_charts=8)
                warm_tab = Tab(browser, url)
                warm = warm_tab.load(".st-key-step_next", min_charts=8)
                warm_tab.ctx.close()
                a_ms, b_ms, a_bytes, b_bytes = [], [], [], []
                a.click_ms(), b.click_ms()                   # one unmeasured click each (first-click costs)
                for _ in range(args.clicks):
                    if a.at_last_step():
                        a.restart()
                    ms, nb = a.click_ms()
                    a_ms.append(ms)
                    a_bytes.append(nb)
                    ms, nb = b.click_ms()
                    b_ms.append(ms)
                    b_bytes.append(nb)
                a50, a95, b50, b95 = pct(a_ms, 50), pct(a_ms, 95), pct(b_ms, 50), pct(b_ms, 95)
                print(f"\n{size}")
                print(f"  start-up to a fully drawn Backward page: cold {cold:.2f} s, warm {warm:.2f} s "
                      f"(ratio to the bare page, warm: {warm / b_warm:.2f})")
                print(f"  step_next click: app p50 {a50:7.1f} ms  p95 {a95:7.1f} ms | bare p50 {b50:6.1f} ms  "
                      f"p95 {b95:6.1f} ms")
                print(f"  ratio to bare: p50 {a50 / b50:.2f}   p95 {a95 / b95:.2f}   (target p95 <= 1.3)")
                print(f"  websocket bytes received per click: app median {statistics.median(a_bytes) / 1024:.1f} KiB, "
                      f"bare median {statistics.median(b_bytes) / 1024:.2f} KiB")
                a.ctx.close()
            browser.close()
    finally:
        app.stop()
        bare.stop()
    if not (args.no_profile or args.only_diagnose):
        print("\nprofile (Python side of one Backward step, outside the server)")
        for size, query in SIZES.items():
            print(f" {size}")
            profile(query)


if __name__ == "__main__":
    main()
