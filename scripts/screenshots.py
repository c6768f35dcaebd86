"""Screenshots for the README: every page for every cell at the defaults and at a larger config, full page.

Run: python scripts/screenshots.py [--out docs/screenshots] [--cells rnn,lstm,gru] [--width 1400]

Starts the app with `streamlit run` on a free port, opens each page in headless Chromium, waits until the app is idle
and every Plotly chart has drawn, and saves <page>_<config>.png for the vanilla RNN (e.g. backward_pass_default.png)
and <page>_<cell>_<config>.png for the others (e.g. backward_pass_lstm_large.png); at another width than 1400 px the
width is part of the name (backward_pass_lstm_default_800.png).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bptt.app.navigation import URL_PATHS as PAGES  # noqa: E402
from tests.support.browser import RUN_COUNTER_JS, StreamlitServer, browser_launch_kwargs, wait_for_app, wait_until  # noqa: E402

CONFIGS = {
    "default": "",
    "large": "hidden_size=128&input_size=64&seq_len=50&batch_size=16",
}
VIEWPORT = {"width": 1400, "height": 1000}
MAX_HEIGHT = 16000                                   # px; a longer page is cut at the bottom
HEIGHT_JS = """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
  '[data-testid="stMainBlockContainer"]', '[data-testid="stSidebarContent"]']
  .map((s) => document.querySelector(s)).filter(Boolean).map((e) => e.scrollHeight), document.body.scrollHeight)"""
DRAWN_JS = """() => {
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]').length;
  const drawn = [...document.querySelectorAll('.js-plotly-plot')].filter((e) => e.data && e._fullLayout).length;
  return charts === drawn;
}"""


def shoot(browser, url: str, path: Path, width: int = VIEWPORT["width"]) -> None:
    """Open url in a fresh context, wait until fully drawn, save a full-page PNG."""
    ctx = browser.new_context(viewport=dict(VIEWPORT, width=width), device_scale_factor=1)
    ctx.add_init_script(RUN_COUNTER_JS)
    page = ctx.new_page()
    page.goto(url)
    wait_for_app(page, expect="[data-testid='stMain'] [data-testid='stElementContainer']", timeout=300, settle=0.5)
    wait_until(lambda: page.evaluate(DRAWN_JS), 120, what="every plotly chart to draw")
    if "_pass" in url:                               # the Forward / Backward page's step viewer (canvas, not Plotly)
        page.wait_for_selector("[data-testid=bptt-stepper][data-step]", state="attached", timeout=300_000)
    # Streamlit scrolls inside its main container, so a full-page shot needs a viewport as tall as the content
    height = page.evaluate(HEIGHT_JS)
    page.set_viewport_size({"width": width, "height": min(max(height, VIEWPORT["height"]), MAX_HEIGHT)})
    wait_for_app(page, settle=0.5)
    wait_until(lambda: page.evaluate(DRAWN_JS), 120, what="every plotly chart to redraw")
    page.wait_for_timeout(800)                       # fonts, KaTeX and Plotly transitions settle
    errors = page.locator('[data-testid="stException"]').all_inner_texts()
    page.screenshot(path=str(path), full_page=True)
    ctx.close()
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}" + (f"  (EXCEPTION on page: {errors})"
                                                                               if errors else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated cells (default rnn,lstm,gru)")
    ap.add_argument("--width", type=int, default=VIEWPORT["width"], help="the window's width in px (default 1400)")
    ap.add_argument("--pages", default="", help="comma-separated page titles (default: every page)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    kwargs = browser_launch_kwargs()
    if kwargs is None:
        sys.exit("no browser: install chromium (apt-get install -y chromium)")
    server = StreamlitServer().start()
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(**kwargs)
            pages = {n: p for n, p in PAGES.items() if not args.pages or n in args.pages.split(",")}
            for cell in args.cells.split(","):
                for cname, query in CONFIGS.items():
                    for name, path in pages.items():
                        stem = name.lower().replace(" ", "_") + ("" if cell == "rnn" else f"_{cell}")
                        suffix = "" if args.width == VIEWPORT["width"] else f"_{args.width}"
                        q = "&".join(part for part in (f"cell={cell}" if cell != "rnn" else "", query) if part)
                        shoot(browser, f"{server.url}/{path}" + (f"?{q}" if q else ""),
                              args.out / f"{stem}_{cname}{suffix}.png", args.width)
            browser.close()
    finally:
        server.stop()
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
