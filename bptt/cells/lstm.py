"""The LSTM, exactly torch.nn.LSTM (one layer, two biases, gates stacked i | f | g | o), as its derivation in code.

    z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh                          (B, 4H), blocks i | f | g | o
    i_t, f_t, o_t = σ(z_t's i, f, o blocks)     g_t = tanh(z_t's g block)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t             h_t = o_t ⊙ tanh(c_t)

Backward, t = T-1 ... 0. The gradient reaches step t along two carries: dh_next (into h_t, through W_hh) and
dc_next (into c_t, through the forget gate f_{t+1}):
    dh_total_t = dh_out_t + dh_next_t                                  ∂L/∂h_t
    dc_total_t = dc_next_t + dh_total_t ⊙ o_t ⊙ (1 − tanh² c_t)        ∂L/∂c_t: the cell path plus the path through h_t
    di = dc_total ⊙ g_t   df = dc_total ⊙ c_{t-1}   dg = dc_total ⊙ i_t   do = dh_total ⊙ tanh(c_t)
    d_gates_t = [di ⊙ σ'(i), df ⊙ σ'(f), dg ⊙ (1 − g²), do ⊙ σ'(o)]     σ'(s) = s (1 − s);  (B, 4H) in i, f, g, o
    dx_t = d_gates_t W_ih      dh_prev_t = d_gates_t W_hh      dc_prev_t = dc_total_t ⊙ f_t
    dW_ih += d_gates_tᵀ x_t    dW_hh += d_gates_tᵀ h_{t-1}     db_ih += Σ_b d_gates_t   db_hh += Σ_b d_gates_t

`LSTMStep` is the correct step, with one hook per place where hand-written LSTM backward passes typically go wrong;
each bug overrides one hook (see rnn.py for what a bug carries).
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Quantity, Step, carry_cut
from .unroll import unroll

GATES = ("i", "f", "g", "o")     # PyTorch's order along W_ih's rows


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^(−z)), accurate in relative terms for every z (e^(−z) may overflow to inf: σ = 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------------------------------------------------------------
# the correct step, and the bugs

class LSTMStep(Step):
    """The correct LSTM BPTT step's mistake points (with Step's accumulate); every LSTM bug overrides one."""

    @staticmethod
    def cell_total(dc_next_t: np.ndarray, through_h_t: np.ndarray) -> np.ndarray:
        """dc_total_t = dc_next_t + dh_total_t ⊙ o_t ⊙ (1 − tanh² c_t): the cell carry plus the path through h_t."""
        return dc_next_t + through_h_t

    @staticmethod
    def sigmoid_prime(s: np.ndarray) -> np.ndarray:
        """σ'(z) read from s = σ(z): s (1 − s). (B, H)"""
        return s * (1.0 - s)

    @staticmethod
    def stack_gates(di: np.ndarray, df: np.ndarray, dg: np.ndarray, do: np.ndarray) -> np.ndarray:
        """The gate gradients side by side in W_ih's row order i, f, g, o. (B, 4H)"""
        return np.concatenate([di, df, dg, do], axis=1)

    @staticmethod
    def output_factor(c_t: np.ndarray, tanh_c_t: np.ndarray) -> np.ndarray:
        """What dh_total multiplies for the output gate: ∂h_t/∂o_t = tanh(c_t). (B, H)"""
        return tanh_c_t


class ForgetCellCarry(LSTMStep):
    """BUG (on purpose): the cell carry dc_next_t from step t+1 is ignored (dc_prev is still computed and sent)."""
    name = "forget-cell-carry"
    note = "the cell-state carry dc_next from t+1 is ignored, so dc_t is only the path through h_t."
    equation = (r"dc\_total_t = dh\_total_t \odot o_t \odot (1 - \tanh^2 c_t) \quad "
                r"(\text{the carry } dc\_next_t \text{ is dropped})")
    diverges = ("dc_total", -2)     # at T-1 the carry is zero anyway
    script = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def cell_total(dc_next_t: np.ndarray, through_h_t: np.ndarray) -> np.ndarray:
        return through_h_t  # BUG (on purpose): + dc_next_t is missing


