"""One config in, every number out: the engine, the hand-written operator, both references and their comparison.

How an Analysis is kept (it must stay small: at the largest config one full LSTM trace is ~140 MB):
- the engine's Trace as it is: its (T, B, ·) arrays, read-only; its weight-shaped per-step quantities (a step's
  contribution to dW_ih, the running sums) are derived on demand by the cell's own code (bptt/engine.py);
- every reference agrees with the engine to the last bits, so each of its arrays is stored as the difference of its
  bit pattern from the engine's array of the same name, in the smallest integer type that holds it, plus the few
  entries that do not fit: usually one byte per number, or nothing. Reading it back adds the difference to the
  engine's array: exact, whatever the base (a poor base only costs space), and nothing is recomputed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .autograd_op import run_op
from .compare import comparison_table, first_divergence, per_step_rows, rounding_floors, whole_rows
from .config import RNNConfig
from .engine import WEIGHT_ACC, WEIGHT_STEP, Totals, Trace, run_engine
from .memory import report
from .problem import Problem, draw_problem
from .reference import torch_rnn_reference, unrolled_reference

INT_TYPES = (np.int8, np.int16, np.int32)


# ----------------------------------------------------------------------------------------------------------------------
# exact, compact storage of one float64 array

@dataclass(frozen=True)
class Packed:
    """A float64 array stored exactly: its bits minus a base's bits, in a small integer type, plus the misfits."""
    shape: tuple[int, ...]
    diff: np.ndarray | None    # bits(x) - bits(base), flat, int8/16/32; None when x is the base bit for bit
    index: np.ndarray          # flat positions where the difference does not fit diff's type (int64)
    value: np.ndarray          # x at those positions (float64)
    full: np.ndarray | None    # x itself, when storing it whole is no larger (then no base is needed)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64).view(np.int64).reshape(-1)


def pack(x: np.ndarray, base: np.ndarray | None) -> Packed:
    """x, stored as compactly as its base allows (the whole of x when base is None or too different)."""
    x = np.asarray(x, dtype=np.float64)
    empty_i, empty_v = np.empty(0, np.int64), np.empty(0)
    if base is None or base.shape != x.shape:
        return Packed(x.shape, None, empty_i, empty_v, _readonly(np.array(x, copy=True)))
    with np.errstate(over="ignore"):
        d = _bits(x) - _bits(base)                               # modular: base + d gives x's bits back exactly
    if not d.any():
        return Packed(x.shape, None, empty_i, empty_v, None)
    best, best_cost = None, x.nbytes
    for it in INT_TYPES:
        lim = np.iinfo(it)
        misfit = np.flatnonzero((d < lim.min) | (d > lim.max))
        cost = d.size * np.dtype(it).itemsize + misfit.size * 16
        if cost < best_cost:
            best, best_cost = (it, misfit), cost
    if best is None:
        return Packed(x.shape, None, empty_i, empty_v, _readonly(np.array(x, copy=True)))
    it, misfit = best
    small = d.copy()
    small[misfit] = 0
    return Packed(x.shape, _readonly(small.astype(it)), _readonly(misfit.astype(np.int64)),
                  _readonly(x.reshape(-1)[misfit].copy()), None)


def unpack(pk: Packed, base: np.ndarray | None) -> np.ndarray:
    """The array pk was packed from, bit for bit; base is the array it was packed against."""
    if pk.full is not None:
        return pk.full
    b = _bits(base)
    out = b.copy() if pk.diff is None else b + pk.diff
    out = out.view(np.float64)
    out[pk.index] = pk.value
    return _readonly(out.reshape(pk.shape))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------------------------------------------------
# a reference, kept as differences from the engine

