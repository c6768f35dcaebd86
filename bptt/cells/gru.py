"""The GRU, exactly torch.nn.GRU (one layer, two biases, gates stacked r | z | n), as its derivation in code.

    gi_t = W_ih x_t + b_ih,   gh_t = W_hh h_{t-1} + b_hh                  (B, 3H) each, blocks r | z | n
    r_t = σ(gi_r + gh_r)      z_t = σ(gi_z + gh_z)      hn_t = gh_n = W_hn h_{t-1} + b_hn
    n_t = tanh(gi_n + r_t ⊙ hn_t)                       h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

This is PyTorch's form: r multiplies the product W_hn h_{t-1} + b_hn, after it. The paper's later form (Cho et al.,
2014) puts r inside: n_t = tanh(W_in x_t + b_in + W_hn (r_t ⊙ h_{t-1}) + b_hn). They are different functions with
different gradients; the bug reset-before-matmul is the paper's backward run against PyTorch's forward.

Backward, t = T-1 ... 0:
    dh_total_t = dh_out_t + dh_next_t
    dn = dh_total ⊙ (1 − z_t)     dz = dh_total ⊙ (h_{t-1} − n_t)     (and dh_total ⊙ z_t goes straight to h_{t-1})
    d_n = dn ⊙ (1 − n_t²)         dr = d_n ⊙ hn_t                     d_hn_t = d_n ⊙ r_t
    d_gates_t = [dr ⊙ σ'(r), dz ⊙ σ'(z), d_n]                         (B, 3H): ∂L/∂gi_t, in r, z, n
    dx_t = d_gates_t W_ih         dh_prev_t = dh_total ⊙ z_t + [dr ⊙ σ'(r), dz ⊙ σ'(z), d_hn_t] W_hh
    dW_ih += d_gates_tᵀ x_t       dW_hh += [d_r, d_z, d_hn]ᵀ h_{t-1}
    db_ih += Σ_b d_gates_t        db_hh += Σ_b [d_r, d_z, d_hn]        (db_hh ≠ db_ih in the n block)
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Quantity, Step, carry_cut
from .lstm import sigmoid
from .unroll import unroll

GATES = ("r", "z", "n")          # PyTorch's order along W_ih's rows


# ----------------------------------------------------------------------------------------------------------------------
# the correct step, and the bugs

class GRUStep(Step):
    """The correct GRU BPTT step's mistake points (with Step's accumulate); every GRU bug overrides one."""

    @staticmethod
    def update_backward(dh_total_t: np.ndarray, z_t: np.ndarray, n_t: np.ndarray,
                        h_prev_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Through h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}: (dn, dz, the part sent straight to h_{t-1}). (B, H) each"""
        return dh_total_t * (1.0 - z_t), dh_total_t * (h_prev_t - n_t), dh_total_t * z_t

    @staticmethod
    def reset_path(d_n: np.ndarray, r_t: np.ndarray, hn_t: np.ndarray, h_prev_t: np.ndarray, W_hn: np.ndarray,
                   b_hn: np.ndarray) -> tuple:
        """Through r_t ⊙ hn_t, hn_t = W_hn h_{t-1} + b_hn: (dr, d_hn, s), s being what h_{t-1} is multiplied by
        inside W_hn's product (1 in PyTorch's form): the n block sends (d_hn W_hn) ⊙ s back to h_{t-1} and adds
        d_hnᵀ (s ⊙ h_{t-1}) to dW_hn. (B, H) each, s a scalar or (B, H)"""
        return d_n * hn_t, d_n * r_t, 1.0