class DropCellPath(LSTMStep):
    """BUG (on purpose): dc_total misses the path through h_t, dh_total ⊙ o ⊙ (1 − tanh² c_t)."""
    name = "drop-cell-path"
    note = "dc_t misses the path through h_t (dh_t ⊙ o_t ⊙ (1 − tanh² c_t)): only the cell carry reaches c_t."
    equation = r"dc\_total_t = dc\_next_t \quad (\text{no } dh\_total_t \odot o_t \odot (1 - \tanh^2 c_t))"
    diverges = ("dc_total", -1)
    script = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def cell_total(dc_next_t: np.ndarray, through_h_t: np.ndarray) -> np.ndarray:
        return dc_next_t  # BUG (on purpose): the path through h_t is missing


class NoGateSigmoidDerivative(LSTMStep):
    """BUG (on purpose): σ' is left out for the i, f and o gates."""
    name = "no-gate-sigmoid-derivative"
    note = "σ′ is left out for the input, forget and output gates: their gradients stop at the gate's output."
    equation = r"d\_gates_t[i, f, o] = di_t,\ df_t,\ do_t \quad (\text{no } \odot\, \sigma'(\cdot))"
    diverges = ("d_gates", -1, "i")
    script = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def sigmoid_prime(s: np.ndarray) -> np.ndarray:
        return np.ones_like(s)  # BUG (on purpose): σ' taken as 1


class GateOrderIfog(LSTMStep):
    """BUG (on purpose): the gate gradients are stacked in CS231n's order i, f, o, g against PyTorch's i, f, g, o."""
    name = "gate-order-ifog"
    note = "the gate gradients are stacked i, f, o, g (CS231n's order) while PyTorch's weights run i, f, g, o."
    equation = r"d\_gates_t = [\,di,\ df,\ do,\ dg\,] \quad (\text{instead of } [\,di,\ df,\ dg,\ do\,])"
    diverges = ("d_gates", -1, "g")
    script = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def stack_gates(di: np.ndarray, df: np.ndarray, dg: np.ndarray, do: np.ndarray) -> np.ndarray:
        return np.concatenate([di, df, do, dg], axis=1)  # BUG (on purpose): o and g swapped


class OutputGateUsesC(LSTMStep):
    """BUG (on purpose): the output gate's gradient uses c_t where tanh(c_t) belongs."""
    name = "output-gate-uses-c"
    note = "the output gate's gradient uses c_t where tanh(c_t) belongs: do = dh ⊙ c_t."
    equation = r"do_t = dh\_total_t \odot c_t \quad (\text{instead of } \tanh c_t)"
    diverges = ("d_gates", -1, "o")
    script = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def output_factor(c_t: np.ndarray, tanh_c_t: np.ndarray) -> np.ndarray:
        return c_t  # BUG (on purpose): c_t, not tanh(c_t)


ZOO: dict[str, type[LSTMStep]] = {s.name: s for s in (
    LSTMStep, ForgetCellCarry, DropCellPath, NoGateSigmoidDerivative, GateOrderIfog, OutputGateUsesC)}


# ----------------------------------------------------------------------------------------------------------------------
# the plain form: the derivation, line by line

