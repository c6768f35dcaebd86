"""A torch.autograd.Function for the whole RNN whose backward is BPTT written by hand in torch operations."""
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


def rnn_function(p: Problem) -> tuple[torch.Tensor, ...]:
    """The problem's tensors (x, h0, W_ih, W_hh, b_ih, b_hh) as float64 leaves (requiring grad) for RNNFunction."""
    arrays = (p.x, p.h0, p.W_ih, p.W_hh, p.b_ih, p.b_hh)
    return tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays)


OpResult = Totals   # the operator's results have the same fields as every other implementation's totals


def run_op(p: Problem) -> Totals:
    """Forward and backward through RNNFunction with the problem's upstream gradient."""
    cfg = p.config
    leaves = rnn_function(p)
    h = RNNFunction.apply(*leaves, cfg.nonlinearity, cfg.truncate)
    h.backward(torch.from_numpy(p.dh_out))
    n = lambda t: t.detach().numpy().copy()  # noqa: E731
    x, h0, W_ih, W_hh, b_ih, b_hh = leaves
    return Totals(n(h), n(x.grad), n(h0.grad), n(W_ih.grad), n(W_hh.grad), n(b_ih.grad), n(b_hh.grad))


# gradcheck perturbs every input number twice and backpropagates every output number once: it checks the full
# Jacobian up to this many input numbers (x, h0 and the four weights), and uses fast mode (random projections) above.
# The Verification page runs it by itself up to this size too, and on request above.
GRADCHECK_MAX_NUMBERS = 600


def gradcheck_numbers(config: RNNConfig) -> int:
    """How many input numbers gradcheck perturbs: x (T, B, I), h0 (B, H), W_ih, W_hh, b_ih, b_hh."""
    T, B, I, H = config.seq_len, config.batch_size, config.input_size, config.hidden_size
    return T * B * I + B * H + H * I + H * H + 2 * H


@dataclass(frozen=True)
class GradcheckResult:
    """torch.autograd.gradcheck's verdict on RNNFunction, in words for the app."""
    passed: bool
    fast_mode: bool      # random projections instead of the full Jacobian (above GRADCHECK_MAX_NUMBERS inputs)
    n_inputs: int        # gradcheck_numbers(config)
    message: str


def gradcheck_op(p: Problem) -> GradcheckResult:
    """torch.autograd.gradcheck of RNNFunction at this problem's point (float64); never raises.

    Truncated BPTT (1 <= truncate < seq_len) is by design not the derivative of the forward pass, so gradcheck
    checks the operator with full BPTT there (the same code with no cut); the truncated gradients themselves are
    checked against torch.nn.RNN with h.detach() in the comparison table."""
    cfg = p.config
    leaves = rnn_function(p)
    n_inputs = gradcheck_numbers(cfg)
    fast = n_inputs > GRADCHECK_MAX_NUMBERS
    cuts = 0 < cfg.truncate < cfg.seq_len
    truncate = 0 if cuts else cfg.truncate
    fn = lambda *ts: RNNFunction.apply(*ts, cfg.nonlinearity, truncate)  # noqa: E731
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
