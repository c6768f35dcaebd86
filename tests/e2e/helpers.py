"""Browser-test helpers: a real `streamlit run` server, headless Chromium, waiting for the app, reading Plotly data."""
from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = {                       # page name -> URL path (Streamlit derives it from the pages/ file name)
    "Home": "",
    "Forward pass": "Forward_pass",
    "Backward pass": "Backward_pass",
    "Gradient flow": "Gradient_flow",
    "Verification": "Verification",
    "Derivation": "Derivation",
}


# ----------------------------------------------------------------------------------------------------------------------
# the server

def free_port() -> int:
    """A free local TCP port (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StreamlitServer:
    """A `streamlit run <script>` process in its own process group, its stderr captured in a temp file."""
    script: str = "streamlit_app.py"
    cwd: Path = ROOT
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> "StreamlitServer":
        """Start the server and wait until /_stcore/health answers "ok"; raise with its output if it does not."""
        self.log = tempfile.NamedTemporaryFile("w+", prefix="streamlit-e2e-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "streamlit", "run", self.script, "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"streamlit did not answer /_stcore/health within {timeout:.0f} s:\n{self.output()}")

    def output(self, tail: int = 8000) -> str:
        """The server's stdout and stderr so far (the last `tail` characters)."""
        if self.log is None:
            return ""
        try:
            return Path(self.log.name).read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the whole process group (streamlit and anything it spawned)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.log is not None:
            self.log.close()


# ----------------------------------------------------------------------------------------------------------------------
# the browser

def browser_launch_kwargs() -> dict[str, Any] | None:
    """Launch options for Debian's Chromium, else for Playwright's own browser; None when neither is there."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return dict(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    if any(cache.glob("chromium*")):
        return dict(headless=True, args=CHROMIUM_ARGS)
    return None


# Counts finished script runs (the stApp element's script state turning to notRunning), page-side, so that a wait
# after a click can tell "the run it caused has finished" from "no run has started yet".
RUN_COUNTER_JS = """
(() => {
  window.__runs = 0;
  const watch = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) { setTimeout(watch, 20); return; }
    // every mutation record, so that running -> notRunning within one batch is still counted
    new MutationObserver((records) => {
      for (const r of records) if (r.oldValue === 'running') window.__runs += 1;
    }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', watch); else watch();
})();
"""

IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && document.querySelectorAll('[data-testid="stSkeleton"]').length === 0;
}"""


def is_idle(page) -> bool:
    """Connected, the script not running, no skeletons."""
    return bool(page.evaluate(IDLE_JS))


