"""The NumPy engine against both autograd references: every quantity, every timestep; bugs, truncation, non-finite."""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bptt import analysis, engine
from bptt.analysis import analyze
from bptt.cells import BUGS as CELL_BUGS
from bptt.cells.rnn import RNN, bptt, rnn_forward
from bptt.compare import REL_TOL, agreement, rounding_floor, step_quantities
from bptt.config import NONLINEARITIES, PRESETS, UPSTREAMS, RNNConfig, preset
from bptt.engine import carry_cut, run_engine, run_plain
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference, unrolled_reference

FORWARD_QUANTITIES = tuple(q.name for q in RNN.forward)                    # a, h
STEP_QUANTITIES = step_quantities(RNN)                                   # the backward's, then the running sums
PER_STEP = (*FORWARD_QUANTITIES, *STEP_QUANTITIES, "dW_ih_step", "dW_hh_step", "db_ih_step", "db_hh_step")
WHOLE = ("h", "dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")
RNN_BUGS = CELL_BUGS["rnn"]                 # "none" first, then the vanilla RNN's zoo
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------------------------------------
# random configs (small, so the suite stays fast)

@st.composite
def configs(draw: st.DrawFn) -> RNNConfig:
    """A bug-free RNNConfig with small sizes, either nonlinearity and upstream, truncate in {0, 1, 2, 3, T, T+1}."""
    T = draw(st.integers(1, 6))
    return RNNConfig(
        input_size=draw(st.integers(1, 4)),
        hidden_size=draw(st.integers(1, 5)),
        seq_len=T,
        batch_size=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**32 - 1)),
        nonlinearity=draw(st.sampled_from(NONLINEARITIES)),
        upstream=draw(st.sampled_from(UPSTREAMS)),
        hh_scale=draw(st.one_of(st.sampled_from([0.05, 10.0]), st.floats(0.05, 10.0))),
        truncate=draw(st.sampled_from([0, 1, 2, 3, T, T + 1])),
    )


def whole(trace) -> dict[str, np.ndarray]:
    """A Trace's whole-sequence results, keyed like TorchRNNResult."""
    return {"h": trace.h, "dx": trace.dx, "dh0": trace.dh0, **trace.gradients}


def value(result, q: str) -> np.ndarray:
    return result.gradients[q] if q.startswith(("dW", "db")) else getattr(result, q)


def min_tanh_slope(h: np.ndarray) -> float:
    """The smallest, over timesteps, of the largest f' = 1 - h_t² at that step: how saturated the worst step is."""
    return float((1.0 - h * h).reshape(h.shape[0], -1).max(axis=1).min())


# ----------------------------------------------------------------------------------------------------------------------
# 1. engine == torch.nn.RNN == unrolled autograd

EDGES = [
    RNNConfig(seq_len=1), RNNConfig(batch_size=1), RNNConfig(hidden_size=1), RNNConfig(input_size=1),
    RNNConfig(input_size=1, hidden_size=1, seq_len=1, batch_size=1),
    RNNConfig(hh_scale=0.05, nonlinearity="relu", upstream="last"), RNNConfig(hh_scale=10.0, seq_len=5),
    RNNConfig(hh_scale=10.0, nonlinearity="relu", seq_len=6, truncate=4),
]


@PROPERTY
@given(cfg=configs())
@example(cfg=EDGES[0]).via("T = 1")
@example(cfg=EDGES[4]).via("every size 1")
@example(cfg=EDGES[6]).via("tanh, hh_scale = 10")
@example(cfg=EDGES[7]).via("exploding relu, truncated")
def test_engine_equals_both_references(cfg: RNNConfig, close) -> None:
    p = draw_problem(cfg)
    eng = run_engine(p)
    ref = unrolled_reference(p)
    rnn = torch_rnn_reference(p)
    # the package's rounding floor (compare.FLOOR_FACTOR): the engine's backward replayed on the reference's forward
    replay = run_engine(p, {"a": ref.a, "h": ref.h}) if cfg.nonlinearity == "tanh" else None

    for q in PER_STEP:
        assert getattr(eng, q).shape == getattr(ref, q).shape, q
        for t in range(cfg.seq_len):
            floor = rounding_floor(eng, replay, q, t) if q not in FORWARD_QUANTITIES else 0.0
            close(getattr(eng, q)[t], getattr(ref, q)[t], f"{q}[t={t}] engine vs unrolled", floor=floor)
    close(eng.dh0, ref.dh0, "dh0 engine vs unrolled", floor=rounding_floor(eng, replay, "dh0"))

    for q in WHOLE:
        floor = 0.0 if q == "h" else rounding_floor(eng, replay, q)
        close(whole(eng)[q], value(rnn, q), f"{q} engine vs torch.nn.RNN", floor=floor)
        close(whole(ref)[q], value(rnn, q), f"{q} unrolled totals vs torch.nn.RNN")


