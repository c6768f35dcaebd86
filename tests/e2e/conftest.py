"""Fixtures for the browser tests: one real `streamlit run` server per session, headless Chromium, fresh contexts."""
from __future__ import annotations

import pytest

from .helpers import RUN_COUNTER_JS, Console, browser_launch_kwargs, start_server

pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import sync_playwright  # noqa: E402

VIEWPORT = {"width": 1400, "height": 1000}


# ----------------------------------------------------------------------------------------------------------------------
# server and browser (session)

@pytest.fixture(scope="session")
def server():
    """A streamlit server on a free port for the whole session; its output goes into failure reports."""
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium (else Playwright's own); skips, saying why, only when neither is installed."""
    kwargs = browser_launch_kwargs()
    if kwargs is None:
        pytest.skip("no browser: neither `chromium` on the PATH nor a Playwright-installed Chromium "
                    "(apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(**kwargs)
        yield b
        b.close()


# ----------------------------------------------------------------------------------------------------------------------
# per test: a fresh context (own cookies, own Streamlit session)

@pytest.fixture
def new_page(browser, server, request):
    """A factory of pages, each in its own browser context, with the run counter installed; closed after the test."""
    contexts = []

    def make(path: str = "", width: int | None = None):
        ctx = browser.new_context(viewport=dict(VIEWPORT, width=width) if width else VIEWPORT, accept_downloads=True)
        ctx.set_default_timeout(30_000)
        ctx.add_init_script(RUN_COUNTER_JS)
        contexts.append(ctx)
        page = ctx.new_page()
        page.console = Console(page)               # listening before the first navigation: no line can slip by
        page.goto(f"{server.url}/{path.lstrip('/')}")
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's output to a failing browser test's report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "server" in item.fixturenames:
        srv = item.funcargs.get("server")
        if srv is not None:
            rep.sections.append(("streamlit server output (tail)", srv.output()))
