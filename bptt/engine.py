"""The NumPy engine: forward and hand-written BPTT for a vanilla RNN, recording every per-step quantity.

Two forms of the same computation:
- the plain form, `rnn_forward` and `bptt`: one loop iteration is the Backward page's equations, in the same order
  and with the same names. This is the form to read (and the reproduction script runs exactly this code);
- the fast form, `run_engine`: the same hooks in the same order, but only the recurrence (dh_next, dh_total, d_pre,
  dh_prev; h_{t-1} W_hhᵀ forward) stays in the loop; the input projection, dx and the weight-gradient contributions
  of all steps are batched products outside it, and everything is written into one preallocated block. Fewer, larger
  BLAS calls is what makes it fast (small multi-threaded products wait on each other). A batched product may round
  differently in the last bit from T small ones, so tests/unit/test_engine.py checks the two forms step by step: on
  the same inputs every quantity agrees to 1e-15 relative (max-abs), for every bug.
A deliberate bug (config.bug) is a bptt.bugs.Step whose hooks both forms call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .bugs import Step, step_of
from .config import RNNConfig
from .problem import Problem

# The per-step quantities of the backward pass, in the order one step computes them. Time-major, 0-based t.
STEP_QUANTITIES = ("dh_next", "dh_total", "d_pre", "dx", "dh_prev",
                   "dW_ih_acc", "dW_hh_acc", "db_ih_acc", "db_hh_acc")
FORWARD_QUANTITIES = ("a", "h")
GRADIENTS = ("dW_ih", "dW_hh", "db_ih", "db_hh")


@dataclass(frozen=True)
class Trace:
    """Every number of one forward and backward pass (engine or unrolled reference share this shape)."""
    a: np.ndarray          # (T, B, H) pre-activation a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    h: np.ndarray          # (T, B, H) hidden state h_t = f(a_t)
    dh_next: np.ndarray    # (T, B, H) gradient carried into h_t from step t+1 (0 at t = T-1 and where truncated)
    dh_total: np.ndarray   # (T, B, H) dL/dh_t = dh_out[t] + dh_next[t]
    d_pre: np.ndarray      # (T, B, H) dL/da_t = dh_total ⊙ f'(a_t)  ("d_tanh" for tanh, "d_relu" for relu)
    dx: np.ndarray         # (T, B, I) dL/dx_t = d_pre[t] @ W_ih
    dh_prev: np.ndarray    # (T, B, H) what step t sends to h_{t-1}: d_pre[t] @ W_hh (before any truncation cut)
    dh0: np.ndarray        # (B, H) dL/dh0 = dh_prev[0]
    dW_ih_step: np.ndarray  # (T, H, I) step t's contribution d_pre[t]ᵀ x_t
    dW_hh_step: np.ndarray  # (T, H, H) step t's contribution d_pre[t]ᵀ h_{t-1}
    db_ih_step: np.ndarray  # (T, H) step t's contribution: d_pre[t] summed over the batch
    db_hh_step: np.ndarray  # (T, H) the same as db_ih_step
    dW_ih_acc: np.ndarray  # (T, H, I) sum of the contributions of steps t..T-1; dW_ih_acc[0] is the full gradient
    dW_hh_acc: np.ndarray  # (T, H, H)
    db_ih_acc: np.ndarray  # (T, H)
    db_hh_acc: np.ndarray  # (T, H)

    @property
    def gradients(self) -> dict[str, np.ndarray]:
        """The full weight gradients dW_ih, dW_hh, db_ih, db_hh."""
        return {"dW_ih": self.dW_ih_acc[0], "dW_hh": self.dW_hh_acc[0],
                "db_ih": self.db_ih_acc[0], "db_hh": self.db_hh_acc[0]}

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Totals:
    """The outputs and whole-sequence gradients of one implementation (torch.nn.RNN, the hand-written torch operator),
    as numpy float64; compare.whole_rows reads these, or the same names of a Trace."""
    h: np.ndarray      # (T, B, H)
    dx: np.ndarray     # (T, B, I)
    dh0: np.ndarray    # (B, H)
    dW_ih: np.ndarray  # (H, I)
    dW_hh: np.ndarray  # (H, H)
    db_ih: np.ndarray  # (H,)
    db_hh: np.ndarray  # (H,)

    @property
    def gradients(self) -> dict[str, np.ndarray]:
        """The full weight gradients dW_ih, dW_hh, db_ih, db_hh."""
        return {"dW_ih": self.dW_ih, "dW_hh": self.dW_hh, "db_ih": self.db_ih, "db_hh": self.db_hh}


def carry_cut(t: int, truncate: int) -> bool:
    """Whether truncated BPTT cuts the carry from step t to step t-1 (h_{t-1} is detached before step t)."""
    return truncate > 0 and t > 0 and t % truncate == 0


def activation_derivative(config: RNNConfig, a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The true f'(a_t) (whatever config.bug says): 1 - h_t² for tanh, [a_t > 0] for relu. Any shape."""
    return Step.fprime(config.nonlinearity, a, h)


