"""Comparison of the engine (and the hand-written torch operator) with the autograd references."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cells import GRADIENTS, Cell
from .engine import WEIGHT_ACC, Trace

REL_TOL = 1e-10   # pass: max |impl - ref| <= REL_TOL * max |ref| + floor
COLUMNS = ["quantity", "gate", "t", "implementation", "reference", "max_abs_err", "max_rel_err", "tol", "floor",
           "passed",
           "nonfinite"]

# The floor. NumPy's and PyTorch's tanh may differ in the last bit of h_t. Where a step saturates (|a_t| >~ 8),
# f' = 1 - h_t² is ~1e-7 and that last bit becomes a relative difference ~1e-9 in d_pre and everything downstream,
# though neither side made a mistake. So the engine's backward is also replayed on the reference's forward values
# (a_t, h_t); twice what that changes is the floor, an absolute allowance for forward rounding (0 for relu, and
# ~1e-16 relative away from saturation). A mistake in the backward is in both runs, so the floor never hides it.
FLOOR_FACTOR = 2.0


@dataclass(frozen=True)
class Agreement:
    """How one array agrees with its reference."""
    max_abs_err: float
    max_rel_err: float   # max |impl - ref| / max |ref|  (norm-wise, so near-zero entries don't blow it up)
    passed: bool
    nonfinite: int       # entries that are inf or nan in either array


def agreement(impl: np.ndarray, ref: np.ndarray, tol: float = REL_TOL, floor: float = 0.0) -> Agreement:
    """Compare two arrays: pass when max |impl - ref| <= tol * max |ref| + floor, and non-finite entries pass only
    where both hold the same inf or nan."""
    impl = np.asarray(impl, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    fin = np.isfinite(impl) & np.isfinite(ref)
    nonfinite = int(fin.size - np.count_nonzero(fin))
    same_nonfinite = True
    if nonfinite:
        i, r = impl[~fin], ref[~fin]
        same_nonfinite = bool(np.all((i == r) | (np.isnan(i) & np.isnan(r))))
    diff = np.abs(impl[fin] - ref[fin])
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref[fin]).max()) if diff.size else 0.0
    if max_abs == 0.0:
        rel = 0.0
    elif scale == 0.0 or not np.isfinite(scale):
        rel = float("inf")
    else:
        rel = max_abs / scale
    ok = max_abs <= tol * scale + floor if np.isfinite(scale) else max_abs <= floor
    return Agreement(max_abs, rel, bool(same_nonfinite and (rel <= tol or ok)), nonfinite)


def _row(quantity: str, t: int | None, impl: str, ref: str, a: Agreement, tol: float, floor: float,
         gate: str | None = None) -> dict:
    return dict(quantity=quantity, gate=gate, t=t, implementation=impl, reference=ref, max_abs_err=a.max_abs_err,
                max_rel_err=a.max_rel_err, tol=tol, floor=floor, passed=a.passed, nonfinite=a.nonfinite)


def step_quantities(cell: Cell) -> tuple[str, ...]:
    """The per-step quantities of the backward pass compared at each step, in the order one step computes them:
    the cell's, then the running sums of the weight gradients."""
    return (*(q.name for q in cell.backward), *WEIGHT_ACC)


def whole_quantities(cell: Cell) -> tuple[str, ...]:
    """The whole-sequence results: h, dx, dh0 (dc0), and the full weight gradients."""
    return ("h", "dx", *cell.initial, *GRADIENTS)


def _gates(cell: Cell, q: str) -> tuple[str | None, ...]:
    """The gate blocks a quantity's rows split into (None: one row)."""
    gated = q in WEIGHT_ACC or (q in cell.quantities and cell.quantities[q].gated)
    return cell.gates if (gated and cell.gates) else (None,)


def _block(cell: Cell, q: str, a: np.ndarray, gate: str | None) -> np.ndarray:
    """One gate block of one step's array: the last axis of a (B, G·H) step, the rows of a (G·H, ·) weight."""
    if gate is None:
        return a
    H = a.shape[-1] // cell.G if q not in WEIGHT_ACC else a.shape[0] // cell.G
    sl = cell.gate_slice(gate, H)
    return a[..., sl] if q not in WEIGHT_ACC else a[sl]


def rounding_floor(engine, replay, q: str, t: int | None = None) -> float:
    """FLOOR_FACTOR * max |engine - replay| of quantity q (at step t): see FLOOR_FACTOR. 0 without a replay."""
    if replay is None:
        return 0.0
    a, b = _value(engine, q), _value(replay, q)
    if t is not None:
        a, b = a[t], b[t]
    return _max_floor(a, b)


def _value(result, q: str) -> np.ndarray:
    return result.gradients[q] if q in GRADIENTS else getattr(result, q)


@dataclass(frozen=True)
class Floors:
    """Every rounding floor of one engine run (see FLOOR_FACTOR), so that the replay can be dropped."""
    step: dict[tuple[str, str | None], np.ndarray]   # (quantity, gate) -> (T,) floor of each timestep
    whole: dict[str, float]                          # whole-sequence quantities (dx, dh0, gradients) -> floor


