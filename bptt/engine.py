"""The NumPy engine: runs a cell's forward and hand-written BPTT into a Trace of every per-step quantity.

Each cell's plain form lives in its module (bptt/cells/rnn.py, lstm.py, gru.py): one loop iteration is the Backward
page's equations, in the same order and with the same names. This is the form to read, and the reproduction script
runs exactly that code. `run_plain` runs it.

`run_engine` is what the app and the CLI use. For the LSTM and the GRU it is the plain form. For the vanilla RNN it is
a fast form: the same hooks in the same order, but only the recurrence (dh_next, dh_total, d_pre, dh_prev;
h_{t-1} W_hhᵀ forward) stays in the loop; the input projection and dx are batched products outside it, and
everything is written into one preallocated block. A batched product may round differently in the last bit from T
small ones, so tests/unit/test_engine.py checks the two forms step by step (1e-15 relative, max-abs), for every bug.

Weight-shaped per-step quantities (a step's contribution to dW_ih, the running sums dW_ih_acc ...) are not kept: each
is a rank-B product of a step's small (B, ·) arrays, and holding them for every t would cost T·G·H·(I+H) floats. A
Trace derives them on demand, through the cell's own `contributions` and the step's `accumulate` hook, in the engine's
order; the full gradients are the same sums down to t = 0, computed once.
A deliberate bug (config.bug) is a step class whose hooks every form calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cells import GRADIENTS, Cell, Step, carry_cut
from .cells import base as _base
from .cells.rnn import RNNStep
from .problem import Problem

__all__ = ["GRADIENTS", "Totals", "Trace", "carry_cut", "forward", "hidden_states", "run_engine", "run_plain"]

WEIGHT_STEP = tuple(f"{w}_step" for w in GRADIENTS)    # step t's contribution, (T, ...) on demand
WEIGHT_ACC = tuple(f"{w}_acc" for w in GRADIENTS)      # the running sums of steps t..T-1, (T, ...) on demand


class Trace:
    """Every number of one forward and backward pass of a cell (the engine's, or an autograd reference's).

    Attributes: each of the cell's per-step quantities (T, B, ·) (`trace.d_pre`, `trace.d_gates`, ...), dh0 (and
    dc0) (B, H), `gradients` (the full weight gradients) and, derived on demand, `trace.dW_ih_step` /
    `trace.dW_ih_acc` (T, ...) or one step's `contribution(w, t)` / the running sums from a step on. Read-only."""

    def __init__(self, problem: Problem, step: type[Step], values: dict[str, np.ndarray],
                 gradients: dict[str, np.ndarray] | None = None):
        self.problem, self.step = problem, step
        self.cell: Cell = problem.cell
        self.values = values
        for v in values.values():
            v.flags.writeable = False
        self._gradients = gradients

    def __getattr__(self, name: str) -> np.ndarray:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        if name in WEIGHT_ACC:
            return self.running_sums()[name[:-4]]
        if name in WEIGHT_STEP:
            return self.contributions()[name[:-5]]
        raise AttributeError(f"a trace has no quantity {name!r}")

    @property
    def gradients(self) -> dict[str, np.ndarray]:
        """The full weight gradients dW_ih, dW_hh, db_ih, db_hh (the running sums at t = 0)."""
        if self._gradients is None:
            self._gradients = _base.gradients(self.cell, self.problem, self.values, self.step)
        return self._gradients

    def contribution(self, w: str, t: int) -> np.ndarray:
        """Step t's contribution to gradient w ("dW_ih" ...)."""
        return self.cell.contributions(self.problem, self.values, t, self.step)[w]

    def running_sums(self, lo: int = 0, hi: int | None = None, start: tuple | None = None) -> dict[str, np.ndarray]:
        """{w: (hi - lo, ...) the sums of the contributions of steps t..T-1, for t = lo ... hi-1 (hi: T)}; start
        (t0, sums at t0) goes on from there instead of from T-1 (bit for bit the same)."""
        return _base.running_sums(self.cell, self.problem, self.values, self.step, lo, hi, start)

    def iter_sums(self):
        """(t, {w: the running sum of steps t..T-1}) for t = T-1 down to 0, one step's sums alive at a time."""
        return _base.iter_sums(self.cell, self.problem, self.values, self.step)

    def contributions(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        """{w: (hi - lo, ...) each step's own contribution, for t = lo ... hi-1 (hi: T)}."""
        hi = self.values["h"].shape[0] if hi is None else hi
        steps = [self.cell.contributions(self.problem, self.values, t, self.step) for t in range(lo, hi)]
        return {w: np.stack([c[w] for c in steps]) for w in GRADIENTS}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every per-step quantity, the initial states' gradients and the weight-shaped (T, ...) quantities."""
        steps = {f"{w}_step": v for w, v in self.contributions().items()}
        return {**self.values, **steps, **{f"{w}_acc": v for w, v in self.running_sums().items()}}


@dataclass(frozen=True)
class Totals:
    """The outputs and whole-sequence gradients of one implementation (torch.nn.RNN/LSTM/GRU, the hand-written torch
    operator), as numpy float64; compare.whole_rows reads these, or the same names of a Trace."""
    h: np.ndarray      # (T, B, H)
    dx: np.ndarray     # (T, B, I)
    dh0: np.ndarray    # (B, H)
    dW_ih: np.ndarray  # (G·H, I)
    dW_hh: np.ndarray  # (G·H, H)
    db_ih: np.ndarray  # (G·H,)
    db_hh: np.ndarray  # (G·H,)
    dc0: np.ndarray | None = None   # (B, H) the LSTM's

    @property
    def gradients(self) -> dict[str, np.ndarray]:
        """The full weight gradients dW_ih, dW_hh, db_ih, db_hh."""
        return {"dW_ih": self.dW_ih, "dW_hh": self.dW_hh, "db_ih": self.db_ih, "db_hh": self.db_hh}


def activation_derivative(config, a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The vanilla RNN's true f'(a_t) (whatever config.bug says): 1 - h_t² for tanh, [a_t > 0] for relu. Any shape."""
    return RNNStep.fprime(config.nonlinearity, a, h)


def _initial_gradients(cell: Cell, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """dh0 (and dc0): what step 0 sends back."""
    return {f"d{s}0": values[f"d{s}_prev"][0].copy() for s in cell.states}


# ----------------------------------------------------------------------------------------------------------------------
# the plain form

def run_plain(p: Problem, forward_values: dict[str, np.ndarray] | None = None) -> Trace:
    """The cell's plain form as a Trace: its forward (or forward_values), then its BPTT with the config's bug."""
    cell = p.cell
    step = cell.step_of(p.config.bug)
    with np.errstate(all="ignore"):
        fwd = cell.run_forward(p) if forward_values is None else {
            q.name: np.array(forward_values[q.name], dtype=np.float64) for q in cell.forward}
        values = {**fwd, **cell.run_backward(p, fwd, step)}
        values.update(_initial_gradients(cell, values))
        trace = Trace(p, step, values)
        trace.gradients  # noqa: B018  (the full gradients are part of the pass)
    return trace


# ----------------------------------------------------------------------------------------------------------------------
# the vanilla RNN's fast form: the same hooks in the same order, with everything off the recurrence batched

def _arena(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Uninitialised float64 arrays of these shapes, cut from one allocation (64-byte aligned views).

    A dozen separate arrays of a few MB each are faulted in 4 KiB page by page on every call (the allocator hands
    them back to the OS in between); one large block gets transparent huge pages. At I=64, H=128, T=100, B=32 that
    is ~550 page faults instead of ~8,000, and about a third of the engine's time."""
    sizes = {k: math.prod(v) for k, v in shapes.items()}
    pad = lambda n: -(-n // 8) * 8  # noqa: E731  (8 float64 = 64 bytes)
    buf = np.empty(sum(pad(n) for n in sizes.values()))
    out, i = {}, 0
    for k, shape in shapes.items():
        out[k] = buf[i:i + sizes[k]].reshape(shape)
        i += pad(sizes[k])
    return out


def hidden_states(p: Problem) -> np.ndarray:
    """h_t (T, B, H) of any cell's forward pass (the vanilla RNN's by the fast form)."""
    with np.errstate(all="ignore"):
        return forward(p)[1] if p.config.cell == "rnn" else p.cell.run_forward(p)["h"]


def forward(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The vanilla RNN's a, h: (T, B, H) each, by the fast form (each step equal to rnn_forward's to 1e-15)."""
    T, B, _ = p.x.shape
    H = p.W_hh.shape[0]
    a, hh = np.empty((T, B, H)), np.empty((T + 1, B, H))
    _forward_into(p, a, hh)
    return a, hh[1:]


def _forward_into(p: Problem, a: np.ndarray, hh: np.ndarray) -> None:
    """rnn_forward into a (T, B, H) and hh = [h0, h_0, ..., h_{T-1}] (T+1, B, H), so h = hh[1:], h_{t-1} = hh[:-1].

    The input part x_t W_ihᵀ + b_ih of every step is one (T*B, I) product before the loop (it does not depend on h);
    the loop adds h_{t-1} W_hhᵀ + b_hh in rnn_forward's order. One big product instead of T small ones can round
    differently in the last bit (BLAS takes other paths), so each step agrees with rnn_forward's to ~1e-16."""
    T, B, I = p.x.shape
    H = p.W_hh.shape[0]
    np.matmul(p.x.reshape(T * B, I), p.W_ih.T, out=a.reshape(T * B, H))           # (T, B, H) x_t W_ihᵀ, every t
    a += p.b_ih
    hh[0] = p.h0
    W_hhT = np.ascontiguousarray(p.W_hh.T)                                        # (H, H), rows read in order
    rec = np.empty((B, H))                                                        # (B, H) h_{t-1} W_hhᵀ, reused
    with np.errstate(all="ignore"):
        for t in range(T):
            np.matmul(hh[t], W_hhT, out=rec)
            a[t] += rec
            a[t] += p.b_hh
            if p.config.nonlinearity == "tanh":
                np.tanh(a[t], out=hh[t + 1])
            else:
                np.maximum(a[t], 0.0, out=hh[t + 1])


def run_engine(p: Problem, forward_values: dict[str, np.ndarray] | None = None) -> Trace:
    """Forward, then BPTT by hand for t = T-1 ... 0, with the full gradients; the LSTM's and the GRU's plain form,
    the vanilla RNN's fast form (equal to run_plain to 1e-15, step by step).

    forward_values ({"a", "h"}, or the cell's forward quantities), if given, replace the engine's own forward pass:
    the backward then runs on another implementation's forward values (compare.py uses this to tell rounding in the
    forward pass from the backward's)."""
    if p.config.cell != "rnn":
        return run_plain(p, forward_values)
    cfg = p.config
    step = p.cell.step_of(cfg.bug)
    T, B, I = p.x.shape
    H = p.W_hh.shape[0]
    r = _arena({"a": (T, B, H), "hh": (T + 1, B, H), "dh_next": (T, B, H), "dh_total": (T, B, H),
                "d_pre": (T, B, H), "dx": (T, B, I), "dh_prev": (T, B, H), "dh0": (B, H)})
    a, hh, dh_next, dh_total, d_pre, dh_prev = (r[k] for k in ("a", "hh", "dh_next", "dh_total", "d_pre", "dh_prev"))
    if forward_values is None:
        _forward_into(p, a, hh)
    else:
        a[...], hh[0], hh[1:] = forward_values["a"], p.h0, forward_values["h"]
    h = hh[1:]                                                                     # (T, B, H) h_t, a view
    with np.errstate(all="ignore"):
        # the recurrence: bptt's dh_next, dh_total, d_pre, dh_prev lines
        for t in range(T - 1, -1, -1):
            if t == T - 1 or carry_cut(t + 1, cfg.truncate):
                dh_next[t] = 0.0
            else:
                dh_next[t] = dh_prev[t + 1]
            dh_total[t] = step.total_gradient(p.dh_out[t], dh_next[t], t, T)
            np.multiply(dh_total[t], step.fprime(cfg.nonlinearity, a[t], h[t]), out=d_pre[t])
            dh_prev[t] = step.carry(d_pre[t], p.W_hh, t)
        r["dh0"][...] = dh_prev[0]
        # bptt's dx line for all steps at once: it does not feed the recurrence
        np.matmul(d_pre.reshape(T * B, H), p.W_ih, out=r["dx"].reshape(T * B, I))                # (T, B, I)
        trace = Trace(p, step, {"a": a, "h": h, "dh_next": dh_next, "dh_total": dh_total, "d_pre": d_pre,
                                "dx": r["dx"], "dh_prev": dh_prev, "dh0": r["dh0"]})
        trace.gradients  # noqa: B018  (the full gradients are part of the pass)
    return trace