class ResetBeforeMatmul(GRUStep):
    """BUG (on purpose): the backward of the paper's form n = tanh(W_in x + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)."""
    name = "reset-before-matmul"
    note = ("the backward of the paper's GRU, with r inside the product (W_hn (r ⊙ h_{t-1})), against PyTorch's, "
            "which applies r after it (r ⊙ (W_hn h_{t-1} + b_hn)).")
    equation = (r"dr = (d\_n\, W_{hn}) \odot h_{t-1},\ dW_{hn} \mathrel{+}= d\_n^{\top} (r \odot h_{t-1}) \quad "
                r"(\text{instead of } dr = d\_n \odot hn_t,\ dW_{hn} \mathrel{+}= (d\_n \odot r)^{\top} h_{t-1})")
    diverges = ("d_gates", -1, "r")
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def reset_path(d_n: np.ndarray, r_t: np.ndarray, hn_t: np.ndarray, h_prev_t: np.ndarray, W_hn: np.ndarray,
                   b_hn: np.ndarray) -> tuple:
        # BUG (on purpose): the paper's form, r ⊙ h_{t-1} inside the product: W_hn's input is r ⊙ h_{t-1} (s = r),
        # the gradient at its output is d_n itself, and dr = (d_n W_hn) ⊙ h_{t-1}
        return (d_n @ W_hn) * h_prev_t, d_n, r_t


