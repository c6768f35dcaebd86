"""The step viewer's payload: decoded, every value checked against the Analysis arrays; the budget and the chunks."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plotly.colors import get_colorscale, sample_colorscale

from bptt import stepview as sv
from bptt.analysis import analyze
from bptt.config import RNNConfig
from bptt.export import trace_arrays

CONFIGS = [
    RNNConfig(),
    RNNConfig(seq_len=6, hidden_size=4, input_size=3, batch_size=2, nonlinearity="relu", truncate=2, upstream="last"),
    RNNConfig(seq_len=5, bug="carry-transposed", hh_scale=1.7),
]


@pytest.fixture(scope="module", params=range(len(CONFIGS)), ids=lambda i: f"cfg{i}")
def an(request):
    return analyze(CONFIGS[request.param])


def expected(an, quantity: str) -> tuple[np.ndarray, str]:
    """(the float64 (T, rows, cols) series a panel must show, "signed" / "diff") from the Analysis itself."""
    e, u, p = an.engine, an.unrolled, an.problem
    mat = lambda a: a[:, None, :] if a.ndim == 2 else a  # noqa: E731
    if quantity.startswith("log10_diff_"):
        q = quantity[len("log10_diff_"):]
        a, b = (e.h, an.torch_rnn.h) if q == "h" else (getattr(e, q), getattr(u, q))
        with np.errstate(all="ignore"):
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            d = np.where(np.isfinite(d), d, np.where(same, 0.0, np.nan))
            return mat(np.log10(np.maximum(d, 1e-18))), "diff"
    if quantity == "h_prev":
        return np.concatenate([p.h0[None], e.h[:-1]]), "signed"
    if quantity == "torch_h":
        return an.torch_rnn.h, "signed"
    if quantity.startswith("ref_"):
        return mat(getattr(u, quantity[4:])), "signed"
    if quantity in ("x", "dh_out"):
        return getattr(p, quantity), "signed"
    return mat(getattr(e, quantity)), "signed"


# ----------------------------------------------------------------------------------------------------------------------
# every value

@pytest.mark.parametrize("page", sv.PAGES)
def test_every_value_of_the_payload_is_the_analysis_value_rounded_once(an, page):
    T = an.config.seq_len
    header, values = sv.decode_payload(sv.build_payload(an, page, 0, T, start=1))
    assert (header["T"], header["lo"], header["hi"], header["page"]) == (T, 0, T, page)
    assert values.dtype == np.float32 and values.size == header["floats"]
    used = np.zeros(values.size, dtype=bool)
    for g in header["groups"]:
        for p in g["panels"]:
            want, kind = expected(an, p["quantity"])
            assert p["kind"] == kind, p["quantity"]
            for t in range(T):
                got = sv.panel_values(header, values, g["id"], p["quantity"], t)
                assert got.shape == (p["rows"], p["cols"]) == want[t].shape, p["quantity"]
                # float32 rounding of the float64 value (for diffs: of log10 |diff| computed in float64), exactly
                np.testing.assert_array_equal(got, want[t].astype(np.float32), err_msg=f"{p['quantity']} t={t}")
                at = header["steps"][t]["at"][p["index"]]
                used[at:at + got.size] = True
    assert used.all()                                           # no float is sent that no panel shows


def test_log_diff_is_computed_in_float64_before_rounding():
    a = np.array([[1.0, 2.0, 0.0]])
    b = a + np.array([[1e-16 * 8, 0.0, 3e-17]])              # differences float32 cannot hold
    d = sv.log_diff(a, b).astype(np.float32)
    np.testing.assert_array_equal(d, np.log10(np.maximum(np.abs(a - b), 1e-18)).astype(np.float32))
    assert d[0, 1] == np.float32(-18.0)                         # exact agreement sits at the floor
    assert -17 < d[0, 2] < -16                                  # 3e-17: visible, not rounded away
    inf = np.array([np.inf, np.nan, np.inf])
    d = sv.log_diff(inf, np.array([np.inf, np.nan, 1.0]))
    assert d[0, 0] == d[0, 1] == -18.0 and np.isnan(d[0, 2])    # the same inf / nan agrees; inf against 1 does not


def test_colour_ranges_are_fixed_over_all_steps_and_symmetric(an):
    header, _ = sv.decode_payload(sv.build_payload(an, "backward", 0, an.config.seq_len, start=1))
    for g in header["groups"]:
        for p in g["panels"]:
            if p["kind"] == "diff":
                assert (p["zmin"], p["zmax"]) == sv.DIFF_RANGE
                continue
            want, _ = expected(an, p["quantity"])
            assert p["zmax"] == -p["zmin"] > 0
            fin = np.abs(want[np.isfinite(want)])
            assert p["zmax"] >= fin.max() if fin.size else True   # the range holds every step's values
    tri = {p["quantity"]: p["zmax"] for g in header["groups"] for p in g["panels"]}
    assert tri["dh_total"] == tri["ref_dh_total"]                # NumPy and PyTorch share one range


def test_weight_ranges_grow_with_the_steps_taken_and_are_shared_where_compared():
    an = analyze(RNNConfig(seq_len=40))
    T, e, u = 40, an.engine, an.unrolled
    header, _ = sv.decode_payload(sv.build_payload(an, "backward", 0, T, start=1))
    for w in sv.WEIGHTS:
        g = next(g for g in header["groups"] if g["id"] == w)
        idx = {p["quantity"]: str(p["index"]) for p in g["panels"]}
        step, acc, ref = (np.abs(getattr(e, f"{w}_step")), np.abs(getattr(e, f"{w}_acc")),
                          np.abs(getattr(u, f"{w}_acc")))
        mag = [max(step[t].max(), acc[t].max(), ref[t].max()) for t in range(T)]
        zs = []
        for t in range(T):
            z = header["steps"][t]["z"]
            shared = {z[idx[q]] for q in (f"{w}_step", f"{w}_acc", f"ref_{w}_acc")}
            assert len(shared) == 1, (w, t)                 # contribution, NumPy sum and PyTorch sum: one scale
            assert idx[f"log10_diff_{w}_acc"] not in z
            zs.append(shared.pop())
            assert zs[-1] == pytest.approx(max(mag[t:]), rel=1e-12)   # the largest met in steps T-1 … t
        # the first backward step (t = T-1): its own largest value, not the whole pass's
        assert zs[T - 1] == pytest.approx(mag[T - 1]) and zs[T - 1] < max(mag)
        assert all(a >= b for a, b in zip(zs, zs[1:]))     # grows as the pass goes from t = T-1 to 0
        # at t = T the contribution is the sum: the same numbers on the same scale
        np.testing.assert_array_equal(getattr(e, f"{w}_step")[T - 1], getattr(e, f"{w}_acc")[T - 1])
    # the default weight tab's first step is not a near-white wash: its values fill its range
    g = next(g for g in header["groups"] if g["id"] == "dW_hh")
    acc = next(p for p in g["panels"] if p["quantity"] == "dW_hh_acc")
    assert header["steps"][T - 1]["z"][str(acc["index"])] < 0.2 * acc["zmax"]
    # the other quantities keep one range over all steps; the forward page has no growing range
    fwd, _ = sv.decode_payload(sv.build_payload(an, "forward", 0, T, start=1))
    assert all("z" not in st for st in fwd["steps"])


def test_panels_are_named_by_the_export():
    an = analyze(RNNConfig())
    keys = set(trace_arrays(an))
    for page in sv.PAGES:
        header, _ = sv.decode_payload(sv.build_payload(an, page, 0, 3, start=1))
        for g in header["groups"]:
            for p in g["panels"]:
                q = p["quantity"]
                base = q[len("log10_diff_"):] if q.startswith("log10_diff_") else q
                assert base in keys or base in ("h_prev",) or base.endswith("_step"), q


def test_colour_tables_are_plotlys_scales():
    for name in (sv.DIVERGING, sv.SEQUENTIAL):
        table = np.array(sv.colour_table(name)).reshape(256, 3)
        for i in (0, 100, 255):
            rgb = sample_colorscale(get_colorscale(name), [i / 255])[0]
            want = [round(float(c)) for c in rgb[rgb.index("(") + 1:-1].split(",")]
            assert table[i].tolist() == want


# ----------------------------------------------------------------------------------------------------------------------
# the words of each step

def test_step_texts_lead_with_t_and_map_steps_to_time():
    cfg = RNNConfig(seq_len=4)
    an = analyze(cfg)
    header, _ = sv.decode_payload(sv.build_payload(an, "backward", 0, 4, start=1))
    for i, st_ in enumerate(header["steps"]):
        s = i + 1                                               # t (1-based) of the i-th step in the payload
        assert st_["t"] == s and st_["k"] == 4 - s + 1           # backward step 1 is t = T
        assert st_["title"].startswith(f"t = {s} · backward step {5 - s} of 4")
        assert f"t = {s - 1}" in st_["caption"]                 # the 0-based time of the downloads, said once
        assert f"<sub>{s}</sub>" in st_["eq"][0]
    fw, _ = sv.decode_payload(sv.build_payload(an, "forward", 0, 4, start=1))
    assert [s["k"] for s in fw["steps"]] == [1, 2, 3, 4]
    assert fw["steps"][2]["title"].startswith("t = 3 · forward step 3 of 4")


def test_a_bug_shows_in_the_verdict_of_the_steps_it_breaks():
    an = analyze(RNNConfig(seq_len=4, bug="forget-carry"))
    header, _ = sv.decode_payload(sv.build_payload(an, "backward", 0, 4, start=1))
    fd = an.first_divergence
    bad = header["steps"][fd["t"]]
    assert not bad["ok"] and fd["quantity"] in bad["verdict"]
    assert header["steps"][3]["ok"]                             # t = T: nothing is carried in yet
    json.dumps(header, allow_nan=False)


def test_unknown_page_and_bad_step_range_are_refused_with_a_message():
    an = analyze(RNNConfig())
    with pytest.raises(ValueError, match="page must be one of"):
        sv.groups(an, "sideways")
    with pytest.raises(ValueError, match="lo < hi"):
        sv.build_payload(an, "backward", 2, 2, start=1)


# ----------------------------------------------------------------------------------------------------------------------
# budget and chunks

@settings(max_examples=300, deadline=None)
@given(T=st.integers(1, 200), per=st.integers(1, 5_000_000), data=st.data())
def test_chunks_hold_t_fit_the_budget_and_tile_the_pass(T, per, data):
    budget = data.draw(st.integers(1, 40_000_000))
    backward = data.draw(st.booleans())
    n = sv.chunk_steps(T, per, budget)
    chunks = [sv.chunk(T, per, t, budget, backward) for t in range(T)]
    for t, (lo, hi) in enumerate(chunks):
        assert 0 <= lo <= t < hi <= T
        assert hi - lo <= n
        assert (hi - lo) * per <= max(budget, per)                # under the budget (one step if even that is over)
    if T * per <= budget:
        assert set(chunks) == {(0, T)}                            # everything fits: one payload
    else:
        assert (hi - lo) * per <= max(budget // 4, per)           # a quarter of the budget: it arrives quickly
        tiles = sorted(set(chunks))                               # a fixed grid: no step sent twice
        assert tiles[0][0] == 0 and tiles[-1][1] == T
        assert all(a[1] == b[0] for a, b in zip(tiles, tiles[1:]))
        first = chunks[T - 1] if backward else chunks[0]          # the pass starts with a whole chunk
        assert first[1] - first[0] == min(n, T)


def test_every_step_of_a_chunk_asks_for_the_same_payload():
    assert {sv.chunk(200, 1000, t, budget=40_000) for t in range(60, 70)} == {(60, 70)}
    assert {sv.chunk(200, 1000, t, budget=40_000, backward=True) for t in range(60, 70)} == {(60, 70)}
    assert sv.chunk(64, 1000, 63, budget=40_000, backward=True) == (54, 64)
    with pytest.raises(ValueError, match="t must satisfy"):
        sv.chunk(5, 1000, 5)


def test_a_chunk_is_the_same_numbers_as_the_whole_payload():
    an = analyze(RNNConfig(seq_len=9, hidden_size=6))
    per = sv.per_step_bytes(an, "backward")
    lo, hi = sv.chunk(9, per, 4, budget=8 * per)                 # 9 steps do not fit: chunks of 8 // 4 = 2
    assert (lo, hi) == (4, 6)
    data = sv.build_payload(an, "backward", lo, hi, start=9 - 4)
    header, values = sv.decode_payload(data)
    assert values.nbytes <= 2 * per
    whole_h, whole_v = sv.decode_payload(sv.build_payload(an, "backward", 0, 9, start=1))
    for g in header["groups"]:
        for p in g["panels"]:
            for t in range(lo, hi):
                np.testing.assert_array_equal(sv.panel_values(header, values, g["id"], p["quantity"], t),
                                              sv.panel_values(whole_h, whole_v, g["id"], p["quantity"], t))
    assert [s["t"] for s in header["steps"]] == list(range(lo + 1, hi + 1))


def test_pytorch_panels_equal_to_numpys_in_float32_are_sent_once():
    an = analyze(RNNConfig(seq_len=4, hidden_size=6))
    header, values = sv.decode_payload(sv.build_payload(an, "backward", 0, 4, start=1))
    idx = {p["quantity"]: p["index"] for g in header["groups"] for p in g["panels"]}
    for st_ in header["steps"]:
        assert st_["at"][idx["ref_dh_total"]] == st_["at"][idx["dh_total"]]      # agree to ~1e-16: one copy
    bug = analyze(RNNConfig(seq_len=4, hidden_size=6, bug="forget-carry"))
    hb, vb = sv.decode_payload(sv.build_payload(bug, "backward", 0, 4, start=1))
    assert vb.size > values.size                                                # a bug's differences are sent
    assert sv.per_step_bytes(bug, "backward") * 4 >= vb.nbytes


def test_the_largest_config_comes_in_chunks_under_the_budget():
    cfg = RNNConfig(input_size=256, hidden_size=256, seq_len=64, batch_size=64)
    # per-step floats, from the shapes alone: 13 (B, H) + 3 (B, I) + 4 (H, I) + 4 (H, H) + 8 (H) per backward step
    B, H, I = 64, 256, 256
    per = 4 * (13 * B * H + 3 * B * I + 4 * H * I + 4 * H * H + 8 * H)
    lo, hi = sv.chunk(cfg.seq_len, per, cfg.seq_len - 1, backward=True)
    assert hi == cfg.seq_len and 1 < hi - lo < cfg.seq_len and (hi - lo) * per <= sv.BUDGET // 4