def lstm_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray,
                 b_ih: np.ndarray, b_hh: np.ndarray) -> dict[str, np.ndarray]:
    """The gates i, f, g, o, the cell state c and the hidden state h for t = 0 ... T-1, each (T, B, H)."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    out = {k: np.zeros((T, B, H)) for k in ("i", "f", "g", "o", "c", "h")}
    h_prev, c_prev = h0, c0                                                       # (B, H) each
    for t in range(T):
        z = x[t] @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh                         # (B, 4H) blocks i | f | g | o
        i, f = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H])                          # (B, H) input, forget gates
        g, o = np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])                  # (B, H) candidate, output gate
        c = f * c_prev + i * g                                                    # (B, H) the cell state
        h = o * np.tanh(c)                                                        # (B, H) the hidden state
        for k, v in (("i", i), ("f", f), ("g", g), ("o", o), ("c", c), ("h", h)):
            out[k][t] = v
        h_prev, c_prev = h, c
    return out


def lstm_bptt(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, dh_out: np.ndarray, W_ih: np.ndarray,
              W_hh: np.ndarray, fwd: dict[str, np.ndarray], truncate: int,
              step: type[LSTMStep] = LSTMStep) -> dict[str, np.ndarray]:
    """Backpropagation through time by hand, t = T-1 ... 0: every (T, B, ·) per-step quantity, time-major.

    fwd: lstm_forward's i, f, g, o, c, h. dh_out (T, B, H) the gradient arriving at each h_t from its output; nothing
    arrives at c_t except through h_t. The weight gradients are step contributions d_gates_tᵀ x_t, d_gates_tᵀ h_{t-1}
    (see contributions), summed by the engine."""
    T, B, I = x.shape
    H = W_hh.shape[1]
    i, f, g, o, c, h = (fwd[k] for k in ("i", "f", "g", "o", "c", "h"))
    trace = {name: np.zeros((T, B, n)) for name, n in (
        ("dh_next", H), ("dh_total", H), ("dc_next", H), ("dc_total", H), ("d_gates", 4 * H), ("dx", I),
        ("dh_prev", H), ("dc_prev", H))}
    dh_prev, dc_prev = np.zeros((B, H)), np.zeros((B, H))                         # nothing comes back after T-1
    for t in reversed(range(T)):
        c_prev = c0 if t == 0 else c[t - 1]                                       # (B, H) c_{t-1}
        cut = t == T - 1 or carry_cut(t + 1, truncate)                            # no step t+1, or state detached
        dh_next = np.zeros((B, H)) if cut else dh_prev                            # (B, H) the carries from t+1
        dc_next = np.zeros((B, H)) if cut else dc_prev
        dh_total = dh_out[t] + dh_next                                            # (B, H) ∂L/∂h_t
        tanh_c = np.tanh(c[t])                                                    # (B, H)
        dc_total = step.cell_total(dc_next, dh_total * o[t] * ((1.0 - tanh_c) * (1.0 + tanh_c)))  # ∂L/∂c_t
        di = dc_total * g[t] * step.sigmoid_prime(i[t])                           # (B, H) at each pre-activation
        df = dc_total * c_prev * step.sigmoid_prime(f[t])
        dg = dc_total * i[t] * ((1.0 - g[t]) * (1.0 + g[t]))
        do = dh_total * step.output_factor(c[t], tanh_c) * step.sigmoid_prime(o[t])
        d_gates = step.stack_gates(di, df, dg, do)                                # (B, 4H) i | f | g | o
        dx = d_gates @ W_ih                                                       # (B, I) ∂L/∂x_t
        dh_prev = d_gates @ W_hh                                                  # (B, H) sent back to h_{t-1}
        dc_prev = dc_total * f[t]                                                 # (B, H) sent back to c_{t-1}
        for name, value in (("dh_next", dh_next), ("dh_total", dh_total), ("dc_next", dc_next),
                            ("dc_total", dc_total), ("d_gates", d_gates), ("dx", dx), ("dh_prev", dh_prev),
                            ("dc_prev", dc_prev)):
            trace[name][t] = value
    return trace


def run_forward(p) -> dict[str, np.ndarray]:
    """The plain forward pass of a problem."""
    return lstm_forward(p.x, p.h0, p.c0, p.W_ih, p.W_hh, p.b_ih, p.b_hh)


def run_backward(p, fwd: dict[str, np.ndarray], step: type[LSTMStep]) -> dict[str, np.ndarray]:
    """The plain BPTT of a problem on forward values fwd."""
    return lstm_bptt(p.x, p.h0, p.c0, p.dh_out, p.W_ih, p.W_hh, fwd, p.config.truncate, step)


def contributions(p, v, t: int, step: type[LSTMStep]) -> dict[str, np.ndarray]:
    """Step t's contributions to the weight gradients: rank-B products of (B, ·) arrays."""
    h_prev = p.h0 if t == 0 else v["h"][t - 1]                                    # (B, H) h_{t-1}
    d = v["d_gates"][t]                                                           # (B, 4H)
    return {"dW_ih": d.T @ p.x[t], "dW_hh": d.T @ h_prev,                         # (4H, I), (4H, H)
            "db_ih": d.sum(axis=0), "db_hh": d.sum(axis=0)}                       # (4H,)


