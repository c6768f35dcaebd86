"""Benchmark: the server's memory under N concurrent sessions at distinct maximal configs (issues 10 and 17).

Run: python benchmarks/load_app.py [--sessions 6] [--rounds 2] [--pages Backward_pass,Gradient_flow,Verification]
                                   [--cells rnn,lstm,gru] [--steps 10] [--same-configs]

Starts a real `streamlit run` and one headless Chromium with N browser contexts. In each round every session follows
its plan (plans(): session i opens page i mod len(pages) with the cell cells[i * len(cells) // N] (two sessions each
of rnn, lstm and gru by default) at its own maximal config, I = H = 256, T = 64, B = 64, seed 1000 + round * N + i,
so every round brings N new configs unless --same-configs), all at once; it waits until
the page is drawn (connected, script not running, no skeleton, the step viewer or every Plotly chart drawn), and on a
page with the step viewer clicks `next` --steps times, each time until the step is drawn (past chunk edges: new
payloads). Meanwhile a thread samples the resident memory of the server and every process it spawned (/proc, every
0.1 s). It reports:
- errors: exception elements in a page, JS console errors, pages or steps that never finish (--timeout);
- RSS: baseline (the server started, one small page drawn), peak, after the last page (--settle seconds, default
  20, after it, the sessions still open) and final (--closed seconds, default 60, after every session has closed),
  and the load average beside them;
- the time until every session of a round is done.
Targets at 6 sessions x 2 rounds: 0 errors, peak <= 1.5 GB, final (a minute after the last session closes) <= 1.0
GB. Env vars such as BPTT_MEMORY_MB and BPTT_MAX_JOBS pass through to the server.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import OFFLINE, VIEWER_ROOT_JS, StreamlitServer, browser_launch_kwargs

MAXIMAL = {"input_size": 256, "hidden_size": 256, "seq_len": 64, "batch_size": 64}
MB = 1024 * 1024

# drawn: connected, not running, no skeleton, and either the step viewer has drawn a step (its root sits in an open
# shadow root) or at least one Plotly chart or table is there and every chart drawn; or an exception shown
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
  const tables = document.querySelectorAll('[data-testid="stDataFrame"]').length;     // the Verification page
  return (charts > 0 || tables > 0) && drawn >= charts;
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


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as the kernel prints them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


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

@dataclass(frozen=True)
class Plan:
    """What one session does in a round: open `page` with these URL parameters, then step its viewer `steps` times."""
    page: str
    params: dict[str, object] = field(default_factory=dict)     # the cell and the config
    steps: int = 0

    def url(self, base: str) -> str:
        return f"{base}/{self.page}?" + "&".join(f"{k}={v}" for k, v in self.params.items())


VIEWER_PAGES = {"Backward_pass": "stepper_backward", "Forward_pass": "stepper_forward"}


def plans(args, r: int) -> list[Plan]:
    """The sessions' plans in round r (0-based): page i mod len(pages), each at its own maximal config."""
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    out = []
    for i in range(args.sessions):
        seed = 1000 + (0 if args.same_configs else r * args.sessions) + i
        page = pages[i % len(pages)]
        params = {"cell": cells[i * len(cells) // args.sessions], **MAXIMAL,
                  **dict(kv.split("=", 1) for kv in args.params.split(",") if kv), "seed": seed}
        out.append(Plan(page, params, args.steps if page in VIEWER_PAGES else 0))
    return out


# click the viewer's `next` and wait in the page until its step changes; the new step, or null after timeoutMs
NEXT_JS = """async ([key, rootJs, timeoutMs]) => {
  const root = eval(rootJs)(key);
  if (!root) return null;
  const before = root.dataset.step, t0 = performance.now();
  root.querySelector('[data-testid="bptt-step-next"]').click();
  while (root.dataset.step === before) {
    if (performance.now() - t0 > timeoutMs) return null;
    await new Promise((r) => setTimeout(r, 20));
  }
  return root.dataset.step;
}"""


async def run_plan(ctx, plan: Plan, base: str, timeout: float, errors: list[str]) -> float | None:
    """Seconds until the session has drawn its page and stepped; None (and an error) if it did not."""
    t0 = time.perf_counter()
    if await open_page(ctx, plan.url(base), timeout, errors) is None:
        return None
    page = ctx.pages[0]
    for k in range(plan.steps):
        step = await page.evaluate(NEXT_JS, [VIEWER_PAGES[plan.page], VIEWER_ROOT_JS, timeout * 1000])
        if step is None:
            errors.append(f"{plan.url(base)}: step {k + 2} not drawn within {timeout:.0f} s")
            return None
    return time.perf_counter() - t0


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
    ours = not ("404" in msg.text and is_probe(url)) and not OFFLINE.match(url)      # not a probe, not a font icon
    (errors if ours else probes).append(
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
        await open_page(ctxs[0], f"{server.url}/{plans(args, 0)[0].page}", args.timeout, errors)
        await asyncio.sleep(2.0)
        result["baseline"] = tree_rss(server.proc.pid)
        sampler.peak = result["baseline"]
        for r in range(args.rounds):
            t0 = time.perf_counter()
            times = await asyncio.gather(*(run_plan(ctx, plan, server.url, args.timeout, errors)
                                           for ctx, plan in zip(ctxs, plans(args, r))))
            wall = time.perf_counter() - t0
            result["rounds"].append({"wall": wall, "times": times, "rss": sampler.last, "peak": sampler.peak})
            each = ", ".join("-" if t is None else f"{t:.1f}" for t in times)
            print(f"round {r + 1}: every session done after {wall:.1f} s (each: {each} s); RSS now "
                  f"{sampler.last / MB:.0f} MB, peak so far {sampler.peak / MB:.0f} MB; load {loadavg()}", flush=True)
        await asyncio.sleep(args.settle)
        result["open"] = tree_rss(server.proc.pid)
        for ctx in ctxs:
            await ctx.close()
        await browser.close()
        await asyncio.sleep(args.closed)
        result["final"] = tree_rss(server.proc.pid)
    result["errors"] = errors
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pages", default="Backward_pass,Gradient_flow,Verification",
                    help="URL paths of the pages, session i opens page i mod their number")
    ap.add_argument("--cells", default="rnn,lstm,gru", help="the cells, spread evenly over the sessions")
    ap.add_argument("--closed", type=float, default=60.0, help="seconds after every session has closed before the "
                    "final RSS")
    ap.add_argument("--steps", type=int, default=10, help="`next` clicks per session on a page with the step viewer")
    ap.add_argument("--params", default="",
                    help="URL parameters over the maximal config, e.g. seq_len=8,hidden_size=16 (a quick smoke run)")
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
    print(f"\n{args.sessions} sessions x {args.rounds} rounds of {args.cells} at {args.params or MAXIMAL} on "
          f"{args.pages}, "
          f"{args.steps} steps on a viewer page (BPTT_MEMORY_MB={os.environ.get('BPTT_MEMORY_MB', 'default')}, "
          f"BPTT_MAX_JOBS={os.environ.get('BPTT_MAX_JOBS', 'default')}); load average now {loadavg()}")
    print(f"errors:        {len(res['errors'])}   (and {len(res['probes'])} lines not counted: 404s of Streamlit's "
          f"base-URL probe, /<page>/_stcore/health and host-config, and font icons this offline machine cannot load)")
    for e in res["errors"][:20]:
        print(f"  {e}")
    print(f"baseline RSS:  {res['baseline'] / MB:.0f} MB")
    print(f"peak RSS:      {sampler.peak / MB:.0f} MB   (target <= 1536 MB)")
    print(f"after the last page: {res['open'] / MB:.0f} MB ({args.settle:.0f} s after it, the sessions still open)")
    print(f"final RSS:     {res['final'] / MB:.0f} MB   (target <= 1024 MB, {args.closed:.0f} s after every session "
          f"closed)")
    print(f"every session done after: {', '.join(f'{w:.1f} s' for w in walls)} (per round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
