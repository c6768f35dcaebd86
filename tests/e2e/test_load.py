"""Under load: a session waiting for a computation slot says so, then every page finishes (issue 10)."""
from __future__ import annotations

import pytest

from .helpers import Console, exceptions, is_idle, main_text, start_server, wait_for_app, wait_until

# seconds of work each, on any machine (3.4 s on a quiet 2-core one): long enough for the progress line (after 1 s)
LARGE = "cell=lstm&input_size=64&hidden_size=128&seq_len=200&batch_size=64"

# every text the page's main area ever showed that a test waits for, recorded in the page as it appears (a line that
# shows for a second is seen even when Python polls past it)
SEEN_JS = """() => {
  window.__seen = {queued: false, stage: false};
  new MutationObserver(() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const text = main ? main.textContent : "";           // not innerText: no layout on every mutation
    if (text.includes("Queued behind another computation")) window.__seen.queued = true;
    if (text.includes("Running the engine and PyTorch for this configuration")) window.__seen.stage = true;
  }).observe(document, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture
def one_slot_server(monkeypatch):
    """A server of its own that runs one heavy computation at a time (BPTT_MAX_JOBS=1), with memory enough for both
    (this is about the slot: under the default budget the second would also wait for the first's memory to go)."""
    monkeypatch.setenv("BPTT_MAX_JOBS", "1")
    monkeypatch.setenv("BPTT_MEMORY_MB", "4000")
    srv = start_server()
    yield srv
    srv.stop()


def test_a_queued_session_says_so_and_shows_the_stages(browser, one_slot_server):
    def open_session(seed: int):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.add_init_script(f"({SEEN_JS})()")
        page = ctx.new_page()
        page.console = Console(page)
        page.goto(f"{one_slot_server.url}/Forward_pass?{LARGE}&seed={seed}")   # small payload: the analysis is the work
        return page

    # two sessions at once with one slot: whichever starts second waits for the first's seconds of work and says it
    # is queued, and the one running names its stage; the pages record what they showed, so no poll can miss it
    pages = [open_session(101), open_session(102)]
    for page in pages:
        wait_until(lambda page=page: is_idle(page) and "Queued behind" not in main_text(page)
                   and "Running the engine" not in main_text(page), 600, interval=0.2, what="the page to finish")
        wait_for_app(page, expect='[data-testid="stMain"]', timeout=120)
    seen = [page.evaluate("window.__seen") for page in pages]
    assert sum(s["queued"] for s in seen) >= 1, seen                   # one waited for the slot, and said so
    assert all(s["stage"] for s in seen), seen                         # and each named what it ran when it ran
    for page in pages:
        assert not exceptions(page)
        assert "Queued behind" not in main_text(page) and "Running the engine" not in main_text(page)
        assert page.console.errors() == []
    for page in pages:
        page.context.close()

