"""The finite-difference spot check (bptt.fd) against torch.nn.RNN's gradient."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.config import RNNConfig
from bptt.fd import WEIGHTS, check_index, fd_check, fd_estimate
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference

FD_RTOL = 1e-6
SMALL = RNNConfig(input_size=3, hidden_size=4, seq_len=5, batch_size=2, seed=5, hh_scale=1.3)


def _indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The first and last entry and one in the middle."""
    return [tuple(0 for _ in shape), tuple(n - 1 for n in shape), tuple(n // 2 for n in shape)]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_estimate_matches_torch_rnn_at_the_worked_example(weight):
    p = draw_problem(RNNConfig())
    ref = torch_rnn_reference(p).gradients["d" + weight]
    for idx in _indices(ref.shape):
        assert fd_estimate(p, weight, idx) == pytest.approx(ref[idx], rel=FD_RTOL, abs=1e-9)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), weight=st.sampled_from(WEIGHTS), T=st.integers(1, 6),
       scale=st.sampled_from([0.5, 1.0, 2.0]), data=st.data())
def test_estimate_matches_torch_rnn_random_configs(seed, weight, T, scale, data):
    cfg = RNNConfig(input_size=3, hidden_size=4, seq_len=T, batch_size=2, seed=seed, hh_scale=scale)
    p = draw_problem(cfg)
    shape = p.weights[weight].shape
    idx = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    r = fd_check(p, weight, idx)
    assert r.exact and r.index == idx
    assert r.estimate == pytest.approx(r.torch_rnn, rel=FD_RTOL, abs=1e-9)
    assert r.engine == pytest.approx(r.torch_rnn, rel=1e-10, abs=1e-14)


def test_estimate_matches_torch_rnn_relu():
    p = draw_problem(SMALL.replace(nonlinearity="relu"))
    r = fd_check(p, "W_hh", (1, 2))
    assert r.estimate == pytest.approx(r.torch_rnn, rel=FD_RTOL)


def test_with_truncation_the_estimate_is_the_true_gradient_not_the_truncated_one():
    p = draw_problem(SMALL.replace(truncate=2))
    r = fd_check(p, "W_hh", (0, 1))
    assert not r.exact
    assert r.engine == pytest.approx(r.torch_rnn, rel=1e-10)          # engine = truncated torch.nn.RNN
    assert r.estimate == pytest.approx(r.torch_full, rel=FD_RTOL)       # FD = the true (full BPTT) gradient
    assert abs(r.torch_rnn - r.torch_full) > 1e3 * abs(r.estimate - r.torch_full)


def test_with_a_bug_the_estimate_matches_the_true_gradient_and_not_the_engine():
    p = draw_problem(SMALL.replace(bug="forget-carry"))
    r = fd_check(p, "W_ih", (2, 1))
    assert not r.exact
    assert r.torch_rnn == r.torch_full
    assert r.estimate == pytest.approx(r.torch_full, rel=FD_RTOL)
    assert r.rel_err(r.engine) > 1e-3


def test_reuses_given_runs():
    from bptt.engine import run_engine
    p = draw_problem(SMALL)
    eng, ref = run_engine(p), torch_rnn_reference(p)
    r = fd_check(p, "b_ih", 3, engine=eng, torch_rnn=ref)
    assert r.index == (3,)
    assert r.engine == eng.gradients["db_ih"][3] and r.torch_rnn == ref.gradients["db_ih"][3]


@pytest.mark.parametrize("weight, index, match", [
    ("W_xx", (0, 0), r"weight must be one of W_ih, W_hh, b_ih, b_hh"),
    ("W_ih", (4, 0), r"index into W_ih must be in 0\.\.3 × 0\.\.2"),
    ("W_hh", (0,), r"index into W_hh must be in 0\.\.3 × 0\.\.3"),
    ("b_hh", (-1,), r"index into b_hh must be in 0\.\.3"),
])
def test_bad_weight_or_index_names_what_is_allowed(weight, index, match):
    with pytest.raises(ValueError, match=match):
        check_index(draw_problem(SMALL), weight, index)


def test_estimate_does_not_modify_the_problem():
    p = draw_problem(SMALL)
    before = {k: v.copy() for k, v in p.weights.items()}
    fd_estimate(p, "W_hh", (1, 1))
    for k, v in p.weights.items():
        np.testing.assert_array_equal(v, before[k])
