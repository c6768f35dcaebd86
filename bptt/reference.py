"""PyTorch autograd references; they never call the engine's code.

(a) `torch_rnn_reference`: the cell's torch module itself (torch.nn.RNN, LSTM or GRU), outputs and gradients.
(b) `unrolled_reference`: the cell unrolled by hand in torch ops (bptt/cells/unroll.py and the cell's step), so that
    autograd yields every per-step quantity; its weight-shaped per-step quantities are derived, like the engine's, from
    its own (T, B, ·) gradients, and its full gradients are checked against (a).
Truncated BPTT is the training-loop idiom in both: the state is detached before steps K, 2K, ...
"""
from __future__ import annotations

import numpy as np
import torch

from .engine import Totals, Trace
from .problem import Problem, make_torch_rnn


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _windows(T: int, truncate: int) -> list[tuple[int, int]]:
    """[start, stop) of each truncation window; one window for full BPTT."""
    K = truncate if truncate > 0 else T
    return [(s, min(s + K, T)) for s in range(0, T, K)]


# ----------------------------------------------------------------------------------------------------------------------
# (a) the torch module

def torch_rnn_reference(p: Problem) -> Totals:
    """Run the cell's torch module (float64) with the problem's weights on (x, h0[, c0]) and backpropagate dh_out."""
    cfg = p.config
    rnn = make_torch_rnn(cfg)
    with torch.no_grad():
        for name, w in (("weight_ih_l0", p.W_ih), ("weight_hh_l0", p.W_hh), ("bias_ih_l0", p.b_ih),
                        ("bias_hh_l0", p.b_hh)):
            getattr(rnn, name).copy_(torch.from_numpy(w))
    x, h0 = _t(p.x, True), _t(p.h0[None], True)
    c0 = _t(p.c0[None], True) if p.c0 is not None else None
    state = (h0, c0) if c0 is not None else h0
    outs = []
    for s, e in _windows(cfg.seq_len, cfg.truncate):
        if s > 0:                                                  # truncated BPTT: state = state.detach()
            state = tuple(v.detach() for v in state) if c0 is not None else state.detach()
        out, state = rnn(x[s:e], state)
        outs.append(out)
    out = torch.cat(outs)
    (out * torch.from_numpy(p.dh_out)).sum().backward()
    g = lambda t: t.grad.detach().numpy().copy()  # noqa: E731
    return Totals(out.detach().numpy().copy(), g(x), g(h0)[0], g(rnn.weight_ih_l0), g(rnn.weight_hh_l0),
                  g(rnn.bias_ih_l0), g(rnn.bias_hh_l0), g(c0)[0] if c0 is not None else None)


# ----------------------------------------------------------------------------------------------------------------------
# (b) the unrolled autograd graph

def unrolled_reference(p: Problem) -> Trace:
    """Every per-step quantity from autograd (the cell's `unrolled`); weight-shaped ones derived from its gradients
    with the correct step, whatever the config's bug."""
    return Trace(p, p.cell.step_of("none"), p.cell.unrolled(p))
