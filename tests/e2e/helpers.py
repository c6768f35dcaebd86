"""Browser-test helpers: the app's elements, exceptions, Plotly charts (server and browser: tests/support/)."""
from __future__ import annotations

import re

import pytest

from bptt.app.navigation import URL_PATHS as PAGES  # noqa: F401  (page title -> URL path)
from tests.support.browser import (  # noqa: F401
    CHROMIUM_ARGS,
    IDLE_JS,
    ROOT,
    RUN_COUNTER_JS,
    StreamlitServer,
    browser_launch_kwargs,
    free_port,
    is_idle,
    runs,
    wait_for_app,
    wait_for_run_after,
    wait_until,
)

# Console lines that are not the app's: Streamlit's own probes of /<page>/_stcore/... on a deep link (404), and Google
# font icons this offline machine cannot resolve.
ALLOWED_404 = re.compile(r"/_stcore/(host-config|health)$")
OFFLINE = re.compile(r"^https://fonts\.gstatic\.com/")


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
