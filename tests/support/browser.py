"""A real `streamlit run` server and headless Chromium, for the browser tests, the benchmarks and the screenshots.

No streamlit import here (the server is a subprocess) and no playwright import (callers bring their own browser).
"""
from __future__ import annotations

import contextlib
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Console lines that are not the app's: Streamlit's own probes of /<page>/_stcore/... on a deep link (404), and Google
# font icons this offline machine cannot resolve.
ALLOWED_404 = re.compile(r"/_stcore/(host-config|health)$")
OFFLINE = re.compile(r"^https://fonts\.gstatic\.com/")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


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

    def start(self, timeout: float = 90.0) -> StreamlitServer:
        """Start the server and wait until /_stcore/health answers "ok"; raise with its output if it does not."""
        self.log = tempfile.NamedTemporaryFile("w+", prefix="streamlit-e2e-", suffix=".log", delete=False)  # noqa: SIM115  (closed in stop())
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
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
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


# The step viewer's root element (data-testid="bptt-stepper") under the element with widget key `key`, through the
# open shadow root the component lives in; null while it is not there. Use as `(VIEWER_ROOT_JS)(key)` inside page JS.
VIEWER_ROOT_JS = """(key) => {
  const box = document.querySelector(`.st-key-${key}`);
  if (!box) return null;
  for (const e of [box, ...box.querySelectorAll('*')]) {
    const r = e.shadowRoot && e.shadowRoot.querySelector('[data-testid="bptt-stepper"]');
    if (r) return r;
  }
  return null;
}"""