@pytest.mark.parametrize("cfg", EDGES, ids=lambda c: str(c.differs_from_default()))
def test_edge_configs_pass_every_row(cfg: RNNConfig) -> None:
    a = analyze(cfg)
    assert a.all_passed, a.table[~a.table["passed"]].to_string()
    assert a.first_divergence is None
    assert not a.any_nonfinite


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_analyze_all_passed_without_bug(cfg: RNNConfig) -> None:
    a = analyze(cfg)
    assert a.all_passed, a.table[~a.table["passed"]].to_string()
    over = a.table[a.table["max_rel_err"] > REL_TOL]              # only where saturated tanh's last bits explain it
    assert (over["floor"] > 0).all() and over["passed"].all(), over.to_string()
    assert a.first_divergence is None


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_pass_every_row(name: str) -> None:
    a = analyze(preset(name))
    assert a.all_passed, a.table[~a.table["passed"]].to_string()
    assert not a.any_nonfinite


# A config inside the bounds where analyze() reports FAIL although engine and references are both right to rounding:
# H = 2, B = 1, hh_scale = 10 drives |a_t| past 10 at t = 1, so f' = 1 - h² ~ 1e-8 for every unit of that step, and
# the ulp by which numpy's and torch's tanh differ becomes a relative error ~1e-7 in d_pre, dx, dh_prev.
SATURATED = RNNConfig(input_size=1, hidden_size=2, seq_len=2, batch_size=1, seed=4, hh_scale=10.0)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("hidden_size", [1, 2, 8])
def test_saturated_tanh_all_passed(seed: int, hidden_size: int) -> None:
    # f' = (1 - h)(1 + h) keeps full precision at saturation, and compare's rounding floor absorbs the last-bit
    # differences of the two tanh kernels: a correct engine passes every row even where every unit saturates
    cfg = RNNConfig(input_size=2, hidden_size=hidden_size, seq_len=6, batch_size=2, seed=seed, hh_scale=10.0)
    a = analyze(cfg)
    assert a.all_passed, a.table[~a.table["passed"]].to_string()


@pytest.mark.parametrize("bug", RNN_BUGS[1:])
def test_the_rounding_floor_never_hides_a_bug_at_saturation(bug: str) -> None:
    cfg = RNNConfig(input_size=2, hidden_size=3, seq_len=5, batch_size=2, seed=4, hh_scale=10.0, bug=bug)
    a = analyze(cfg)
    fd = a.first_divergence
    assert fd is not None and not a.all_passed
    tab = a.table
    row = tab[(tab["quantity"] == fd["quantity"]) & (tab["t"] == fd["t"])].iloc[0]
    assert row["max_abs_err"] > 1e3 * row["floor"]           # the bug's error dwarfs the rounding allowance


def test_saturated_tanh_disagreement_is_within_the_rounding_floor(close) -> None:
    p = draw_problem(SATURATED)
    eng, ref = run_engine(p), unrolled_reference(p)
    assert min_tanh_slope(ref.h) < 1e-6                       # the premise: one step is fully saturated
    assert np.max(np.abs(eng.h - ref.h)) <= 4 * np.finfo(float).eps
    replay = run_engine(p, {"a": ref.a, "h": ref.h})
    for q in ("d_pre", "dx", "dh_prev"):
        for t in range(SATURATED.seq_len):
            floor = rounding_floor(eng, replay, q, t)
            assert floor <= 1e-12 * max(np.abs(getattr(ref, q)).max(), 1.0)   # an allowance for last bits only
            close(getattr(eng, q)[t], getattr(ref, q)[t], f"{q}[{t}]", floor=floor)


@pytest.mark.parametrize("cfg", [RNNConfig(), RNNConfig(input_size=1, hidden_size=3, seq_len=5, batch_size=1)])
def test_trace_arrays_are_separate(cfg: RNNConfig) -> None:
    # the engine cuts its record from one allocation, and derives the weight-shaped quantities on demand: no two
    # quantities may overlap
    shared: set[frozenset[str]] = set()
    arrays = run_engine(draw_problem(cfg)).arrays()
    names = list(arrays)
    for i, n1 in enumerate(names):
        for n2 in names[i + 1:]:
            assert np.shares_memory(arrays[n1], arrays[n2]) == (frozenset({n1, n2}) in shared), (n1, n2)
    assert all(v.dtype == np.float64 and v.flags.c_contiguous for v in arrays.values())


