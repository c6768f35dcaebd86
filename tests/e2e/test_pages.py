"""Every page loads in a real browser without a console error; the URL's configuration reaches the heatmaps;
hostile URLs only warn."""
from __future__ import annotations

import pytest

from .helpers import PAGES, exceptions, wait_for_app, wait_for_charts, warnings

VIEWER = "[data-testid=bptt-stepper][data-step]"      # the step viewer, once it has drawn a step

# page -> (a selector that exists once the page has drawn, the fewest Plotly charts it draws)
EXPECT = {
    "Home": ("[data-testid='stMain'] h1", 1),
    "Forward pass": (VIEWER, 0),                         # the step viewer draws on canvases, not with Plotly
    "Backward pass": (VIEWER, 0),
    "Gradient flow": ("[data-testid='stMain'] h1", 1),
    "Verification": ("[data-testid='stDataFrame']", 0),
    "Derivation": ("[data-testid='stMain'] .katex", 0),
    "Check your code": ("[data-testid='stFileUploader']", 0),
}


# ----------------------------------------------------------------------------------------------------------------------
# every page

@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_without_exception(new_page, name):
    page = new_page(PAGES[name])
    selector, n_charts = EXPECT[name]
    wait_for_app(page, expect=selector)
    if n_charts:
        wait_for_charts(page, n_charts)
    assert exceptions(page) == []
    content = page.locator(VIEWER) if selector == VIEWER else page.locator("[data-testid='stMain']")   # shadow DOM
    assert content.inner_text().strip(), f"{name}: the page is empty"
    assert page.console.errors() == [], f"{name}: console errors"


def test_every_page_in_the_navigation_is_tested(new_page):
    page = new_page("")
    wait_for_app(page, expect="[data-testid='stSidebarNav'] a")
    names = [t.strip() for t in page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()]
    names = [n.split("\n")[-1].strip() for n in names]               # drop the icon's ligature text
    assert sorted(names) == sorted(PAGES), f"pages in the sidebar {names} != pages under test {list(PAGES)}"


# ----------------------------------------------------------------------------------------------------------------------
# the URL

def shapes(page) -> dict[str, tuple[int, int]]:
    """data-quantity -> (data-rows, data-cols) of every heatmap in the step viewer."""
    out = {}
    for el in page.locator("[data-testid=bptt-stepper] [data-quantity]").all():
        rows, cols = int(el.get_attribute("data-rows")), int(el.get_attribute("data-cols"))
        out[el.get_attribute("data-quantity")] = (rows, cols)
    return out


def test_url_sizes_reach_the_heatmaps(new_page):
    page = new_page("Backward_pass?hidden_size=7&batch_size=2")
    wait_for_app(page, expect=VIEWER)
    assert exceptions(page) == [] and warnings(page) == []
    maps = shapes(page)
    for q in ("dh_out", "dh_total", "ref_dh_total", "d_pre", "dh_prev"):
        assert maps[q] == (2, 7), q                                            # (B, H)
    assert maps["dx"] == (2, 4)                                                # (B, I) at the default I = 4
    assert maps["dW_hh_acc"] == (7, 7) and maps["dW_ih_acc"] == (7, 4) and maps["db_ih_acc"] == (1, 7)


@pytest.mark.parametrize("query, param", [
    ("hidden_size=1e9", "hidden_size"),
    ("seq_len=abc", "seq_len"),
    ("step=-4", "step"),
])
def test_hostile_url_warns_and_falls_back(new_page, query, param):
    page = new_page(f"Backward_pass?{query}")
    wait_for_app(page, expect=VIEWER)
    assert exceptions(page) == []
    notes = warnings(page)
    assert any(param in n for n in notes), f"no warning naming {param!r}: {notes}"
    assert shapes(page)["dh_total"] == (3, 5)                                 # the defaults: B = 3, H = 5
    root = page.locator("[data-testid=bptt-stepper]")
    assert (root.get_attribute("data-step"), root.get_attribute("data-steps")) == ("1", "3")


# ----------------------------------------------------------------------------------------------------------------------
# every chart draws with its own colours

# the colour scale of every heatmap as the browser drew it: [first stop, last stop] of each
SCALES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap((e) => e._fullData
  .filter((t) => t.type === 'heatmap').map((t) => [t.colorscale[0][1], t.colorscale[t.colorscale.length - 1][1]]))"""


def test_the_saturation_map_draws_with_its_own_colour_scale(new_page):
    from bptt.figures import colour_scale

    page = new_page(f"{PAGES['Gradient flow']}?seq_len=6")
    wait_for_app(page, expect="[data-testid='stMain'] h1")
    wait_for_charts(page, 5)
    magma = colour_scale("Magma")
    scales = page.evaluate(SCALES_JS)
    assert [magma[0][1], magma[-1][1]] in scales, scales      # dark = blocked: not #ffabab, not #ab63fa
    assert all(s[0].lower() not in ("#ffabab", "#ab63fa") for s in scales)
    assert page.console.errors() == []
