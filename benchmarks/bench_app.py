"""Benchmark: a step of the Backward page's step viewer in headless Chromium, against a bare Streamlit rerun.

Run: python benchmarks/bench_app.py [--cell rnn|lstm|gru] [--clicks 20] [--sizes defaults,medium,largest] [--trace]

Two real `streamlit run` servers (the app, and benchmarks/bare_app.py whose button only bumps a counter) are driven by
one headless Chromium, in the same run, so that the ratios cancel the machine's speed and load.

- Step time: 20 clicks on the viewer's `bptt-step-next`, each timed inside the page from the click to `data-step`
  having changed (the viewer sets it after drawing the step) and then two animation frames (painted).
- Baseline: a click on the bare page's button, from the click to the run having finished (connected, script
  notRunning, no skeleton, the counter text changed) and two animation frames. App and bare clicks alternate, so
  that load from other processes slows both alike.
- First load: from navigation to the viewer drawn (`data-step` set) on a fresh browser context, against navigation
  to the bare page's button, both warm (the server has the config cached; a cold load is printed beside).
- Sizes: the defaults with T = 30; I = 64, H = 128, T = 50, B = 16; and I = H = 256, T = 64, B = 64 (above the
  payload budget: the viewer gets windows of steps and fetches the next before it runs out).

Targets (issues 8 and 15): step p95 <= 0.35x the bare p95 at the first two sizes and <= 0.6x at the largest; first
load <= 2.5x the bare page at I = 64, H = 128, T = 50, B = 16; for the RNN and the LSTM (--cell). The load average is
printed beside every ratio: claim a target only from a quiet run.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import (  # noqa: E402
    RUN_COUNTER_JS,
    VIEWER_ROOT_JS,
    StreamlitServer,
    browser_launch_kwargs,
    wait_for_app,
)

SIZES = {
    "defaults": ("defaults, T = 30 (I=4, H=5, B=3)", "seq_len=30"),
    "medium": ("I=64, H=128, T=50, B=16", "input_size=64&hidden_size=128&seq_len=50&batch_size=16"),
    "largest": ("I=H=256, T=64, B=64", "input_size=256&hidden_size=256&seq_len=64&batch_size=64"),
}
TARGETS = {"defaults": 0.35, "medium": 0.35, "largest": 0.6}
VIEWPORT = {"width": 1400, "height": 1000}
KEY = "stepper_backward"

ROOT_JS = f"({VIEWER_ROOT_JS})('{KEY}')"     # the viewer's root element, as a JS expression

# the viewer: click next, wait for data-step to change (set after the step is drawn), then two animation frames
STEP_JS = """async (timeoutMs) => {
  const root = ROOT_JS;
  const before = root.dataset.step;
  const t0 = performance.now();
  (window.__clicks = window.__clicks || []).push(t0);
  root.querySelector('[data-testid="bptt-step-next"]').click();
  while (root.dataset.step === before) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`no step after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}""".replace("ROOT_JS", ROOT_JS)

# what the viewer did meanwhile: its event log (chunk requests and arrivals), the click start times and the main
# thread's long tasks (> 50 ms), all in ms since the first measured click
TRACE_JS = """(since) => {
  const root = ROOT_JS;
  const home = root.getRootNode();
  const view = home.__bpttView || (home.host && home.host.__bpttView);
  const rel = (ms) => Math.round(ms - since);
  return {log: view.log.filter((e) => e[0] >= since).map((e) => [rel(e[0]), e[1], e[2]]),
          clicks: (window.__clicks || []).filter((t) => t >= since).map(rel),
          long: (window.__long || []).filter((e) => e[0] >= since).map((e) => [rel(e[0]), Math.round(e[1])])};
}""".replace("ROOT_JS", ROOT_JS)
LONGTASKS_JS = """
window.__long = [];
try {
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push([e.startTime, e.duration]); })
    .observe({ entryTypes: ["longtask"] });
} catch (e) { /* no long-task timing in this browser */ }
"""

# the bare page: click, wait for the rerun to finish and the counter to change, then two animation frames
BARE_JS = """async (timeoutMs) => {
  const idle = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
      && app.getAttribute('data-test-script-state') === 'notRunning'
      && document.querySelectorAll('[data-testid="stSkeleton"]').length === 0;
  };
  const text = () => (document.querySelector('[data-testid="stMain"]') || {}).textContent || '';
  const before = text();
  const t0 = performance.now();
  document.querySelector('.st-key-step_next button').click();
  while (!(idle() && text() !== before)) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`no rerun after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def pct(xs: list[float], q: float) -> float:
    """The q-th percentile of xs by the nearest-rank method: the ceil(q/100 · n)-th smallest (of 20: the 19th)."""
    s = sorted(xs)
    return s[min(len(s), max(1, math.ceil(q / 100 * len(s) - 1e-9))) - 1]


def open_tab(browser, url: str, viewer: bool) -> tuple[object, object, float]:
    """(context, page, seconds from navigation to the viewer drawn / the bare button ready)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(RUN_COUNTER_JS + LONGTASKS_JS)
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    if viewer:
        page.wait_for_selector(f".st-key-{KEY} [data-testid=bptt-stepper][data-step]", state="attached",
                               timeout=600_000)
    else:
        page.wait_for_selector(".st-key-step_next button", timeout=600_000)
    elapsed = time.perf_counter() - t0
    wait_for_app(page, timeout=600, settle=0.05)
    return ctx, page, elapsed


def first_load(browser, url: str, viewer: bool, n: int = 3) -> float:
    """The median warm first load of n fresh contexts."""
    times = []
    for _ in range(n):
        ctx, _, s = open_tab(browser, url, viewer)
        times.append(s)
        ctx.close()
    return sorted(times)[len(times) // 2]


def _load() -> str:
    """The 1, 5 and 15 minute load averages: a ratio means little on a busy machine."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="rnn", help="the cell (default rnn)")
    ap.add_argument("--clicks", type=int, default=20, help="measured clicks per size (default 20)")
    ap.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated subset of {', '.join(SIZES)}")
    ap.add_argument("--trace", action="store_true", help="print when each click started, the viewer's chunk requests "
                    "and arrivals (with bytes and decode ms) and the main thread's long tasks")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    kwargs = browser_launch_kwargs()
    if kwargs is None:
        sys.exit("no browser: install chromium (apt-get install -y chromium)")
    app = StreamlitServer(script="streamlit_app.py").start()
    bare = StreamlitServer(script="benchmarks/bare_app.py").start()
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(**kwargs)
            _, b_page, _ = open_tab(browser, bare.url, viewer=False)
            b_load = first_load(browser, bare.url, viewer=False)
            print(f"bare page: first load {b_load:.2f} s (median of 3)")
            for name in args.sizes.split(","):
                label, query = SIZES[name]
                url = f"{app.url}/Backward_pass?cell={args.cell}&{query}"
                ctx, a_page, cold = open_tab(browser, url, viewer=True)        # the first visit computes the config
                warm = first_load(browser, url, viewer=True)
                a_page.evaluate(STEP_JS, 600_000)                                # one unmeasured click each
                b_page.evaluate(BARE_JS, 600_000)
                a_ms, b_ms = [], []
                since = a_page.evaluate("performance.now()")
                for _ in range(args.clicks):
                    a_ms.append(a_page.evaluate(STEP_JS, 600_000))
                    b_ms.append(b_page.evaluate(BARE_JS, 600_000))
                a50, a95, b50, b95 = pct(a_ms, 50), pct(a_ms, 95), pct(b_ms, 50), pct(b_ms, 95)
                ratio, target = a95 / b95, TARGETS[name]
                print(f"\n{label}, cell {args.cell} (load average {_load()})")
                print(f"  step (next, click to painted): p50 {a50:7.1f} ms  p95 {a95:7.1f} ms  max {max(a_ms):7.1f} ms")
                print("    every click, ms: " + " ".join(f"{x:.0f}" for x in a_ms))
                print(f"  bare rerun (same run):         p50 {b50:7.1f} ms  p95 {b95:7.1f} ms")
                print(f"  p95 ratio {ratio:.2f} (target <= {target})  {'ok' if ratio <= target else 'MISSED'}  "
                      f"(load average {_load()})")
                print(f"  first load to the viewer drawn: warm {warm:.2f} s = {warm / b_load:.2f}x the bare page "
                      f"(cold, first visit of the config: {cold:.2f} s)")
                if args.trace:
                    tr = a_page.evaluate(TRACE_JS, since)
                    print("    click starts, ms: " + " ".join(map(str, tr["clicks"])))
                    for ms, event, detail in tr["log"]:
                        print(f"    {ms:6d} ms  {event:6s} {detail}")
                    print("    long tasks [start, ms]: " + " ".join(map(str, tr["long"])))
                rows.append((label, a50, a95, b50, b95, ratio, target, warm, warm / b_load, cold))
                ctx.close()
            browser.close()
    finally:
        app.stop()
        bare.stop()
    print("\n| size | step p50 / p95 | bare rerun p50 / p95 | p95 ratio (target) | first load warm (ratio) | cold |")
    print("|---|---|---|---|---|---|")
    for label, a50, a95, b50, b95, ratio, target, warm, wr, cold in rows:
        print(f"| {label} | {a50:.0f} / {a95:.0f} ms | {b50:.0f} / {b95:.0f} ms | {ratio:.2f} (≤ {target}) | "
              f"{warm:.2f} s ({wr:.2f}×) | {cold:.2f} s |")


if __name__ == "__main__":
    main()
