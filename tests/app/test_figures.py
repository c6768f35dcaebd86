"""The app's figure builders: fixed symmetric colour ranges, non-finite cells, the unrolled strip."""
from __future__ import annotations

import json

import numpy as np
import plotly.io as pio

from bptt import figures


def _json(fig) -> dict:
    return json.loads(pio.to_json(fig, validate=False))


def test_heatmap_is_centred_at_zero_with_the_given_range():
    z = np.random.default_rng(0).normal(size=(3, 5))
    tr = figures.heatmap(z, "dh_total_1", 2.5).data[0]
    assert (tr.zmin, tr.zmax, tr.zmid) == (-2.5, 2.5, 0.0)
    np.testing.assert_array_equal(np.asarray(tr.z), z)
    assert tr.text is not None                                    # 15 cells: values are printed


def test_large_heatmaps_print_no_cell_values():
    tr = figures.heatmap(np.ones((16, 128)), "d_pre_1", 1.0).data[0]
    assert tr.text is None


def test_colour_range_is_the_largest_finite_magnitude():
    a = np.array([[1.0, -7.0], [np.inf, np.nan]])
    b = np.array([3.0, 6.5])
    assert figures.colour_range(a, b) == 7.0
    assert figures.colour_range(np.zeros(3)) == 1.0


def test_non_finite_cells_are_crossed_and_the_figure_serialises():
    z = np.array([[1.0, np.inf], [np.nan, -2.0]])
    fig = figures.heatmap(z, "h_3", figures.colour_range(z))
    _json(fig)
    marks = fig.data[1]
    assert sorted(zip(np.asarray(marks.x).tolist(), np.asarray(marks.y).tolist())) == [(0, 1), (1, 0)]


def test_strip_marks_every_step_and_the_cuts():
    fig = figures.unrolled_strip(6, current=2, grad_norms=np.arange(6.0), cuts=[2, 4])
    spec = _json(fig)
    assert len(spec["layout"]["annotations"]) == 2                # two ✂ marks
    hovers = [h for tr in spec["data"] for h in (tr.get("hovertext") or []) if "gradient sent" in str(h)]
    assert len(hovers) == 6 - 2                                   # one red arrow per step, minus the cut ones
