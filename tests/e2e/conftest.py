"""Fixtures for the browser tests: one real `streamlit run` server per session, headless Chromium, fresh contexts."""
from __future__ import annotations

import pytest

from .helpers import RUN_COUNTER_JS, Console, Viewer, browser_launch_kwargs, exceptions, start_server, wait_for_app

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


@pytest.fixture
def open_viewer(new_page):
    """Open a page with the viewer at a query string; every page opened is checked for errors at teardown."""
    opened = []

    def make(path: str = "Backward_pass", query: str = "", timeout: float = 90, width: int | None = None):
        page = new_page(path + (f"?{query}" if query else ""), width=width)
        console = page.console
        opened.append((page, console))
        key = "stepper_backward" if path.startswith("Backward") else "stepper_forward"
        page.wait_for_selector(f".st-key-{key} [data-testid=bptt-stepper][data-step]", state="attached",
                               timeout=timeout * 1000)
        wait_for_app(page, timeout=timeout)
        return Viewer(page, key, console)

    yield make
    for page, console in opened:
        assert console.errors() == [], (console.errors(), console.failed)
        assert page.get_by_text("BidiComponent Error").count() == 0
        assert exceptions(page) == []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's output to a failing browser test's report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "server" in item.fixturenames:
        srv = item.funcargs.get("server")
        if srv is not None:
            rep.sections.append(("streamlit server output (tail)", srv.output()))
