"""Benchmark: the server's memory under N concurrent sessions at distinct maximal configs (issue 10).

Run: python benchmarks/load_app.py [--sessions 6] [--rounds 2] [--page Backward_pass] [--same-configs]

Starts a real `streamlit run` and one headless Chromium with N browser contexts. In each round every session opens the
page at its own maximal config (I = H = 256, T = 64, B = 64; seed 1000 + round * N + session, so every round brings
N new configs unless --same-configs), all at once, and waits until the page is drawn: connected, script not running,
no skeleton, every Plotly chart drawn. Meanwhile a thread samples the resident memory of the server and every process
it spawned (/proc, every 0.1 s). It reports:
- errors: exception elements in a page, JS console errors, pages that never finish (--timeout);
- RSS: baseline (the server started, one small page drawn), peak, final (--settle seconds, default 20, after the
  last page is drawn);
- the time until every page of a round is drawn.
Targets at 6 sessions x 2 rounds: 0 errors, peak <= 1.5 GB, final <= 1.0 GB. Env vars such as BPTT_CACHE_MB and
BPTT_MAX_JOBS pass through to the server.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import StreamlitServer, browser_launch_kwargs

MAXIMAL = {"input_size": 256, "hidden_size": 256, "seq_len": 64, "batch_size": 64}
MB = 1024 * 1024

# drawn: connected, not running, no skeleton, and either the step viewer has drawn a step (its root sits in an open
# shadow root) or at least one Plotly chart is there and every chart drawn; or an exception shown
DONE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelectorAll('[data-testid="stSkeleton"]').length) return false;
  if (document.querySelectorAll('[data-testid="stException"]').length) return true;
  for (const host of document.querySelectorAll('[class*="st-key-stepper_"] *')) {
    if (host.shadowRoot && host.shadowRoot.querySelector('[data-testid="bptt-stepper"][data-step]')) return true;
  }
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]').length;
  const drawn = [...document.querySelectorAll('.js-plotly-plot')].filter((e) => e.data && e._fullLayout).length;
  return charts > 0 && drawn >= charts;
}"""


# ----------------------------------------------------------------------------------------------------------------------
# resident memory of a process tree, from /proc

def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Bytes resident in pid and all its descendants."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss(p)
        todo += _children(p)
    return total


class Sampler(threading.Thread):
    """Samples tree_rss(pid) every `interval` seconds; peak and the latest value."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = self.last = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.last = tree_rss(self.pid)
            self.peak = max(self.peak, self.last)
            time.sleep(self.interval)


# ----------------------------------------------------------------------------------------------------------------------
# the sessions

def query(seed: int) -> str:
    return "&".join(f"{k}={v}" for k, v in {**MAXIMAL, "seed": seed}.items())


async def open_page(ctx, url: str, timeout: float, errors: list[str]) -> float | None:
    """Seconds from goto until the page is drawn; None (and an error) if it never is or shows an exception."""
    page = ctx.pages[0] if ctx.pages else await ctx.new_page()
    t0 = time.perf_counter()
    try:
        await page.goto(url)
        await page.wait_for_selector('[data-testid="stMain"]', state="attached", timeout=timeout * 1000)
        await page.wait_for_function(DONE_JS, timeout=timeout * 1000, polling=200)
        await asyncio.sleep(0.3)
        await page.wait_for_function(DONE_JS, timeout=timeout * 1000, polling=200)   # still drawn after a pause
    except Exception as err:  # noqa: BLE001  (a page that never finishes is an error of the run, not of the benchmark
        errors.append(f"{url}: not drawn within {timeout:.0f} s ({type(err).__name__})")
        return None
    n_exc = await page.locator('[data-testid="stException"]').count()
    if n_exc:
        text = (await page.locator('[data-testid="stException"]').first.inner_text())[:300]
        errors.append(f"{url}: {n_exc} exception element(s): {text!r}")
    return time.perf_counter() - t0


def is_probe(url: str) -> bool:
    """Streamlit's frontend, opened at /<page>, first asks /<page>/_stcore/health and host-config (404), then /."""
    path = urlparse(url).path
    return path.endswith(("/_stcore/health", "/_stcore/host-config")) and path.count("/") > 2


