"""Shared helpers for the engine tests: one closeness check (the rounding floor itself is compare.rounding_floor)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from bptt.compare import REL_TOL

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

