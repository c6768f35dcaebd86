"""The unrolled autograd reference every cell shares: the cell's step in torch ops, one graph node per timestep.

A cell gives `step(x_t, state, W) -> {name: tensor}` (its forward equations in torch, returning the new states "h"
(and "c") among the named tensors). `unroll` runs it for t = 0 .. T-1 with truncated BPTT's detach, takes
L = Σ_t dh_out_t ⊙ h_t, and reads from autograd every forward value and the gradient of every named tensor
(retain_grad), of each step's incoming state (what step t sends back, before any cut) and of x and the initial states.
It never calls the engine's code.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import carry_cut


def unroll(p, states: tuple[str, ...], step: Callable) -> dict[str, np.ndarray]:
    """{name: (T, B, ·) forward value}, {"grad_" + name: its dL/d}, d<s>_prev and d<s>_next for each state s,
    dx (T, B, I) and d<s>0 (B, H): everything autograd says about one problem. p: a bptt.problem.Problem."""
    import torch

    t64 = lambda a, grad=False: torch.tensor(a, dtype=torch.float64, requires_grad=grad)  # noqa: E731
    T = p.x.shape[0]
    W = {k: t64(v) for k, v in p.weights.items()}
    x = t64(p.x, True)
    init = {s: t64(getattr(p, f"{s}0"), True) for s in states}       # h0 (and c0), (B, H) leaves
    state, ins, outs, cut = init, [], [], []
    for t in range(T):
        cut.append(carry_cut(t, p.config.truncate))
        if t == 0:
            s_in = init
        elif cut[t]:
            s_in = {s: v.detach().requires_grad_(True) for s, v in state.items()}   # h = h.detach(): a fresh leaf
        else:
            s_in = {s: v.view_as(v) for s, v in state.items()}                       # an alias: what t sends back
            for v in s_in.values():
                v.retain_grad()
        named = step(x[t], s_in, W)
        for v in named.values():
            v.retain_grad()
        ins.append(s_in)
        outs.append(named)
        state = {s: named[s] for s in states}
    (torch.stack([o["h"] for o in outs]) * torch.from_numpy(p.dh_out)).sum().backward()

    n = lambda v: v.detach().numpy().copy()  # noqa: E731
    grad = lambda v: n(v.grad) if v.grad is not None else np.zeros(tuple(v.shape))  # noqa: E731
    out: dict[str, np.ndarray] = {}
    for name in outs[0]:
        out[name] = np.stack([n(o[name]) for o in outs])
        out["grad_" + name] = np.stack([grad(o[name]) for o in outs])
    for s in states:
        prev = np.stack([grad(i[s]) for i in ins])
        nxt = np.zeros_like(prev)
        for t in range(T - 1):
            if not cut[t + 1]:
                nxt[t] = prev[t + 1]
        out[f"d{s}_prev"], out[f"d{s}_next"], out[f"d{s}0"] = prev, nxt, grad(init[s])
    out["dx"] = grad(x)
    return out
