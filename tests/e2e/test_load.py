"""Under load: a session waiting for a computation slot says so, then every page finishes (issue 10)."""
from __future__ import annotations

import pytest

from .helpers import Console, exceptions, is_idle, main_text, start_server, wait_for_app, wait_until

LARGE = "input_size=128&hidden_size=128&seq_len=64&batch_size=64"   # seconds of work each, on any machine


@pytest.fixture
def one_slot_server(monkeypatch):
    """A server of its own that runs one heavy computation at a time (BPTT_MAX_JOBS=1)."""
    monkeypatch.setenv("BPTT_MAX_JOBS", "1")
    srv = start_server()
    yield srv
    srv.stop()


def test_a_queued_session_says_so_and_shows_the_stages(browser, one_slot_server):
    def open_session(seed: int):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.console = Console(page)
        page.goto(f"{one_slot_server.url}/Backward_pass?{LARGE}&seed={seed}")
        return page

    # the first runs and names its stage (the references take longest); only then does the second session open (a
    # goto returns before the session's script has started: opened back to back, either could take the only slot)
    first = open_session(101)
    wait_until(lambda: "Running the engine and PyTorch for this configuration — references:" in main_text(first), 120,
               interval=0.1, what="the first page to show its stage")
    second = open_session(102)
    pages = [first, second]
    wait_until(lambda: "Queued behind another computation" in main_text(second), 120, interval=0.1,
               what="the second page to say it is queued")
    for page in pages:
        wait_until(lambda page=page: is_idle(page) and "Queued behind" not in main_text(page)
                   and "Running the engine" not in main_text(page), 600, interval=0.2, what="the page to finish")
        wait_for_app(page, expect='[data-testid="stMain"]', timeout=120)
    for page in pages:
        assert not exceptions(page)
        assert "Queued behind" not in main_text(page) and "Running the engine" not in main_text(page)
        assert page.console.errors() == []
    for page in pages:
        page.context.close()

