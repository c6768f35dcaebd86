"""Every page loads in a real browser; the URL's configuration reaches the heatmaps; hostile URLs only warn."""
from __future__ import annotations

import numpy as np
import pytest

from .helpers import PAGES, exceptions, heatmaps_by_key, step_of, wait_for_app, wait_for_charts, warnings

# page -> (a selector that exists once the page has drawn, the fewest Plotly charts it draws)
EXPECT = {
    "Home": ("[data-testid='stMain'] h1", 1),
    "Forward pass": (".st-key-step_next", 1),
    "Backward pass": (".st-key-step_next", 8),          # strip, dh_out, six triplets
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
    assert page.locator("[data-testid='stMain']").inner_text().strip(), f"{name}: the page is empty"


def test_every_page_in_the_navigation_is_tested(new_page):
    page = new_page("")
    wait_for_app(page, expect="[data-testid='stSidebarNav'] a")
    names = [t.strip() for t in page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()]
    names = [n.split("\n")[-1].strip() for n in names]               # drop the icon's ligature text
    assert sorted(names) == sorted(PAGES), f"pages in the sidebar {names} != pages under test {list(PAGES)}"


# ----------------------------------------------------------------------------------------------------------------------
# the URL

def test_url_sizes_reach_the_heatmaps(new_page):
    page = new_page("Backward_pass?hidden_size=7&batch_size=2")
    wait_for_app(page, expect=".st-key-bw_dh_total .js-plotly-plot")
    wait_for_charts(page, 8)
    maps, refs = heatmaps_by_key(page), heatmaps_by_key(page, 1)               # NumPy panels; reference panels
    assert exceptions(page) == [] and warnings(page) == []
    for key in ("bw_dh_out", "bw_dh_total", "bw_d_pre", "bw_dh_prev"):
        assert maps[key].shape == (2, 7), key                                  # (B, H)
    assert refs["bw_dh_total"].shape == (2, 7)
    assert maps["bw_dx"].shape == (2, 4)                                       # (B, I) at the default I = 4
    assert maps["bw_w"].shape in {(7, 7), (7, 4), (1, 7)}                      # a weight gradient of H = 7
    np.testing.assert_allclose(maps["bw_dh_total"], refs["bw_dh_total"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("query, param", [
    ("hidden_size=1e9", "hidden_size"),
    ("seq_len=abc", "seq_len"),
    ("step=-4", "step"),
])
def test_hostile_url_warns_and_falls_back(new_page, query, param):
    page = new_page(f"Backward_pass?{query}")
    wait_for_app(page, expect=".st-key-bw_dh_total .js-plotly-plot")
    wait_for_charts(page, 8)
    assert exceptions(page) == []
    notes = warnings(page)
    assert any(param in n for n in notes), f"no warning naming {param!r}: {notes}"
    maps = heatmaps_by_key(page)
    assert maps["bw_dh_total"].shape == (3, 5)                              # the defaults: B = 3, H = 5
    assert step_of(page) == (1, 3)