# ----------------------------------------------------------------------------------------------------------------------
# the unrolled autograd reference

def unrolled(p) -> dict[str, np.ndarray]:
    """Every forward and backward per-step quantity from autograd: the gates, c_t, h_t, and the gradients of the
    gates' pre-activations, of c_t and of h_t, the carries."""
    import torch

    def step(x_t, s, W):
        z = x_t @ W["W_ih"].T + W["b_ih"] + s["h"] @ W["W_hh"].T + W["b_hh"]     # (B, 4H)
        zi, zf, zg, zo = z.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        c = f * s["c"] + i * g
        return {"z": z, "i": i, "f": f, "g": g, "o": o, "c": c, "h": o * torch.tanh(c)}

    u = unroll(p, ("h", "c"), step)
    out = {k: u[k] for k in ("i", "f", "g", "o", "c", "h", "dh_next", "dc_next", "dx", "dh_prev", "dc_prev", "dh0",
                             "dc0")}
    out.update(dh_total=u["grad_h"], dc_total=u["grad_c"], d_gates=u["grad_z"])
    return out


def torch_module(I: int, H: int, nonlinearity: str):
    import torch
    return torch.nn.LSTM(I, H).double()


# ----------------------------------------------------------------------------------------------------------------------
# the declaration

FORWARD = (Quantity("i", "BH", "i_t", "the input gate σ(·)"),
           Quantity("f", "BH", "f_t", "the forget gate σ(·)"),
           Quantity("g", "BH", "g_t", "the candidate tanh(·)"),
           Quantity("o", "BH", "o_t", "the output gate σ(·)"),
           Quantity("c", "BH", "c_t", "the cell state f_t ⊙ c_{t-1} + i_t ⊙ g_t"),
           Quantity("h", "BH", "h_t", "the hidden state o_t ⊙ tanh(c_t)"))
BACKWARD = (Quantity("dh_next", "BH", "dh_next", "the carry into h_t from step t+1, through W_hh"),
            Quantity("dh_total", "BH", "dh_total", "∂L/∂h_t = dh_out_t + dh_next_t"),
            Quantity("dc_next", "BH", "dc_next", "the carry into c_t from step t+1, through f_{t+1}"),
            Quantity("dc_total", "BH", "dc_total", "∂L/∂c_t = dc_next_t + dh_total_t ⊙ o_t ⊙ (1 − tanh² c_t)"),
            Quantity("d_gates", "BG", "d_gates", "∂L/∂ of the gates' pre-activations, blocks i | f | g | o"),
            Quantity("dx", "BI", "dx", "∂L/∂x_t = d_gates_t W_ih"),
            Quantity("dh_prev", "BH", "dh_prev", "what step t sends back to h_{t-1}: d_gates_t W_hh"),
            Quantity("dc_prev", "BH", "dc_prev", "what step t sends back to c_{t-1}: dc_total_t ⊙ f_t"))

LSTM = Cell(name="lstm", title="LSTM", torch_name="torch.nn.LSTM", gates=GATES, states=("h", "c"), forward=FORWARD,
            backward=BACKWARD, zoo=ZOO, torch_module=torch_module, run_forward=run_forward,
            run_backward=run_backward, contributions=contributions, unrolled=unrolled)
