"""Browser-test helpers: the app's elements, exceptions, Plotly charts (server and browser: tests/support/)."""
from __future__ import annotations

import re

import pytest

from bptt.app.navigation import URL_PATHS as PAGES  # noqa: F401  (page title -> URL path)
from tests.support.browser import (  # noqa: F401
    ALLOWED_404,
    CHROMIUM_ARGS,
    IDLE_JS,
    OFFLINE,
    ROOT,
    RUN_COUNTER_JS,
    VIEWER_ROOT_JS,
    StreamlitServer,
    browser_launch_kwargs,
    free_port,
    is_idle,
    runs,
    wait_for_app,
    wait_for_run_after,
    wait_until,
)


class Console:
    """Console errors and page errors of one page, from before its first navigation; a "Failed to load resource" line
    is the app's unless its resource is one of Streamlit's probes or an offline font (told apart by its URL)."""

    def __init__(self, page):
        self.lines: list[str] = []
        self.failed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.lines.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))

    def _console(self, m) -> None:
        if m.type != "error":
            return
        url = ((m.location or {}).get("url") or "").split("?")[0]
        if m.text.startswith("Failed to load resource") and (ALLOWED_404.search(url) or OFFLINE.match(url)):
            return
        self.lines.append(f"console: {m.text} ({url})" if url else f"console: {m.text}")

    def errors(self) -> list[str]:
        return list(self.lines)


def start_server() -> StreamlitServer:
    """A started StreamlitServer (the environment as it is now); fails the test, with the app's output, if it won't."""
    srv = StreamlitServer()
    try:
        return srv.start()
    except RuntimeError as err:
        pytest.fail(f"could not start the app: {err}", pytrace=False)


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


# ----------------------------------------------------------------------------------------------------------------------
# Plotly charts

def wait_for_charts(page, n_min: int = 1, timeout: float = 30.0) -> None:
    """Wait until at least n_min Plotly charts have drawn (their data is on the element)."""
    wait_until(lambda: page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter((e) => e.data && e._fullLayout).length")
        >= n_min, timeout, what=f"{n_min} plotly charts to draw")


# ----------------------------------------------------------------------------------------------------------------------
# the step viewer on a page

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