# ----------------------------------------------------------------------------------------------------------------------
# 5a. the plain form (the derivation, line by line) and the fast form agree, step by step, for every bug
#     (where each bug first diverges, and what it computes: tests/unit/test_bugs.py)
#
# The fast form batches the input projection and dx into one (T*B, .) product each; BLAS may round a big product
# differently in the last bit from T small ones. So the forms are compared step by step on the same inputs, to
# 1e-15 relative to the terms' magnitudes (sum |terms|, the scale of a floating-point error bound), everything else
# bitwise. (Whole trajectories are not compared: in a saturated or exploding RNN a last-bit difference in a_t grows
# with t, which is the problem's conditioning, not either form's doing.)
STEP_TOL = 1e-15


@st.composite
def configs_with_bugs(draw: st.DrawFn) -> RNNConfig:
    """Any bug, on small sizes or one size at the benchmark's (BLAS takes other paths on larger matrices)."""
    cfg = draw(configs())
    sizes = draw(st.sampled_from([{}, {"input_size": 64}, {"hidden_size": 128}, {"batch_size": 32},
                                  {"hidden_size": 33, "batch_size": 17, "input_size": 9}]))
    return cfg.replace(bug=draw(st.sampled_from(RNN_BUGS)), **sizes)


def assert_within_terms(got: np.ndarray, want: np.ndarray, terms: np.ndarray, what: str) -> None:
    """|got - want| <= STEP_TOL * max(terms), terms = the sum of the absolute values of what was added up."""
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= STEP_TOL * float(np.max(terms, initial=0.0)), f"{what}: {err:.3e} vs terms {np.max(terms):.3e}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs_with_bugs())
@example(cfg=RNNConfig(input_size=64, hidden_size=128, seq_len=6, batch_size=32, hh_scale=10.0)).via("saturated")
@example(cfg=RNNConfig(nonlinearity="relu", hh_scale=10.0, seq_len=6, truncate=4, bug="carry-transposed"))
def test_plain_form_equals_fast_form_step_by_step(cfg: RNNConfig, close) -> None:
    p = draw_problem(cfg)
    # forward: each fast step against rnn_forward's step from the same h_{t-1}
    a, h = engine.forward(p)
    h_prev = np.concatenate([p.h0[None], h[:-1]])                            # (T, B, H)
    for t in range(cfg.seq_len):
        a_t, h_t = rnn_forward(p.x[t:t + 1], h_prev[t], p.W_ih, p.W_hh, p.b_ih, p.b_hh, cfg.nonlinearity)
        terms = np.abs(p.x[t]) @ np.abs(p.W_ih.T) + np.abs(p.b_ih) + np.abs(h_prev[t]) @ np.abs(p.W_hh.T) + np.abs(
            p.b_hh)
        assert_within_terms(a[t], a_t[0], terms, f"a[{t}]")
        np.testing.assert_array_equal(h[t], np.tanh(a[t]) if cfg.nonlinearity == "tanh" else np.maximum(a[t], 0.0))
    # backward: both forms on the same forward values (the engine's own, and the rounding-floor replay's)
    ref = unrolled_reference(p)
    for values in ({"a": a, "h": h}, {"a": ref.a, "h": ref.h}):
        fast, plain = run_engine(p, values), run_plain(p, values)
        for name, value in fast.arrays().items():
            if name == "dx":                                                 # one (T*B, H) @ (H, I) product
                assert_within_terms(value, plain.dx, np.abs(plain.d_pre) @ np.abs(p.W_ih), "dx")
            else:
                np.testing.assert_array_equal(value, getattr(plain, name), err_msg=name)
    # and a whole run of the plain form is the engine the tests and the script trust: it agrees with autograd
    if cfg.bug == "none":
        tr = run_plain(p)
        rnn = torch_rnn_reference(p)
        replay = run_plain(p, {"a": ref.a, "h": ref.h}) if cfg.nonlinearity == "tanh" else None
        for q in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
            close(tr.gradients[q], rnn.gradients[q], q, floor=rounding_floor(tr, replay, q))


def test_the_plain_step_reads_like_the_backward_page() -> None:
    # one iteration of bptt computes the Backward page's quantities in the page's order, under the page's names
    src = inspect.getsource(bptt)
    loop = src[src.index("for t in reversed(range(T)):"):]
    order = ["dh_next =", "dh_total =", "d_pre =", "dx =", "dh_prev =", "dW_ih =", "dW_hh =", "db_ih =", "db_hh ="]
    at = [loop.index("        " + line) for line in order]
    assert at == sorted(at), order


# ----------------------------------------------------------------------------------------------------------------------
# 5b. truncated BPTT

