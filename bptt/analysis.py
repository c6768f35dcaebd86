"""One config in, every number out: the engine, the hand-written operator, both references and their comparison.

An Analysis is lean: at the largest config the full traces are ~440 MB, so it keeps each array exactly but compactly.
Most per-step quantities are cheap to derive from a few others (dh_prev = d_pre @ W_hh, acc = reverse cumsum of the
steps, ...), and every reference agrees with the engine to the last bits. So each array is stored as the difference
of its bit pattern from a *base* re-derived on access (the engine's own recipe, or the engine's value for the
references) in the smallest integer type that holds it, plus the few entries that do not fit: usually nothing at all,
or one byte per number. Decoding is exact: the same bits come back, whatever the base (a poor base only costs space).
Decoded arrays are memoized in the process's memory budget (bptt.memory), read-only, so a page re-reading
`analysis.engine.d_pre[t]` pays once per config.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .autograd_op import run_op
from .compare import comparison_table, first_divergence, floors, per_step_rows, whole_rows
from .config import RNNConfig
from .engine import Trace, run_engine
from .memory import BUDGET, report
from .problem import Problem, draw_problem
from .reference import torch_rnn_reference, unrolled_reference

TRACE_FIELDS = ("a", "h", "dh_next", "dh_total", "d_pre", "dx", "dh_prev", "dh0", "dW_ih_step", "dW_hh_step",
                "db_ih_step", "db_hh_step", "dW_ih_acc", "dW_hh_acc", "db_ih_acc", "db_hh_acc")
RESULT_FIELDS = ("h", "dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")
GRADIENT_OF = {"dW_ih": "dW_ih_acc", "dW_hh": "dW_hh_acc", "db_ih": "db_ih_acc", "db_hh": "db_hh_acc"}
INT_TYPES = (np.int8, np.int16, np.int32)
DECODE_WORK = 3    # decoding an array needs ~3x its size while it runs (its base, the base's inputs, the result)
DECODED_TTL = 15.0  # seconds a decoded array stays cached unused: a page's working set, remade in well under 1 s


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


def unpack(pk: Packed, base: Callable[[], np.ndarray]) -> np.ndarray:
    """The array pk was packed from, bit for bit; base() must rebuild the base it was packed against."""
    if pk.full is not None:
        return pk.full
    b = _bits(base())
    out = b.copy() if pk.diff is None else b + pk.diff
    out = out.view(np.float64)
    out[pk.index] = pk.value
    return _readonly(out.reshape(pk.shape))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------------------------------------------------
# a trace (or a reference's result) kept lean, with the same attribute names

class Lean:
    """Read-only, Trace-like: `lean.d_pre`, `lean.gradients` etc. rebuild the exact arrays (memoized in the budget).

    role names it within its config ("engine", "unrolled", "torch_rnn", "op"); recipes[name](view) gives the base of
    a field from the fields packed before it (view.<name>) and from the base trace (view.base.<name>)."""

    def __init__(self, config: RNNConfig, role: str, names: tuple[str, ...], recipes: dict[str, Callable],
                 base: Lean | None = None):
        self.config, self.role, self.names, self.base = config, role, names, base
        self._recipes = recipes
        self.packed: dict[str, Packed] = {}
        self._gradients: dict[str, np.ndarray] = {}

    def add(self, name: str, x: np.ndarray) -> None:
        """Pack field `name` against its base, derived from what is packed so far."""
        recipe = self._recipes.get(name)
        self.packed[name] = pack(x, recipe(_View(self, cached=False)) if recipe else None)

    def __getattr__(self, name: str) -> np.ndarray:
        packed = self.__dict__.get("packed", {})
        if name not in packed:
            raise AttributeError(f"{type(self).__name__} {self.__dict__.get('role')!r} has no field {name!r}")
        return self.get(name, cached=True)

    def get(self, name: str, cached: bool = True) -> np.ndarray:
        """Field `name`, exact; cached: memoized in the process's budget (else decoded afresh, kept by nobody)."""
        pk = self.packed[name]
        if pk.full is not None:
            return pk.full
        if not cached:
            return self._decode(name, False)
        return BUDGET.get((self.config, self.role, name), lambda: self._decode(name, True), heavy=False,
                          reserve=DECODE_WORK * 8 * math.prod(pk.shape), ttl=DECODED_TTL)

    def _decode(self, name: str, cached: bool) -> np.ndarray:
        # the fields a base is made from are decoded afresh, not cached: only what a caller asked for takes budget
        return unpack(self.packed[name], lambda: self._recipes[name](_View(self, cached=False)))

    @property
    def gradients(self) -> dict[str, np.ndarray]:
        """The full weight gradients dW_ih, dW_hh, db_ih, db_hh."""
        if self._gradients:
            return dict(self._gradients)
        return {k: self.get(k) for k in GRADIENT_OF}

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: self.get(k) for k in self.names}

    def nbytes(self) -> int:
        """Bytes this object holds (its packed arrays)."""
        return sum(a.nbytes for pk in self.packed.values() for a in (pk.diff, pk.index, pk.value, pk.full)
                   if a is not None) + sum(g.nbytes for g in self._gradients.values())


