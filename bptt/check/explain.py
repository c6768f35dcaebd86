"""What a first divergence of a gated cell (LSTM, GRU) usually means, in the cell's own equations; and the GRU paper's
form, told apart from PyTorch's by running it."""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from ..cells.gru import ResetBeforeMatmul, gru_forward
from ..cells.lstm import GateOrderIfog, lstm_forward, sigmoid

PAPER_GRU = ("the paper's GRU (Cho et al. 2014): r inside the product, n = tanh(W_in x_t + b_in + W_hn (r ⊙ h_(t-1)) "
             "+ b_hn). PyTorch puts r after the product: n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_(t-1) + b_hn)), so "
             "dr = d_n ⊙ (W_hn h_(t-1) + b_hn), d_hn = d_n ⊙ r, dW_hn += d_hnᵀ h_(t-1) and db_hn += Σ_b d_hn")
# what to add to a zoo bug's own note
ZOO_MORE = {ResetBeforeMatmul.name: f" That is {PAPER_GRU}.",
            GateOrderIfog.name: " Stack the gate gradients i, f, g, o, the order of torch.nn.LSTM's weight rows."}

GATE_FORMULA = {
    "lstm": {"i": "di = dc_t ⊙ g_t ⊙ i_t (1 − i_t)", "f": "df = dc_t ⊙ c_(t-1) ⊙ f_t (1 − f_t)",
             "g": "dg = dc_t ⊙ i_t ⊙ (1 − g_t²)", "o": "do = dh_t ⊙ tanh(c_t) ⊙ o_t (1 − o_t)"},
    "gru": {"r": "dr = d_n ⊙ (W_hn h_(t-1) + b_hn) ⊙ r_t (1 − r_t) (PyTorch puts r after the product)",
            "z": "dz = dh_t ⊙ (h_(t-1) − n_t) ⊙ z_t (1 − z_t)", "n": "d_n = dh_t ⊙ (1 − z_t) ⊙ (1 − n_t²)"},
}
CELL_TOTAL = "dc_t = dc_next + dh_t ⊙ o_t ⊙ (1 − tanh² c_t) (the cell carry from t+1 plus the path through h_t)"
FORWARD = {
    "lstm": ("z_t = x_t W_ihᵀ + b_ih + h_(t-1) W_hhᵀ + b_hh with the blocks in PyTorch's order i, f, g, o (rows of "
             "W_ih, (4H, I)); i, f, o = σ(·), g = tanh(·); c_t = f ⊙ c_(t-1) + i ⊙ g; h_t = o ⊙ tanh(c_t)"),
    "gru": ("r, z = σ(W_i· x_t + b_i· + W_h· h_(t-1) + b_h·) with the blocks in PyTorch's order r, z, n; n = tanh(W_in "
            "x_t + b_in + r ⊙ (W_hn h_(t-1) + b_hn)); h_t = (1 − z) ⊙ n + z ⊙ h_(t-1)"),
}