def runs(page) -> int:
    """How many script runs have finished since the page loaded (needs RUN_COUNTER_JS as an init script)."""
    return int(page.evaluate("() => window.__runs || 0"))


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll cond() until it is truthy; return its value or raise TimeoutError naming what was awaited."""
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as err:    # the page may be mid-navigation
            last_err = err
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_err})"
                                                                                 if last_err else ""))


def wait_for_app(page, expect: str | None = None, timeout: float = 60.0, settle: float = 0.15) -> None:
    """Wait like Streamlit's own e2e tests: CONNECTED, script notRunning, no skeleton; and the expected content.

    Right after load the state can read notRunning before the first run starts, so also wait for `expect` (a CSS
    selector) to be attached, and require the idle state to hold for `settle` seconds.
    """
    if expect:
        page.wait_for_selector(expect, state="attached", timeout=timeout * 1000)

    def stable() -> bool:
        if not is_idle(page):
            return False
        time.sleep(settle)
        return is_idle(page)

    wait_until(stable, timeout, what="the app to be connected and idle")


def wait_for_run_after(page, before: int, timeout: float = 30.0) -> None:
    """After an action: wait for a run to be seen finishing (or 1 s), then for the app to be idle and stay idle.

    React may batch running -> notRunning into one render, so a fast run can leave no trace in the attribute; callers
    then also wait for the content they expect.
    """
    t0 = time.monotonic()
    wait_until(lambda: runs(page) > before or time.monotonic() - t0 > 1.0, timeout, interval=0.01,
               what="the script run caused by the action")
    wait_for_app(page, timeout=timeout)


def button(page, key: str):
    """The button with this widget key (Streamlit puts class st-key-<key> on its element container)."""
    return page.locator(f".st-key-{key} button")


def exceptions(page) -> list[str]:
    """The text of every exception element on the page."""
    return page.locator('[data-testid="stException"]').all_inner_texts()


def warnings(page) -> list[str]:
    """The text of every warning alert on the page."""
    return page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def step_of(page) -> tuple[int, int]:
    """(k, T) from the "step k of T" text on the Forward / Backward page."""
    m = re.search(r"[Ss]tep (\d+) of (\d+)", main_text(page))
    if not m:
        raise AssertionError("no 'step k of T' on the page")
    return int(m.group(1)), int(m.group(2))


# ----------------------------------------------------------------------------------------------------------------------
# Plotly data

# Each .js-plotly-plot's data, with typed arrays made plain and base64 specs ({dtype, bdata, shape}) left to Python.
PLOTLY_JS = """(sel) => {
  const plain = (v) => {
    if (v === null || v === undefined) return v;
    if (ArrayBuffer.isView(v)) return Array.from(v, (x) => Number.isFinite(x) ? x : null);
    if (Array.isArray(v)) return v.map(plain);
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'object') { const o = {}; for (const k of Object.keys(v)) o[k] = plain(v[k]); return o; }
    return v;
  };
  const out = [];
  for (const el of document.querySelectorAll(sel)) {
    const box = el.closest('[class*="st-key-"]');
    const key = box ? ([...box.classList].find((c) => c.startsWith('st-key-')) || '').slice(7) : null;
    out.push({key, data: (el.data || []).map((tr) => ({type: tr.type, name: tr.name, z: plain(tr.z),
                                                          zmin: tr.zmin, zmax: tr.zmax})),
              layout: {sliders: plain((el.layout || {}).sliders), title: plain((el.layout || {}).title)},
              frames: (el._transitionData && el._transitionData._frames) ? el._transitionData._frames.length : 0,
              active: el._fullLayout && el._fullLayout.sliders && el._fullLayout.sliders[0]
                        ? el._fullLayout.sliders[0].active : null});
  }
  return out;
}"""

DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "<i1", "u1": "<u1", "i2": "<i2", "u2": "<u2", "i4": "<i4", "u4": "<u4",
          "float64": "<f8", "float32": "<f4", "int8": "<i1", "uint8": "<u1", "int16": "<i2", "uint16": "<u2",
          "int32": "<i4", "uint32": "<u4", "u1c": "<u1"}


def decode(v: Any) -> np.ndarray | None:
    """A Plotly data array as float64: nested lists, or a typed-array spec {dtype, bdata (base64), shape}."""
    if v is None:
        return None
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=DTYPES[v["dtype"]]).astype(np.float64)
        shape = v.get("shape")
        if shape is not None:
            dims = [int(s) for s in (shape.split(",") if isinstance(shape, str) else shape)]
            a = a.reshape(dims)
        return a
    if isinstance(v, list) and v and isinstance(v[0], dict) and "bdata" in v[0]:
        return np.stack([decode(r) for r in v])
    return np.array([[np.nan if x is None else x for x in row] if isinstance(row, list) else
                     (np.nan if row is None else row) for row in v], dtype=np.float64)


@dataclass
class Chart:
    """One Plotly chart on the page: its widget key, the z matrix of each heatmap trace, slider state, frame count."""
    key: str | None
    z: list[np.ndarray]
    sliders: Any
    active: int | None
    frames: int


def plotly_charts(page, within: str = "") -> list[Chart]:
    """Every Plotly chart on the page (or inside the `within` selector), with its heatmaps decoded."""
    raw = page.evaluate(PLOTLY_JS, f"{within} .js-plotly-plot".strip())
    out = []
    for c in raw:
        zs = [decode(tr["z"]) for tr in c["data"] if tr.get("type") == "heatmap" and tr.get("z") is not None]
        out.append(Chart(c["key"], [z for z in zs if z is not None], c["layout"].get("sliders"), c["active"],
                         c["frames"]))
    return out


def heatmaps_by_key(page, panel: int = 0) -> dict[str, np.ndarray]:
    """key -> the z of each keyed chart's heatmap number `panel` (a triplet: 0 = NumPy, 1 = reference, 2 = diff)."""
    return {c.key: c.z[panel] for c in plotly_charts(page) if c.key and len(c.z) > panel}


def wait_for_charts(page, n_min: int = 1, timeout: float = 30.0) -> None:
    """Wait until at least n_min Plotly charts have drawn (their data is on the element)."""
    wait_until(lambda: page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter((e) => e.data && e._fullLayout).length")
        >= n_min, timeout, what=f"{n_min} plotly charts to draw")
