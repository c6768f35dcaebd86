"""Browser-test helpers: the app's elements, exceptions, Plotly charts (server and browser: bptt/browser.py)."""
from __future__ import annotations

from bptt.app.navigation import URL_PATHS as PAGES  # noqa: F401  (page title -> URL path)
from bptt.browser import (  # noqa: F401
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