# ----------------------------------------------------------------------------------------------------------------------
# the plain form: the derivation, line by line

def rnn_forward(x: np.ndarray, h0: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray,
                b_hh: np.ndarray, nonlinearity: str) -> tuple[np.ndarray, np.ndarray]:
    """a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh and h_t = f(a_t) for t = 0 ... T-1: a, h, each (T, B, H)."""
    T, B, _ = x.shape
    H = W_hh.shape[0]
    a = np.zeros((T, B, H))
    h = np.zeros((T, B, H))
    h_prev = h0                                                                   # (B, H)
    for t in range(T):
        a[t] = x[t] @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh                      # (B, H)
        h[t] = np.tanh(a[t]) if nonlinearity == "tanh" else np.maximum(a[t], 0.0)  # (B, H)
        h_prev = h[t]
    return a, h


def bptt(x: np.ndarray, h0: np.ndarray, dh_out: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray, a: np.ndarray,
         h: np.ndarray, nonlinearity: str, truncate: int, step: type[Step] = Step) -> dict[str, np.ndarray]:
    """Backpropagation through time by hand, t = T-1 ... 0: every per-step quantity, (T, ...) time-major.

    x (T, B, I), h0 (B, H), dh_out (T, B, H) the gradient arriving at each h_t from its output, a and h (T, B, H)
    from the forward pass. step: bptt.bugs.Step, or a bug that overrides one of its hooks. Returns a dict keyed like
    Trace's fields (without a and h); the full weight gradients are the *_acc arrays at t = 0."""
    T, B, I = x.shape
    H = W_hh.shape[0]
    trace = {name: np.zeros((T, *shape)) for name, shape in (
        ("dh_next", (B, H)), ("dh_total", (B, H)), ("d_pre", (B, H)), ("dx", (B, I)), ("dh_prev", (B, H)),
        ("dW_ih_step", (H, I)), ("dW_hh_step", (H, H)), ("db_ih_step", (H,)), ("db_hh_step", (H,)),
        ("dW_ih_acc", (H, I)), ("dW_hh_acc", (H, H)), ("db_ih_acc", (H,)), ("db_hh_acc", (H,)))}
    dW_ih, dW_hh = np.zeros((H, I)), np.zeros((H, H))                            # the running sums over steps
    db_ih, db_hh = np.zeros(H), np.zeros(H)
    dh_prev = np.zeros((B, H))                                                    # nothing comes back after T-1
    for t in reversed(range(T)):
        h_prev = h0 if t == 0 else h[t - 1]                                       # (B, H) h_{t-1}
        cut = t == T - 1 or carry_cut(t + 1, truncate)                            # no step t+1, or h_t detached
        dh_next = np.zeros((B, H)) if cut else dh_prev                            # (B, H) the carry from step t+1
        dh_total = step.total_gradient(dh_out[t], dh_next, t, T)                  # (B, H) dL/dh_t
        d_pre = dh_total * step.fprime(nonlinearity, a[t], h[t])                  # (B, H) dL/da_t
        dx = d_pre @ W_ih                                                         # (B, I) dL/dx_t
        dh_prev = step.carry(d_pre, W_hh, t)                                      # (B, H) sent back to h_{t-1}
        dW_ih_t = d_pre.T @ x[t]                                                  # (H, I) this step's contributions
        dW_hh_t = d_pre.T @ step.dW_hh_input(h_prev, h[t])                        # (H, H)
        db_ih_t = d_pre.sum(axis=0)                                               # (H,)
        db_hh_t = d_pre.sum(axis=0)                                               # (H,)
        dW_ih = step.accumulate(dW_ih, dW_ih_t)                                   # dW_ih += d_preᵀ x_t
        dW_hh = step.accumulate(dW_hh, dW_hh_t)                                   # dW_hh += d_preᵀ h_{t-1}
        db_ih = step.accumulate(db_ih, db_ih_t)                                   # db_ih += sum_b d_pre
        db_hh = step.accumulate(db_hh, db_hh_t)                                   # db_hh += sum_b d_pre
        for name, value in (("dh_next", dh_next), ("dh_total", dh_total), ("d_pre", d_pre), ("dx", dx),
                            ("dh_prev", dh_prev), ("dW_ih_step", dW_ih_t), ("dW_hh_step", dW_hh_t),
                            ("db_ih_step", db_ih_t), ("db_hh_step", db_hh_t), ("dW_ih_acc", dW_ih),
                            ("dW_hh_acc", dW_hh), ("db_ih_acc", db_ih), ("db_hh_acc", db_hh)):
            trace[name][t] = value
    return trace