def _steps(cell: Cell, a, b) -> Iterable[tuple[str, int, np.ndarray, np.ndarray]]:
    """(quantity, t, a's step t, b's step t) of every per-step quantity of the backward pass: the cell's for every t,
    then the running sums from t = T-1 down (each derived as it goes, so no (T, ...) weight array is ever built)."""
    for q in cell.backward:
        x, y = getattr(a, q.name), getattr(b, q.name)
        for t in range(x.shape[0]):
            yield q.name, t, x[t], y[t]
    for (t, x), (_, y) in zip(a.iter_sums(), b.iter_sums()):
        for w in GRADIENTS:
            yield f"{w}_acc", t, x[w], y[w]


def rounding_floors(engine: Trace, replay: Trace) -> Floors:
    """The floors of every per-step and whole-sequence row."""
    cell = engine.cell
    T = engine.h.shape[0]
    step: dict[tuple[str, str | None], np.ndarray] = {}
    for q, t, a, b in _steps(cell, engine, replay):
        for g in _gates(cell, q):
            step.setdefault((q, g), np.zeros(T))[t] = _max_floor(_block(cell, q, a, g), _block(cell, q, b, g))
    whole = {q: _max_floor(_value(engine, q), _value(replay, q)) for q in whole_quantities(cell)[1:]}
    return Floors(step, whole)


def _max_floor(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):
        d = np.abs(np.asarray(a) - np.asarray(b))
    d = d[np.isfinite(d)]
    return FLOOR_FACTOR * float(d.max()) if d.size else 0.0


def per_step_rows(engine: Trace, unrolled, tol: float = REL_TOL, replay: Trace | None = None,
                  floors: Floors | None = None) -> Iterable[dict]:
    """Forward quantities for t = 0..T-1, then the backward ones in the order BPTT computes them (t = T-1..0), a row
    per gate block where the quantity has them. replay: the engine's backward on the reference's forward values, for
    the rounding floor (see FLOOR_FACTOR); or floors: what rounding_floors() made of it."""
    cell = engine.cell
    T = engine.h.shape[0]
    if floors is None and replay is not None:
        floors = rounding_floors(engine, replay)
    rows: dict[tuple[str, int], list[dict]] = {}

    def add(q: str, t: int, a: np.ndarray, b: np.ndarray, backward: bool) -> None:
        rows[q, t] = []
        for g in _gates(cell, q):
            floor = float(floors.step[q, g][t]) if (floors and backward) else 0.0
            ag = agreement(_block(cell, q, a, g), _block(cell, q, b, g), tol, floor)
            rows[q, t].append(_row(q, t, "numpy engine", "unrolled autograd", ag, tol, floor, g))

    for q in cell.forward:
        e, u = getattr(engine, q.name), getattr(unrolled, q.name)
        for t in range(T):
            add(q.name, t, e[t], u[t], False)
    for q, t, a, b in _steps(cell, engine, unrolled):
        add(q, t, a, b, True)
    for t in range(T):
        for q in cell.forward:
            yield from rows[q.name, t]
    for t in range(T - 1, -1, -1):
        for q in step_quantities(cell):
            yield from rows[q, t]


def whole_rows(impl_name: str, impl, ref_name: str, ref, tol: float = REL_TOL, replay=None,
               floors: Floors | None = None, cell: Cell | None = None) -> Iterable[dict]:
    """Outputs and final gradients of one implementation against one reference (t is empty)."""
    cell = cell or getattr(impl, "cell", None) or ref.cell
    for q in whole_quantities(cell):
        if q == "h":
            floor = 0.0
        elif floors:
            floor = float(floors.whole[q])
        else:
            floor = rounding_floor(impl, replay, q)
        yield _row(q, None, impl_name, ref_name, agreement(_value(impl, q), _value(ref, q), tol, floor), tol, floor)


def comparison_table(rows: Iterable[dict]) -> pd.DataFrame:
    """One row per (quantity, timestep, implementation, reference); t is empty for whole-sequence rows."""
    df = pd.DataFrame(list(rows), columns=COLUMNS)
    df["t"] = df["t"].astype("Int64")
    return df


def first_divergence(table: pd.DataFrame) -> dict | None:
    """The first per-step quantity, in the order BPTT computes them, where the engine disagrees with autograd."""
    steps = table[table["t"].notna() & (table["implementation"] == "numpy engine")]
    bad = steps[~steps["passed"]]
    if bad.empty:
        return None
    row = bad.iloc[0]
    out = {"quantity": str(row["quantity"]), "t": int(row["t"])}
    if isinstance(row["gate"], str):
        out["gate"] = row["gate"]
    return out


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One line per (quantity, implementation, reference): worst errors over all timesteps, whether all pass, and
    failing_steps of rows (steps, or 1 for a whole-sequence row) failing; whole: the row compares a whole sequence."""
    g = table.groupby(["quantity", "implementation", "reference"], sort=False)
    out = g.agg(max_abs_err=("max_abs_err", "max"), max_rel_err=("max_rel_err", "max"), tol=("tol", "first"),
                floor=("floor", "max"),
                passed=("passed", "all"), nonfinite=("nonfinite", "sum"), rows=("passed", "size"))
    # failing_steps of rows: a failing whole-sequence row (t empty) counts as 1 of 1, like a failing step
    out["failing_steps"] = (out["rows"] - g["passed"].sum()).astype(int)
    out["whole"] = g["t"].apply(lambda s: bool(s.isna().all()))      # compares whole sequences / final gradients
    return out.reset_index()
