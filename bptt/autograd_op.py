"""A torch.autograd.Function per cell, for the whole sequence, whose backward is BPTT written by hand in torch ops.

RNNFunction, LSTMFunction and GRUFunction each pass torch.autograd.gradcheck (tests/unit/test_autograd_op.py)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import RNNConfig
from .engine import Totals
from .problem import Problem


class RNNFunction(torch.autograd.Function):
    """h = RNN(x, h0; W_ih, W_hh, b_ih, b_hh), all outputs (T, B, H); backward is hand-written BPTT."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, nonlinearity: str = "tanh", truncate: int = 0):
        T = x.shape[0]
        a = torch.matmul(x, W_ih.T) + b_ih + b_hh                  # (T, B, H), input part of all steps at once
        hs = []
        hprev = h0
        for t in range(T):
            at = a[t] + hprev @ W_hh.T                              # (B, H)
            hprev = torch.tanh(at) if nonlinearity == "tanh" else torch.relu(at)
            hs.append(hprev)
        h = torch.stack(hs)                                         # (T, B, H)
        fprime = (1 - h) * (1 + h) if nonlinearity == "tanh" else (h > 0).to(h.dtype)  # 1 - h², accurately
        ctx.save_for_backward(x, h0, W_ih, W_hh, h, fprime)
        ctx.truncate = truncate
        return h

    @staticmethod
    def backward(ctx, dh_out):
        x, h0, W_ih, W_hh, h, fprime = ctx.saved_tensors
        K = ctx.truncate
        T = x.shape[0]
        d_pre = torch.empty_like(h)
        carry = torch.zeros_like(h0)
        dh0 = torch.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            d_pre[t] = (dh_out[t] + carry) * fprime[t]             # dL/da_t
            sent = d_pre[t] @ W_hh                                  # to h_{t-1}
            if t == 0:
                dh0 = sent
            carry = torch.zeros_like(sent) if (K > 0 and t % K == 0) else sent
        hprev = torch.cat([h0[None], h[:-1]])                       # (T, B, H)
        d_preT = d_pre.transpose(1, 2)                              # (T, H, B)
        dx = d_pre @ W_ih                                           # (T, B, I)
        dW_ih = (d_preT @ x).sum(0)                                 # (H, I)
        dW_hh = (d_preT @ hprev).sum(0)                             # (H, H)
        db = d_pre.sum((0, 1))                                      # (H,)
        return dx, dh0, dW_ih, dW_hh, db, db.clone(), None, None


def _carry(sent: torch.Tensor, t: int, K: int) -> torch.Tensor:
    """What reaches step t-1 of what step t sends back: nothing where truncated BPTT detaches the state at t."""
    return torch.zeros_like(sent) if (K > 0 and t % K == 0) else sent


class LSTMFunction(torch.autograd.Function):
    """h = LSTM(x, h0, c0; W_ih, W_hh, b_ih, b_hh), all outputs (T, B, H); backward is hand-written BPTT."""

    @staticmethod
    def forward(ctx, x, h0, c0, W_ih, W_hh, b_ih, b_hh, truncate: int = 0):
        T, H = x.shape[0], h0.shape[1]
        xz = torch.matmul(x, W_ih.T) + b_ih + b_hh                  # (T, B, 4H), input part of all steps at once
        h, c, saved = h0, c0, []
        for t in range(T):
            z = xz[t] + h @ W_hh.T                                  # (B, 4H) blocks i | f | g | o
            i, f, o = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H:2 * H]), torch.sigmoid(z[:, 3 * H:])
            g = torch.tanh(z[:, 2 * H:3 * H])
            c = f * c + i * g
            h = o * torch.tanh(c)
            saved.append(torch.stack([i, f, g, o, c, h]))
        ctx.save_for_backward(x, h0, c0, W_ih, W_hh, torch.stack(saved))   # (T, 6, B, H)
        ctx.truncate = truncate
        return torch.stack([s[5] for s in saved])

    @staticmethod
    def backward(ctx, dh_out):
        x, h0, c0, W_ih, W_hh, saved = ctx.saved_tensors
        T, K = x.shape[0], ctx.truncate
        d_gates = torch.empty(T, *h0.shape[:1], W_ih.shape[0], dtype=x.dtype)
        carry_h, carry_c = torch.zeros_like(h0), torch.zeros_like(c0)
        dh0 = dc0 = None
        for t in range(T - 1, -1, -1):
            i, f, g, o, c, _ = saved[t]
            c_prev = c0 if t == 0 else saved[t - 1, 4]
            dh = dh_out[t] + carry_h                                # dL/dh_t
            tc = torch.tanh(c)
            dc = carry_c + dh * o * (1 - tc) * (1 + tc)             # dL/dc_t
            d_gates[t] = torch.cat([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g) * (1 + g),
                                    dh * tc * o * (1 - o)], dim=1)
            sent_h, sent_c = d_gates[t] @ W_hh, dc * f
            if t == 0:
                dh0, dc0 = sent_h, sent_c
            carry_h, carry_c = _carry(sent_h, t, K), _carry(sent_c, t, K)
        hprev = torch.cat([h0[None], saved[:-1, 5]])                # (T, B, H)
        dT = d_gates.transpose(1, 2)                                # (T, 4H, B)
        db = d_gates.sum((0, 1))
        return d_gates @ W_ih, dh0, dc0, (dT @ x).sum(0), (dT @ hprev).sum(0), db, db.clone(), None