class Stored:
    """A reference's arrays (an unrolled Trace's values, or a torch module's Totals), each packed against the
    engine's array of the same name; read back exactly by attribute (`stored.d_gates`), with `gradients` and, for a
    trace, `trace()` (the whole Trace again, for its running sums)."""

    def __init__(self, engine: Trace, arrays: dict[str, np.ndarray | None], gradients: dict[str, np.ndarray],
                 step=None):
        self.engine, self.step = engine, step
        self.packed = {k: pack(v, engine.values.get(k)) for k, v in arrays.items() if v is not None}
        self.gradients = {k: _readonly(np.array(v, copy=True)) for k, v in gradients.items()}

    def __getattr__(self, name: str) -> np.ndarray:
        packed = self.__dict__.get("packed", {})
        if name in WEIGHT_ACC + WEIGHT_STEP and self.__dict__.get("step") is not None:
            return getattr(self.trace(), name)                  # derived from the decoded trace, like the engine's
        if name not in packed:
            raise AttributeError(f"this reference has no quantity {name!r}")
        return unpack(packed[name], self.engine.values.get(name))

    def trace(self) -> Trace:
        """The reference as a Trace again (decoded afresh; kept by nobody): its running sums come from it."""
        return Trace(self.engine.problem, self.step, {k: getattr(self, k) for k in self.packed}, self.gradients)

    def running_sums(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        return self.trace().running_sums(lo, hi)

    def iter_sums(self):
        return self.trace().iter_sums()

    def nbytes(self) -> int:
        """Bytes this object holds (its packed arrays and gradients)."""
        return sum(a.nbytes for pk in self.packed.values() for a in (pk.diff, pk.index, pk.value, pk.full)
                   if a is not None) + sum(g.nbytes for g in self.gradients.values())


def _stored_totals(engine: Trace, totals: Totals) -> Stored:
    arrays = {"h": totals.h, "dx": totals.dx, "dh0": totals.dh0, "dc0": totals.dc0}
    return Stored(engine, arrays, totals.gradients)


# ----------------------------------------------------------------------------------------------------------------------
# the analysis

WORK_FACTOR = 2.5   # analyze()'s temporaries peak at ~2.2x one full trace (the unrolled reference's autograd graph,
                    # measured at the largest config); the budget reserves this much while it runs


def trace_bytes(config: RNNConfig) -> int:
    """Bytes of one engine Trace of this config (every (T, B, ·) per-step quantity, float64)."""
    from .cells import cell_of
    cell = cell_of(config.cell)
    T, B, I, H = config.seq_len, config.batch_size, config.input_size, config.hidden_size
    per_step = sum(math.prod(cell.shape(q.kind, 1, B, I, H)) for q in (*cell.forward, *cell.backward))   # T = 1
    return 8 * (T * per_step + len(cell.states) * B * H + 2 * cell.G * H * (I + H + 2))


def forward_bytes(config: RNNConfig) -> int:
    """Bytes of one forward pass's states (T, B, H) of this config (a and h; the LSTM's c and h)."""
    return 8 * 2 * config.seq_len * config.batch_size * config.hidden_size


def work_bytes(config: RNNConfig) -> int:
    """Bytes analyze(config) needs while it runs, beyond what the Analysis keeps (an estimate, for the budget)."""
    return int(WORK_FACTOR * trace_bytes(config))


@dataclass(frozen=True)
class Analysis:
    """Everything the app, the CLI and the exports show for one config. Read-only."""
    config: RNNConfig
    problem: Problem
    engine: Trace                 # the NumPy engine (makes config.bug on purpose)
    unrolled: Stored              # reference (b): the unrolled autograd graph, every per-step quantity
    torch_rnn: Stored             # reference (a): the cell's torch module (torch.nn.RNN, LSTM or GRU): totals
    op: Stored                    # the hand-written torch.autograd.Function: totals
    table: pd.DataFrame           # compare.COLUMNS, one row per (quantity, gate, t, implementation, reference)

    @property
    def cell(self):
        return self.problem.cell

    @cached_property
    def first_divergence(self) -> dict | None:
        """{"quantity", "t"[, "gate"]} (t 0-based) of the first per-step disagreement of the engine, or None."""
        return first_divergence(self.table)

    @property
    def all_passed(self) -> bool:
        return bool(self.table["passed"].all())

    @property
    def worst_rel_err(self) -> float:
        return float(self.table["max_rel_err"].max())

    @property
    def any_nonfinite(self) -> bool:
        return bool(self.table["nonfinite"].sum() > 0)

    def step_rows(self, t: int) -> pd.DataFrame:
        """The comparison rows of timestep t (0-based), engine against the unrolled reference."""
        tab = self.table
        return tab[(tab["t"] == t) & (tab["implementation"] == "numpy engine")].reset_index(drop=True)


def analyze(config: RNNConfig) -> Analysis:
    """Draw the problem and run the engine, the operator and both references on it; keep the references as
    differences from the engine.

    The unrolled reference's full trace lives only until it is stored and the table is built, so that at most two
    full traces are alive at once (it and the engine's replay for the rounding floor). Stages are report()ed for a
    waiting page."""
    report("engine")
    p = draw_problem(config)
    engine = run_engine(p)
    report("references")
    full = unrolled_reference(p)
    torch_totals = torch_rnn_reference(p)
    op_totals = run_op(p)
    report("comparison")
    # the engine's backward replayed on the reference's forward values: the rounding floor (compare.FLOOR_FACTOR);
    # relu's f' is exact, so only tanh (and every gated cell) needs it. Only the floors are kept.
    fl = None
    if config.nonlinearity == "tanh":
        fl = rounding_floors(engine, run_engine(p, {q.name: full.values[q.name] for q in p.cell.forward}))
    table = comparison_table([
        *per_step_rows(engine, full, floors=fl),
        *whole_rows("numpy engine", engine, p.cell.torch_name, torch_totals, floors=fl),
        *whole_rows("torch operator", op_totals, p.cell.torch_name, torch_totals, cell=p.cell),
        *whole_rows("unrolled autograd", full, p.cell.torch_name, torch_totals),
    ])
    unrolled = Stored(engine, full.values, full.gradients, full.step)
    del full
    return Analysis(config, p, engine, unrolled, _stored_totals(engine, torch_totals),
                    _stored_totals(engine, op_totals), table)