def on_console(msg, i: int, errors: list[str], probes: list[str]) -> None:
    """A console error is an error of the run, unless it is the browser reporting one of Streamlit's probes."""
    if msg.type != "error":
        return
    url = (msg.location or {}).get("url", "")
    (probes if "404" in msg.text and is_probe(url) else errors).append(
        f"session {i}: console error: {msg.text[:200]} ({url[:120]})")


async def drive(server: StreamlitServer, sampler: Sampler, args) -> dict:
    from playwright.async_api import async_playwright

    errors: list[str] = []
    probes: list[str] = []           # Streamlit's own 404s while it finds its base URL: not the app's
    result: dict = {"rounds": [], "probes": probes}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**browser_launch_kwargs())
        ctxs = []
        for i in range(args.sessions):
            ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await ctx.new_page()
            page.on("console", lambda m, i=i: on_console(m, i, errors, probes))
            page.on("pageerror", lambda e, i=i: errors.append(f"session {i}: page error: {str(e)[:200]}"))
            page.on("response", lambda r, i=i: (probes if is_probe(r.url) else errors).append(
                f"session {i}: HTTP {r.status} for {r.url[:160]}") if r.status >= 400 else None)
            ctxs.append(ctx)
        # baseline: the server up and one small page drawn (torch and the app imported)
        await open_page(ctxs[0], f"{server.url}/{args.page}", args.timeout, errors)
        await asyncio.sleep(2.0)
        result["baseline"] = tree_rss(server.proc.pid)
        sampler.peak = result["baseline"]
        for r in range(args.rounds):
            seeds = [1000 + (0 if args.same_configs else r * args.sessions) + i for i in range(args.sessions)]
            t0 = time.perf_counter()
            times = await asyncio.gather(*(open_page(ctx, f"{server.url}/{args.page}?{query(s)}", args.timeout,
                                                     errors) for ctx, s in zip(ctxs, seeds)))
            wall = time.perf_counter() - t0
            result["rounds"].append({"wall": wall, "times": times, "rss": sampler.last, "peak": sampler.peak})
            each = ", ".join("-" if t is None else f"{t:.1f}" for t in times)
            print(f"round {r + 1}: every page drawn after {wall:.1f} s (each: {each} s); RSS now "
                  f"{sampler.last / MB:.0f} MB, peak so far {sampler.peak / MB:.0f} MB", flush=True)
        await asyncio.sleep(args.settle)
        result["final"] = tree_rss(server.proc.pid)
        for ctx in ctxs:
            await ctx.close()
        await browser.close()
    result["errors"] = errors
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--page", default="Backward_pass", help="the page's URL path (default Backward_pass)")
    ap.add_argument("--same-configs", action="store_true", help="every round reopens the first round's configs")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds a page may take before it is an error")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds after the last page before the final RSS (decoded arrays expire after 15 s idle)")
    args = ap.parse_args()
    if browser_launch_kwargs() is None:
        print("no Chromium found (install Debian's chromium)", file=sys.stderr)
        return 2
    server = StreamlitServer().start()
    sampler = Sampler(server.proc.pid)
    sampler.start()
    try:
        res = asyncio.run(drive(server, sampler, args))
    finally:
        sampler.stop_event.set()
        server.stop()
    walls = [r["wall"] for r in res["rounds"]]
    print(f"\n{args.sessions} sessions x {args.rounds} rounds at I=H=256, T=64, B=64 "
          f"(BPTT_CACHE_MB={os.environ.get('BPTT_CACHE_MB', 'default')}, "
          f"BPTT_MAX_JOBS={os.environ.get('BPTT_MAX_JOBS', 'default')})")
    print(f"errors:        {len(res['errors'])}   (and {len(res['probes'])} 404s of Streamlit's base-URL probe, "
          f"not counted: /<page>/_stcore/health and host-config)")
    for e in res["errors"][:20]:
        print(f"  {e}")
    print(f"baseline RSS:  {res['baseline'] / MB:.0f} MB")
    print(f"peak RSS:      {sampler.peak / MB:.0f} MB   (target <= 1536 MB)")
    print(f"final RSS:     {res['final'] / MB:.0f} MB   (target <= 1024 MB, {args.settle:.0f} s after the last page)")
    print(f"every page drawn after: {', '.join(f'{w:.1f} s' for w in walls)} (per round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