class GRUFunction(torch.autograd.Function):
    """h = GRU(x, h0; W_ih, W_hh, b_ih, b_hh) in PyTorch's form, outputs (T, B, H); backward is hand-written BPTT."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, truncate: int = 0):
        T, H = x.shape[0], h0.shape[1]
        gi = torch.matmul(x, W_ih.T) + b_ih                         # (T, B, 3H) blocks r | z | n
        h, saved = h0, []
        for t in range(T):
            gh = h @ W_hh.T + b_hh                                  # (B, 3H)
            r = torch.sigmoid(gi[t, :, :H] + gh[:, :H])
            z = torch.sigmoid(gi[t, :, H:2 * H] + gh[:, H:2 * H])
            hn = gh[:, 2 * H:]
            n = torch.tanh(gi[t, :, 2 * H:] + r * hn)
            h = (1 - z) * n + z * h
            saved.append(torch.stack([r, z, n, hn, h]))
        ctx.save_for_backward(x, h0, W_ih, W_hh, torch.stack(saved))   # (T, 5, B, H)
        ctx.truncate = truncate
        return torch.stack([s[4] for s in saved])

    @staticmethod
    def backward(ctx, dh_out):
        x, h0, W_ih, W_hh, saved = ctx.saved_tensors
        T, K = x.shape[0], ctx.truncate
        d_gi = torch.empty(T, h0.shape[0], W_ih.shape[0], dtype=x.dtype)   # dL/d(W_ih x_t + b_ih)
        d_gh = torch.empty_like(d_gi)                                       # dL/d(W_hh h_{t-1} + b_hh)
        carry = torch.zeros_like(h0)
        dh0 = None
        for t in range(T - 1, -1, -1):
            r, z, n, hn, _ = saved[t]
            h_prev = h0 if t == 0 else saved[t - 1, 4]
            dh = dh_out[t] + carry                                  # dL/dh_t
            d_n = dh * (1 - z) * (1 - n) * (1 + n)
            d_r = d_n * hn * r * (1 - r)
            d_z = dh * (h_prev - n) * z * (1 - z)
            d_gi[t] = torch.cat([d_r, d_z, d_n], dim=1)
            d_gh[t] = torch.cat([d_r, d_z, d_n * r], dim=1)
            sent = dh * z + d_gh[t] @ W_hh
            if t == 0:
                dh0 = sent
            carry = _carry(sent, t, K)
        hprev = torch.cat([h0[None], saved[:-1, 4]])                # (T, B, H)
        return (d_gi @ W_ih, dh0, (d_gi.transpose(1, 2) @ x).sum(0), (d_gh.transpose(1, 2) @ hprev).sum(0),
                d_gi.sum((0, 1)), d_gh.sum((0, 1)), None)


def op_leaves(p: Problem) -> tuple[torch.Tensor, ...]:
    """The problem's tensors (x, h0[, c0], W_ih, W_hh, b_ih, b_hh) as float64 leaves requiring grad."""
    arrays = (p.x, p.h0, *(() if p.c0 is None else (p.c0,)), p.W_ih, p.W_hh, p.b_ih, p.b_hh)
    return tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays)


