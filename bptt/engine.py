"""The NumPy engine: forward and hand-written BPTT for a vanilla RNN, recording every per-step quantity."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

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


def carry_cut(t: int, truncate: int) -> bool:
    """Whether truncated BPTT cuts the carry from step t to step t-1 (h_{t-1} is detached before step t)."""
    return truncate > 0 and t > 0 and t % truncate == 0


def reverse_cumsum(steps: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """acc[t] = steps[t] + steps[t+1] + ... + steps[T-1], along axis 0 (the same sums, in the same order, as
    np.cumsum(steps[::-1], axis=0)[::-1], which is ~10x slower here: it walks memory a whole step apart)."""
    acc = np.empty_like(steps) if out is None else out
    acc[-1] = steps[-1]
    for t in range(steps.shape[0] - 2, -1, -1):
        np.add(steps[t], acc[t + 1], out=acc[t])
    return acc


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


# ----------------------------------------------------------------------------------------------------------------------
# forward

def forward(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """a, h: (T, B, H) each. The input projection of all timesteps is one matrix product before the loop."""
    T, B, _ = p.x.shape
    H = p.W_hh.shape[0]
    a, hh = np.empty((T, B, H)), np.empty((T + 1, B, H))
    _forward(p, a, hh)
    return a, hh[1:]


def _forward(p: Problem, a: np.ndarray, hh: np.ndarray) -> None:
    """Fill a (T, B, H) and hh = [h0, h_0, ..., h_{T-1}] (T+1, B, H), so that h = hh[1:], h_{t-1} = hh[:-1]."""
    T, B, I = p.x.shape
    H = p.W_hh.shape[0]
    np.matmul(p.x.reshape(T * B, I), p.W_ih.T, out=a.reshape(T * B, H))   # the W_ih x_t part of every step
    a += p.b_ih + p.b_hh
    hh[0] = p.h0
    W_hhT = np.ascontiguousarray(p.W_hh.T)
    act = np.tanh if p.config.nonlinearity == "tanh" else _relu
    rec = np.empty((B, H))                                      # (B, H) the W_hh h_{t-1} part, reused
    with np.errstate(all="ignore"):
        for t in range(T):
            np.matmul(hh[t], W_hhT, out=rec)
            np.add(a[t], rec, out=a[t])
            act(a[t], out=hh[t + 1])


def _relu(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0.0, out=out)


def activation_derivative(config: RNNConfig, a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """f'(a_t): 1 - h_t² for tanh, [a_t > 0] for relu. (T, B, H)

    1 - h_t² is computed as (1 - h_t)(1 + h_t): near saturation (h_t -> ±1) the product keeps full relative
    precision, where 1 - h*h would cancel to a few bits (PyTorch's tanh backward is accurate there too)."""
    if config.nonlinearity == "tanh":
        return (1.0 - h) * (1.0 + h)
    return (a > 0).astype(a.dtype)


def _fprime_into(kind: str, a_t: np.ndarray, h_t: np.ndarray, out: np.ndarray) -> np.ndarray:
    """One step of f' into out (B, H): "tanh" 1 - h_t² as (1 - h_t)(1 + h_t) (see activation_derivative),
    "relu" [a_t > 0], "pre" 1 - a_t² (the bug)."""
    if kind == "relu":
        return np.greater(a_t, 0.0, out=out)
    if kind == "pre":
        np.multiply(a_t, a_t, out=out)
        return np.subtract(1.0, out, out=out)
    np.subtract(1.0, h_t, out=out)
    out *= 1.0 + h_t
    return out


# ----------------------------------------------------------------------------------------------------------------------
# backward

def run_engine(p: Problem, forward_values: tuple[np.ndarray, np.ndarray] | None = None) -> Trace:
    """Forward, then BPTT by hand for t = T-1 ... 0; the recurrent loop holds only the H×H products.

    forward_values (a, h), if given, replace the engine's own forward pass: the backward then runs on another
    implementation's forward values (compare.py uses this to tell rounding in the forward pass from the backward's)."""
    cfg = p.config
    bug = cfg.bug
    T, B, I = p.x.shape
    H = p.W_hh.shape[0]
    r = _arena({"a": (T, B, H), "hh": (T + 1, B, H), "dh_next": (T, B, H), "dh_total": (T, B, H),
                "d_pre": (T, B, H), "dx": (T, B, I), "dh_prev": (T, B, H), "dh0": (B, H),
                "dW_ih_step": (T, H, I), "dW_hh_step": (T, H, H), "db_step": (T, H),
                "dW_ih_acc": (T, H, I), "dW_hh_acc": (T, H, H), "db_acc": (T, H)})
    a, hh, dh_next, dh_total, d_pre, dh_prev = (r[k] for k in ("a", "hh", "dh_next", "dh_total", "d_pre", "dh_prev"))
    if forward_values is None:
        _forward(p, a, hh)
    else:
        a[...], hh[0], hh[1:] = forward_values[0], p.h0, forward_values[1]
    h, hprev = hh[1:], hh[:-1]                                   # (T, B, H) h_t and h_{t-1}, views
    with np.errstate(all="ignore"):
        if bug == "no-activation-derivative":
            kind = None                                          # the bug: f' is left out
        elif bug == "derivative-of-pre-activation" and cfg.nonlinearity == "tanh":
            kind = "pre"                                         # the bug: f' read at a_t, not from h_t
        else:
            kind = cfg.nonlinearity
        W_carry = p.W_hh.T if bug == "carry-transposed" else p.W_hh   # the bug: d_pre @ W_hhᵀ
        fprime = np.empty((B, H))                                # (B, H) f'(a_t), reused
        for t in range(T - 1, -1, -1):
            # dh_next[t] is dh_prev[t+1] unless t is the last step or truncation cuts the carry into it
            if bug == "forget-carry" or t == T - 1 or carry_cut(t + 1, cfg.truncate):
                dh_total[t] = p.dh_out[t]                        # (forget-carry, the bug: dh_next[t] is dropped)
            else:
                np.add(p.dh_out[t], dh_prev[t + 1], out=dh_total[t])
            if kind is None:
                d_pre[t] = dh_total[t]
            else:
                np.multiply(dh_total[t], _fprime_into(kind, a[t], h[t], fprime), out=d_pre[t])
            np.matmul(d_pre[t], W_carry, out=dh_prev[t])         # (B, H)
        dh_next[:-1] = dh_prev[1:]                               # the carry as each step received it
        dh_next[-1] = 0.0
        for t in range(1, T):
            if carry_cut(t, cfg.truncate):
                dh_next[t - 1] = 0.0
        r["dh0"][...] = dh_prev[0]

        # everything that does not feed the recurrence is one batched product after the loop
        np.matmul(d_pre.reshape(T * B, H), p.W_ih, out=r["dx"].reshape(T * B, I))      # (T, B, I)
        d_preT = d_pre.transpose(0, 2, 1)                                              # (T, H, B)
        np.matmul(d_preT, p.x, out=r["dW_ih_step"])                                    # (T, H, I)
        np.matmul(d_preT, h if bug == "dWhh-uses-h_t" else hprev, out=r["dW_hh_step"])  # (T, H, H)
        np.sum(d_pre, axis=1, out=r["db_step"])                                        # (T, H)
        for k in ("dW_ih", "dW_hh", "db"):
            reverse_cumsum(r[k + "_step"], out=r[k + "_acc"])
        return Trace(
            a=a, h=h, dh_next=dh_next, dh_total=dh_total, d_pre=d_pre, dx=r["dx"], dh_prev=dh_prev, dh0=r["dh0"],
            dW_ih_step=r["dW_ih_step"], dW_hh_step=r["dW_hh_step"], db_ih_step=r["db_step"],
            db_hh_step=r["db_step"], dW_ih_acc=r["dW_ih_acc"], dW_hh_acc=r["dW_hh_acc"], db_ih_acc=r["db_acc"],
            db_hh_acc=r["db_acc"],
        )