class _View:
    """Attribute access to a Lean's fields for the recipes, cached or not (the base trace as .base)."""

    def __init__(self, lean: Lean, cached: bool):
        self._lean, self._cached = lean, cached

    def __getattr__(self, name: str) -> np.ndarray:
        return self._lean.get(name, self._cached)

    @property
    def base(self) -> _View:
        return _View(self._lean.base, self._cached)


def _carry_cut(t: int, truncate: int) -> bool:
    return truncate > 0 and t > 0 and t % truncate == 0


def _shift_carry(dh_prev: np.ndarray, truncate: int) -> np.ndarray:
    """dh_next from dh_prev: dh_next[t] = dh_prev[t+1], 0 at the last step and where truncation cuts the carry."""
    out = np.zeros_like(dh_prev)
    out[:-1] = dh_prev[1:]
    for t in range(1, dh_prev.shape[0]):
        if _carry_cut(t, truncate):
            out[t - 1] = 0.0
    return out


def _reverse_cumsum(steps: np.ndarray) -> np.ndarray:
    """acc[t] = steps[t] + acc[t+1], as the engine sums."""
    acc = np.empty_like(steps)
    acc[-1] = steps[-1]
    for t in range(steps.shape[0] - 2, -1, -1):
        np.add(steps[t], acc[t + 1], out=acc[t])
    return acc


def _engine_recipes(p: Problem) -> dict[str, Callable]:
    """Bases of the engine's fields from a, d_pre and the problem: the forward and backward equations, batched."""
    cfg = p.config
    act = np.tanh if cfg.nonlinearity == "tanh" else (lambda a: np.maximum(a, 0.0))
    hprev = lambda s: np.concatenate([p.h0[None], s.h[:-1]])  # noqa: E731   (T, B, H) h_{t-1}
    r: dict[str, Callable] = {
        "h": lambda s: act(s.a),
        "dh_prev": lambda s: s.d_pre @ p.W_hh,                                  # (T, B, H)
        "dh_next": lambda s: _shift_carry(s.dh_prev, cfg.truncate),
        "dh_total": lambda s: p.dh_out + s.dh_next,
        "dx": lambda s: s.d_pre @ p.W_ih,                                       # (T, B, I)
        "dW_ih_step": lambda s: s.d_pre.transpose(0, 2, 1) @ p.x,               # (T, H, I)
        "dW_hh_step": lambda s: s.d_pre.transpose(0, 2, 1) @ hprev(s),          # (T, H, H)
        "db_ih_step": lambda s: s.d_pre.sum(axis=1),                            # (T, H)
        "db_hh_step": lambda s: s.db_ih_step,
    }
    for w in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        r[w + "_acc"] = lambda s, w=w: _reverse_cumsum(getattr(s, w + "_step"))
    return r


def _reference_recipes(p: Problem) -> dict[str, Callable]:
    """Bases of the unrolled reference's fields: the engine's values, and its own carry and running sums."""
    r: dict[str, Callable] = {k: (lambda s, k=k: getattr(s.base, k)) for k in TRACE_FIELDS}
    r["dh_next"] = lambda s: _shift_carry(s.dh_prev, p.config.truncate)
    r["dh_total"] = lambda s: p.dh_out + s.dh_next
    for w in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        r[w + "_acc"] = lambda s, w=w: np.cumsum(getattr(s, w + "_step")[::-1], axis=0)[::-1]
    return r


# fields in packing order: a field's recipe reads only fields before it
ENGINE_ORDER = ("a", "d_pre", "dh0", "h", "dh_prev", "dh_next", "dh_total", "dx", "dW_ih_step", "dW_hh_step",
                "db_ih_step", "db_hh_step", "dW_ih_acc", "dW_hh_acc", "db_ih_acc", "db_hh_acc")
REFERENCE_ORDER = ("a", "h", "d_pre", "dx", "dh_prev", "dh0", "dh_next", "dh_total", "dW_ih_step", "dW_hh_step",
                   "db_ih_step", "db_hh_step", "dW_ih_acc", "dW_hh_acc", "db_ih_acc", "db_hh_acc")