def apply_op(config: RNNConfig, leaves: tuple[torch.Tensor, ...], truncate: int | None = None) -> torch.Tensor:
    """The cell's Function on op_leaves (with the config's truncation, or this one): h (T, B, H)."""
    K = config.truncate if truncate is None else truncate
    if config.cell == "lstm":
        return LSTMFunction.apply(*leaves, K)
    if config.cell == "gru":
        return GRUFunction.apply(*leaves, K)
    return RNNFunction.apply(*leaves, config.nonlinearity, K)


def run_op(p: Problem) -> Totals:
    """Forward and backward through the cell's Function with the problem's upstream gradient."""
    leaves = op_leaves(p)
    h = apply_op(p.config, leaves)
    h.backward(torch.from_numpy(p.dh_out))
    n = lambda t: t.grad.detach().numpy().copy()  # noqa: E731
    x, h0, *rest = leaves
    c0 = rest.pop(0) if p.c0 is not None else None
    W_ih, W_hh, b_ih, b_hh = rest
    return Totals(h.detach().numpy().copy(), n(x), n(h0), n(W_ih), n(W_hh), n(b_ih), n(b_hh),
                  n(c0) if c0 is not None else None)


# gradcheck perturbs every input number twice and backpropagates every output number once: it checks the full
# Jacobian up to this many input numbers (x, h0 and the four weights), and uses fast mode (random projections) above.
# The Verification page runs it by itself up to this size too, and on request above.
GRADCHECK_MAX_NUMBERS = 600


def gradcheck_numbers(config: RNNConfig) -> int:
    """How many input numbers gradcheck perturbs: x (T, B, I), h0 (B, H) (and c0), W_ih, W_hh, b_ih, b_hh."""
    from .cells import cell_of
    cell = cell_of(config.cell)
    T, B, I, H = config.seq_len, config.batch_size, config.input_size, config.hidden_size
    return T * B * I + len(cell.states) * B * H + cell.G * H * (I + H + 2)


@dataclass(frozen=True)
class GradcheckResult:
    """torch.autograd.gradcheck's verdict on the cell's Function, in words for the app."""
    passed: bool
    fast_mode: bool      # random projections instead of the full Jacobian (above GRADCHECK_MAX_NUMBERS inputs)
    n_inputs: int        # gradcheck_numbers(config)
    message: str


def gradcheck_op(p: Problem) -> GradcheckResult:
    """torch.autograd.gradcheck of the cell's Function at this problem's point (float64); never raises.

    Truncated BPTT (1 <= truncate < seq_len) is by design not the derivative of the forward pass, so gradcheck
    checks the operator with full BPTT there (the same code with no cut); the truncated gradients themselves are
    checked against torch.nn.RNN with h.detach() in the comparison table."""
    cfg = p.config
    leaves = op_leaves(p)
    n_inputs = gradcheck_numbers(cfg)
    fast = n_inputs > GRADCHECK_MAX_NUMBERS
    cuts = 0 < cfg.truncate < cfg.seq_len
    truncate = 0 if cuts else cfg.truncate
    fn = lambda *ts: apply_op(cfg, ts, truncate)  # noqa: E731
    try:
        ok = torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=fast)
        msg = "gradcheck passed"
    except Exception as err:  # gradcheck reports a mismatch by raising; we report it as a verdict
        ok, msg = False, f"gradcheck failed: {str(err).splitlines()[0]}"
    mode = "fast mode (random projections)" if fast else "full Jacobian"
    msg = f"{msg} ({mode}, {n_inputs:,} input entries)"
    if cuts:
        msg += (f"; checked with full BPTT, since truncated BPTT (truncate = {cfg.truncate}) is by design not the "
                f"derivative of the forward pass")
    return GradcheckResult(bool(ok), fast, n_inputs, msg)