@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("K", ["1", "2", "3", "T", "T+1"])
def test_truncation(K: str, nonlinearity: str, close) -> None:
    T = 7
    k = {"T": T, "T+1": T + 1}.get(K) or int(K)
    cfg = RNNConfig(seq_len=T, hidden_size=4, input_size=3, batch_size=2, truncate=k, nonlinearity=nonlinearity)
    p = draw_problem(cfg)
    eng, ref, rnn = run_engine(p), unrolled_reference(p), torch_rnn_reference(p)
    for q in (*STEP_QUANTITIES, "h", "a"):
        close(getattr(eng, q), getattr(ref, q), f"{q} engine vs unrolled (K={k})")
    for q in WHOLE:
        close(whole(eng)[q], value(rnn, q), f"{q} engine vs torch.nn.RNN (K={k})")

    cut_rows = [j * k - 1 for j in range(1, T) if j * k - 1 <= T - 2]
    assert all(carry_cut(r + 1, k) for r in cut_rows)
    for r in cut_rows:
        assert np.all(eng.dh_next[r] == 0.0), f"dh_next[{r}] must be exactly 0 with K={k}"
        assert np.all(eng.dh_total[r] == p.dh_out[r])
    assert np.all(eng.dh_next[T - 1] == 0.0)
    # everywhere else the carry flows: dh_next[t] = dh_prev[t+1], and dh_prev is recorded even where it is cut
    for t in range(T - 1):
        if t not in cut_rows:
            np.testing.assert_array_equal(eng.dh_next[t], eng.dh_prev[t + 1])
    if nonlinearity == "tanh":                                # tanh' > 0, so what a cut step sends is nonzero
        assert all(np.any(eng.dh_prev[r + 1] != 0.0) for r in cut_rows)


def test_truncation_changes_the_gradient() -> None:
    full = run_engine(draw_problem(RNNConfig(seq_len=6)))
    cut = run_engine(draw_problem(RNNConfig(seq_len=6, truncate=2)))
    np.testing.assert_array_equal(full.h, cut.h)              # the forward pass is the same
    assert not agreement(cut.dW_hh_acc[0], full.dW_hh_acc[0]).passed


# ----------------------------------------------------------------------------------------------------------------------
# 6. non-finite numbers are reported, never a crash
#
# No config within the bounds overflows float64: a relu RNN with hh_scale = 10 grows by ~4-6x per step (the spectral
# radius of W_hh is ~5.8 at any H), so even T = 200 stays below ~1e150 (hidden_size=256, input_size=4, seq_len=120,
# batch_size=8 and seeds 0..4 peak at 1e73..1e79). So the overflow is made by hand: the same pipeline on a problem
# whose W_hh is scaled far outside the bounds, and compare.agreement on inf/nan arrays directly.

def _overflowing_problem():
    p = draw_problem(RNNConfig(nonlinearity="relu", seq_len=6, upstream="all"))
    return dataclasses.replace(p, W_hh=np.abs(p.W_hh) * 1e120)


def test_overflow_is_reported_as_nonfinite(monkeypatch) -> None:
    p = _overflowing_problem()
    monkeypatch.setattr(analysis, "draw_problem", lambda cfg: p)
    with np.errstate(all="ignore"):
        a = analyze(p.config)
    assert not np.all(np.isfinite(a.engine.h))                # the premise: it did overflow
    assert int(a.table["nonfinite"].sum()) > 0
    assert a.any_nonfinite
    assert set(a.table["passed"].unique()) <= {True, False}


@pytest.mark.parametrize("impl,ref,passed,nonfinite", [
    ([1.0, np.inf], [1.0, np.inf], True, 1),
    ([1.0, -np.inf], [1.0, np.inf], False, 1),
    ([np.nan, 2.0], [np.nan, 2.0], True, 1),
    ([np.nan, 2.0], [np.inf, 2.0], False, 1),
    ([3.0, 2.0], [np.nan, 2.0], False, 1),
    ([np.inf, np.nan], [np.inf, np.nan], True, 2),
    ([np.inf, 1.0], [np.inf, 1.0 + 1e-3], False, 1),
])
def test_agreement_with_nonfinite(impl, ref, passed, nonfinite) -> None:
    a = agreement(np.array(impl), np.array(ref))
    assert a.passed is passed
    assert a.nonfinite == nonfinite
    assert np.isfinite(a.max_abs_err)


def test_agreement_relative_to_max_abs() -> None:
    ref = np.array([1e6, 1.0])
    assert agreement(ref + np.array([0.0, 1e-5]), ref).passed        # 1e-5 / 1e6 = 1e-11
    assert not agreement(ref + np.array([0.0, 1e-3]), ref).passed    # 1e-9
    assert agreement(np.zeros(3), np.zeros(3)).passed
    assert not agreement(np.array([0.0, 1e-300]), np.zeros(2)).passed
