"""The hand-written torch operator under gradcheck, and central finite differences of the engine's gradients."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.autograd.gradcheck import GradcheckError

from bptt.autograd_op import RNNFunction, gradcheck_op, op_leaves, run_op
from bptt.config import RNNConfig
from bptt.engine import forward, run_engine
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference

SMALL = dict(input_size=3, hidden_size=4, seq_len=5, batch_size=2)
OP_CASES = [("tanh", 0), ("tanh", 2), ("relu", 0), ("relu", 3)]
# truncation that cuts nothing (K >= T) must leave the exact gradient, which gradcheck can check
EXACT_CASES = [("tanh", 0), ("tanh", 5), ("tanh", 6), ("relu", 0), ("relu", 5)]


# ----------------------------------------------------------------------------------------------------------------------
# gradcheck of RNNFunction

def _far_from_kinks(cfg: RNNConfig, margin: float = 1e-3) -> RNNConfig:
    """The first seed from cfg.seed on whose pre-activations relu has no kink within margin (tanh: cfg itself)."""
    for seed in range(cfg.seed, cfg.seed + 50):
        c = cfg.replace(seed=seed)
        if c.nonlinearity == "tanh" or np.abs(forward(draw_problem(c))[0]).min() > margin:
            return c
    raise AssertionError("no seed without a relu kink near a_t")


@pytest.mark.parametrize("nonlinearity,truncate", EXACT_CASES)
def test_gradcheck_op_leaves(nonlinearity: str, truncate: int) -> None:
    cfg = _far_from_kinks(RNNConfig(**SMALL, nonlinearity=nonlinearity, truncate=truncate, seed=1))
    leaves = op_leaves(draw_problem(cfg))
    assert all(t.dtype == torch.float64 for t in leaves)
    fn = lambda *ts: RNNFunction.apply(*ts, nonlinearity, truncate)  # noqa: E731
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("nonlinearity,truncate", EXACT_CASES)
def test_gradcheck_op(nonlinearity: str, truncate: int) -> None:
    cfg = _far_from_kinks(RNNConfig(**SMALL, nonlinearity=nonlinearity, truncate=truncate, seed=2))
    res = gradcheck_op(draw_problem(cfg))
    assert res.passed, res.message
    assert not res.fast_mode
    assert res.n_inputs == sum(t.numel() for t in op_leaves(draw_problem(cfg)))


@pytest.mark.parametrize("nonlinearity,truncate", [("tanh", 2), ("relu", 3)])
def test_truncated_gradient_is_not_the_derivative_of_the_forward(nonlinearity: str, truncate: int) -> None:
    # truncated BPTT drops the carry across window edges on purpose, while the forward (and so any finite difference)
    # still depends on it: gradcheck must see the difference. The truncated gradients themselves are checked against
    # torch.nn.RNN run window by window with h.detach() (test_op_equals_torch_rnn, test_engine.py).
    cfg = _far_from_kinks(RNNConfig(**SMALL, nonlinearity=nonlinearity, truncate=truncate, seed=1))
    fn = lambda *ts: RNNFunction.apply(*ts, nonlinearity, truncate)  # noqa: E731
    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(fn, op_leaves(draw_problem(cfg)), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradcheck_op_checks_truncated_configs_with_full_bptt() -> None:
    res = gradcheck_op(draw_problem(RNNConfig(**SMALL, truncate=2)))
    assert res.passed and "full BPTT" in res.message, res.message


def test_gradcheck_op_fast_mode_on_large_problems() -> None:
    res = gradcheck_op(draw_problem(RNNConfig(input_size=8, hidden_size=16, seq_len=6, batch_size=4)))
    assert res.fast_mode and res.passed, res.message


def test_gradcheck_op_reports_a_wrong_backward(monkeypatch) -> None:
    real = RNNFunction.backward

    def wrong(ctx, dh_out):
        g = list(real(ctx, dh_out))
        g[3] = g[3] * 1.01                                    # dW_hh off by 1%
        return tuple(g)

    monkeypatch.setattr(RNNFunction, "backward", staticmethod(wrong))
    res = gradcheck_op(draw_problem(RNNConfig(**SMALL)))
    assert not res.passed
    assert res.message.startswith("gradcheck failed")


@pytest.mark.parametrize("nonlinearity,truncate", OP_CASES)
@pytest.mark.parametrize("upstream", ["all", "last"])
def test_op_equals_torch_rnn(nonlinearity: str, truncate: int, upstream: str, close) -> None:
    p = draw_problem(RNNConfig(**SMALL, nonlinearity=nonlinearity, truncate=truncate, upstream=upstream))
    op, ref = run_op(p), torch_rnn_reference(p)
    for q in ("h", "dx", "dh0"):
        close(getattr(op, q), getattr(ref, q), f"{q} operator vs torch.nn.RNN")
    for q, g in op.gradients.items():
        close(g, ref.gradients[q], f"{q} operator vs torch.nn.RNN")


# ----------------------------------------------------------------------------------------------------------------------
# central finite differences of the engine's full gradients

def _loss(p) -> float:
    """L = sum(dh_out * h), the loss whose dL/dh_t is dh_out[t], through the engine's own forward."""
    _, h = forward(p)
    return float(np.sum(p.dh_out * h))


@pytest.mark.parametrize("nonlinearity,upstream,hh_scale", [
    ("tanh", "all", 1.0), ("tanh", "last", 2.0), ("relu", "all", 1.0), ("relu", "last", 0.5),
])
@pytest.mark.parametrize("weight", ["W_ih", "W_hh", "b_ih", "b_hh"])
def test_finite_differences(weight: str, nonlinearity: str, upstream: str, hh_scale: float) -> None:
    eps = 1e-6
    cfg = _far_from_kinks(RNNConfig(input_size=3, hidden_size=4, seq_len=6, batch_size=2, seed=5,
                                    nonlinearity=nonlinearity, upstream=upstream, hh_scale=hh_scale), margin=1e-2)
    p = draw_problem(cfg)
    grad = run_engine(p).gradients["d" + weight]                 # the full gradient (no truncation)
    W = getattr(p, weight)
    rng = np.random.default_rng(0)
    entries = {tuple(int(rng.integers(n)) for n in W.shape) for _ in range(4)}
    for idx in entries:
        def L(delta: float, idx: tuple[int, ...] = idx) -> float:
            Wd = W.copy()
            Wd[idx] += delta
            return _loss(dataclasses.replace(p, **{weight: Wd}))
        fd = (L(eps) - L(-eps)) / (2 * eps)                      # error ~ eps² L''' + |L| * 1e-16 / eps
        assert abs(fd - grad[idx]) <= 1e-6 * max(1.0, np.abs(grad).max()), \
            f"d{weight}{idx}: finite difference {fd!r} vs engine {grad[idx]!r}"
