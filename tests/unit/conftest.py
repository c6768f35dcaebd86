"""Shared helpers for the engine tests: one closeness check, and a rounding-error floor for saturated tanh."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from bptt.compare import REL_TOL
from bptt.engine import carry_cut
from bptt.problem import Problem

EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------------------------------------------------
# closeness

def assert_close(impl: np.ndarray, ref: np.ndarray, what: str, floor: float = 0.0, tol: float = REL_TOL) -> None:
    """max |impl - ref| <= tol * max |ref| + floor, with equal shapes and finite values (relative to the max-abs)."""
    impl, ref = np.asarray(impl, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert impl.shape == ref.shape, f"{what}: shape {impl.shape} != {ref.shape}"
    assert np.all(np.isfinite(impl)) and np.all(np.isfinite(ref)), f"{what}: non-finite values"
    if impl.size == 0:
        return
    err = float(np.max(np.abs(impl - ref)))
    scale = float(np.max(np.abs(ref)))
    assert err <= tol * scale + floor, f"{what}: max abs err {err:.3e} > {tol:g} * {scale:.3e} + floor {floor:.3e}"


@pytest.fixture(scope="session")
def close() -> Callable[..., None]:
    """assert_close, as a (session-scoped, so hypothesis-safe) fixture."""
    return assert_close


# ----------------------------------------------------------------------------------------------------------------------
# the rounding floor of a saturated tanh
#
# Two correct float64 implementations of tanh (NumPy's libm and PyTorch's vectorised kernel) differ by an ulp in h_t.
# d_pre = dh_total * (1 - h_t²) turns that ulp into an *absolute* error of a few eps in f'(a_t). Near saturation
# (|a_t| >~ 8) f' itself is ~1e-7, so the relative disagreement of d_pre and of everything downstream of it grows to
# ~eps / f', far above 1e-10, although neither side made a mistake. The bound below is that absolute error pushed
# through the backward pass: every backward quantity is linear in the f' values, so an error of at most c*eps in
# each f' moves a quantity by at most c*eps * (the same quantity computed with f' = 1 in absolute values), once per
# step it passes through. relu (f' is exactly 0 or 1) and the forward pass get no floor.

def tanh_backward_floors(p: Problem, h: np.ndarray, c: float = 8.0) -> dict[str, np.ndarray]:
    """Per-quantity, per-timestep absolute floors (T,) for the tanh backward; zeros for relu."""
    cfg = p.config
    T = cfg.seq_len
    mags = _backward_magnitudes(p, h)
    scale = c * EPS * T if cfg.nonlinearity == "tanh" else 0.0
    return {q: scale * m.reshape(T, -1).max(axis=1) for q, m in mags.items()}


def _backward_magnitudes(p: Problem, h: np.ndarray) -> dict[str, np.ndarray]:
    """Each backward quantity computed in absolute values with every f' = 1: an upper bound of its magnitude."""
    T = p.config.seq_len
    Wih, Whh, x = np.abs(p.W_ih), np.abs(p.W_hh), np.abs(p.x)
    hprev = np.abs(np.concatenate([p.h0[None], h[:-1]]))     # (T, B, H)
    dh_next = np.zeros_like(h)
    dh_total = np.zeros_like(h)
    dh_prev = np.zeros_like(h)
    for t in range(T - 1, -1, -1):
        dh_total[t] = np.abs(p.dh_out[t]) + dh_next[t]
        dh_prev[t] = dh_total[t] @ Whh
        if t > 0 and not carry_cut(t, p.config.truncate):
            dh_next[t - 1] = dh_prev[t]
    d_pre = dh_total
    step_ih = np.einsum("tbh,tbi->thi", d_pre, x)
    step_hh = np.einsum("tbh,tbk->thk", d_pre, hprev)
    step_b = d_pre.sum(axis=1)
    acc = lambda s: np.cumsum(s[::-1], axis=0)[::-1]  # noqa: E731
    return {
        "dh_next": dh_next, "dh_total": dh_total, "d_pre": d_pre, "dx": d_pre @ Wih, "dh_prev": dh_prev,
        "dW_ih_step": step_ih, "dW_hh_step": step_hh, "db_ih_step": step_b, "db_hh_step": step_b,
        "dW_ih_acc": acc(step_ih), "dW_hh_acc": acc(step_hh), "db_ih_acc": acc(step_b), "db_hh_acc": acc(step_b),
    }


def whole_floor(floors: dict[str, np.ndarray], q: str) -> float:
    """The floor of a whole-sequence quantity: dx over all steps, dh0 = dh_prev[0], full gradient = acc[0]."""
    if q == "dx":
        return float(floors["dx"].max())
    if q == "dh0":
        return float(floors["dh_prev"][0])
    return float(floors[q + "_acc"][0])


@pytest.fixture(scope="session")
def floors() -> Callable[..., dict[str, np.ndarray]]:
    """tanh_backward_floors, as a fixture."""
    return tanh_backward_floors


@pytest.fixture(scope="session")
def floor_of() -> Callable[[dict[str, np.ndarray], str], float]:
    """whole_floor, as a fixture."""
    return whole_floor
