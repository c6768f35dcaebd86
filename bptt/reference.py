"""PyTorch autograd references; they never call the engine's code.

(a) `torch_rnn_reference`: torch.nn.RNN itself, outputs and gradients.
(b) `unrolled_reference`: the RNN unrolled by hand in torch, so that autograd yields every per-step quantity.
Truncated BPTT is the training-loop idiom in both: h = h.detach() before steps K, 2K, ...
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


def _loss(h: torch.Tensor, dh_out: np.ndarray) -> torch.Tensor:
    """L = sum(dh_out ⊙ h), so that dL/dh_t from the outputs is dh_out[t]."""
    return (h * torch.from_numpy(dh_out)).sum()


# ----------------------------------------------------------------------------------------------------------------------
# (a) torch.nn.RNN

TorchRNNResult = Totals   # torch.nn.RNN's results have the same fields as every other implementation's totals


def torch_rnn_reference(p: Problem) -> Totals:
    """Run torch.nn.RNN (float64) with the problem's weights on (x, h0) and backpropagate dh_out through it."""
    cfg = p.config
    rnn = make_torch_rnn(cfg)
    with torch.no_grad():
        for name, w in (("weight_ih_l0", p.W_ih), ("weight_hh_l0", p.W_hh), ("bias_ih_l0", p.b_ih),
                        ("bias_hh_l0", p.b_hh)):
            getattr(rnn, name).copy_(torch.from_numpy(w))
    x, h0 = _t(p.x, True), _t(p.h0[None], True)
    outs, h = [], h0
    for s, e in _windows(cfg.seq_len, cfg.truncate):
        out, h = rnn(x[s:e], h if s == 0 else h.detach())
        outs.append(out)
    out = torch.cat(outs)
    _loss(out, p.dh_out).backward()
    g = lambda t: t.grad.detach().numpy().copy()  # noqa: E731
    return Totals(out.detach().numpy().copy(), g(x), g(h0)[0], g(rnn.weight_ih_l0), g(rnn.weight_hh_l0),
                          g(rnn.bias_ih_l0), g(rnn.bias_hh_l0))


# ----------------------------------------------------------------------------------------------------------------------
# (b) the unrolled autograd graph

def unrolled_reference(p: Problem) -> Trace:
    """Every per-step quantity from autograd: retained grads of h_t and a_t, a leaf h_{t-1} input per step,
    and a leaf copy of each weight per timestep whose .grad is that step's contribution."""
    cfg = p.config
    T = cfg.seq_len
    act = torch.tanh if cfg.nonlinearity == "tanh" else torch.relu
    W = {k: _t(v) for k, v in p.weights.items()}
    steps = {k: [W[k].clone().requires_grad_(True) for _ in range(T)] for k in W}  # leaf copies, one per step
    x = _t(p.x, True)
    h0 = _t(p.h0, True)
    h_in, a_list, h_list, cut = [], [], [], []
    h = h0
    for t in range(T):
        cut.append(t > 0 and cfg.truncate > 0 and t % cfg.truncate == 0)
        if t == 0:
            hin = h0
        elif cut[t]:
            hin = h.detach().requires_grad_(True)        # truncated BPTT: h = h.detach(), a fresh leaf
        else:
            hin = h.view_as(h)                           # an alias whose grad is what step t sends back
            hin.retain_grad()
        a = x[t] @ steps["W_ih"][t].T + steps["b_ih"][t] + hin @ steps["W_hh"][t].T + steps["b_hh"][t]
        a.retain_grad()
        h = act(a)
        h.retain_grad()
        h_in.append(hin)
        a_list.append(a)
        h_list.append(h)
    _loss(torch.stack(h_list), p.dh_out).backward()

    n = lambda t: t.detach().numpy().copy()  # noqa: E731
    zeros = lambda shape: np.zeros(shape)  # noqa: E731
    grad = lambda t: n(t.grad) if t.grad is not None else zeros(tuple(t.shape))  # noqa: E731
    h_np = np.stack([n(v) for v in h_list])
    dh_total = np.stack([grad(v) for v in h_list])
    dh_prev = np.stack([grad(v) for v in h_in])
    # what flows into h_t from step t+1 is autograd's grad of step t+1's input alias; 0 where the carry is cut
    dh_next = np.zeros_like(h_np)
    for t in range(T - 1):
        if not cut[t + 1]:
            dh_next[t] = dh_prev[t + 1]
    step = {k: np.stack([grad(v) for v in steps[k]]) for k in steps}
    acc = {k: np.cumsum(v[::-1], axis=0)[::-1] for k, v in step.items()}
    return Trace(
        a=np.stack([n(v) for v in a_list]), h=h_np, dh_next=dh_next, dh_total=dh_total,
        d_pre=np.stack([grad(v) for v in a_list]), dx=grad(x), dh_prev=dh_prev, dh0=grad(h0),
        dW_ih_step=step["W_ih"], dW_hh_step=step["W_hh"], db_ih_step=step["b_ih"], db_hh_step=step["b_hh"],
        dW_ih_acc=acc["W_ih"], dW_hh_acc=acc["W_hh"], db_ih_acc=acc["b_ih"], db_hh_acc=acc["b_hh"],
    )
