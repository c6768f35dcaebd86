"""The app's figure builders: fixed symmetric colour ranges, log-diff floors, non-finite cells, triplets."""
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
    dz = figures.log_diff(z, np.array([[1.0, np.inf], [0.0, -2.0]]))
    assert dz[0, 0] == np.log10(figures.DIFF_FLOOR)               # exact agreement draws at the floor
    assert dz[0, 1] == np.log10(figures.DIFF_FLOOR)               # the same inf on both sides agrees
    assert np.isnan(dz[1, 0])                                     # nan against a number is a real mismatch


def test_log_diff_is_log10_of_the_difference_in_float64():
    a = np.array([[1.0, 2.0]])
    b = a + np.array([[1e-3, 4e-16]])
    dz = figures.log_diff(a, b)
    assert dz.dtype == np.float64
    np.testing.assert_array_equal(dz, np.log10(np.abs(a - b)))


def test_strip_marks_every_step_and_the_cuts():
    fig = figures.unrolled_strip(6, current=2, grad_norms=np.arange(6.0), cuts=[2, 4])
    spec = _json(fig)
    assert len(spec["layout"]["annotations"]) == 2                # two ✂ marks
    hovers = [h for tr in spec["data"] for h in (tr.get("hovertext") or []) if "gradient sent" in str(h)]
    assert len(hovers) == 6 - 2                                   # one red arrow per step, minus the cut ones


def test_triplet_is_one_figure_of_impl_ref_and_their_log_difference():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 5))
    b = a + rng.normal(size=(3, 5)) * 1e-9
    a[1, 2] = np.inf                                              # a mismatch of inf against a number is crossed out
    fig = figures.triplet_figure(a, b, "dh_total_2", 2.5, "BH", ref_name="torch.nn.RNN")
    spec = _json(fig)
    assert [tr.type for tr in fig.data[:3]] == ["heatmap"] * 3
    impl, ref, diff = fig.data[:3]
    np.testing.assert_array_equal(np.asarray(impl.z, dtype=np.float64), np.where(np.isfinite(a), a, np.nan))
    np.testing.assert_array_equal(np.asarray(ref.z, dtype=np.float64), b)
    for tr in (impl, ref):                                        # both signed panels on one scale, one colour bar
        assert (tr.zmin, tr.zmax, tr.zmid, tr.colorscale) == (-2.5, 2.5, 0.0, ref.colorscale)
        assert tr.text is not None                                # 15 cells: values are printed
    assert impl.showscale is False and ref.showscale is not False and diff.showscale is not False
    np.testing.assert_array_equal(np.asarray(diff.z), figures.log_diff(a, b).astype(np.float32))   # the right panel
    assert (diff.zmin, diff.zmax, diff.colorbar.title.text) == (np.log10(figures.DIFF_FLOOR), 0.0, "log10 |diff|")
    assert [(tr.xaxis, tr.yaxis) for tr in fig.data[:3]] == [("x", "y"), ("x2", "y2"), ("x3", "y3")]
    doms = [spec["layout"][f"xaxis{s}"]["domain"] for s in ("", "2", "3")]
    assert all(d0[1] < d1[0] for d0, d1 in zip(doms, doms[1:]))  # side by side, no overlap
    assert [an["text"] for an in spec["layout"]["annotations"]] == [
        "NumPy engine · dh_total_2", "torch.nn.RNN · dh_total_2", "log10 |NumPy − PyTorch|"]
    assert spec["layout"]["yaxis"]["title"]["text"] == "batch b"
    assert {spec["layout"][f"xaxis{s}"]["title"]["text"] for s in ("", "2", "3")} == {"hidden unit j"}
    crosses = {(tr.xaxis, (int(tr.x[0]), int(tr.y[0]))) for tr in fig.data[3:]}
    assert crosses == {("x", (2, 1)), ("x3", (2, 1))}             # on the NumPy panel and on the difference


def test_large_triplets_print_no_cell_values():
    z = np.ones((128, 128))
    fig = figures.triplet_figure(z, z, "dW_hh", 1.0, "HH")
    assert all(tr.text is None for tr in fig.data[:3])
    _json(fig)


# ----------------------------------------------------------------------------------------------------------------------
# every chart draws with its own colours (Streamlit's chart theme would replace the colour scales)