class ZSwapped(GRUStep):
    """BUG (on purpose): differentiates h = z ⊙ n + (1 − z) ⊙ h_{t-1}, the roles of z and 1 − z swapped."""
    name = "z-swapped"
    note = "the update is differentiated as h = z ⊙ n + (1 − z) ⊙ h_(t−1): z and 1 − z are swapped."
    equation = (r"dn = dh \odot z_t,\ dz = dh \odot (n_t - h_{t-1}),\ dh_{t-1} \mathrel{+}= dh \odot (1 - z_t) \quad "
                r"(\text{PyTorch: } h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1})")
    diverges = ("d_gates", -1, "r")
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def update_backward(dh_total_t: np.ndarray, z_t: np.ndarray, n_t: np.ndarray,
                        h_prev_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return dh_total_t * z_t, dh_total_t * (n_t - h_prev_t), dh_total_t * (1.0 - z_t)  # BUG (on purpose)


class DropZCarry(GRUStep):
    """BUG (on purpose): dh_prev misses dh_total ⊙ z, the direct path from h_t to h_{t-1}."""
    name = "drop-z-carry"
    note = "dh_prev misses dh_t ⊙ z_t, the direct path from h_t back to h_(t−1): only the path through the gates."
    equation = r"dh\_prev_t = [d_r, d_z, d_{hn}]\, W_{hh} \quad (\text{no } dh\_total_t \odot z_t)"
    diverges = ("dh_prev", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def update_backward(dh_total_t: np.ndarray, z_t: np.ndarray, n_t: np.ndarray,
                        h_prev_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return dh_total_t * (1.0 - z_t), dh_total_t * (h_prev_t - n_t), np.zeros_like(z_t)  # BUG (on purpose)


class ResetMissesBias(GRUStep):
    """BUG (on purpose): d_r uses W_hn h_{t-1} without b_hn."""
    name = "reset-misses-bias"
    note = "the reset gate's gradient uses W_hn h_(t−1) without b_hn: dr = d_n ⊙ (hn_t − b_hn)."
    equation = r"dr = d\_n \odot W_{hn} h_{t-1} \quad (\text{instead of } d\_n \odot (W_{hn} h_{t-1} + b_{hn}))"
    diverges = ("d_gates", -1, "r")
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def reset_path(d_n: np.ndarray, r_t: np.ndarray, hn_t: np.ndarray, h_prev_t: np.ndarray, W_hn: np.ndarray,
                   b_hn: np.ndarray) -> tuple:
        return d_n * (hn_t - b_hn), d_n * r_t, 1.0  # BUG (on purpose): b_hn left out of dr


ZOO: dict[str, type[GRUStep]] = {s.name: s for s in (
    GRUStep, ResetBeforeMatmul, ZSwapped, DropZCarry, ResetMissesBias)}


# ----------------------------------------------------------------------------------------------------------------------
# the plain form: the derivation, line by line

def gru_forward(x: np.ndarray, h0: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray,
                b_hh: np.ndarray) -> dict[str, np.ndarray]:
    """The gates r, z, n, hn = W_hn h_{t-1} + b_hn and the hidden state h for t = 0 ... T-1, each (T, B, H)."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    out = {k: np.zeros((T, B, H)) for k in ("r", "z", "n", "hn", "h")}
    h_prev = h0                                                                   # (B, H)
    for t in range(T):
        gi = x[t] @ W_ih.T + b_ih                                                 # (B, 3H) blocks r | z | n
        gh = h_prev @ W_hh.T + b_hh                                               # (B, 3H)
        r = sigmoid(gi[:, :H] + gh[:, :H])                                        # (B, H) reset gate
        z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])                              # (B, H) update gate
        hn = gh[:, 2 * H:]                                                        # (B, H) W_hn h_{t-1} + b_hn
        n = np.tanh(gi[:, 2 * H:] + r * hn)                                       # (B, H) candidate
        h = (1.0 - z) * n + z * h_prev                                            # (B, H)
        for k, v in (("r", r), ("z", z), ("n", n), ("hn", hn), ("h", h)):
            out[k][t] = v
        h_prev = h
    return out


def gru_bptt(x: np.ndarray, h0: np.ndarray, dh_out: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray,
             b_hh: np.ndarray, fwd: dict[str, np.ndarray], truncate: int,
             step: type[GRUStep] = GRUStep) -> dict[str, np.ndarray]:
    """Backpropagation through time by hand, t = T-1 ... 0: every (T, B, ·) per-step quantity, time-major.

    fwd: gru_forward's r, z, n, hn, h. The weight gradients are step contributions (see contributions)."""
    T, B, I = x.shape
    H = W_hh.shape[1]
    r, z, n, hn, h = (fwd[k] for k in ("r", "z", "n", "hn", "h"))
    W_hrz, W_hn, b_hn = W_hh[:2 * H], W_hh[2 * H:], b_hh[2 * H:]                  # (2H, H), (H, H), (H,)
    trace = {name: np.zeros((T, B, k)) for name, k in (
        ("dh_next", H), ("dh_total", H), ("d_gates", 3 * H), ("d_hn", H), ("dx", I), ("dh_prev", H))}
    dh_prev = np.zeros((B, H))                                                    # nothing comes back after T-1
    for t in reversed(range(T)):
        h_prev = h0 if t == 0 else h[t - 1]                                       # (B, H) h_{t-1}
        cut = t == T - 1 or carry_cut(t + 1, truncate)                            # no step t+1, or h_t detached
        dh_next = np.zeros((B, H)) if cut else dh_prev                            # (B, H) the carry from t+1
        dh_total = dh_out[t] + dh_next                                            # (B, H) ∂L/∂h_t
        dn, dz, dh_direct = step.update_backward(dh_total, z[t], n[t], h_prev)    # (B, H) each
        d_n = dn * ((1.0 - n[t]) * (1.0 + n[t]))                                  # (B, H) at n's pre-activation
        dr, d_hn, s = step.reset_path(d_n, r[t], hn[t], h_prev, W_hn, b_hn)        # s: h_{t-1}'s factor in W_hn's input
        d_r = dr * (r[t] * (1.0 - r[t]))                                          # (B, H) at r's pre-activation
        d_z = dz * (z[t] * (1.0 - z[t]))                                          # (B, H) at z's pre-activation
        d_gates = np.concatenate([d_r, d_z, d_n], axis=1)                         # (B, 3H) ∂L/∂gi_t, r | z | n
        dx = d_gates @ W_ih                                                       # (B, I) ∂L/∂x_t
        dh_prev = dh_direct + d_gates[:, :2 * H] @ W_hrz + (d_hn @ W_hn) * s      # (B, H) sent back to h_{t-1}
        for name, value in (("dh_next", dh_next), ("dh_total", dh_total), ("d_gates", d_gates), ("d_hn", d_hn),
                            ("dx", dx), ("dh_prev", dh_prev)):
            trace[name][t] = value
    return trace


def run_forward(p) -> dict[str, np.ndarray]:
    """The plain forward pass of a problem."""
    return gru_forward(p.x, p.h0, p.W_ih, p.W_hh, p.b_ih, p.b_hh)


def run_backward(p, fwd: dict[str, np.ndarray], step: type[GRUStep]) -> dict[str, np.ndarray]:
    """The plain BPTT of a problem on forward values fwd."""
    return gru_bptt(p.x, p.h0, p.dh_out, p.W_ih, p.W_hh, p.b_hh, fwd, p.config.truncate, step)


def contributions(p, v, t: int, step: type[GRUStep]) -> dict[str, np.ndarray]:
    """Step t's contributions to the weight gradients: rank-B products of (B, ·) arrays. The hidden side's n block
    is d_hn's (the gradient at W_hn h_{t-1} + b_hn), not d_n's: so db_hh ≠ db_ih there."""
    H = p.W_hh.shape[1]
    h_prev = p.h0 if t == 0 else v["h"][t - 1]                                    # (B, H) h_{t-1}
    d = v["d_gates"][t]                                                           # (B, 3H) r | z | n
    *_, s = step.reset_path(d[:, 2 * H:], v["r"][t], v["hn"][t], h_prev, p.W_hh[2 * H:], p.b_hh[2 * H:])
    d_hn = v["d_hn"][t]                                                           # (B, H)
    return {"dW_ih": d.T @ p.x[t],                                                # (3H, I)
            "dW_hh": np.concatenate([d[:, :2 * H].T @ h_prev, d_hn.T @ (s * h_prev)]),  # (3H, H)
            "db_ih": d.sum(axis=0),                                               # (3H,)
            "db_hh": np.concatenate([d[:, :2 * H].sum(axis=0), d_hn.sum(axis=0)])}  # (3H,)


# ----------------------------------------------------------------------------------------------------------------------
# the unrolled autograd reference

def unrolled(p) -> dict[str, np.ndarray]:
    """Every forward and backward per-step quantity from autograd: the gates, hn_t, h_t, and the gradients of the
    input-side pre-activations gi_t, of hn_t and of h_t, the carry."""
    import torch

    def step(x_t, s, W):
        gi = x_t @ W["W_ih"].T + W["b_ih"]                                        # (B, 3H)
        gh = s["h"] @ W["W_hh"].T + W["b_hh"]                                     # (B, 3H)
        ir, iz, i_n = gi.chunk(3, dim=1)
        hr, hz, hn = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(i_n + r * hn)
        return {"gi": gi, "r": r, "z": z, "n": n, "hn": hn, "h": (1 - z) * n + z * s["h"]}

    u = unroll(p, ("h",), step)
    out = {k: u[k] for k in ("r", "z", "n", "hn", "h", "dh_next", "dx", "dh_prev", "dh0")}
    out.update(dh_total=u["grad_h"], d_gates=u["grad_gi"], d_hn=u["grad_hn"])
    return out


def torch_module(I: int, H: int, nonlinearity: str):
    import torch
    return torch.nn.GRU(I, H).double()


# ----------------------------------------------------------------------------------------------------------------------
# the declaration

FORWARD = (Quantity("r", "BH", "r_t", "the reset gate σ(·)"),
           Quantity("z", "BH", "z_t", "the update gate σ(·)"),
           Quantity("n", "BH", "n_t", "the candidate tanh(gi_n + r_t ⊙ hn_t)"),
           Quantity("hn", "BH", "hn_t", "W_hn h_{t-1} + b_hn, which r_t multiplies"),
           Quantity("h", "BH", "h_t", "the hidden state (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}"))
BACKWARD = (Quantity("dh_next", "BH", "dh_next", "the carry into h_t from step t+1"),
            Quantity("dh_total", "BH", "dh_total", "∂L/∂h_t = dh_out_t + dh_next_t"),
            Quantity("d_gates", "BG", "d_gates", "∂L/∂ of the input-side pre-activations W_i· x_t + b_i·, r | z | n"),
            Quantity("d_hn", "BH", "d_hn", "∂L/∂hn_t = d_n ⊙ r_t, the n block's hidden side"),
            Quantity("dx", "BI", "dx", "∂L/∂x_t = d_gates_t W_ih"),
            Quantity("dh_prev", "BH", "dh_prev", "what step t sends back to h_{t-1}"))

GRU = Cell(name="gru", title="GRU", torch_name="torch.nn.GRU", gates=GATES, states=("h",), forward=FORWARD,
           backward=BACKWARD, zoo=ZOO, torch_module=torch_module, run_forward=run_forward, run_backward=run_backward,
           contributions=contributions, unrolled=unrolled)