def lean_trace(config: RNNConfig, role: str, trace: Trace, recipes: dict[str, Callable], order: tuple[str, ...],
               base: Lean | None = None) -> Lean:
    """A Lean copy of a Trace (exact; the Trace can be dropped afterwards)."""
    lean = Lean(config, role, TRACE_FIELDS, recipes, base)
    for name in order:
        lean.add(name, getattr(trace, name))
    lean._gradients = {k: _readonly(np.array(v, copy=True)) for k, v in trace.gradients.items()}
    return lean


def lean_result(config: RNNConfig, role: str, result, engine: Lean) -> Lean:
    """A Lean copy of torch.nn.RNN's or the operator's result: h and dx against the engine's, the rest whole."""
    recipes = {"h": lambda s: s.base.h, "dx": lambda s: s.base.dx}
    lean = Lean(config, role, RESULT_FIELDS, recipes, engine)
    for name in RESULT_FIELDS:
        lean.add(name, getattr(result, name))
    return lean


# ----------------------------------------------------------------------------------------------------------------------
# the analysis

WORK_FACTOR = 2.5   # analyze()'s temporaries peak at ~2.2x one full trace (the unrolled reference's autograd graph,
                    # measured at the largest config); the budget reserves this much while it runs


def trace_bytes(config: RNNConfig) -> int:
    """Bytes of one full Trace of this config (every per-step quantity, float64)."""
    T, B, I, H = config.seq_len, config.batch_size, config.input_size, config.hidden_size
    return 8 * (T * B * (6 * H + I) + B * H + 2 * T * H * (I + H + 2))


def forward_bytes(config: RNNConfig) -> int:
    """Bytes of one forward pass's a and h (T, B, H) of this config."""
    return 8 * 2 * config.seq_len * config.batch_size * config.hidden_size


def work_bytes(config: RNNConfig) -> int:
    """Bytes analyze(config) needs while it runs, beyond what the Analysis keeps (an estimate, for the budget)."""
    return int(WORK_FACTOR * trace_bytes(config))

@dataclass(frozen=True)
class Analysis:
    """Everything the app, the CLI and the exports show for one config. Read-only."""
    config: RNNConfig
    problem: Problem
    engine: Lean                  # the NumPy engine (makes config.bug on purpose); the attributes of a Trace
    unrolled: Lean                # reference (b): the unrolled autograd graph; the attributes of a Trace
    torch_rnn: Lean               # reference (a): torch.nn.RNN; the attributes of a TorchRNNResult
    op: Lean                      # the hand-written torch.autograd.Function; the attributes of an OpResult
    table: pd.DataFrame           # compare.COLUMNS, one row per (quantity, t, implementation, reference)

    @cached_property
    def first_divergence(self) -> dict | None:
        """{"quantity", "t"} (t 0-based) of the first per-step disagreement of the engine, or None."""
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


class _Uncached:
    """A Lean's fields decoded afresh on each access and kept by nobody (while analyze builds the table)."""

    def __init__(self, lean: Lean):
        self._lean = lean

    def __getattr__(self, name: str) -> np.ndarray:
        return self._lean.get(name, cached=False)

    @property
    def gradients(self) -> dict[str, np.ndarray]:
        return self._lean.gradients


def analyze(config: RNNConfig) -> Analysis:
    """Draw the problem and run the engine, the operator and both references on it; keep them lean.

    Each full trace is packed as soon as it is made and dropped, so that at most two are alive at once (the unrolled
    reference's and, for tanh, the engine's replay for the rounding floor); the table is computed from the exact
    float64 values, one quantity at a time. Stages are report()ed for a waiting page."""
    report("engine")
    p = draw_problem(config)
    engine = lean_trace(config, "engine", run_engine(p), _engine_recipes(p), ENGINE_ORDER)
    report("references")
    full = unrolled_reference(p)
    unrolled = lean_trace(config, "unrolled", full, _reference_recipes(p), REFERENCE_ORDER, base=engine)
    a, h = full.a, full.h
    del full
    torch_rnn = lean_result(config, "torch_rnn", torch_rnn_reference(p), engine)
    op = lean_result(config, "op", run_op(p), engine)
    report("comparison")
    e, u, r, o = _Uncached(engine), _Uncached(unrolled), _Uncached(torch_rnn), _Uncached(op)
    # the engine's backward replayed on the reference's forward values: the rounding floor (compare.FLOOR_FACTOR);
    # relu's f' is exact, so only tanh needs it. Only the floors are kept.
    fl = floors(e, run_engine(p, (a, h))) if config.nonlinearity == "tanh" else None
    del a, h
    table = comparison_table([
        *per_step_rows(e, u, floors=fl),
        *whole_rows("numpy engine", e, "torch.nn.RNN", r, floors=fl),
        *whole_rows("torch operator", o, "torch.nn.RNN", r),
        *whole_rows("unrolled autograd", u, "torch.nn.RNN", r),
    ])
    return Analysis(config, p, engine, unrolled, torch_rnn, op, table)