def gru_paper_h(p) -> np.ndarray:
    """h_t (T, B, H) of the paper's GRU on p's weights: n = tanh(W_in x_t + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)."""
    T = p.x.shape[0]
    H = p.W_hh.shape[1]
    h, out = p.h0, np.zeros((T, *p.h0.shape))
    for t in range(T):
        gi = p.x[t] @ p.W_ih.T + p.b_ih                                          # (B, 3H)
        r = sigmoid(gi[:, :H] + h @ p.W_hh[:H].T + p.b_hh[:H])
        z = sigmoid(gi[:, H:2 * H] + h @ p.W_hh[H:2 * H].T + p.b_hh[H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + (r * h) @ p.W_hh[2 * H:].T + p.b_hh[2 * H:])
        h = (1.0 - z) * n + z * h
        out[t] = h
    return out


def forward_h(p, order: tuple[str, ...] | None = None, c0: np.ndarray | None = None) -> np.ndarray:
    """h_t (T, B, H) of p's LSTM or GRU when the weights' row blocks are read as the gates `order` (PyTorch's by
    default), and (LSTM) from c0 (p's by default)."""
    gates = p.cell.gates
    order = order or gates
    H = p.W_hh.shape[1]

    def perm(a: np.ndarray) -> np.ndarray:       # the block a student reads as gate order[k] is row block k
        out = np.empty_like(a)
        for k, g in enumerate(order):
            j = gates.index(g)
            out[j * H:(j + 1) * H] = a[k * H:(k + 1) * H]
        return out

    W = [perm(p.W_ih), perm(p.W_hh), perm(p.b_ih), perm(p.b_hh)]
    with np.errstate(all="ignore"):
        if p.cell.name == "lstm":
            return lstm_forward(p.x, p.h0, p.c0 if c0 is None else c0, *W)["h"]
        return gru_forward(p.x, p.h0, *W)["h"]


def forward_hint(p, h_t: np.ndarray, t: int) -> dict | None:
    """{"hint", "text"} when a gated cell's wrong h_t is a known other forward: the GRU paper's form, the gate blocks
    read in another order, or (LSTM) a start from c0 = 0; else None."""
    cell = p.cell
    if cell.name == "gru" and _close(h_t, gru_paper_h(p)[t]):
        return {"hint": "gru-paper-form", "text": f"Your forward pass is {PAPER_GRU}. Every gradient after it is "
                                                  f"computed from the other function's h."}
    for order in itertools.permutations(cell.gates):
        if order != cell.gates and _close(h_t, forward_h(p, order)[t]):
            return {"hint": "gate-order-forward", "text": (
                f"Your forward reads the weights' row blocks as the gates {', '.join(order)}; {cell.torch_name} "
                f"stacks them {', '.join(cell.gates)} (rows k·H to (k+1)·H of W_ih, W_hh, b_ih, b_hh are gate k)"
                + (". CS231n's layout is i, f, o, g: here the weights come in PyTorch's order" if cell.name == "lstm"
                   else "") + ".")}
    if cell.name == "lstm" and np.any(p.c0) and _close(h_t, forward_h(p, c0=np.zeros_like(p.c0))[t]):
        return {"hint": "c0-ignored", "text": "Your forward starts from c0 = 0: the step functions and the torch "
                                              "layout take the given c0 (c_prev at t = 0, lstm_forward's c0)."}
    return None


def _close(a: np.ndarray | None, b: np.ndarray) -> bool:
    return a is not None and a.shape == b.shape and bool(np.all(np.isfinite(a))) and \
        float(np.max(np.abs(a - b))) <= 1e-9 * max(float(np.max(np.abs(b))), 1e-300)


def gated_text(ref, fd: dict, T: int, get: Callable | None) -> dict:
    """{"hint", "text"}: what a gated cell's first divergence (quantity, t, gate) usually means."""
    cell = ref.cell.name
    q, t, g = fd["quantity"], fd["t"], fd.get("gate")
    forward = {f.name for f in ref.cell.forward}
    if q in forward:
        h_t = None if get is None or t is None else get("h", t)
        known = None if h_t is None else forward_hint(ref.problem, h_t, t)
        if known:
            return known
        return {"hint": None, "text": f"The forward pass already differs ({q} at t = {t}): check {FORWARD[cell]}. "
                                      f"Every gradient after it is computed from the wrong values."}
    if q in ("dh0", "dc0"):
        return {"hint": None, "text": f"Everything but {q} agrees: {q} is what step 0 sends back (its {q[:2]}_prev); "
                                      f"return it (the carry after the last backward step)."}
    if q == "dc_prev":
        return {"hint": None, "text": f"The cell carry sent back from t = {t} differs: dc_prev = dc_t ⊙ f_t, with "
                                      f"{CELL_TOTAL}."}
    if q == "dh_prev":
        how = ("dh_prev = d_gates_t @ W_hh (W_hh as it is, (4H, H): all four gate blocks together)" if cell == "lstm"
               else "dh_prev = dh_t ⊙ z_t + d_gates[r, z] @ W_hh[r, z] + d_hn @ W_hn (the direct path through z, the "
                    "r and z gates, and the n block's hidden side, d_hn = d_n ⊙ r_t)")
        return {"hint": None, "text": f"The carry sent back from t = {t} differs: {how}."}
    if q == "d_hn":
        return {"hint": None, "text": (
            f"At t = {t} the n block of this step's dW_hh and db_hh differs while dW_ih's agrees: the hidden side of "
            f"the n gate is d_hn = d_n ⊙ r_t (PyTorch multiplies W_hn h_(t-1) + b_hn by r after the product), "
            f"dW_hh[n] += d_hnᵀ h_(t-1), db_hh[n] += Σ_b d_hn: so db_hh ≠ db_ih in the n block.")}
    carry = ("dh_t = dh_out[t] + dh_prev from t+1" + (f", and {CELL_TOTAL}: the step adds the path through h_t to the "
                                                       f"dc_t it receives" if cell == "lstm" else ""))
    if q in ("d_gates", "dx", "dh_total", "dc_total", "dh_next", "dc_next") and t is not None and t < T - 1:
        which = f" (the {g} block first)" if g else ""
        return {"hint": None, "text": f"The last step agrees but t = {t} does not{which}: what reaches step t from "
                                      f"t+1 is wrong. Check {carry}."}
    if q == "d_gates" and g:
        extra = f", with {CELL_TOTAL}" if cell == "lstm" and g != "o" else ""
        order = "i, f, g, o" if cell == "lstm" else "r, z, n"
        return {"hint": None, "text": (
            f"The very first backward step (t = {t}) differs in the {g} gate's block, before anything is carried "
            f"between steps: check {GATE_FORMULA[cell][g]}{extra}, stacked in PyTorch's order {order}.")}
    if q in ("dx", "dh_total", "dc_total"):
        return {"hint": None, "text": f"The very first backward step (t = {t}) differs: dx_t = d_gates_t @ W_ih "
                                      f"(W_ih as it is, ({ref.cell.G}H, I): all gate blocks together)."}
    if q.startswith(("dW", "db")):
        w = q.replace("_acc", "") + (f" [{g}]" if g else "")
        hn = " (the GRU's n block of dW_hh and db_hh from d_hn = d_n ⊙ r_t)" if cell == "gru" else ""
        return {"hint": None, "text": (
            f"The gate gradients agree, but {w} differs: check dW_ih += d_gatesᵀ x_t, dW_hh += d_gatesᵀ h_(t-1)"
            f"{hn}, db_ih = db_hh = d_gates summed over the batch, and that every step's contribution is added up.")}
    return {"hint": None, "text": f"{q} differs from the reference first" + ("" if t is None else f" at t = {t}") + "."}