def run_plain(p: Problem, forward_values: tuple[np.ndarray, np.ndarray] | None = None) -> Trace:
    """The plain form as a Trace: rnn_forward (or forward_values (a, h)), then bptt with the config's bug."""
    cfg = p.config
    with np.errstate(all="ignore"):
        if forward_values is None:
            a, h = rnn_forward(p.x, p.h0, p.W_ih, p.W_hh, p.b_ih, p.b_hh, cfg.nonlinearity)
        else:
            a, h = (np.array(v, dtype=np.float64) for v in forward_values)
        grads = bptt(p.x, p.h0, p.dh_out, p.W_ih, p.W_hh, a, h, cfg.nonlinearity, cfg.truncate, step_of(cfg.bug))
    return Trace(a=a, h=h, dh0=grads["dh_prev"][0].copy(), **grads)


# ----------------------------------------------------------------------------------------------------------------------
# the fast form: the same hooks in the same order, with everything off the recurrence batched after the loop

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


def forward(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """a, h: (T, B, H) each, by the fast form (each step equal to rnn_forward's to 1e-15)."""
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


def _accumulate(step: type[Step], steps: np.ndarray, out: np.ndarray) -> np.ndarray:
    """bptt's += lines for every step: out[t] = step.accumulate(out[t+1], steps[t]) for t = T-1 ... 0, from zero.

    The correct += is written in place (np.add(total, contribution, out=...): the same sums in the same order, without
    a temporary per step, which at H = 128 is a fresh 128 KiB block, page-faulted in every time)."""
    T = steps.shape[0]
    if step.accumulate is Step.accumulate:
        out[T - 1] = steps[T - 1]
        for t in range(T - 2, -1, -1):
            np.add(out[t + 1], steps[t], out=out[t])
        return out
    out[T - 1] = step.accumulate(np.zeros_like(steps[T - 1]), steps[T - 1])
    for t in range(T - 2, -1, -1):
        out[t] = step.accumulate(out[t + 1], steps[t])
    return out


def run_engine(p: Problem, forward_values: tuple[np.ndarray, np.ndarray] | None = None) -> Trace:
    """Forward, then BPTT by hand for t = T-1 ... 0 (the fast form; equal to run_plain to 1e-15, step by step).

    forward_values (a, h), if given, replace the engine's own forward pass: the backward then runs on another
    implementation's forward values (compare.py uses this to tell rounding in the forward pass from the backward's)."""
    cfg = p.config
    step = step_of(cfg.bug)
    T, B, I = p.x.shape
    H = p.W_hh.shape[0]
    r = _arena({"a": (T, B, H), "hh": (T + 1, B, H), "dh_next": (T, B, H), "dh_total": (T, B, H),
                "d_pre": (T, B, H), "dx": (T, B, I), "dh_prev": (T, B, H), "dh0": (B, H),
                "dW_ih_step": (T, H, I), "dW_hh_step": (T, H, H), "db_step": (T, H),
                "dW_ih_acc": (T, H, I), "dW_hh_acc": (T, H, H), "db_acc": (T, H)})
    a, hh, dh_next, dh_total, d_pre, dh_prev = (r[k] for k in ("a", "hh", "dh_next", "dh_total", "d_pre", "dh_prev"))
    if forward_values is None:
        _forward_into(p, a, hh)
    else:
        a[...], hh[0], hh[1:] = forward_values[0], p.h0, forward_values[1]
    h, h_prev = hh[1:], hh[:-1]                                                    # (T, B, H) h_t and h_{t-1}, views
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

        # bptt's dx and contribution lines for all steps at once: they do not feed the recurrence
        np.matmul(d_pre.reshape(T * B, H), p.W_ih, out=r["dx"].reshape(T * B, I))                # (T, B, I)
        d_preT = d_pre.transpose(0, 2, 1)                                                          # (T, H, B)
        np.matmul(d_preT, p.x, out=r["dW_ih_step"])                                                # (T, H, I)
        np.matmul(d_preT, step.dW_hh_input(h_prev, h), out=r["dW_hh_step"])                        # (T, H, H)
        np.sum(d_pre, axis=1, out=r["db_step"])                                                    # (T, H)
        for k in ("dW_ih", "dW_hh", "db"):
            _accumulate(step, r[k + "_step"], out=r[k + "_acc"])
        return Trace(
            a=a, h=h, dh_next=dh_next, dh_total=dh_total, d_pre=d_pre, dx=r["dx"], dh_prev=dh_prev, dh0=r["dh0"],
            dW_ih_step=r["dW_ih_step"], dW_hh_step=r["dW_hh_step"], db_ih_step=r["db_step"],
            db_hh_step=r["db_step"], dW_ih_acc=r["dW_ih_acc"], dW_hh_acc=r["dW_hh_acc"], db_ih_acc=r["db_acc"],
            db_hh_acc=r["db_acc"],
        )
