"""The vanilla RNN, exactly torch.nn.RNN (one layer, two biases), as its derivation in code.

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh        h_t = f(a_t)   (tanh or relu)

Backward, t = T-1 ... 0 (the Backward page's equations, in order):
    dh_total_t = dh_out_t + dh_next_t                  dh_next_t = dh_prev_{t+1}, the carry from step t+1
    d_pre_t    = dh_total_t ⊙ f'(a_t)                  ("d_tanh": f' = 1 - h_t²)
    dx_t       = d_pre_t W_ih                          dh_prev_t = d_pre_t W_hh   (sent back to h_{t-1})
    dW_ih += d_pre_tᵀ x_t     dW_hh += d_pre_tᵀ h_{t-1}     db_ih += Σ_b d_pre_t     db_hh += Σ_b d_pre_t

One backward step has five places where a hand-written implementation typically goes wrong. `RNNStep` is the
correct step, with one hook per place (static methods on plain NumPy arrays). A bug is a subclass that overrides the
hook where it makes its mistake, and carries what the app, the exports and the tests say about it:

    name       the `--bug` value
    note       one sentence for the banner
    equation   LaTeX of what the buggy step computes instead (the app shows it in red under the correct equations)
    diverges   (quantity, t) of the first wrong number in the comparison's order, t counted like a Python index
               (-1 is the last step, T-1; -2 is T-2; 0 is the first step)
    script     the whole-sequence results the reproduction script reports as wrong (at T >= 2, upstream "all",
               no truncation, tanh)
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Quantity, Step, carry_cut
from .unroll import unroll

# ----------------------------------------------------------------------------------------------------------------------
# the correct step, and the bugs, in the order the app lists them

class RNNStep(Step):
    """The correct RNN BPTT step's five mistake points (with Step's accumulate); every RNN bug overrides one."""

    @staticmethod
    def total_gradient(dh_out_t: np.ndarray, dh_next_t: np.ndarray, t: int, T: int) -> np.ndarray:
        """dh_total_t = dh_out_t + dh_next_t: the gradient from the output plus the carry from step t+1. (B, H)"""
        return dh_out_t + dh_next_t

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        """f'(a_t): 1 - h_t² for tanh (as (1 - h_t)(1 + h_t), exact near saturation), [a_t > 0] for relu. (B, H)"""
        if nonlinearity == "tanh":
            return (1.0 - h_t) * (1.0 + h_t)
        return (a_t > 0).astype(np.float64)

    @staticmethod
    def carry(d_pre_t: np.ndarray, W_hh: np.ndarray, t: int) -> np.ndarray:
        """dh_prev_t = d_pre_t W_hh: what step t sends back to h_{t-1} (at t = 0 that is dL/dh0). (B, H)"""
        return d_pre_t @ W_hh

    @staticmethod
    def dW_hh_input(h_prev_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        """The hidden state that dW_hh's contribution d_pre_tᵀ (.) multiplies: h_{t-1}. (B, H)"""
        return h_prev_t


# ----------------------------------------------------------------------------------------------------------------------
# the bugs, in the order the app lists them


class ForgetCarry(RNNStep):
    """BUG (on purpose): the carry dh_next_t from step t+1 is dropped."""
    name = "forget-carry"
    note = "the gradient carried in from t+1 (dh_next) is dropped, so dh_t = dh_out_t only."
    equation = r"dh\_total_t = dh\_out_t \quad (\text{the carry } dh\_next_t \text{ is dropped})"
    diverges = ("dh_total", -2)     # at T-1 the carry is zero anyway
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def total_gradient(dh_out_t: np.ndarray, dh_next_t: np.ndarray, t: int, T: int) -> np.ndarray:
        return dh_out_t  # BUG (on purpose): + dh_next_t is missing


class NoActivationDerivative(RNNStep):
    """BUG (on purpose): the factor f'(a_t) is left out."""
    name = "no-activation-derivative"
    note = "the factor f'(a_t) is left out: d_pre_t = dh_t."
    equation = r"d\_pre_t = dh\_total_t \quad (\text{no } \odot f'(a_t))"
    diverges = ("d_pre", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        return np.ones_like(h_t)  # BUG (on purpose): f'(a_t) taken as 1


class DerivativeOfPreActivation(RNNStep):
    """BUG (on purpose): tanh's derivative read at a_t (1 - a_t²) instead of from h_t (1 - h_t²)."""
    name = "derivative-of-pre-activation"
    note = "tanh's derivative is taken as 1 − a_t² instead of 1 − h_t²."
    equation = r"d\_tanh_t = dh\_total_t \odot (1 - a_t^{2}) \quad (\text{instead of } 1 - h_t^{2})"
    diverges = ("d_pre", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        if nonlinearity == "tanh":
            return 1.0 - a_t * a_t  # BUG (on purpose): 1 - a_t², not 1 - h_t²
        return (a_t > 0).astype(np.float64)  # relu's [a_t > 0] read at a_t is right


class DWhhUsesHt(RNNStep):
    """BUG (on purpose): dW_hh's contribution uses h_t instead of h_{t-1}."""
    name = "dWhh-uses-h_t"
    note = "dW_hh accumulates d_pre_tᵀ h_t instead of d_pre_tᵀ h_(t−1)."
    equation = r"dW_{hh} \mathrel{+}= d\_pre_t^{\top} h_t \quad (\text{instead of } h_{t-1})"
    diverges = ("dW_hh_acc", -1)
    script = ("dW_hh",)

    @staticmethod
    def dW_hh_input(h_prev_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        return h_t  # BUG (on purpose): h_t, not h_{t-1}


class CarryTransposed(RNNStep):
    """BUG (on purpose): the carry is multiplied by W_hhᵀ instead of W_hh."""
    name = "carry-transposed"
    note = "the carry is d_pre_t · W_hhᵀ instead of d_pre_t · W_hh."
    equation = r"dh\_prev_t = d\_pre_t\, W_{hh}^{\top} \quad (\text{instead of } W_{hh})"
    diverges = ("dh_prev", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def carry(d_pre_t: np.ndarray, W_hh: np.ndarray, t: int) -> np.ndarray:
        return d_pre_t @ W_hh.T  # BUG (on purpose): W_hh transposed


class OverwriteInsteadOfAccumulate(RNNStep):
    """BUG (on purpose): each weight gradient is assigned (=), not added (+=), so only step t = 0's contribution
    remains."""
    name = "overwrite-instead-of-accumulate"
    note = ("each weight gradient is assigned, not added, at every step, so only the contribution of the last step "
            "processed (the first timestep) remains; dx and dh0 are untouched.")
    equation = (r"dW_{ih} = d\_pre_t^{\top} x_t,\ dW_{hh} = d\_pre_t^{\top} h_{t-1},\ db = \textstyle\sum_b d\_pre_t"
                r" \quad (= \text{ instead of } \mathrel{+}=)")
    diverges = ("dW_ih_acc", -2)    # at T-1 the total is that step's contribution anyway
    script = ("dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def accumulate(total: np.ndarray, contribution: np.ndarray) -> np.ndarray:
        return contribution  # BUG (on purpose): total + contribution, with the total thrown away


class DropUpstream(RNNStep):
    """BUG (on purpose): dh_out_t is added only at the last step; earlier steps get only the carry."""
    name = "drop-upstream"
    note = "the upstream gradient dh_out_t is added only at the last step (t = T); earlier steps get only the carry."
    equation = r"dh\_total_t = dh\_next_t \ \text{for } t < T \quad (\text{the output's } dh\_out_t \text{ is dropped})"
    diverges = ("dh_total", -2)     # with upstream "last", dh_out is zero before T-1 and nothing changes
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def total_gradient(dh_out_t: np.ndarray, dh_next_t: np.ndarray, t: int, T: int) -> np.ndarray:
        if t == T - 1:
            return dh_out_t + dh_next_t
        return dh_next_t  # BUG (on purpose): dh_out_t is dropped before the last step


class TanhAppliedTwice(RNNStep):
    """BUG (on purpose): tanh's derivative computed as 1 - tanh(h_t)², applying tanh to h_t a second time."""
    name = "tanh-applied-twice"
    note = "tanh's derivative is computed as 1 − tanh(h_t)² instead of 1 − h_t²: tanh is applied twice."
    equation = r"d\_tanh_t = dh\_total_t \odot (1 - \tanh(h_t)^{2}) \quad (\text{instead of } 1 - h_t^{2})"
    diverges = ("d_pre", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        if nonlinearity == "tanh":
            return 1.0 - np.tanh(h_t) ** 2  # BUG (on purpose): tanh(h_t) = tanh(tanh(a_t))
        return (a_t > 0).astype(np.float64)  # relu(relu(a)) has the same derivative: nothing to break


class Dh0NotReturned(RNNStep):
    """BUG (on purpose): the gradient of h0 comes back as zeros (the last carry, from step t = 0, is dropped)."""
    name = "dh0-not-returned"
    note = "the gradient of h0 comes back as zeros: the carry the first timestep sends back is dropped."
    equation = r"dL/dh_0 = 0 \quad (\text{instead of } dh\_prev_1 = d\_pre_1\, W_{hh})"
    diverges = ("dh_prev", 0)       # the carry step t = 0 sends to h0; the whole-sequence dh0 row fails too
    script = ("dh0",)

    @staticmethod
    def carry(d_pre_t: np.ndarray, W_hh: np.ndarray, t: int) -> np.ndarray:
        if t == 0:
            return np.zeros_like(d_pre_t)  # BUG (on purpose): dL/dh0 is never computed
        return d_pre_t @ W_hh


ZOO: dict[str, type[RNNStep]] = {s.name: s for s in (
    RNNStep, ForgetCarry, NoActivationDerivative, DerivativeOfPreActivation, DWhhUsesHt, CarryTransposed,
    OverwriteInsteadOfAccumulate, DropUpstream, TanhAppliedTwice, Dh0NotReturned,
)}


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
         h: np.ndarray, nonlinearity: str, truncate: int, step: type[RNNStep] = RNNStep) -> dict[str, np.ndarray]:
    """Backpropagation through time by hand, t = T-1 ... 0: every per-step quantity, (T, ...) time-major.

    x (T, B, I), h0 (B, H), dh_out (T, B, H) the gradient arriving at each h_t from its output, a and h (T, B, H)
    from the forward pass. step: RNNStep, or a bug that overrides one of its hooks. Returns a dict keyed like
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


def run_forward(p) -> dict[str, np.ndarray]:
    """The plain forward pass of a problem: {"a", "h"}, each (T, B, H)."""
    a, h = rnn_forward(p.x, p.h0, p.W_ih, p.W_hh, p.b_ih, p.b_hh, p.config.nonlinearity)
    return {"a": a, "h": h}


def run_backward(p, fwd: dict[str, np.ndarray], step: type[RNNStep]) -> dict[str, np.ndarray]:
    """The plain BPTT of a problem on forward values fwd: the (T, B, ·) per-step quantities of BACKWARD."""
    g = bptt(p.x, p.h0, p.dh_out, p.W_ih, p.W_hh, fwd["a"], fwd["h"], p.config.nonlinearity, p.config.truncate,
             step)
    return {q.name: g[q.name] for q in BACKWARD}


def contributions(p, v, t: int, step: type[RNNStep]) -> dict[str, np.ndarray]:
    """Step t's contributions to the weight gradients, as bptt computes them: rank-B products of (B, ·) arrays."""
    h_prev = p.h0 if t == 0 else v["h"][t - 1]                                    # (B, H) h_{t-1}
    d_pre = v["d_pre"][t]                                                         # (B, H)
    return {"dW_ih": d_pre.T @ p.x[t],                                            # (H, I)
            "dW_hh": d_pre.T @ step.dW_hh_input(h_prev, v["h"][t]),               # (H, H)
            "db_ih": d_pre.sum(axis=0), "db_hh": d_pre.sum(axis=0)}               # (H,)


# ----------------------------------------------------------------------------------------------------------------------
# the unrolled autograd reference

def unrolled(p) -> dict[str, np.ndarray]:
    """Every forward and backward per-step quantity from autograd: a_t, h_t and their gradients, the carries."""
    import torch
    act = torch.tanh if p.config.nonlinearity == "tanh" else torch.relu

    def step(x_t, s, W):
        a = x_t @ W["W_ih"].T + W["b_ih"] + s["h"] @ W["W_hh"].T + W["b_hh"]     # (B, H)
        return {"a": a, "h": act(a)}

    u = unroll(p, ("h",), step)
    return {"a": u["a"], "h": u["h"], "dh_next": u["dh_next"], "dh_total": u["grad_h"], "d_pre": u["grad_a"],
            "dx": u["dx"], "dh_prev": u["dh_prev"], "dh0": u["dh0"]}


def torch_module(I: int, H: int, nonlinearity: str):
    import torch
    return torch.nn.RNN(I, H, nonlinearity=nonlinearity).double()


# ----------------------------------------------------------------------------------------------------------------------
# the declaration

FORWARD = (Quantity("a", "BH", "a_t", "the pre-activation W_ih x_t + b_ih + W_hh h_{t-1} + b_hh"),
           Quantity("h", "BH", "h_t", "the hidden state f(a_t)"))
BACKWARD = (Quantity("dh_next", "BH", "dh_next", "the carry into h_t from step t+1 (0 at t = T-1 and where cut)"),
            Quantity("dh_total", "BH", "dh_total", "∂L/∂h_t = dh_out_t + dh_next_t"),
            Quantity("d_pre", "BH", "d_tanh", "∂L/∂a_t = dh_total_t ⊙ f'(a_t)"),
            Quantity("dx", "BI", "dx", "∂L/∂x_t = d_pre_t W_ih"),
            Quantity("dh_prev", "BH", "dh_prev", "what step t sends back to h_{t-1}: d_pre_t W_hh"))

RNN = Cell(name="rnn", title="vanilla RNN", torch_name="torch.nn.RNN", gates=(), states=("h",), forward=FORWARD,
           backward=BACKWARD, zoo=ZOO, torch_module=torch_module, run_forward=run_forward, run_backward=run_backward,
           contributions=contributions, unrolled=unrolled)