def test_every_plotly_chart_call_passes_theme_none():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    calls = []
    for path in [*root.glob("bptt/**/*.py"), *root.glob("app_pages/*.py"), root / "streamlit_app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "plotly_chart":
                theme = [k.value for k in node.keywords if k.arg == "theme"]
                calls.append((f"{path.relative_to(root)}:{node.lineno}",
                              len(theme) == 1 and isinstance(theme[0], ast.Constant) and theme[0].value is None))
    assert calls, "no st.plotly_chart call found"
    assert [where for where, ok in calls if not ok] == []


def test_every_chart_of_every_page_is_drawn_with_theme_none():
    from apptools import app, no_exception

    from bptt.app.navigation import SCRIPTS

    at = app(None, seq_len="6")
    seen = 0
    for page in [None, *SCRIPTS.values()]:
        if page:
            at.switch_page(page)
            at.run()
        no_exception(at)
        for el in at.get("plotly_chart"):
            assert el.proto.theme == "", (page, el.proto.id)
            seen += 1
    assert seen >= 5                                             # the Gradient flow page alone draws several


def test_no_pages_directory_beside_the_entry_script():
    """A pages/ directory beside streamlit_app.py switches on Streamlit's automatic page discovery until the script has
    run once: the first deep link after a server start then showed "streamlit app" and no icons in the menu."""
    from pathlib import Path

    from bptt.app.navigation import SCRIPTS

    root = Path(__file__).resolve().parents[2]
    assert not (root / "pages").exists()
    assert all((root / s).is_file() and not s.startswith("pages/") for s in SCRIPTS.values())


def test_time_axes_counting_from_1_show_no_0_tick():
    rng = np.random.default_rng(1)
    T, H = 9, 4
    figs = [figures.grad_norm_figure(rng.random(T) + 0.1, rng.random((T, 2)) + 0.1),
            figures.sweep_figure([0.5, 1.0, 2.0], rng.random((3, T)) + 0.1, 1.0),
            figures.saturation_figure(rng.random((T, H)), rng.random(T), "tanh"),
            figures.spectrum_figure(rng.random(H) + 0.5, 1.2)]
    for fig in figs:
        axes = [fig.layout[k] for k in fig.layout if k.startswith("xaxis")]
        for ax in axes:
            lo, hi = ax.range
            assert 0 < lo < 1 and hi > H, (lo, hi)
            first = ax.tick0 + np.ceil((lo - ax.tick0) / ax.dtick) * ax.dtick       # the first tick drawn
            assert first >= 1


def test_no_figure_carries_a_colour_streamlit_replaces():
    """Streamlit's frontend replaces #000001 … #000040 in a chart's JSON (its theme's placeholders), theme or not."""
    import re

    rng = np.random.default_rng(2)
    T, H = 6, 4
    figs = [figures.saturation_figure(rng.random((T, H)), rng.random(T), "tanh"),
            figures.triplet_figure(rng.normal(size=(3, H)), rng.normal(size=(3, H)), "dh_total", 2.0),
            figures.heatmap(rng.normal(size=(3, H)), "h_1", 1.0),
            figures.grad_norm_figure(rng.random(T) + 0.1), figures.spectrum_figure(rng.random(H), 0.9),
            figures.sweep_figure([0.5, 1.0], rng.random((2, T)) + 0.1, 1.0), figures.unrolled_strip(T)]
    for fig in figs:
        # the traces (the template, under streamlit's default, holds the placeholders on purpose: its own colours)
        text = json.dumps(_json(fig)["data"]).lower()
        assert not re.search(r"#0000(0[1-9]|[1-3][0-9]|40)\b", text), fig.layout.title.text
    assert figures.colour_scale("Magma")[0][1] == "#010004"                   # dark, as Magma is


def test_a_log_x_axis_has_its_range_in_log_units():
    # the truncation gap of every cell against K: a log K axis whose range covers the K's (log10), not 10^49
    ks = [1, 2, 5, 10, 25, 49]
    fig = figures.cells_gap_figure(ks, {"rnn": np.linspace(1.0, 1e-3, 6), "lstm": np.linspace(0.5, 1e-4, 6)})
    ax = fig.layout.xaxis
    assert ax.type == "log"
    lo, hi = ax.range
    assert lo <= np.log10(min(ks)) < np.log10(max(ks)) <= hi and hi - lo < np.log10(max(ks)) + 0.5
